"""Model card schema and the observation/action schema of Meta-World v3 (fully observable)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from policies.panel import ACTION_DIM, ACTION_HIGH, ACTION_LOW, OBS_DIM


class Field(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    start: int  # slice [start, stop) of the flat vector
    stop: int
    units: str
    low: list[float] | None = None  # per element; None: unbounded or task-dependent
    high: list[float] | None = None
    description: str = ""


# SawyerXYZEnv._HAND_SPACE: the env clips the observed hand position to this box.
HAND_LOW = [-0.525, 0.348, -0.0525]
HAND_HIGH = [0.525, 1.025, 0.7]


def _frame(prefix: str, offset: int, when: str) -> list[Field]:
    return [
        Field(
            name=f"{prefix}hand_pos",
            start=offset,
            stop=offset + 3,
            units="m",
            low=HAND_LOW,
            high=HAND_HIGH,
            description=f"end-effector position {when}; world frame",
        ),
        Field(
            name=f"{prefix}gripper_opening",
            start=offset + 3,
            stop=offset + 4,
            units="fraction",
            low=[0.0],
            high=[1.0],
            description=f"finger distance / 0.1 m {when}",
        ),
        Field(
            name=f"{prefix}object1_pos",
            start=offset + 4,
            stop=offset + 7,
            units="m",
            description=f"first task object position {when}",
        ),
        Field(
            name=f"{prefix}object1_quat",
            start=offset + 7,
            stop=offset + 11,
            units="quaternion (w, x, y, z)",
            low=[-1.0] * 4,
            high=[1.0] * 4,
            description=f"first task object orientation {when}",
        ),
        Field(
            name=f"{prefix}object2_pos",
            start=offset + 11,
            stop=offset + 14,
            units="m",
            description=f"second object position {when}; zeros when the task has one object",
        ),
        Field(
            name=f"{prefix}object2_quat",
            start=offset + 14,
            stop=offset + 18,
            units="quaternion (w, x, y, z)",
            low=[-1.0] * 4,
            high=[1.0] * 4,
            description=f"second object orientation {when}; zeros when unused",
        ),
    ]


OBSERVATION_FIELDS: tuple[Field, ...] = (
    *_frame("", 0, "now"),
    *_frame("prev_", 18, "at the previous step (frame stacking; equals 'now' after reset)"),
    Field(
        name="goal_pos",
        start=36,
        stop=39,
        units="m",
        description="task goal position (bounds depend on the task's goal space)",
    ),
)

ACTION_FIELDS: tuple[Field, ...] = (
    Field(
        name="delta_pos",
        start=0,
        stop=3,
        units="normalised; x 0.01 m mocap move per step",
        low=[ACTION_LOW] * 3,
        high=[ACTION_HIGH] * 3,
        description="end-effector displacement command",
    ),
    Field(
        name="grip_effort",
        start=3,
        stop=4,
        units="normalised torque",
        low=[ACTION_LOW],
        high=[ACTION_HIGH],
        description="+1 closes the gripper, -1 opens it",
    ),
)

assert OBSERVATION_FIELDS[-1].stop == OBS_DIM and ACTION_FIELDS[-1].stop == ACTION_DIM


class TensorSpec(BaseModel):
    name: str
    shape: list[int | str]
    dtype: str = "float32"
    description: str


class TrainingRecord(BaseModel):
    inputs_key: str  # hash of everything the weights depend on; equal key -> reuse the model
    dataset_hash: str
    norm_stats_hash: str
    trained_on: list[str]
    steps: int
    batch_size: int
    optimiser: str
    loss: str
    seed: int
    seconds: float
    final_loss: float
    budget_rule: str


class LatencyRecord(BaseModel):
    runtime: str
    calls: int
    batch_size: int
    intra_op_threads: int
    median_ms: float
    p99_ms: float


class ServingLatencyRecord(BaseModel):
    """The route's ensemble (preprocess -> policy -> postprocess) through a running Triton:
    what the router's latency prior for the route is set from (evaluation/latency_terms.py)."""

    runtime: str
    calls: int
    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    measured: str  # ISO time
    load_average: list[float]  # 1, 5, 15 min: how busy the machine was


class CellRecord(BaseModel):
    episodes: int
    successes: int
    rate: float
    ci95: tuple[float, float]


class ModelCard(BaseModel):
    name: str
    kind: str
    version: str  # first 16 hex digits of the ONNX file's sha256
    onnx_sha256: str
    panel: str
    task_order: list[str]  # order of task_onehot / task_probs columns
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    observation_fields: list[Field]
    action_fields: list[Field]
    normalisation: str
    architecture: str = ""  # empty in cards written before the field existed: the MLP
    parameter_count: int
    onnx_max_abs_difference_to_torch: float
    training: TrainingRecord
    latency: LatencyRecord
    serving_latency: ServingLatencyRecord | None = None  # written once Triton has served it
    # Filled after offline evaluation: task -> closed-loop success on held-out configurations.
    # For the task classifier: task -> per-state accuracy on held-out rollouts.
    offline_success: dict[str, CellRecord] | None = None
    offline_accuracy_expert_states: dict[str, CellRecord] | None = None  # task classifier only
    offline_note: str = ""
