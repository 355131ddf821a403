#!/usr/bin/env python3
"""Writes the initial seeds of every fuzz target into fuzz/seeds/<target>/ (not committed).

Sources: ../tests/invalid/*.toml and ../examples/*.toml (policies, and the values in them for
the grammar), ../../shared/fixtures (intake payloads and agent captures, cut to a few KiB), and
compressed variants made here with gzip/zlib. run.sh runs this when seeds/ is missing; the
fuzzer's findings are then minimized into corpus/<target>/, which is committed.

Usage: python3 fuzz/make_seeds.py [--fixtures PATH]
"""

import argparse
import gzip
import hashlib
import json
import re
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent

# Seeds are kept small: AFL mutates small inputs faster.
MAX_SEED = 16 * 1024


def write(target: str, data: bytes, written: dict) -> None:
    data = data[:MAX_SEED]
    out = FUZZ / "seeds" / target
    out.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    (out / name).write_bytes(data)
    written[target] = written.get(target, 0) + 1


def policies() -> list[Path]:
    return sorted((ROOT / "tests" / "invalid").glob("*.toml")) + sorted(
        (ROOT / "examples").glob("*.toml")
    )


# Which parser of the rule_grammar target a key's values go to (its first byte).
GRAMMAR = [
    (0, re.compile(r"^when$")),
    (1, re.compile(r"timeout|interval|ttl|duration|_age$")),
    (2, re.compile(r"size|bytes")),
    (3, re.compile(r"^(from|trusted_proxies|addresses|networks|ranges|allow_ips?)$")),
    (4, re.compile(r"^(allow_agent|allow_service|allow_origins|service|agent_name|patterns?)$")),
    (5, re.compile(r"^privileges$")),
    (6, re.compile(r"^secret$")),
    (7, re.compile(r"^bind$")),
]

EXTRA_GRAMMAR = {
    0: [
        "route == intake",
        "identity in [secret_token, api_key] and not (source in office or method == GET)",
        'path matches "/intake/*" or header.x_forwarded_for != ""',
        "not not not route == root",
    ],
    1: ["1h30m", "250ms", "1.5s", "0s", "2d", "10", "1m-1s"],
    2: ["300KiB", "1 GB", "0", "18446744073709551615B", "1.5MiB", "7 KB"],
    3: ["10.0.0.0/8", "::1", "fd00::/8", "10.0.0.1-10.0.0.9", "192.168.1.10/24", "*"],
    4: ["*", "https://*.example.com", "rum-*-js", "a?c", "[abc]", "**"],
    5: ["event:write", "config_agent:read", "metrics:read", "*:*", "event:*"],
    6: ["env:APM_TOKEN", "file:/run/secrets/token", "inline-token-value", "env:1BAD"],
    7: ["127.0.0.1:8200", "[::1]:8200", "unix:/run/apmgate.sock", "localhost:0", ":8200"],
}

STRING = re.compile(r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$""")
QUOTED = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'""")


def grammar_seeds(written: dict) -> None:
    seen = set()
    for path in policies():
        for line in path.read_text(errors="replace").splitlines():
            m = STRING.match(line)
            if not m:
                continue
            key, rest = m.group(1), m.group(2)
            for which, pattern in GRAMMAR:
                if pattern.search(key):
                    for q in QUOTED.finditer(rest):
                        value = q.group(1) if q.group(1) is not None else q.group(2)
                        if (which, value) not in seen:
                            seen.add((which, value))
                            write("rule_grammar", bytes([which]) + value.encode(), written)
                    break
    for which, values in EXTRA_GRAMMAR.items():
        for value in values:
            if (which, value) not in seen:
                seen.add((which, value))
                write("rule_grammar", bytes([which]) + value.encode(), written)


def ndjson_lines(path: Path) -> list[bytes]:
    return [l for l in path.read_bytes().split(b"\n") if l.strip()]


def intake_seeds(fixtures: Path, written: dict) -> None:
    v2 = sorted((fixtures / "intake" / "v2").glob("*.ndjson")) + sorted(
        (fixtures / "agents").glob("*.ndjson")
    )
    rum = sorted((fixtures / "intake" / "rumv3").glob("*.ndjson")) + [
        p for p in v2 if "rum" in p.name
    ]
    rum += sorted((fixtures / "es-fields" / "inputs").glob("*RUM*.ndjson"))
    for target, files in (("intake_v2", v2), ("intake_rumv3", rum)):
        for path in files:
            lines = ndjson_lines(path)
            if not lines:
                continue
            # The whole stream (the first lines of the large ones).
            write(target, b"\n".join(lines[:12]) + b"\n", written)
            # The metadata with each kind of event alone: small inputs mutate fast.
            kinds = set()
            for line in lines[1:]:
                kind = re.match(rb'\s*\{\s*"([^"]*)"', line)
                key = kind.group(1) if kind else line[:8]
                if key in kinds:
                    continue
                kinds.add(key)
                write(target, lines[0] + b"\n" + line + b"\n", written)


