"""The Serve deployment: a FastAPI ingress whose replicas hold the served model(s).

One deployment, not ingress + model deployments: a tabular model predicts in
microseconds, so a second hop through a DeploymentHandle would cost more than the
prediction. Each replica:

* validates the body against the served version's request contract (413 over the
  size limit, 422 listing every bad field, never a stack trace);
* predicts through ``@serve.batch``, so concurrent requests share one forward pass
  (run in a thread, so the event loop keeps accepting requests);
* answers with the version that produced the prediction, picks the challenger for
  ``canary_percent`` of requests, and counts requests per version;
* swaps models in place when the alias moves (a watcher thread loads the new version
  next to the old one, then switches the reference; requests in flight finish on the
  old one) or when ``reconfigure`` receives a new ``user_config``;
* hands sampled requests to the capture writer and records Prometheus metrics.

No ``from __future__ import annotations``: FastAPI reads the route annotations.
"""

import asyncio
import logging
import random
import threading
import time
from collections import Counter
from typing import Any

import mlflow
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from ray import serve
from ray.exceptions import TaskCancelledError
from starlette.requests import ClientDisconnect

from mlops_ray.config import BatchingConfig
from mlops_ray.registry.refs import ModelRef, alias_version, parse_model_ref
from mlops_ray.runtime import quiet_library_logs
from mlops_ray.serve.capture import CaptureWriter
from mlops_ray.serve.contract import ErrorResponse, ModelMetadata, PredictResponse, error_details
from mlops_ray.serve.metrics import EndpointMetrics
from mlops_ray.serve.options import EndpointSettings, LiveSettings
from mlops_ray.serve.served_model import ServedModel

logger = logging.getLogger("ray.serve")
TITLE = "mlops-ray model endpoint"
api = FastAPI(title=TITLE, openapi_url=None, docs_url=None, redoc_url=None)
ERRORS = {code: {"model": ErrorResponse} for code in (413, 422, 503)}
BATCHING = BatchingConfig()  # the decorator's values until reconfigure applies the live ones


