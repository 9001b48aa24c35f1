"""Generate a realistic-scale model package with random weights, for latency measurements only.

    /usr/bin/python3 models/tiny-vla/train/make_realistic.py --out models/realistic-vla

Same architecture family as tiny-vla (TinyVLA's vision encoder and policy), at the size of a small
real VLA: a 128x128 image on a 16x16 patch grid (256 visual tokens), width 512, 5 encoder and 5
policy blocks (about 21M parameters). The weights are random: the package drives the simulator
badly, but its latencies are those of a model of this size. It is not committed (about 85 MB);
tiny-vla's tokenizer is reused. checkpoint.pt holds the same weights for PyTorch.
"""
import argparse
import json
import os
import shutil

import torch

from export import export_graphs, manifest_for
from model import Policy, VisionEncoder


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="models/realistic-vla")
    p.add_argument("--image", type=int, default=128)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--enc-depth", type=int, default=5)
    p.add_argument("--pol-depth", type=int, default=5)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(args.out, exist_ok=True)
    shutil.copy(os.path.join(here, "..", "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    tokenizer = json.load(open(os.path.join(args.out, "tokenizer.json")))
    grid = args.image // args.patch
    config = dict(patch=args.patch, enc_dim=args.dim, enc_depth=args.enc_depth, enc_heads=args.heads,
                  pol_dim=args.dim, pol_depth=args.pol_depth, pol_heads=args.heads)
    mean, std = torch.tensor([0.5, 0.5]), torch.tensor([0.29, 0.29])
    enc = VisionEncoder(args.image, args.patch, args.dim, args.enc_depth, args.heads).eval()
    pol = Policy(grid, grid, args.dim, args.dim, args.pol_depth, args.heads, len(tokenizer["vocab"]),
                 tokenizer["max_length"], 2, args.horizon, 2, mean, std, torch.ones(2), torch.zeros(2)).eval()
    params = sum(t.numel() for t in enc.parameters()) + sum(t.numel() for t in pol.parameters())
    meta = dict(image=dict(width=args.image, height=args.image), grid=dict(width=grid, height=grid),
                horizon=args.horizon, action_dim=2, state_dim=2, max_tokens=tokenizer["max_length"])
    export_graphs(args.out, enc, pol, meta, config)
    # The same random weights for the performance report's PyTorch reference (bench_torch.py).
    torch.save({"encoder": enc.state_dict(), "policy": pol.state_dict(), "config": config},
               os.path.join(args.out, "checkpoint.pt"))
    stats = dict(image_mean=[0.5] * 3, image_std=[0.25] * 3, state_mean=mean.tolist(), state_std=std.tolist(),
                 action_mean=mean.tolist(), action_std=std.tolist())
    manifest = manifest_for(args.out, meta, config, stats, dict(random_weights=True, parameters=params),
                            name="realistic-vla")
    manifest["description"] = f"Random weights, {params / 1e6:.1f}M parameters, {grid * grid} visual tokens: for latency only"
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}: {params / 1e6:.1f}M parameters, {grid * grid} visual tokens", flush=True)


if __name__ == "__main__":
    main()
