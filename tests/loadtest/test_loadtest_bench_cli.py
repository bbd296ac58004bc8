"""`python -m loadtest.bench`: refuses to measure beside another stack (an aborted run's);
`--steps` picks a subset and names a wrong one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.bench import cli
from loadtest.bench.fmt import missing


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


def test_steps_pick_a_subset_and_a_wrong_one_is_named(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    parser = cli.build_parser()
    assert parser.parse_args([]).steps == cli.STEPS
    assert parser.parse_args(["--steps", "straggler, cpu"]).steps == ("straggler", "cpu")
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "straggler,hedging"])
    assert "unknown step(s) hedging" in capsys.readouterr().err


def test_a_step_left_out_says_so_on_the_page() -> None:
    assert "--steps straggler" in missing({"steps": ["straggler"], "errors": []}, "cpu")
    assert "--steps" not in missing({"steps": list(cli.STEPS), "errors": []}, "cpu")
