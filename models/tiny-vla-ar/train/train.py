"""Train TinyVLA-AR (vision encoder + autoregressive action decoder) on simulator demonstrations.

    npx vla-node dataset --episodes 3000 --seed 7 --horizon 16 --grid 8 --size 64 \\
        --out models/tiny-vla-ar/train/data
    /usr/bin/python3 models/tiny-vla-ar/train/train.py --data models/tiny-vla-ar/train/data \\
        --out models/tiny-vla-ar --minutes 40

Actions are decoded as tokens: each chunk is expressed relative to the current state (the motion
still to make, as pi0-FAST's delta actions), scaled to [-1, 1] by a per-dimension range from the
data, and tokenised by OpenVLA's 256 uniform bins, horizon x action_dim tokens per chunk. The
decoder is trained by teacher forcing; the visual tokens are randomly dropped (as tiny-vla) so it
tolerates pruning.
"""
import argparse
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from model import TinyVlaAr  # noqa: E402  (this folder first on sys.path)
from action_tokenizers import UniformBins  # noqa: E402

CONFIG = dict(patch=8, enc_dim=64, enc_depth=2, enc_heads=4, dim=64, depth=3, heads=4, bins=256)


def vision_encoder_class():
    import importlib.util
    spec = importlib.util.spec_from_file_location("tiny_vla_model", here.parents[1] / "tiny-vla" / "train" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.VisionEncoder


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


def keep_indices(mask, gen):
    """All tokens, a random subset, or a subset biased to object patches (one count per batch)."""
    b, n = mask.shape
    mode = torch.rand(1, generator=gen).item()
    if mode < 0.35:
        return torch.arange(n).expand(b, n)
    k = max(4, int(round((0.08 + 0.92 * torch.rand(1, generator=gen).item()) * n)))
    score = torch.rand(b, n, generator=gen)
    if mode >= 0.7:
        score = score + mask.float()
    return torch.topk(score, k, dim=1).indices.sort(dim=1).values


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=40.0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--init", help="continue from this recipe's checkpoint.pt (same config and dataset statistics)")
    p.add_argument("--init-encoder", help="start the vision encoder from another recipe's checkpoint.pt that "
                   "has an 'encoder' of the same shape (for example models/tiny-vla-flow/train/checkpoint.pt): "
                   "a pretrained vision backbone, as OpenVLA starts from SigLIP and DINOv2")
    p.add_argument("--label-sigma", type=float, default=1.5,
                   help="width in bins of the Gaussian soft target around the true bin (0: one-hot)")
    p.add_argument("--early-weight", type=float, default=4.0,
                   help="extra loss weight of the chunk's first steps, decaying over two steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    meta, d = load(args.data)
    vocab_words = len(json.load(open(os.path.join(args.out, "tokenizer.json")))["vocab"])
    s_mean, s_std = d["states"].mean(0), d["states"].std(0) + 1e-6
    delta = d["actions"] - d["states"][:, None, :]
    # The range that maps the motion still to make onto [-1, 1]: the 99.9th percentile per
    # dimension, so one bin is ~1/128 of the largest usual motion.
    delta_range = np.percentile(np.abs(delta).reshape(-1, meta["action_dim"]), 99.9, axis=0).astype(np.float32)
    bins = UniformBins(meta["horizon"], meta["action_dim"], CONFIG["bins"])
    targets = np.stack([bins.encode(x) for x in np.clip(delta / delta_range, -1, 1)]).astype(np.int64)
    held_out = d["episode"] >= int(meta["episodes"] * 0.95)
    train_idx, val_idx = np.nonzero(~held_out)[0], np.nonzero(held_out)[0]
    print(f"{meta['samples']} samples: {len(train_idx)} train, {len(val_idx)} held out; delta range {delta_range}", flush=True)

    grid_w, grid_h = meta["grid"]["width"], meta["grid"]["height"]
    enc = vision_encoder_class()(meta["image"]["width"], CONFIG["patch"], CONFIG["enc_dim"], CONFIG["enc_depth"],
                                 CONFIG["enc_heads"])
    model = TinyVlaAr(CONFIG["bins"], token_dim=CONFIG["enc_dim"], dim=CONFIG["dim"], depth=CONFIG["depth"],
                      heads=CONFIG["heads"], words=vocab_words, max_len=meta["max_tokens"],
                      state_dim=meta["state_dim"], grid_w=grid_w, grid_h=grid_h,
                      state_mean=torch.tensor(s_mean), state_std=torch.tensor(s_std))
    if args.init:
        previous = torch.load(args.init, map_location="cpu", weights_only=False)
        enc.load_state_dict(previous["encoder"])
        model.load_state_dict(previous["decoder"])
        # The bins must mean what they meant for the checkpoint: its delta range, not this data's.
        delta_range = np.asarray(previous["stats"]["delta_range"], dtype=np.float32)
        targets = np.stack([bins.encode(x) for x in np.clip(delta / delta_range, -1, 1)]).astype(np.int64)
        print(f"continuing from {args.init} ({previous.get('training', {})})", flush=True)
    elif args.init_encoder:
        weights = torch.load(args.init_encoder, map_location="cpu", weights_only=False)["encoder"]
        # tiny-vla-flow's encoder is the same network with its MLP one module deeper ("mlp.net.0").
        enc.load_state_dict({k.replace(".mlp.net.", ".mlp."): v for k, v in weights.items()})
        print(f"vision encoder from {args.init_encoder}", flush=True)
    dev = torch.device(args.device)
    enc.to(dev)
    model.to(dev)
    params = list(enc.parameters()) + list(model.parameters())
    print(f"parameters: encoder {sum(p.numel() for p in enc.parameters())}, "
          f"decoder {sum(p.numel() for p in model.parameters())}", flush=True)
    # A pretrained encoder is fine-tuned gently: the decoder's first, random gradients must not wash
    # out what it already sees.
    enc_scale = 0.2 if args.init_encoder and not args.init else 1.0
    opt = torch.optim.AdamW([dict(params=list(enc.parameters()), scale=enc_scale),
                             dict(params=list(model.parameters()), scale=1.0)], lr=args.lr, weight_decay=0.01)
    # Teacher forcing lets later tokens be guessed from earlier ones (a chunk is nearly a straight
    # line), so a plain cross-entropy is mostly earned by copying and the first tokens, the ones only
    # the observation can tell, stay weak: the first run decoded the same chunk for every image. The
    # first steps weigh more, and a soft target over neighbouring bins makes a near miss cheaper than
    # a far one, which one-hot bins do not say.
    n_tok = meta["horizon"] * meta["action_dim"]
    step_of = torch.arange(n_tok) // meta["action_dim"]
    token_weight = 1.0 + args.early_weight * torch.exp(-step_of.float() / 2.0)
    token_weight = (token_weight / token_weight.mean()).to(dev)
    bin_ids = torch.arange(CONFIG["bins"], dtype=torch.float32, device=dev)

    def chunk_loss(logits, target):
        logp = F.log_softmax(logits, dim=-1)
        if args.label_sigma > 0:
            soft = torch.exp(-0.5 * ((bin_ids - target.unsqueeze(-1).float()) / args.label_sigma) ** 2)
            per_token = -(soft / soft.sum(-1, keepdim=True) * logp).sum(-1)
        else:
            per_token = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return (per_token * token_weight).mean()

    t_mean = torch.full((1, 3, 1, 1), 0.5)
    t_std = torch.full((1, 3, 1, 1), 0.25)

    def step_loss(idx, train):
        img = torch.from_numpy(d["images"][idx]).permute(0, 3, 1, 2).float().div_(255)
        pixels = ((img - t_mean) / t_std).to(dev)
        state = torch.from_numpy((d["states"][idx] - s_mean) / s_std).to(dev)
        words = torch.from_numpy(d["tokens"][idx]).to(dev)
        target = torch.from_numpy(targets[idx]).to(dev)
        sal = torch.from_numpy(d["saliency"][idx])
        tokens_all, sal_logits = enc(pixels)
        keep = (keep_indices(sal, gen) if train else torch.arange(tokens_all.shape[1]).expand(len(idx), -1)).to(dev)
        vis = torch.gather(tokens_all, 1, keep.unsqueeze(-1).expand(-1, -1, tokens_all.shape[2]))
        inputs = None
        if train:
            # The decoder must cope with its own small mistakes (exposure bias): some input tokens
            # are moved by up to two bins, the targets stay true.
            inputs = target[:, :-1].clone()
            noisy = torch.rand(inputs.shape, generator=gen) < 0.25
            shift = torch.randint(-2, 3, inputs.shape, generator=gen)
            inputs = torch.where(noisy.to(dev), (inputs + shift.to(dev)).clamp(0, CONFIG["bins"] - 1), inputs)
        logits = model.teacher_forced(vis, keep, words, state, target, inputs)
        ce = chunk_loss(logits, target)
        acc = (logits.argmax(-1) == target).float().mean()
        # The first step's tokens within two bins: what the observation alone must decide.
        first = ((logits[:, :meta["action_dim"]].argmax(-1) - target[:, :meta["action_dim"]]).abs() <= 2).float().mean()
        return ce, F.binary_cross_entropy_with_logits(sal_logits, sal.float().to(dev)), acc, first

    deadline = time.time() + args.minutes * 60
    steps_per_epoch = len(train_idx) // args.batch
    start, step, epoch = time.time(), 0, 0
    for epoch in range(args.epochs):
        enc.train()
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        for i in range(steps_per_epoch):
            frac = min(1.0, (time.time() - start) / (args.minutes * 60))
            warm = min(1.0, (step + 1) / args.warmup)
            for g in opt.param_groups:
                g["lr"] = g["scale"] * args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            ce, sal_loss, acc, _ = step_loss(perm[i * args.batch:(i + 1) * args.batch], True)
            opt.zero_grad()
            (ce + 0.1 * sal_loss).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % 200 == 0:
                print(f"epoch {epoch} step {step} ce {ce.item():.3f} token acc {acc.item():.3f} "
                      f"{time.time() - start:.0f}s", flush=True)
            if time.time() > deadline:
                break
        enc.eval()
        model.eval()
        with torch.no_grad():
            va = [step_loss(val_idx[j:j + 256], False) for j in range(0, min(len(val_idx), 2048), 256)]
        print(f"epoch {epoch} held-out ce {np.mean([v[0].item() for v in va]):.3f} "
              f"token acc {np.mean([v[2].item() for v in va]):.3f} first step within 2 bins "
              f"{np.mean([v[3].item() for v in va]):.3f}", flush=True)
        if time.time() > deadline:
            break

    enc.cpu().eval()
    model.cpu().eval()
    # A fresh --out has no train/ folder yet: an hour of training must not end in a failed save.
    os.makedirs(os.path.join(args.out, "train"), exist_ok=True)
    torch.save({"encoder": enc.state_dict(), "decoder": model.state_dict(), "config": CONFIG, "meta": meta,
                "stats": dict(state_mean=s_mean.tolist(), state_std=s_std.tolist(), delta_range=delta_range.tolist()),
                "training": dict(samples=int(meta["samples"]), episodes=int(meta["episodes"]),
                                 minutes=round((time.time() - start) / 60, 1), epochs=epoch + 1, steps=step,
                                 torch=torch.__version__)},
               os.path.join(args.out, "train", "checkpoint.pt"))
    print("saved", os.path.join(args.out, "train", "checkpoint.pt"), flush=True)


if __name__ == "__main__":
    main()
