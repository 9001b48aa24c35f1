"""PyTorch eager reference of TinyVLA-Flow for `npm run bench` (the performance report): the
training recipe's modules with the checkpoint the package's ONNX graphs were exported from, run on
the observations the node saw, from the node's own initial noise, and timed frame -> chunk.

    /usr/bin/python3 models/tiny-vla-flow/train/bench_torch.py --package models/tiny-vla-flow \
        --checkpoint models/tiny-vla-flow/train/checkpoint.pt --inputs DIR --steps 10 --threads 1

DIR holds little-endian arrays written by the benchmark (numpy.fromfile reads them):
frames.u8 [N,C,H,W,3] RGB per camera (manifest order) at the model's size, states.f32 [N,S] in
manifest units, ids.i64 [N,L] instruction ids, noise.f32 [N,horizon*action_dim] the initial noise
(normalised units) the node drew, expected.f32 [N,horizon*action_dim] the node's actions. One JSON
object goes to stdout. What a LeRobot/openpi user runs: eval mode under torch.inference_mode, one
observation at a time, every camera encoded, the whole prefix (instruction and frame) computed for
each observation, `steps` Euler steps of the expert, preprocessing and de-normalisation included.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from train import build


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--package", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.load(open(os.path.join(args.package, "manifest.json")))
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    st = ckpt["stats"]
    enc, prefix, expert = build(ckpt["meta"], ckpt["vocab"], np.array(st["state_mean"], np.float32),
                                np.array(st["state_std"], np.float32), np.array(st["action_mean"], np.float32),
                                np.array(st["action_std"], np.float32), ckpt["config"])
    for key, m in (("encoder", enc), ("prefix", prefix), ("expert", expert)):
        m.load_state_dict(ckpt[key])
        m.eval()

    cams = manifest["cameras"]
    img = cams[0]["image"]
    h, w = img["height"], img["width"]
    c = len(cams)
    L = manifest["tokenizer"]["max_length"]
    s = len(manifest["state"]["names"])
    horizon, a = manifest["chunk"]["horizon"], manifest["chunk"]["action_dim"]
    f = lambda name, dtype: np.fromfile(os.path.join(args.inputs, name), dtype=dtype)
    frames = f("frames.u8", np.uint8).reshape(-1, c, h, w, 3)
    n = frames.shape[0]
    states = f("states.f32", "<f4").reshape(n, s)
    ids = f("ids.i64", "<i8").reshape(n, L)
    noise = f("noise.f32", "<f4").reshape(n, horizon, a)
    expected = f("expected.f32", "<f4").reshape(n, horizon * a)

    mean = torch.tensor(img["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(img["std"]).view(1, 3, 1, 1)
    s_mean = torch.tensor(manifest["state"]["mean"])
    s_std = torch.tensor(manifest["state"]["std"])
    a_mean = torch.tensor(manifest["action"]["mean"])
    a_std = torch.tensor(manifest["action"]["std"])
    a_min = torch.tensor(manifest["action"]["min"])
    a_max = torch.tensor(manifest["action"]["max"])
    tokens_per_camera = cams[0]["patch_grid"]["width"] * cams[0]["patch_grid"]["height"]
    positions = torch.arange(c * tokens_per_camera).unsqueeze(0)

    def infer(i):
        pixels = (torch.from_numpy(frames[i]).permute(0, 3, 1, 2).float().div(255) - mean) / std
        tokens, _saliency = enc(pixels)  # the cameras as a batch, as the node's one encoder call
        visual = tokens.reshape(1, c * tokens_per_camera, -1)
        state = ((torch.from_numpy(states[i]) - s_mean) / s_std).unsqueeze(0)
        ik, iv = prefix.instruction(torch.from_numpy(ids[i]).unsqueeze(0))
        fk, fv = prefix.frame(visual, positions, state, ik, iv)
        kv = [[(ik[j], iv[j]), (fk[j], fv[j])] for j in range(len(ik))]
        x = torch.from_numpy(noise[i]).unsqueeze(0)
        for k in range(args.steps):
            x = x + expert(x, torch.full((1,), k / args.steps), state, kv) / args.steps
        actions = x[0] * a_std + a_mean
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
                      "threads": torch.get_num_threads(), "frames": n, "steps": args.steps, "repeats": repeats,
                      "max_abs_diff_vs_node": max_diff}))


if __name__ == "__main__":
    main()
