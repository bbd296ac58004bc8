"""Find the metric names a PromQL expression selects.

Prometheus 2.42 (Debian) offers no parse endpoint nor a promtool command that lists selectors,
so this is a small lexer: it blanks what cannot be a metric name (string literals, label
matchers, range/subquery brackets, grouping label lists, numbers and durations) and keeps the
identifiers that are neither function calls nor keywords. Syntax itself is checked elsewhere by
the real parser (`promtool check rules` and a live Prometheus).
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "atan2", "inf", "nan", "start", "end",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
# by/without/on/ignoring/group_left/group_right take a parenthesised list of label names.
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# Numbers (1, 0.5, 1e6, 0x1F) and durations (5m, 1h30m) never start an identifier.
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d[\w.]*(?:[eE][+-]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_COMMENT = re.compile(r"#[^\n]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by `expr` (Grafana macros must already be substituted)."""
    text = _STRING.sub('""', expr)
    text = _COMMENT.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):  # a function or aggregation call
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names
