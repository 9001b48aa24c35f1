"""Train TinyVLA-Flow on two-camera demonstrations recorded by the TypeScript simulator, then export.

    npx vla-node dataset --wrist --episodes 3000 --seed 7 --horizon 16 --size 64 --grid 8 \
        --model models/tiny-vla-flow --out models/tiny-vla-flow/train/data
    nice -n 19 /usr/bin/python3 models/tiny-vla-flow/train/train.py \
        --data models/tiny-vla-flow/train/data --out models/tiny-vla-flow --minutes 50

Flow matching with t = 0 at noise and t = 1 at the actions: x_t = (1 - t) * noise + t * actions.
The expert predicts the clean chunk and its loss is the squared error of that prediction (the
velocity it returns is derived from it, model.ActionExpert). Each observation's prefix is computed
once per batch and reused for several (noise, t) draws, as at inference where one prefix serves
every denoising step. Visual tokens are randomly dropped per camera (as for tiny-vla) so the model
tolerates pruning.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch

from export import export_package
from model import ActionExpert, PrefixTransformer, VisionEncoder

CONFIG = dict(patch=8, enc_dim=64, enc_depth=2, enc_heads=4, dim=64, depth=3, heads=4, draws=2)


def load(data_dir):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    if meta.get("cameras") != ["table", "wrist"]:
        raise SystemExit("expected a two-camera dataset (vla-node dataset --wrist)")
    n, img, h = meta["samples"], meta["image"], meta["horizon"]
    f = lambda key, dtype: np.fromfile(os.path.join(data_dir, meta["files"][key]), dtype=dtype)
    grid = meta["grid"]["width"] * meta["grid"]["height"]
    shape = (n, img["height"], img["width"], 3)
    return meta, dict(
        images=f("images", np.uint8).reshape(shape),
        images_wrist=f("images_wrist", np.uint8).reshape(shape),
        states=f("states", "<f4").reshape(n, meta["state_dim"]),
        actions=f("actions", "<f4").reshape(n, h, meta["action_dim"]),
        tokens=f("tokens", "<i4").reshape(n, meta["max_tokens"]).astype(np.int64),
        saliency=f("saliency", np.uint8).reshape(n, grid),
        saliency_wrist=f("saliency_wrist", np.uint8).reshape(n, grid),
        episode=f("episode", "<i4"),
    )


def keep_positions(mask, n, gen):
    """Which visual tokens (over both cameras, camera c's patch p at c * n + p) the prefix sees for
    this batch: all, a random subset per camera, or one biased to object patches. One count per
    batch (static shapes)."""
    b = mask.shape[0]
    mode = torch.rand(1, generator=gen).item()
    if mode < 0.4:
        return torch.arange(2 * n).expand(b, -1)
    k = max(4, int(round((0.1 + 0.9 * torch.rand(1, generator=gen).item()) * n)))
    score = torch.rand(b, 2 * n, generator=gen)
    if mode >= 0.7:
        score = score + mask.float()
    parts = [torch.topk(score[:, c * n:(c + 1) * n], k, dim=1).indices.sort(dim=1).values + c * n for c in range(2)]
    return torch.cat(parts, dim=1)


def build(meta, vocab, s_mean, s_std, a_mean, a_std, config=CONFIG):
    grid = meta["grid"]
    enc = VisionEncoder(meta["image"]["width"], config["patch"], config["enc_dim"], config["enc_depth"],
                        config["enc_heads"])
    prefix = PrefixTransformer(grid["width"], grid["height"], 2, meta["wrist_span"], config["enc_dim"],
                               config["dim"], config["depth"], config["heads"], vocab, meta["max_tokens"],
                               meta["state_dim"], torch.tensor(s_mean), torch.tensor(s_std))
    expert = ActionExpert(config["dim"], config["depth"], config["heads"], meta["horizon"], meta["action_dim"],
                          meta["state_dim"], torch.tensor(s_std / a_std), torch.tensor((s_mean - a_mean) / a_std))
    return enc, prefix, expert


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=50.0, help="wall-clock training budget")
    p.add_argument("--epochs", type=int, default=100, help="upper bound; the time budget usually ends first")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads; on a shared CPU one thread is many times faster than two (no OpenMP spin-waiting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--init", help="continue from this checkpoint.pt (same config and dataset statistics)")
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

    n = meta["grid"]["width"] * meta["grid"]["height"]
    enc, prefix, expert = build(meta, len(tokenizer["vocab"]), s_mean, s_std, a_mean, a_std)
    previous = None
    if args.init:
        previous = torch.load(args.init, map_location="cpu")
        st = previous["stats"]
        s_mean, s_std = np.array(st["state_mean"], np.float32), np.array(st["state_std"], np.float32)
        a_mean, a_std = np.array(st["action_mean"], np.float32), np.array(st["action_std"], np.float32)
        enc, prefix, expert = build(meta, len(tokenizer["vocab"]), s_mean, s_std, a_mean, a_std, previous["config"])
        for key, m in (("encoder", enc), ("prefix", prefix), ("expert", expert)):
            m.load_state_dict(previous[key])
        print(f"continuing from {args.init} ({previous.get('training', {})})", flush=True)
    dev = torch.device(args.device)
    for m in (enc, prefix, expert):
        m.to(dev)
    params = list(enc.parameters()) + list(prefix.parameters()) + list(expert.parameters())
    print("parameters: " + ", ".join(f"{k} {sum(p.numel() for p in m.parameters())}"
                                      for k, m in (("encoder", enc), ("prefix", prefix), ("expert", expert))),
          flush=True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    t_mean, t_std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def pix(key, idx):
        img = torch.from_numpy(d[key][idx]).permute(0, 3, 1, 2).float().div_(255)
        return (img - t_mean) / t_std

    def step_loss(idx, train: bool, t_fixed=None):
        b = len(idx)
        pixels = torch.cat([pix("images", idx), pix("images_wrist", idx)]).to(dev)
        sal = torch.cat([torch.from_numpy(d["saliency"][idx]), torch.from_numpy(d["saliency_wrist"][idx])], dim=1)
        state = torch.from_numpy((d["states"][idx] - s_mean) / s_std).to(dev)
        ids = torch.from_numpy(d["tokens"][idx]).to(dev)
        target = torch.from_numpy((d["actions"][idx] - a_mean) / a_std).to(dev)
        tokens, logits = enc(pixels)
        tokens = torch.cat([tokens[:b], tokens[b:]], dim=1)  # [B, 2N, D]: table then wrist
        logits = torch.cat([logits[:b], logits[b:]], dim=1)
        keep = (keep_positions(sal, n, gen) if train else torch.arange(2 * n).expand(b, -1)).to(dev)
        vis = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[2]))
        ik, iv = prefix.instruction(ids)
        fk, fv = prefix.frame(vis, keep, state, ik, iv)
        r = CONFIG["draws"] if train else 1
        rep = lambda x: x.repeat_interleave(r, dim=0)
        kv = [[(rep(ik[i]), rep(iv[i])), (rep(fk[i]), rep(fv[i]))] for i in range(len(ik))]
        a = rep(target)
        noise = torch.randn(a.shape, generator=gen).to(dev)
        if t_fixed is None:
            # More weight on the noisy end, where the expert must read the prefix the most.
            t = 0.95 * (1 - torch.sqrt(torch.rand(a.shape[0], generator=gen)))
        else:
            t = torch.full((a.shape[0],), t_fixed)
        t = t.to(dev)
        x_t = (1 - t.view(-1, 1, 1)) * noise + t.view(-1, 1, 1) * a
        a_hat = expert.denoise(x_t, t, rep(state), kv)
        action_loss = torch.mean((a_hat - a) ** 2)
        sal_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, sal.float().to(dev))
        return action_loss, sal_loss

    deadline = time.time() + args.minutes * 60
    steps_per_epoch = len(train_idx) // args.batch
    total_steps = steps_per_epoch * args.epochs
    start = time.time()
    step = 0
    modules = (enc, prefix, expert)

    def probe():
        for m in modules:
            m.eval()
        with torch.no_grad():
            out = [step_loss(val_idx[j:j + 128], False, 0.0)[0].item() for j in range(0, min(512, len(val_idx)), 128)]
        for m in modules:
            m.train()
        return float(np.mean(out))

    for epoch in range(args.epochs):
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        run_a = run_s = 0.0
        for i in range(steps_per_epoch):
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
            if step % 200 == 0 or step == 20:
                print(f"epoch {epoch} step {step} train action {run_a / (i + 1):.4f} saliency {run_s / (i + 1):.4f} "
                      f"held-out one-step action mse {probe():.4f} {time.time() - start:.0f}s", flush=True)
            if time.time() > deadline:
                break
        print(f"epoch {epoch} done: held-out one-step action mse {probe():.4f}", flush=True)
        if time.time() > deadline:
            break

    for m in modules:
        m.cpu().eval()
    os.makedirs(os.path.join(args.out, "train"), exist_ok=True)
    stats = dict(image_mean=mean.tolist(), image_std=std.tolist(), state_mean=s_mean.tolist(),
                 state_std=s_std.tolist(), action_mean=a_mean.tolist(), action_std=a_std.tolist())
    training = dict(samples=int(meta["samples"]), episodes=int(meta["episodes"]), dataset_seed=int(meta["seed"]),
                    minutes=round((time.time() - start) / 60, 1), epochs=epoch + 1, steps=step,
                    threads=args.threads, torch=torch.__version__)
    if previous is not None:
        # A continued run reports the whole training: this run's figures plus the earlier ones.
        before = previous.get("training", {})
        for key in ("minutes", "epochs", "steps"):
            training[key] = round(training[key] + before.get(key, 0), 1)
        training["runs"] = before.get("runs", 1) + 1
    torch.save({"encoder": enc.state_dict(), "prefix": prefix.state_dict(), "expert": expert.state_dict(),
                "config": CONFIG, "meta": meta, "stats": stats, "vocab": len(tokenizer["vocab"]),
                "training": training},
               os.path.join(args.out, "train", "checkpoint.pt"))
    export_package(args.out, enc, prefix, expert, meta, CONFIG, stats, d, val_idx[0] if len(val_idx) else 0,
                   training=training)


if __name__ == "__main__":
    main()
