#!/usr/bin/env python3
"""The Argon2 attack of issue 12, item 2: CONCURRENCY connections at once, each sending
`Authorization: ApiKey base64("<declared id>:<a different wrong secret>")` to the intake, for
ROUNDS rounds. Prints the status counts and the gateway's resident memory (VmRSS, and its peak
VmHWM) before, during (sampled) and after.

    benches/guess_api_keys.py PID HOST:PORT KEY_ID [CONCURRENCY=200] [ROUNDS=5]
"""
import asyncio
import base64
import collections
import secrets
import sys


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                fields[k] = int(v.split()[0]) // 1024
    return fields


async def guess(host, port, key_id, statuses):
    cred = base64.b64encode(f"{key_id}:{secrets.token_hex(20)}".encode()).decode()
    body = b'{"metadata":{"service":{"name":"guess","agent":{"name":"python","version":"1"}}}}\n'
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"POST /intake/v2/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: ApiKey {cred}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    status_line = await reader.readline()
    statuses[status_line.split()[1].decode() if status_line else "closed"] += 1
    writer.close()


async def main():
    pid, addr, key_id = sys.argv[1], sys.argv[2], sys.argv[3]
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    host, port = addr.rsplit(":", 1)
    print("before", rss(pid))
    statuses = collections.Counter()
    peak = 0
    for _ in range(rounds):
        tasks = [asyncio.create_task(guess(host, int(port), key_id, statuses)) for _ in range(concurrency)]
        while not all(t.done() for t in tasks):
            peak = max(peak, rss(pid)["VmRSS"])
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
    print("statuses", dict(statuses))
    print("sampled peak VmRSS MiB", peak)
    await asyncio.sleep(2)
    print("after", rss(pid))


asyncio.run(main())
