"""Scrape Prometheus text-format metrics and diff counters between two scrapes.

The straggler comparison needs how many upstream requests the router made during a run
(`router_upstream_duration_seconds_count`, summed over routes): scrape before, scrape after,
subtract. Only cumulative series are diffed (counters, histogram/summary `_count`/`_sum`/
`_bucket`); a series that went down was reset (router restart) and its delta is its new value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import httpx

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]

_CUMULATIVE_TYPES = {"counter", "histogram", "summary"}
_CUMULATIVE_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class PromParseError(ValueError):
    pass


@dataclass
class Scrape:
    samples: dict[SeriesKey, float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # family name -> TYPE

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


def _parse_labels(text: str) -> Labels:
    inner = text[1:-1].strip()
    labels: list[tuple[str, str]] = []
    pos = 0
    while pos < len(inner):
        m = _LABEL.match(inner, pos)
        if m is None:
            raise PromParseError(f"bad label set {text!r}")
        value = re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group(0)], m.group(2))
        labels.append((m.group(1), value))
        pos = m.end()
    return tuple(sorted(labels))


def parse_text(text: str) -> Scrape:
    scrape = Scrape()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                scrape.types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise PromParseError(f"line {lineno}: cannot parse {raw!r}")
        name, labels, value = m.group(1), m.group(2), m.group(3)
        try:
            number = float(value)  # float() accepts +Inf, -Inf, NaN as Prometheus writes them
        except ValueError:
            raise PromParseError(f"line {lineno}: bad value {value!r}") from None
        scrape.samples[(name, _parse_labels(labels) if labels else ())] = number
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
