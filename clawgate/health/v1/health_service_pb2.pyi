import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReport(_message.Message):
    __slots__ = ("status", "version", "checked_at", "components", "hint")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    checked_at: _timestamp_pb2.Timestamp
    components: _containers.RepeatedCompositeFieldContainer[Component]
    hint: str
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., components: _Optional[_Iterable[_Union[Component, _Mapping]]] = ..., hint: _Optional[str] = ...) -> None: ...

class Component(_message.Message):
    __slots__ = ("name", "kind", "status", "detail", "latency_ms", "critical", "worker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CRITICAL_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    status: str
    detail: str
    latency_ms: float
    critical: bool
    worker: WorkerInfo
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ..., latency_ms: _Optional[float] = ..., critical: _Optional[bool] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("url", "provider", "version", "pulled_models", "missing_models", "loaded_models", "vram_used_bytes", "in_flight")
    URL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PULLED_MODELS_FIELD_NUMBER: _ClassVar[int]
    MISSING_MODELS_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    VRAM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    url: str
    provider: str
    version: str
    pulled_models: _containers.RepeatedScalarFieldContainer[str]
    missing_models: _containers.RepeatedScalarFieldContainer[str]
    loaded_models: _containers.RepeatedCompositeFieldContainer[LoadedModel]
    vram_used_bytes: float
    in_flight: int
    def __init__(self, url: _Optional[str] = ..., provider: _Optional[str] = ..., version: _Optional[str] = ..., pulled_models: _Optional[_Iterable[str]] = ..., missing_models: _Optional[_Iterable[str]] = ..., loaded_models: _Optional[_Iterable[_Union[LoadedModel, _Mapping]]] = ..., vram_used_bytes: _Optional[float] = ..., in_flight: _Optional[int] = ...) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("name", "size_bytes", "size_vram_bytes", "context_length", "expires_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_VRAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: float
    size_vram_bytes: float
    context_length: int
    expires_at: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[float] = ..., size_vram_bytes: _Optional[float] = ..., context_length: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...
