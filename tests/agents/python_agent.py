"""The real Python APM agent sends a transaction, a span, an error and metrics.

Configured only with the server URL and a secret token (from the environment), plus settings
that keep the run short and offline (no cloud metadata probing, a 1s metrics interval).
"""
import os
import time

import elasticapm
from elasticapm import Client

client = Client(
    service_name="py-agent-test",
    service_version="1.0.0",
    environment="test",
    server_url=os.environ["APM_SERVER_URL"],
    secret_token=os.environ["APM_SECRET_TOKEN"],
    metrics_interval="1s",
    central_config=False,
    cloud_provider="none",
)
client.begin_transaction("request")
with elasticapm.capture_span("SELECT FROM t", span_type="db", span_subtype="postgresql", span_action="query"):
    time.sleep(0.01)
try:
    1 / 0
except ZeroDivisionError:
    client.capture_exception(handled=True)
client.end_transaction("GET /probe", "success")
# The metrics timer fires every second: wait for one collection, then flush everything.
time.sleep(1.5)
client.close()
print("python agent done")
