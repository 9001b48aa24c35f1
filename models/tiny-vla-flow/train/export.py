"""Export TinyVLA-Flow to the vla-node model package format v2 (`vla-node/model@2`, family `flow`):
four ONNX graphs (opset 17), manifest.json and golden.json (PyTorch's outputs for one observation,
which the TypeScript tests compare ONNX Runtime against).

Graph signatures (B: batch; KV tensors are [B, layers, heads, tokens, head_dim]):

  encoder      pixels [B,3,H,W]                                  -> visual_tokens [B,N,D], saliency [B,N]
  instruction  instruction_ids [B,L] (int64)                     -> instruction_keys, instruction_values [B,Ly,Hd,L,hd]
  prefix       visual_tokens [B,K,D], token_positions [B,K] (int64, camera c's patch p at c*N+p),
               state [B,S], context_keys, context_values [B,Ly,Hd,C,hd]
                                                                 -> keys, values [B,Ly,Hd,K+1,hd]
  expert       noisy_actions [B,H,A], time [B], state [B,S], context_keys, context_values [P,Ly,Hd,C,hd],
               prefix_keys, prefix_values [P,Ly,Hd,K+1,hd] (P = B or 1)
                                                                 -> velocity [B,H,A]

`context` is the instruction's keys/values (plus, for cross-frame reuse, those of reused visual
tokens); the expert attends to context and prefix together, so the runtime never concatenates.
"""
import hashlib
import json
import os

import numpy as np
import torch

OPSET = 17


class EncoderExport(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, pixels):
        tokens, logits = self.enc(pixels)
        return tokens, torch.sigmoid(logits)


class InstructionExport(torch.nn.Module):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def forward(self, instruction_ids):
        ks, vs = self.prefix.instruction(instruction_ids)
        return torch.stack(ks, dim=1), torch.stack(vs, dim=1)


def unstack(x):
    return [x[:, i] for i in range(x.shape[1])]


class PrefixExport(torch.nn.Module):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix
        self.depth = len(prefix.layers)

    def forward(self, visual_tokens, token_positions, state, context_keys, context_values):
        ks, vs = self.prefix.frame(visual_tokens, token_positions, state,
                                   [context_keys[:, i] for i in range(self.depth)],
                                   [context_values[:, i] for i in range(self.depth)])
        return torch.stack(ks, dim=1), torch.stack(vs, dim=1)


class ExpertExport(torch.nn.Module):
    def __init__(self, expert):
        super().__init__()
        self.expert = expert
        self.depth = len(expert.layers)

    def forward(self, noisy_actions, time, state, context_keys, context_values, prefix_keys, prefix_values):
        kv = [[(context_keys[:, i], context_values[:, i]), (prefix_keys[:, i], prefix_values[:, i])]
              for i in range(self.depth)]
        return self.expert(noisy_actions, time, state, kv)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


FILES = dict(encoder="vision_encoder.onnx", instruction="instruction.onnx", prefix="prefix.onnx",
             expert="expert.onnx")


def dims(prefix):
    layer = prefix.layers[0].attn
    return len(prefix.layers), layer.heads, layer.head_dim


