"""Where the router's time goes: py-spy samples of the router process under load, grouped.

py-spy runs with `--nonblocking`: a blocking sampler stops the process for every sample, the
router's event loop then lags and it sheds load, so the profile would show a different process.
Idle samples (the loop waiting in epoll) are left out by py-spy, so shares are of busy time.

Grouping: the process bootstrap every stack starts with (runpy, `uvicorn.run`, `asyncio.run`,
the event loop's own run/_run_once/Handle._run frames) is cut off; then each sample goes to the
innermost frame that belongs to a known group (so `asyncio.wait` called by the forwarder counts
as routing, `numpy` called by the upstream client as tritonclient). A sample with no such frame
is event-loop/stdlib work of its own. "total" is inclusive: a sample counts for every group that
appears anywhere in its (cut) stack.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^()]+?)(?::(?P<line>\d+))?\)$")

# Ordered: the first group whose pattern is in a frame's file wins (most specific first).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decision log", ("router_service/decision_log.py",)),
    ("redis (leases, store)", ("redis/", "router_service/redis_store.py",
                               "router_service/leases.py", "router_service/store.py")),
    ("metrics (prometheus_client)", ("prometheus_client/", "router_service/metrics.py")),
    ("tritonclient/grpc (upstream call)", ("tritonclient/", "router_service/upstream.py",
                                           "grpc/", "google/protobuf/")),
    ("scoring, routing, forwarding", ("router_service/scoring.py", "router_service/engine.py",
                                      "router_service/forwarding.py", "onnxruntime/",
                                      "router_service/route_health.py",
                                      "router_service/classifier.py",
                                      "router_service/runtime.py")),
    ("JSON/pydantic parsing and encoding", ("pydantic/", "pydantic_core/", "orjson",
                                            "router_service/http_api/schemas.py",
                                            "router_service/http_api/responses.py",
                                            "json/")),
    ("HTTP server/framework (uvicorn, starlette, fastapi)", (
        "uvicorn/", "starlette/", "fastapi/", "httptools/", "h11/", "anyio/",
        "router_service/http_api/", "router_service/auth.py")),
    ("gRPC server (router_service/grpc_api)", ("router_service/grpc_api/",)),
    ("other router_service code", ("router_service/",)),
)
# py-spy without --native (which needs a blocking sampler) sees no C frames: a stack that ends
# in the loop's runner is uvloop itself (socket I/O, callbacks, grpc.aio's Cython completion
# queue); one that ends in Thread.run is a thread running C code (grpcio's poller thread).
EVENT_LOOP = "event loop itself (uvloop/C: socket I/O, scheduling), asyncio, stdlib"
THREADS = "background threads in C code (e.g. grpcio's poller)"
_BOOTSTRAP_FILES = ("runpy.py", "router_service/__main__.py", "uvicorn/main.py",
                    "asyncio/runners.py")
_BOOTSTRAP_FUNCS = {"run_until_complete", "run_forever", "_run_once", "Handle._run",
                    "Server.run", "Server.serve", "_serve", "BaseEventLoop.run_until_complete",
                    "BaseEventLoop.run_forever", "BaseEventLoop._run_once"}


# Work done on behalf of the decision log counts there even when an inner frame belongs to
# another group (json encoding of its entry, the Redis XADD that ships it).
OWNER_GROUPS = ("decision log",)
ENGINE = "router_service/engine.py"


@dataclass(frozen=True)
class Frame:
    func: str
    file: str
    line: int = 0

    @property
    def label(self) -> str:
        return f"{self.func} ({self.file})"

    @property
    def label_line(self) -> str:
        return f"{self.func} ({self.file}:{self.line})"


def parse_frame(text: str) -> Frame | None:
    m = _FRAME.match(text.strip())
    if m is None:
        return None
    return Frame(m.group("func"), m.group("file"), int(m.group("line") or 0))


def decision_log_lines(engine_py: Path) -> frozenset[int]:
    """Lines of `...decision_log.append(...)` calls in the engine: the entry is built (orjson,
    C code, invisible to py-spy) inside that call's arguments, so those engine lines are
    decision-log time, not routing time. Read from the source the profiled router ran."""
    try:
        tree = ast.parse(engine_py.read_text())
    except (OSError, SyntaxError):
        return frozenset()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "decision_log"):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def parse_collapsed(text: str) -> list[tuple[list[Frame], int]]:
    """py-spy `--format raw` (collapsed stacks: `root;...;leaf count`), root first."""
    out = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in (parse_frame(p) for p in stack.split(";")) if f is not None]
        out.append((frames, int(count)))
    return out


def _is_bootstrap(f: Frame) -> bool:
    return (f.func == "<module>" or f.file.endswith(_BOOTSTRAP_FILES)
            or f.func in _BOOTSTRAP_FUNCS)


def cut_bootstrap(frames: list[Frame]) -> list[Frame]:
    """Drop the frames up to the last bootstrap frame (the loop's run/_run_once/Handle._run)."""
    last = -1
    for i, f in enumerate(frames):
        if _is_bootstrap(f):
            last = i
    return frames[last + 1:]


def group_of(f: Frame, log_lines: frozenset[int] = frozenset()) -> str | None:
    if f.line in log_lines and f.file.endswith(ENGINE):
        return "decision log"
    for name, patterns in GROUPS:
        if any(p in f.file for p in patterns):
            return name
    return None


def summarise(stacks: list[tuple[list[Frame], int]], rate_hz: float, duration_s: float,
              top: int = 15, log_lines: frozenset[int] = frozenset()) -> dict[str, Any]:
    self_groups: Counter[str] = Counter()
    total_groups: Counter[str] = Counter()
    self_frames: Counter[str] = Counter()
    total_frames: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks:
        samples += count
        body = cut_bootstrap(frames)
        groups = [g for g in (group_of(f, log_lines) for f in body) if g is not None]
        fallback = THREADS if body and body[-1].file.endswith("threading.py") else EVENT_LOOP
        owner = next((g for g in OWNER_GROUPS if g in groups), None)
        self_groups[owner or (groups[-1] if groups else fallback)] += count
        for g in set(groups) or {fallback}:
            total_groups[g] += count
        if body:
            self_frames[body[-1].label_line] += count
        for label in {f.label for f in body}:
            total_frames[label] += count

    def share(c: Counter[str], n: int | None = None) -> list[dict[str, Any]]:
        return [{"name": k, "samples": v, "share": v / samples if samples else None}
                for k, v in c.most_common(n)]

    possible = rate_hz * duration_s
    return {
        "samples": samples,
        "rate_hz": rate_hz,
        "duration_s": duration_s,
        # idle samples are not recorded: busy samples / possible samples ~ main-thread CPU share
        "busy_share_of_wall": samples / possible if possible else None,
        "groups_self": share(self_groups),
        "groups_total": share(total_groups),
        "top_self": share(self_frames, top),  # by line: points at the statement
        "top_total_router": [r for r in share(total_frames) if "router_service/" in r["name"]][
            :top],
        "top_total": share(total_frames, top),
    }


def py_spy_binary() -> str:
    local = Path(sys.executable).parent / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("py-spy not found (it is in the project's venv)")
    return found


def record(pid: int, out_file: Path, duration_s: float, rate_hz: int = 100) -> list[str]:
    """Sample `pid` for `duration_s` without pausing it; return the command that ran."""
    argv = [py_spy_binary(), "record", "--pid", str(pid), "--nonblocking", "--rate",
            str(rate_hz), "--duration", str(max(1, round(duration_s))), "--format", "raw",
            "--output", str(out_file)]
    log = out_file.with_suffix(".py-spy.log")
    with log.open("wb") as fh:
        subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return argv


def format_markdown(p: dict[str, Any], top: int = 10) -> str:
    """The profile summary as Markdown (used by the doc and written next to the raw profile)."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    total = {g["name"]: g["share"] for g in p["groups_total"]}
    lines = [
        f"{p['samples']} busy samples at {p['rate_hz']:g} Hz over {p['duration_s']:g} s "
        f"(busy ~{pct(p['busy_share_of_wall'])} of wall time on the main thread).",
        "",
        "| group | self | total (inclusive) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {g['name']} | {pct(g['share'])} | {pct(total.get(g['name']))} |"
              for g in p["groups_self"]]
    lines += ["", "Top frames by self time:", "", "| frame | self |", "|---|---:|"]
    lines += [f"| `{r['name']}` | {pct(r['share'])} |" for r in p["top_self"][:top]]
    lines += ["", "Router functions by total (inclusive) time:", "", "| frame | total |",
              "|---|---:|"]
    lines += [f"| `{r['name']}` | {pct(r['share'])} |" for r in p["top_total_router"][:top]]
    return "\n".join(lines)
