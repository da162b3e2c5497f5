"""Which error texts of the model servers mean what: a model that is not there, a wrong
path (the worker does not serve this API), memory, load and context failures.

Read from ollama's source (notes/ollama-api.md §1.4) and llama.cpp's server; the chat
errors (services/chat/errors.py) and the adapters both ask here.
"""

from __future__ import annotations

import re

from clawgate.common.config import API_OLLAMA
from services.chat.providers.base import UpstreamFailure, UpstreamHttpError, UpstreamWrongApi
from services.chat.providers.probe import wrong_api_message

# ollama, every version: `model 'x' not found` / `model "x" not found, try pulling it first`.
OLLAMA_MODEL_MISSING = re.compile(r"""^model ['"].+['"] not found""")
# Other OpenAI-compatible servers (vLLM, OpenAI): "The model `x` does not exist".
MODEL_MISSING = re.compile(r"not found|does not exist|no such model", re.IGNORECASE)
# A router's own 404 (gin: `404 page not found`; llama.cpp: `File Not Found`): no such path.
NO_SUCH_PATH = re.compile(r"page not found|file not found", re.IGNORECASE)
MEMORY = re.compile(
    r"memory|out of vram|cuda error|\boom\b|insufficient|unable to allocate", re.IGNORECASE
)
LOAD = re.compile(r"llama-server|failed to load|model runner|runner process", re.IGNORECASE)
# ollama: `input length exceeds the context length`; llama.cpp: `request (N tokens) exceeds
# the available context size (M tokens)`.
CONTEXT = re.compile(r"context|too long|exceeds|maximum.*tokens", re.IGNORECASE)


def model_missing(failure: UpstreamFailure, api: str) -> bool:
    """A 404 that says the model is not on the worker (not that the path is wrong)."""
    if not isinstance(failure, UpstreamHttpError) or failure.status != 404:
        return False
    if api == API_OLLAMA:  # only ollama speaks the native API
        return bool(OLLAMA_MODEL_MISSING.match(failure.message))
    return not NO_SUCH_PATH.search(failure.message) and bool(MODEL_MISSING.search(failure.message))


def pull_fixes(failure: UpstreamFailure) -> bool:
    """Whether `ollama pull` is the fix: the text is ollama's own."""
    return bool(OLLAMA_MODEL_MISSING.match(failure.message))


def cannot_run(text: str) -> bool:
    return bool(MEMORY.search(text) or LOAD.search(text))


def named(failure: UpstreamHttpError, api: str) -> UpstreamFailure:
    """A chat call's 404/405 that is not about the model: the worker serves another API."""
    if failure.status in (404, 405) and not model_missing(failure, api):
        return UpstreamWrongApi(failure.worker, wrong_api_message(failure.worker, api))
    return failure
