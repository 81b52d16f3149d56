"""The comparison report of two versions: a document for machines, Markdown for a pull request, HTML for people.

The Markdown is written to fit a pull-request comment (GitHub allows 65,536
characters): the headline metric first, every metric with its paired-bootstrap
interval, the slices that moved most, the behavioural tests, and what changed in data
and code. The HTML page holds the same and its plots inline; with Markdown the plots
are written next to the file and linked.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mlops_ray.compare.diff import LINEAGE_ROWS
from mlops_ray.evaluate.bootstrap import Interval
from mlops_ray.modeltests.checks import CaseResult
from mlops_ray.tags import CONFIG_DIGEST_TAG, FINGERPRINT_TAG, GIT_COMMIT_TAG, SCHEMA_DIGEST_TAG

MARKDOWN_SLICES = 10  # the slices that moved most; the HTML page lists them all
COMMENT_LIMIT = 65_536  # characters GitHub accepts in one pull-request comment


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float
    against: float | None
    delta: Interval | None  # candidate minus the other version, paired bootstrap
    higher_is_better: bool

    @property
    def verdict(self) -> str:
        if self.delta is None:
            return ""
        if self.delta.low > 0 or self.delta.high < 0:
            gained = (self.delta.low > 0) == self.higher_is_better
            return "better" if gained else "worse"
        return "no clear difference"


@dataclass(frozen=True)
class SliceRow:
    column: str
    value: str
    rows: int
    candidate: float
    against: float | None
    delta: Interval | None


@dataclass(frozen=True)
class VersionFacts:
    label: str  # how the report names it: "version 3", "@champion (version 2)"
    version: str
    lineage: dict[str, str]
    tests: list[CaseResult]


@dataclass
class ComparisonReport:
    model: str
    candidate: VersionFacts
    against: VersionFacts | None
    test_rows: int
    data_fingerprint: str
    metric: str  # the gate's metric, the headline
    confidence: float
    metrics: list[MetricRow]
    slices: list[SliceRow]
    schema_changes: list[str]
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def title(self) -> str:
        against = f" vs {self.against.label}" if self.against else " (nothing to compare against)"
        return f"{self.model}: {self.candidate.label}{against}"

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document.pop("figures")
        return document


def render_markdown(report: ComparisonReport, plot_links: dict[str, str]) -> str:
    a, b = _short(report.candidate), _short(report.against) if report.against else None
    lines = [f"### {report.title}", "", headline(report), ""]
    lines += [
        f"Evaluated on the same {report.test_rows} test rows (data `{report.data_fingerprint[:12]}`); "
        f"intervals are {report.confidence:.0%} paired-bootstrap intervals of the difference.",
        "",
    ]
    lines += _table(
        ["metric", a, *([b, "Δ", f"{report.confidence:.0%} interval", ""] if b else [])],
        [_metric_cells(m, bool(b)) for m in report.metrics],
    )
    moved = sorted(report.slices, key=lambda s: -abs(s.delta.estimate) if s.delta else 0)[:MARKDOWN_SLICES]
    if moved:
        more = len(report.slices) - len(moved)
        rest = f", {more} more in the HTML report" if more else ""
        lines += ["", f"#### Slices ({report.metric}; the {len(moved)} that moved most{rest})"]
        lines += _table(
            ["slice", "rows", a, *([b, "Δ", "interval"] if b else [])], [_slice_cells(s, bool(b)) for s in moved]
        )
    tests = _tests_rows(report)
    declared = _table(*tests) if tests[1] else ["None declared (`model_tests` in the config)."]
    lines += ["", "#### Behavioural tests", *declared]
    lines += ["", "#### Data and code", *_table(*_lineage_rows(report))]
    lines += ["", "Schema changes: " + ("; ".join(report.schema_changes) if report.schema_changes else "none")]
    if plot_links:
        lines += ["", "#### Plots", *[f"![{name}]({link})" for name, link in plot_links.items()]]
    return "\n".join(lines) + "\n"


def render_html(report: ComparisonReport) -> str:
    a, b = _short(report.candidate), _short(report.against) if report.against else None
    metric_head = ["metric", a, *([b, "Δ", "interval", ""] if b else [])]
    slice_head = ["slice", "rows", a, *([b, "Δ", "interval"] if b else [])]
    tests = _tests_rows(report)
    lineage = _lineage_rows(report)
    plots = "".join(
        f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' src='data:image/png;base64,{png_base64(figure)}'>"
        for name, figure in report.figures.items()
    )
    changes = "".join(f"<li>{html.escape(c)}</li>" for c in report.schema_changes) or "<li>none</li>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}.worse,.fail{{background:#fde2e2}}
.better,.pass{{background:#e2f5e2}}</style>
</head><body><h1>{html.escape(report.title)}</h1>
<p>{html.escape(headline(report).replace("**", ""))}</p>
<p>Evaluated on the same {report.test_rows} test rows (data {html.escape(report.data_fingerprint[:12])});
intervals are {report.confidence:.0%} paired-bootstrap intervals of the difference.</p>
<h2>Metrics</h2>{_html_table(metric_head, [_metric_cells(m, bool(b)) for m in report.metrics])}
<h2>Slices ({html.escape(report.metric)})</h2>
{_html_table(slice_head, [_slice_cells(s, bool(b)) for s in report.slices]) if report.slices else "<p>none</p>"}
<h2>Behavioural tests</h2>{_html_table(tests[0], tests[1]) if tests[1] else "<p>none declared</p>"}
<h2>Data and code</h2>{_html_table(lineage[0], lineage[1])}
<h3>Schema changes</h3><ul>{changes}</ul>
<h2>Plots</h2>{plots}
</body></html>
"""


