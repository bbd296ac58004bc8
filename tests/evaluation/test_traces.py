"""MCAP traces: typed channels written, read back step by step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mcap.reader import make_reader

from evaluation.traces import TOPICS, TraceWriter, find_traces, main, read_trace


def write_episode(path: Path, steps: int = 5) -> None:
    with TraceWriter(path) as trace:
        trace.write("/eval/episode", {
            "episode_id": "e1", "arm": "router", "task": "reach-v3", "declared_task": None,
            "config_index": 0, "robot_id": "robot-0", "deadline_ms": 20.0, "control_hz": 50.0,
            "perturbation": "none", "contract_version": "ci-1", "transport": "http"})
        for step in range(steps):
            obs = np.full(39, step, dtype=np.float64)
            trace.write("/eval/observation", {"step": step, "state": obs, "sent_state": None})
            trace.write("/eval/router", {
                "step": step, "status": "ok", "code": "200", "declared_task": None,
                "inferred_task": "reach-v3", "task": "reach-v3", "task_confidence": 0.9,
                "route": "generalist", "fallback": None, "reason": "sticky",
                "deadline_met": True, "decision_id": f"d{step}", "policy_version": "v",
                "error": ""})
            trace.write("/eval/action", {"step": step, "reply_action": [0.1] * 4,
                                         "applied_action": np.zeros(4), "source": "reply"})
            trace.write("/eval/outcome", {"step": step, "reward": 1.0,
                                          "success": step == steps - 1, "truncated": False})
        trace.write("/eval/summary", {"success": True, "steps": steps,
                                      "first_success_step": steps - 1, "eval_error": None,
                                      "feedback": {"status": 202}})


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a" / "e1.mcap"
    write_episode(path, steps=5)
    trace = read_trace(path)
    assert trace.episode["task"] == "reach-v3" and trace.summary["success"] is True
    assert [s["step"] for s in trace.steps] == list(range(5))
    assert trace.steps[3]["observation"]["state"] == [3.0] * 39
    assert trace.steps[3]["router"]["inferred_task"] == "reach-v3"
    assert trace.steps[4]["outcome"]["success"] is True
    assert trace.topic_counts["/eval/router"] == 5


def test_channels_carry_json_schemas(tmp_path: Path) -> None:
    path = tmp_path / "e1.mcap"
    write_episode(path, steps=2)
    with path.open("rb") as stream:
        summary = make_reader(stream).get_summary()
    assert summary is not None
    schemas = {s.id: s for s in summary.schemas.values()}
    for channel in summary.channels.values():
        assert channel.message_encoding == "json"
        schema = schemas[channel.schema_id]
        assert schema.encoding == "jsonschema"
        assert json.loads(schema.data) == TOPICS[channel.topic]


def test_cli_summarises_a_folder(tmp_path: Path, capsys: object) -> None:
    write_episode(tmp_path / "x" / "e1.mcap")
    write_episode(tmp_path / "y" / "e2.mcap")
    assert len(find_traces(tmp_path)) == 2
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.count("success=True") == 2 and "routes={'generalist': 5}" in out
