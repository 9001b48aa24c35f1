"""TinyVLA-Flow: a pi0-shaped flow-matching VLA in plain PyTorch, small enough to train on a CPU.

Three parts, exported as four ONNX graphs (see export.py):

- VisionEncoder (graph role `encoder`, shared by both cameras): pixels [B,3,H,W] -> visual tokens
  [B,N,D] on the patch grid and a saliency score per token (what the pruning strategies read).
- PrefixTransformer: one transformer over the prefix [instruction tokens | visual tokens of every
  camera | state], with a BLOCK-CAUSAL mask as in pi0: the instruction block attends only to the
  instruction, the visual block to the instruction and the visual tokens, the state to everything.
  Because the instruction block never sees an image, its per-layer keys and values depend on the
  instruction alone: graph role `instruction` computes them once per instruction and the runtime
  reuses them for every frame, exactly. Graph role `prefix` computes the keys and values of the
  frame's tokens (visual + state), attending to the `context` keys and values given to it (the
  instruction's, and for cross-frame reuse also the reused visual tokens').
- ActionExpert (graph role `expert`): the flow-matching action expert. Its tokens (one per chunk
  step) attend, in each layer, to that layer's prefix keys/values (context and frame parts) and to
  each other, and it returns the velocity of the flow from noise (t = 0) to actions (t = 1).

Attention is written by hand (torch 1.13 cannot export nn.TransformerEncoderLayer's fast path) and
the prefix keys/values may have batch 1 while the expert runs a batch of several noisy chunks
(attention broadcasts over the batch axis), so one cached prefix serves many samples.
"""
import math

import torch
from torch import nn

NEG = -1e9


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def split(self, x):
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]  # [B, H, n, hd] each

    def attend(self, q, parts, bias=None):
        """q [B,H,n,hd] against a list of (k, v) parts, each [B or 1,H,m_i,hd]: one softmax over
        all of them. `bias` [n, sum m_i] is added to the scores (the mask)."""
        scale = 1.0 / math.sqrt(self.head_dim)
        scores = torch.cat([q @ k.transpose(-2, -1) for k, _ in parts], dim=-1) * scale
        if bias is not None:
            scores = scores + bias
        att = torch.softmax(scores, dim=-1)
        out = None
        start = 0
        for k, v in parts:
            m = k.shape[2]
            y = att[..., start:start + m] @ v
            out = y if out is None else out + y
            start = start + m
        b, h, n, hd = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * hd))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))

    def forward(self, x):
        return self.net(x)


