"""CPU time and peak memory of a target's processes, read from /proc (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a worker pool, node's helpers...)."""
    found = [pid]
    for tid in _read_list(Path(f"/proc/{pid}/task")):
        for child in _read(Path(f"/proc/{pid}/task/{tid}/children")).split():
            found += descendants(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it has gone)."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had."""
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_name(pid: int) -> str:
    return _read(Path(f"/proc/{pid}/comm")).strip()


def snapshot(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds of every process under each named root, keyed `name` or `name/pid`."""
    return _per_process(roots, cpu_seconds)


def peaks(roots: dict[str, int]) -> dict[str, float]:
    """Peak RSS (MB) of every process under each named root, keyed like snapshot()."""
    return _per_process(roots, peak_rss_mb)


def _per_process(roots: dict[str, int], read: Callable[[int], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, root in roots.items():
        for pid in descendants(root):
            out[name if pid == root else f"{name}/{pid}"] = read(pid)
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _read_list(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
