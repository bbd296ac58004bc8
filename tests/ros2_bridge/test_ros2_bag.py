"""The decision log and evaluation traces exported as a ROS 2 MCAP bag, read back with two
independent readers: mcap_ros2 (the MCAP project's ROS 2 decoder) and rosbags (its own MCAP
reader and CDR deserializer, types registered from the .msg text in the bag)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from evaluation.traces import TraceWriter
from ros2_bridge.bag import export, main, topic_token
from ros2_bridge.bag_msgs import TIMING_KEYS, decision_message
from router_service.records import CandidateRecord, DecisionRecord
from router_service.redis_store import RedisStore
from router_service.store import LoggedDecision
from tests.router_fixtures import RedisServer, RouterFactory, act_body

STRINGS = ("decision_id", "replica", "contract_version", "robot_id", "key_id", "episode_id",
           "task_declared", "task", "task_source", "route_chosen", "reason", "route", "fallback")
NUMBERS = ("task_confidence", "budget_ms", "queued_ms")


def record(i: int, declared: str | None = "reach-v3") -> DecisionRecord:
    rng = np.random.default_rng(i)
    return DecisionRecord(
        decision_id=f"d{i:05d}", ts=1_796_000_000.0 + i * 0.02 + 1e-4, replica="r-1-42",
        contract_version="ci-7", robot_id=f"robot-{i % 3}", key_id="0123abcd",
        episode_id="ep-1", task_declared=declared, task="reach-v3",
        task_source="declared" if declared else "inferred", task_confidence=0.875,
        task_probs=None if declared else [0.875, 0.1, 0.025],
        state=rng.normal(0, 1, 39).tolist(), budget_ms=20.0, queued_ms=0.125,
        candidates=[CandidateRecord("specialist_reach_v3", 0.95, 6.5, 0.94, True, True),
                    CandidateRecord("generalist", 0.7, 4.25, 0.69, True, False)],
        route_chosen="specialist_reach_v3", reason="best_score", route="generalist",
        fallback=None if i % 2 else "upstream_error",
        path=["specialist_reach_v3:error", "generalist:ok"], hedged=bool(i % 2),
        batch_size=1 + i % 4, deadline_met=i % 5 != 0,
        timing_ms={"queued": 0.125, "scoring": 0.5, "upstream": 4.0, "total": 5.25},
        action=rng.uniform(-1, 1, 4).astype(np.float32).tolist())


def assert_decision_equals(msg: Any, entry: dict[str, Any]) -> None:
    """A decoded Decision (either reader's object) against the log entry it came from."""
    ts_ns = round(entry["ts"] * 1e9)
    assert (msg.stamp.sec, msg.stamp.nanosec) == divmod(ts_ns, 1_000_000_000)
    for name in STRINGS:
        assert getattr(msg, name) == (entry[name] or ""), name
    for name in NUMBERS:
        assert getattr(msg, name) == entry[name], name
    for name in ("state", "action"):
        assert list(getattr(msg, name)) == entry[name], name
    assert list(msg.task_probs) == (entry["task_probs"] or [])
    assert list(msg.path) == entry["path"]
    assert (msg.hedged, msg.batch_size, msg.deadline_met) == (
        entry["hedged"], entry["batch_size"], entry["deadline_met"])
    for key in TIMING_KEYS:
        assert getattr(msg, f"timing_{key}_ms") == entry["timing_ms"][key]
    assert [{k: getattr(c, k) for k in entry["candidates"][0]} for c in msg.candidates] == \
        entry["candidates"]


def read_back(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(log_time_ns, message)] by mcap_ros2's decoder (what its deprecated
    `read_ros2_messages` wraps)."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with bag.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, decoded in reader.iter_decoded_messages():
            out.setdefault(channel.topic, []).append((message.log_time, decoded))
    return out


def read_with_rosbags(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, reader.deserialize(raw, conn.msgtype)))
    return out


def test_decision_log_file_round_trips_through_both_readers(tmp_path: Path) -> None:
    records = [record(i, declared=None if i % 3 == 0 else "reach-v3") for i in range(6)]
    lines = [r.to_json() for r in records[:3]]  # bare DecisionRecords ...
    lines += [orjson.dumps({"decision_id": r.decision_id, "record": r.to_json().decode()})
              for r in records[3:]]  # ... and stream entries, as redis-cli would give them
    log = tmp_path / "decisions.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n\n")
    bag = tmp_path / "log.mcap"
    assert export(bag, str(log)) == {"/router/decisions": 6, "/router/decisions/json": 6}
    entries = [json.loads(r.to_json()) for r in records]
    for reader in (read_back, read_with_rosbags):
        topics = reader(bag)
        assert [t for t, _ in topics["/router/decisions"]] == [
            round(e["ts"] * 1e9) for e in entries]
        for (_, msg), entry in zip(topics["/router/decisions"], entries, strict=True):
            assert_decision_equals(msg, entry)
        assert [json.loads(m.data) for _, m in topics["/router/decisions/json"]] == entries


