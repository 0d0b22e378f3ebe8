"""`/metrics` in Prometheus' text format: request latencies, and the collectors' counters
and meter states when they run in this process."""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import Reader
from api.errors import install_error_handler
from api.keys import KeyStore
from api.ratelimit import RateLimiter
from api.status import OpsContext
from core.config import SiteConfig


class _CollectorsMetrics(Collector):
    def __init__(self, ops: OpsContext) -> None:
        self._ops = ops

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        status = self._ops.status
        if status is not None:
            counters = CounterMetricFamily(
                "epcmon_collector_events", "collector counters", labels=["event"]
            )
            for name, value in sorted(status.counters.items()):
                counters.add_metric([name], float(value))
            yield counters
            up = GaugeMetricFamily(
                "epcmon_meter_up", "1 when the meter answered its last poll", labels=["meter"]
            )
            seen = GaugeMetricFamily(
                "epcmon_meter_last_seen_seconds",
                "time of the meter's last answer",
                labels=["meter"],
            )
            for meter, state in sorted(status.snapshot().items()):
                up.add_metric([meter], 1.0 if state.up else 0.0)
                seen.add_metric([meter], state.last_seen_ms / 1000)
            yield up
            yield seen
        health = self._ops.health
        if health is not None:
            snapshot = health.snapshot()
            restarts = CounterMetricFamily(
                "epcmon_part_restarts", "restarts of a supervised part", labels=["part"]
            )
            up = GaugeMetricFamily(
                "epcmon_part_up", "1 while the supervised part runs", labels=["part"]
            )
            for name, part in sorted(snapshot.parts.items()):
                restarts.add_metric([name], float(part.restarts))
                up.add_metric([name], 1.0 if part.state in ("starting", "running") else 0.0)
            yield restarts
            yield up
            degraded = GaugeMetricFamily(
                "epcmon_degraded",
                "1 while a condition is raised (e.g. store: writes failing, ingest paused)",
                labels=["condition"],
            )
            for name in sorted(snapshot.conditions):
                degraded.add_metric([name], 1.0)
            yield degraded
        if self._ops.alarms_active is not None:
            active = GaugeMetricFamily(
                "epcmon_alarms_active",
                "alarms raised and not cleared, by rule and severity",
                labels=["rule", "severity"],
            )
            for (rule, severity), n in sorted(self._ops.alarms_active().items()):
                active.add_metric([rule, severity], float(n))
            yield active
        depth = self._ops.spool_depth
        if callable(depth):
            yield GaugeMetricFamily(
                "epcmon_spool_batches", "batches waiting in the spool", value=float(depth())
            )
        spooling = self._ops.spool_store
        if spooling is not None:
            events = CounterMetricFamily(
                "epcmon_spool_events", "the spool's batches and points", labels=["event"]
            )
            for name in (
                "spooled_batches",
                "replayed_batches",
                "replayed_points",
                "rejected_batches",
            ):
                events.add_metric([name], float(getattr(spooling, name, 0)))
            yield events


class _LatencyMiddleware:
    """Pure ASGI (Starlette's BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.histogram.labels(route, str(status)).observe(time.perf_counter() - start)


def install_metrics(app: FastAPI, ops: OpsContext) -> CollectorRegistry:
    registry = CollectorRegistry()
    latency = Histogram(
        "epcmon_http_request_seconds",
        "API request latency",
        ["route", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )
    registry.register(_CollectorsMetrics(ops))

    app.add_middleware(_LatencyMiddleware, histogram=latency)
    return registry


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(
        generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


def create_metrics_app(ops: OpsContext, keys: KeyStore, site: SiteConfig) -> FastAPI:
    """`/metrics` alone, for a process without the API (`epcmon collect`): its collector
    counters, meter states, parts and conditions, behind the API's keys (any key but a
    vendor's, as the API's `/metrics`)."""
    app = FastAPI(title="epcmon collector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site
    app.state.keys = keys
    app.state.limiter = RateLimiter(site.api.rate_limit_per_s, site.api.rate_burst)
    app.state.ops = ops
    install_error_handler(app)
    registry = install_metrics(app, ops)

    @app.get("/metrics")
    def metrics(_who: Reader) -> Response:
        """Prometheus text format (scrape with a viewer key as bearer token)."""
        return metrics_response(registry)

    return app
