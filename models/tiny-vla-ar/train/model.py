"""TinyVLA-AR: the autoregressive family's model, in plain PyTorch (exportable by torch 1.13).

Graphs the way Hugging Face Optimum exports a decoder-only language model, plus a prefill that
takes the robot's observation instead of text:

- instruction: (instruction_ids [B,L]) -> present.N.key / present.N.value [B,H,L,hd]: the words'
  keys and values, which depend on the instruction only (block-causal prefix), so the runtime
  computes them once per instruction and keeps them across frames.
- prefill (with past, the default export): (visual_tokens [B,K,Dv], token_positions [B,K],
  state [B,S], attention_mask [B,L+K+1], past_key_values.N.key / .value [B,H,L,hd] = the
  instruction graph's present) -> logits [B,1,V] (the first action token), present.N.key /
  .value [B,H,P,hd] with P = L + K + 1 (instruction, visual tokens, state).
- prefill (full, `export(..., instruction_graph=False)`): (visual_tokens, token_positions,
  instruction_ids [B,L], state) -> the same logits and present: the words recomputed every frame.
- decoder: (input_ids [B,T], attention_mask [B,P+T], position_ids [B,T],
  past_key_values.N.key / .value [B,H,P,hd]) -> logits [B,T,V], present.N.key / .value
  [B,H,P+T,hd]: Optimum's decoder-with-past signature. T > 1 verifies several tokens in one call
  (parallel and speculative decoding); attention_mask 0 hides past entries (padding, rejected
  guesses).

Positions are rotary (RoPE, as Llama), so keys and values do not depend on where a token sits in
absolute terms, only relative to the query. The prefix is block-causal: instruction tokens attend
only to the instruction, so its keys and values are the same in every frame and can be cached.
"""
import math

import torch
from torch import nn


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Rope(nn.Module):
    def __init__(self, head_dim, base=10000.0):
        super().__init__()
        self.register_buffer("inv", 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)))

    def forward(self, positions):  # [B,T] int64 -> cos, sin [B,1,T,hd/2]
        angles = positions.to(torch.float32).unsqueeze(-1) * self.inv
        return torch.cos(angles).unsqueeze(1), torch.sin(angles).unsqueeze(1)


