"""The form fields of a `multipart/form-data` upload (Envoy hands the raw body over)."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from clawgate.common.errors import invalid


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """Fields by name; a clear 400 when the body is not a multipart form."""
    is_form = content_type.lower().startswith("multipart/form-data")
    if not is_form or "boundary=" not in content_type:
        raise invalid(
            "Upload the file as multipart/form-data with the fields 'purpose' and 'file' "
            f"(got Content-Type {content_type or 'none'!r}).",
            "file",
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, Part] = {}
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        fields[name] = Part(name, part.get_filename(), data)
    if not fields:
        raise invalid("The multipart body has no form fields; send 'purpose' and 'file'.", "file")
    return fields
