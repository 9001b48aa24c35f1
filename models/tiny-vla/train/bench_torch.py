"""PyTorch eager reference for `npm run bench` (the performance report): run a model package's
training-recipe PyTorch model, with the checkpoint its ONNX graphs were exported from, on the same
frames the node saw, and report frame -> chunk latency and the largest difference from the node's
actions (which shows the weights are the same).

    /usr/bin/python3 models/tiny-vla/train/bench_torch.py --package models/tiny-vla \
        --checkpoint models/tiny-vla/train/checkpoint.pt --inputs DIR --threads 1 --repeats 3

DIR holds little-endian arrays written by the benchmark (numpy.fromfile reads them):
frames.u8 [N,H,W,3] RGB at the model's size, states.f32 [N,S] in manifest units, ids.i64 [N,L]
instruction ids, expected.f32 [N,horizon*action_dim] the node's actions. One JSON object goes to
stdout. What a LeRobot user runs: the model in eval mode under torch.inference_mode, one frame at a
time, preprocessing (uint8 -> normalised float) and action de-normalisation included in the time.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from model import Policy, VisionEncoder


def build(package, checkpoint):
    manifest = json.load(open(os.path.join(package, "manifest.json")))
    tokenizer = json.load(open(os.path.join(package, manifest["tokenizer"]["file"])))
    ckpt = torch.load(checkpoint, map_location="cpu")
    c = ckpt["config"]
    img, grid, chunk = manifest["image"], manifest["patch_grid"], manifest["chunk"]
    enc = VisionEncoder(img["width"], c["patch"], c["enc_dim"], c["enc_depth"], c["enc_heads"])
    s = len(manifest["state"]["names"])
    a = chunk["action_dim"]
    # The constant buffers (state statistics, residual scale) come from the checkpoint.
    pol = Policy(grid["width"], grid["height"], c["enc_dim"], c["pol_dim"], c["pol_depth"], c["pol_heads"],
                 len(tokenizer["vocab"]), manifest["tokenizer"]["max_length"], s, chunk["horizon"], a,
                 torch.zeros(s), torch.ones(s), torch.ones(a), torch.zeros(a))
    enc.load_state_dict(ckpt["encoder"])
    pol.load_state_dict(ckpt["policy"])
    return manifest, enc.eval(), pol.eval()


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--package", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    manifest, enc, pol = build(args.package, args.checkpoint)
    img, chunk = manifest["image"], manifest["chunk"]
    h, w = img["height"], img["width"]
    L = manifest["tokenizer"]["max_length"]
    s = len(manifest["state"]["names"])
    ha = chunk["horizon"] * chunk["action_dim"]
    f = lambda name, dtype: np.fromfile(os.path.join(args.inputs, name), dtype=dtype)
    frames = f("frames.u8", np.uint8).reshape(-1, h, w, 3)
    n = frames.shape[0]
    states = f("states.f32", "<f4").reshape(n, s)
    ids = f("ids.i64", "<i8").reshape(n, L)
    expected = f("expected.f32", "<f4").reshape(n, ha)

    mean = torch.tensor(img["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(img["std"]).view(1, 3, 1, 1)
    s_mean = torch.tensor(manifest["state"]["mean"])
    s_std = torch.tensor(manifest["state"]["std"])
    a_mean = torch.tensor(manifest["action"]["mean"])
    a_std = torch.tensor(manifest["action"]["std"])
    a_min = torch.tensor(manifest["action"]["min"])
    a_max = torch.tensor(manifest["action"]["max"])
    grid = manifest["patch_grid"]
    positions = torch.arange(grid["width"] * grid["height"]).unsqueeze(0)

    def infer(i):
        pixels = (torch.from_numpy(frames[i]).permute(2, 0, 1).unsqueeze(0).float().div(255) - mean) / std
        tokens, _logits = enc(pixels)
        state = ((torch.from_numpy(states[i]) - s_mean) / s_std).unsqueeze(0)
        out = pol(tokens, positions, torch.from_numpy(ids[i]).unsqueeze(0), state)
        actions = out[0] * a_std + a_mean
        return torch.maximum(torch.minimum(actions, a_max), a_min).flatten()

    repeats = []
    max_diff = 0.0
    with torch.inference_mode():
        for i in range(min(args.warmup, n)):
            infer(i)
        for _ in range(args.repeats):
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                actions = infer(i)
                times.append((time.perf_counter() - t0) * 1000)
                max_diff = max(max_diff, float(np.abs(actions.numpy() - expected[i]).max()))
            repeats.append({"mean": float(np.mean(times)), "p50": percentile(times, 50), "p95": percentile(times, 95),
                            "p99": percentile(times, 99), "max": max(times), "count": n})
    print(json.dumps({"torch": torch.__version__, "python": platform.python_version(),
                      "threads": torch.get_num_threads(), "frames": n, "repeats": repeats,
                      "max_abs_diff_vs_node": max_diff}))


if __name__ == "__main__":
    main()