@api.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: a sentence for the caller, the traceback for the replica log only."""
    logger.exception("unhandled error answering %s", request.url.path)
    return JSONResponse({"detail": "internal error; the replica log has the details"}, status_code=500)


class PayloadTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it passes ``limit`` bytes rather than after buffering it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge
    return bytes(body)


def _replica_tag() -> str:
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a replica (unit use)
        return f"local-{int(time.time())}"


@serve.deployment
@serve.ingress(api)
class ModelEndpoint:
    def __init__(self, settings: dict[str, Any], live: dict[str, Any]):
        self.settings = EndpointSettings.model_validate(settings)
        quiet_library_logs()  # on a cluster the replica does not inherit the driver's environment
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        self.client = MlflowClient(self.settings.tracking_uri)
        self.champion: ServedModel | None = None
        self.challenger: ServedModel | None = None
        self.live: LiveSettings | None = None
        self.counts: Counter[str] = Counter()
        self.metrics = EndpointMetrics()
        self.capture = CaptureWriter(self.settings.capture, writer_id=_replica_tag())
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self.reconfigure(live)
        if self.settings.alias_refresh_s > 0:
            threading.Thread(target=self._watch_aliases, name="alias-watcher", daemon=True).start()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply live settings; loads a model only when the reference changed."""
        live = LiveSettings.model_validate(user_config)
        self.predict_batch.set_max_batch_size(live.max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(live.batch_wait_timeout_s)
        with self._load_lock:
            if self.champion is None or self.live is None or live.model != self.live.model:
                self.champion = self._load(parse_model_ref(live.model))
            if live.canary_percent > 0 and self.challenger is None:
                self.challenger = self._load(ModelRef(self.champion.name, alias=self.settings.challenger_alias))
            elif live.canary_percent == 0:
                self.challenger = None
            self.live = live

    def _load(self, ref: ModelRef) -> ServedModel:
        model = ServedModel.load(ref, self.client, self.settings.max_rows_per_request)
        model.probe()  # never switch to a model that cannot answer
        logger.info("serving %s version %s", model.name, model.version)
        return model

    def _watch_aliases(self) -> None:
        while not self._stop.wait(self.settings.alias_refresh_s):
            try:
                self._follow_aliases()
            except Exception:  # a registry hiccup keeps the current model; try again next period
                logger.exception("alias watcher: keeping the current model")

    def _follow_aliases(self) -> None:
        for slot in ("champion", "challenger"):
            current: ServedModel | None = getattr(self, slot)
            if current is None or current.alias is None:
                continue
            moved_to = alias_version(self.client, current.name, current.alias)
            if moved_to is not None and moved_to != current.version:
                with self._load_lock:
                    setattr(self, slot, self._load(ModelRef(current.name, alias=current.alias)))

    def _choose(self) -> ServedModel:
        assert self.champion is not None and self.live is not None
        challenger = self.challenger
        if challenger is not None and random.random() * 100 < self.live.canary_percent:
            return challenger
        return self.champion

    @serve.batch(max_batch_size=BATCHING.max_batch_size, batch_wait_timeout_s=BATCHING.batch_wait_timeout_s)
    async def predict_batch(self, items: list[tuple[ServedModel, pd.DataFrame]]) -> list[list[dict[str, Any]]]:
        """One forward pass per model version in the batch; answers split back per request."""
        answers: list[list[dict[str, Any]]] = [[] for _ in items]
        by_model: dict[int, list[int]] = {}
        for i, (model, _) in enumerate(items):
            by_model.setdefault(id(model), []).append(i)
        for positions in by_model.values():
            model = items[positions[0]][0]
            frame = pd.concat([items[i][1] for i in positions], ignore_index=True)
            predictions = await asyncio.to_thread(model.predict, frame)
            start = 0
            for i in positions:
                rows = len(items[i][1])
                answers[i] = predictions[start : start + rows]
                start += rows
        return answers

    @api.post("/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(self, request: Request) -> JSONResponse:
        """Predict a batch of records; the answer names the model version that produced it."""
        started = time.perf_counter()
        model = self._choose()
        status, rows = 200, 0
        try:
            body = await read_body(request, self.settings.max_body_bytes)
            frame = model.contract.parse(body)
            rows = len(frame)
            predictions = await self.predict_batch((model, frame))
            self.capture.add(model.version, frame, predictions)
            answer = {"model_name": model.name, "model_version": model.version, "predictions": predictions}
            return JSONResponse(answer)
        except PayloadTooLarge:
            status = 413
            limit = self.settings.max_body_bytes
            return JSONResponse({"detail": f"request body exceeds {limit} bytes"}, status_code=413)
        except ValidationError as error:
            status = 422
            return JSONResponse({"detail": error_details(error)}, status_code=422)
        except (ClientDisconnect, TaskCancelledError):
            # The caller hung up (a client timeout, mostly) while sending the body: not our error, and
            # nobody reads the answer. 499, as Serve's proxy logs it, instead of a 500 with a traceback.
            # Serve's cancellation of such a request can also surface here as Ray's TaskCancelledError.
            status = 499
            return JSONResponse({"detail": "the client disconnected"}, status_code=499)
        except asyncio.CancelledError:
            status = 499  # the same, noticed by Serve first: it cancels the request, and that must go on
            raise
        except Exception:
            status = 500
            logger.exception("prediction failed on %s version %s", model.name, model.version)
            return JSONResponse({"detail": "prediction failed; the replica log has the details"}, status_code=500)
        finally:
            self.counts[model.version] += 1
            self.metrics.record(model.version, status, (time.perf_counter() - started) * 1000, rows)

    @api.get("/healthz")
    def healthz(self) -> dict[str, str]:
        champion = self.champion
        if champion is None:
            raise HTTPException(503, "no model loaded yet")
        return {"status": "ok", "model_version": champion.version}

    @api.get("/metadata", response_model=ModelMetadata)
    def metadata(self) -> dict[str, Any]:
        """Which model answers, what it accepts, where it came from, and how requests split between versions."""
        champion, challenger, live = self.champion, self.challenger, self.live
        assert champion is not None and live is not None
        canary = None
        if challenger is not None:
            canary = {"percent": live.canary_percent, "alias": challenger.alias, "model_version": challenger.version}
        return {
            "model_name": champion.name,
            "model_version": champion.version,
            "alias": champion.alias,
            "model_uri": f"models:/{champion.name}/{champion.version}",
            "task": champion.task,
            "features": [rule.describe() for rule in champion.contract.rules],
            "classes": champion.classes,
            "max_rows_per_request": champion.contract.max_rows,
            "lineage": champion.lineage,
            "canary": canary,
            "requests_by_version": dict(self.counts),
        }

    @api.get("/openapi.json", include_in_schema=False)
    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document with ``/predict``'s body typed by the served version's contract."""
        assert self.champion is not None
        document = get_openapi(title=TITLE, version=self.champion.version, routes=self.app.routes)
        request_schema = self.champion.contract.request_model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(request_schema.pop("$defs", {}))
        components["PredictRequest"] = request_schema
        document["paths"]["/predict"]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
        }
        return document

    @api.get("/docs", include_in_schema=False)
    def docs(self) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=TITLE)

    def check_health(self) -> None:
        """Serve calls this every ``health_check_period_s``; raising gets the replica replaced."""
        for model in (self.champion, self.challenger):
            if model is not None:
                model.probe()

    def __del__(self) -> None:
        """Serve calls this on graceful shutdown: stop the watcher, write what capture still holds."""
        if hasattr(self, "capture"):
            self._stop.set()
            self.capture.close()
