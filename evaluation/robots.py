"""The simulated robots of a run, each in its own OS process.

With several robots on one asyncio loop, a robot's reply waited behind the other robots' MuJoCo
steps and trace writes before its await resumed, and that wait was counted as the stack's round
trip (the published mt10 p99 of 22-26 ms was mostly that, on two cores). Here every robot is a
process with its own env cache, its own transport on its own event loop and its own trace
files; the processes pull episodes from one shared queue and send results back, which the
parent hands to `on_done` in arrival order.

Processes are spawned, not forked: the parent has torch, onnxruntime and MuJoCo loaded, none of
which is safe to fork with its threads running. They live for the whole run (spawning and
building envs costs seconds); each job names the router it is for, so a robot re-opens its
transport when a block goes to another arm's router.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from types import TracebackType
from typing import Any

from evaluation.records import EpisodeResult
from evaluation.runner import EnvCache, EpisodeSpec, RunSettings, run_episode
from evaluation.transport import Transport, open_transport

# A robot process imports Meta-World and builds one env per task before it is ready: seconds,
# more on a busy machine. Past this something is wrong, and the run says so instead of waiting.
READY_TIMEOUT_S = 300.0
POLL_S = 0.5  # how often a waiting side checks that the other side is still alive
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RouterLink:
    """What a robot needs to reach a router (no admin key: robots only act and give feedback)."""

    http_url: str
    grpc_target: str | None
    robot_key: str


@dataclass(frozen=True)
class Job:
    link: RouterLink
    settings: RunSettings
    spec: EpisodeSpec


@dataclass(frozen=True)
class Ready:
    robot: int
    pid: int


@dataclass(frozen=True)
class Done:
    robot: int
    result: EpisodeResult


@dataclass(frozen=True)
class Crashed:
    robot: int
    pid: int
    traceback: str


Message = Ready | Done | Crashed


class RobotCrashed(RuntimeError):
    """A robot process failed outside an episode (an episode's own failure is its eval_error)."""


def trace_rel(spec: EpisodeSpec) -> str:
    return f"traces/{spec.arm.name}/{spec.task}/{spec.episode_id}.mcap"


class _Robot:
    """The child's side: one robot, its envs, and a transport for the router of its job."""

    def __init__(self, index: int, configs: Mapping[str, Sequence[Any]], result_dir: Path,
                 jobs: Queue[Job | None], results: Queue[Message]) -> None:
        self.index, self.configs, self.result_dir = index, configs, result_dir
        self.jobs, self.results = jobs, results
        self.envs = EnvCache()

    async def _next(self) -> Job | None:
        """The next job, or None to stop; waits off the loop so the transport's own tasks
        (keepalives, gRPC channel) keep running, and stops if the parent is gone."""
        parent = mp.parent_process()
        while True:
            try:
                return await asyncio.to_thread(self.jobs.get, True, POLL_S)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return None

    async def serve(self) -> None:
        transport: Transport | None = None
        opened: tuple[RouterLink, str] | None = None
        robot_id = f"robot-{self.index}"
        try:
            while (job := await self._next()) is not None:
                if transport is None or opened != (job.link, job.settings.transport):
                    if transport is not None:
                        await transport.aclose()
                    # Opened inside this loop: grpc.aio channels bind to the running loop.
                    transport = open_transport(job.settings.transport, job.link.http_url,
                                               job.link.grpc_target, job.link.robot_key, 1)
                    opened = (job.link, job.settings.transport)
                spec = job.spec
                env = self.envs.get(spec.task, self.configs[spec.task][spec.config_index])
                rel = trace_rel(spec)
                result = await run_episode(spec, env, transport, robot_id, job.settings,
                                           self.result_dir / rel, rel)
                self.results.put(Done(self.index, result))
        finally:
            if transport is not None:
                await transport.aclose()


def robot_process(index: int, configs: Mapping[str, Sequence[Any]], result_dir: Path,
                  jobs: Queue[Job | None], results: Queue[Message]) -> None:
    """A robot process's entry point (module level, so the spawned child can import it)."""
    robot = _Robot(index, configs, result_dir, jobs, results)
    try:
        robot.envs.prepare(list(configs), configs)
        results.put(Ready(index, os.getpid()))
        asyncio.run(robot.serve())
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        pass
    except BaseException:
        results.put(Crashed(index, os.getpid(), traceback.format_exc()))
    finally:
        robot.envs.close()


class RobotPool:
    """`robots` robot processes for one run; use as a context manager."""

    def __init__(self, robots: int, configs: Mapping[str, Sequence[Any]],
                 result_dir: Path) -> None:
        self._ctx = mp.get_context("spawn")
        self._jobs: Queue[Job | None] = self._ctx.Queue()
        self._results: Queue[Message] = self._ctx.Queue()
        self._procs: list[BaseProcess] = [
            self._ctx.Process(target=robot_process, name=f"robot-{i}", daemon=True,
                              args=(i, dict(configs), result_dir, self._jobs, self._results))
            for i in range(robots)]
        self.pids: dict[int, int] = {}  # robot index -> pid, once ready

    def __enter__(self) -> RobotPool:
        for proc in self._procs:
            proc.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(graceful=kind is None)

    def _poll(self) -> Message | None:
        try:
            return self._results.get(timeout=POLL_S)
        except queue.Empty:
            return None

    def _get(self, deadline: float | None = None) -> Message:
        """The next message; raises RobotCrashed when a robot reported a failure or died."""
        while (msg := self._poll()) is None:
            dead = [p for p in self._procs if p.exitcode is not None]
            if dead:  # its Crashed message, if it sent one, is in the queue by now
                last = self._poll()
                if isinstance(last, Crashed):
                    self._raise(last)
                raise RobotCrashed(f"robot process {dead[0].name} (pid {dead[0].pid}) exited "
                                   f"with code {dead[0].exitcode} without a report")
            if deadline is not None and time.monotonic() > deadline:
                raise RobotCrashed(f"robot processes not ready after {READY_TIMEOUT_S:g} s")
        if isinstance(msg, Crashed):
            self._raise(msg)
        return msg

    @staticmethod
    def _raise(msg: Crashed) -> None:
        raise RobotCrashed(f"robot-{msg.robot} (pid {msg.pid}) failed:\n{msg.traceback}")

    def wait_ready(self) -> dict[int, int]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(self.pids) < len(self._procs):
            msg = self._get(deadline)
            if isinstance(msg, Ready):
                self.pids[msg.robot] = msg.pid
        return self.pids

    def run(self, link: RouterLink, settings: RunSettings, specs: Sequence[EpisodeSpec],
            on_done: Callable[[EpisodeResult], None]) -> None:
        """Runs `specs` on the robots, in the order given, and returns when all are done."""
        self.wait_ready()
        for spec in specs:
            self._jobs.put(Job(link, settings, spec))
        pending = len(specs)
        while pending:
            msg = self._get()
            if isinstance(msg, Done):
                on_done(msg.result)
                pending -= 1

    def close(self, graceful: bool = True) -> None:
        """Graceful: every robot finishes (the job queue is empty) and closes its transport.
        Otherwise (the run failed) queued jobs are dropped and the robots are terminated."""
        if graceful and all(p.is_alive() for p in self._procs):
            for _ in self._procs:
                self._jobs.put(None)
            for proc in self._procs:
                proc.join(STOP_TIMEOUT_S)
        for proc in (p for p in self._procs if p.pid is not None):  # started ones
            if proc.is_alive():
                proc.terminate()
            proc.join(STOP_TIMEOUT_S)
        # Jobs nobody will read must not keep this process waiting on the queue's feeder.
        self._jobs.cancel_join_thread()
        self._results.cancel_join_thread()
        self._jobs.close()
        self._results.close()
