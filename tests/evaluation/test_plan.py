"""The run's episode order: every arm's episodes in interleaved, rotated blocks."""

from __future__ import annotations

from collections import Counter

import pytest

from evaluation.arms import ArmSettings, build_arms
from evaluation.plan import schedule

ARMS = build_arms(["generalist", "specialist", "router"], ArmSettings(), "specialist_reach_v3")


@pytest.mark.parametrize(("episodes", "rounds"), [(20, 4), (5, 4), (1, 4), (7, 3), (3, 1)])
def test_every_episode_once(episodes: int, rounds: int) -> None:
    blocks = schedule(ARMS, episodes, rounds)
    seen = Counter((arm.name, i) for arm, indices in blocks for i in indices)
    assert set(seen.values()) == {1}
    assert len(seen) == len(ARMS) * episodes


def test_arms_rotate_between_rounds() -> None:
    blocks = schedule(ARMS, 20, 4)
    firsts = [blocks[r * len(ARMS)][0].name for r in range(4)]
    assert firsts == ["generalist", "specialist", "router", "generalist"]
    assert [list(indices) for arm, indices in blocks if arm.name == "router"] == [
        list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]
