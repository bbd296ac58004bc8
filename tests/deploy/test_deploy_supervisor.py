"""`make up`'s stack (`python -m deploy.local.stack up`) through a component's death, for real:
tritonserver killed with SIGKILL under load is restarted while the router keeps answering, its
orphaned python-backend stubs are ended, Ctrl-C leaves every port free, and a busy port gets one
line before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from deploy_testkit import REPO_ROOT, contract_for
from stack_testkit import (
    DELIVERY_LATE_SHARE,
    Answer,
    Stack,
    delivery_late_share,
    drive,
    group_members,
    record_figures,
    router_late_flagged,
    wait_until,
)

from deploy.local.ports import in_use
from deploy.local.process import free_port
from policies.repository import generate
from tests.conftest import served_artifacts

pytestmark = [pytest.mark.triton, pytest.mark.redis, pytest.mark.slow]


def test_kill_9_of_tritonserver_under_load_is_survived(stack: Stack) -> None:
    answers: list[Answer] = []
    stop = threading.Event()
    driver = threading.Thread(target=drive, args=(stack, stop, answers), daemon=True)
    driver.start()
    time.sleep(2.0)
    triton_pid = stack.status()["tritonserver"]["pid"]
    os.kill(triton_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: not stack.ready(), 20, "/readyz to say 503")
    back = wait_until(
        lambda: stack.status()["tritonserver"]["restarts"] == 1 and stack.ready(), 180,
        "tritonserver to be restarted and the router ready again")
    resumed = wait_until(lambda: any(a.sent > back and a.route not in ("", "hold")
                                for a in answers[-20:]), 30, "traffic back on a policy route")
    time.sleep(1.0)
    stop.set()
    driver.join(timeout=10)

    figures = record_figures("kill-9-tritonserver", answers, killed, back, resumed)
    assert figures["hangs"] == 0, figures
    outage = [a for a in answers if killed <= a.sent <= back]
    assert outage, "no request was sent while Triton was down"
    assert all(a.status != 0 for a in answers), "a request got no HTTP answer"
    assert {a.status for a in answers} <= {200, 503}
    assert any(a.route == "hold" for a in outage)  # the router kept answering, with hold
    assert router_late_flagged(answers) == []
    assert delivery_late_share(answers) <= DELIVERY_LATE_SHARE, figures
    assert group_members(triton_pid) == []  # the dead server's stubs were ended
    assert resumed - back < 30
    assert stack.status()["router"]["restarts"] == 0  # the router itself never went down


def test_ctrl_c_stops_everything_and_frees_every_port(stack: Stack) -> None:
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=90) == 0
    output = stack.proc.stdout.read().decode() if stack.proc.stdout else ""
    assert "every port is free" in output
    assert [name for name, port in stack.ports.items() if in_use(port)] == []


def test_a_busy_port_gets_one_clear_line_before_anything_starts(tmp_path: Path,
                                                                standin_artifacts: Path) -> None:
    artifacts = served_artifacts(standin_artifacts)
    repository = tmp_path / "repository"
    generate(artifacts, repository, "cpu")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "deploy.local.stack", "up", "--no-prometheus", "--no-redis",
             "--contract", str(contract_for(artifacts, tmp_path)), "--repository",
             str(repository), "--run-dir", str(tmp_path / "run"), f"--http-port={port}",
             f"--triton-http-port={free_port()}", f"--triton-grpc-port={free_port()}",
             f"--triton-metrics-port={free_port()}", f"--grpc-port={free_port()}"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} (router HTTP) is in use by pid {os.getpid()}" in done.stderr
    assert not (tmp_path / "run" / "tritonserver.log").exists()  # nothing was started