def export_graphs(out_dir, enc, prefix, expert, meta, config, files=FILES):
    img = meta["image"]
    n = meta["grid"]["width"] * meta["grid"]["height"]
    ly, hd, d = dims(prefix)
    L, S, H, A = meta["max_tokens"], meta["state_dim"], meta["horizon"], meta["action_dim"]
    join = lambda role: os.path.join(out_dir, files[role])
    torch.onnx.export(EncoderExport(enc), (torch.zeros(1, 3, img["height"], img["width"]),), join("encoder"),
                      opset_version=OPSET, input_names=["pixels"], output_names=["visual_tokens", "saliency"],
                      dynamic_axes={"pixels": {0: "batch"}, "visual_tokens": {0: "batch"}, "saliency": {0: "batch"}})
    torch.onnx.export(InstructionExport(prefix), (torch.zeros(1, L, dtype=torch.long),), join("instruction"),
                      opset_version=OPSET, input_names=["instruction_ids"],
                      output_names=["instruction_keys", "instruction_values"],
                      dynamic_axes={"instruction_ids": {0: "batch"}, "instruction_keys": {0: "batch"},
                                    "instruction_values": {0: "batch"}})
    k = n  # any count works; export with one camera's worth
    ctx = torch.zeros(1, ly, hd, L, d)
    torch.onnx.export(PrefixExport(prefix),
                      (torch.zeros(1, k, config["enc_dim"]), torch.arange(k).unsqueeze(0), torch.zeros(1, S), ctx, ctx),
                      join("prefix"), opset_version=OPSET,
                      input_names=["visual_tokens", "token_positions", "state", "context_keys", "context_values"],
                      output_names=["keys", "values"],
                      dynamic_axes={"visual_tokens": {0: "batch", 1: "tokens"},
                                    "token_positions": {0: "batch", 1: "tokens"}, "state": {0: "batch"},
                                    "context_keys": {0: "batch", 3: "context"},
                                    "context_values": {0: "batch", 3: "context"},
                                    "keys": {0: "batch", 3: "frame_tokens"}, "values": {0: "batch", 3: "frame_tokens"}})
    pre = torch.zeros(1, ly, hd, k + 1, d)
    torch.onnx.export(ExpertExport(expert),
                      (torch.zeros(2, H, A), torch.zeros(2), torch.zeros(2, S), ctx, ctx, pre, pre),
                      join("expert"), opset_version=OPSET,
                      input_names=["noisy_actions", "time", "state", "context_keys", "context_values", "prefix_keys",
                                   "prefix_values"],
                      output_names=["velocity"],
                      dynamic_axes={"noisy_actions": {0: "batch"}, "time": {0: "batch"}, "state": {0: "batch"},
                                    "context_keys": {0: "prefix_batch", 3: "context"},
                                    "context_values": {0: "prefix_batch", 3: "context"},
                                    "prefix_keys": {0: "prefix_batch", 3: "frame_tokens"},
                                    "prefix_values": {0: "prefix_batch", 3: "frame_tokens"},
                                    "velocity": {0: "batch"}})


def manifest_for(out_dir, meta, config, stats, training, prefix, name="tiny-vla-flow", control_rate_hz=10,
                 steps=10, files=FILES):
    img, grid = meta["image"], meta["grid"]
    n = grid["width"] * grid["height"]
    D, H, A, S, L = config["enc_dim"], meta["horizon"], meta["action_dim"], meta["state_dim"], meta["max_tokens"]
    ly, hd, d = dims(prefix)
    f32 = "float32"
    kv = lambda batch, tokens: {"dtype": f32, "shape": [batch, ly, hd, tokens, d]}
    image = {"width": img["width"], "height": img["height"], "channels": 3, "layout": "NCHW", "resize": "stretch",
             "mean": stats["image_mean"], "std": stats["image_std"]}
    patch_grid = {"width": grid["width"], "height": grid["height"], "patch_size": config["patch"]}
    return {
        "format": "vla-node/model@2",
        "family": "flow",
        "name": name,
        "description": "TinyVLA-Flow: a pi0-shaped flow-matching VLA with a tabletop and a wrist camera, "
                       "reaches named blocks on the built-in 2D tabletop (trained by train/train.py)",
        "control_rate_hz": control_rate_hz,
        "cameras": [
            {"name": "table", "encoder": "encoder", "image": image, "patch_grid": patch_grid},
            {"name": "wrist", "encoder": "encoder", "image": image, "patch_grid": patch_grid},
        ],
        "token_dim": D,
        "chunk": {"horizon": H, "action_dim": A},
        "action": {"names": ["x", "y"], "mean": stats["action_mean"], "std": stats["action_std"],
                   "min": [0.0] * A, "max": [1.0] * A},
        "state": {"names": ["x", "y"], "mean": stats["state_mean"], "std": stats["state_std"]},
        "tokenizer": {"file": "tokenizer.json", "max_length": L},
        "prefix": {"layers": ly, "heads": hd, "head_dim": d, "instruction_attention": "block-causal"},
        "denoising": {"method": "euler", "steps": steps, "noise": "gaussian", "time": "noise-0-to-actions-1"},
        "graphs": {
            "encoder": {
                "inputs": [{"name": "pixels", "dtype": f32, "shape": ["batch", 3, img["height"], img["width"]]}],
                "outputs": [{"name": "visual_tokens", "dtype": f32, "shape": ["batch", n, D]},
                            {"name": "saliency", "dtype": f32, "shape": ["batch", n]}],
            },
            "instruction": {
                "inputs": [{"name": "instruction_ids", "dtype": "int64", "shape": ["batch", L]}],
                "outputs": [dict(name="instruction_keys", **kv("batch", L)),
                            dict(name="instruction_values", **kv("batch", L))],
            },
            "prefix": {
                "inputs": [{"name": "visual_tokens", "dtype": f32, "shape": ["batch", "tokens", D]},
                           {"name": "token_positions", "dtype": "int64", "shape": ["batch", "tokens"]},
                           {"name": "state", "dtype": f32, "shape": ["batch", S]},
                           dict(name="context_keys", **kv("batch", "context")),
                           dict(name="context_values", **kv("batch", "context"))],
                "outputs": [dict(name="keys", **kv("batch", "frame_tokens")),
                            dict(name="values", **kv("batch", "frame_tokens"))],
            },
            "expert": {
                "inputs": [{"name": "noisy_actions", "dtype": f32, "shape": ["batch", H, A]},
                           {"name": "time", "dtype": f32, "shape": ["batch"]},
                           {"name": "state", "dtype": f32, "shape": ["batch", S]},
                           dict(name="context_keys", **kv("prefix_batch", "context")),
                           dict(name="context_values", **kv("prefix_batch", "context")),
                           dict(name="prefix_keys", **kv("prefix_batch", "frame_tokens")),
                           dict(name="prefix_values", **kv("prefix_batch", "frame_tokens"))],
                "outputs": [{"name": "velocity", "dtype": f32, "shape": ["batch", H, A]}],
            },
        },
        "variants": [{
            "name": "fp32", "precision": "fp32",
            "files": {role: {"path": path, "sha256": sha256(os.path.join(out_dir, path))}
                      for role, path in files.items()},
        }],
        "training": training,
    }


