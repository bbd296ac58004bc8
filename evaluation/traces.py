"""Per-step episode traces in MCAP with JSON-schema-typed channels (opens in Foxglove), and a
reader. One file per episode: traces/<arm>/<task>/<episode_id>.mcap.

    python -m evaluation.traces results/eval/<stamp>/traces/router/reach-v3/<episode>.mcap
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from mcap.reader import make_reader
from mcap.writer import Writer

PROFILE = "robot-policy-eval"
_NUM = {"type": "number"}
_NUMS = {"type": "array", "items": _NUM}
_NUMS_OR_NULL = {"type": ["array", "null"], "items": _NUM}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_BOOL_OR_NULL = {"type": ["boolean", "null"]}


def _schema(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "type": "object", "properties": properties,
            "required": sorted(properties)}


# topic -> JSON schema; field names are the trace's vocabulary (docs: report.md, rules).
TOPICS: dict[str, dict[str, Any]] = {
    "/eval/episode": _schema("eval.Episode", {
        "episode_id": _STR, "arm": _STR, "task": _STR, "declared_task": _STR_OR_NULL,
        "config_index": _INT, "robot_id": _STR, "deadline_ms": _NUM, "control_hz": _NUM,
        "perturbation": _STR, "contract_version": _STR, "transport": _STR}),
    "/eval/observation": _schema("eval.Observation", {
        "step": _INT, "state": _NUMS, "sent_state": _NUMS_OR_NULL}),
    "/eval/router": _schema("eval.RouterReply", {
        "step": _INT, "status": _STR, "code": _STR, "declared_task": _STR_OR_NULL,
        "inferred_task": _STR_OR_NULL, "task": _STR, "task_confidence": _NUM, "route": _STR,
        "fallback": _STR_OR_NULL, "reason": _STR, "deadline_met": _BOOL_OR_NULL,
        "decision_id": _STR, "policy_version": _STR, "error": _STR}),
    "/eval/timing": _schema("eval.Timing", {
        "step": _INT, "rtt_ms": _NUM, "router_total_ms": _NUM, "scoring_ms": _NUM,
        "upstream_ms": _NUM, "deadline_ms": _NUM, "late": _BOOL}),
    "/eval/action": _schema("eval.Action", {
        "step": _INT, "reply_action": _NUMS_OR_NULL, "applied_action": _NUMS,
        "source": _STR}),
    "/eval/outcome": _schema("eval.Outcome", {
        "step": _INT, "reward": _NUM, "success": _BOOL, "truncated": _BOOL}),
    "/eval/summary": _schema("eval.Summary", {
        "success": _BOOL, "steps": _INT, "first_success_step": {"type": ["integer", "null"]},
        "eval_error": _STR_OR_NULL, "feedback": {"type": "object"}}),
}


class TraceWriter:
    """Streams one episode into an MCAP file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._stream: IO[bytes] = path.open("wb")
        self._writer = Writer(self._stream)
        self._writer.start(profile=PROFILE)
        self._channels: dict[str, int] = {}
        for topic, schema in TOPICS.items():
            schema_id = self._writer.register_schema(
                name=schema["title"], encoding="jsonschema", data=json.dumps(schema).encode())
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=schema_id)
        self._sequence = 0

    def write(self, topic: str, message: dict[str, Any], log_time_ns: int | None = None) -> None:
        now = time.time_ns() if log_time_ns is None else log_time_ns
        self._sequence += 1
        self._writer.add_message(self._channels[topic], log_time=now,
                                 data=orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY),
                                 publish_time=now, sequence=self._sequence)

    def close(self) -> None:
        self._writer.finish()  # type: ignore[no-untyped-call]
        self._stream.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Trace:
    """An episode read back: its header, per-step records (topics merged by step), summary."""

    path: Path
    episode: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    topic_counts: dict[str, int] = field(default_factory=dict)


def iter_messages(path: Path, topics: Sequence[str] | None = None
                  ) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(topic, log_time_ns, decoded message) in log-time order."""
    with path.open("rb") as stream:
        reader = make_reader(stream)
        for _schema_rec, channel, message in reader.iter_messages(topics=topics):
            yield channel.topic, message.log_time, orjson.loads(message.data)


def read_trace(path: Path) -> Trace:
    episode: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    by_step: dict[int, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for topic, _t, msg in iter_messages(path):
        counts[topic] = counts.get(topic, 0) + 1
        if topic == "/eval/episode":
            episode = msg
        elif topic == "/eval/summary":
            summary = msg
        else:
            part = topic.rsplit("/", 1)[-1]
            by_step.setdefault(int(msg["step"]), {})[part] = msg
    steps = [{"step": s, **by_step[s]} for s in sorted(by_step)]
    return Trace(path, episode, steps, summary, counts)


def find_traces(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.mcap"))


def describe(trace: Trace) -> str:
    routes: dict[str, int] = {}
    for step in trace.steps:
        route = step.get("router", {}).get("route", "")
        routes[route or "(no reply)"] = routes.get(route or "(no reply)", 0) + 1
    ep, sm = trace.episode, trace.summary
    return (f"{trace.path.name}: arm={ep.get('arm')} task={ep.get('task')} "
            f"steps={len(trace.steps)} success={sm.get('success')} routes={routes}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.traces",
                                     description="Summarise MCAP episode traces")
    parser.add_argument("paths", nargs="+", type=Path, help="MCAP files or folders")
    args = parser.parse_args(argv)
    for path in args.paths:
        for file in find_traces(path) if path.is_dir() else [path]:
            print(describe(read_trace(file)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
