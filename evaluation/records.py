"""One episode's result, as kept raw in `episodes.jsonl`: every number in the report is derived
from these records (and the run's metadata), so the report can be rebuilt from the folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

NO_REPLY = ""  # route/task of a step that got no reply (shed, error)


class EpisodeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    arm: str
    task: str
    config_index: int
    episode_id: str
    robot_id: str
    declared_task: str | None
    success: bool
    steps: int
    first_success_step: int | None = None
    total_reward: float = 0.0
    eval_error: str | None = None  # the episode itself was invalid (env or runner failure)
    # Per control step, in order (all the same length as `steps` of requests sent):
    rtt_ms: list[float] = []  # robot-measured round trip; -1 when no reply came back
    routes: list[str] = []  # final route of the reply ("hold" included), NO_REPLY when none
    resolved_tasks: list[str] = []  # task the router acted on, NO_REPLY when none
    late: list[bool] = []  # no usable action within the control deadline
    fallback: list[bool] = []  # the reply came from a fallback (incl. hold)
    router_total_ms: list[float] = []  # the router's own receipt-to-reply time; -1 when none
    # The applied action's position part at its bound (runner.saturated); empty in records
    # written before it was kept, which attribution reads as "no evidence".
    saturated: list[bool] = []
    # The evaluation's own time per step, apart from the stack's round trip (empty in records
    # written before it was kept): the tick's client-side work outside `rtt_ms` (observation
    # encoding, env step, bookkeeping, trace writing), and whether work + round trip ran past
    # the control period (the next tick then started late, at once).
    harness_ms: list[float] = []
    overran: list[bool] = []
    statuses: dict[str, int] = {}  # ok / shed / expired / rejected / error
    fallback_reasons: dict[str, int] = {}
    decision_reasons: dict[str, int] = {}
    router_misses: int = 0  # replies the router itself marked deadline_met = false
    feedback: dict[str, Any] = {}
    trace: str = ""  # MCAP file, relative to the result folder
    wall_s: float = 0.0
    pid: int = 0  # the robot process that ran the episode (0: not recorded)

    @property
    def failed(self) -> bool:
        return not self.success

    def route_counts(self) -> Counter[str]:
        return Counter(r for r in self.routes if r != NO_REPLY)

    def main_route(self) -> str:
        counts = self.route_counts()
        return counts.most_common(1)[0][0] if counts else NO_REPLY

    def wrong_task_steps(self) -> int:
        return sum(1 for t in self.resolved_tasks if t != NO_REPLY and t != self.task)

    def replied_latencies(self) -> list[float]:
        return [v for v in self.rtt_ms if v >= 0]


def write_jsonl(path: Path, episodes: list[EpisodeResult]) -> None:
    with path.open("w") as handle:
        for episode in episodes:
            handle.write(episode.model_dump_json() + "\n")


def append_jsonl(path: Path, episode: EpisodeResult) -> None:
    with path.open("a") as handle:
        handle.write(episode.model_dump_json() + "\n")


def read_jsonl(path: Path) -> list[EpisodeResult]:
    return [EpisodeResult.model_validate_json(line)
            for line in path.read_text().splitlines() if line.strip()]
