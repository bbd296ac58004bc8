"""The arms of one run: which policy family serves, whether the task is declared, and which
perturbation is applied. Every arm goes through the same router and Triton; an arm that should
use one policy family gets a contract derived from the deployed one (see contracts.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Family = Literal["generalist", "specialist", "router"]
LARGE_GENERALIST = "generalist_large"  # policies.train.LARGE_GENERALIST, the transformer


@dataclass(frozen=True)
class Perturbation:
    obs_noise_std: float = 0.0  # Gaussian noise on every observation the robot sends
    obs_delay_steps: int = 0  # the robot sends the observation from k control steps ago
    action_delay_steps: int = 0  # an action is applied k control steps after it was computed
    slow_route: str | None = None  # Triton ensemble whose policy model gets injected latency
    slow_delay_ms: float = 0.0
    slow_prob: float = 0.0
    stale_calibration: bool = False  # the contract's calibration table is deliberately wrong

    @property
    def controller_side(self) -> bool:
        """Perturbations of what the controller sends or applies (not of the serving stack)."""
        return self.obs_noise_std > 0 or self.obs_delay_steps > 0 or self.action_delay_steps > 0

    def describe(self) -> str:
        parts = []
        if self.obs_noise_std:
            parts.append(f"observation noise σ={self.obs_noise_std:g} on every state value")
        if self.obs_delay_steps:
            parts.append(f"stale observation: {self.obs_delay_steps} control steps old")
        if self.action_delay_steps:
            parts.append(f"action applied {self.action_delay_steps} control steps late")
        if self.slow_route:
            parts.append(f"{self.slow_route}: +{self.slow_delay_ms:g} ms on "
                         f"{self.slow_prob:.0%} of Triton executes (fault file)")
        if self.stale_calibration:
            parts.append("calibration table inverted (every rate r -> 1 - r)")
        return "; ".join(parts) or "none"


@dataclass(frozen=True)
class Arm:
    name: str
    family: Family
    declare_task: bool = True
    perturbation: Perturbation = field(default_factory=Perturbation)
    # The Triton ensemble that plays the contract's generalist ("": the contract's own). The
    # router keeps one generalist per contract, so the large one replaces the small one.
    generalist: str = ""

    @property
    def perturbed(self) -> bool:
        return self.perturbation != Perturbation() or not self.declare_task

    def describe(self) -> str:
        serving = {
            "generalist": "router, contract with the generalist only",
            "specialist": "router, contract whose generalist can never win (oracle specialist)",
            "router": "router, deployed contract",
        }[self.family]
        if self.generalist:
            serving += f", generalist served by {self.generalist}"
        task = "task declared" if self.declare_task else "task hidden (router's classifier)"
        return f"{serving}; {task}; perturbation: {self.perturbation.describe()}"


@dataclass(frozen=True)
class ArmSettings:
    """Perturbation strengths (CLI flags); defaults chosen to be clearly felt but not absurd."""

    noise_std: float = 0.01  # 1 cm on positions: a cheap depth camera's error
    delay_steps: int = 3  # 60 ms at 50 Hz
    slow_route: str = ""  # empty: the specialist of the panel's first task
    slow_delay_ms: float = 60.0  # three 20 ms control periods
    slow_prob: float = 0.5


DEFAULT_ARMS: tuple[str, ...] = (
    "generalist", "specialist", "router", "router_hidden",
    "obs_noise", "action_delay", "slow_specialist", "stale_calibration",
)
OPTIONAL_ARMS: tuple[str, ...] = ("stale_obs", "generalist_large", "router_large")


def build_arm(name: str, settings: ArmSettings, first_specialist: str) -> Arm:
    slow = settings.slow_route or first_specialist
    arms = {
        "generalist": Arm("generalist", "generalist"),
        "specialist": Arm("specialist", "specialist"),
        "router": Arm("router", "router"),
        "router_hidden": Arm("router_hidden", "router", declare_task=False),
        "generalist_large": Arm("generalist_large", "generalist", generalist=LARGE_GENERALIST),
        # Task declared only: the inferred-task calibration row is the small generalist's.
        "router_large": Arm("router_large", "router", generalist=LARGE_GENERALIST),
        "obs_noise": Arm("obs_noise", "router",
                         perturbation=Perturbation(obs_noise_std=settings.noise_std)),
        "action_delay": Arm("action_delay", "router",
                            perturbation=Perturbation(action_delay_steps=settings.delay_steps)),
        "stale_obs": Arm("stale_obs", "router",
                         perturbation=Perturbation(obs_delay_steps=settings.delay_steps)),
        "slow_specialist": Arm("slow_specialist", "router", perturbation=Perturbation(
            slow_route=slow, slow_delay_ms=settings.slow_delay_ms, slow_prob=settings.slow_prob)),
        "stale_calibration": Arm("stale_calibration", "router",
                                 perturbation=Perturbation(stale_calibration=True)),
    }
    if name not in arms:
        raise ValueError(f"unknown arm {name!r}; known: {', '.join(arms)}")
    return arms[name]


def build_arms(names: Sequence[str], settings: ArmSettings, first_specialist: str) -> list[Arm]:
    if len(set(names)) != len(names):
        raise ValueError(f"an arm is listed twice: {list(names)}")
    return [build_arm(n, settings, first_specialist) for n in names]
