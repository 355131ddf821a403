#!/usr/bin/env bash
# Issue 18: apmgate's events/s with agent-sized requests as ratios, in one run on this machine,
# to serde_json's one-core parse rate of the same payload (`apmgate-load parse`) and, for
# HTTP/1.1, to nginx answering the same requests with 202 (the transport's ceiling). Each
# payload (default: the captured Python and Node agent payloads, gzipped) goes to apmgate with
# the discard output over HTTP/1.1, h2c, HTTP/2 with TLS and HTTP/3 with the project's client,
# and over HTTP/1.1, h2c and HTTP/2 with TLS with Debian's h2load (an independent client);
# nginx gets the same HTTP/1.1 requests from both clients. 32 connections each.
#
#   benches/ratios.sh [SECONDS=10] [ROUNDS=1]
#
# PAYLOADS (space-separated paths), BIN (default: target/release) and OUTPUT (a policy
# section, default `[output.discard]`) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-1}
PAYLOADS=${PAYLOADS:-"../shared/fixtures/agents/python-agent.ndjson ../shared/fixtures/agents/node-agent.ndjson"}
BIN=${BIN:-target/release}
OUTPUT=${OUTPUT:-"[output.discard]"}
DATA=benches/data
CONNS=32
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
mkdir -p "$DATA/nginx/tmp"
[ -f $DATA/certs/server.crt ] || $BIN/apmgate certs dev $DATA/certs >/dev/null
{ sed -e 's|"data/certs/|"certs/|' benches/load.toml; printf '\n[aggregation]\nenabled = false\n\n%s\n' "$OUTPUT"; } >$DATA/ratios.toml
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
. benches/common.sh

$BIN/apmgate run $DATA/ratios.toml 2>$DATA/ratios-gateway.log &
GW=$!; PIDS+=($GW)
nginx -p "$PWD/$DATA/nginx" -c "$PWD/benches/nginx.conf" 2>$DATA/nginx/error.log &
NGINX=$!; PIDS+=($NGINX)
wait_port 18200; wait_port 18201; wait_port 18400

results=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  for payload in $PAYLOADS; do
    name=$(basename "$payload" .ndjson)
    events=$(($(grep -c . "$payload") - 1))
    gzip -c "$payload" >$DATA/ratios-$name.ndjson.gz
    rate=$($BIN/apmgate-load parse --payload "$payload" --seconds "$SECS" |
      python3 -c "import json,sys; print(round(json.load(sys.stdin)['events_per_second']))")
    echo "$name parse serde_json $rate" | tee -a "$results"
    for proto in h1 h2c h2 h3; do
      case $proto in h1|h2c) url=http://127.0.0.1:18200/intake/v2/events ;; *) url=https://localhost:18201/intake/v2/events ;; esac
      eps=$($BIN/apmgate-load agents --url "$url" --payload "$payload" --protocol $proto --gzip \
        --ca $DATA/certs/ca.crt --agents $CONNS --events 0 --seconds "$SECS" |
        python3 -c "import json,sys; print(round(json.load(sys.stdin)['events_per_second']))")
      echo "$name $proto apmgate-load $eps" | tee -a "$results"
    done
    eps=$($BIN/apmgate-load agents --url http://127.0.0.1:18400/intake/v2/events --payload "$payload" \
      --protocol h1 --gzip --agents $CONNS --events 0 --seconds "$SECS" |
      python3 -c "import json,sys; print(round(json.load(sys.stdin)['events_per_second']))")
    echo "$name nginx-h1 apmgate-load $eps" | tee -a "$results"
    if command -v h2load >/dev/null; then
      for target in h1 h2c h2 nginx-h1; do
        case $target in
          h1) flag=--h1 url=http://127.0.0.1:18200/intake/v2/events ;;
          h2c) flag= url=http://127.0.0.1:18200/intake/v2/events ;;
          h2) flag= url=https://127.0.0.1:18201/intake/v2/events ;;
          nginx-h1) flag=--h1 url=http://127.0.0.1:18400/intake/v2/events ;;
        esac
        eps=$(h2load $flag -c $CONNS -D "$SECS" -d $DATA/ratios-$name.ndjson.gz \
          -H 'Content-Encoding: gzip' -H 'Content-Type: application/x-ndjson' \
          -H "Authorization: Bearer $LOAD_TOKEN" "$url" |
          h2load_events "$events")
        echo "$name $target h2load $eps" | tee -a "$results"
      done
    fi
  done
done
python3 - "$results" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    payload, target, client, eps = line.split()
    runs[(payload, target, client)].append(float(eps))
mean = {k: sum(v) / len(v) for k, v in runs.items()}
print()
print("| payload | client | protocol | events/s | / serde_json parse | / nginx (h1) |")
print("|---|---|---|---:|---:|---:|")
for (payload, target, client), eps in mean.items():
    if client == "serde_json" or target == "nginx-h1":
        continue
    parse = mean[(payload, "parse", "serde_json")]
    nginx = mean.get((payload, "nginx-h1", client))
    vs_nginx = f"{eps / nginx:.2f}" if nginx and target == "h1" else ""
    print(f"| {payload} | {client} | {target} | {eps:,.0f} | {eps / parse:.2f} | {vs_nginx} |")
for (payload, target, client), eps in mean.items():
    if client == "serde_json":
        print(f"| {payload} | serde_json, one core | parse | {eps:,.0f} | 1.00 | |")
    if target == "nginx-h1":
        print(f"| {payload} | {client} | nginx, h1 | {eps:,.0f} | {eps / mean[(payload, 'parse', 'serde_json')]:.2f} | 1.00 |")
PY
