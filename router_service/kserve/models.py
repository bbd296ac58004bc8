"""The models the facade exposes, built from the active contract once (not per request):

- `route`: the router itself; each request is routed like `POST /v1/act` (task given, or
  inferred by the classifier).
- each contract route by name (`generalist`, `specialist_<task>`): passes through to that
  route (`ActInput.route`, decision reason `requested`), the task pinned to what the route
  serves (a one-task specialist's own task; the generalist's must be given). It still falls
  back along its chain when it cannot answer, and a route whose circuit is open is scored
  like `route`, so the reply's `route` parameter says which route acted.

Every model takes `observation` FP32 [1, state_dim] and answers `action` FP32 [1, action_dim]
(max_batch_size 1: one robot per request).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from router_service.errors import ClientError, InvalidRequest
from router_service.runtime import ActiveContract, RouterRuntime

ROUTE_MODEL = "route"
MODEL_VERSION = "1"  # one version per name; the weights' version is `policy_version`
PLATFORM = "robot-policy-router"
INPUT, OUTPUT = "observation", "action"
# What this server implements of the KServe v2 / Triton extensions.
EXTENSIONS = ("binary_tensor_data", "parameters", "model_configuration")


def _server_version() -> str:
    try:
        return metadata.version("robot-policy-router")
    except metadata.PackageNotFoundError:
        return "unknown"


SERVER_METADATA: dict[str, Any] = {"name": PLATFORM, "version": _server_version(),
                                   "extensions": list(EXTENSIONS)}


class UnknownModel(ClientError):
    """A model name (or version) the facade does not serve: KServe's NOT_FOUND / 404."""

    code = "not_found"
    http_status = 404
    grpc_code = "NOT_FOUND"


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    kind: str  # "route" | "generalist" | "specialist"
    tasks: tuple[str, ...]
    metadata: dict[str, Any]  # KServe model metadata (JSON form)
    config: dict[str, Any]  # Triton model configuration (JSON form)

    def task_for(self, given: str | None) -> str | None:
        """The task the engine is asked to act on (None: the classifier infers it)."""
        if self.kind == "route":
            return given  # an unknown task is the engine's 422 → INVALID_ARGUMENT
        if given is None:
            if len(self.tasks) == 1:
                return self.tasks[0]
            raise InvalidRequest(f"parameters.task: model {self.name!r} needs the task it is "
                                 f"to do, one of {', '.join(self.tasks)}",
                                 field="parameters.task")
        if given not in self.tasks:
            raise InvalidRequest(f"parameters.task: model {self.name!r} does not do task "
                                 f"{given!r}; it does {', '.join(self.tasks)}",
                                 field="parameters.task")
        return given


@dataclass(frozen=True, slots=True)
class Catalogue:
    active: ActiveContract
    models: dict[str, ModelView]

    def model(self, name: str, version: str = "") -> ModelView:
        view = self.models.get(name)
        if view is None:
            raise UnknownModel(f"unknown model {name!r}; this router serves "
                               f"{', '.join(self.models)}", field="model_name")
        if version not in ("", MODEL_VERSION):
            raise UnknownModel(f"model {name!r} has no version {version!r} (only "
                               f"{MODEL_VERSION!r})", field="model_version")
        return view


def _tensor(name: str, width: int) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": [-1, width]}


def _view(active: ActiveContract, name: str, kind: str, tasks: tuple[str, ...],
          version: str) -> ModelView:
    spec = active.contract.spec
    params = {"policy_version": version, "kind": kind, "tasks": ",".join(tasks),
              "contract_version": active.contract.version}
    config = {
        "name": name, "platform": PLATFORM, "max_batch_size": 1,
        "input": [{"name": INPUT, "data_type": "TYPE_FP32", "dims": [spec.state_dim]}],
        "output": [{"name": OUTPUT, "data_type": "TYPE_FP32", "dims": [spec.action_dim]}],
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }
    meta = {"name": name, "versions": [MODEL_VERSION], "platform": PLATFORM,
            "inputs": [_tensor(INPUT, spec.state_dim)],
            "outputs": [_tensor(OUTPUT, spec.action_dim)]}
    return ModelView(name, kind, tasks, meta, config)


def build_catalogue(active: ActiveContract) -> Catalogue:
    contract = active.contract
    models = {ROUTE_MODEL: _view(active, ROUTE_MODEL, "route", tuple(contract.task_names),
                                 f"router@{contract.version}")}
    for policy in contract.spec.policies:
        models[policy.name] = _view(active, policy.name, policy.kind, policy.tasks,
                                    active.policy_versions.get(policy.name, "unknown"))
    return Catalogue(active, models)


_last: Catalogue | None = None


def catalogue(runtime: RouterRuntime) -> Catalogue:
    """The catalogue of the contract now active, rebuilt only when a reload swapped it."""
    global _last
    active = runtime.active
    if _last is None or _last.active is not active:
        _last = build_catalogue(active)
    return _last


def server_ready(runtime: RouterRuntime) -> bool:
    """As `/readyz`: a contract, Triton and every route's model ready, and not draining."""
    return bool(not runtime.drain.draining and runtime.has_contract and runtime.triton_ready
                and all(h.model_ready for h in runtime.active.health.values()))


def model_ready(runtime: RouterRuntime, view: ModelView) -> bool:
    """`route` is ready when the server is; a route when Triton reports its model ready."""
    if view.kind == "route":
        return server_ready(runtime)
    health = runtime.active.health.get(view.name)
    return bool(not runtime.drain.draining and runtime.triton_ready and health is not None
                and health.model_ready)
