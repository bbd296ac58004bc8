"""The benchmark page's latency table, and its sections for issue 9: router CPU per request
against the floor proxy, 1 vs 2 worker processes, and the honesty of every run (late answers
flagged on time, hold and shed shares). Rendered from `summary.json` only, like the rest of the
page (doc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loadtest.bench.fmt import missing as _missing
from loadtest.bench.fmt import num as _num
from loadtest.bench.fmt import pct as _pct
from loadtest.bench.targets import FLOOR, REFERENCE_ROWS

PATH_NAMES = {"direct-grpc": "direct Triton (KServe gRPC)", "router-http": "router (HTTP)",
              "router-grpc": "router (gRPC)", "router-ws": "router (WebSocket session)",
              "router-grpc-stream": "router (gRPC StreamAct session)",
              "router-openpi": "router (openpi websocket, msgpack)",
              "router-kserve-http": "router (KServe v2 HTTP, binary tensors)",
              "router-kserve-grpc": "router (KServe v2 gRPC ModelInfer)",
              "floor": "floor: FastAPI + one unary gRPC call",
              "grpc-floor": "gRPC transport alone: grpc.aio server, fixed answer"}
LAT_KEYS = ("p50", "p90", "p99", "p99.9", "max")


def latency_table(rows: list[dict[str, Any]], ratios: bool) -> list[str]:
    head = "| run | requests | " + " | ".join(f"{k} ms" for k in LAT_KEYS)
    head += " | within budget | errors |"
    lines = [head, "|---|---:|" + "---:|" * (len(LAT_KEYS) + 2)]
    for r in rows:
        lat = r["latency_ms"]
        errs = ", ".join(f"{k} {v}" for k, v in r["errors_by_kind"].items()) or "0"
        lines.append(f"| {PATH_NAMES.get(r['name'], r['name'])} | {r['requests']} | "
                     + " | ".join(_num(lat.get(k)) for k in LAT_KEYS)
                     + f" | {_pct(r['fraction_within_budget'], 2)} | {errs} |")
        if ratios and r.get("ratio_to_direct"):
            lines.append("| &nbsp;&nbsp;x direct | | " + " | ".join(
                "-" if r["ratio_to_direct"].get(k) is None else f"{r['ratio_to_direct'][k]:.2f}x"
                for k in LAT_KEYS) + " | | |")
    return lines


def cpu_section(s: dict[str, Any]) -> list[str]:
    c = s.get("cpu")
    lines = ["", "## Router CPU per request", ""]
    if not c:
        return [*lines, _missing(s, "cpu")]
    lines += [
        "CPU time of the serving process (and its children) from `/proc/<pid>/stat` (utime + "
        "stime) around each run, divided by the requests it answered, ramp included; the "
        "floor is a minimal FastAPI endpoint that parses the body and forwards each request "
        "to Triton with one unary `grpc.aio` `ModelInfer` (`loadtest/floor_proxy.py`), "
        "measured in the same run at the same rates. The gRPC transport alone is a `grpc.aio` "
        "server of the router's service that answers every `Act` at once with a fixed action "
        "(`loadtest/grpc_floor.py`): what any Python gRPC front end pays per request before "
        "doing any work, the part of the router's gRPC cost that no change to its engine can "
        "remove. Every task declared; the batch sizes are the router's own "
        "(`router_batch_size`) over the whole run.", "",
        "| rate | server | CPU ms / request | vs floor | p50 ms | p99 ms | within budget |",
        "|---:|---|---:|---:|---:|---:|---:|"]
    floors = {r["robots"]: r["cpu_ms_per_request"] for r in c["rows"] if r["name"] == FLOOR}
    for r in c["rows"]:
        floor = floors.get(r["robots"])
        ratio = (r["cpu_ms_per_request"] / floor
                 if floor and r["cpu_ms_per_request"] is not None else None)
        lat = r["latency_ms"]
        lines.append(
            f"| {r['robots'] * 50:,}/s | {PATH_NAMES.get(r['name'], r['name'])} | "
            f"{_num(r['cpu_ms_per_request'], 3)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} | {_num(lat.get('p50'))} | "
            f"{_num(lat.get('p99'))} | {_pct(r['fraction_within_budget'], 2)} |")
    return lines


def workers_section(s: dict[str, Any]) -> list[str]:
    w = s.get("workers")
    lines = ["", "## 1 vs 2 router workers", ""]
    if not w:
        return [*lines, _missing(s, "workers")]
    one = s.get("capacity") or {}
    lines += ["`ROUTER_WORKERS=2`: two router processes on the same HTTP port (uvicorn's "
              "workers) and gRPC port (SO_REUSEPORT), sharing contract, leases and decision log "
              "through Redis; capacity searched the same way as above.", "",
              "| path | 1 worker: robots x 50 Hz | 2 workers: robots x 50 Hz |",
              "|---|---:|---:|"]
    for path, cap in (w.get("capacity") or {}).items():
        lines.append(f"| {PATH_NAMES.get(path, path)} | {(one.get(path) or {}).get('robots', '-')}"
                     f" | {cap['robots']} |")
    cpu = w.get("cpu") or []
    if cpu:
        lines += ["", "| server at 400/s | CPU ms / request (all workers) | p99 ms |",
                  "|---|---:|---:|"]
        lines += [f"| {r['name']} | {_num(r['cpu_ms_per_request'], 3)} | "
                  f"{_num(r['latency_ms'].get('p99'))} |" for r in cpu]
    return lines


def _runs(s: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("overhead", "cpu"):
        for r in (s.get(key) or {}).get("rows", []):
            yield key, r
    for r in (s.get("workers") or {}).get("cpu", []):
        yield "workers", r
    for label, r in ((s.get("straggler") or {}).get("rows") or {}).items():
        yield f"straggler ({label})", r


def honesty_section(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Honesty of every run", "",
             "Per run: answers that reached the load generator after their deadline but said "
             "`deadline_met: true` (goal 0), the share answered with the hold action, and the "
             "share shed (503 / `RESOURCE_EXHAUSTED` with a retry hint). The generator sends "
             "each request's absolute deadline (its scheduled time + 20 ms, "
             "`deadline_unix_ms`), so the router knows when the robot needed the answer. "
             "\"late by\" is how far past the deadline those answers reached the generator "
             "(median / max ms); the generator's own send lag (p99) is beside it: a generator "
             "that sends that late also reads its replies about that late.", "",
             "| step | run | robots | late but flagged met | late by (median / max ms) | "
             "generator lag p99 ms | hold share | shed share |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    rows = [(step, r) for step, r in _runs(s)
            if r["name"] != "direct-grpc" and r["name"] not in REFERENCE_ROWS]
    if not rows:
        return [*lines, "_No router runs in this summary._"]
    for step, r in rows:
        by = r.get("late_but_flagged_met_by_ms") or {}
        late_by = f"{_num(by.get('p50'))} / {_num(by.get('max'))}" if by.get("max") else "-"
        lines.append(f"| {step} | {PATH_NAMES.get(r['name'], r['name'])} | {r['robots']} | "
                     f"{r.get('late_but_flagged_met', '-')} | {late_by} | "
                     f"{_num(r.get('generator_lag_p99_ms'))} | {_pct(r.get('hold_share'), 2)} | "
                     f"{_pct(r.get('shed_share'), 2)} |")
    return lines
