"""The descriptor set Envoy loads (`deploy/envoy/clawgate.pb`), indexed for the generator:
messages and enums by full name, and the comments of every element from source info."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Registers the google.api extensions, so that parsing the set keeps them in the options.
from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2 as d

# Field numbers in FileDescriptorProto / DescriptorProto that source-info paths use.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_NESTED_MESSAGE, _NESTED_ENUM, _FIELD, _METHOD = 3, 4, 2, 2


def _clean(comment: str) -> str:
    lines = [line.strip() for line in comment.strip().splitlines()]
    return " ".join(line for line in lines if line)


@dataclass
class Descriptors:
    messages: dict[str, d.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, d.EnumDescriptorProto] = field(default_factory=dict)
    services: dict[str, d.ServiceDescriptorProto] = field(default_factory=dict)
    # "pkg.Message", "pkg.Message.field", "pkg.Service", "pkg.Service.Method" → comment
    comments: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Descriptors:
        files = d.FileDescriptorSet.FromString(path.read_bytes())
        index = cls()
        for file in files.file:
            index._add_file(file)
        return index

    def comment(self, name: str) -> str:
        return self.comments.get(name, "")

    def _add_file(self, file: d.FileDescriptorProto) -> None:
        by_path = {
            tuple(loc.path): _clean(loc.leading_comments)
            for loc in file.source_code_info.location
            if loc.leading_comments.strip()
        }
        prefix = file.package
        for i, message in enumerate(file.message_type):
            self._add_message(f"{prefix}.{message.name}", message, (_MESSAGE, i), by_path)
        for i, enum in enumerate(file.enum_type):
            self._add_enum(f"{prefix}.{enum.name}", enum, (_ENUM, i), by_path)
        for i, service in enumerate(file.service):
            name = f"{prefix}.{service.name}"
            self.services[name] = service
            self._note(name, by_path.get((_SERVICE, i)))
            for j, method in enumerate(service.method):
                self._note(f"{name}.{method.name}", by_path.get((_SERVICE, i, _METHOD, j)))

    def _add_message(
        self,
        name: str,
        message: d.DescriptorProto,
        path: tuple[int, ...],
        by_path: dict[tuple[int, ...], str],
    ) -> None:
        self.messages[name] = message
        self._note(name, by_path.get(path))
        for i, f in enumerate(message.field):
            self._note(f"{name}.{f.name}", by_path.get((*path, _FIELD, i)))
        for i, nested in enumerate(message.nested_type):
            nested_path = (*path, _NESTED_MESSAGE, i)
            self._add_message(f"{name}.{nested.name}", nested, nested_path, by_path)
        for i, enum in enumerate(message.enum_type):
            self._add_enum(f"{name}.{enum.name}", enum, (*path, _NESTED_ENUM, i), by_path)

    def _add_enum(
        self,
        name: str,
        enum: d.EnumDescriptorProto,
        path: tuple[int, ...],
        by_path: dict[tuple[int, ...], str],
    ) -> None:
        self.enums[name] = enum
        self._note(name, by_path.get(path))

    def _note(self, name: str, comment: str | None) -> None:
        if comment:
            self.comments[name] = comment

    def methods(self, service: str) -> Iterator[d.MethodDescriptorProto]:
        yield from self.services[service].method


def type_name(field_: d.FieldDescriptorProto) -> str:
    """A field's message or enum type without the leading dot."""
    return field_.type_name.lstrip(".")


def output_only(field_: d.FieldDescriptorProto) -> bool:
    # The google.api stubs type their extensions loosely, hence the ignores.
    behaviors: list[int] = field_.options.Extensions[field_behavior_pb2.field_behavior]  # type: ignore[index]
    return field_behavior_pb2.OUTPUT_ONLY in behaviors


def http_rule(method: d.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]
        return None
    rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]  # type: ignore[index]
    return rule