class Layer(nn.Module):
    """Pre-norm block whose attention takes a past and an explicit boolean mask [B,1,T,P+T]."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def split(self, x):
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, cos, sin, past_k, past_v, allowed):
        h = self.norm1(x)
        q = rotate(self.split(self.q(h)), cos, sin)
        k = torch.cat([past_k, rotate(self.split(self.k(h)), cos, sin)], dim=2)
        v = torch.cat([past_v, self.split(self.v(h))], dim=2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, -1e9)
        y = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        x = x + self.o(y)
        return x + self.mlp(self.norm2(x)), k, v


class CoordinateFeatures(nn.Module):
    """(x, y) in [0, 1] -> [x, y, sin/cos of 2^k pi x and y]: a smooth code of position (as
    tiny-vla's policy), so that reading a location out of attention is close to linear."""

    def __init__(self, bands=4):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(bands, dtype=torch.float32)) * math.pi)
        self.dim = 2 + 4 * bands

    def forward(self, xy):
        angles = xy.unsqueeze(-1) * self.freqs
        return torch.cat([xy, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)


class TinyVlaAr(nn.Module):
    def __init__(self, vocab, token_dim=64, dim=64, depth=2, heads=4, words=64, max_len=12, state_dim=2,
                 grid_w=12, grid_h=12, state_mean=None, state_std=None, max_actions=64):
        super().__init__()
        # Every prefix slot has a fixed position whatever is pruned (words 0..L-1, visual token g at
        # L + g, the state at L + N), so action token i sits at first_action + i in every frame.
        self.max_len, self.first_action, self.max_actions = max_len, max_len + grid_w * grid_h + 1, max_actions
        self.vocab, self.heads, self.head_dim, self.depth = vocab, heads, dim // heads, depth
        self.grid_w, self.grid_h = grid_w, grid_h
        self.visual_in = nn.Linear(token_dim, dim)
        self.coords = CoordinateFeatures()
        self.grid_pos = nn.Linear(self.coords.dim, dim)
        self.state_pos = nn.Linear(self.coords.dim, dim)
        # The state arrives normalised; its table position (for the coordinate code) needs these.
        self.register_buffer("state_mean", torch.zeros(1, state_dim) if state_mean is None else state_mean.reshape(1, -1))
        self.register_buffer("state_std", torch.ones(1, state_dim) if state_std is None else state_std.reshape(1, -1))
        self.text = nn.Embedding(words, dim)
        self.state_in = nn.Linear(state_dim, dim)
        self.type_embed = nn.Parameter(torch.randn(3, dim) * 0.02)
        self.actions = nn.Embedding(vocab, dim)
        # Which action token this is (time step and dimension): read from its position.
        self.slot = nn.Embedding(max_actions, dim)
        self.rope = Rope(self.head_dim)
        self.layers = nn.ModuleList([Layer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def run(self, x, positions, pasts, allowed, head=True):
        cos, sin = self.rope(positions)
        presents = []
        for layer, (pk, pv) in zip(self.layers, pasts):
            x, k, v = layer(x, cos, sin, pk, pv, allowed)
            presents += [k, v]
        return (self.head(self.norm(x)) if head else None), presents

    def empty_past(self, b, like):
        z = like.new_zeros((b, self.heads, 0, self.head_dim))
        return [(z, z) for _ in range(self.depth)]

    def observation(self, visual_tokens, token_positions, state, l):
        """The observation's slots [B,K+1,dim] (visual tokens, state) and their position ids, after
        an instruction of l words."""
        b = visual_tokens.shape[0]
        col = torch.remainder(token_positions, self.grid_w).to(visual_tokens.dtype)
        row = torch.div(token_positions, self.grid_w, rounding_mode="floor").to(visual_tokens.dtype)
        xy = torch.stack([(col + 0.5) / self.grid_w, (row + 0.5) / self.grid_h], dim=-1)
        vis = self.visual_in(visual_tokens) + self.grid_pos(self.coords(xy)) + self.type_embed[1]
        s_xy = state * self.state_std + self.state_mean
        st = (self.state_in(state) + self.state_pos(self.coords(s_xy))).unsqueeze(1) + self.type_embed[2]
        positions = torch.cat([l + token_positions,
                               torch.full((b, 1), self.first_action - 1, dtype=torch.long, device=state.device)], 1)
        return torch.cat([vis, st], dim=1), positions

    def prefill(self, visual_tokens, token_positions, instruction_ids, state):
        b, k = visual_tokens.shape[0], visual_tokens.shape[1]
        l = instruction_ids.shape[1]
        words = self.text(instruction_ids) + self.type_embed[0]
        obs, obs_positions = self.observation(visual_tokens, token_positions, state, l)
        x = torch.cat([words, obs], dim=1)
        p = l + k + 1
        positions = torch.cat([torch.arange(l, device=x.device).unsqueeze(0).expand(b, l), obs_positions], 1)
        key_ok = torch.cat([instruction_ids != 0, torch.ones((b, k + 1), dtype=torch.bool, device=x.device)], 1)
        is_word = torch.arange(p, device=x.device) < l
        # Block-causal prefix: words see words only; the observation sees everything.
        block = ~(is_word.unsqueeze(1) & ~is_word.unsqueeze(0))  # [P,P] query i, key j
        allowed = (block.unsqueeze(0) & key_ok.unsqueeze(1)).unsqueeze(1)
        logits, presents = self.run(x, positions, self.empty_past(b, x), allowed)
        return logits[:, -1:, :], presents

    def instruction(self, instruction_ids):
        """The words' keys and values (the first L entries of prefill's present), which depend on
        the instruction only: words attend to words, never to the observation."""
        b, l = instruction_ids.shape
        words = self.text(instruction_ids) + self.type_embed[0]
        positions = torch.arange(l, device=words.device).unsqueeze(0).expand(b, l)
        allowed = (instruction_ids != 0).unsqueeze(1).unsqueeze(1)  # [B,1,1,L]: padding hidden
        _, presents = self.run(words, positions, self.empty_past(b, words), allowed, head=False)
        return presents

    def prefill_with_past(self, visual_tokens, token_positions, state, attention_mask, pasts):
        """prefill with the words' keys and values given (`pasts`, from instruction()) and
        attention_mask [B,L+K+1] (0: an instruction padding word): the same logits and present."""
        obs, positions = self.observation(visual_tokens, token_positions, state, pasts[0][0].shape[2])
        allowed = (attention_mask != 0).unsqueeze(1).unsqueeze(1)  # the observation sees everything
        logits, presents = self.run(obs, positions, pasts, allowed)
        return logits[:, -1:, :], presents

    def teacher_forced(self, visual_tokens, token_positions, instruction_ids, state, targets, inputs=None):
        """Training: the logits of every action token given the ones before it (`inputs`, default
        the true ones), [B,N,V]."""
        first, presents = self.prefill(visual_tokens, token_positions, instruction_ids, state)
        pasts = [(presents[2 * i], presents[2 * i + 1]) for i in range(self.depth)]
        b, p = targets.shape[0], presents[0].shape[2]
        n = targets.shape[1]
        key_ok = torch.cat([instruction_ids != 0, torch.ones((b, p - instruction_ids.shape[1] + n - 1),
                                                             dtype=torch.bool, device=targets.device)], 1)
        positions = torch.arange(self.first_action, self.first_action + n - 1,
                                 device=targets.device).unsqueeze(0).expand(b, n - 1)
        rest, _ = self.decode(targets[:, :-1] if inputs is None else inputs, key_ok.long(), positions, pasts)
        return torch.cat([first, rest], dim=1)

    def decode(self, input_ids, attention_mask, position_ids, pasts):
        t = input_ids.shape[1]
        total = attention_mask.shape[1]
        p = total - t
        causal = torch.arange(total, device=input_ids.device).unsqueeze(0) <= (
            p + torch.arange(t, device=input_ids.device).unsqueeze(1))
        allowed = (causal.unsqueeze(0) & (attention_mask != 0).unsqueeze(1)).unsqueeze(1)
        slot = torch.clamp(position_ids - self.first_action, 0, self.max_actions - 1)
        return self.run(self.actions(input_ids) + self.slot(slot), position_ids, pasts, allowed)


class PrefillGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, visual_tokens, token_positions, instruction_ids, state):
        logits, presents = self.model.prefill(visual_tokens, token_positions, instruction_ids, state)
        return (logits, *presents)


class InstructionGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, instruction_ids):
        return tuple(self.model.instruction(instruction_ids))


class PrefillWithPastGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, visual_tokens, token_positions, state, attention_mask, *past):
        pasts = [(past[2 * i], past[2 * i + 1]) for i in range(self.model.depth)]
        logits, presents = self.model.prefill_with_past(visual_tokens, token_positions, state, attention_mask, pasts)
        return (logits, *presents)


class DecoderGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        pasts = [(past[2 * i], past[2 * i + 1]) for i in range(self.model.depth)]
        logits, presents = self.model.decode(input_ids, attention_mask, position_ids, pasts)
        return (logits, *presents)


def kv_names(depth, prefix):
    return [f"{prefix}.{i}.{kind}" for i in range(depth) for kind in ("key", "value")]


def check_instruction_graph(model, cases):
    """Max |difference| between the full prefill and instruction() + prefill_with_past() over
    `cases` [(visual_tokens, token_positions, instruction_ids, state)]: the logits and every cache
    entry the decoder attends to (a padding word's own keys are hidden from every query, and with
    no word at all its query attends to nothing real, so those entries may differ)."""
    worst = 0.0
    with torch.no_grad():
        for vt, tp, ids, st in cases:
            full_logits, full = model.prefill(vt, tp, ids, st)
            words = model.instruction(ids)
            b, k = vt.shape[0], vt.shape[1]
            mask = torch.cat([ids != 0, torch.ones(b, k + 1, dtype=torch.bool)], 1)
            pasts = [(words[2 * i], words[2 * i + 1]) for i in range(model.depth)]
            logits, cached = model.prefill_with_past(vt, tp, st, mask.long(), pasts)
            worst = max(worst, float((logits - full_logits).abs().max()))
            real = mask.unsqueeze(1).unsqueeze(-1)  # [B,1,P,1]
            for a, c in zip(full, cached):
                worst = max(worst, float(((a - c).abs() * real).max()))
    return worst


