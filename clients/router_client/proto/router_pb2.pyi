# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Observation(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, state: _Optional[_Iterable[float]] = ...) -> None: ...

class ActRequest(_message.Message):
    __slots__ = ("robot_id", "episode_id", "task", "observation", "deadline_ms", "sequence", "deadline_unix_ms")
    ROBOT_ID_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    robot_id: str
    episode_id: str
    task: str
    observation: Observation
    deadline_ms: float
    sequence: int
    deadline_unix_ms: float
    def __init__(self, robot_id: _Optional[str] = ..., episode_id: _Optional[str] = ..., task: _Optional[str] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ..., deadline_ms: _Optional[float] = ..., sequence: _Optional[int] = ..., deadline_unix_ms: _Optional[float] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("scoring_ms", "upstream_ms", "total_ms", "queued_ms")
    SCORING_MS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    scoring_ms: float
    upstream_ms: float
    total_ms: float
    queued_ms: float
    def __init__(self, scoring_ms: _Optional[float] = ..., upstream_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., queued_ms: _Optional[float] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "field", "retry_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    field: str
    retry_after_ms: float
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ..., retry_after_ms: _Optional[float] = ...) -> None: ...

class ActResponse(_message.Message):
    __slots__ = ("action", "route", "policy_version", "task", "task_source", "task_confidence", "fallback", "deadline_met", "timing_ms", "decision_id", "reason", "sequence", "error")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TASK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TASK_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MET_FIELD_NUMBER: _ClassVar[int]
    TIMING_MS_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    action: _containers.RepeatedScalarFieldContainer[float]
    route: str
    policy_version: str
    task: str
    task_source: str
    task_confidence: float
    fallback: str
    deadline_met: bool
    timing_ms: Timing
    decision_id: str
    reason: str
    sequence: int
    error: Error
    def __init__(self, action: _Optional[_Iterable[float]] = ..., route: _Optional[str] = ..., policy_version: _Optional[str] = ..., task: _Optional[str] = ..., task_source: _Optional[str] = ..., task_confidence: _Optional[float] = ..., fallback: _Optional[str] = ..., deadline_met: _Optional[bool] = ..., timing_ms: _Optional[_Union[Timing, _Mapping]] = ..., decision_id: _Optional[str] = ..., reason: _Optional[str] = ..., sequence: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
