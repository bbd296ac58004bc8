"""Drive a Meta-World task in closed loop through the policy router.

    .venv/bin/python clients/examples/metaworld_controller.py --url http://localhost:8080 \\
        --key dev-robot-key --task reach-v3 --transport grpc --hz 20 --deadline-ms 40

Each control tick sends the 39-float observation with a deadline, applies the returned
4-D action and prints the route and latency; at the end it prints the outcome and sends
it to the router as feedback. `--hide-task` keeps the task from the router (it must
infer it) and reveals it only in the feedback, so the router can count misroutes.
`--transport local` runs Meta-World's scripted expert instead, through the same
`BasePolicy` interface: the controller cannot tell the difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from router_client import (
    BasePolicy,
    InvalidRequest,
    RouterClient,
    RouterError,
    RouterPolicy,
    Timeouts,
    Unauthorized,
)

ACTION_DIM = 4
HOLD_ACTION = np.zeros(ACTION_DIM, dtype=np.float32)  # Meta-World: stay put, gripper neutral


class ScriptedExpert(BasePolicy):
    """Meta-World's hand-written expert for one task, as a local stand-in for the router."""

    def __init__(self, task: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self._expert = ENV_POLICY_MAP[task]()

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        action = self._expert.get_action(np.asarray(obs["state"], dtype=np.float64))
        return {"actions": np.asarray(action, dtype=np.float32), "route": "local"}


@dataclass
class EpisodeResult:
    success: bool = False
    steps: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    router_deadline_misses: int = 0
    failed_steps: int = 0  # the router gave no action in time; the robot held still
    overruns: int = 0  # ticks whose work took longer than the control period

    def summary(self) -> str:
        outcome = f"{'SUCCESS' if self.success else 'FAILURE'} after {self.steps} steps"
        latency = "no answers"
        if self.latencies_ms:
            lat = sorted(self.latencies_ms)
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
            latency = (f"latency p50 {statistics.median(lat):.1f} ms, p95 {p95:.1f} ms, "
                       f"max {lat[-1]:.1f} ms")
        routes = ", ".join(f"{route}×{n}" for route, n in self.routes.most_common()) or "-"
        return (f"{outcome} | {latency} | routes: {routes} | router deadline misses "
                f"{self.router_deadline_misses}, failed steps {self.failed_steps}, "
                f"overruns {self.overruns}")


def make_env(task: str, seed: int) -> Any:
    import metaworld  # here, so `--help` works without MuJoCo

    benchmark = metaworld.MT1(task, seed=seed)
    env = benchmark.train_classes[task]()
    env.set_task(benchmark.train_tasks[seed % len(benchmark.train_tasks)])
    return env


def run_episode(env: Any, policy: BasePolicy, *, hz: float, max_steps: int, seed: int,
                log: Callable[[str], None] = print) -> EpisodeResult:
    """One closed-loop episode at `hz`. A step the router cannot serve in time (deadline,
    shed, network) holds the robot still and the loop goes on; a step it refuses for a
    reason that will not go away (bad key, unknown task) ends the run."""
    result = EpisodeResult()
    policy.reset()
    obs, _ = env.reset(seed=seed)
    period = 1.0 / hz
    next_tick = time.monotonic()
    for step in range(max_steps):
        started = time.monotonic()
        try:
            out = policy.infer({"state": obs})
            action = np.clip(out["actions"], -1.0, 1.0)
            latency_ms = (time.monotonic() - started) * 1000.0
            result.routes[out["route"]] += 1
            result.latencies_ms.append(latency_ms)
            result.router_deadline_misses += out.get("deadline_met") is False
            log(_step_line(step, out, latency_ms))
        except (Unauthorized, InvalidRequest):
            raise
        except RouterError as exc:
            action = HOLD_ACTION
            result.failed_steps += 1
            log(f"step {step:4d}  HOLD  {type(exc).__name__}: {exc}")
        obs, _reward, terminated, truncated, info = env.step(action)
        result.steps = step + 1
        if info.get("success"):
            result.success = True
            break
        if terminated or truncated:
            break
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            result.overruns += 1
            next_tick = time.monotonic()  # do not try to catch up with a burst of steps
    return result


def _step_line(step: int, out: dict[str, Any], latency_ms: float) -> str:
    line = f"step {step:4d}  route={out['route']:<24} {latency_ms:6.1f} ms"
    if "task" in out:
        timing = out["timing_ms"]
        line += (f" (router {timing['total']:.1f}, upstream {timing['upstream']:.1f})"
                 f"  task={out['task']}/{out['task_source']}"
                 f"  deadline_met={out['deadline_met']}")
        if out["fallback"]:
            line += f"  fallback={out['fallback']}"
    return line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="http://localhost:8080", help="router HTTP base URL")
    parser.add_argument("--grpc-target", default=None,
                        help="router gRPC host:port (default: the URL's host, port 50051)")
    parser.add_argument("--key", default=None, help="robot API key (default: $ROUTER_API_KEY)")
    parser.add_argument("--task", default="reach-v3", help="Meta-World task, e.g. reach-v3")
    task_mode = parser.add_mutually_exclusive_group()
    task_mode.add_argument("--declare-task", dest="hide_task", action="store_false",
                           help="send the task with every request (default)")
    task_mode.add_argument("--hide-task", dest="hide_task", action="store_true",
                           help="let the router infer the task; reveal it only in feedback")
    parser.set_defaults(hide_task=False)
    parser.add_argument("--transport", choices=("http", "grpc", "stream", "local"),
                        default="http", help="stream = gRPC StreamAct; local = scripted expert")
    parser.add_argument("--hz", type=float, default=20.0, help="control rate")
    parser.add_argument("--deadline-ms", type=float, default=40.0, help="budget per step")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--robot-id", default=f"metaworld-{uuid.uuid4().hex[:8]}")
    args = parser.parse_args(argv)
    if args.deadline_ms >= 1000.0 / args.hz:
        parser.error("--deadline-ms must be shorter than the control period (1000 / --hz)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = make_env(args.task, args.seed)
    if args.transport == "local":
        expert = ScriptedExpert(args.task)
        results = [run_episode(env, expert, hz=args.hz, max_steps=args.max_steps,
                               seed=args.seed + n) for n in range(args.episodes)]
        print("\n".join(r.summary() for r in results))
        return 0 if all(r.success for r in results) else 1

    client = RouterClient(args.url, api_key=args.key,
                          transport="http" if args.transport == "http" else "grpc",
                          grpc_target=args.grpc_target, timeouts=Timeouts(act_s=1.0 / args.hz))
    policy = RouterPolicy(client, robot_id=args.robot_id,
                          task=None if args.hide_task else args.task,
                          deadline_ms=args.deadline_ms, use_stream=args.transport == "stream")
    results = []
    try:
        for n in range(args.episodes):
            result = run_episode(env, policy, hz=args.hz, max_steps=args.max_steps,
                                 seed=args.seed + n)
            results.append(result)
            print(f"episode {policy.episode_id}: {result.summary()}")
            try:
                policy.report_outcome(result.success, true_task=args.task)
            except RouterError as exc:  # the outcome is lost, the run is not
                print(f"feedback not delivered: {type(exc).__name__}: {exc}", file=sys.stderr)
    except (Unauthorized, InvalidRequest) as exc:
        print(f"router refused the robot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        policy.close()
        client.close()
    return 0 if all(r.success for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
