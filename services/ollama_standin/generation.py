"""Deterministic, meaningful fake generation.

The text is a pure function of the sampling inputs whenever real sampling would be
reproducible (temperature 0, or a seed), so gateway tests can assert on it; otherwise a
random nonce joins the hash, like real sampling. The answer starts with words of the last
user message so tests can tell answers apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any

from .wire import go_json

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_PUNCT = "\u3000-\u303f\uff00-\uffef"
_HAS_CJK = re.compile(f"[{_CJK}]")
# A token is one CJK character/full-width mark, or a run of other text with its leading
# whitespace (the way BPE vocabularies attach the space to the following word).
_TOKEN = re.compile(f"[{_CJK}{_CJK_PUNCT}]|\\s*[^\\s{_CJK}{_CJK_PUNCT}]+|\\s+")

# fmt: off
_WORDS = [
    "signal", "river", "lantern", "quiet", "bright", "morning", "harbor", "pattern", "steady",
    "garden", "copper", "window", "careful", "simple", "measure", "thread", "orbit", "candle",
    "meadow", "gentle", "vector", "compass", "silver", "echo", "granite", "willow", "summit",
    "ember", "cobalt", "prairie", "beacon", "falcon", "marble", "cedar", "delta", "horizon",
    "meridian", "nimbus", "opal", "pebble", "quartz", "ripple", "saffron", "tundra", "umber",
]
_HANZI = "天地人和光明山水风云花月星海心语言思想学问知识时间空气温度理解回答清楚简单"
_THINK_WORDS = [
    "so", "first", "consider", "what", "matters", "then", "check", "the", "details", "and",
    "answer", "clearly",
]
# fmt: on
_THINK_HANZI = "首先想一下用户的问题然后整理思路给出清楚回答"
_ID_ALPHABET = string.ascii_lowercase + string.digits
# Reasoning length (extra tokens) per think level.
_THINK_SPAN = {"low": (3, 6), "medium": (5, 10), "high": (8, 16), "max": (12, 24)}


@dataclass(frozen=True)
class ToolCall:
    id: str
    index: int
    name: str
    arguments: dict[str, Any]


@dataclass
class Step:
    """One native chunk: a token of thinking and/or content, or whole tool calls."""

    thinking: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Generation:
    steps: list[Step]
    done_reason: str  # "stop" | "length"
    prompt_tokens: int
    eval_count: int

    @property
    def content(self) -> str:
        return "".join(s.content for s in self.steps)

    @property
    def thinking(self) -> str:
        return "".join(s.thinking for s in self.steps)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [tc for s in self.steps for tc in s.tool_calls]


@dataclass(frozen=True)
class GenerationInput:
    model: str
    messages: list[dict[str, Any]]  # native form: role, content (str), images, tool_calls...
    temperature: float
    top_p: float
    seed: int | None = None
    stop: tuple[str, ...] = ()
    num_predict: int | None = None
    think: bool | str = False  # False, True or a level
    tools: tuple[dict[str, Any], ...] = ()
    format: Any = None  # None, "json" or a JSON schema


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def has_cjk(text: str) -> bool:
    return bool(_HAS_CJK.search(text))


def estimate_prompt_tokens(
    messages: list[dict[str, Any]], tools: tuple[dict[str, Any], ...]
) -> int:
    """~1 token per 4 UTF-8 bytes, 4 per message for the template, 256 per image."""
    total = 3
    for msg in messages:
        text = str(msg.get("content") or "") + str(msg.get("thinking") or "")
        total += 4 + math.ceil(len(text.encode()) / 4) + 256 * len(msg.get("images") or [])
        if msg.get("tool_calls"):
            total += math.ceil(len(go_json(msg["tool_calls"])) / 4)
    if tools:
        total += math.ceil(len(go_json(list(tools))) / 4)
    return total


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user" and isinstance(msg.get("content"), str) and msg["content"]:
            return str(msg["content"])
    return ""


def _rng(inp: GenerationInput) -> random.Random:
    # Greedy decoding (temperature 0) ignores the seed; otherwise no seed means fresh noise.
    reproducible = inp.temperature <= 0 or inp.seed is not None
    material = {
        "model": inp.model,
        "messages": inp.messages,
        "temperature": inp.temperature,
        "top_p": inp.top_p,
        "seed": inp.seed if inp.temperature > 0 else None,
        "stop": list(inp.stop),
        "think": inp.think,
        "tools": [_tool_name(t) for t in inp.tools],
        "format": inp.format,
        "nonce": None if reproducible else os.urandom(8).hex(),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _vocabulary(inp: GenerationInput) -> list[str]:
    # Colder sampling draws from a narrower vocabulary, so temperature also shows in the text.
    span = min(1.0, 0.25 + max(inp.temperature, 0.0) / 2)
    return _WORDS[: max(6, int(len(_WORDS) * span))]


def _subject_words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text)[:6] or ["your", "message"]


def _thinking_tokens(inp: GenerationInput, rng: random.Random, user: str, cjk: bool) -> list[str]:
    level = inp.think if isinstance(inp.think, str) else "medium"
    low, high = _THINK_SPAN.get(level, _THINK_SPAN["medium"])
    extra = rng.randint(low, high)
    if cjk:
        subject = re.sub(r"\s+", "", user)[:6]
        body = "".join(rng.choice(_THINK_HANZI) for _ in range(extra))
        return split_tokens(f"好的，用户问「{subject}」。{body}。")
    words = ["Okay,", "the", "user", "mentions", *_subject_words(user)[:3]]
    words[-1] += "."
    words += [rng.choice(_THINK_WORDS) for _ in range(extra)]
    words[-1] += "."
    return split_tokens(" ".join(words))


def _answer_tokens(inp: GenerationInput, rng: random.Random, user: str, cjk: bool) -> list[str]:
    natural = rng.randint(8, 30)
    if cjk:
        subject = re.sub(r"\s+", "", user)[:8]
        head = split_tokens(f"关于「{subject}」：")
        count = max(4, natural - len(head) - 1)
        return [*head, *(rng.choice(_HANZI) for _ in range(count)), "。"]
    head = split_tokens("About " + " ".join(_subject_words(user)) + ":")
    results = _tool_results(inp)
    if results:  # after tool calls the answer quotes what the tools returned
        return [*head, *split_tokens(" Using " + "; ".join(results) + ".")]
    vocab = _vocabulary(inp)
    fill = [rng.choice(vocab) for _ in range(max(4, natural - len(head)))]
    fill[0] = fill[0].capitalize()
    return [*head, *split_tokens(" " + " ".join(fill) + ".")]


def _json_answer_tokens(inp: GenerationInput, rng: random.Random, user: str) -> list[str]:
    """format "json" or a schema: the model emits a JSON document (Ollama grammar-constrains)."""
    schema = inp.format if isinstance(inp.format, dict) else None
    if schema and isinstance(schema.get("properties"), dict):
        value = _value_for_schema(schema, user, rng)
    else:
        value = {"answer": " ".join(_subject_words(user)), "words": rng.randint(1, 99)}
    return split_tokens(json.dumps(value, ensure_ascii=False))


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    return str(fn.get("name")) if isinstance(fn, dict) and fn.get("name") else ""


def _this_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages after the last user message (tool calls and results of this turn)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return messages[i + 1 :]
    return messages


def _called_tools(turn: list[dict[str, Any]]) -> set[str]:
    return {
        str((call.get("function") or {}).get("name", "")).lower()
        for msg in turn
        for call in msg.get("tool_calls") or ()
        if isinstance(call, dict)
    }


def _pick_tool(inp: GenerationInput, user: str) -> dict[str, Any] | None:
    """The tool the last user message asks for next: the earliest tool name it mentions
    that was not called yet in this turn. Like a model working through a task, it calls
    the tools one by one, then answers using their results."""
    if not inp.tools or not inp.messages or inp.messages[-1].get("role") not in ("user", "tool"):
        return None
    called = _called_tools(_this_turn(inp.messages))
    best: tuple[int, dict[str, Any]] | None = None
    for tool in inp.tools:
        name = _tool_name(tool)
        if not name or name.lower() in called:
            continue
        hit = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", user, re.I)
        if hit and (best is None or hit.start() < best[0]):
            best = (hit.start(), tool)
    return best[1] if best else None


def _tool_results(inp: GenerationInput) -> list[str]:
    """`name: result` of each tool result in this turn (what an answer builds on)."""
    return [
        f"{msg.get('tool_name') or 'tool'}: {msg.get('content') or ''}"
        for msg in _this_turn(inp.messages)
        if msg.get("role") == "tool"
    ]


def _string_argument(user: str, tool_name: str) -> str:
    words: list[str] = [w for w in re.findall(r"[\w-]+", user) if w.lower() != tool_name.lower()]
    capitalised = [w for w in words[1:] if w[:1].isupper()]
    return (capitalised or words or ["example"])[-1]


def _value_for_schema(schema: dict[str, Any], user: str, rng: random.Random, name: str = "") -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "object" or isinstance(schema.get("properties"), dict):
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        keys = [k for k in props if not isinstance(required, list) or k in required]
        return {
            k: _value_for_schema(v if isinstance(v, dict) else {}, user, rng, name)
            for k, v in ((k, props[k]) for k in keys)
        }
    if kind == "integer":
        return rng.randint(1, 10)
    if kind == "number":
        return round(rng.uniform(1, 100), 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return _string_argument(user, name)


def _tool_call(tool: dict[str, Any], user: str, rng: random.Random) -> ToolCall:
    fn = tool["function"]
    params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
    args = _value_for_schema({"type": "object", **params}, user, rng, str(fn["name"]))
    call_id = "call_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(8))
    return ToolCall(id=call_id, index=0, name=str(fn["name"]), arguments=args)


def _truncate(
    tokens: list[str], budget: int | None, stops: tuple[str, ...]
) -> tuple[list[str], int, str]:
    """Apply num_predict and stop sequences: (emitted pieces, tokens consumed, done_reason)."""
    text, used = "", 0
    for tok in tokens:
        if budget is not None and used >= budget:
            return _pieces(tokens, text), used, "length"
        used += 1
        text += tok
        hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
        if hits:
            # Nothing from the stop sequence onwards is ever sent, even across tokens.
            return _pieces(tokens, text[: min(hits)]), used, "stop"
    return _pieces(tokens, text), used, "stop"


def _pieces(tokens: list[str], final: str) -> list[str]:
    out: list[str] = []
    remaining = len(final)
    for tok in tokens:
        if remaining <= 0:
            break
        out.append(tok[:remaining])
        remaining -= len(tok)
    return out


def generate(inp: GenerationInput) -> Generation:
    rng = _rng(inp)
    user = last_user_text(inp.messages)
    cjk = has_cjk(user)
    budget = inp.num_predict if inp.num_predict is not None and inp.num_predict > 0 else None
    prompt_tokens = estimate_prompt_tokens(inp.messages, inp.tools)

    # num_predict counts thinking tokens too: a small max_tokens on a thinking model can
    # end with empty content and finish_reason "length" (as with real qwen3).
    thinking = _thinking_tokens(inp, rng, user, cjk) if inp.think else []
    if budget is not None and len(thinking) >= budget:
        steps = [Step(thinking=t) for t in thinking[:budget]]
        return Generation(steps, "length", prompt_tokens, budget)
    used = len(thinking)
    steps = [Step(thinking=t) for t in thinking]

    tool = _pick_tool(inp, user)
    if tool is not None:
        call = _tool_call(tool, user, rng)
        cost = 4 + math.ceil(len(go_json(call.arguments)) / 4)
        if budget is not None and used + cost > budget:
            return Generation(steps, "length", prompt_tokens, budget)
        steps.append(Step(tool_calls=[call]))
        return Generation(steps, "stop", prompt_tokens, used + cost)

    answer = (
        _json_answer_tokens(inp, rng, user) if inp.format else _answer_tokens(inp, rng, user, cjk)
    )
    remaining = None if budget is None else budget - used
    pieces, consumed, reason = _truncate(answer, remaining, inp.stop)
    if pieces and steps:
        # The token where thinking ends and the answer starts arrives as one native chunk
        # carrying both fields; /v1 must split it (ToStreamChunks).
        steps[-1].content = pieces[0]
        pieces = pieces[1:]
    steps += [Step(content=p) for p in pieces]
    return Generation(steps, reason, prompt_tokens, used + consumed)


def inline_think_tags(gen: Generation) -> Generation:
    """Old servers: the reasoning stays in the content between <think> tags."""
    if not gen.thinking:
        return gen
    steps: list[Step] = [Step(content="<think>\n")]
    closed = False
    for step in gen.steps:
        if step.thinking:
            steps.append(Step(content=step.thinking))
        if step.content or step.tool_calls:
            if not closed:
                steps.append(Step(content="\n</think>\n\n"))
                closed = True
            steps.append(Step(content=step.content, tool_calls=step.tool_calls))
    if not closed and gen.done_reason != "length":  # a length cut leaves the tag open
        steps.append(Step(content="\n</think>\n\n"))
    return Generation(steps, gen.done_reason, gen.prompt_tokens, gen.eval_count + 2)