def test_the_bag_is_a_ros2_profile_mcap_with_cdr_that_rosbags_reencodes_identically(
        tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_bytes(record(1).to_json() + b"\n")
    bag = tmp_path / "log.mcap"
    export(bag, str(log))
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        typestore = reader.typestore  # with the bag's own types registered from its .msg text
    with bag.open("rb") as stream:
        mcap = make_reader(stream)
        assert mcap.get_header().profile == "ros2"
        for schema, channel, message in mcap.iter_messages():
            assert schema is not None and schema.encoding == "ros2msg"
            assert channel.message_encoding == "cdr"
            decoded = typestore.deserialize_cdr(message.data, schema.name)
            assert bytes(typestore.serialize_cdr(decoded, schema.name)) == message.data


def test_decision_log_from_redis_pages_through_the_stream(tmp_path: Path,
                                                          redis_server: RedisServer) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/5"  # a db of its own in the session's server
    redis.Redis.from_url(url).flushdb()
    records = [record(i) for i in range(2300)]  # more than two pages

    async def append() -> None:  # the router's own writer (RedisStore), not a copy of it
        store = RedisStore(url, op_timeout_s=2.0)
        await store.append_decisions([LoggedDecision(r.decision_id, r.to_json())
                                      for r in records])
        await store.close()

    asyncio.run(append())
    bag = tmp_path / "redis.mcap"
    assert export(bag, url)["/router/decisions"] == len(records)
    decoded = read_back(bag)["/router/decisions"]
    assert [m.decision_id for _, m in decoded] == [r.decision_id for r in records]
    assert_decision_equals(decoded[-1][1], json.loads(records[-1].to_json()))


def test_traces_become_per_arm_array_topics(tmp_path: Path) -> None:
    trace = tmp_path / "traces" / "router" / "reach-v3" / "ep-9.mcap"
    states = [np.random.default_rng(s).normal(0, 1, 39) for s in range(3)]
    with TraceWriter(trace) as writer:
        writer.write("/eval/episode", {"episode_id": "ep-9", "arm": "router+hedge"}, 1000)
        for step, state in enumerate(states):
            t = 2000 + step * 20_000_000
            writer.write("/eval/observation", {"step": step, "state": state,
                                               "sent_state": None}, t)
            writer.write("/eval/action", {"step": step, "reply_action": [0.5] * 4,
                                          "applied_action": [step / 4] * 4,
                                          "source": "reply"}, t)
        writer.write("/eval/summary", {"success": True, "steps": 3}, 90_000_000)
    bag = tmp_path / "eval.mcap"
    assert main(["export", "--trace", str(tmp_path / "traces"), "--out", str(bag)]) == 0
    arm = topic_token("router+hedge")
    assert arm == "router_hedge"
    for reader in (read_back, read_with_rosbags):
        topics = reader(bag)
        observations = topics[f"/eval/{arm}/observation"]
        assert [t for t, _ in observations] == [2000 + s * 20_000_000 for s in range(3)]
        for (_, msg), state in zip(observations, states, strict=True):
            assert list(msg.data) == state.tolist()
            assert (msg.layout.dim[0].label, msg.layout.dim[0].size) == ("state", 39)
        assert [list(m.data) for _, m in topics[f"/eval/{arm}/action"]] == [
            [s / 4] * 4 for s in range(3)]
        summary = json.loads(topics[f"/eval/{arm}/summary/json"][0][1].data)
        assert summary == {"success": True, "steps": 3}
        assert json.loads(topics[f"/eval/{arm}/action/json"][1][1].data)["source"] == "reply"


def test_nulls_and_missing_timing_keys() -> None:
    entry = json.loads(record(0, declared=None).to_json())
    del entry["timing_ms"]["upstream"]
    msg = decision_message(entry)
    assert msg["task_declared"] == "" and msg["fallback"] == "upstream_error"
    assert math.isnan(msg["timing_upstream_ms"]) and msg["timing_total_ms"] == 5.25


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.redis
def test_a_real_routers_decisions_export_with_its_replies(
        tmp_path: Path, start_router: RouterFactory, redis_server: RedisServer,
        triton_faults: Any) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    router = start_router(redis_url=url)
    state = np.random.default_rng(3).normal(0, 0.3, 39).tolist()
    with router.client() as http:
        replies = [http.post("/v1/act", json=act_body(state, episode=f"ep-{i}")).json()
                   for i in range(3)]
    deadline = time.monotonic() + 10.0  # the log is flushed off the reply path, every 100 ms
    while client.xlen("router:decisions") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    bag = tmp_path / "router.mcap"
    assert main(["export", "--decision-log", url, "--out", str(bag)]) == 0
    decoded = [m for _, m in read_with_rosbags(bag)["/router/decisions"]]
    assert [m.decision_id for m in decoded] == [r["decision_id"] for r in replies]
    for msg, reply in zip(decoded, replies, strict=True):
        assert (msg.route, msg.task, msg.deadline_met) == (
            reply["route"], reply["task"], reply["deadline_met"])
        np.testing.assert_allclose(msg.action, reply["action"], rtol=0, atol=1e-6)
        assert list(msg.state) == state
