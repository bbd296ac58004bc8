"""One row per scheduled request, and the column view the statistics read.

Times are seconds from the run's origin (the plan's t=0, on the monotonic clock); latency is
`done - scheduled`, never `done - sent`: a request the generator sent late, or could not send
at all, is charged from when the robot needed it (no coordinated omission).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson


@dataclass(slots=True)
class Record:
    i: int  # index in the plan
    robot: int
    task: str  # the true task (declared or not)
    hidden: bool  # task left out of the request
    scheduled_s: float
    sent_s: float | None  # None: never sent (overflow)
    done_s: float | None
    latency_ms: float | None  # from the scheduled time; None if never completed
    status: str
    route: str | None
    fallback: str | None
    deadline_met: bool | None
    error_kind: str | None
    error_code: str | None


RECORD_FIELDS = tuple(f.name for f in fields(Record))


@dataclass(frozen=True)
class Columns:
    """Numpy columns over a set of records; NaN where a time does not exist."""

    scheduled_s: npt.NDArray[np.float64]
    sent_s: npt.NDArray[np.float64]
    latency_ms: npt.NDArray[np.float64]
    ok: npt.NDArray[np.bool_]
    route: npt.NDArray[np.str_]
    status: npt.NDArray[np.str_]
    error_kind: npt.NDArray[np.str_]
    fallback: npt.NDArray[np.bool_]
    deadline_missed_by_server: npt.NDArray[np.bool_]  # server said deadline_met=false
    deadline_met_by_server: npt.NDArray[np.bool_]  # server said deadline_met=true

    def __len__(self) -> int:
        return int(self.scheduled_s.shape[0])

    def select(self, mask: npt.NDArray[np.bool_]) -> Columns:
        return Columns(**{k: v[mask] for k, v in self.__dict__.items()})


NO_ROUTE = "(none)"


def columns(records: Sequence[Record]) -> Columns:
    def floats(values: Iterable[float | None]) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    return Columns(
        scheduled_s=floats(r.scheduled_s for r in records),
        sent_s=floats(r.sent_s for r in records),
        latency_ms=floats(r.latency_ms for r in records),
        ok=np.array([r.status == "ok" for r in records], dtype=np.bool_),
        route=np.array([r.route or NO_ROUTE for r in records], dtype=np.str_),
        status=np.array([r.status for r in records], dtype=np.str_),
        error_kind=np.array([r.error_kind or "" for r in records], dtype=np.str_),
        fallback=np.array([bool(r.fallback) for r in records], dtype=np.bool_),
        deadline_missed_by_server=np.array(
            [r.deadline_met is False for r in records], dtype=np.bool_
        ),
        deadline_met_by_server=np.array(
            [r.deadline_met is True for r in records], dtype=np.bool_
        ),
    )


def write_records(path: Path, records: Iterable[Record]) -> None:
    """JSON lines, one record each: streamable, greppable, and loadable by `read_records`."""
    with path.open("wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec))  # orjson serialises dataclasses natively
            fh.write(b"\n")


def read_records(path: Path) -> list[Record]:
    out = []
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                data = orjson.loads(line)
                out.append(Record(**{k: data.get(k) for k in RECORD_FIELDS}))
    return out
