"""Turns per-round loadgen results into the benchmark table (markdown and JSON).

Every cell is the median over rounds of one per-round number, with its spread (min–max);
ratios are ratios of those medians: to the direct upstream, and Clawgate to each peer.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# results[scenario][target] = one loadgen result per round (with the harness's extras:
# "round", "cpu_s", "cpu_by_process", "counted" requests for CPU).
Results = dict[str, dict[str, list[dict[str, Any]]]]
Getter = Callable[[dict[str, Any], dict[str, Any] | None], float | None]

DIRECT = "direct"
CLAWGATE = "clawgate"


def _stat(path: str) -> Getter:
    """A nested value such as "latency_ms.p50" of the target's own result."""

    def get(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
        if not result.get("ok"):
            return None
        value: Any = result
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else None

    return get


def _censored(path: str) -> Getter:
    """A percentile over every request, failed ones too ("first_token_all_ms.p99"): one
    that lands on a request that never got there is infinite ("none within the timeout")."""
    own = _stat(path)
    summary_path = path.rsplit(".", 1)[0] + ".missing"

    def get(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
        value = own(result, None)
        if value is None and _stat(summary_path)(result, None):
            return math.inf  # the percentile falls among requests that never got there
        return value

    return get


def _minus_direct(path: str) -> Getter:
    """The target's value minus the direct upstream's in the same round (added cost)."""
    own = _stat(path)

    def get(result: dict[str, Any], direct: dict[str, Any] | None) -> float | None:
        mine, base = own(result, None), own(direct, None) if direct else None
        return None if mine is None or base is None else mine - base

    return get


def _cpu_per_1k(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
    counted = result.get("counted") or 0
    if "cpu_s" not in result or not counted:
        return None
    return float(result["cpu_s"]) / counted * 1000


def _errors(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
    return float(result["requests"]) - float(result["ok"])


def _bypass_pct(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
    seen = result.get("x_cache") or {}
    if not seen or not result["requests"]:
        return None  # the target sends no x-cache header
    return 100.0 * float(seen.get("BYPASS", 0)) / float(result["requests"])


def _hit_pct(result: dict[str, Any], _: dict[str, Any] | None) -> float | None:
    seen = result.get("x_cache") or {}
    if not seen or not result["requests"]:
        return None
    return 100.0 * float(seen.get("HIT", 0)) / float(result["requests"])


def _seconds(getter: Getter) -> Getter:
    def get(result: dict[str, Any], direct: dict[str, Any] | None) -> float | None:
        value = getter(result, direct)
        return None if value is None else value / 1000

    return get


@dataclass(frozen=True)
class Row:
    metric: str
    scenario: str
    get: Getter
    better: str = "lower"  # or "higher"; "" for counts that only inform
    digits: int = 2
    ratio: bool = True  # shown in the ratio table
    added: bool = False  # a difference to the direct upstream (no cell for direct itself)


def _added(metric: str, scenario: str, path: str) -> Row:
    return Row(metric, scenario, _minus_direct(path), ratio=False, added=True)


ROWS: tuple[Row, ...] = (
    Row("c=1 latency p50 ms", "c1", _stat("latency_ms.p50")),
    Row("c=1 latency p99 ms", "c1", _stat("latency_ms.p99")),
    _added("c=1 overhead p50 ms (target − direct)", "c1", "latency_ms.p50"),
    _added("c=1 overhead p99 ms (target − direct)", "c1", "latency_ms.p99"),
    Row("c=16 req/s", "c16", _stat("rps"), better="higher", digits=0),
    Row("c=64 req/s", "c64", _stat("rps"), better="higher", digits=0),
    Row("c=64 latency p99 ms", "c64", _stat("latency_ms.p99")),
    Row("c=64 errors", "c64", _errors, better="", digits=0, ratio=False),
    Row("c=64 x-cache BYPASS %", "c64", _bypass_pct, digits=1, ratio=False),
    Row("CPU s per 1,000 requests (c=64)", "c64", _cpu_per_1k, digits=3),
    Row("stream first byte p50 ms", "stream", _stat("first_byte_ms.p50")),
    Row("stream first token p50 ms", "stream", _stat("first_token_ms.p50")),
    _added("stream first token added p50 ms", "stream", "first_token_ms.p50"),
    _added("stream inter-chunk gap added p50 ms", "stream", "gap_ms.p50"),
    _added("stream inter-chunk gap added p99 ms", "stream", "gap_ms.p99"),
    Row("stream longest gap ms", "stream", _stat("gap_ms.max"), ratio=False),
    Row("stream errors", "stream", _errors, better="", digits=0, ratio=False),
    Row("cache hit p50 ms", "cache", _stat("latency_ms.p50")),
    Row("cache hit p99 ms", "cache", _stat("latency_ms.p99")),
    Row("cache x-cache HIT %", "cache", _hit_pct, digits=1, ratio=False),
    Row(
        "1,000 streams first token p50 s (all streams)",
        "streams",
        _seconds(_censored("first_token_all_ms.p50")),
    ),
    Row(
        "1,000 streams first token p99 s (all streams)",
        "streams",
        _seconds(_censored("first_token_all_ms.p99")),
    ),
    Row("1,000 streams errors", "streams", _errors, better="", digits=0, ratio=False),
    _added("1,000 streams inter-chunk gap added p99 ms", "streams", "gap_ms.p99"),
    Row("1,000 streams longest gap ms", "streams", _stat("gap_ms.max"), ratio=False),
    Row("gRPC direct to chat c=1 p50 ms", "grpc-direct-c1", _stat("latency_ms.p50")),
    Row("gRPC via Envoy c=1 p50 ms", "grpc-envoy-c1", _stat("latency_ms.p50")),
    Row(
        "gRPC direct to chat c=16 req/s", "grpc-direct-c16", _stat("rps"), better="higher", digits=0
    ),
    Row("gRPC via Envoy c=16 req/s", "grpc-envoy-c16", _stat("rps"), better="higher", digits=0),
)


@dataclass
class Cell:
    values: list[float]
    text: str

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "median": _finite(self.median),
            "min": _finite(min(self.values)) if self.values else None,
            "max": _finite(max(self.values)) if self.values else None,
            "rounds": [_finite(v) for v in self.values],
            "text": self.text,
        }


def _fmt(value: float, digits: int) -> str:
    return "none within the timeout" if math.isinf(value) else f"{value:,.{digits}f}"


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: "never" is null there (the cell's text says it)."""
    return None if value is None or math.isinf(value) else value


def failure_text(rounds: list[dict[str, Any]]) -> str:
    """What went wrong when a target answered no request of a scenario successfully."""
    errors: dict[str, int] = {}
    for r in rounds:
        for reason, count in (r.get("errors") or {}).items():
            errors[reason] = errors.get(reason, 0) + count
    if not errors:
        return "–"
    reason, count = max(errors.items(), key=lambda item: item[1])
    return f"fails: {reason} ×{count}"


def cell(row: Row, rounds: list[dict[str, Any]], direct: list[dict[str, Any]]) -> Cell:
    if row.added and rounds is direct:
        return Cell([], "–")
    by_round = {r["round"]: r for r in direct}
    values = [v for r in rounds if (v := row.get(r, by_round.get(r["round"]))) is not None]
    if not values:
        if rounds and not any(r.get("ok") for r in rounds) and row.get is not _errors:
            return Cell([], failure_text(rounds))
        return Cell([], "–")
    mid = statistics.median(values)
    text = _fmt(mid, row.digits)
    if len(values) > 1:
        text += f" ({_fmt(min(values), row.digits)}–{_fmt(max(values), row.digits)})"
    return Cell(values, text)


SCALING = "scaling-c64"  # results[SCALING][str(chat processes)]: Clawgate at c=64
SCALING_ROWS = (
    Row("c=64 req/s", SCALING, _stat("rps"), better="higher", digits=0),
    Row("CPU s per 1,000 requests (c=64)", SCALING, _cpu_per_1k, digits=3),
)


def scaling_rows(results: Results) -> list[dict[str, Any]]:
    """The extra rows "… with 1 / 2 / 4 chat processes": Clawgate's cell lists the median
    (min–max) per process count; `counts` holds each count's cell as JSON."""
    per_count = results.get(SCALING, {})
    counts = sorted(per_count, key=int)
    if not counts:
        return []
    rows = []
    for row in SCALING_ROWS:
        cells = {n: cell(row, per_count[n], []) for n in counts}
        rows.append(
            {
                "metric": f"scaling: {row.metric} with {' / '.join(counts)} chat processes",
                "cells": {CLAWGATE: " / ".join(cells[n].text for n in counts)},
                "counts": {n: c.to_json() for n, c in cells.items()},
            }
        )
    return rows


def table(results: Results, targets: list[str]) -> list[dict[str, Any]]:
    rows = []
    for row in ROWS:
        per_target = results.get(row.scenario, {})
        direct = per_target.get(DIRECT, [])
        cells = {t: cell(row, per_target.get(t, []), direct) for t in targets}
        rows.append({"row": row, "cells": cells})
    return rows


def ratio_columns(targets: list[str]) -> list[tuple[str, str]]:
    """(numerator, denominator) pairs: every target to direct, Clawgate to each peer."""
    pairs = [(t, DIRECT) for t in targets if t != DIRECT and DIRECT in targets]
    pairs += [(CLAWGATE, t) for t in targets if t not in (DIRECT, CLAWGATE)]
    return pairs if CLAWGATE in targets else [p for p in pairs if p[0] != CLAWGATE]


def table_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table as it is written to JSON (and read back by `python -m bench.report`)."""
    return [
        {
            "metric": e["row"].metric,
            "scenario": e["row"].scenario,
            "better": e["row"].better,
            "ratio": e["row"].ratio,
            "cells": {k: c.to_json() for k, c in e["cells"].items()},
        }
        for e in rows
    ]


def ratios(rows: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """Ratios of medians of the JSON table; none where a median is missing or "never"."""
    out = []
    for entry in rows:
        if not entry["ratio"]:
            continue
        values: dict[str, float | None] = {}
        for num, den in ratio_columns(targets):
            a, b = entry["cells"][num]["median"], entry["cells"][den]["median"]
            values[f"{num}/{den}"] = a / b if a is not None and b else None
        if not any(v is not None for v in values.values()):
            continue
        out.append({"metric": entry["metric"], "better": entry["better"], "ratios": values})
    return out


def markdown(data: dict[str, Any]) -> str:
    meta, targets = data["meta"], data["targets"]
    keys = list(targets)
    labels = [targets[k]["label"] for k in keys]
    lines = [
        f"# Clawgate benchmark, {meta['finished']}",
        "",
        f"Shared machine ({meta['cpus']} CPUs, other work running): load average "
        f"{meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end. "
        "Absolute numbers vary with the machine and its load; compare the columns, "
        "which ran interleaved in the same rounds.",
        "",
        f"Upstream: the ollama stand-in, model `{meta['model']}`, max_tokens "
        f"{meta['max_tokens']}, token delay {meta['token_delay_ms']} ms for non-streaming "
        f"scenarios and {meta['stream_token_delay_ms']} ms for streaming ones. Load: "
        f"`bench/loadgen.py` in its own process for every target; {meta['rounds']} rounds, "
        f"target order rotated each round; cells are the median over rounds (min–max). "
        f"Whole run {meta['elapsed_s']:.0f} s.",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for entry in data["table"]:
        lines.append(
            f"| {entry['metric']} | " + " | ".join(entry["cells"][k]["text"] for k in keys) + " |"
        )
    for row in data["extra_rows"]:
        lines.append(
            f"| {row['metric']} | " + " | ".join(row["cells"].get(k, "–") for k in keys) + " |"
        )
    pairs = list(data["ratios"][0]["ratios"]) if data["ratios"] else []
    if pairs:
        names = [" ÷ ".join(targets[k]["label"] for k in p.split("/")) for p in pairs]
        lines += [
            "",
            "## Ratios (of the medians)",
            "",
            "| metric | better | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(pairs),
        ]
        for entry in data["ratios"]:
            texts = ["–" if v is None else f"{v:.2f}×" for v in entry["ratios"].values()]
            lines.append(
                f"| {entry['metric']} | {entry['better'] or '–'} | " + " | ".join(texts) + " |"
            )
    lines += [
        "",
        "## Per process (c=64: CPU seconds per 1,000 requests; peak RSS)",
        "",
        "| target | process | CPU s / 1,000 req | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for key in keys:
        for proc in targets[key].get("processes", []):
            cpu = proc.get("cpu_s_per_1k")
            cpu_text = "–" if cpu is None else f"{cpu:.3f}"
            rss = f"{proc['peak_rss_mb']:.0f}"
            lines.append(f"| {targets[key]['label']} | {proc['name']} | {cpu_text} | {rss} |")
    notes = [f"- {targets[k]['label']}: {n}" for k in keys for n in targets[k].get("notes", [])]
    notes += [f"- {n}" for n in meta.get("notes", [])]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report RESULT.json`: rebuild the table and ratios from the raw
    per-round results in the file (after a change of rows) and rewrite RESULT.md."""
    import json
    import sys

    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = list(data["targets"])
        data["table"] = table_json(table(data["results"], keys))
        data["ratios"] = ratios(data["table"], keys)
        path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        path.with_suffix(".md").write_text(markdown(data), encoding="utf-8")
        print(f"rewrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
