"""OpenAPI 3.1 for the REST API, generated from the descriptor set Envoy transcodes with.

Every public gRPC service of `clawgate.common.services` contributes the methods that carry a
`google.api.http` binding: path and query parameters, the request body and the response
follow the binding and the transcoder's JSON printing (schemas.py); descriptions are the
protos' comments. A new service or method appears here after `make proto`, with no edit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.api import http_pb2
from google.protobuf import descriptor_pb2 as d

import clawgate
from clawgate.common.services import SERVICES, grpc_service_names
from clawgate.openapi.descriptors import Descriptors, http_rule, type_name
from clawgate.openapi.schemas import WELL_KNOWN, Schema, SchemaBuilder, ref

OPENAPI_VERSION = "3.1.0"
HTTP_BODY = "google.api.HttpBody"
ERROR = "Error"
BEARER = "bearerAuth"
_VERBS = ("get", "put", "post", "delete", "patch")
_PARAM = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


@dataclass(frozen=True)
class RawJson:
    """A method whose request or reply is `google.api.HttpBody` (raw bytes to the
    transcoder), described by the typed messages that model the same JSON."""

    request: str
    request_extra: dict[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    response: str = ""
    stream_response: str = ""  # `text/event-stream` frames, each `data: <this message>`
    # Fields the JSON carries as null where the typed message has an empty value.
    nullable: tuple[str, ...] = ()


RAW_JSON: dict[str, RawJson] = {
    "clawgate.chat.v1.ChatService.CreateChatCompletionHttp": RawJson(
        request="clawgate.chat.v1.ChatCompletionParams",
        request_extra={
            "stream": {
                "type": "boolean",
                "description": "Answer with Server-Sent Events: `data: <chunk>` frames, "
                "then `data: [DONE]`.",
            }
        },
        required=("model", "messages"),
        response="clawgate.chat.v1.ChatCompletion",
        stream_response="clawgate.chat.v1.ChatCompletionChunk",
        nullable=("clawgate.chat.v1.ChunkChoice.finish_reason",),
    ),
}

ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "OpenAI's error shape; `code` tells the failures apart (see the README).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "description": "What went wrong and what to do."},
                "type": {"type": "string", "examples": ["invalid_request_error"]},
                "param": {"type": ["string", "null"], "description": "The request field at fault."},
                "code": {"type": ["string", "null"], "examples": ["model_not_found"]},
            },
        }
    },
}

_ERRORS = {
    "400": "Invalid request (`param` names the field).",
    "401": "Token missing (`missing_token`) or wrong (`invalid_api_key`).",
    "404": "Not found.",
}


def _summary(comment: str, fallback: str) -> str:
    first = comment.split(". ")[0].rstrip(".")
    return first if first and len(first) <= 100 else fallback


@dataclass
class Binding:
    verb: str
    template: str  # as in the proto: `/api/v1/models/{model=**}`
    body: str

    @property
    def path(self) -> str:
        """The OpenAPI path: `/api/v1/models/{model}`, `/api/v1/agents/{id}` for
        `{agent.id}` (one name per path position, whichever method binds it)."""
        return _PARAM.sub(_path_segment, self.template)

    @property
    def path_fields(self) -> list[str]:
        return _PARAM.findall(self.template)

    @property
    def multi_segment(self) -> set[str]:
        """Path fields bound with `=**`, whose values may contain `/`."""
        return set(re.findall(r"\{([^}=]+)=\*\*\}", self.template))


def _path_segment(match: re.Match[str]) -> str:
    """`{model=**}` → `{model}`; `{name=sessions/*}` (AIP resource name) → `sessions/{name}`:
    the literal part stays in the path, the parameter is the last segment."""
    name = "{" + param_name(match.group(1)) + "}"
    pattern = match.group(0)[len(match.group(1)) + 1 : -1].lstrip("=")
    literal = pattern.rpartition("/")[0] if "/" in pattern else ""
    return f"{literal}/{name}" if literal else name


def param_name(field_path: str) -> str:
    return field_path.rsplit(".", 1)[-1]


def _binding(rule: http_pb2.HttpRule) -> Binding | None:
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        return None  # `custom` verbs have no OpenAPI operation
    return Binding(verb, getattr(rule, verb), rule.body)


class Generator:
    def __init__(self, descriptors: Descriptors) -> None:
        self.descriptors = descriptors
        nullable = frozenset(f for raw in RAW_JSON.values() for f in raw.nullable)
        self.schemas = SchemaBuilder(descriptors, nullable)
        self.public = {m for s in SERVICES for m in s.public_methods}

    # -- request parts -----------------------------------------------------------------
    def _field(self, message: str, dotted: str) -> tuple[str, d.FieldDescriptorProto]:
        """The owner message and descriptor of a dotted field path (`agent.id`)."""
        owner = message
        *parents, last = dotted.split(".")
        for part in parents:
            owner = type_name(self._lookup(owner, part))
        return owner, self._lookup(owner, last)

    def _lookup(self, message: str, name: str) -> d.FieldDescriptorProto:
        return next(f for f in self.descriptors.messages[message].field if f.name == name)

    def _parameter(self, owner: str, f: d.FieldDescriptorProto, name: str, where: str) -> Schema:
        schema = self.schemas.field(owner, f)
        description = schema.pop("description", "")
        schema.pop("readOnly", None)
        param: Schema = {"name": name, "in": where, "required": where == "path", "schema": schema}
        if description:
            param["description"] = description
        return param

    def _query_fields(
        self, message: str, prefix: str = "", seen: frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, str, d.FieldDescriptorProto]]:
        """(owner, dotted name, field) of every field a query string can carry."""
        for f in self.descriptors.messages[message].field:
            dotted = prefix + f.name
            nested = type_name(f) if f.type == f.TYPE_MESSAGE else ""
            if not nested or nested in WELL_KNOWN:
                if nested not in ("google.protobuf.Struct", "google.protobuf.Value"):
                    yield message, dotted, f
            elif f.label != f.LABEL_REPEATED and nested not in seen:
                yield from self._query_fields(nested, dotted + ".", seen | {message})

    def _request_body(self, method_name: str, message: str, binding: Binding) -> Schema | None:
        if not binding.body:
            return None
        raw = RAW_JSON.get(method_name)
        if binding.body == "*":
            taken = set(binding.path_fields)
            if taken:
                fields = [f for f in self.descriptors.messages[message].field
                          if f.name not in taken]  # fmt: skip
                schema: Schema = {
                    "type": "object",
                    "properties": {f.name: self.schemas.field(message, f) for f in fields},
                }
            else:
                schema = self.schemas.message(message)
        else:
            _, body_field = self._field(message, binding.body)
            if type_name(body_field) == HTTP_BODY and raw is not None:
                schema = {"allOf": [self.schemas.message(raw.request)],
                          "properties": raw.request_extra}  # fmt: skip
                if raw.required:
                    schema["required"] = list(raw.required)
            else:
                schema = self.schemas.message(type_name(body_field))
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    # -- operations --------------------------------------------------------------------
    def operation(self, service: str, method: d.MethodDescriptorProto, binding: Binding) -> Schema:
        full = f"{service}.{method.name}"
        comment = self.descriptors.comment(full)
        message = method.input_type.lstrip(".")
        parameters = [
            self._parameter(*self._field(message, name), param_name(name), "path")
            for name in binding.path_fields
        ]
        for param in parameters:
            if param["name"] in {param_name(f) for f in binding.multi_segment}:
                param["description"] = (param.get("description", "") + " May contain `/`.").strip()
        if binding.body != "*":
            taken = {*binding.path_fields, binding.body}
            parameters += [
                self._parameter(owner, f, dotted, "query")
                for owner, dotted, f in self._query_fields(message)
                if dotted not in taken and dotted.split(".")[0] != binding.body
            ]
        op: Schema = {
            "operationId": method.name,
            "summary": _summary(comment, method.name),
            "tags": [service.rsplit(".", 1)[-1]],
        }
        if comment:
            op["description"] = comment
        if parameters:
            op["parameters"] = parameters
        body = self._request_body(full, message, binding)
        if body is not None:
            op["requestBody"] = body
        op["responses"] = self._responses(full, method, binding, has_input=bool(parameters or body))
        if f"/{service}/{method.name}" in self.public:
            op["security"] = [{}, {BEARER: []}]  # the token is optional: it adds details
        return op

    def _responses(
        self, full: str, method: d.MethodDescriptorProto, binding: Binding, has_input: bool
    ) -> Schema:
        output = method.output_type.lstrip(".")
        raw = RAW_JSON.get(full)
        if output == HTTP_BODY and raw is not None:
            content = {"application/json": {"schema": self.schemas.message(raw.response)}}
            if raw.stream_response:
                chunk = self.schemas.message(raw.stream_response)
                chunk["description"] = "Each `data:` line carries one; the last is `data: [DONE]`."
                content["text/event-stream"] = {"schema": chunk}
        elif output == HTTP_BODY:
            content = {"*/*": {"schema": {}}}
        else:
            content = {"application/json": {"schema": self.schemas.message(output)}}
        responses: Schema = {"200": {"description": "Success.", "content": content}}
        codes = []
        if has_input:
            codes.append("400")
        codes.append("401")  # public methods too: a wrong token is refused
        if binding.path_fields:
            codes.append("404")
        for code in codes:
            responses[code] = {"$ref": f"#/components/responses/Error{code}"}
        responses["default"] = {"$ref": "#/components/responses/Error"}
        return responses

    # -- document ----------------------------------------------------------------------
    def document(self) -> Schema:
        paths: dict[str, dict[str, Schema]] = {}
        tags = []
        for service in grpc_service_names():
            if service not in self.descriptors.services:
                raise KeyError(f"{service} is not in the descriptor set: run `make proto`")
            tags.append({"name": service.rsplit(".", 1)[-1],
                         "description": self.descriptors.comment(service) or service})  # fmt: skip
            for method in self.descriptors.methods(service):
                rule = http_rule(method)
                binding = _binding(rule) if rule is not None else None
                if binding is None:
                    continue  # gRPC only
                paths.setdefault(binding.path, {})[binding.verb] = self.operation(
                    service, method, binding
                )
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "Clawgate REST API",
                "version": clawgate.__version__,
                "summary": "OpenAI-compatible REST API of the Clawgate AI agent gateway.",
                "description": (
                    "Generated from the protos (`python -m clawgate.openapi`): Envoy transcodes "
                    "these paths to the gRPC services of the same names. Send "
                    "`Authorization: Bearer <token>` (`clawgate token`). Errors are "
                    "OpenAI-shaped. Chat and models are also served under `/v1`."
                ),
            },
            "servers": [{"url": "http://localhost:8000", "description": "clawgate onboard"}],
            "security": [{BEARER: []}],
            "tags": tags,
            "paths": paths,
            "components": {
                "schemas": {**dict(sorted(self.schemas.components.items())), ERROR: ERROR_SCHEMA},
                "responses": self._error_responses(),
                "securitySchemes": {
                    BEARER: {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The gateway token (`clawgate token`).",
                    }
                },
            },
        }

    @staticmethod
    def _error_responses() -> Schema:
        content = {"application/json": {"schema": ref(ERROR)}}
        responses = {
            f"Error{code}": {"description": text, "content": content}
            for code, text in _ERRORS.items()
        }
        responses["Error"] = {"description": "Any other error (OpenAI shape).", "content": content}
        return responses


def generate(descriptors: Descriptors) -> Schema:
    return Generator(descriptors).document()
