"""Exports logs and metrics to medic with the real OpenTelemetry Python SDK.

    python export.py MODE ENDPOINT SERVICE

MODE: http-proto (the SDK's OTLP/HTTP protobuf exporter, gzip), http-json (the SDK's own
encoder, rendered as OTLP/JSON per the spec: the Python SDK ships no JSON exporter), grpc (the
SDK's OTLP/gRPC exporter). ENDPOINT: http://127.0.0.1:PORT. Exits non-zero if any export
did not succeed, so the Rust test sees the exporter's verdict too.

MODE-delta (e.g. http-proto-delta): metrics only, with `preferred_temporality=DELTA` for
counters and histograms, in three collections (counter +5, +3, +2; one histogram value
each), then a second MeterProvider for the same resource (a restarted process) that adds 4.
"""

import base64
import gzip
import json
import logging
import os
import sys
import urllib.parse
import urllib.request

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common._internal._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogExporter, SimpleLogRecordProcessor

try:  # renamed in newer SDKs
    from opentelemetry.sdk._logs.export import LogRecordExportResult as LogExportResult
except ImportError:
    from opentelemetry.sdk._logs.export import LogExportResult
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

mode, endpoint, service = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
delta = mode.endswith("-delta")
mode = mode.removesuffix("-delta")
failures = []


def otlp_json(msg):
    """Protobuf's JSON mapping, then the OTLP/JSON differences: ids in hex, not base64."""
    d = json_format.MessageToDict(msg)

    def fix(v):
        if isinstance(v, dict):
            for k, x in list(v.items()):
                if k in ("traceId", "spanId") and isinstance(x, str):
                    v[k] = base64.b64decode(x).hex()
                else:
                    fix(x)
        elif isinstance(v, list):
            for x in v:
                fix(x)

    fix(d)
    return json.dumps(d).encode()


def env_headers():
    # OTEL_EXPORTER_OTLP_HEADERS as the SDK's exporters read it: k=v pairs, values URL-encoded.
    out = {}
    for pair in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        if "=" in pair:
            k, v = pair.split("=", 1)
            out[k.strip()] = urllib.parse.unquote(v.strip())
    return out


def post_json(path, body):
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    headers.update(env_headers())
    req = urllib.request.Request(
        endpoint + path,
        data=gzip.compress(body),
        headers=headers,
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        reply = json.loads(resp.read() or b"{}")
        partial = reply.get("partialSuccess") or {}
        if resp.status != 200 or any(k.startswith("rejected") for k in partial):
            raise RuntimeError(f"medic answered {resp.status} {reply}")


class JsonLogExporter(LogExporter):
    def export(self, batch):
        post_json("/v1/logs", otlp_json(encode_logs(batch)))
        return LogExportResult.SUCCESS

    def force_flush(self, timeout_millis=30_000):
        return True

    def shutdown(self):
        pass


# What the SDK docs call the delta preference: counters and histograms report deltas.
TEMPORALITY = (
    {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    if delta
    else None
)


class JsonMetricExporter(MetricExporter):
    def __init__(self):
        super().__init__(preferred_temporality=TEMPORALITY)

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        post_json("/v1/metrics", otlp_json(encode_metrics(metrics_data)))
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass


class CheckedLogs(LogExporter):
    """Delegates and remembers every result that was not SUCCESS."""

    def __init__(self, inner):
        self.inner = inner

    def export(self, batch):
        try:
            r = self.inner.export(batch)
        except Exception as e:  # noqa: BLE001 - reported, then the script fails
            failures.append(f"logs: {e!r}")
            return LogExportResult.FAILURE
        if getattr(r, "name", str(r)) != "SUCCESS":
            failures.append(f"logs: {r}")
        return r

    def force_flush(self, timeout_millis=30_000):
        return True

    def shutdown(self):
        self.inner.shutdown()


class CheckedMetrics(MetricExporter):
    def __init__(self, inner):
        super().__init__(preferred_temporality=inner._preferred_temporality)
        self.inner = inner

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        try:
            r = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as e:  # noqa: BLE001
            failures.append(f"metrics: {e!r}")
            return MetricExportResult.FAILURE
        if getattr(r, "name", str(r)) != "SUCCESS":
            failures.append(f"metrics: {r}")
        return r

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        self.inner.shutdown()


if mode == "http-proto":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    log_exp = OTLPLogExporter(endpoint=endpoint + "/v1/logs", compression=Compression.Gzip)

    def new_metric_exporter():
        return OTLPMetricExporter(
            endpoint=endpoint + "/v1/metrics", preferred_temporality=TEMPORALITY
        )

elif mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    target = endpoint.split("://", 1)[-1]
    log_exp = OTLPLogExporter(endpoint=target, insecure=True)

    def new_metric_exporter():
        return OTLPMetricExporter(
            endpoint=target, insecure=True, preferred_temporality=TEMPORALITY
        )

elif mode == "http-json":
    log_exp = JsonLogExporter()
    new_metric_exporter = JsonMetricExporter
else:
    sys.exit(f"unknown mode {mode}")
metric_exp = new_metric_exporter()

resource = Resource.create({"service.name": service, "service.instance.id": service + "-0"})


def meter_provider_for(exporter):
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(resource=resource, metric_readers=[reader])


if delta:
    provider = meter_provider_for(CheckedMetrics(metric_exp))
    meter = provider.get_meter("shop")
    counter = meter.create_counter("http.requests")
    hist = meter.create_histogram("rpc.latency", unit="s")
    for add, v in ((5, 0.2), (3, 0.7), (2, 3.0)):
        counter.add(add, {"http.route": "/pay"})
        hist.record(v)
        provider.force_flush()  # one collection: one delta per series
    provider.shutdown()
    # A restarted process: new start times, so medic starts the series again.
    # (A shut-down exporter refuses to export: the new process has its own.)
    again = meter_provider_for(CheckedMetrics(new_metric_exporter()))
    again.get_meter("shop").create_counter("http.requests").add(4, {"http.route": "/pay"})
    again.force_flush()
    again.shutdown()
    if failures:
        sys.exit("exports failed: " + "; ".join(failures))
    print("exported", mode, "delta")
    sys.exit(0)

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(CheckedLogs(log_exp)))
handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
log = logging.getLogger("shop." + service)
log.propagate = False
log.setLevel(logging.DEBUG)
log.addHandler(handler)
log.error("payment failed password=hunter2", extra={"order.id": "o-17"})
log.warning("slow response from db")
log.info("request served")
logger_provider.shutdown()

reader = PeriodicExportingMetricReader(CheckedMetrics(metric_exp), export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = meter_provider.get_meter("shop")
meter.create_counter("http.requests").add(5, {"http.route": "/pay"})
meter.create_gauge("queue.depth").set(7, {"queue": "orders"})
hist = meter.create_histogram("rpc.latency", unit="s")
for v in (0.2, 0.7, 3.0):
    hist.record(v)
meter_provider.force_flush()
meter_provider.shutdown()

if failures:
    sys.exit("exports failed: " + "; ".join(failures))
print("exported", mode)
