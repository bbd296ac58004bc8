"""The ROS 2 message definitions the bag is written with, as .msg text, and the conversions
from the router's records to them.

MCAP's `ros2msg` schema is the top-level .msg followed by every type it uses, each after a line
of 80 `=` and `MSG: pkg/Name`, which is how `ros2 bag record` writes it and what Foxglove,
mcap_ros2 and rosbags read. The standard types are quoted from their ROS 2 packages; Decision and
Candidate are this project's own (`robot_policy_router/msg/...`), one field per DecisionRecord
field (router_service/records.py). Numbers stay float64: the log's JSON numbers are doubles,
and a float32 copy would no longer equal the log entry it came from.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DECISION", "FLOAT64_MULTI_ARRAY", "STRING", "decision_message", "float64_array"]

_SEPARATOR = "=" * 80
_TIME = ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec\n")
_DIMENSION = ("std_msgs/MultiArrayDimension", "string label\nuint32 size\nuint32 stride\n")
_LAYOUT = ("std_msgs/MultiArrayLayout", "MultiArrayDimension[] dim\nuint32 data_offset\n")
_CANDIDATE = ("robot_policy_router/Candidate", """\
string route
float64 success
float64 predicted_ms
float64 score
bool fits_budget
bool usable
""")
_DECISION = """\
# One act decision of the router. A JSON null is "" for a string, [] for an array;
# a timing key the entry lacks is NaN. /router/decisions/json has the entry verbatim.
builtin_interfaces/Time stamp
string decision_id
string replica
string contract_version
string robot_id
string key_id
string episode_id
string task_declared
string task
string task_source
float64 task_confidence
float64[] task_probs
float64[] state
float64 budget_ms
float64 queued_ms
robot_policy_router/Candidate[] candidates
string route_chosen
string reason
string route
string fallback
string[] path
bool hedged
int32 batch_size
bool deadline_met
float64 timing_queued_ms
float64 timing_scoring_ms
float64 timing_upstream_ms
float64 timing_total_ms
float64[] action
"""
TIMING_KEYS = ("queued", "scoring", "upstream", "total")


def _schema(top: str, *deps: tuple[str, str]) -> str:
    return top + "".join(f"{_SEPARATOR}\nMSG: {name}\n{text}" for name, text in deps)


# (ROS type name, ros2msg schema text)
STRING = ("std_msgs/msg/String", "string data\n")
FLOAT64_MULTI_ARRAY = ("std_msgs/msg/Float64MultiArray",
                       _schema("MultiArrayLayout layout\nfloat64[] data\n", _LAYOUT, _DIMENSION))
DECISION = ("robot_policy_router/msg/Decision", _schema(_DECISION, _TIME, _CANDIDATE))


def float64_array(values: list[float], label: str) -> dict[str, Any]:
    n = len(values)
    return {"layout": {"dim": [{"label": label, "size": n, "stride": n}], "data_offset": 0},
            "data": [float(v) for v in values]}


def decision_message(entry: dict[str, Any]) -> dict[str, Any]:
    """A decision-log entry (the DecisionRecord's JSON, decoded) as a Decision message."""
    ts_ns = round(float(entry["ts"]) * 1e9)
    timing = entry.get("timing_ms") or {}
    msg: dict[str, Any] = {
        "stamp": {"sec": ts_ns // 1_000_000_000, "nanosec": ts_ns % 1_000_000_000},
        "task_probs": [float(p) for p in entry.get("task_probs") or []],
        "state": [float(x) for x in entry["state"]],
        "action": [float(x) for x in entry["action"]],
        "candidates": [dict(c) for c in entry.get("candidates") or []],
        "path": [str(p) for p in entry.get("path") or []],
        "batch_size": int(entry.get("batch_size", 0)),
        **{f"timing_{k}_ms": float(timing.get(k, math.nan)) for k in TIMING_KEYS},
    }
    for name in ("decision_id", "replica", "contract_version", "robot_id", "key_id",
                 "episode_id", "task_declared", "task", "task_source", "route_chosen",
                 "reason", "route", "fallback"):
        msg[name] = str(entry.get(name) or "")
    for name in ("task_confidence", "budget_ms", "queued_ms"):
        msg[name] = float(entry.get(name) or 0.0)
    for name in ("hedged", "deadline_met"):
        msg[name] = bool(entry.get(name))
    return msg
