"""A spinner on the terminal while waiting for the first token (only on a TTY)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
CLEAR = "\r\x1b[2K"  # back to column 0, erase the line


class Spinner:
    def __init__(self, stream: TextIO, label: str = "waiting for the model", interval: float = 0.1):
        self.stream = stream
        self.label = label
        self.interval = interval
        self.enabled = stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._shown = False

    def _draw(self, frame: str) -> None:
        with self._lock:
            if not self._stop.is_set():
                self.stream.write(f"\r{frame} {self.label}…")
                self.stream.flush()
                self._shown = True

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.interval):
            i += 1
            self._draw(FRAMES[i % len(FRAMES)])

    def start(self) -> Spinner:
        if self.enabled and self._thread is None:
            self._draw(FRAMES[0])  # at once: even a fast answer shows the wait began
            self._thread = threading.Thread(target=self._run, name="spinner", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Erase the spinner (idempotent); call it before printing the first token."""
        with self._lock:
            self._stop.set()
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Spinner:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