def euler(expert, kv, state, noise, steps):
    x = noise
    for i in range(steps):
        t = torch.full((x.shape[0],), i / steps)
        x = x + expert(x, t, state, kv) / steps
    return x


def export_package(out_dir, enc, prefix, expert, meta, config, stats, data, golden_index, training):
    export_graphs(out_dir, enc, prefix, expert, meta, config)
    manifest = manifest_for(out_dir, meta, config, stats, training, prefix)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    # Golden fixture: the first observation of a held-out episode, through PyTorch.
    i = int(golden_index)
    ep = int(data["episode"][i])
    first = int(np.nonzero(data["episode"] == ep)[0][0])
    m = torch.tensor(stats["image_mean"]).view(1, 3, 1, 1)
    s = torch.tensor(stats["image_std"]).view(1, 3, 1, 1)
    pix = lambda key: (torch.from_numpy(data[key][first]).permute(2, 0, 1).float().div(255).unsqueeze(0) - m) / s
    state = torch.tensor((data["states"][first] - np.array(stats["state_mean"])) / np.array(stats["state_std"]),
                         dtype=torch.float32).unsqueeze(0)
    ids = torch.from_numpy(data["tokens"][first]).unsqueeze(0)
    n = meta["grid"]["width"] * meta["grid"]["height"]
    noise = torch.randn(1, meta["horizon"], meta["action_dim"], generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        tab, sal_t = EncoderExport(enc)(pix("images"))
        wri, sal_w = EncoderExport(enc)(pix("images_wrist"))
        vis = torch.cat([tab, wri], dim=1)
        pos = torch.arange(2 * n).unsqueeze(0)
        ik, iv = prefix.instruction(ids)
        fk, fv = prefix.frame(vis, pos, state, ik, iv)
        # The block-causal mask makes the split (instruction once, frame with it as context) the same
        # computation as one masked pass over the whole prefix.
        full_k, _ = prefix.full(ids, vis, pos, state)
        split_err = max(float((torch.cat([a, b], dim=2) - c).abs().max()) for a, b, c in zip(ik, fk, full_k))
        kv = [[(ik[j], iv[j]), (fk[j], fv[j])] for j in range(len(ik))]
        v0 = expert(noise, torch.zeros(1), state, kv)
        chunks = {str(k): euler(expert, kv, state, noise, k)[0].flatten().tolist() for k in (10, 5, 2, 1)}
    print(f"instruction cache exactness (split vs one masked pass): max |diff| {split_err:.2e}", flush=True)
    golden = {"dataset_seed": int(meta["seed"]), "episode": ep, "sample": first,
              "instruction_ids": data["tokens"][first].tolist(), "state": data["states"][first].tolist(),
              "saliency_table": sal_t[0].tolist(), "saliency_wrist": sal_w[0].tolist(),
              "visual_tokens_first": tab[0, 0].tolist(),
              "instruction_keys_first": ik[0][0, 0, 0].tolist(),
              "prefix_keys_last": fk[-1][0, -1, -1].tolist(),
              "noise": noise.flatten().tolist(), "velocity_t0": v0.flatten().tolist(),
              "actions_normalised_by_steps": chunks, "split_vs_masked_max_abs": split_err}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(f"exported {out_dir}: {manifest['variants'][0]['files']}", flush=True)
