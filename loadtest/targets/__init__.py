"""Build the target a scenario names: router (HTTP/gRPC), direct Triton, or the baseline proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadtest.observations import F32
from loadtest.scenario import Scenario
from loadtest.schedule import Plan
from loadtest.targets.base import Outcome, PlanLists, Target, TargetOptions, TargetUnavailable
from loadtest.targets.clients import KServeGrpcTarget, KServeHttpTarget, OpenpiTarget
from loadtest.targets.kserve import EnsembleChoice, ManifestError, choose_ensembles
from loadtest.targets.router import RouterGrpcTarget, RouterHttpTarget
from loadtest.targets.sessions import RouterGrpcStreamTarget, RouterWsTarget
from loadtest.targets.triton import JsonPostTarget, TritonGrpcTarget, triton_http_target

__all__ = [
    "ManifestError",
    "Outcome",
    "Target",
    "TargetOptions",
    "TargetUnavailable",
    "make_target",
]

DEFAULT_BASELINE_URL = "http://127.0.0.1:8090"
CLIENT_TARGETS: dict[str, type[OpenpiTarget | KServeGrpcTarget | KServeHttpTarget]] = {
    "openpi": OpenpiTarget, "kserve-grpc": KServeGrpcTarget, "kserve-http": KServeHttpTarget}


class BaselineBodies:
    """Bodies for the baseline proxy: the router's body minus task/deadline, plus the one-hot
    when the generalist is chosen. Built per request (robot/episode ids vary) from cached parts."""

    def __init__(self, lists: PlanLists, choice: EnsembleChoice) -> None:
        self.lists = lists
        self.choice = choice
        self._onehot = [
            b"" if v is None else b',"task_onehot":' + orjson.dumps(v) for v in choice.onehots
        ]

    def get(self, i: int) -> tuple[str, Any]:
        ls = self.lists
        robot = ls.robot_id[ls.robot[i]]
        t = ls.task[i]
        body = b'{"robot_id":"%s","episode_id":"%s-ep-%d","observation":{"state":%s}%s}' % (
            robot,
            robot,
            ls.episode[i],
            ls.state_json[ls.obs[i]],
            self._onehot[t],
        )
        return self.choice.models[t], body


def make_target(scenario: Scenario, plan: Plan, pool: F32, options: TargetOptions) -> Target:
    lists = PlanLists(plan, pool, options.run_id)
    if scenario.target == "router":
        if scenario.transport == "grpc":
            return RouterGrpcTarget(scenario, lists, options)
        if scenario.transport == "grpc-stream":
            return RouterGrpcStreamTarget(scenario, lists, options)
        if scenario.transport == "ws":
            return RouterWsTarget(scenario, lists, options)
        if scenario.transport in CLIENT_TARGETS:
            return CLIENT_TARGETS[scenario.transport](scenario, lists, options)
        return RouterHttpTarget(scenario, lists, options)
    if scenario.transport in ("ws", "grpc-stream", *CLIENT_TARGETS):
        raise ValueError(f"transport {scenario.transport} is the router's own API only")
    choice = choose_ensembles(scenario, Path(options.manifest) if options.manifest else None)
    if scenario.target == "direct-triton":
        if scenario.transport == "grpc":
            return TritonGrpcTarget(scenario, lists, choice, options.url)
        return triton_http_target(scenario, lists, choice, options.url)
    bodies = BaselineBodies(lists, choice)
    target = JsonPostTarget(
        scenario, bodies, options.url or DEFAULT_BASELINE_URL, "/v1/act/{model}", "/healthz"
    )
    target.name = "baseline-proxy"
    return target
