"""One simulated robot in closed loop with the router: one act call per control tick under the
control-rate deadline, ticks on a monotonic clock at `control_hz`.

Each robot runs in its own process (evaluation.robots), so a robot's MuJoCo step, observation
encoding and trace writing never sit between another robot's reply and its await: the round
trip a robot measures is the stack's, and the evaluation's own time per tick is measured apart
(`harness_ms`). A reply that is not in the robot's hands by the deadline is discarded and the
contract's hold action is applied for that tick, as a real controller must do: the call is
abandoned at the deadline (`act_by_deadline`), so the world never waits for a late stack.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluation.arms import Arm
from evaluation.records import NO_REPLY, EpisodeResult
from evaluation.traces import TraceWriter
from evaluation.transport import StepReply, Transport
from policies.panel import make_env

Vector = npt.NDArray[np.float64]
# Meta-World actions are (dx, dy, dz, gripper) in [-1, 1]; the policies end in tanh, which
# never reaches 1 exactly. The gripper is commanded fully open or closed on most steps by the
# experts the policies imitate, so only the position part can show a controller at its limits.
POSITION_DIMS = 3
SATURATION_LEVEL = 0.99


def saturated(applied: Vector) -> bool:
    """Whether any position component of the applied action is at its bound."""
    return bool(np.any(np.abs(applied[:POSITION_DIMS]) >= SATURATION_LEVEL))


@dataclass(frozen=True)
class RunSettings:
    deadline_ms: float  # the control period's budget, sent with every act call
    control_hz: float  # 0: unpaced (as fast as the stack answers)
    max_steps: int
    hold_action: tuple[float, ...]
    transport: str
    contract_version: str = ""


@dataclass(frozen=True)
class EpisodeSpec:
    arm: Arm
    task: str
    config_index: int
    episode_id: str


def episode_seed(spec: EpisodeSpec) -> int:
    return zlib.crc32(f"{spec.arm.name}/{spec.task}/{spec.config_index}".encode())


class EnvCache:
    """One env per task in this robot's process, re-targeted with set_task + reset: building a
    Meta-World env takes ~0.2 s, so it is done once, before the robot's first episode."""

    def __init__(self) -> None:
        self._envs: dict[str, Any] = {}

    def prepare(self, tasks: Sequence[str], configs: Mapping[str, Sequence[Any]]) -> None:
        for task in tasks:
            if task not in self._envs:
                self._envs[task] = make_env(task, configs[task][0])

    def get(self, task: str, config: Any) -> Any:
        env = self._envs.get(task)
        if env is None:
            env = self._envs[task] = make_env(task, config)
        env.set_task(config)
        return env

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


async def act_by_deadline(transport: Transport, robot_id: str, episode_id: str,
                          declared: str | None, state: list[float], deadline_ms: float
                          ) -> StepReply:
    """The act call, given up at the control deadline as a real controller gives it up: the
    robot holds for this tick and the world moves on, so a slow stack costs as many held ticks
    as it is late, not one tick however late it is. What happens to the call it gave up is the
    transport's to decide (`Transport.abandon`)."""
    start = time.perf_counter()
    call = asyncio.ensure_future(
        transport.act(robot_id, episode_id, declared, state, deadline_ms))
    done, _ = await asyncio.wait({call}, timeout=deadline_ms / 1000.0)
    if call in done:
        return call.result()
    transport.abandon(call)
    return StepReply("late", (time.perf_counter() - start) * 1000.0, "client_deadline",
                     error=f"no reply within the {deadline_ms:g} ms control deadline")


