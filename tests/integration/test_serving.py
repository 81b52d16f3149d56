"""The model endpoint over real HTTP: contract, fuzz, capture, metrics, autoscaling, hot swap, canary, overload.

One endpoint serves the whole module (two registered versions, see
``serving_models``); tests run in file order because the alias move and the canary
build on what came before. Load comes from threads of this process; the replicas
run in the session's Ray.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest
import ray
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from ray import serve

from mlops_ray.config import Config
from mlops_ray.serve import deploy_model
from mlops_ray.serve.deploy import DEPLOYMENT_NAME, Endpoint, build_app, running_replicas, serve_config_document
from tests.integration.serving_models import (
    MODEL_NAME,
    metrics_text,
    registered_listings,
    running_endpoint,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]
MAX_ROWS = 50
MAX_BODY = 20_000
GOOD = {"size_m2": 80.0, "rooms": 3, "district": "north"}


@dataclass
class Served:
    config: Config
    tracking_uri: str
    endpoint: Endpoint
    tmp: Path

    def post(self, payload: Any, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.endpoint.url}/predict", json=payload, timeout=30, **kwargs)

    def post_raw(self, body: bytes) -> requests.Response:
        headers = {"content-type": "application/json"}
        return requests.post(f"{self.endpoint.url}/predict", data=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serving")
    config, uri, _ = registered_listings(
        tmp,
        [
            "serve.alias_refresh_s=0.5",
            "serve.autoscaling.min_replicas=1",
            "serve.autoscaling.max_replicas=2",
            "serve.autoscaling.target_ongoing_requests=1",
            "serve.autoscaling.upscale_delay_s=0.5",
            "serve.autoscaling.downscale_delay_s=2",
            "serve.autoscaling.look_back_period_s=10.5",
            f"serve.max_rows_per_request={MAX_ROWS}",
            f"serve.max_body_bytes={MAX_BODY}",
            "serve.capture.flush_interval_s=0.5",
            "serve.health_check_period_s=1",
            "serve.health_check_timeout_s=10",
        ],
        {"champion": 1, "challenger": 2},
    )
    with running_endpoint(config, uri) as endpoint:
        yield Served(config, uri, endpoint, tmp)


def no_stack_trace(response: requests.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text


def test_metadata_docs_and_a_prediction(served: Served) -> None:
    answer = served.post({"records": [GOOD, {**GOOD, "rooms": None, "district": None}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == MODEL_NAME and body["model_version"] == "1"
    assert len(body["predictions"]) == 2 and all(isinstance(p["prediction"], float) for p in body["predictions"])

    meta = requests.get(f"{served.endpoint.url}/metadata", timeout=10).json()
    assert (meta["model_version"], meta["alias"], meta["task"]) == ("1", "champion", "regression")
    assert {f["name"]: f["kind"] for f in meta["features"]} == {
        "size_m2": "number",
        "rooms": "integer",
        "district": "string",
    }
    assert meta["lineage"]["data.fingerprint"] and meta["lineage"]["run_id"]
    assert meta["max_rows_per_request"] == MAX_ROWS

    document = requests.get(f"{served.endpoint.url}/openapi.json", timeout=10).json()
    record = document["components"]["schemas"]["Record"]
    assert set(record["required"]) == {"size_m2", "rooms", "district"}
    assert record["additionalProperties"] is False
    assert requests.get(f"{served.endpoint.url}/docs", timeout=10).status_code == 200


def _row(**changes: Any) -> dict[str, Any]:
    row = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            del row[key]
        else:
            row[key] = value
    return row


# name -> (payload as JSON text, expected status, a field the answer must name)
BAD_REQUESTS: dict[str, tuple[str, int, str]] = {
    "missing column": (json.dumps({"records": [_row(district=...)]}), 422, "records[0].district"),
    "unknown column": (json.dumps({"records": [_row(garden=True)]}), 422, "records[0].garden"),
    "text for a number": (json.dumps({"records": [_row(size_m2="80")]}), 422, "records[0].size_m2"),
    "boolean for a number": (json.dumps({"records": [_row(size_m2=True)]}), 422, "records[0].size_m2"),
    "number for a category": (json.dumps({"records": [_row(district=3)]}), 422, "records[0].district"),
    "category not allowed": (json.dumps({"records": [_row(district="harbour")]}), 422, "records[0].district"),
    "NaN": ('{"records": [{"size_m2": NaN, "rooms": 3, "district": "north"}]}', 422, "records[0].size_m2"),
    "Infinity": ('{"records": [{"size_m2": Infinity, "rooms": 3, "district": "north"}]}', 422, "records[0].size_m2"),
    "null where not nullable": (json.dumps({"records": [_row(size_m2=None)]}), 422, "records[0].size_m2"),
    "below the minimum": (json.dumps({"records": [_row(size_m2=5.0)]}), 422, "records[0].size_m2"),
    "fraction for an integer": (json.dumps({"records": [_row(rooms=2.5)]}), 422, "records[0].rooms"),
    "no records": (json.dumps({"records": []}), 422, "records"),
    "too many rows": (json.dumps({"records": [GOOD] * (MAX_ROWS + 1)}), 422, "records"),
    "unknown envelope key": (json.dumps({"records": [GOOD], "explain": True}), 422, "explain"),
    "records not a list": (json.dumps({"records": GOOD}), 422, "records"),
    "a row that is not an object": (json.dumps({"records": [[80.0, 3, "north"]]}), 422, "records[0]"),
    "not JSON": ('{"records": [', 422, "body"),
    "body over the limit": (json.dumps({"records": [GOOD] * 400}), 413, "bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_with_a_clear_body(served: Served, case: str) -> None:
    body, status, field = BAD_REQUESTS[case]
    answer = served.post_raw(body.encode())
    assert answer.status_code == status, answer.text
    no_stack_trace(answer)
    detail = answer.json()["detail"]
    named = [d["field"] for d in detail] if isinstance(detail, list) else [detail]
    assert any(field in text for text in named), (case, detail)


def test_every_bad_field_is_listed_in_one_answer(served: Served) -> None:
    rows = [_row(size_m2="big", district="harbour"), GOOD, _row(rooms=0, extra=1)]
    answer = served.post({"records": rows})
    assert answer.status_code == 422
    fields = sorted(d["field"] for d in answer.json()["detail"])
    assert fields == ["records[0].district", "records[0].size_m2", "records[2].extra", "records[2].rooms"]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
field_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.sampled_from(["north", "south", "centre", "", "harbour"]),
    st.none(),
    st.booleans(),
    json_values,
)
rows = st.fixed_dictionaries(
    {},
    optional={"size_m2": field_values, "rooms": field_values, "district": field_values, "other": field_values},
)
payloads = st.one_of(
    st.fixed_dictionaries({"records": st.lists(rows, max_size=MAX_ROWS + 5)}),
    st.dictionaries(st.sampled_from(["records", "rows", "x"]), json_values, max_size=2),
    json_values,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_fuzzed_payloads_never_get_a_server_error(served: Served, payload: Any) -> None:
    answer = served.post_raw(json.dumps(payload, allow_nan=True).encode())
    assert answer.status_code in (200, 413, 422), (answer.status_code, answer.text[:300])
    no_stack_trace(answer)
    if answer.status_code == 200:
        assert len(answer.json()["predictions"]) == len(payload["records"])


def test_captured_requests_land_in_parquet_by_date_and_version(served: Served) -> None:
    marker = 123.456  # a size no other test sends
    assert served.post({"records": [_row(size_m2=marker)] * 3}).status_code == 200
    root = served.tmp / "capture"
    deadline = time.monotonic() + 20
    table = None
    while time.monotonic() < deadline:
        files = list(root.glob("date=*/model_version=*/*.parquet"))
        if files:
            table = pads.dataset(root, format="parquet", partitioning="hive").to_table().to_pandas()
            if (table["size_m2"] == marker).sum() == 3:
                break
        time.sleep(0.5)
    assert table is not None, f"nothing captured under {root}"
    mine = table[table["size_m2"] == marker]
    assert len(mine) == 3 and mine["request_id"].nunique() == 1
    assert set(mine["model_version"].astype(str)) == {"1"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(mine["date"].iloc[0]))
    assert mine["prediction.prediction"].notna().all()
    assert not list(root.rglob(".*.tmp")), "a temporary capture file was left behind"


def test_prometheus_metrics_per_model_version(served: Served) -> None:
    served.post({"records": [GOOD]})
    served.post({"records": []})
    deadline = time.monotonic() + 40
    text = ""
    while time.monotonic() < deadline:
        text = metrics_text()
        if "ray_mlops_ray_request_errors_total{" in text and "ray_mlops_ray_request_latency_ms_bucket{" in text:
            break
        time.sleep(2)
    requests_line = re.search(
        r'ray_mlops_ray_requests_total\{[^}]*model_version="1"[^}]*status="200"[^}]*\} (\S+)', text
    )
    assert requests_line and float(requests_line.group(1)) >= 1, text[-2000:]
    assert re.search(r'ray_mlops_ray_request_errors_total\{[^}]*status="422"', text)
    assert re.search(r'ray_mlops_ray_request_latency_ms_bucket\{[^}]*model_version="1"', text)


class Load:
    """Steady HTTP load from threads; records every status and answering version."""

    def __init__(self, served: Served, threads: int, rows: int = 1):
        self.served, self.rows = served, rows
        self.results: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                answer = session.post(
                    f"{self.served.endpoint.url}/predict", json={"records": [GOOD] * self.rows}, timeout=30
                )
                version = answer.json().get("model_version", "") if answer.status_code == 200 else ""
                self.results.append((time.monotonic(), answer.status_code, version))
            except requests.RequestException as exc:
                self.results.append((time.monotonic(), -1, type(exc).__name__))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_replicas_rise_under_load_and_return_after(served: Served) -> None:
    app = served.config.serve.app_name
    assert running_replicas(app) == 1
    started = time.monotonic()
    with Load(served, threads=8, rows=20) as load:
        wait_for(lambda: running_replicas(app) >= 2, 60, "a second replica under load")
    print(f"scaled up after {time.monotonic() - started:.1f} s")
    assert {status for _, status, _ in load.results} == {200}
    stopped = time.monotonic()
    wait_for(lambda: running_replicas(app) == 1, 60, "the deployment to scale back to one replica")
    print(f"scaled back down {time.monotonic() - stopped:.1f} s after the load stopped")


def test_alias_move_under_steady_load_fails_no_request(served: Served) -> None:
    client = MlflowClient(served.tracking_uri)
    with Load(served, threads=4) as load:
        wait_for(lambda: len(load.results) > 20, 30, "load to start")
        client.set_registered_model_alias(MODEL_NAME, "champion", "2")
        moved_at = time.monotonic()
        wait_for(lambda: any(v == "2" for t, _, v in load.results if t > moved_at), 30, "answers from version 2")
        time.sleep(1.5)  # every replica's watcher has run at least twice since
    statuses = Counter(status for _, status, _ in load.results)
    assert statuses == Counter({200: len(load.results)}), statuses
    last = [v for _, _, v in load.results[-20:]]
    assert set(last) == {"2"}, last
    meta = requests.get(f"{served.endpoint.url}/metadata", timeout=10).json()
    assert meta["model_version"] == "2"


def test_canary_splits_requests_by_weight(served: Served) -> None:
    client = MlflowClient(served.tracking_uri)
    client.set_registered_model_alias(MODEL_NAME, "challenger", "1")
    app = served.config.serve.app_name
    model = f"{MODEL_NAME}@champion"
    # Same app, new user_config: Serve reconfigures the live replicas instead of restarting them.
    serve.run(build_app(served.config, served.tracking_uri, model, canary_percent=30), name=app, route_prefix="/")
    wait_for(
        lambda: (
            (requests.get(f"{served.endpoint.url}/metadata", timeout=10).json()["canary"] or {}).get("model_version")
            == "1"
        ),
        30,
        "the canary to load",
    )
    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(lambda _: served.post({"records": [GOOD]}).json()["model_version"], range(400)))
    counts = Counter(versions)
    assert set(counts) == {"1", "2"}
    # 30 % of 400 is 120; the binomial standard deviation is about 9.2, so +-4 sd is 83..157.
    assert 83 <= counts["1"] <= 157, counts
    meta = requests.get(f"{served.endpoint.url}/metadata", timeout=10).json()
    assert meta["canary"] == {"percent": 30.0, "alias": "challenger", "model_version": "1"}
    assert set(meta["requests_by_version"]) >= {"1", "2"}


def test_overload_is_answered_503_with_a_small_queue(served: Served) -> None:
    tight = served.config.model_copy(
        update={
            "serve": served.config.serve.model_copy(
                update={
                    "max_ongoing_requests": 1,
                    "max_queued_requests": 1,
                    "batching": served.config.serve.batching.model_copy(update={"max_batch_size": 1}),
                    "autoscaling": served.config.serve.autoscaling.model_copy(update={"max_replicas": 1}),
                }
            )
        }
    )
    serve.run(build_app(tight, served.tracking_uri, f"{MODEL_NAME}@champion"), name="tight", route_prefix="/tight")
    try:
        url = f"{served.endpoint.url}/tight/predict"

        def call(_: int) -> int:
            return requests.post(url, json={"records": [GOOD] * MAX_ROWS}, timeout=60).status_code

        with ThreadPoolExecutor(32) as pool:
            statuses = Counter(pool.map(call, range(96)))
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0 and statuses[200] > 0, statuses
    finally:
        serve.delete("tight")


def test_the_built_serve_config_deploys_and_answers(served: Served) -> None:
    """The file `mlops-ray serve build` writes: its import path and args make an app that serves."""
    document = serve_config_document(served.config, served.tracking_uri)
    (application,) = document["applications"]
    module, name = application["import_path"].split(":")
    builder = getattr(importlib.import_module(module), name)
    serve.run(builder(application["args"]), name="from-file", route_prefix="/from-file")
    try:
        answer = requests.post(f"{served.endpoint.url}/from-file/predict", json={"records": [GOOD]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "2"  # @champion, moved by the alias test above
    finally:
        serve.delete("from-file")


def test_a_redeploy_onto_a_running_application_leaves_it_running(served: Served) -> None:
    """What a pipeline job does on a cluster that already serves: its shutdown must not take the endpoint down."""
    again = deploy_model(served.config, served.tracking_uri)
    assert (again.started_serve, again.created_app) == (False, False)
    left_running = again.shutdown()
    assert left_running is not None and "left running" in left_running and served.config.serve.app_name in left_running
    assert requests.get(f"{served.endpoint.url}/healthz", timeout=10).status_code == 200
    assert served.endpoint.started_serve and served.endpoint.created_app  # the module's own deploy: it stops Serve


def _break_champion(replica: Any) -> str:
    """Runs inside the replica actor: turn the served network's weights into NaN, as a corrupted model would be."""
    endpoint = replica._replica_impl._user_callable_wrapper.user_callable
    for parameter in endpoint.champion.packaged.network.parameters():
        parameter.data.fill_(float("nan"))
    return endpoint.champion.version


def test_a_replica_whose_model_breaks_is_replaced(served: Served) -> None:
    app = served.config.serve.app_name
    prefix = f"SERVE_REPLICA::{app}#{DEPLOYMENT_NAME}#"

    def replicas() -> set[str]:
        return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)}

    wait_for(lambda: len(replicas()) == 1, 60, "a single replica")
    (broken,) = replicas()
    ray.get(ray.get_actor(broken, namespace="serve").__ray_call__.remote(_break_champion))
    wait_for(lambda: broken not in replicas() and len(replicas()) == 1, 60, "the broken replica to be replaced")
    wait_for(lambda: running_replicas(app) == 1, 60, "the new replica to run")
    answer = served.post({"records": [GOOD]})
    assert answer.status_code == 200, answer.text
    assert math.isfinite(answer.json()["predictions"][0]["prediction"])
