"""The drift report: a JSON document for machines, an HTML page for people, both kept as run artifacts.

The HTML page is one self-contained file (plots inlined as PNG), so it can be opened
from MLflow's artifact view, mailed, or attached to a ticket. Plots are drawn with
matplotlib's object API (no display backend), one per drifted column: the share of
rows per reference bin or category, reference against the window.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mlops_ray.monitor.stats import ColumnDrift
from mlops_ray.monitor.window import Window


@dataclass(frozen=True)
class DriftReport:
    model_name: str
    model_version: str
    window: Window
    rows: int
    versions: dict[str, int]
    enough_rows: bool
    min_rows: int
    features: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None

    @property
    def columns(self) -> tuple[ColumnDrift, ...]:
        """The features, then the predictions (when the monitored version answered any row)."""
        return (*self.features, *([self.prediction] if self.prediction else []))

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def drifted(self) -> bool:
        return self.enough_rows and (bool(self.drifted_features) or bool(self.prediction and self.prediction.drifted))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model_name, "version": self.model_version},
            "window": {"since": self.window.since.isoformat(), "until": self.window.until.isoformat()},
            "rows": self.rows,
            "rows_per_version": self.versions,
            "enough_rows": self.enough_rows,
            "min_rows": self.min_rows,
            "drifted": self.drifted,
            "drifted_features": list(self.drifted_features),
            "prediction_drifted": bool(self.prediction and self.prediction.drifted),
            "features": [asdict(f) for f in self.features],
            "prediction": asdict(self.prediction) if self.prediction else None,
        }

    def summary(self) -> dict[str, Any]:
        """What an alert carries: the verdict and the drifted columns with their reasons, no histograms."""
        return {
            "model": f"{self.model_name}/{self.model_version}",
            "window": {"since": self.window.since.isoformat(), "until": self.window.until.isoformat()},
            "rows": self.rows,
            "drifted": self.drifted,
            "drifted_features": list(self.drifted_features),
            "prediction_drifted": bool(self.prediction and self.prediction.drifted),
            "reasons": {c.name: list(c.reasons) for c in self.columns if c.drifted},
        }


def report_html(report: DriftReport) -> str:
    verdict = "DRIFT" if report.drifted else ("not enough traffic" if not report.enough_rows else "no drift")
    columns = report.columns
    rows = "".join(
        "<tr{cls}><td>{name}</td><td>{kind}</td><td>{psi:.3f}</td><td>{test} {p:.2g}</td>"
        "<td>{miss}</td><td>{unknown}</td><td>{reasons}</td></tr>".format(
            cls=' class="drift"' if c.drifted else "",
            name=html.escape(c.name),
            kind=c.kind,
            psi=c.psi,
            test=c.test,
            p=c.p_value,
            miss=f"{c.missing_reference:.1%} → {c.missing_current:.1%}",
            unknown="" if c.unknown_share is None else f"{c.unknown_share:.1%}",
            reasons=html.escape("; ".join(c.reasons)),
        )
        for c in columns
    )
    plots = "".join(
        f"<h3>{html.escape(c.name)}</h3><img alt='{html.escape(c.name)}' src='data:image/png;base64,{_png(c)}'>"
        for c in columns
        if c.drifted
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift: {html.escape(report.model_name)} {report.model_version}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px}}tr.drift{{background:#fde2e2}}</style></head><body>
<h1>{html.escape(report.model_name)} version {report.model_version}: {verdict}</h1>
<p>Window {report.window.since.isoformat()} to {report.window.until.isoformat()}: {report.rows} captured rows
(per version: {html.escape(str(report.versions))}; at least {report.min_rows} needed).</p>
<table><tr><th>column</th><th>kind</th><th>PSI</th><th>test p-value</th><th>missing</th><th>unseen</th>
<th>why drifted</th></tr>{rows}</table>
{plots}
</body></html>
"""


def _png(column: ColumnDrift) -> str:
    figure = Figure(figsize=(max(6.0, 0.5 * len(column.bins)), 3.5))
    axes = figure.add_subplot()
    positions = np.arange(len(column.bins))
    axes.bar(positions - 0.2, column.reference_share, width=0.4, label="reference (training)")
    axes.bar(positions + 0.2, column.current_share, width=0.4, label="window")
    axes.set_xticks(positions, column.bins, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")
    axes.set_title(f"{column.name}: PSI {column.psi:.3f}")
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()
