"""`python -m loadtest.bench` refuses to measure beside another stack (an aborted run's)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.bench import cli


@pytest.fixture
def leftover_triton() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line reads `tritonserver ...`, as an aborted run's would."""
    proc = subprocess.Popen(["bash", "-c", "exec -a tritonserver sleep 60"])
    yield proc
    proc.kill()
    proc.wait()


def test_refuses_to_start_beside_a_leftover_triton(
        leftover_triton: subprocess.Popen[bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    assert cli.leftovers().get("tritonserver", 0) >= 1
    assert cli.main(["--out", str(out)]) == 2
    assert "refusing to start" in capsys.readouterr().err
    assert not out.exists()  # nothing started, nothing written