def metric_delta_figure(report: ComparisonReport) -> Figure | None:
    """Each metric's difference with its interval: what moved, and whether it is more than noise."""
    rows = [m for m in report.metrics if m.delta is not None]
    if not rows:
        return None
    figure = Figure(figsize=(6.5, 0.45 * len(rows) + 1.2))
    axes = figure.add_subplot()
    positions = np.arange(len(rows))
    estimates = np.array([m.delta.estimate for m in rows])  # type: ignore[union-attr]
    errors = np.array(
        [[m.delta.estimate - m.delta.low, m.delta.high - m.delta.estimate] for m in rows]  # type: ignore[union-attr]
    ).T
    palette = {"better": "tab:green", "worse": "tab:red"}
    colours = [palette.get(m.verdict, "tab:gray") for m in rows]
    axes.barh(positions, estimates, xerr=errors, color=colours, capsize=3)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_yticks(positions, [m.name for m in rows])
    axes.set_xlabel(f"{report.candidate.label} minus {report.against.label if report.against else ''}")
    axes.set_title(f"metric differences, {report.confidence:.0%} intervals")
    figure.tight_layout()
    return figure


def png_base64(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def headline(report: ComparisonReport) -> str:
    """The gate metric's line, Markdown bold around the numbers that matter."""
    row = next((m for m in report.metrics if m.name == report.metric), None)
    if row is None:
        return ""
    if row.against is None or row.delta is None:
        return f"**{row.name}** {row.candidate:.4f} (no other version to compare with)"
    d = row.delta
    return (
        f"**{row.name}** {row.candidate:.4f} vs {row.against:.4f}: {d.estimate:+.4f} "
        f"({d.confidence:.0%} interval {d.low:+.4f} .. {d.high:+.4f}): **{row.verdict}**"
    )


def _metric_cells(m: MetricRow, compared: bool) -> list[str]:
    cells = [m.name, _number(m.candidate)]
    if compared:
        d = m.delta
        interval = f"{d.low:+.4f} .. {d.high:+.4f}" if d else ""
        cells += [_number(m.against), f"{d.estimate:+.4f}" if d else "", interval, m.verdict]
    return cells


def _slice_cells(s: SliceRow, compared: bool) -> list[str]:
    cells = [f"{s.column}={s.value}", str(s.rows), _number(s.candidate)]
    if compared:
        d = s.delta
        cells += [_number(s.against), f"{d.estimate:+.4f}" if d else "", f"{d.low:+.4f} .. {d.high:+.4f}" if d else ""]
    return cells


def _tests_rows(report: ComparisonReport) -> tuple[list[str], list[list[str]]]:
    a = _short(report.candidate)
    b = _short(report.against) if report.against else None
    theirs = {(r.kind, r.name): r for r in report.against.tests} if report.against else {}
    rows = []
    for r in report.candidate.tests:
        cells = [r.kind, r.name, _outcome(r)]
        if b:
            other = theirs.get((r.kind, r.name))
            cells.append(_outcome(other) if other else "")
        cells.append(r.detail)
        rows.append(cells)
    return ["kind", "test", a, *([b] if b else []), f"detail ({a})"], rows


def _lineage_rows(report: ComparisonReport) -> tuple[list[str], list[list[str]]]:
    a = _short(report.candidate)
    b = _short(report.against) if report.against else None
    rows = []
    for label, key in LINEAGE_ROWS:
        mine = report.candidate.lineage.get(key, "")
        cells = [label, _code(mine, key)]
        if report.against is not None:
            theirs = report.against.lineage.get(key, "")
            cells.append(_code(theirs, key) + (" (same)" if theirs and theirs == mine else ""))
        rows.append(cells)
    return ["", a, *([b] if b else [])], rows


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [line(head), "|" + "|".join("---" for _ in head) + "|", *[line(r) for r in rows]]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    def cls(cell: str) -> str:
        word = cell.split(" ")[0].lower()
        return f" class='{word}'" if word in ("better", "worse", "pass", "fail") else ""

    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    cells = ("".join(f"<td{cls(c)}>{html.escape(c.replace('`', ''))}</td>" for c in r) for r in rows)
    body = "".join(f"<tr>{row}</tr>" for row in cells)
    return f"<table><tr>{header}</tr>{body}</table>"


def _outcome(result: CaseResult) -> str:
    if result.skipped:
        return "skipped"
    return "pass" if result.passed else "FAIL"


def _short(facts: VersionFacts | None) -> str:
    return f"v{facts.version}" if facts else ""


def _code(value: str, key: str) -> str:
    short = value[:12] if key in (FINGERPRINT_TAG, SCHEMA_DIGEST_TAG, CONFIG_DIGEST_TAG, GIT_COMMIT_TAG) else value
    return f"`{short}`" if short else "-"


def _number(value: float | None) -> str:
    return "" if value is None else ("-" if math.isnan(value) else f"{value:.4f}")
