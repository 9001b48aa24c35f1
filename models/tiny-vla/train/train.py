"""Train TinyVLA on demonstrations recorded by the TypeScript simulator, then export ONNX.

    npx vla-node dataset --episodes 2400 --seed 7 --out models/tiny-vla/train/data
    /usr/bin/python3 models/tiny-vla/train/train.py --data models/tiny-vla/train/data \
        --out models/tiny-vla --minutes 40

The visual tokens given to the policy are randomly dropped during training (uniformly random
subsets, and subsets biased towards patches that show objects) so the policy tolerates pruning.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from export import export_package
from model import Policy, VisionEncoder

CONFIG = dict(patch=8, enc_dim=64, enc_depth=2, enc_heads=4, pol_dim=64, pol_depth=2, pol_heads=4)


def load(data_dir):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    n, img, h = meta["samples"], meta["image"], meta["horizon"]
    f = lambda key, dtype: np.fromfile(os.path.join(data_dir, meta["files"][key]), dtype=dtype)
    grid = meta["grid"]["width"] * meta["grid"]["height"]
    return meta, dict(
        images=f("images", np.uint8).reshape(n, img["height"], img["width"], 3),
        states=f("states", "<f4").reshape(n, meta["state_dim"]),
        actions=f("actions", "<f4").reshape(n, h, meta["action_dim"]),
        tokens=f("tokens", "<i4").reshape(n, meta["max_tokens"]).astype(np.int64),
        saliency=f("saliency", np.uint8).reshape(n, grid),
        episode=f("episode", "<i4"),
    )


def keep_indices(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Choose which visual tokens the policy sees for this batch: all of them, a random subset, or a
    subset biased to object patches. One count per batch (static shapes), sorted grid order."""
    b, n = mask.shape
    mode = torch.rand(1, generator=gen).item()
    if mode < 0.35:
        return torch.arange(n).expand(b, n)
    ratio = 0.08 + 0.92 * torch.rand(1, generator=gen).item()
    k = max(4, int(round(ratio * n)))
    score = torch.rand(b, n, generator=gen)
    if mode >= 0.7:
        score = score + mask.float()
    return torch.topk(score, k, dim=1).indices.sort(dim=1).values


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=40.0, help="wall-clock training budget")
    p.add_argument("--epochs", type=int, default=100, help="upper bound; the time budget usually ends first")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup", type=int, default=300, help="linear learning-rate warm-up steps")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    meta, d = load(args.data)
    tokenizer = json.load(open(os.path.join(args.out, "tokenizer.json")))
    mean = np.array([0.5, 0.5, 0.5], np.float32)
    std = np.array([0.25, 0.25, 0.25], np.float32)
    s_mean, s_std = d["states"].mean(0), d["states"].std(0) + 1e-6
    flat = d["actions"].reshape(-1, meta["action_dim"])
    a_mean, a_std = flat.mean(0), flat.std(0) + 1e-6

    held_out = d["episode"] >= int(meta["episodes"] * 0.95)
    train_idx, val_idx = np.nonzero(~held_out)[0], np.nonzero(held_out)[0]
    print(f"{meta['samples']} samples: {len(train_idx)} train, {len(val_idx)} held out", flush=True)

    grid_w, grid_h = meta["grid"]["width"], meta["grid"]["height"]
    enc = VisionEncoder(meta["image"]["width"], CONFIG["patch"], CONFIG["enc_dim"], CONFIG["enc_depth"],
                        CONFIG["enc_heads"])
    pol = Policy(grid_w, grid_h, CONFIG["enc_dim"], CONFIG["pol_dim"], CONFIG["pol_depth"], CONFIG["pol_heads"],
                 len(tokenizer["vocab"]), meta["max_tokens"], meta["state_dim"], meta["horizon"],
                 meta["action_dim"], torch.tensor(s_mean), torch.tensor(s_std),
                 torch.tensor(s_std / a_std), torch.tensor((s_mean - a_mean) / a_std))
    dev = torch.device(args.device)
    enc.to(dev)
    pol.to(dev)
    params = list(enc.parameters()) + list(pol.parameters())
    print(f"parameters: encoder {sum(p.numel() for p in enc.parameters())}, "
          f"policy {sum(p.numel() for p in pol.parameters())}", flush=True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    t_mean, t_std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def batch(idx):
        img = torch.from_numpy(d["images"][idx]).permute(0, 3, 1, 2).float().div_(255)
        return (((img - t_mean) / t_std).to(dev),
                torch.from_numpy((d["states"][idx] - s_mean) / s_std).to(dev),
                torch.from_numpy(d["tokens"][idx]).to(dev),
                torch.from_numpy((d["actions"][idx] - a_mean) / a_std).to(dev),
                torch.from_numpy(d["saliency"][idx]))

    def step_loss(idx, train: bool):
        pixels, state, tokens, target, sal = batch(idx)
        tokens_all, sal_logits = enc(pixels)
        keep = keep_indices(sal, gen) if train else torch.arange(tokens_all.shape[1]).expand(len(idx), -1)
        keep = keep.to(dev)
        vis = torch.gather(tokens_all, 1, keep.unsqueeze(-1).expand(-1, -1, tokens_all.shape[2]))
        pred = pol(vis, keep, tokens, state)
        action_loss = F.mse_loss(pred, target)
        sal_loss = F.binary_cross_entropy_with_logits(sal_logits, sal.float().to(dev))
        return action_loss, sal_loss

    deadline = time.time() + args.minutes * 60
    steps_per_epoch = len(train_idx) // args.batch
    total_steps = steps_per_epoch * args.epochs
    start = time.time()
    step = 0
    est_total = None
    for epoch in range(args.epochs):
        enc.train()
        pol.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        run_a = run_s = 0.0
        for i in range(steps_per_epoch):
            # Cosine schedule over the time budget (or the epoch bound if it comes first).
            frac = min(1.0, max(step / total_steps, (time.time() - start) / (args.minutes * 60)))
            warm = min(1.0, (step + 1) / args.warmup)
            for g in opt.param_groups:
                g["lr"] = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            a_loss, s_loss = step_loss(perm[i * args.batch:(i + 1) * args.batch], True)
            loss = a_loss + 0.1 * s_loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            run_a += a_loss.item()
            run_s += s_loss.item()
            step += 1
            if step % 250 == 0:
                enc.eval()
                pol.eval()
                with torch.no_grad():
                    probe = [step_loss(val_idx[j:j + 256], False)[0].item() for j in range(0, min(1024, len(val_idx)), 256)]
                enc.train()
                pol.train()
                print(f"epoch {epoch} step {step} train action {run_a / (i + 1):.4f} saliency {run_s / (i + 1):.4f} "
                      f"held-out action {np.mean(probe):.4f} {time.time() - start:.0f}s", flush=True)
            if time.time() > deadline:
                break
        enc.eval()
        pol.eval()
        with torch.no_grad():
            va = [step_loss(val_idx[j:j + 256], False) for j in range(0, len(val_idx), 256)]
        print(f"epoch {epoch} held-out action mse {np.mean([a.item() for a, _ in va]):.4f} "
              f"saliency bce {np.mean([s.item() for _, s in va]):.4f}", flush=True)
        if time.time() > deadline:
            break

    enc.cpu().eval()
    pol.cpu().eval()
    # The PyTorch weights the ONNX graphs are exported from: the performance report's PyTorch
    # reference (bench_torch.py) runs them, and fine-tuning starts from them.
    os.makedirs(os.path.join(args.out, "train"), exist_ok=True)
    torch.save({"encoder": enc.state_dict(), "policy": pol.state_dict(), "config": CONFIG},
               os.path.join(args.out, "train", "checkpoint.pt"))
    export_package(args.out, enc, pol, meta, CONFIG, dict(
        image_mean=mean.tolist(), image_std=std.tolist(), state_mean=s_mean.tolist(), state_std=s_std.tolist(),
        action_mean=a_mean.tolist(), action_std=a_std.tolist()), d, val_idx[0] if len(val_idx) else 0,
        training=dict(samples=int(meta["samples"]), episodes=int(meta["episodes"]), dataset_seed=int(meta["seed"]),
                      minutes=round((time.time() - start) / 60, 1), epochs=epoch + 1, steps=step,
                      torch=torch.__version__))


if __name__ == "__main__":
    main()