def export(model, out_dir, opset=17, instruction_graph=True):
    """Writes decoder.onnx (Optimum's decoder-with-past signature) and, with instruction_graph,
    instruction.onnx + prefill.onnx with past (the words' cache made once per instruction), else
    the full prefill.onnx (the words recomputed every frame), with Optimum's names and dynamic
    axes. Returns the largest difference between the two prefills on the export's example inputs
    (see check_instruction_graph)."""
    model.eval()
    b, k, l = 1, model.grid_w * model.grid_h, model.max_len
    vt = torch.randn(b, k, model.visual_in.in_features)
    tp = torch.arange(k).unsqueeze(0)
    ids = torch.zeros(b, l, dtype=torch.long)
    ids[0, :3] = torch.tensor([1, 2, 3])
    st = torch.zeros(b, model.state_in.in_features)
    present = kv_names(model.depth, "present")
    past = kv_names(model.depth, "past_key_values")
    kv_axes = {n: {0: "batch", 2: "total_length"} for n in present}
    observation_axes = {"visual_tokens": {0: "batch", 1: "tokens"}, "token_positions": {0: "batch", 1: "tokens"},
                        "state": {0: "batch"}, "logits": {0: "batch"}}
    with torch.no_grad():
        words = model.instruction(ids)
        _, presents = model.prefill(vt, tp, ids, st)
    if instruction_graph:
        torch.onnx.export(
            InstructionGraph(model), (ids,), f"{out_dir}/instruction.onnx", opset_version=opset,
            input_names=["instruction_ids"], output_names=present,
            dynamic_axes={"instruction_ids": {0: "batch"}, **{n: {0: "batch"} for n in present}})
        mask = torch.cat([ids != 0, torch.ones(b, k + 1, dtype=torch.bool)], 1).long()
        torch.onnx.export(
            PrefillWithPastGraph(model), (vt, tp, st, mask, *words), f"{out_dir}/prefill.onnx", opset_version=opset,
            input_names=["visual_tokens", "token_positions", "state", "attention_mask", *past],
            output_names=["logits", *present],
            dynamic_axes={**observation_axes, "attention_mask": {0: "batch", 1: "total_length"},
                          **{n: {0: "batch"} for n in past}, **kv_axes})
    else:
        torch.onnx.export(
            PrefillGraph(model), (vt, tp, ids, st), f"{out_dir}/prefill.onnx", opset_version=opset,
            input_names=["visual_tokens", "token_positions", "instruction_ids", "state"],
            output_names=["logits", *present],
            dynamic_axes={**observation_axes, "instruction_ids": {0: "batch"}, **kv_axes})
    p = presents[0].shape[2]
    t = 3
    feeds = (torch.zeros(b, t, dtype=torch.long), torch.ones(b, p + t, dtype=torch.long),
             torch.arange(model.first_action, model.first_action + t).unsqueeze(0), *presents)
    torch.onnx.export(
        DecoderGraph(model), feeds, f"{out_dir}/decoder.onnx", opset_version=opset,
        input_names=["input_ids", "attention_mask", "position_ids", *past],
        output_names=["logits", *present],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence_length"},
                      "attention_mask": {0: "batch", 1: "total_length"},
                      "position_ids": {0: "batch", 1: "sequence_length"},
                      "logits": {0: "batch", 1: "sequence_length"},
                      **{n: {0: "batch", 2: "past_length"} for n in past}, **kv_axes})
    g = torch.Generator().manual_seed(0)
    cases = []
    for kk, n_words in [(k, 3), (k // 3, l), (1, 1)]:
        case_ids = torch.zeros(2, l, dtype=torch.long)
        case_ids[:, :n_words] = torch.randint(1, model.text.num_embeddings, (2, n_words), generator=g)
        cases.append((torch.randn(2, kk, model.visual_in.in_features, generator=g),
                      torch.randperm(k, generator=g)[:kk].sort().values.unsqueeze(0).expand(2, kk),
                      case_ids, torch.randn(2, model.state_in.in_features, generator=g)))
    return check_instruction_graph(model, cases)
