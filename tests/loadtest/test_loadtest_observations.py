from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadtest.observations import load_states, observation_pool, synthetic_states


def test_synthetic_states_are_fixed_by_the_seed() -> None:
    a, b = synthetic_states(39, 1), synthetic_states(39, 1)
    assert a.shape == (1024, 39) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_states(39, 2))
    assert np.isfinite(a).all()


def test_recorded_states_in_each_format(tmp_path: Path) -> None:
    states = np.arange(3 * 39, dtype=np.float32).reshape(3, 39) / 10
    np.save(tmp_path / "s.npy", states)
    (tmp_path / "s.json").write_text(json.dumps({"states": states.tolist()}))
    (tmp_path / "s.jsonl").write_text(
        "\n".join(json.dumps({"observation": {"state": row}}) for row in states.tolist()) + "\n"
    )
    for name in ("s.npy", "s.json", "s.jsonl"):
        np.testing.assert_allclose(load_states(tmp_path / name, 39), states)
    np.testing.assert_allclose(observation_pool(39, 0, tmp_path / "s.npy"), states)


def test_recorded_states_are_checked(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[N>0, 39\]"):
        load_states(tmp_path / "short.npy", 39)
    bad = np.zeros((2, 39), dtype=np.float32)
    bad[1, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_states(tmp_path / "nan.npy", 39)
    (tmp_path / "odd.json").write_text(json.dumps({"states": [1, 2]}))
    with pytest.raises(ValueError, match="list of floats"):
        load_states(tmp_path / "odd.json", 39)
