"""The perturbations of `policies.robustness`, each applied in process to a Meta-World env.

- `obs_noise`: N(0, σ²) on every one of the 39 raw observation values the robot would send
  (metres for positions; the quaternion, gripper and goal entries too), as the closed-loop
  runner (`evaluation/runner.py`) does. The normalisation comes after, inside the policy.
- `action_delay`: the action computed at step t is applied at step t + k; the first k steps
  apply the contract's hold action (zeros), as the closed-loop robot does.
- `ood_placement`: the placed thing's initial position is pushed outside the box the demos
  were drawn from (see `ood_placement`).
- `mass_x2`: the manipulated object's body (and the bodies it carries) twice as heavy.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

import mujoco
import numpy as np
import numpy.typing as npt
from gymnasium.spaces import Box

from policies.panel import ACTION_DIM

Perturbation = Literal["none", "obs_noise", "action_delay", "ood_placement", "mass_x2"]
PERTURBATIONS: tuple[Perturbation, ...] = (
    "none", "obs_noise", "action_delay", "ood_placement", "mass_x2")
ENV_PERTURBATIONS: frozenset[str] = frozenset({"none", "ood_placement", "mass_x2"})
Vector = npt.NDArray[np.float64]

# reach-v3 succeeds when the gripper is at the goal and never touches its object, so the thing
# placed is the goal (the second half of its reset vector) and nothing is manipulated.
GOAL_PLACED: frozenset[str] = frozenset({"reach-v3", "reach-wall-v3"})
NOTHING_MANIPULATED: frozenset[str] = GOAL_PLACED
# reset_model() re-samples while the two xy positions of a 6-d reset vector are closer than
# this (Meta-World 3.1.1: 0.1 for the peg and stick tasks, 0.25 box-close, 0.15 the others).
# With a frozen vector that loop would never end, so a placement must keep the separation;
# 0.15 is the default, which is also safe for the 0.1 tasks not listed.
MIN_SEPARATION: dict[str, float] = {"peg-insert-side-v3": 0.1, "box-close-v3": 0.25}
DEFAULT_SEPARATION = 0.15
# Scenes with two non-robot joints: the body the task moves (the other one it acts on through).
MANIPULATED: dict[str, str] = {"coffee-button-v3": "cmbutton", "hammer-v3": "hammerbody"}
ROBOT_ROOT = "base"  # the Sawyer's bodies hang below this one; everything else is the scene


@dataclass(frozen=True)
class PerturbSettings:
    noise_std: float = 0.05  # docs/evaluation-recipe.md; raw units (5 cm on positions)
    delay_steps: int = 1
    ood_margin: float = 0.02  # a placement lands at least 2 cm outside the training box
    workspace_margin: float = 0.02  # ... and its object and goal 2 cm inside the hand's reach
    reach_tolerance: float = 0.03  # a placed goal: the hand must get this close (success: 5 cm)
    mass_scale: float = 2.0


def episode_seed(task: str, policy: str, perturbation: str, index: int) -> int:
    """Stable across processes and runs (unlike hash()): crc32 of the episode's identity."""
    return zlib.crc32(f"{task}/{policy}/{perturbation}/{index}".encode())


class Controller:
    """What the robot feeds the policy and what it applies, for a batch of episodes."""

    def __init__(self, perturbation: str, settings: PerturbSettings, seeds: list[int]):
        self.noise = settings.noise_std if perturbation == "obs_noise" else 0.0
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.delay = settings.delay_steps if perturbation == "action_delay" else 0
        hold = np.zeros(ACTION_DIM, dtype=np.float32)
        self.pending: list[deque[npt.NDArray[np.float32]]] = [
            deque([hold] * self.delay) for _ in seeds]

    def observe(self, obs: Vector, idx: npt.NDArray[np.intp]) -> Vector:
        if not self.noise:
            return obs
        # One stream per episode, drawn only while it runs: an episode's noise does not depend
        # on when the others in its batch finish.
        noise = np.stack([self.rngs[i].normal(0.0, self.noise, obs.shape[1]) for i in idx])
        fed: Vector = obs + noise
        return fed

    def apply(self, actions: npt.NDArray[np.float32], idx: npt.NDArray[np.intp]
              ) -> npt.NDArray[np.float32]:
        if not self.delay:
            return actions
        out = actions.copy()
        for row, i in enumerate(idx):
            self.pending[i].append(actions[row])
            out[row] = self.pending[i].popleft()
        return out


# --- out-of-distribution placement ---------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """One configuration's OOD placement: its reset vector before and after."""

    part: Literal["object", "goal"]
    axes: tuple[int, ...]  # indices in the reset vector that were pushed (x and/or y)
    original: tuple[float, ...]
    placed: tuple[float, ...]
    beyond_m: tuple[float, ...]  # how far outside the training box, per pushed axis
    flipped: int  # how many axes went to the far side (to keep the task solvable)
    goal_widened: bool  # the observed goal would have been clipped to goal_space otherwise


def _reachable(env: Any, xy: Vector, clean_xy: Vector, margin: float) -> bool:
    """Inside the hand's xy workspace by `margin`, unless the placement did not move it (some
    training goals already lie within 1 cm of the workspace's edge)."""
    if np.allclose(xy, clean_xy, atol=1e-6):
        return True
    low, high = env.hand_low[:2] + margin, env.hand_high[:2] - margin
    return bool(np.all(xy >= low) and np.all(xy <= high))


