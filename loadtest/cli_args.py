"""Command-line arguments and exit codes of `python -m loadtest` (the commands are in cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

EXIT_PASS, EXIT_USAGE, EXIT_SLA_FAIL, EXIT_UNAVAILABLE = 0, 1, 2, 3
DEFAULT_OUT = Path("results/loadtest")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2, which here means "SLA failed"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _target_flags(p: argparse.ArgumentParser, multi: bool) -> None:
    p.add_argument("scenario", type=Path)
    p.add_argument(
        "--target", help="router | direct | baseline" + (" (comma list)" if multi else "")
    )
    p.add_argument("--transport", choices=["http", "grpc", "ws", "grpc-stream", "openpi",
                                           "kserve-grpc", "kserve-http"],
                   help="ws / grpc-stream: the router's session APIs (one session per robot); "
                        "openpi, kserve-grpc, kserve-http: the third-party client protocols")
    p.add_argument(
        "--url",
        action="append",
        default=[],
        help="target address; with several targets: TARGET=URL, repeatable",
    )
    p.add_argument("--api-key", help="router key (default: $ROUTER_API_KEY)")
    p.add_argument(
        "--manifest",
        default="build/models/ci/manifest.json",
        help="task order for the generalist one-hot (direct/baseline targets)",
    )
    p.add_argument("--metrics-url", help="router /metrics to scrape before and after each run")
    p.add_argument("--label", help="label stored with the results (e.g. hedging-on)")
    p.add_argument("--robots", type=int)
    p.add_argument("--duration", type=float, dest="duration_s")
    p.add_argument("--ramp", type=float, dest="ramp_s")
    p.add_argument("--seed", type=int)
    p.add_argument("--deadline-ms", type=float, dest="deadline_ms", help="request deadline")
    p.add_argument("--budget-ms", type=float, help="SLA budget (default: the scenario's)")
    p.add_argument("--observations", help="recorded states (.npy/.json/.jsonl)")
    p.add_argument("--out", type=Path, help=f"output directory (default {DEFAULT_OUT}/<stamp>-...)")
    p.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--no-plot", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m loadtest", description="open-loop load generator + SLA check")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _target_flags(
        sub.add_parser("run", help="run a scenario, report, exit 2 if the SLA fails"), multi=True
    )
    cap = sub.add_parser("capacity", help="largest fleet that meets the SLA")
    _target_flags(cap, multi=False)
    cap.add_argument("--start", type=int, help="first fleet size (default: scenario robots)")
    cap.add_argument("--max-robots", type=int, default=1024)
    cap.add_argument(
        "--resolution",
        type=int,
        default=0,
        help="stop when pass/fail are this many robots apart (default: 5%% of --start, >= 1)",
    )
    cap.add_argument("--step-duration", type=float, default=15.0)
    cap.add_argument("--step-ramp", type=float, default=3.0)
    cap.add_argument("--min-step-requests", type=int, default=3000,
                     help="a step lasts (after its ramp) long enough for this many requests: at "
                          "99.9%% a 15 s step of 1 robot (750 requests) fails on one late answer")
    rep = sub.add_parser("report", help="recompute a result's summary from its raw records")
    rep.add_argument("result", type=Path)
    rep.add_argument("--budget-ms", type=float)
    rep.add_argument("--quantile", type=float)
    rep.add_argument("--write", action="store_true", help="rewrite result.json and the PNG")
    cmp = sub.add_parser("compare", help="latency ratios between runs (router overhead)")
    cmp.add_argument("results", type=Path, nargs="+")
    cmp.add_argument("--reference", type=int, default=0, help="index of the reference run")
    hed = sub.add_parser("hedging", help="straggler scenario: hedging off vs on")
    hed.add_argument("off", type=Path)
    hed.add_argument("on", type=Path)
    for p in (cmp, hed):
        p.add_argument("--json", type=Path, help="also write the comparison here")
    return parser
