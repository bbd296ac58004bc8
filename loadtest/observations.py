"""Observation pool: the state vectors requests carry.

Synthetic states come from a fixed-seed generator (same seed, same bytes on the wire); recorded
states are read from a file so a run can replay real robot trajectories. Either way the pool is
float32 [K, obs_dim], built before the run so the hot path only indexes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

F32 = npt.NDArray[np.float32]

SYNTHETIC_POOL = 1024


def synthetic_states(obs_dim: int, seed: int, size: int = SYNTHETIC_POOL) -> F32:
    # Meta-World states are positions/quaternions of order 1; N(0, 0.5) keeps values finite and
    # of that order. The router/Triton path does not depend on the values for latency.
    rng = np.random.default_rng([seed, 0x0B5])
    return rng.normal(0.0, 0.5, size=(size, obs_dim)).astype(np.float32)


def _rows_from_json(data: object) -> list[list[float]]:
    if isinstance(data, dict):
        data = data.get("states", data.get("observations"))
    if not isinstance(data, list):
        raise ValueError("expected a list of state vectors or {'states': [...]}")
    rows: list[list[float]] = []
    for item in data:
        if isinstance(item, dict):
            item = item.get("state", (item.get("observation") or {}).get("state"))
        if not isinstance(item, list):
            raise ValueError("each state must be a list of floats (or {'state': [...]})")
        rows.append(item)
    return rows


def load_states(path: Path, obs_dim: int) -> F32:
    """Read recorded states: .npy [N, obs_dim], .json (list or {"states": [...]}), .jsonl (one
    list or {"state": [...]} / {"observation": {"state": [...]}} per line)."""
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif path.suffix == ".jsonl":
        lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
        arr = np.asarray(_rows_from_json([orjson.loads(ln) for ln in lines]), dtype=np.float32)
    else:
        arr = np.asarray(_rows_from_json(orjson.loads(path.read_bytes())), dtype=np.float32)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != obs_dim:
        raise ValueError(f"{path}: expected states of shape [N>0, {obs_dim}], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: recorded states contain NaN/inf")
    return arr


def observation_pool(obs_dim: int, seed: int, path: Path | None) -> F32:
    return synthetic_states(obs_dim, seed) if path is None else load_states(path, obs_dim)
