"""Small helpers shared by the build stages: content hashes, JSON files, wall-clock timing."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_arrays(arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    """Hash of array contents, independent of how (or when) the npz container was written."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a JSON-able value with sorted keys: the 'inputs key' that decides stage skips."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def write_json(path: Path, value: BaseModel | Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        value.model_dump_json(indent=2)
        if isinstance(value, BaseModel)
        else json.dumps(value, indent=2)
    )
    # Write-then-rename so a killed build never leaves a half-written file that looks complete.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@contextmanager
def timed(label: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    print(f"[build] {label} ...", flush=True)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if timings is not None:
        timings[label] = round(seconds, 2)
    print(f"[build] {label}: {seconds:.1f} s", flush=True)
