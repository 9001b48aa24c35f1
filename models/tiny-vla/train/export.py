"""Export TinyVLA to the vla-node model package format: two ONNX graphs, manifest.json and a golden
fixture (inputs and outputs from PyTorch) that the TypeScript tests compare ONNX Runtime against."""
import hashlib
import json
import os

import numpy as np
import torch

OPSET = 17


class EncoderExport(torch.nn.Module):
    """The exported encoder returns saliency as a probability in [0, 1]."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, pixels):
        tokens, logits = self.enc(pixels)
        return tokens, torch.sigmoid(logits)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_graphs(out_dir, enc, pol, meta, config, encoder_file="vision_encoder.onnx", policy_file="policy.onnx"):
    img, grid = meta["image"], meta["grid"]
    n_tokens = grid["width"] * grid["height"]
    pixels = torch.zeros(1, 3, img["height"], img["width"])
    torch.onnx.export(EncoderExport(enc), (pixels,), os.path.join(out_dir, encoder_file), opset_version=OPSET,
                      input_names=["pixels"], output_names=["visual_tokens", "saliency"],
                      dynamic_axes={"pixels": {0: "batch"}, "visual_tokens": {0: "batch"}, "saliency": {0: "batch"}})
    k = n_tokens // 2
    args = (torch.zeros(1, k, config["enc_dim"]), torch.arange(k).unsqueeze(0),
            torch.zeros(1, meta["max_tokens"], dtype=torch.long), torch.zeros(1, meta["state_dim"]))
    torch.onnx.export(pol, args, os.path.join(out_dir, policy_file), opset_version=OPSET,
                      input_names=["visual_tokens", "token_positions", "instruction_ids", "state"],
                      output_names=["actions"],
                      dynamic_axes={"visual_tokens": {0: "batch", 1: "tokens"},
                                    "token_positions": {0: "batch", 1: "tokens"},
                                    "instruction_ids": {0: "batch"}, "state": {0: "batch"},
                                    "actions": {0: "batch"}})


def manifest_for(out_dir, meta, config, stats, training, name="tiny-vla", control_rate_hz=10,
                 encoder_file="vision_encoder.onnx", policy_file="policy.onnx"):
    img, grid = meta["image"], meta["grid"]
    n_tokens = grid["width"] * grid["height"]
    d, h, a, s, L = config["enc_dim"], meta["horizon"], meta["action_dim"], meta["state_dim"], meta["max_tokens"]
    f32 = "float32"
    return {
        "format": "vla-node/model@1",
        "name": name,
        "description": "TinyVLA: reaches named blocks on the built-in 2D tabletop (trained by train/train.py)",
        "control_rate_hz": control_rate_hz,
        "image": {"width": img["width"], "height": img["height"], "channels": 3, "layout": "NCHW",
                  "resize": "stretch", "mean": stats["image_mean"], "std": stats["image_std"]},
        "patch_grid": {"width": grid["width"], "height": grid["height"], "patch_size": config["patch"]},
        "token_dim": d,
        "chunk": {"horizon": h, "action_dim": a},
        "action": {"names": ["x", "y"], "mean": stats["action_mean"], "std": stats["action_std"],
                   "min": [0.0] * a, "max": [1.0] * a},
        "state": {"names": ["x", "y"], "mean": stats["state_mean"], "std": stats["state_std"]},
        "tokenizer": {"file": "tokenizer.json", "max_length": L},
        "graphs": {
            "encoder": {
                "inputs": [{"name": "pixels", "dtype": f32, "shape": ["batch", 3, img["height"], img["width"]]}],
                "outputs": [{"name": "visual_tokens", "dtype": f32, "shape": ["batch", n_tokens, d]},
                            {"name": "saliency", "dtype": f32, "shape": ["batch", n_tokens]}],
            },
            "policy": {
                "inputs": [{"name": "visual_tokens", "dtype": f32, "shape": ["batch", "tokens", d]},
                           {"name": "token_positions", "dtype": "int64", "shape": ["batch", "tokens"]},
                           {"name": "instruction_ids", "dtype": "int64", "shape": ["batch", L]},
                           {"name": "state", "dtype": f32, "shape": ["batch", s]}],
                "outputs": [{"name": "actions", "dtype": f32, "shape": ["batch", h, a]}],
            },
        },
        "variants": [{
            "name": "fp32", "precision": "fp32",
            "files": {"encoder": {"path": encoder_file, "sha256": sha256(os.path.join(out_dir, encoder_file))},
                      "policy": {"path": policy_file, "sha256": sha256(os.path.join(out_dir, policy_file))}},
        }],
        "training": training,
    }


def export_package(out_dir, enc, pol, meta, config, stats, data, golden_index, training):
    export_graphs(out_dir, enc, pol, meta, config)
    manifest = manifest_for(out_dir, meta, config, stats, training)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    # Golden fixture: the first observation of a held-out episode, run through PyTorch.
    i = int(golden_index)
    ep = int(data["episode"][i])
    first = int(np.nonzero(data["episode"] == ep)[0][0])
    img = torch.from_numpy(data["images"][first]).permute(2, 0, 1).float().div(255).unsqueeze(0)
    pixels = (img - torch.tensor(stats["image_mean"]).view(1, 3, 1, 1)) / torch.tensor(stats["image_std"]).view(1, 3, 1, 1)
    state = (data["states"][first] - np.array(stats["state_mean"])) / np.array(stats["state_std"])
    with torch.no_grad():
        tokens, sal = EncoderExport(enc)(pixels)
        pos = torch.arange(tokens.shape[1]).unsqueeze(0)
        actions = pol(tokens, pos, torch.from_numpy(data["tokens"][first]).unsqueeze(0),
                      torch.tensor(state, dtype=torch.float32).unsqueeze(0))
    golden = {"dataset_seed": int(meta["seed"]), "episode": ep,
              "instruction_ids": data["tokens"][first].tolist(), "state": data["states"][first].tolist(),
              "saliency": sal[0].tolist(), "visual_tokens_first": tokens[0, 0].tolist(),
              "actions_normalised": actions[0].flatten().tolist()}
    path = os.path.join(out_dir, "golden.json")
    with open(path, "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"exported {out_dir}: {manifest['variants'][0]['files']}", flush=True)
