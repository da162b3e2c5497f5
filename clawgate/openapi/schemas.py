"""Proto messages as JSON Schema (OpenAPI 3.1), the way Envoy's transcoder prints them:
proto field names (`preserve_proto_field_names`), every primitive printed, 64-bit integers
as strings, well-known types in their proto3 JSON form."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2 as d

from clawgate.openapi.descriptors import Descriptors, output_only, type_name

Schema = dict[str, Any]
F = d.FieldDescriptorProto

_SCALARS: dict[int, Schema] = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # Transcoded replies print 64-bit integers as strings; both forms are accepted.
    F.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_SINT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_SFIXED64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_UINT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_FIXED64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

# Well-known types in their proto3 JSON mapping.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, e.g. `name,config.temperature`.",
    },
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"]},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"]},
    "google.protobuf.Int64Value": {"type": ["string", "integer", "null"]},
    "google.protobuf.UInt64Value": {"type": ["string", "integer", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"]},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class SchemaBuilder:
    """Builds `components/schemas` on demand: only messages some operation reaches."""

    def __init__(self, descriptors: Descriptors, nullable: frozenset[str] = frozenset()) -> None:
        self.descriptors = descriptors
        self.nullable = nullable  # "pkg.Message.field" that JSON may carry as null
        self.components: dict[str, Schema] = {}

    def message(self, name: str) -> Schema:
        """A reference to the message's schema (inline for well-known types)."""
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placeholder first: messages may be recursive
            self.components[name] = self._object(name)
        return ref(name)

    def _object(self, name: str) -> Schema:
        message = self.descriptors.messages[name]
        properties = {f.name: self.field(name, f) for f in message.field}
        schema: Schema = {"type": "object", "properties": properties}
        comment = self.descriptors.comment(name)
        if comment:
            schema["description"] = comment
        return schema

    def field(self, owner: str, field_: d.FieldDescriptorProto) -> Schema:
        schema = self._value(field_)
        if field_.label == F.LABEL_REPEATED and not self._is_map(field_):
            schema = {"type": "array", "items": schema}
        if f"{owner}.{field_.name}" in self.nullable and isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        comment = self.descriptors.comment(f"{owner}.{field_.name}")
        if comment:
            schema["description"] = comment  # beside a $ref too: allowed in OpenAPI 3.1
        if output_only(field_):
            schema["readOnly"] = True
        return schema

    def _is_map(self, field_: d.FieldDescriptorProto) -> bool:
        if field_.type != F.TYPE_MESSAGE or field_.label != F.LABEL_REPEATED:
            return False
        entry = self.descriptors.messages.get(type_name(field_))
        return entry is not None and entry.options.map_entry

    def _value(self, field_: d.FieldDescriptorProto) -> Schema:
        if field_.type == F.TYPE_ENUM:
            enum = self.descriptors.enums[type_name(field_)]
            return {"type": "string", "enum": [v.name for v in enum.value]}
        if field_.type in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            if self._is_map(field_):
                entry = self.descriptors.messages[type_name(field_)]
                value = next(f for f in entry.field if f.name == "value")
                return {"type": "object", "additionalProperties": self._value(value)}
            return self.message(type_name(field_))
        return dict(_SCALARS[field_.type])
