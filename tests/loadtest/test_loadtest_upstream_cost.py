"""`python -m loadtest.upstream_cost` against the real tritonserver: every upstream measured,
Triton's own CPU read from its process tree when given its pid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.bench.cost import process_tree
from loadtest.upstream_cost import main

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def tritonserver_pid(repository: Path) -> int:
    """The session's tritonserver: the one serving its repository (other tests start their own)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tritonserver") and any(
                str(repository).encode() in a for a in argv):
            return int(entry.name)
    raise AssertionError("no tritonserver process")


def test_every_upstream_is_measured_with_tritons_cpu(triton: Any, tmp_path: Path) -> None:
    pid = tritonserver_pid(triton.repository)
    assert len(process_tree(pid)) > 1  # the python-backend stubs are counted with it
    out = tmp_path / "cost.json"
    assert main(["--http", triton.http_url, "--grpc", triton.grpc_url, "--calls", "50",
                 "--server-pid", str(pid), "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"http", "grpc", "grpc-stream"}
    for rows in results.values():
        assert [r["rows"] for r in rows] == [1, 8]
        for r in rows:
            assert r["calls"] == 50 and r["wall_ms_per_call"] > 0
            assert r["cpu_ms_per_call"] > 0 and r["server_cpu_ms_per_call"] > 0
