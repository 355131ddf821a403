#!/usr/bin/env python3
"""Summarises benches/load.sh runs (JSON-lines files) as Markdown tables.

Given several files (runs of the same command), each measurement keeps its best run (highest
events/s), as BENCHMARKS.md does for every benchmark on this shared machine.
"""
import json
import sys

by = {}
for path in sys.argv[1:]:
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        key = (r["run"], r.get("protocol"))
        if key not in by or r["events_per_second"] > by[key]["events_per_second"]:
            by[key] = r
runs = list(by.values())
parse = by[("serde_json", None)]["events_per_second"]
print(f"Runs: {len(sys.argv) - 1}, best of each kept.\n")
names = {"h1": "HTTP/1.1", "h2c": "h2c", "h2": "HTTP/2 (TLS)", "h3": "HTTP/3"}


def fmt(n):
    return f"{n:,.0f}"


print(f"serde_json parse on one core: {fmt(parse)} events/s\n")
print("| Protocol | apmgate, discard output | apmgate, Elasticsearch output | ceiling | apmgate (discard) / ceiling | apmgate (ES) / ceiling | apmgate (discard) / serde_json 1 core | gateway CPU (cores), discard / ES | peak RSS MiB, discard / ES | p50 / p99 ms (discard) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p in ["h1", "h2c", "h2", "h3"]:
    d, e, c = by.get(("apmgate/discard", p)), by.get(("apmgate/elasticsearch", p)), by.get(("ceiling", p))
    if not (d and e and c):
        continue
    dv, ev, cv = d["events_per_second"], e["events_per_second"], c["events_per_second"]
    print(
        f"| {names[p]} | {fmt(dv)} | {fmt(ev)} | {fmt(cv)} | {dv / cv:.0%} | {ev / cv:.0%} | {dv / parse:.2f} | "
        f"{d['server_cpu_cores']:.2f} / {e['server_cpu_cores']:.2f} | {d['server_peak_rss_mib']:.0f} / {e['server_peak_rss_mib']:.0f} | "
        f"{d['latency_ms']['p50']:.0f} / {d['latency_ms']['p99']:.0f} |"
    )
for out in ["discard", "elasticsearch"]:
    h2, h3 = by.get((f"apmgate/{out}", "h2")), by.get((f"apmgate/{out}", "h3"))
    if h2 and h3:
        print(f"\nHTTP/3 / HTTP/2 ({out}): {h3['events_per_second'] / h2['events_per_second']:.0%}")
bad = [(r["run"], r.get("protocol"), r.get("statuses"), r.get("transport_errors")) for r in runs
       if r.get("statuses") and (set(r["statuses"]) - {"202"} or r.get("transport_errors"))]
print("\nAnswers other than 202 or transport errors:", bad or "none")
print("\n| Memory run | agents | events/s | peak RSS MiB | CPU | p50 / p99 ms |")
print("|---|---|---|---|---|---|")
for r in runs:
    if r["run"].startswith("memory/"):
        print(f"| {r['run']} | {r['agents']} | {fmt(r['events_per_second'])} | {r['server_peak_rss_mib']:.0f} | {r['server_cpu_cores']:.2f} | {r['latency_ms']['p50']:.0f} / {r['latency_ms']['p99']:.0f} |")
