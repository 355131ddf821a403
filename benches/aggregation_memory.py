#!/usr/bin/env python3
"""Issue 13: peak resident memory with 100,000 distinct transaction names, aggregation on
(default limits, and explicit ones) against off, same build, same requests.

    python3 benches/aggregation_memory.py [BIN=target/release/apmgate]

With SERVICES = 1 all names belong to one service (which may hold a tenth of the groups);
the last runs spread them over 50 services. Each run starts the gateway (discard output), sends 100 requests of 1,000 transactions with
names never seen before (4 agents at a time), then reads VmHWM (peak RSS) and VmRSS from
/proc, and the groups the aggregator counted as overflowed from /metrics.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/apmgate"
PORT = 18290
SERVICES = 1


def body(request: int) -> bytes:
    service = f"memory-{request % SERVICES}"
    lines = [json.dumps({"metadata": {"service": {"name": service, "agent": {"name": "go", "version": "2"}}}})]
    for i in range(1000):
        n = request * 1000 + i
        lines.append(json.dumps({"transaction": {
            "id": f"{n:016x}", "trace_id": f"{n:032x}", "name": f"GET /orders/{n}",
            "type": "request", "duration": 12.5, "outcome": "success",
            "span_count": {"started": 0}}}))
    return ("\n".join(lines) + "\n").encode()


def post(request: int) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/intake/v2/events", data=body(request),
                                 headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def status(pid: int) -> dict:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k] = int(v.split()[0]) // 1024
    return out


def run(label: str, aggregation: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        policy = os.path.join(d, "policy.toml")
        with open(policy, "w") as f:
            f.write(f'[[listener]]\nname = "m"\nbind = "127.0.0.1:{PORT}"\n'
                    f'[[listener]]\nname = "metrics"\nbind = "127.0.0.1:{PORT + 1}"\n'
                    f'routes = ["metrics"]\n\n[output.discard]\n\n{aggregation}\n')
        gw = subprocess.Popen([BIN, "run", policy], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            before = status(gw.pid)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(post, range(100)))
            assert codes == [202] * 100, codes
            after = status(gw.pid)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{PORT + 1}/metrics", timeout=5).read().decode()
            overflow = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
                           if l.startswith("apmgate_aggregation_overflow_total{"))
            print(f"{label}: RSS at start {before['VmRSS']} MiB, peak {after['VmHWM']} MiB, "
                  f"now {after['VmRSS']} MiB; events sent to _other buckets: {overflow:.0f}")
        finally:
            gw.terminate()
            gw.wait()


run("aggregation off", "[aggregation]\nenabled = false")
run("aggregation on, limits sized from memory", "")
run("aggregation on, max_transaction_groups = 10000", "[aggregation]\nmax_transaction_groups = 10000")
# The same names over 50 services: each fits its share (a tenth of the limit), so every group
# is held, at each of the three intervals (300,000 groups).
SERVICES = 50
run("50 services, aggregation off", "[aggregation]\nenabled = false")
run("50 services, limits sized from memory", "")