class Layer(nn.Module):
    """Pre-norm transformer layer that exposes its keys and values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, x, context=(), bias=None):
        """Returns (x', k, v): k, v are this layer's keys/values of x (the cacheable part)."""
        q, k, v = self.attn.split(self.norm1(x))
        x = x + self.attn.attend(q, list(context) + [(k, v)], bias)
        return x + self.mlp(self.norm2(x)), k, v


class VisionEncoder(nn.Module):
    """pixels [B,3,H,W] -> visual_tokens [B,N,D], saliency logits [B,N]."""

    def __init__(self, image: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.grid = image // patch
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.ModuleList([Layer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.saliency_head = nn.Linear(dim, 1)

    def forward(self, pixels):
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)[0]
        x = self.norm(x)
        return x, self.saliency_head(x).squeeze(-1)


class CoordinateFeatures(nn.Module):
    """(x, y) in table units -> [x, y, sin/cos of 2^k * pi * x and y for k < bands]."""

    def __init__(self, bands: int = 4):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(bands, dtype=torch.float32)) * math.pi)
        self.dim = 2 + 4 * bands

    def forward(self, xy):
        angles = xy.unsqueeze(-1) * self.freqs
        return torch.cat([xy, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)


class PrefixTransformer(nn.Module):
    """The prefix: instruction tokens, the visual tokens of every camera, the state.

    `instruction(ids)` -> per-layer (k, v) of the instruction block; `frame(...)` -> per-layer (k, v)
    of the frame's tokens given the context's per-layer (k, v). Together they are exactly a forward
    pass over the whole prefix with the block-causal mask (`full` checks it)."""

    def __init__(self, grid_w, grid_h, cameras, wrist_span, token_dim, dim, depth, heads, vocab, max_len,
                 state_dim, state_mean, state_std):
        super().__init__()
        self.grid_w, self.grid_h, self.cameras, self.wrist_span = grid_w, grid_h, cameras, wrist_span
        self.tokens_per_camera = grid_w * grid_h
        self.coords = CoordinateFeatures()
        self.visual_in = nn.Linear(token_dim, dim)
        self.grid_pos = nn.Linear(self.coords.dim, dim)
        self.camera_embed = nn.Parameter(torch.randn(cameras, dim) * 0.02)
        self.text = nn.Embedding(vocab, dim)
        self.text_pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.state_in = nn.Linear(state_dim, dim)
        self.state_pos = nn.Linear(self.coords.dim, dim)
        self.type_embed = nn.Parameter(torch.randn(3, dim) * 0.02)
        self.register_buffer("state_mean", state_mean.reshape(1, -1))
        self.register_buffer("state_std", state_std.reshape(1, -1))
        self.layers = nn.ModuleList([Layer(dim, heads) for _ in range(depth)])

    def instruction(self, ids):
        x = self.text(ids) + self.text_pos + self.type_embed[0]
        ks, vs = [], []
        for layer in self.layers:
            x, k, v = layer(x)
            ks.append(k)
            vs.append(v)
        return ks, vs

    def embed_frame(self, visual_tokens, token_positions, state):
        n = self.tokens_per_camera
        cam = torch.div(token_positions, n, rounding_mode="floor")
        p = torch.remainder(token_positions, n)
        col = torch.remainder(p, self.grid_w).to(visual_tokens.dtype)
        row = torch.div(p, self.grid_w, rounding_mode="floor").to(visual_tokens.dtype)
        local = torch.stack([(col + 0.5) / self.grid_w, (row + 0.5) / self.grid_h], dim=-1)
        s_xy = state * self.state_std + self.state_mean  # effector position in table units
        # Camera 0 looks at the whole table; camera 1 (wrist) is centred on the effector and
        # `wrist_span` table units across: its patches are placed at their table position.
        wrist = s_xy.unsqueeze(1) + (local - 0.5) * self.wrist_span
        is_wrist = (cam == 1).unsqueeze(-1).to(visual_tokens.dtype)
        xy = local * (1 - is_wrist) + wrist * is_wrist
        v = self.visual_in(visual_tokens) + self.grid_pos(self.coords(xy)) + self.camera_embed[cam] \
            + self.type_embed[1]
        s = (self.state_in(state) + self.state_pos(self.coords(s_xy))).unsqueeze(1) + self.type_embed[2]
        return torch.cat([v, s], dim=1)

    def frame(self, visual_tokens, token_positions, state, context_keys, context_values):
        """context_keys/values: lists per layer of [B,H,C,hd]. Returns per-layer (k, v) of the K
        visual tokens and the state token (state last)."""
        x = self.embed_frame(visual_tokens, token_positions, state)
        n = x.shape[1]
        c = context_keys[0].shape[2]
        # Visual tokens do not see the state (the last token); the state sees everything.
        rows = torch.arange(n).unsqueeze(1)
        cols = torch.arange(n).unsqueeze(0)
        blocked = (cols == n - 1) & (rows < n - 1)
        bias = torch.cat([torch.zeros(n, c), torch.where(blocked, torch.full((n, n), NEG), torch.zeros(n, n))], dim=1)
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, [(context_keys[i], context_values[i])], bias)
            ks.append(k)
            vs.append(v)
        return ks, vs

    def full(self, ids, visual_tokens, token_positions, state):
        """The whole prefix in one pass with an explicit block-causal mask (reference for tests)."""
        x = torch.cat([self.text(ids) + self.text_pos + self.type_embed[0],
                       self.embed_frame(visual_tokens, token_positions, state)], dim=1)
        L, n = ids.shape[1], x.shape[1]
        block = torch.cat([torch.zeros(L), torch.ones(n - L - 1), torch.full((1,), 2.0)])
        bias = torch.where(block.unsqueeze(0) > block.unsqueeze(1), torch.full((n, n), NEG), torch.zeros(n, n))
        ks, vs = [], []
        for layer in self.layers:
            x, k, v = layer(x, [], bias)
            ks.append(k)
            vs.append(v)
        return ks, vs


def time_features(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1000.0) / max(1, half - 1)))
    a = t.unsqueeze(-1) * freqs * 100.0
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)


class ActionExpert(nn.Module):
    """(noisy chunk x_t [B,H,A], flow time t [B], state [B,S], per-layer prefix (k, v)) -> velocity
    [B,H,A], all in normalised action units.

    It predicts the clean chunk (as a residual on the current state) and returns the velocity of
    the straight path through x_t towards it, v = (a_hat - x_t) / (1 - t): the flow's velocity
    field, so the runtime integrates it like any flow-matching expert."""

    def __init__(self, dim, depth, heads, horizon, action_dim, state_dim, state_to_action_scale,
                 state_to_action_shift):
        super().__init__()
        self.horizon = horizon
        self.dim = dim
        self.action_in = nn.Linear(2 * action_dim, dim)
        self.chunk_pos = nn.Parameter(torch.randn(1, horizon, dim) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.state_in = nn.Linear(state_dim, dim)
        self.layers = nn.ModuleList([Layer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, action_dim)
        self.register_buffer("s2a_scale", state_to_action_scale.reshape(1, 1, -1))
        self.register_buffer("s2a_shift", state_to_action_shift.reshape(1, 1, -1))

    def denoise(self, x_t, t, state, prefix):
        """prefix: per layer, a list of (k, v) parts. Returns the predicted clean chunk."""
        base = state.unsqueeze(1) * self.s2a_scale + self.s2a_shift  # "stay here" in action units
        h = self.action_in(torch.cat([x_t, x_t - base], dim=-1)) + self.chunk_pos
        h = h + (self.time_mlp(time_features(t, self.dim)) + self.state_in(state)).unsqueeze(1)
        for i, layer in enumerate(self.layers):
            h = layer(h, prefix[i])[0]
        return base + self.head(self.norm(h))

    def forward(self, x_t, t, state, prefix):
        a_hat = self.denoise(x_t, t, state, prefix)
        return (a_hat - x_t) / torch.clamp(1.0 - t, min=0.05).view(-1, 1, 1)
