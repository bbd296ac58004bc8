"""Fault scenarios against the real stack as `make up` runs it (`make test-faults`; the kill -9
scenario runs in `make test`, tests/deploy/test_deploy_supervisor.py). Each one drives load,
injects the fault, and checks what a robot sees: no answer late but flagged met, no hang, and
how long until traffic was back on a policy route. Figures go to results/faults/<name>.json."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from stack_testkit import (
    DELIVERY_LATE_SHARE,
    Answer,
    Stack,
    delivery_late_share,
    drive,
    record_figures,
    router_late_flagged,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.triton, pytest.mark.redis, pytest.mark.slow]



def _under_load(stack: Stack, fault: Callable[[], float], recover: Callable[[float], float],
                name: str, router_dies: bool = False) -> tuple[list[Answer], dict[str, Any]]:
    """Load, then `fault()` (returns when it struck), then `recover(struck)` (returns when the
    stack is whole again); traffic must be back on a policy route after that."""
    answers: list[Answer] = []
    stop = threading.Event()
    driver = threading.Thread(target=drive, args=(stack, stop, answers), daemon=True)
    driver.start()
    time.sleep(2.0)
    struck = fault()
    whole = recover(struck)
    resumed = wait_until(lambda: any(a.sent > whole and a.route not in ("", "hold")
                                     for a in answers[-20:]), 30, "traffic back on a policy")
    time.sleep(1.0)
    stop.set()
    driver.join(timeout=10)
    figures = record_figures(name, answers, struck, whole, resumed)
    assert figures["router_late_but_flagged_met"] == 0, figures
    assert delivery_late_share(answers) <= DELIVERY_LATE_SHARE, figures
    assert figures["hangs"] == 0, figures
    if not router_dies:  # a dead router refuses connections; anything else must answer
        assert figures["no_http_answer"] == 0, figures
    return answers, figures


def _triton(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports['triton-http-port']}"


def test_sigstop_of_tritonserver_cuts_requests_at_their_deadline(stack: Stack) -> None:
    pid = stack.status()["tritonserver"]["pid"]

    def fault() -> float:
        os.kill(pid, signal.SIGSTOP)
        return time.monotonic()

    def recover(struck: float) -> float:
        time.sleep(3.0)
        os.kill(pid, signal.SIGCONT)
        return time.monotonic()

    answers, figures = _under_load(stack, fault, recover, "sigstop-tritonserver")
    hung = [a for a in answers if a.status == 200 and a.route == "hold"]
    assert hung, "no hold answer while Triton was stopped"
    assert figures["during_fault"] > 10


def test_a_model_unloaded_while_serving_falls_back_then_returns(stack: Stack) -> None:
    model = "specialist_reach_v3"

    def fault() -> float:
        reply = httpx.post(f"{_triton(stack)}/v2/repository/models/{model}/unload", timeout=30)
        assert reply.status_code == 200, reply.text
        return time.monotonic()

    def recover(struck: float) -> float:
        time.sleep(3.0)
        reply = httpx.post(f"{_triton(stack)}/v2/repository/models/{model}/load", timeout=60)
        assert reply.status_code == 200, reply.text
        return wait_until(stack.ready, 60, "the router ready again")

    answers, _ = _under_load(stack, fault, recover, "unload-model")
    assert any(a.route == "generalist" for a in answers)  # the fallback served reach-v3


def test_redis_killed_and_restarted_loses_no_decision_and_keeps_stickiness(stack: Stack
                                                                            ) -> None:
    client = redis.Redis(port=stack.ports["redis-port"])

    def fault() -> float:
        os.kill(stack.status()["redis-server"]["pid"], signal.SIGKILL)
        return time.monotonic()

    def recover(struck: float) -> float:
        return wait_until(lambda: stack.status()["redis-server"]["restarts"] == 1
                          and _pings(client), 60, "redis-server restarted")

    answers, _ = _under_load(stack, fault, recover, "kill-redis")
    # Serving never stopped: answers or an explicit shed (503 with a retry hint), never none.
    assert {a.status for a in answers} <= {200, 503}
    assert sum(a.status == 200 for a in answers) > 0.9 * len(answers)
    decided = {a.decision_id for a in answers if a.decision_id}
    wait_until(lambda: decided <= _logged(client), 30, "every decision in the Redis stream")
    routes = [a.route for a in answers if a.route not in ("", "hold")]
    assert len(set(routes)) == 1  # one episode, one route, across the restart


def test_a_router_killed_mid_episode_keeps_the_episode_route(stack: Stack) -> None:
    def fault() -> float:
        os.kill(stack.status()["router"]["pid"], signal.SIGKILL)
        return time.monotonic()

    def recover(struck: float) -> float:
        return wait_until(lambda: stack.status()["router"]["restarts"] == 1 and stack.ready(),
                          90, "the router restarted")

    answers, _ = _under_load(stack, fault, recover, "kill-router", router_dies=True)
    before = [a for a in answers if a.status == 200][:5]
    after = [a for a in answers if a.status == 200][-5:]
    assert {a.route for a in before} == {a.route for a in after}
    assert all(a.reason == "sticky" for a in after)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _logged(client: redis.Redis) -> set[str]:
    entries = client.xrange("router:decisions")
    return {fields[b"decision_id"].decode() for _id, fields in entries}


def test_sigterm_drains_readiness_first_then_in_flight_finish_then_exit(stack: Stack) -> None:
    """SIGTERM: /readyz says 503 (draining) while requests are still answered, the process
    then exits cleanly (code 0), and the supervisor brings a fresh router back."""
    answers: list[Answer] = []
    stop = threading.Event()
    driver = threading.Thread(target=drive, args=(stack, stop, answers), daemon=True)
    driver.start()
    time.sleep(1.0)
    os.kill(stack.status()["router"]["pid"], signal.SIGTERM)
    termed = time.monotonic()
    ready = httpx.get(f"{stack.url}/readyz", timeout=2.0)
    assert ready.status_code == 503 and ready.json()["checks"]["draining"] is True
    served_while_draining = wait_until(
        lambda: any(a.sent > termed and a.status == 200 for a in answers), 5,
        "a request answered while draining")
    back = wait_until(lambda: stack.status()["router"]["restarts"] == 1 and stack.ready(), 90,
                      "the router restarted")
    stop.set()
    driver.join(timeout=10)
    # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done, so the
    # exit status is "terminated by SIGTERM" after the drain, not a kill (-9).
    assert stack.status()["router"]["last_exit"] in (0, -signal.SIGTERM)
    assert "draining for" in (stack.run_dir / "router.log").read_text()
    assert served_while_draining - termed < 1.0  # the drain (1 s in make up) kept serving
    assert router_late_flagged(answers) == []
    assert delivery_late_share(answers) <= DELIVERY_LATE_SHARE
    assert back > termed
