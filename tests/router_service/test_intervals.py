from __future__ import annotations

import pytest

from router_service.intervals import wilson_interval


def test_known_values() -> None:
    lo, hi = wilson_interval(29, 30)
    assert (round(lo, 4), round(hi, 4)) == (0.8333, 0.9941)  # as in the ci calibration table
    assert wilson_interval(0, 30)[0] == 0.0 and wilson_interval(30, 30)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
