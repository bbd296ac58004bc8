"""`python -m evaluation`:

    run                 closed-loop evaluation through the router into one result folder
    report FOLDER       rebuild a finished run's report from its episodes.jsonl and run.json
    apply-calibration   make a running router use a run's closed-loop calibration table
    publish RESULT DEST copy a run's report, csvs and plots (no traces) into the docs

Examples:
    python -m evaluation run --panel ci --episodes 20 --out results/eval/ci-20
    python -m evaluation run --panel ci --episodes 5 --arms router,router_hidden --transport http
    python -m evaluation run --router-url http://127.0.0.1:8080 --router-grpc 127.0.0.1:50051 \\
        --triton-fault-dir .run/faults --admin-key dev-admin-key
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from evaluation import families, ship
from evaluation.arms import DEFAULT_ARMS, OPTIONAL_ARMS, ArmSettings, build_arms
from evaluation.contracts import load_base
from evaluation.orchestrate import Session, verify_calibration
from evaluation.plan import CLOSED_LOOP_CONFIG_SEED, RunPlan
from evaluation.publish import publish
from evaluation.report import Report, matrix_text, rebuild
from evaluation.stack import RouterEndpoint, RunningStack, contract_version
from policies.panel import MAX_EPISODE_STEPS, get_panel, task_id

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_ROBOT_KEY, DEV_ADMIN_KEY = "dev-robot-key", "dev-admin-key"  # `make up`'s local keys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a closed-loop evaluation")
    run.add_argument("--panel", default="ci")
    run.add_argument("--episodes", type=int, default=20, help="episodes per task × arm cell")
    run.add_argument("--out", type=Path, help="result folder (default results/eval/<stamp>)")
    # gRPC is the robots' protocol (router.proto); over HTTP the client and FastAPI add several
    # ms per step on a busy 2-core machine, a large share of a 20 ms control period.
    run.add_argument("--transport", choices=["http", "grpc"], default="grpc")
    run.add_argument("--robots", type=int, default=4, help="robots running at once")
    run.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                     help=f"comma-separated; known: {', '.join(DEFAULT_ARMS + OPTIONAL_ARMS)}")
    run.add_argument("--contract", type=Path, help="default deploy/contracts/<panel>.yaml")
    run.add_argument("--artifacts", type=Path, help="default build/models/<panel>")
    run.add_argument("--control-hz", type=float,
                     help="robot control rate (default 1000 / contract default_deadline_ms; "
                          "0 = unpaced)")
    run.add_argument("--max-steps", type=int, default=MAX_EPISODE_STEPS)
    run.add_argument("--rounds", type=int, default=4,
                     help="blocks per arm, interleaved with the other arms' blocks")
    run.add_argument("--no-redis", action="store_true", help="own stack without redis-server")
    run.add_argument("--config-seed", type=int, default=CLOSED_LOOP_CONFIG_SEED,
                     help="MT1 seed of the evaluation's configurations; must differ from the "
                          "calibration table's (the panel's eval_config_seed) and the demo seeds")
    pert = run.add_argument_group("perturbations")
    defaults = ArmSettings()
    pert.add_argument("--noise-std", type=float, default=defaults.noise_std)
    pert.add_argument("--delay-steps", type=int, default=defaults.delay_steps)
    pert.add_argument("--slow-route", default="", help="default: the first task's specialist")
    pert.add_argument("--slow-delay-ms", type=float, default=defaults.slow_delay_ms)
    pert.add_argument("--slow-prob", type=float, default=defaults.slow_prob)
    ext = run.add_argument_group("use a running stack instead of starting one")
    ext.add_argument("--router-url", help="e.g. http://127.0.0.1:8080")
    ext.add_argument("--router-grpc", help="e.g. 127.0.0.1:50051 (for --transport grpc)")
    ext.add_argument("--api-key", default=os.environ.get("ROUTER_API_KEY", DEV_ROBOT_KEY))
    ext.add_argument("--admin-key", default=os.environ.get("ROUTER_ADMIN_KEY", DEV_ADMIN_KEY))
    ext.add_argument("--triton-fault-dir", type=Path,
                     help="the fault dir the running Triton's repository was generated with")
    ext.add_argument("--triton-grpc", help="start routers (one per arm) on this running "
                                           "tritonserver instead of starting one")

    rep = sub.add_parser("report", help="rebuild report files of a finished run")
    rep.add_argument("result", type=Path)

    pub = sub.add_parser("publish", help="copy a run's report files (no traces) to DEST")
    pub.add_argument("result", type=Path)
    pub.add_argument("dest", type=Path)
    pub.add_argument("--note", default="", help="a paragraph for the README")

    fam = sub.add_parser("families", help="every family side by side: offline per training "
                                          "seed, closed-loop arms, paired comparisons")
    fam.add_argument("--closed-loop", type=Path, required=True, help="a finished run's folder")
    fam.add_argument("--artifacts", type=Path, nargs="+", required=True,
                     help="builds of the panel, one per training seed")
    fam.add_argument("--out", type=Path, required=True, help="markdown file to write")

    ship_p = sub.add_parser("ship", help="write the run's smallest policy set as the panel's "
                                          "deployment contract")
    ship_p.add_argument("result", type=Path)
    ship_p.add_argument("--out", type=Path, required=True, help="e.g. deploy/contracts/mt10.yaml")
    ship_p.add_argument("--base", type=Path, help="contract to start from (default: the run's)")

    cal = sub.add_parser("apply-calibration", help="reload a router with a run's closed-loop "
                                                    "calibration contract")
    cal.add_argument("--result", type=Path, required=True)
    cal.add_argument("--router-url", required=True)
    cal.add_argument("--api-key", default=os.environ.get("ROUTER_API_KEY", DEV_ROBOT_KEY))
    cal.add_argument("--admin-key", default=os.environ.get("ROUTER_ADMIN_KEY", DEV_ADMIN_KEY))
    return parser


def _print_outcome(report: Report) -> None:
    print()
    print(matrix_text(report.cells))
    print("\nDecision:")
    for line in report.decision.lines:
        print(line.replace("**", ""))
    print(f"\nReport: {report.path / 'report.md'}")


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    panel = get_panel(args.panel)
    contract = args.contract or REPO_ROOT / "deploy" / "contracts" / f"{panel.name}.yaml"
    artifacts = args.artifacts or REPO_ROOT / "build" / "models" / panel.name
    if not (artifacts / "manifest.json").is_file():
        print(f"no built models at {artifacts}: run `python -m policies.build --panel "
              f"{panel.name} --out {artifacts}` first", file=sys.stderr)
        return 2
    if not contract.is_file():
        print(f"no deployment contract {contract} (pass --contract)", file=sys.stderr)
        return 2
    if not 1 <= args.episodes <= 50:
        print("--episodes must be in 1..50 (the configurations of one MT1 seed)",
              file=sys.stderr)
        return 2
    if not 1 <= args.max_steps <= MAX_EPISODE_STEPS:
        print(f"--max-steps must be in 1..{MAX_EPISODE_STEPS} (Meta-World's horizon)",
              file=sys.stderr)
        return 2
    base = load_base(contract)
    names = [n.strip() for n in args.arms.split(",") if n.strip()]
    settings = ArmSettings(args.noise_std, args.delay_steps, args.slow_route,
                           args.slow_delay_ms, args.slow_prob)
    arms = build_arms(names, settings, f"specialist_{task_id(panel.tasks[0])}")
    control_hz = (args.control_hz if args.control_hz is not None
                  else 1000.0 / float(base["default_deadline_ms"]))
    out = args.out or REPO_ROOT / "results" / "eval" / datetime.now().strftime("%Y%m%d-%H%M%S")
    running = None
    if args.router_url:
        running = RunningStack(args.router_url.rstrip("/"), args.router_grpc, args.api_key,
                               args.admin_key, args.triton_fault_dir)
    plan = RunPlan(panel=panel, arms=arms, episodes=args.episodes, robots=args.robots,
                   transport=args.transport, control_hz=control_hz, max_steps=args.max_steps,
                   contract=contract, artifacts=artifacts, out=out,
                   command=shlex.join(["python", "-m", "evaluation", *argv]),
                   use_redis=not args.no_redis, running=running,
                   triton_grpc=args.triton_grpc, triton_fault_dir=args.triton_fault_dir,
                   rounds=args.rounds, config_seed=args.config_seed)
    print(f"evaluating panel {panel.name}: {len(arms)} arms × {len(panel.tasks)} tasks × "
          f"{args.episodes} episodes, {args.robots} robots over {args.transport}; "
          f"result folder {out}", flush=True)
    report = Session(plan).run()
    _print_outcome(report)
    return 0


def _apply_calibration(args: argparse.Namespace) -> int:
    contract = args.result / "contract_closed_loop.yaml"
    if not contract.is_file():
        print(f"{contract} not found: the run wrote no closed-loop table", file=sys.stderr)
        return 2
    url = args.router_url.rstrip("/")
    endpoint = RouterEndpoint(url, None, args.api_key, args.admin_key,
                              contract_version(url, args.api_key))
    print(verify_calibration(endpoint, contract))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args, argv)
    if args.command == "report":
        _print_outcome(rebuild(args.result))
        return 0
    if args.command == "publish":
        for path in publish(args.result, args.dest, args.note):
            print(path)
        return 0
    if args.command == "ship":
        try:
            print(ship.write(args.result, args.out, args.base))
        except ship.NothingToShip as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "families":
        command = "python -m evaluation " + " ".join(argv)
        print(families.write(args.closed_loop, args.artifacts, args.out, command))
        return 0
    return _apply_calibration(args)