class _Controller:
    """What the robot sends and applies, with the arm's controller-side perturbations."""

    def __init__(self, spec: EpisodeSpec, hold: tuple[float, ...], first_obs: Vector) -> None:
        p = spec.arm.perturbation
        self._noise = p.obs_noise_std
        self._rng = np.random.default_rng(episode_seed(spec))
        self._history: deque[Vector] = deque([first_obs] * (p.obs_delay_steps + 1),
                                                 maxlen=p.obs_delay_steps + 1)
        self._pending: deque[Vector] = deque(
            [np.asarray(hold, dtype=np.float64)] * p.action_delay_steps)
        self._delay = p.action_delay_steps

    def observe(self, obs: Vector) -> Vector:
        self._history.append(obs)
        sent = self._history[0]
        if self._noise:
            sent = sent + self._rng.normal(0.0, self._noise, size=sent.shape)
        return sent

    def apply(self, command: Vector) -> Vector:
        if not self._delay:
            return command
        self._pending.append(command)
        return self._pending.popleft()


async def run_episode(spec: EpisodeSpec, env: Any, transport: Transport, robot_id: str,
                      settings: RunSettings, trace_path: Path, trace_rel: str) -> EpisodeResult:
    declared = spec.task if spec.arm.declare_task else None
    hold = np.asarray(settings.hold_action, dtype=np.float64)
    tick_s = 1.0 / settings.control_hz if settings.control_hz > 0 else 0.0
    acc: dict[str, Any] = {k: [] for k in ("rtt_ms", "routes", "resolved_tasks", "late",
                                           "fallback", "router_total_ms", "saturated",
                                           "harness_ms", "overran")}
    statuses: Counter[str] = Counter()
    fb_reasons: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    success, first_success, total_reward, eval_error, router_misses = False, None, 0.0, None, 0
    last_decision: str | None = None
    started = time.perf_counter()
    with TraceWriter(trace_path) as trace:
        trace.write("/eval/episode", {
            "episode_id": spec.episode_id, "arm": spec.arm.name, "task": spec.task,
            "declared_task": declared, "config_index": spec.config_index, "robot_id": robot_id,
            "deadline_ms": settings.deadline_ms, "control_hz": settings.control_hz,
            "perturbation": spec.arm.perturbation.describe(),
            "contract_version": settings.contract_version, "transport": settings.transport})
        step = 0
        try:
            obs = np.asarray(env.reset()[0], dtype=np.float64)
            controller = _Controller(spec, settings.hold_action, obs)
            next_tick = time.perf_counter() + tick_s
            for step in range(settings.max_steps):
                tick_start = time.perf_counter()
                sent = controller.observe(obs)
                t_ns = time.time_ns()
                reply = await act_by_deadline(transport, robot_id, spec.episode_id,
                                              declared, sent.tolist(), settings.deadline_ms)
                usable = (reply.status == "ok" and reply.action is not None
                          and reply.rtt_ms <= settings.deadline_ms)
                command = np.asarray(reply.action, dtype=np.float64) if usable else hold
                applied = controller.apply(command)
                obs_next, reward, _term, truncated, info = env.step(applied)
                is_success = bool(info.get("success", 0.0))
                _record(acc, statuses, fb_reasons, reasons, reply, usable)
                acc["saturated"].append(saturated(applied))
                router_misses += int(reply.deadline_met is False)
                last_decision = reply.decision_id or last_decision
                total_reward += float(reward)
                _trace_step(trace, t_ns, step, obs, sent, declared, reply, settings, usable,
                            command, applied, float(reward), is_success, bool(truncated))
                obs = np.asarray(obs_next, dtype=np.float64)
                # The tick's own work (encoding, env step, bookkeeping, trace) is everything
                # in it but the round trip; it is the evaluation's cost, not the stack's.
                work_end = time.perf_counter()
                acc["harness_ms"].append(
                    round(max(0.0, (work_end - tick_start) * 1000 - reply.rtt_ms), 3))
                acc["overran"].append(bool(tick_s) and work_end >= next_tick)
                if is_success:
                    success, first_success = True, step
                    break
                if truncated:
                    break
                if tick_s:
                    delay = next_tick - work_end
                    if delay > 0:
                        await asyncio.sleep(delay)
                        next_tick += tick_s
                    else:  # overran the period: the next tick starts now, no catch-up burst
                        next_tick = time.perf_counter() + tick_s
        except Exception as exc:  # any env/runner failure invalidates this episode, not the run
            eval_error = f"step {step}: {type(exc).__name__}: {exc}"
        steps = len(acc["rtt_ms"])
        feedback = await transport.feedback(robot_id, spec.episode_id, last_decision, success,
                                            spec.task) if steps else {"status": "no steps"}
        trace.write("/eval/summary", {"success": success, "steps": steps,
                                      "first_success_step": first_success,
                                      "eval_error": eval_error, "feedback": feedback})
    return EpisodeResult(
        arm=spec.arm.name, task=spec.task, config_index=spec.config_index,
        episode_id=spec.episode_id, robot_id=robot_id, declared_task=declared, success=success,
        steps=steps, first_success_step=first_success, total_reward=round(total_reward, 4),
        eval_error=eval_error, statuses=dict(statuses), fallback_reasons=dict(fb_reasons),
        decision_reasons=dict(reasons), router_misses=router_misses, feedback=feedback,
        trace=trace_rel, wall_s=round(time.perf_counter() - started, 3), pid=os.getpid(),
        **acc,
    )


