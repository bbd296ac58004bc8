"""The decision log and evaluation traces as a ROS 2 bag (MCAP, `ros2` profile, CDR messages),
which Foxglove, `ros2 bag` (rosbag2_storage_mcap) and rosbags open.

    python -m ros2_bridge.bag export --decision-log redis://127.0.0.1:6379/0 --out log.mcap
    python -m ros2_bridge.bag export --decision-log decisions.jsonl \\
        --trace results/eval/<stamp>/traces --out run.mcap

The decision log lives in the Redis stream `router:decisions` (docs/interfaces.md); a file is
JSON lines, each a DecisionRecord or a stream entry `{"decision_id", "record": "<json>"}`.
Topics: `/router/decisions` (robot_policy_router/msg/Decision) and `/router/decisions/json`
(std_msgs/msg/String, the entry verbatim), stamped with the entry's `ts`. A trace (one episode,
evaluation/traces.py) gives `/eval/<arm>/observation` and `/eval/<arm>/action`
(std_msgs/msg/Float64MultiArray: the state, the applied action) and `/eval/<arm>/<part>/json`
for each of its records verbatim, at the trace's own log times.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import redis
from mcap_ros2.writer import Writer

from evaluation.traces import find_traces, iter_messages
from ros2_bridge.bag_msgs import DECISION, FLOAT64_MULTI_ARRAY, STRING, decision_message
from ros2_bridge.bag_msgs import float64_array as array
from router_service.redis_store import DECISIONS_STREAM

DECISIONS_TOPIC = "/router/decisions"
_PAGE = 1000


def read_decision_log(source: str) -> Iterator[bytes]:
    """Each entry's DecisionRecord JSON, oldest first, from a Redis URL or a JSON-lines file."""
    if re.match(r"^(redis|rediss|unix)://", source):
        yield from _from_redis(source)
        return
    with Path(source).open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            entry = orjson.loads(line)
            record = entry.get("record")
            yield record.encode() if isinstance(record, str) else orjson.dumps(entry)


def _from_redis(url: str) -> Iterator[bytes]:
    """Pages through the stream (a long log never sits in memory whole); what the router
    appends meanwhile is read too, until a page comes back empty."""
    client = redis.Redis.from_url(url, decode_responses=True)
    start = "-"
    try:
        while rows := cast(list[tuple[str, dict[str, str]]],
                           client.xrange(DECISIONS_STREAM, min=start, count=_PAGE)):
            for _entry_id, fields in rows:
                yield fields["record"].encode()
            start = "(" + rows[-1][0]  # exclusive: after the last one read
    finally:
        client.close()


def topic_token(name: str) -> str:
    """A ROS topic name token: [A-Za-z0-9_], not starting with a digit."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    return "_" + token if token[0].isdigit() else token


class BagWriter:
    def __init__(self, stream: Any) -> None:
        self._writer = Writer(stream)
        self._schemas = {name: self._writer.register_msgdef(name, text)
                         for name, text in (STRING, FLOAT64_MULTI_ARRAY, DECISION)}
        self.counts: Counter[str] = Counter()

    def write(self, topic: str, typename: str, message: dict[str, Any], t_ns: int) -> None:
        self.counts[topic] += 1
        self._writer.write_message(topic, self._schemas[typename], message, log_time=t_ns,
                                   publish_time=t_ns, sequence=self.counts[topic])

    def decision(self, raw: bytes) -> None:
        entry = orjson.loads(raw)
        t_ns = round(float(entry["ts"]) * 1e9)
        self.write(DECISIONS_TOPIC, DECISION[0], decision_message(entry), t_ns)
        self.write(DECISIONS_TOPIC + "/json", STRING[0], {"data": raw.decode()}, t_ns)

    def trace(self, path: Path) -> None:
        arm = "unknown"
        for topic, t_ns, msg in iter_messages(path):
            part = topic.rsplit("/", 1)[-1]
            if part == "episode":
                arm = topic_token(str(msg.get("arm") or "unknown"))
            base = f"/eval/{arm}/{part}"
            if part == "observation":
                self.write(base, FLOAT64_MULTI_ARRAY[0], array(msg["state"], "state"), t_ns)
            elif part == "action":
                self.write(base, FLOAT64_MULTI_ARRAY[0],
                           array(msg["applied_action"], "action"), t_ns)
            self.write(base + "/json", STRING[0], {"data": orjson.dumps(msg).decode()}, t_ns)

    def finish(self) -> None:
        self._writer.finish()  # type: ignore[no-untyped-call]


def export(out: Path, decision_log: str | None = None,
           traces: Sequence[Path] = ()) -> dict[str, int]:
    """Writes the bag; returns messages per topic."""
    files = [f for t in traces for f in (find_traces(t) if t.is_dir() else [t])]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as stream:
        bag = BagWriter(stream)
        for raw in read_decision_log(decision_log) if decision_log else ():
            bag.decision(raw)
        for file in files:
            bag.trace(file)
        bag.finish()
    return dict(bag.counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ros2_bridge.bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("export", help="write an MCAP ROS 2 bag")
    cmd.add_argument("--decision-log", help="redis://... URL or JSON-lines file")
    cmd.add_argument("--trace", type=Path, action="append", default=[],
                     help="an episode trace (.mcap) or a folder of them; repeatable")
    cmd.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.decision_log and not args.trace:
        parser.error("give --decision-log and/or --trace")
    counts = export(args.out, args.decision_log, args.trace)
    for topic, n in sorted(counts.items()):
        print(f"{n:8d}  {topic}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
