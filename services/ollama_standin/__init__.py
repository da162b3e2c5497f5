"""An ollama stand-in: ollama's HTTP API on a real port, with deterministic generation.

The only fake ollama in the project; it follows /work/shared/notes/ollama-api.md, and
clients must work against real ollama, so it copies ollama's quirks rather than smoothing
them. Behaviour switches live in Settings and under /_standin/ at runtime.
"""

from .app import create_app
from .models import ModelSpec
from .server import StandinServer, run_standin
from .settings import FAIL_MODES, FailMode, Settings, SettingsError

__all__ = [
    "FAIL_MODES",
    "FailMode",
    "ModelSpec",
    "Settings",
    "SettingsError",
    "StandinServer",
    "create_app",
    "run_standin",
]
