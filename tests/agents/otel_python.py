"""The OpenTelemetry Python SDK, configured only with the gateway's endpoint and an
`authorization` header, exports over OTLP/HTTP (protobuf) or OTLP/gRPC: a trace with a server
span, a database client span and a recorded exception, a counter, and a log record.

Environment: OTLP_ENDPOINT (http://host:port), OTLP_AUTHORIZATION (the header's value),
SERVICE_NAME, OTLP_PROTOCOL (`http/protobuf`, the default, or `grpc`).
"""

import logging
import os

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

endpoint = os.environ["OTLP_ENDPOINT"]
headers = {"authorization": os.environ["OTLP_AUTHORIZATION"]}
if os.environ.get("OTLP_PROTOCOL", "http/protobuf") == "grpc":
    # One endpoint for the three services (the scheme http:// says: no TLS).
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    paths = {"traces": "", "metrics": "", "logs": ""}
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    paths = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
resource = Resource.create({"service.name": os.environ["SERVICE_NAME"], "deployment.environment": "test"})

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(
    SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + paths["traces"], headers=headers))
)
trace.set_tracer_provider(tracer_provider)

reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=endpoint + paths["metrics"], headers=headers),
    export_interval_millis=60_000,
)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
metrics.set_meter_provider(meter_provider)

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(
    SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + paths["logs"], headers=headers))
)
set_logger_provider(logger_provider)
log = logging.getLogger("checkout")
log.addHandler(LoggingHandler(logger_provider=logger_provider))
log.setLevel(logging.INFO)

tracer = trace.get_tracer("checkout")
counter = metrics.get_meter("checkout").create_counter("orders")

with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as server:
    server.set_attribute("http.request.method", "GET")
    server.set_attribute("url.full", "http://shop.local/orders")
    server.set_attribute("http.response.status_code", 200)
    with tracer.start_as_current_span("SELECT orders", kind=trace.SpanKind.CLIENT) as db:
        db.set_attribute("db.system", "postgresql")
        db.set_attribute("db.statement", "SELECT * FROM orders")
    try:
        raise ValueError("no such order")
    except ValueError as e:
        server.record_exception(e)
    counter.add(1)
    log.info("order listed")

# Every exporter sends what it holds before the process ends; a failed export raises no error
# in the SDK, so the test checks what the gateway wrote.
tracer_provider.shutdown()
meter_provider.shutdown()
logger_provider.shutdown()
