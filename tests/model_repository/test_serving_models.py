"""`execute` of preprocess, policy and postprocess, in-process against the pb_utils stand-in."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from repo_testkit import Reference, Serving

SPECIALIST = "policy_specialist_reach_v3"


@pytest.fixture(scope="module")
def ref(standin_artifacts: Path) -> Reference:
    return Reference(standin_artifacts)


def _ok(response: Any) -> np.ndarray:
    assert not response.has_error(), response.error().message()
    (tensor,) = response.output_tensors()
    return tensor.as_numpy()


def _err(response: Any) -> str:
    assert response.has_error()
    assert response.output_tensors() == []
    return str(response.error().message())


def test_preprocess_normalises_each_request_and_rejects_non_finite(
    serving: Serving, ref: Reference
) -> None:
    model = serving.load("preprocess")
    good = ref.observations(3)
    bad = ref.observations(2, seed=1)
    bad[1, 7] = np.nan
    inf = ref.observations(1, seed=2)
    inf[0, 38] = np.inf
    responses = model.execute(
        [serving.request(observation=good[:1]), serving.request(observation=bad),
         serving.request(observation=good[1:]), serving.request(observation=inf)]
    )
    assert len(responses) == 4
    expected = (good - ref.mean) / ref.std
    np.testing.assert_allclose(_ok(responses[0]), expected[:1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(_ok(responses[2]), expected[1:], rtol=0, atol=1e-5)
    assert _ok(responses[2]).dtype == np.float32
    assert "row 1 index 7 is nan" in _err(responses[1])
    assert "row 0 index 38 is inf" in _err(responses[3])
    assert responses[1].error().code() == serving.pb.TritonError.INVALID_ARG


def test_preprocess_rejects_values_that_overflow_when_normalised(
    serving: Serving, ref: Reference
) -> None:
    model = serving.load("preprocess")
    huge = ref.observations(1)
    huge[0, int(np.argmin(ref.std))] = 3e38  # finite, but inf after dividing by std < 1
    good = ref.observations(1)
    responses = model.execute(
        [serving.request(observation=huge), serving.request(observation=good)]
    )
    assert "observation out of range: row 0 index" in _err(responses[0])
    np.testing.assert_allclose(_ok(responses[1]), (good - ref.mean) / ref.std, atol=1e-5)


def test_policy_runs_one_batched_session_call(serving: Serving, ref: Reference) -> None:
    model = serving.load("policy_generalist")
    calls: list[int] = []
    real_run = model._session.run

    def counting_run(outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(feeds["obs_norm"].shape[0])
        return list(real_run(outputs, feeds))

    model._session.run = counting_run
    obs = ref.observations(5)
    norm = ((obs - ref.mean) / ref.std).astype(np.float32)
    onehot = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    bad_onehot = onehot[:1].copy()
    bad_onehot[0, 0] = np.nan
    requests = [
        serving.request(obs_norm=norm[:2], task_onehot=onehot[:2]),
        serving.request(obs_norm=norm[:1], task_onehot=bad_onehot),
        serving.request(obs_norm=norm[2:], task_onehot=onehot[2:]),
    ]
    responses = model.execute(requests)
    assert calls == [5]  # both valid requests, all five rows, in one session.run
    expected = ref.sessions["generalist"].run(["action"], {"obs_norm": norm, "task_onehot": onehot})
    np.testing.assert_allclose(_ok(responses[0]), expected[0][:2], atol=1e-6)
    np.testing.assert_allclose(_ok(responses[2]), expected[0][2:], atol=1e-6)
    assert "non-finite 'task_onehot'" in _err(responses[1])


def test_specialist_takes_obs_norm_only(serving: Serving, ref: Reference) -> None:
    model = serving.load(SPECIALIST)
    norm = ((ref.observations(2) - ref.mean) / ref.std).astype(np.float32)
    (response,) = model.execute([serving.request(obs_norm=norm)])
    expected = ref.sessions["specialist_reach_v3"].run(["action"], {"obs_norm": norm})[0]
    np.testing.assert_allclose(_ok(response), expected, atol=1e-6)
    assert "missing input 'obs_norm'" in _err(model.execute([serving.request()])[0])


def _write_fault(path: Path, **spec: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec))
    tmp.replace(path)


def test_policy_fault_injection_follows_the_file(serving: Serving, ref: Reference) -> None:
    model = serving.load(SPECIALIST)
    fault_file = model._faults.path
    assert fault_file.name == f"{SPECIALIST}.json"
    fault_file.parent.mkdir(parents=True, exist_ok=True)
    norm = ((ref.observations(1) - ref.mean) / ref.std).astype(np.float32)
    requests = [serving.request(obs_norm=norm) for _ in range(3)]
    try:
        _write_fault(fault_file, fail_prob=1.0)
        responses = model.execute(requests)
        assert len(responses) == 3
        assert all("injected failure" in _err(r) for r in responses)
        assert responses[0].error().code() == serving.pb.TritonError.UNAVAILABLE

        _write_fault(fault_file, delay_ms=150.0, delay_prob=1.0)
        start = time.perf_counter()
        responses = model.execute(requests)
        elapsed = time.perf_counter() - start
        # One sleep for the whole batch: the requests run together.
        assert 0.15 <= elapsed < 0.3
        assert all(not r.has_error() for r in responses)

        _write_fault(fault_file, nan_prob=1.0)
        responses = model.execute(requests[:1])
        assert np.isnan(_ok(responses[0])).all()  # for postprocess to reject

        _write_fault(fault_file, delay_ms=1000.0, delay_prob=0.0, fail_prob=0.0)
        start = time.perf_counter()
        assert not model.execute(requests)[0].has_error()
        assert time.perf_counter() - start < 0.1
    finally:
        fault_file.unlink(missing_ok=True)
    assert not model.execute(requests)[0].has_error()


def test_a_call_straggles_with_delay_prob_whatever_its_batch(serving: Serving,
                                                             tmp_path: Path) -> None:
    """Drawn once per execute: a batch of 16 is no likelier to sleep than a lone request (per
    request, 1 - 0.97^16 = 39% of such calls would)."""
    module = serving.modules["policy"]
    injector = module.FaultInjector(tmp_path / "f.json", rng=random.Random(7))
    _write_fault(injector.path, delay_ms=100.0, delay_prob=0.03)
    spec = injector.current()
    delayed = sum(injector.call_delay_s(spec) > 0 for _ in range(4000))
    assert 0.02 < delayed / 4000 < 0.04
    assert {injector.call_delay_s(spec) for _ in range(200)} <= {0.0, 0.1}


def test_fault_file_is_read_only_when_it_changes(serving: Serving, tmp_path: Path) -> None:
    injector = serving.modules["policy"].FaultInjector(tmp_path / "f.json")
    assert injector.current().fail_prob == 0.0  # no file: no faults
    _write_fault(injector.path, fail_prob=0.25)
    assert injector.current().fail_prob == 0.25
    # Same inode, size and mtime: the cached spec is kept without reading the file again.
    st = os.stat(injector.path)
    injector.path.write_text(json.dumps({"fail_prob": 0.75}))
    os.utime(injector.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert injector.current().fail_prob == 0.25
    _write_fault(injector.path, fail_prob=0.5)
    assert injector.current().fail_prob == 0.5
    injector.path.write_text("{not json")
    assert injector.current().fail_prob == 0.0
    assert any("ignoring fault file" in m for m in serving.pb.Logger.messages)


def test_postprocess_clips_and_rejects_non_finite(serving: Serving, ref: Reference) -> None:
    model = serving.load("postprocess")
    raw = np.array([[0.9, -0.9, 0.1, -0.99], [0.2, 0.3, -0.4, 0.5]], dtype=np.float32)
    nan = np.array([[0.1, np.nan, 0.0, 0.0]], dtype=np.float32)
    responses = model.execute(
        [serving.request(action_raw=raw), serving.request(action_raw=nan),
         serving.request(action_raw=-np.full((1, 4), np.inf, dtype=np.float32))]
    )
    np.testing.assert_array_equal(_ok(responses[0]), np.clip(raw, ref.low, ref.high))
    assert "non-finite action: row 0 index 1 is nan" in _err(responses[1])
    assert "row 0 index 0 is -inf" in _err(responses[2])


def test_postprocess_needs_bounds(serving: Serving, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="action_low/action_high"):
        serving.modules["postprocess"].parse_bounds({"parameters": {}}, 4)
    bounds = {"action_low": {"string_value": "[1, 1]"}, "action_high": {"string_value": "[0, 0]"}}
    with pytest.raises(ValueError, match="low <= high"):
        serving.modules["postprocess"].parse_bounds({"parameters": bounds}, 2)
