"""RouterPolicy (the openpi-style interface over the client) and the example Meta-World
controller driven through it, with the router replaced by an httpx mock transport."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
from router_client import (
    ActResponse,
    BasePolicy,
    RouterClient,
    RouterPolicy,
    UnknownTask,
)
from router_fakes import STATE, act_reply_json

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROLLER = REPO_ROOT / "clients" / "examples" / "metaworld_controller.py"


class MockRouter:
    """Answers /v1/act with `act_reply` (or what `on_act` returns) and records everything."""

    def __init__(self) -> None:
        self.acts: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.failures: list[httpx.Response | Exception] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/feedback":
            self.feedback.append(body)
            return httpx.Response(202, json={"accepted": True})
        self.acts.append(body)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=act_reply_json(decision_id=f"dec-{len(self.acts)}",
                                                       task=body.get("task", "reach-v3")))

    def client(self) -> RouterClient:
        return RouterClient("http://router:8080", api_key="k",
                            httpx_transport=httpx.MockTransport(self))


def test_router_policy_infer_returns_actions_and_the_routers_account() -> None:
    router = MockRouter()
    policy = RouterPolicy(router.client(), robot_id="robot-1", task="reach-v3", deadline_ms=40)
    assert isinstance(policy, BasePolicy)
    out = policy.infer({"state": np.asarray(STATE)})
    assert out["actions"].dtype == np.float32 and out["actions"].shape == (4,)
    assert out["route"] == "specialist_reach_v3" and out["deadline_met"] is True
    assert out["decision_id"] == "dec-1" and out["fallback"] is None
    assert set(out["timing_ms"]) == {"scoring", "upstream", "total", "client"}
    assert isinstance(out["response"], ActResponse)
    sent = router.acts[0]
    assert (sent["robot_id"], sent["task"], sent["episode_id"]) == (
        "robot-1", "reach-v3", policy.episode_id)
    assert 0 < sent["deadline_ms"] <= 40


def test_router_policy_obs_may_override_task_and_deadline() -> None:
    router = MockRouter()
    policy = RouterPolicy(router.client(), robot_id="robot-1", task="reach-v3")
    policy.infer({"state": STATE, "task": None, "deadline_ms": 25.0})
    assert "task" not in router.acts[0] and router.acts[0]["deadline_ms"] <= 25


def test_reset_starts_a_new_episode_and_feedback_names_the_last_decision() -> None:
    router = MockRouter()
    policy = RouterPolicy(router.client(), robot_id="robot-1")
    first_episode = policy.episode_id
    policy.infer({"state": STATE})
    policy.infer({"state": STATE})
    sent = policy.report_outcome(True, true_task="reach-v3")
    assert router.feedback == [{"robot_id": "robot-1", "episode_id": first_episode,
                                "success": True, "decision_id": "dec-2",
                                "true_task": "reach-v3"}]
    assert sent.decision_id == "dec-2"
    policy.reset()
    assert policy.episode_id != first_episode and policy.last_response is None
    policy.infer({"state": STATE})
    assert router.acts[-1]["episode_id"] == policy.episode_id


def test_router_errors_reach_the_controller_unchanged() -> None:
    router = MockRouter()
    router.failures.append(httpx.Response(422, json={"error": {
        "code": "unknown_task", "message": "unknown task 'fly'", "field": "task",
        "known_tasks": ["reach-v3"]}}))
    policy = RouterPolicy(router.client(), robot_id="robot-1", task="fly")
    with pytest.raises(UnknownTask) as raised:
        policy.infer({"state": STATE})
    assert raised.value.known_tasks == ("reach-v3",)


# --- the example controller -----------------------------------------------------------------


@pytest.fixture(scope="module")
def controller() -> ModuleType:
    pytest.importorskip("metaworld")
    spec = importlib.util.spec_from_file_location("metaworld_controller", CONTROLLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reach_env(controller: ModuleType) -> Any:
    return controller.make_env("reach-v3", seed=0)


def test_controller_closed_loop_through_the_router(controller: ModuleType, reach_env: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    router = MockRouter()
    router.failures.append(httpx.ReadTimeout("late"))  # step 2 misses its deadline
    policy = RouterPolicy(router.client(), robot_id="robot-1", task="reach-v3", deadline_ms=20)
    result = controller.run_episode(reach_env, policy, hz=500.0, max_steps=5, seed=0)
    assert result.steps == 5 and not result.success
    assert result.failed_steps == 1 and result.routes["specialist_reach_v3"] == 4
    printed = capsys.readouterr().out
    assert "route=specialist_reach_v3" in printed and "HOLD  DeadlineExceeded" in printed
    assert len({body["episode_id"] for body in router.acts}) == 1
    assert len(router.acts[0]["observation"]["state"]) == 39


def test_controller_main_sends_feedback_with_the_true_task(
    controller: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = MockRouter()
    monkeypatch.setattr(controller, "RouterClient",
                        lambda *args, **kwargs: router.client())
    code = controller.main(["--task", "reach-v3", "--hide-task", "--max-steps", "3",
                            "--hz", "500", "--deadline-ms", "1"])
    assert code == 1  # three steps of a canned action do not reach the goal
    assert all("task" not in body for body in router.acts)
    assert router.feedback[0]["true_task"] == "reach-v3"
    assert router.feedback[0]["success"] is False


@pytest.mark.filterwarnings("ignore:Constant.*may be too high:UserWarning")
def test_scripted_expert_is_a_drop_in_policy(controller: ModuleType, reach_env: Any) -> None:
    result = controller.run_episode(reach_env, controller.ScriptedExpert("reach-v3"),
                                    hz=10_000.0, max_steps=150, seed=0, log=lambda _: None)
    assert result.success and result.routes["local"] == result.steps


def test_controller_rejects_a_deadline_longer_than_the_period(controller: ModuleType) -> None:
    with pytest.raises(SystemExit):
        controller.parse_args(["--hz", "50", "--deadline-ms", "25"])
