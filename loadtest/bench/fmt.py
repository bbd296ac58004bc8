"""Number formatting shared by the benchmark page's sections (doc.py, doc_cost.py)."""

from __future__ import annotations

from typing import Any


def num(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def pct(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def missing(summary: dict[str, Any], step: str) -> str:
    """What a section says when its step did not produce numbers."""
    errs = [e["error"].splitlines()[0] for e in summary.get("errors", []) if e["step"] == step]
    if errs:
        return f"_Not measured: {errs[0]}_"
    chosen = summary.get("steps")
    if chosen is not None and step.removesuffix("_grpc") not in chosen:
        return f"_Not measured in this run (`--steps {','.join(chosen)}`)._"
    return "_Not measured in this run._"