def _hand_gets_to(env: Any, point: Vector, tolerance: float, steps: int = 150) -> bool:
    """Drive the hand straight at `point` (the arm's own limits decide, not the mocap box): at
    table height the Sawyer stops near y = 0.90, so a goal placed further back is unsolvable.
    The env is reset afterwards."""
    best = np.inf
    for _ in range(steps):
        action = np.append(np.clip(10.0 * (point - env.tcp_center), -1.0, 1.0), 0.0)
        env.step(action.astype(np.float32))
        best = min(best, float(np.linalg.norm(env.tcp_center - point)))
    env.reset()
    return best <= tolerance


def ood_placement(env: Any, task: str, settings: PerturbSettings) -> Placement:
    """Push the env's placement (set by set_task) outside the box its demos were drawn from.

    Every horizontal axis that varies in the task's `_random_reset_space` is pushed away from
    the box's centre c by its half-width h plus the margin m: v' = c ± (|v - c| + h + m), on
    the side v already lies on. So a placement lands m to h + m outside the box and keeps the
    spread of the held-out configurations. If that breaks the task (reset's separation loop, a
    moved object or goal outside the hand's workspace, or a placed goal the arm cannot get to),
    axes are flipped to the far side, fewest first. The env keeps the vector frozen, so every
    later reset uses it.
    """
    space: Box = env._random_reset_space
    vec = np.asarray(env._last_rand_vec, dtype=np.float64).copy()
    start = 3 if task in GOAL_PLACED else 0
    axes = tuple(start + a for a in (0, 1) if space.high[start + a] > space.low[start + a])
    centre, half = (space.high + space.low) / 2, (space.high - space.low) / 2
    sides = {a: 1.0 if vec[a] >= centre[a] else -1.0 for a in axes}
    separation = MIN_SEPARATION.get(task, DEFAULT_SEPARATION)
    flips = sorted(product((False, True), repeat=len(axes)), key=sum)
    env.reset()  # where the object and goal are in the unperturbed configuration
    clean = (env._get_pos_objects()[:2].copy(), np.asarray(env._target_pos)[:2].copy())
    for flip in flips:
        placed = vec.copy()
        for a, f in zip(axes, flip, strict=True):
            side = -sides[a] if f else sides[a]
            placed[a] = centre[a] + side * (abs(vec[a] - centre[a]) + half[a] + settings.ood_margin)
        if len(vec) == 6 and np.linalg.norm(placed[:2] - placed[3:5]) < separation + 1e-3:
            continue  # reset_model() would loop forever on this vector
        env._last_rand_vec = placed
        env.reset()
        goal = np.asarray(env._target_pos, dtype=np.float64)
        moved = (env._get_pos_objects()[:2], goal[:2])
        if all(_reachable(env, xy, was, settings.workspace_margin)
               for xy, was in zip(moved, clean, strict=True)) and (
                not start or _hand_gets_to(env, goal, settings.reach_tolerance)):
            beyond = tuple(round(abs(vec[a] - centre[a]) + settings.ood_margin, 4) for a in axes)
            return Placement("goal" if start else "object", axes, tuple(vec.round(4)),
                             tuple(placed.round(4)), beyond, int(sum(flip)),
                             _widen_goal_space(env, goal))
    raise ValueError(f"{task}: no OOD placement keeps the task solvable for {vec.round(3)}")


def _widen_goal_space(env: Any, goal: Vector) -> bool:
    """step() clips the observation to goal_space, so a goal moved with its fixture (door) or
    placed out of range (reach) would be reported wrong; widen it to the true goal."""
    space: Box = env.goal_space
    if np.all(goal >= space.low) and np.all(goal <= space.high):
        return False
    env.goal_space = Box(np.minimum(space.low, goal), np.maximum(space.high, goal),
                         dtype=np.float64)
    env.__dict__.pop("sawyer_observation_space", None)  # a cached_property built from it
    return True


# --- dynamics: mass ------------------------------------------------------------------------


@dataclass(frozen=True)
class MassChange:
    bodies: tuple[str, ...]  # the manipulated body first, then the bodies it carries
    before_kg: tuple[float, ...]
    after_kg: tuple[float, ...]


def _subtree(model: Any, root: int) -> list[int]:
    return [b for b in range(model.nbody) if _descends(model, b, root)]


def _descends(model: Any, body: int, root: int) -> bool:
    while body != root and body != 0:
        body = int(model.body_parentid[body])
    return body == root


def body_name(model: Any, body: int) -> str:
    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
    return str(name) if name else f"body#{body}"  # dial-turn's dial, plate-slide's puck


def manipulated_body(env: Any, task: str) -> int | None:
    """The body of the scene's one non-robot joint (an object's free joint, a door's hinge, a
    drawer's or window's slide); None when the task manipulates nothing."""
    if task in NOTHING_MANIPULATED:
        return None
    model = env.model
    if task in MANIPULATED:
        return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, MANIPULATED[task]))
    robot = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, ROBOT_ROOT)
    bodies = sorted({int(model.jnt_bodyid[j]) for j in range(model.njnt)
                     if not _descends(model, int(model.jnt_bodyid[j]), robot)})
    if len(bodies) != 1:
        names = [body_name(model, b) for b in bodies]
        raise ValueError(f"{task}: expected one manipulated body, found {names}")
    return bodies[0]


def scale_mass(env: Any, body: int, scale: float) -> MassChange:
    """Same shape, `scale` times the density: mass and rotational inertia both scale, for the
    body and every body it carries (a handle on a door)."""
    model = env.model
    ids = [i for i in _subtree(model, body) if model.body_mass[i] > 0]
    before = tuple(round(float(model.body_mass[i]), 6) for i in ids)
    for i in ids:
        model.body_mass[i] *= scale
        model.body_inertia[i] *= scale
    mujoco.mj_setConst(model, env.data)  # derived constants (subtree masses) follow
    names = tuple(body_name(model, i) for i in ids)
    return MassChange(names, before, tuple(round(float(model.body_mass[i]), 6) for i in ids))
