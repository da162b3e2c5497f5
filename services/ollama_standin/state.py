"""Everything the stand-in remembers between requests, kept on the aiohttp app."""

from __future__ import annotations

from aiohttp import web

from .models import find_model, parse_name
from .request_log import RequestLog
from .runners import Runners
from .settings import Settings


class StandinState:
    def __init__(self, settings: Settings) -> None:
        self.initial = settings.copy()  # what POST /_standin/reset goes back to
        self.settings = settings.copy()
        self.log = RequestLog(self.settings.request_log_limit)
        self.runners = Runners()
        self.apply_preloaded()

    def apply_preloaded(self) -> None:
        for name in self.settings.preloaded:
            spec = find_model(self.settings.models, name)
            parsed = parse_name(name)
            if spec is None or parsed is None:
                continue  # preloading a model that is not pulled does nothing
            if self.runners.current(parsed.key) is None:
                self.runners.load(
                    parsed.key, spec.name, self.settings.default_num_ctx, 0, pinned=True
                )

    def replace_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.log.resize(settings.request_log_limit)
        # Models that are no longer pulled cannot stay loaded.
        pulled = {m.parsed.key for m in settings.models}
        for key, _ in self.runners.snapshot():
            if key not in pulled:
                self.runners.unload(key)
        self.apply_preloaded()
        self.runners.wake()  # num_parallel may have grown

    def reset(self) -> None:
        self.settings = self.initial.copy()
        self.log.resize(self.settings.request_log_limit)
        self.log.clear()
        self.runners.clear()
        self.apply_preloaded()
        self.runners.wake()


STATE: web.AppKey[StandinState] = web.AppKey("standin_state", StandinState)