def body_seeds(fixtures: Path, written: dict) -> None:
    # [encoding, frame - 1, body...]; encodings as ENCODINGS in src/lib.rs:
    # 0 none (sniff), 1 gzip, 2 deflate (zlib), 3 " GZip ", 4 identity, 5 br, 6 x-gzip, 7 "".
    plain = [
        (fixtures / "intake" / "v2" / "minimal.ndjson").read_bytes(),
        (fixtures / "intake" / "v2" / "errors.ndjson").read_bytes()[:3000],
        b'{"metadata":{}}\n\n\r\n{"span":{}}',
        b"",
        b"x" * 300 + b"\n" + b"y",
    ]
    for i, body in enumerate(plain):
        gz = gzip.compress(body, mtime=0)
        zl = zlib.compress(body)
        frame = [0, 1, 7, 255][i % 4]
        write("body_framing", bytes([0, frame]) + body, written)
        write("body_framing", bytes([0, frame]) + gz, written)
        write("body_framing", bytes([1, frame]) + gz, written)
        write("body_framing", bytes([2, frame]) + zl, written)
        write("body_framing", bytes([0, frame]) + zl, written)
        write("body_framing", bytes([3, 0]) + gz, written)
        write("body_framing", bytes([5, 3]) + zl, written)
    # Two gzip members, a truncated stream, a bomb-ish stream, the wrong header.
    a, b = plain[0], plain[2]
    write("body_framing", bytes([1, 4]) + gzip.compress(a, mtime=0) + gzip.compress(b, mtime=0), written)
    write("body_framing", bytes([1, 0]) + gzip.compress(a, mtime=0)[:-9], written)
    write("body_framing", bytes([0, 16]) + zlib.compress(b"\n" * 200_000 + b"{}" * 1000, 9), written)
    write("body_framing", bytes([1, 0]) + plain[2], written)
    write("body_framing", bytes([2, 0]) + plain[2], written)
    write("body_framing", bytes([0, 0, 0x1F]), written)
    write("body_framing", bytes([0, 0, 0x78]), written)


TOKEN = "fuzz-secret-token-0123456789abcdef"  # ROUTER_TOKEN in src/lib.rs


