"""The bench's output: a markdown table (stdout and a file), a phase breakdown, a PNG chart."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .cache_hit import CacheHit
from .floor import FloorSample

TARGET_P50_SECONDS = 0.25


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 of 10 samples is the slowest but one...)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class SizeRow:
    name: str
    store: str
    table_bytes: int = 0
    database_bytes: int = 0
    rebuilds: list[float] = field(default_factory=list)
    cold_build: float = 0.0  # the first prepare through the API (every step built)
    hits: list[CacheHit] = field(default_factory=list)
    floors: list[FloorSample] = field(default_factory=list)

    @property
    def rebuild(self) -> float:
        return statistics.median(self.rebuilds)

    @property
    def hit_p50(self) -> float:
        return percentile([h.seconds for h in self.hits], 50)

    @property
    def hit_p95(self) -> float:
        return percentile([h.seconds for h in self.hits], 95)

    @property
    def floor_p50(self) -> float | None:
        return percentile([f.seconds for f in self.floors], 50) if self.floors else None

    @property
    def meets_target(self) -> bool:
        return self.hit_p50 <= TARGET_P50_SECONDS

    def phase_p50(self) -> dict[str, float]:
        names = list(self.hits[0].phases)
        return {n: statistics.median(h.phases[n] for h in self.hits) for n in names}


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def results_table(rows: list[SizeRow]) -> str:
    lines = [
        "| state | table heap / database | store | (a) rebuild: initdb + psql | API cold build (once) "
        "| (b) cache hit p50 | (b) p95 | n | rebuild / hit p50 | (c) raw floor p50 | target p50 ≤ 0.25 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {_mb(r.table_bytes)} / {_mb(r.database_bytes)} | {r.store} "
            f"| {_s(r.rebuild)} (n={len(r.rebuilds)}) | {_s(r.cold_build)} | **{_s(r.hit_p50)}** | {_s(r.hit_p95)} "
            f"| {len(r.hits)} | **{r.rebuild / r.hit_p50:.0f}×** | {_s(r.floor_p50)} "
            f"| {'met' if r.meets_target else 'MISSED'} |")
    return "\n".join(lines)


def phase_table(rows: list[SizeRow]) -> str:
    """Median of each phase of the cache hit (medians need not add up to the p50 total)."""
    names = list(rows[0].hits[0].phases)
    header = "| cache-hit phase (median) | " + " | ".join(r.name for r in rows) + " |"
    lines = [header, "|---|" + "---|" * len(rows)]
    medians = [r.phase_p50() for r in rows]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{m.get(name, 0.0) * 1000:.0f} ms" for m in medians) + " |")
    floors = [r for r in rows if r.floors]
    if floors:
        lines += ["", "| raw floor part (median) | " + " | ".join(r.name for r in floors) + " |",
                  "|---|" + "---|" * len(floors)]
        for part in ("snapshot", "pg_start", "set_password", "connect_select1"):
            lines.append(f"| {part} | " + " | ".join(
                f"{statistics.median(getattr(f, part) for f in r.floors) * 1000:.0f} ms" for r in floors) + " |")
    return "\n".join(lines)


def dominant_phases(row: SizeRow, top: int = 3) -> str:
    phases = sorted(row.phase_p50().items(), key=lambda kv: kv[1], reverse=True)[:top]
    total = sum(row.phase_p50().values()) or 1.0
    parts = ", ".join(f"{name} {seconds * 1000:.0f} ms ({seconds / total:.0%})" for name, seconds in phases)
    return f"{row.name}: cache hit p50 {_s(row.hit_p50)} misses the {TARGET_P50_SECONDS} s target; dominated by {parts}"


def write_chart(rows: list[SizeRow], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    series = [("(a) rebuild", lambda r: r.rebuild, "#c0504d"),
              ("(b) cache hit p50", lambda r: r.hit_p50, "#4f81bd"),
              ("(b) cache hit p95", lambda r: r.hit_p95, "#9bbbe0"),
              ("(c) raw floor p50", lambda r: r.floor_p50, "#9bbb59")]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    width = 0.8 / len(series)
    for i, (label, value, color) in enumerate(series):
        xs, ys = [], []
        for j, row in enumerate(rows):
            v = value(row)
            if v:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=label, color=color)
        ax.bar_label(bars, labels=[_s(y) for y in ys], fontsize=7, padding=2)
    ax.axhline(TARGET_P50_SECONDS, color="black", linestyle="--", linewidth=1, label="target 0.25 s")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} s"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("seconds to a usable DSN (log scale)")
    ax.set_xticks(range(len(rows)), [f"{r.name}\n{_mb(r.table_bytes)} table, {r.store.split(' ')[0]}" for r in rows])
    ax.set_title("sqlrs prepare: rebuild from scripts vs cache hit through the API")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
