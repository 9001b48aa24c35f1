"""TinyVLA: a split vision-language-action model (vision encoder + policy) in plain PyTorch.

Attention is written by hand: torch 1.13 cannot export nn.TransformerEncoderLayer's fast path to
ONNX. Both halves export to ONNX opset 17 (see export.py).
"""
import math

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionEncoder(nn.Module):
    """pixels [B,3,H,W] -> visual_tokens [B,N,D] on the patch grid, saliency [B,N] in [0,1]."""

    def __init__(self, image: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.grid = image // patch
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.saliency_head = nn.Linear(dim, 1)

    def forward(self, pixels: torch.Tensor):
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        saliency_logits = self.saliency_head(x).squeeze(-1)
        return x, saliency_logits


class CoordinateFeatures(nn.Module):
    """(x, y) in [0, 1] -> [x, y, sin/cos of 2^k * pi * x and y for k < bands]: a smooth code of
    position, so that reading a location out of attention is close to linear."""

    def __init__(self, bands: int = 4):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(bands, dtype=torch.float32)) * math.pi)
        self.dim = 2 + 4 * bands

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        angles = xy.unsqueeze(-1) * self.freqs  # [..., 2, bands]
        return torch.cat([xy, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)


class Policy(nn.Module):
    """(visual_tokens [B,K,D], token_positions [B,K], instruction_ids [B,L], state [B,S])
    -> actions [B,H,A], all normalised. K is free: any subset of the grid, in any order."""

    def __init__(self, grid_w: int, grid_h: int, token_dim: int, dim: int, depth: int, heads: int, vocab: int,
                 max_len: int, state_dim: int, horizon: int, action_dim: int,
                 state_mean: torch.Tensor, state_std: torch.Tensor,
                 state_to_action_scale: torch.Tensor, state_to_action_shift: torch.Tensor):
        super().__init__()
        self.horizon = horizon
        self.grid_w = grid_w
        self.grid_h = grid_h
        self.visual_in = nn.Linear(token_dim, dim)
        self.coords = CoordinateFeatures()
        # Kept tokens are placed by the coordinates of their patch centre, the state by its own
        # (the state is the end effector's position in the same [0, 1] table frame).
        self.grid_pos = nn.Linear(self.coords.dim, dim)
        self.state_pos = nn.Linear(self.coords.dim, dim)
        self.register_buffer("state_mean", state_mean.reshape(1, -1))
        self.register_buffer("state_std", state_std.reshape(1, -1))
        self.text = nn.Embedding(vocab, dim)
        self.text_pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.state_in = nn.Linear(state_dim, dim)
        self.queries = nn.Parameter(torch.randn(1, horizon, dim) * 0.02)
        # The action queries start from a summary of the instruction and the state, so the first
        # layer can already look for the named block instead of first reading the text.
        self.query_cond = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.type_embed = nn.Parameter(torch.randn(4, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, action_dim)
        # Actions are predicted as a residual on the current state (same units): these constants map
        # a normalised state to a normalised action.
        self.register_buffer("s2a_scale", state_to_action_scale.reshape(1, 1, -1))
        self.register_buffer("s2a_shift", state_to_action_shift.reshape(1, 1, -1))

    def forward(self, visual_tokens, token_positions, instruction_ids, state):
        b = visual_tokens.shape[0]
        col = torch.remainder(token_positions, self.grid_w).to(visual_tokens.dtype)
        row = torch.div(token_positions, self.grid_w, rounding_mode="floor").to(visual_tokens.dtype)
        xy = torch.stack([(col + 0.5) / self.grid_w, (row + 0.5) / self.grid_h], dim=-1)
        v = self.visual_in(visual_tokens) + self.grid_pos(self.coords(xy)) + self.type_embed[0]
        t = self.text(instruction_ids) + self.text_pos + self.type_embed[1]
        s_xy = state * self.state_std + self.state_mean
        s = (self.state_in(state) + self.state_pos(self.coords(s_xy))).unsqueeze(1) + self.type_embed[2]
        words = (instruction_ids != 0).unsqueeze(-1).to(t.dtype)  # id 0 is padding
        text_summary = (self.text(instruction_ids) * words).sum(1) / words.sum(1).clamp(min=1.0)
        cond = self.query_cond(torch.cat([text_summary, s[:, 0, :]], dim=-1)).unsqueeze(1)
        q = self.queries.expand(b, -1, -1) + self.type_embed[3] + cond
        x = torch.cat([v, t, s, q], dim=1)
        for blk in self.blocks:
            x = blk(x)
        out = self.head(self.norm(x[:, -self.horizon:, :]))
        return out + state.unsqueeze(1) * self.s2a_scale + self.s2a_shift
