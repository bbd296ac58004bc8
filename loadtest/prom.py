"""Scrape Prometheus text-format metrics and diff counters between two scrapes.

The straggler comparison needs how many upstream requests the router made during a run
(`router_upstream_duration_seconds_count`, summed over routes): scrape before, scrape after,
subtract. Only cumulative series are diffed (counters, histogram/summary `_count`/`_sum`/
`_bucket`); a series that went down was reset (router restart) and its delta is its new value.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_fd_to_metric_families

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]

_CUMULATIVE_TYPES = {"counter", "histogram", "summary"}
_CUMULATIVE_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


class PromParseError(ValueError):
    pass


@dataclass
class Scrape:
    samples: dict[SeriesKey, float] = field(default_factory=dict)
    # family name (as prometheus_client names it: a counter without `_total`) -> TYPE
    types: dict[str, str] = field(default_factory=dict)

    def family_type(self, sample_name: str) -> str:
        if sample_name in self.types:
            return self.types[sample_name]
        for suffix in (*_CUMULATIVE_SUFFIXES, "_created"):
            base = sample_name.removesuffix(suffix)
            if base != sample_name and base in self.types:
                return self.types[base]
        return "untyped"

    def is_cumulative(self, sample_name: str) -> bool:
        if sample_name.endswith("_created"):
            return False  # creation timestamps, not counts
        kind = self.family_type(sample_name)
        if kind == "untyped":
            return sample_name.endswith(_CUMULATIVE_SUFFIXES)
        return kind in _CUMULATIVE_TYPES


def parse_text(text: str) -> Scrape:
    """Parse with prometheus_client's text parser; a malformed line raises PromParseError.

    The library names a counter family without `_total` (its samples keep it) and puts
    histogram/summary `_bucket`/`_count`/`_sum` samples under the base family, which is what
    `Scrape.family_type` strips suffixes for. Families without a TYPE line (the library's
    "unknown") are not recorded, so they stay "untyped" and are judged by suffix.
    """
    scrape = Scrape()
    lines = io.StringIO(text)
    try:
        for family in text_fd_to_metric_families(lines):
            if family.type != "unknown":
                scrape.types[family.name] = family.type
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                scrape.samples[(sample.name, labels)] = float(sample.value)
    except ValueError as exc:  # the parser reads line by line: tell() is just past the bad one
        read = text[: lines.tell()]
        lineno = read.count("\n") + (not read.endswith("\n"))
        bad = read.splitlines()[-1] if read.strip() else ""
        detail = str(exc) or "malformed"
        raise PromParseError(f"line {lineno}: cannot parse {bad!r}: {detail}") from exc
    return scrape


@dataclass(frozen=True)
class SeriesDelta:
    name: str
    labels: dict[str, str]
    delta: float
    reset: bool


def diff_counters(before: Scrape, after: Scrape, prefix: str = "") -> list[SeriesDelta]:
    out = []
    for (name, labels), value in sorted(after.samples.items()):
        if not name.startswith(prefix) or not after.is_cumulative(name):
            continue
        old = before.samples.get((name, labels), 0.0)  # absent before: created during the run
        reset = value < old
        delta = value if reset else value - old
        if math.isnan(delta):
            continue
        out.append(SeriesDelta(name, dict(labels), delta, reset))
    return out


def sum_delta(deltas: list[SeriesDelta], name: str, **labels: str) -> float:
    """Sum of the deltas of `name` over series whose labels include `labels`."""
    return sum(
        d.delta
        for d in deltas
        if d.name == name and all(d.labels.get(k) == v for k, v in labels.items())
    )


def scrape(url: str, headers: dict[str, str] | None = None, timeout_s: float = 5.0) -> Scrape:
    resp = httpx.get(url, headers=headers or {}, timeout=timeout_s)
    resp.raise_for_status()
    return parse_text(resp.text)
