"""Prometheus metrics per model version, exported through Ray's metrics agent next to Serve's own.

Ray prefixes custom metrics with ``ray_`` on the node's metrics port
(``ray.nodes()[i]["MetricsExportPort"]``), so Prometheus sees e.g.
``ray_mlops_ray_requests_total{model_version="3",status="200",...}``.
"""

from __future__ import annotations

from ray.serve.metrics import Counter, Histogram

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


class EndpointMetrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "mlops_ray_requests",
            description="Prediction requests answered, by model version and HTTP status.",
            tag_keys=("model_version", "status"),
        )
        self.errors = Counter(
            "mlops_ray_request_errors",
            description="Prediction requests that failed (4xx and 5xx), by model version and HTTP status.",
            tag_keys=("model_version", "status"),
        )
        self.rows = Counter(
            "mlops_ray_predicted_rows", description="Rows predicted, by model version.", tag_keys=("model_version",)
        )
        self.latency = Histogram(
            "mlops_ray_request_latency_ms",
            description="Time from reading the body to the answer, in milliseconds, by model version.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("model_version",),
        )

    def record(self, version: str, status: int, latency_ms: float, rows: int) -> None:
        tags = {"model_version": version, "status": str(status)}
        self.requests.inc(tags=tags)
        if status >= 400:
            self.errors.inc(tags=tags)
        elif rows > 0:  # Ray's Counter refuses 0, and an exception here would replace the request's own outcome
            self.rows.inc(rows, tags={"model_version": version})
        self.latency.observe(latency_ms, tags={"model_version": version})
