"""PyTorch eager reference of TinyVLA-AR for `npm run bench` (the performance report): the
training recipe's modules with the checkpoint the package's ONNX graphs were exported from, run on
the observations the node saw, decoded greedily with a key-value cache, and timed frame -> chunk.

    /usr/bin/python3 models/tiny-vla-ar/train/bench_torch.py --package models/tiny-vla-ar \
        --checkpoint models/tiny-vla-ar/train/checkpoint.pt --inputs DIR --threads 1

DIR holds little-endian arrays written by the benchmark (numpy.fromfile reads them):
frames.u8 [N,H,W,3] RGB at the model's size, states.f32 [N,S] in manifest units, ids.i64 [N,L]
instruction ids, expected.f32 [N,horizon*action_dim] the node's actions. One JSON object goes to
stdout, with every chunk's greedy tokens (the benchmark compares them with the node's).

What a user of the recipe runs: eval mode under torch.inference_mode, one observation at a time,
every visual token kept, the whole prefix (instruction and observation) computed by the prefill
for each observation, then one decoder call per action token after the first, each feeding the
token just chosen and reusing the keys and values of everything before it (the `present` tensors
of the previous call, as Hugging Face's `past_key_values`). Preprocessing, de-tokenizing and the
clamp to the action limits are timed too. The sizes come from the checkpoint; the action
tokenizer, normalisation and limits from the package's manifest (what the node reads).
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from model import TinyVlaAr
from train import vision_encoder_class


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def load_model(checkpoint, package):
    ck = torch.load(checkpoint, map_location="cpu")
    cfg, meta = ck["config"], ck["meta"]
    words = len(json.load(open(os.path.join(package, "tokenizer.json")))["vocab"])
    enc = vision_encoder_class()(meta["image"]["width"], cfg["patch"], cfg["enc_dim"], cfg["enc_depth"],
                                 cfg["enc_heads"])
    enc.load_state_dict(ck["encoder"])
    model = TinyVlaAr(cfg["bins"], token_dim=cfg["enc_dim"], dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"],
                      words=words, max_len=meta["max_tokens"], state_dim=meta["state_dim"],
                      grid_w=meta["grid"]["width"], grid_h=meta["grid"]["height"])
    model.load_state_dict(ck["decoder"])
    enc.eval()
    model.eval()
    return enc, model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--package", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.load(open(os.path.join(args.package, "manifest.json")))
    enc, model = load_model(args.checkpoint, args.package)

    tok = manifest["action_tokenizer"]
    if tok["kind"] != "uniform_bins" or tok.get("relative_to") != "state":
        raise SystemExit(f"bench_torch.py decodes uniform bins relative to the state, not {tok['kind']}")
    img = manifest["cameras"][0]["image"]
    h, w = img["height"], img["width"]
    L = manifest["tokenizer"]["max_length"]
    s = len(manifest["state"]["names"])
    horizon, a = manifest["chunk"]["horizon"], manifest["chunk"]["action_dim"]
    n_tokens = horizon * a
    f = lambda name, dtype: np.fromfile(os.path.join(args.inputs, name), dtype=dtype)
    frames = f("frames.u8", np.uint8).reshape(-1, h, w, 3)
    n = frames.shape[0]
    states = f("states.f32", "<f4").reshape(n, s)
    ids = f("ids.i64", "<i8").reshape(n, L)
    expected = f("expected.f32", "<f4").reshape(n, n_tokens)

    mean = torch.tensor(img["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(img["std"]).view(1, 3, 1, 1)
    s_mean = torch.tensor(manifest["state"]["mean"])
    s_std = torch.tensor(manifest["state"]["std"])
    bins, offset = tok["bins"], tok.get("token_offset", 0)
    edges = np.linspace(-1.0, 1.0, bins)
    centres = torch.from_numpy((edges[:-1] + edges[1:]) / 2.0)
    value_range = torch.tensor(tok["range"], dtype=torch.float64)
    a_min = torch.tensor(manifest["action"]["min"], dtype=torch.float64)
    a_max = torch.tensor(manifest["action"]["max"], dtype=torch.float64)
    grid = manifest["cameras"][0]["patch_grid"]
    positions = torch.arange(grid["width"] * grid["height"]).unsqueeze(0)
    first_action = model.first_action

    def infer(i):
        pixels = (torch.from_numpy(frames[i]).permute(2, 0, 1).unsqueeze(0).float().div(255) - mean) / std
        visual, _saliency = enc(pixels)
        ids_i = torch.from_numpy(ids[i]).unsqueeze(0)
        state = ((torch.from_numpy(states[i]) - s_mean) / s_std).unsqueeze(0)
        logits, presents = model.prefill(visual, positions, ids_i, state)
        past = [(presents[2 * j], presents[2 * j + 1]) for j in range(model.depth)]
        # Padding words are hidden from every later token, as the prefill hid them.
        mask = torch.cat([ids_i != 0, torch.ones(1, presents[0].shape[2] - L, dtype=torch.bool)], 1).long()
        one = torch.ones(1, 1, dtype=torch.long)
        tokens = []
        for step in range(n_tokens):
            # Every token the uniform-bin tokenizer knows is admitted at every position.
            tokens.append(int(logits[0, -1, offset:offset + bins].argmax()))
            if step == n_tokens - 1:
                break
            mask = torch.cat([mask, one], 1)
            logits, presents = model.decode(torch.tensor([[tokens[-1] + offset]]), mask,
                                            torch.tensor([[first_action + step]]), past)
            past = [(presents[2 * j], presents[2 * j + 1]) for j in range(model.depth)]
        d = bins - torch.tensor(tokens)
        motion = centres[torch.clamp(d - 1, 0, len(centres) - 1)].view(horizon, a)
        actions = torch.from_numpy(states[i]).double() + motion * value_range
        return tokens, torch.maximum(torch.minimum(actions, a_max), a_min).flatten()

    repeats = []
    max_diff = 0.0
    chunks = []
    with torch.inference_mode():
        for i in range(min(args.warmup, n)):
            infer(i)
        for _ in range(args.repeats):
            times = []
            chunks = []
            for i in range(n):
                t0 = time.perf_counter()
                tokens, actions = infer(i)
                times.append((time.perf_counter() - t0) * 1000)
                chunks.append(tokens)
                max_diff = max(max_diff, float(np.abs(actions.numpy() - expected[i]).max()))
            repeats.append({"mean": float(np.mean(times)), "p50": percentile(times, 50), "p95": percentile(times, 95),
                            "p99": percentile(times, 99), "max": max(times), "count": n})
    print(json.dumps({"torch": torch.__version__, "python": platform.python_version(),
                      "threads": torch.get_num_threads(), "frames": n, "tokens_per_chunk": n_tokens,
                      "decoder_calls_per_chunk": n_tokens - 1, "repeats": repeats,
                      "max_abs_diff_vs_node": max_diff, "tokens": chunks}))


if __name__ == "__main__":
    main()
