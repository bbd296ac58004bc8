"""Exit codes and outputs of `python -m loadtest`: on synthetic result files, and end to end
against a tiny router-shaped HTTP server (tests/loadtest/loadtest_support.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from loadtest_support import FakeRouterState, free_port

from loadtest.cli import main
from loadtest.cli_args import EXIT_PASS, EXIT_SLA_FAIL, EXIT_UNAVAILABLE, EXIT_USAGE
from loadtest.records import Record
from loadtest.report import build_result, write_result
from loadtest.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]


def scenario_dict(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "clitest",
        "robots": 3,
        "control_hz": 40,
        "task_mix": {"reach-v3": 1, "pick-place-v3": 1},
        "hidden_task_share": 0.3,
        "deadline_ms": 200,
        "duration_s": 1.5,
        "ramp_s": 0.3,
        "episode_steps": 10,
        "sla": {"quantile_within_budget": 0.95, "budget_ms": 200},
        "seed": 5,
    }
    return data | kw


def write_scenario(tmp_path: Path, **kw: Any) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario_dict(**kw)))
    return path


def synthetic_result(
    tmp_path: Path,
    latencies: Sequence[float | None],
    name: str = "res",
    upstream: float | None = None,
    label: str | None = None,
) -> Path:
    scenario = Scenario.model_validate(scenario_dict(label=label, ramp_s=0, duration_s=10))
    records = [
        Record(
            i,
            0,
            "reach-v3",
            False,
            i * 0.01,
            i * 0.01,
            None if lat is None else i * 0.01,
            lat,
            "ok" if lat is not None else "http_503",
            "specialist_reach_v3",
            None,
            True,
            None if lat is not None else "shed",
            None,
        )
        for i, lat in enumerate(latencies)
    ]
    run = {
        "target": "router",
        "transport": "http",
        "label": label,
        "planned_requests": len(records),
    }
    metrics = None if upstream is None else {"upstream_requests": upstream}
    out = tmp_path / name
    write_result(out, build_result(scenario, run, records, metrics), records, plot=False)
    return out


def test_report_exit_codes_follow_the_sla(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = synthetic_result(tmp_path, [10.0] * 97 + [500.0, None, None])  # 0.97 within 200 ms
    assert main(["report", str(res)]) == EXIT_PASS
    assert "PASS" in capsys.readouterr().out
    assert main(["report", str(res), "--quantile", "0.99"]) == EXIT_SLA_FAIL
    assert main(["report", str(res / "result.json"), "--budget-ms", "5"]) == EXIT_SLA_FAIL
    out = capsys.readouterr().out
    assert "FAIL" in out and "shed" in out


def test_report_write_regenerates_summary_and_plot(tmp_path: Path) -> None:
    res = synthetic_result(tmp_path, [10.0] * 100)
    assert main(["report", str(res), "--write", "--budget-ms", "5"]) == EXIT_SLA_FAIL
    doc = orjson.loads((res / "result.json").read_bytes())
    assert doc["summary"]["sla"]["budget_ms"] == 5
    assert (res / "latency.png").stat().st_size > 0


def test_usage_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_scenario(tmp_path, robots=0)
    assert main(["run", str(bad), "--api-key", "k"]) == EXIT_USAGE
    assert "robots" in capsys.readouterr().err
    good = write_scenario(tmp_path)
    assert main(["run", str(good), "--target", "nowhere"]) == EXIT_USAGE
    assert main(["report", str(tmp_path / "missing")]) == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == EXIT_USAGE


def test_router_without_a_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROUTER_API_KEY", raising=False)
    assert main(["run", str(write_scenario(tmp_path))]) == EXIT_USAGE
    assert "ROUTER_API_KEY" in capsys.readouterr().err


def test_unreachable_target_exits_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(
        [
            "run",
            str(write_scenario(tmp_path)),
            "--url",
            url,
            "--api-key",
            "k",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    assert code == EXIT_UNAVAILABLE


def test_compare_and_hedging_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    off = synthetic_result(
        tmp_path, [10.0] * 95 + [100.0] * 5, "off", upstream=100, label="hedging-off"
    )
    on = synthetic_result(
        tmp_path, [10.0] * 98 + [25.0] * 2, "on", upstream=112, label="hedging-on"
    )
    assert main(["compare", str(off), str(on), "--json", str(tmp_path / "c.json")]) == EXIT_PASS
    table = orjson.loads((tmp_path / "c.json").read_bytes())
    assert table["rows"][1]["ratio_to_reference"]["p99"] == pytest.approx(25.0 / 100.0)
    assert main(["hedging", str(off), str(on), "--json", str(tmp_path / "h.json")]) == EXIT_PASS
    cmp = orjson.loads((tmp_path / "h.json").read_bytes())
    assert cmp["p99_ratio_on_over_off"] == pytest.approx(0.25)
    assert cmp["extra_upstream_per_request"] == pytest.approx(0.12)
    assert cmp["extra_upstream_requests"] == pytest.approx(12)
    assert "ratio on/off 0.250" in capsys.readouterr().out


def test_run_against_a_router_shaped_server(
    tmp_path: Path, fake_router: tuple[str, FakeRouterState]
) -> None:
    url, state = fake_router
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(write_scenario(tmp_path)),
            "--url",
            url,
            "--api-key",
            "test-key",
            "--out",
            str(out),
            "--metrics-url",
            f"{url}/metrics",
            "--quiet",
            "--label",
            "x",
        ]
    )
    assert code == EXIT_PASS
    doc = orjson.loads((out / "result.json").read_bytes())
    lines = (out / "records.jsonl").read_bytes().splitlines()
    assert len(lines) == doc["run"]["planned_requests"] == state.requests
    assert (out / "latency.png").stat().st_size > 0
    assert doc["scenario"]["label"] == "x"
    assert doc["summary"]["overall"]["errors"] == 0
    assert doc["metrics_delta"]["upstream_requests"] == state.requests
    routes = set(doc["summary"]["routes"])
    assert routes == {"generalist", "specialist_reach_v3", "specialist_pick_place_v3"}
    assert any("task" not in b for b in state.bodies)


def test_run_exits_2_when_the_server_misses_the_sla(
    tmp_path: Path, fake_router: tuple[str, FakeRouterState]
) -> None:
    url, state = fake_router
    state.status = 503
    code = main(
        [
            "run",
            str(write_scenario(tmp_path)),
            "--url",
            url,
            "--api-key",
            "test-key",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--no-plot",
        ]
    )
    assert code == EXIT_SLA_FAIL
    doc = orjson.loads((tmp_path / "o" / "result.json").read_bytes())
    assert doc["summary"]["overall"]["errors_by_kind"] == {
        "shed": doc["summary"]["overall"]["requests"]
    }


def test_wrong_key_is_counted_as_auth_errors(
    tmp_path: Path, fake_router: tuple[str, FakeRouterState]
) -> None:
    url, _ = fake_router
    code = main(
        [
            "run",
            str(write_scenario(tmp_path)),
            "--url",
            url,
            "--api-key",
            "wrong",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--no-plot",
        ]
    )
    assert code == EXIT_SLA_FAIL
    doc = orjson.loads((tmp_path / "o" / "result.json").read_bytes())
    assert set(doc["summary"]["overall"]["errors_by_kind"]) == {"auth"}


def test_module_entry_point_exit_code(tmp_path: Path) -> None:
    res = synthetic_result(tmp_path, [10.0] * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", str(res), "--budget-ms", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_SLA_FAIL, proc.stderr
