"""Export TinyVLA-AR from train/checkpoint.pt to a vla-node model package: the vision encoder,
the instruction graph (the words' keys and values, made once per instruction), the prefill (the
observation, with the words' cache as past_key_values), the decoder (Optimum's decoder-with-past
signature), manifest.json and golden.json (PyTorch's greedy tokens for held-out observations,
which the TypeScript tests reproduce).

    /usr/bin/python3 models/tiny-vla-ar/train/export.py --out models/tiny-vla-ar --data models/tiny-vla-ar/train/data

--prefill full writes the earlier layout instead: no instruction graph, a prefill that takes
instruction_ids and recomputes the words every frame (the runtime runs both).
"""
import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import sys

import numpy as np
import torch

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from model import TinyVlaAr, export as export_decoder  # noqa: E402
from train import load, vision_encoder_class  # noqa: E402

OPSET = 17


class EncoderExport(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, pixels):
        tokens, logits = self.enc(pixels)
        return tokens, torch.sigmoid(logits)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def tensor(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--data", required=True, help="the dataset (held-out observations for golden.json)")
    p.add_argument("--prefill", choices=["cached", "full"], default="cached",
                   help="cached: instruction.onnx + a prefill with the words' cache as past (default); "
                        "full: one prefill that takes instruction_ids")
    args = p.parse_args()
    cached = args.prefill == "cached"
    ck = torch.load(os.path.join(args.out, "train", "checkpoint.pt"))
    cfg, meta, stats = ck["config"], ck["meta"], ck["stats"]
    vocab_words = len(json.load(open(os.path.join(args.out, "tokenizer.json")))["vocab"])
    gw, gh = meta["grid"]["width"], meta["grid"]["height"]
    enc = vision_encoder_class()(meta["image"]["width"], cfg["patch"], cfg["enc_dim"], cfg["enc_depth"], cfg["enc_heads"])
    enc.load_state_dict(ck["encoder"])
    model = TinyVlaAr(cfg["bins"], token_dim=cfg["enc_dim"], dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"],
                      words=vocab_words, max_len=meta["max_tokens"], state_dim=meta["state_dim"], grid_w=gw, grid_h=gh)
    model.load_state_dict(ck["decoder"])
    enc.eval()
    model.eval()
    img = meta["image"]
    torch.onnx.export(EncoderExport(enc), (torch.zeros(1, 3, img["height"], img["width"]),),
                      os.path.join(args.out, "vision_encoder.onnx"), opset_version=OPSET,
                      input_names=["pixels"], output_names=["visual_tokens", "saliency"],
                      dynamic_axes={"pixels": {0: "batch"}, "visual_tokens": {0: "batch"}, "saliency": {0: "batch"}})
    for stale in ["instruction.onnx"]:  # an earlier cached export must not linger in a full one
        if not cached and os.path.exists(os.path.join(args.out, stale)):
            os.remove(os.path.join(args.out, stale))
    diff = export_decoder(model, args.out, OPSET, instruction_graph=cached)
    # The two prefills are one computation split differently: they must agree to rounding.
    print(f"instruction + prefill with past vs the full prefill: max |difference| {diff:.3g}")
    if diff > 1e-4:
        raise SystemExit(f"the instruction graph's split changes the prefill by {diff}")

    # Golden: PyTorch's greedy tokens for a few held-out observations, all tokens kept.
    _, d = load(args.data)
    held = np.nonzero(d["episode"] >= int(meta["episodes"] * 0.95))[0][:: 97][:4]
    s_mean, s_std = np.array(stats["state_mean"], np.float32), np.array(stats["state_std"], np.float32)
    n = meta["horizon"] * meta["action_dim"]
    cases = []
    with torch.no_grad():
        for i in held:
            pixels = (torch.from_numpy(d["images"][i]).permute(2, 0, 1).float().div(255).unsqueeze(0) - 0.5) / 0.25
            vt, sal = enc(pixels)
            keep = torch.arange(vt.shape[1]).unsqueeze(0)
            ids = torch.from_numpy(d["tokens"][i]).unsqueeze(0)
            st = torch.from_numpy((d["states"][i] - s_mean) / s_std).unsqueeze(0)
            first, presents = model.prefill(vt, keep, ids, st)
            past = [(presents[2 * j], presents[2 * j + 1]) for j in range(model.depth)]
            p0 = presents[0].shape[2]
            mask = torch.cat([ids != 0, torch.ones(1, p0 - ids.shape[1], dtype=torch.bool)], 1).long()
            logits, tokens = first, []
            for step in range(n):
                tokens.append(int(logits[0, -1].argmax()))
                if step == n - 1:
                    break
                mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], 1)
                logits, pr = model.decode(torch.tensor([[tokens[-1]]]), mask, torch.tensor([[model.first_action + step]]), past)
                past = [(pr[2 * j], pr[2 * j + 1]) for j in range(model.depth)]
            cases.append({"image_rgb": d["images"][i].reshape(-1).tolist(), "instruction_ids": d["tokens"][i].tolist(),
                          "state": d["states"][i].tolist(), "tokens": tokens})
    json.dump({"cases": cases}, open(os.path.join(args.out, "golden.json"), "w"))

    f32, i64 = "float32", "int64"
    L, K, D = meta["max_tokens"], gw * gh, cfg["enc_dim"]
    kv = lambda prefix, length: [tensor(f"{prefix}.{j}.{kind}", f32, ["batch", cfg["heads"], length, cfg["dim"] // cfg["heads"]])
                                 for j in range(cfg["depth"]) for kind in ("key", "value")]
    roles = [("encoder", "vision_encoder.onnx"), *([("instruction", "instruction.onnx")] if cached else []),
             ("prefill", "prefill.onnx"), ("decoder", "decoder.onnx")]
    files = {role: {"path": f, "sha256": sha256(os.path.join(args.out, f))} for role, f in roles}
    logits = tensor("logits", f32, ["batch", 1, cfg["bins"]])
    if cached:
        graphs = {
            "instruction": {"inputs": [tensor("instruction_ids", i64, ["batch", L])], "outputs": kv("present", L)},
            "prefill": {"inputs": [tensor("visual_tokens", f32, ["batch", "tokens", D]),
                                   tensor("token_positions", i64, ["batch", "tokens"]),
                                   tensor("state", f32, ["batch", meta["state_dim"]]),
                                   tensor("attention_mask", i64, ["batch", "total_length"]),
                                   *kv("past_key_values", L)],
                        "outputs": [logits, *kv("present", "prefix_length")]},
        }
    else:
        graphs = {
            "prefill": {"inputs": [tensor("visual_tokens", f32, ["batch", "tokens", D]),
                                   tensor("token_positions", i64, ["batch", "tokens"]),
                                   tensor("instruction_ids", i64, ["batch", L]),
                                   tensor("state", f32, ["batch", meta["state_dim"]])],
                        "outputs": [logits, *kv("present", "prefix_length")]},
        }
    manifest = {
        "format": "vla-node/model@2",
        "family": "autoregressive",
        "name": "tiny-vla-ar",
        "description": "TinyVLA-AR: reaches named blocks on the built-in tabletop by decoding action tokens (trained by train/train.py)",
        "control_rate_hz": 10,
        "cameras": [{"name": "table", "encoder": "encoder",
                     "image": {"width": img["width"], "height": img["height"], "channels": 3, "layout": "NCHW",
                               "resize": "stretch", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
                     "patch_grid": {"width": gw, "height": gh, "patch_size": cfg["patch"]}}],
        "token_dim": D,
        "chunk": {"horizon": meta["horizon"], "action_dim": meta["action_dim"]},
        "action": {"names": ["x", "y"], "min": [0.0, 0.0], "max": [1.0, 1.0]},
        "state": {"names": ["x", "y"], "mean": stats["state_mean"], "std": stats["state_std"]},
        "tokenizer": {"file": "tokenizer.json", "max_length": L},
        "decoder": {"layers": cfg["depth"], "heads": cfg["heads"], "head_dim": cfg["dim"] // cfg["heads"],
                    "instruction_attention": "block-causal", "first_action_position": model.first_action},
        "action_tokenizer": {"kind": "uniform_bins", "bins": cfg["bins"], "token_offset": 0,
                             "relative_to": "state", "range": stats["delta_range"]},
        "graphs": {
            "encoder": {"inputs": [tensor("pixels", f32, ["batch", 3, img["height"], img["width"]])],
                        "outputs": [tensor("visual_tokens", f32, ["batch", K, D]), tensor("saliency", f32, ["batch", K])]},
            **graphs,
            "decoder": {"inputs": [tensor("input_ids", i64, ["batch", "sequence_length"]),
                                   tensor("attention_mask", i64, ["batch", "total_length"]),
                                   tensor("position_ids", i64, ["batch", "sequence_length"]),
                                   *kv("past_key_values", "past_length")],
                        "outputs": [tensor("logits", f32, ["batch", "sequence_length", cfg["bins"]]),
                                    *kv("present", "total_length")]},
        },
        "variants": [{"name": "fp32", "precision": "fp32", "files": files}],
        "training": ck["training"],
    }
    json.dump(manifest, open(os.path.join(args.out, "manifest.json"), "w"), indent=2)
    print("exported", args.out)


if __name__ == "__main__":
    main()
