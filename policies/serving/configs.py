"""Triton `config.pbtxt` for every model of the repository, built as `ModelConfig` protos.

Building protos (not formatting strings) means a config that Triton's schema rejects cannot be
written, and `text_format` prints fields in a fixed order, so regenerating gives identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Literal

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

Flavour = Literal["cpu", "gpu"]
MAX_BATCH_SIZE = 64
# Requests that queue while an instance is busy are batched anyway; waiting for more costs every
# lone request the full delay. So only the policy step, whose batched ORT run replaces many, waits
# (briefly); the numpy pre/post steps take whatever is queued (0 us: measured ~0.15 ms per step).
POLICY_QUEUE_DELAY_US = 100
PREPROCESS = "preprocess"
POSTPROCESS = "postprocess"


def _tensors(
    cls: type[mc.ModelInput] | type[mc.ModelOutput], dims: Mapping[str, int]
) -> list[mc.ModelInput] | list[mc.ModelOutput]:
    return [cls(name=n, data_type=mc.TYPE_FP32, dims=[d]) for n, d in dims.items()]


def _base(
    name: str, inputs: Mapping[str, int], outputs: Mapping[str, int], **fields: object
) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, max_batch_size=MAX_BATCH_SIZE, **fields)
    config.input.extend(_tensors(mc.ModelInput, inputs))
    config.output.extend(_tensors(mc.ModelOutput, outputs))
    return config


def _parameters(config: mc.ModelConfig, values: Mapping[str, str]) -> None:
    for key, value in sorted(values.items()):
        config.parameters[key].string_value = value


def _schedule(
    config: mc.ModelConfig, kind: int = mc.ModelInstanceGroup.KIND_CPU, queue_delay_us: int = 0,
    instances: int = 1,
) -> None:
    # One instance per model: the host has few cores and the batcher fills each execute call.
    config.instance_group.append(mc.ModelInstanceGroup(count=instances, kind=kind))
    config.dynamic_batching.SetInParent()  # present even when every field keeps its default
    config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us


FAULT_INSTANCES = 2


def python_model(
    name: str,
    inputs: Mapping[str, int],
    outputs: Mapping[str, int],
    parameters: Mapping[str, str] | None = None,
    queue_delay_us: int = 0,
    instances: int = 1,
) -> mc.ModelConfig:
    config = _base(name, inputs, outputs, backend="python")
    _parameters(config, parameters or {})
    _schedule(config, queue_delay_us=queue_delay_us, instances=instances)
    return config


def preprocess(obs_dim: int) -> mc.ModelConfig:
    return python_model(PREPROCESS, {"observation": obs_dim}, {"obs_norm": obs_dim})


def postprocess(low: Iterable[float], high: Iterable[float]) -> mc.ModelConfig:
    low, high = list(low), list(high)
    bounds = {"action_low": json.dumps(low), "action_high": json.dumps(high)}
    return python_model(POSTPROCESS, {"action_raw": len(low)}, {"action": len(low)}, bounds)


def policy_inputs(obs_dim: int, n_tasks: int | None) -> dict[str, int]:
    """The ONNX graph's inputs: a generalist (n_tasks given) also takes the task one-hot."""
    inputs = {"obs_norm": obs_dim}
    if n_tasks is not None:
        inputs["task_onehot"] = n_tasks
    return inputs


def policy(
    name: str,
    obs_dim: int,
    n_tasks: int | None,
    action_dim: int,
    flavour: Flavour,
    fault_file: str | None = None,
) -> mc.ModelConfig:
    inputs = policy_inputs(obs_dim, n_tasks)
    outputs = {"action": action_dim}  # the ONNX output name, so both flavours share the ensemble
    if flavour == "cpu":
        parameters = {"fault_file": fault_file} if fault_file else None
        # A fault-injected policy gets a second instance: an injected straggler then delays
        # its own execute call without blocking the requests queued behind it, as a slow GPU
        # kernel or a preempted host would, so a hedge has somewhere to go.
        return python_model(name, inputs, outputs, parameters, POLICY_QUEUE_DELAY_US,
                            instances=FAULT_INSTANCES if fault_file else 1)
    if fault_file:
        raise ValueError("fault injection needs the python-backend policy (flavour cpu)")
    config = _base(name, inputs, outputs, platform="onnxruntime_onnx")
    config.default_model_filename = "model.onnx"
    _schedule(config, mc.ModelInstanceGroup.KIND_GPU, POLICY_QUEUE_DELAY_US)
    return config


def ensemble(
    name: str,
    policy_model: str,
    obs_dim: int,
    n_tasks: int | None,
    action_dim: int,
    policy_version: str,
) -> mc.ModelConfig:
    inputs = {"observation": obs_dim}
    if n_tasks is not None:
        inputs["task_onehot"] = n_tasks
    config = _base(name, inputs, {"action": action_dim}, platform="ensemble")
    policy_map = {k: k for k in policy_inputs(obs_dim, n_tasks)}
    steps = [
        (PREPROCESS, {"observation": "observation"}, {"obs_norm": "obs_norm"}),
        (policy_model, policy_map, {"action": "action_raw"}),
        (POSTPROCESS, {"action_raw": "action_raw"}, {"action": "action"}),
    ]
    for model, input_map, output_map in steps:
        config.ensemble_scheduling.step.append(
            mc.ModelEnsembling.Step(
                model_name=model, model_version=-1, input_map=input_map, output_map=output_map
            )
        )
    _parameters(config, {"policy_version": policy_version})
    return config


def render(config: mc.ModelConfig) -> str:
    return str(text_format.MessageToString(config))


def parse(text: str) -> mc.ModelConfig:
    """Parse a config.pbtxt the way Triton does (text format into `ModelConfig`)."""
    return text_format.Parse(text, mc.ModelConfig())


def check_ensembles(configs: Mapping[str, mc.ModelConfig]) -> None:
    """Every ensemble step must name a model of the repository and tensors it really has."""
    for config in configs.values():
        for step in config.ensemble_scheduling.step:
            target = configs.get(step.model_name)
            if target is None:
                raise ValueError(f"{config.name}: step model '{step.model_name}' is not generated")
            for key in step.input_map:
                if key not in {t.name for t in target.input}:
                    raise ValueError(f"{config.name}: {step.model_name} has no input '{key}'")
            for key in step.output_map:
                if key not in {t.name for t in target.output}:
                    raise ValueError(f"{config.name}: {step.model_name} has no output '{key}'")
