"""A one-file HTML report (plus PNGs beside it) of a run: metrics per stage, tables,
overlay figures (ground truth vs prediction), curves and the worst frames.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aquapose.segmentation.io.files import atomic_write_bytes


@dataclass(frozen=True)
class Metric:
    """One number of one stage, with the target it should reach (if any)."""

    stage: str
    name: str
    value: float | None
    target: float | None = None
    higher_is_better: bool = True
    fmt: str = "{:.3f}"

    def __post_init__(self) -> None:
        # An undefined ratio (e.g. precision with no predictions) is "n/a", not NaN,
        # which strict JSON readers reject.
        if self.value is not None and not math.isfinite(self.value):
            object.__setattr__(self, "value", None)

    @property
    def passed(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


@dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class Figure:
    """An image file (path relative to the report's folder) and its caption."""

    title: str
    path: str
    caption: str = ""


@dataclass
class Report:
    title: str
    summary: str = ""
    metrics: list[Metric] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    overlays: list[Figure] = field(default_factory=list)
    curves: list[Figure] = field(default_factory=list)
    failures: list[Figure] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table_html(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures_html(figures: Sequence[Figure], wide: bool = False) -> str:
    if not figures:
        return "<p class='empty'>none</p>"
    cards = []
    for fig in figures:
        cards.append(
            f"<figure><img src='{html.escape(fig.path)}' alt='{html.escape(fig.title)}'>"
            f"<figcaption><b>{html.escape(fig.title)}</b> {html.escape(fig.caption)}</figcaption>"
            "</figure>"
        )
    return f"<div class='grid{' wide' if wide else ''}'>" + "".join(cards) + "</div>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;
color:#1d2733;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #d9e2ec;padding-bottom:.3rem;margin-top:2.2rem}
.summary{color:#52606d} table{border-collapse:collapse;margin:.8rem 0}
th,td{border:1px solid #d9e2ec;padding:.35rem .7rem;text-align:right}
th{background:#f0f4f8} td:first-child,th:first-child{text-align:left}
.pass{color:#18794e;font-weight:600} .fail{color:#c62828;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:1rem}
figure{margin:0;border:1px solid #d9e2ec;border-radius:6px;overflow:hidden;background:#fafbfc}
figure img{width:100%;display:block} figcaption{padding:.4rem .6rem;font-size:.9rem}
.legend span{display:inline-block;width:.9rem;height:.9rem;margin:0 .3rem 0 1rem;vertical-align:middle}
.empty{color:#9aa5b1} td.text{text-align:left} .wide{grid-template-columns:1fr}
"""


def render_html(report: Report) -> str:
    """The report as one HTML page (images referenced by relative path)."""
    metric_rows = []
    for m in report.metrics:
        value = "n/a" if m.value is None else m.fmt.format(m.value)
        target = (
            ""
            if m.target is None
            else ("≥ " if m.higher_is_better else "≤ ") + m.fmt.format(m.target)
        )
        status = {
            None: "",
            True: "<span class='pass'>pass</span>",
            False: "<span class='fail'>below</span>",
        }[m.passed]
        metric_rows.append(
            f"<tr><td>{html.escape(m.stage)}</td><td class='text'>{html.escape(m.name)}</td>"
            f"<td>{value}</td><td>{target}</td><td>{status}</td></tr>"
        )
    metrics_html = (
        "<table><thead><tr><th>stage</th><th>metric</th><th>value</th><th>target</th>"
        "<th></th></tr></thead><tbody>" + "".join(metric_rows) + "</tbody></table>"
    )
    tables_html = "".join(
        f"<h3>{html.escape(t.title)}</h3>" + _table_html(t.headers, t.rows) for t in report.tables
    )
    timing_rows = [(stage, f"{seconds:.1f}") for stage, seconds in report.timings_s.items()]
    legend = (
        "<p class='legend'>Outlines:<span style='background:rgb(60,220,60)'></span>ground truth"
        "<span style='background:rgb(230,40,230)'></span>prediction</p>"
    )
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(report.title)}</h1>
<p class="summary">{html.escape(report.summary)} &middot; written {created}</p>
<h2 id="metrics">Metrics per stage</h2>{metrics_html}
{tables_html}
<h2 id="overlays">Ground truth vs prediction</h2>{legend}{_figures_html(report.overlays)}
<h2 id="training">Training curves</h2>{_figures_html(report.curves, wide=True)}
<h2 id="failures">Failure cases (worst frames)</h2>{legend}{_figures_html(report.failures)}
<h2 id="timings">Time per stage</h2>{_table_html(["stage", "seconds"], timing_rows)}
</body></html>
"""


def write_report(report: Report, path: str | Path) -> Path:
    """Write the HTML report atomically; figures must already be in its folder."""
    return atomic_write_bytes(path, render_html(report).encode("utf-8"))