def _record(acc: dict[str, Any], statuses: Counter[str], fb_reasons: Counter[str],
            reasons: Counter[str], reply: StepReply, usable: bool) -> None:
    ok = reply.status == "ok"
    acc["rtt_ms"].append(round(reply.rtt_ms, 3) if ok else -1.0)
    acc["routes"].append(reply.route if ok else NO_REPLY)
    acc["resolved_tasks"].append(reply.task if ok else NO_REPLY)
    acc["late"].append(not usable)
    acc["fallback"].append(ok and (reply.fallback is not None or reply.route == "hold"))
    acc["router_total_ms"].append(round(reply.timing_ms.get("total", -1.0), 3) if ok else -1.0)
    statuses[reply.status] += 1
    if reply.fallback:
        fb_reasons[reply.fallback] += 1
    if reply.reason:
        reasons[reply.reason] += 1


def _trace_step(trace: TraceWriter, t_ns: int, step: int, obs: Vector, sent: Vector,
                declared: str | None, reply: StepReply, settings: RunSettings, usable: bool,
                command: Vector, applied: Vector, reward: float, success: bool,
                truncated: bool) -> None:
    perturbed = sent is not obs
    trace.write("/eval/observation", {"step": step, "state": obs,
                                      "sent_state": sent if perturbed else None}, t_ns)
    trace.write("/eval/router", {
        "step": step, "status": reply.status, "code": reply.code, "declared_task": declared,
        "inferred_task": reply.task if reply.task_source == "inferred" else None,
        "task": reply.task, "task_confidence": reply.task_confidence, "route": reply.route,
        "fallback": reply.fallback, "reason": reply.reason, "deadline_met": reply.deadline_met,
        "decision_id": reply.decision_id, "policy_version": reply.policy_version,
        "error": reply.error}, t_ns)
    trace.write("/eval/timing", {
        "step": step, "rtt_ms": reply.rtt_ms,
        "router_total_ms": reply.timing_ms.get("total", -1.0),
        "scoring_ms": reply.timing_ms.get("scoring", -1.0),
        "upstream_ms": reply.timing_ms.get("upstream", -1.0),
        "deadline_ms": settings.deadline_ms, "late": not usable}, t_ns)
    source = "reply" if usable else ("hold_late" if reply.status == "ok" else "hold_no_reply")
    if applied is not command:
        source = f"delayed({source})"
    trace.write("/eval/action", {"step": step, "reply_action": list(reply.action)
                                 if reply.action is not None else None,
                                 "applied_action": applied, "source": source}, t_ns)
    trace.write("/eval/outcome", {"step": step, "reward": reward, "success": success,
                                  "truncated": truncated}, t_ns)
