"""The large generalist: a transformer over the two frames of a Meta-World observation.

Meta-World's 39-value observation already holds a short window: the current frame (hand,
gripper, two objects: 18 values), the previous frame (the same 18) and the goal (3). Each frame
is one token (one shared projection, so both frames are read the same way), the goal and the task
one-hot are one token each, and a learned position embedding tells them apart. The router's act
API carries one observation per call, so a longer window would need per-episode state inside
Triton (the sequence batcher); the two frames the simulator provides need none.

Pre-norm blocks with explicit attention (not `nn.TransformerEncoderLayer`, whose inference fast
path the TorchScript ONNX exporter cannot trace) keep the exported graph plain: MatMul, Softmax,
LayerNormalization and Erf, all in opset 17. Same signature as the MLP generalist, so Triton
serves it with the same `policy.py` and the same ensemble steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

FRAME = 18  # hand xyz, gripper, object 1 xyz + quaternion, object 2 xyz + quaternion
GOAL = 3
TOKENS = 4  # current frame, previous frame, goal, task


@dataclass(frozen=True)
class TransformerConfig:
    d_model: int = 192
    layers: int = 3
    heads: int = 4
    ff: int = 768
    learning_rate: float = 5e-4
    warmup_steps: int = 200  # then cosine decay to zero over the remaining steps

    def describe(self) -> str:
        return (f"transformer over {TOKENS} tokens (frame t, frame t-1, goal, task), "
                f"d_model {self.d_model}, {self.layers} pre-norm blocks, {self.heads} heads, "
                f"feed-forward {self.ff}, mean-pooled, tanh head")


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(d_model // heads)  # a constant, not traced from a shape
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        head_dim = width // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(batch, tokens, 3, self.heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, tokens, width)
        x = x + self.proj(attended)
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class ObservationTransformer(nn.Module):
    """Generalist: (obs_norm, task_onehot) -> action in [-1, 1]."""

    def __init__(self, n_tasks: int, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.frame = nn.Linear(FRAME, d)
        self.goal = nn.Linear(GOAL, d)
        self.task = nn.Linear(n_tasks, d)
        self.position = nn.Parameter(torch.zeros(TOKENS, d))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(
            [Block(d, config.heads, config.ff) for _ in range(config.layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 4)

    def forward(self, obs_norm: torch.Tensor, task_onehot: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([
            self.frame(obs_norm[:, :FRAME]),
            self.frame(obs_norm[:, FRAME:2 * FRAME]),
            self.goal(obs_norm[:, 2 * FRAME:2 * FRAME + GOAL]),
            self.task(task_onehot),
        ], dim=1) + self.position
        for block in self.blocks:
            tokens = block(tokens)
        return torch.tanh(self.head(self.norm(tokens).mean(dim=1)))


def schedule(optimiser: torch.optim.Optimizer, config: TransformerConfig, steps: int
             ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay: a short budget needs the large early steps to be safe
    (an un-warmed transformer at this rate diverges) and the late ones small."""
    warmup = min(config.warmup_steps, max(steps // 10, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(steps - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