def request(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost:8200\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def router_seeds(fixtures: Path, written: dict) -> None:
    minimal = (fixtures / "intake" / "v2" / "minimal.ndjson").read_bytes()
    rum = (fixtures / "intake" / "rumv3" / "rum_errors.ndjson").read_bytes()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    nd = {"Content-Type": "application/x-ndjson"}
    origin = {"Origin": "https://www.shop.example.com"}
    reqs = [
        request("GET", "/", {}),
        request("GET", "/", auth),
        request("HEAD", "/", {"Accept": "application/json"}),
        request("GET", "/nope", {}),
        request("POST", "/intake/v2/events", {**auth, **nd}, minimal),
        request("POST", "/intake/v2/events?verbose", {**auth, **nd, "Accept": "application/json"}, minimal),
        request("POST", "/intake/v2/events", {**auth, **nd, "Content-Encoding": "gzip"}, gzip.compress(minimal, mtime=0)),
        request("POST", "/intake/v2/events", {**nd}, minimal),
        request("POST", "/intake/v2/events", {"Authorization": "Bearer wrong", **nd}, minimal),
        request("POST", "/intake/v2/events", {"Authorization": "ApiKey Zm9vOmJhcg==", **nd}, minimal),
        request("GET", "/intake/v2/events", auth),
        request("POST", "/intake/v3/rum/events", {**origin, **nd, "User-Agent": "Mozilla/5.0"}, rum),
        request("POST", "/intake/v2/rum/events", {**origin, **nd, "X-Forwarded-For": "198.51.100.7, 10.0.0.1"}, minimal),
        request("OPTIONS", "/intake/v3/rum/events", {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type, X-Shop-Session"}),
        request("POST", "/intake/v3/rum/events", {"Origin": "https://evil.example.org", **nd}, rum),
        request("GET", "/config/v1/agents?service.name=shop-frontend&service.environment=prod", auth),
        request("POST", "/config/v1/agents", {**auth, "Content-Type": "application/json"}, b'{"service":{"name":"shop-frontend","environment":"prod"},"etag":"abc"}'),
        request("GET", "/config/v1/rum/agents?service.name=shop-frontend", {**origin, "If-None-Match": '"abc"'}),
        request("GET", "/metrics", auth),
        request("GET", "/", {"X-Forwarded-For": "203.0.113.1", "X-Real-Ip": "[::1]:80", "Forwarded": 'for="[2001:db8::1]:443";proto=https'}),
        request("POST", "/intake/v2/events", {**auth, **nd, "Transfer-Encoding": "chunked"}, b"")
        .replace(b"Content-Length: 0\r\n", b"")
        + b"10\r\n" + minimal[:16] + b"\r\n0\r\n\r\n",
        request("GET", "/", {"Connection": "keep-alive"}) + request("GET", "/", {"Connection": "close"}),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /\r\n\r\n",
    ]
    for i, r in enumerate(reqs):
        # First byte: the peer (0 loopback, a trusted proxy; 1 public; 2 denied range; 3 IPv6).
        write("router", bytes([i % 4]) + r, written)


def dict_entry(word: str) -> str:
    out = ""
    for b in word.encode():
        out += chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}"
    return f'"{out}"'


def schema_keys(paths) -> set:
    keys = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "properties" and isinstance(v, dict):
                    keys.update(v.keys())
                if k == "enum" and isinstance(v, list):
                    keys.update(x for x in v if isinstance(x, str))
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for path in paths:
        try:
            walk(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return keys


RULE_WORDS = [
    "==", "!=", " and ", " or ", "not ", " in ", " matches ", "(", ")", "[", "]", "route",
    "identity", "source", "method", "path", "role", "header.", "client_cert.subject",
    "secret_token", "api_key", "anonymous", "intake", "config", "root", "metrics", "ms", "s",
    "m", "h", "d", "B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "/", "-", ":", "::", "*", "?",
    "event:write", "config_agent:read", "monitoring:read", "sourcemap:write",
]

TOML_WORDS = ["[[", "]]", " = ", '"""', "'''", "\n", "env:", "file:", "unix:", "{", "}", ","]

JSON_WORDS = [
    '{"', '":', '":{', '":"', '":[', "null", "true", "false", "1e400", "-0", "\\u0000",
    '{"metadata":', '{"transaction":', '{"span":', '{"error":', '{"metricset":', '{"log":',
    '{"m":', '{"x":', '{"y":', '{"e":', '{"me":',
]

HTTP_WORDS = [
    "GET ", "POST ", "OPTIONS ", "HEAD ", " HTTP/1.1\r\n", "\r\n", "\r\n\r\n", ": ",
    "/intake/v2/events", "/intake/v2/rum/events", "/intake/v3/rum/events", "/config/v1/agents",
    "/config/v1/rum/agents", "/metrics", "?verbose", "Host", "Content-Length", "Content-Type",
    "Content-Encoding", "Transfer-Encoding", "chunked", "gzip", "deflate", "Authorization",
    "Bearer ", "ApiKey ", "Origin", "Access-Control-Request-Method", "Accept",
    "application/json", "application/x-ndjson", "X-Forwarded-For", "X-Real-Ip", "Forwarded",
    "for=", "User-Agent", "If-None-Match", "Connection", "close", "keep-alive", "Expect",
    "100-continue", "Upgrade", "h2c", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "https://www.shop.example.com", "fuzz-secret-token-0123456789abcdef", "service.name=",
]


def dictionaries() -> None:
    """AFL dictionaries (-x) in fuzz/dict/, from the project's schemas (committed)."""
    policy = sorted(schema_keys([ROOT / "schemas" / "apmgate-policy.schema.json"]))
    intake = sorted(schema_keys(sorted((ROOT / "schemas" / "intake").rglob("*.json"))))
    sets = {
        "policy_compile": policy + TOML_WORDS + RULE_WORDS,
        "rule_grammar": RULE_WORDS,
        "intake_v2": intake + JSON_WORDS,
        "intake_rumv3": intake + JSON_WORDS,
        "router": HTTP_WORDS,
    }
    out = FUZZ / "dict"
    out.mkdir(exist_ok=True)
    for target, words in sets.items():
        seen, lines = set(), []
        for w in words:
            if w and w not in seen and len(w.encode()) <= 128:
                seen.add(w)
                lines.append(dict_entry(w))
        (out / f"{target}.dict").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=str(ROOT.parent / "shared" / "fixtures"))
    args = ap.parse_args()
    fixtures = Path(args.fixtures)
    written: dict = {}
    for path in policies():
        write("policy_compile", path.read_bytes(), written)
    grammar_seeds(written)
    intake_seeds(fixtures, written)
    body_seeds(fixtures, written)
    router_seeds(fixtures, written)
    dictionaries()
    for target, n in sorted(written.items()):
        print(f"{target}: {n} seeds")


if __name__ == "__main__":
    main()
