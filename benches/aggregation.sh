#!/usr/bin/env bash
# Issue 13: agent-payload throughput with aggregation on (the default) against the same build
# with `[aggregation] enabled = false`, in one run, alternating, with the project's load client
# and, when installed, Debian's h2load (an independent client). Discard output, benches/load.toml.
#
#   benches/aggregation.sh [SECONDS=10] [ROUNDS=2] [PROTOCOLS="h1 h2c"]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
PROTOCOLS=${3:-h1 h2c}
PAYLOAD=${PAYLOAD:-../shared/fixtures/agents/python-agent.ndjson}
BIN=target/release
DATA=benches/data
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
mkdir -p "$DATA"
[ -f $DATA/certs/server.crt ] || $BIN/apmgate certs dev $DATA/certs >/dev/null
for mode in on off; do
    { sed -e 's|"data/certs/|"certs/|' benches/load.toml; printf '\n[output.discard]\n'
      [ $mode = off ] && printf '\n[aggregation]\nenabled = false\n'; } >$DATA/aggregation-$mode.toml
done
gzip -c "$PAYLOAD" >$DATA/aggregation-payload.ndjson.gz
EVENTS=$(($(grep -c . "$PAYLOAD") - 1))

. benches/common.sh

run() { # run MODE PROTOCOL CLIENT: prints "MODE PROTOCOL CLIENT events/s"
    $BIN/apmgate run $DATA/aggregation-$1.toml 2>$DATA/aggregation-gateway.log &
    local gw=$!
    wait_port 18200
    local url=http://127.0.0.1:18200/intake/v2/events eps
    if [ "$3" = apmgate-load ]; then
        eps=$($BIN/apmgate-load agents --url "$url" --payload "$PAYLOAD" --protocol "$2" --gzip \
            --agents 32 --events 0 --seconds "$SECS" --pid "$gw" |
            python3 -c "import json,sys; print(round(json.load(sys.stdin)['events_per_second']))")
    else
        local flag=""; [ "$2" = h1 ] && flag=--h1
        eps=$(h2load $flag -c 32 -D "$SECS" -d $DATA/aggregation-payload.ndjson.gz \
            -H 'Content-Encoding: gzip' -H 'Content-Type: application/x-ndjson' \
            -H "Authorization: Bearer $LOAD_TOKEN" "$url" |
            h2load_events $EVENTS)
    fi
    echo "$1 $2 $3 $eps"
    kill -TERM $gw
    wait $gw 2>/dev/null || true
}

CLIENTS=apmgate-load
command -v h2load >/dev/null && CLIENTS="apmgate-load h2load"
results=$(mktemp)
for client in $CLIENTS; do
    for proto in $PROTOCOLS; do
        for _ in $(seq "$ROUNDS"); do
            run off "$proto" "$client" | tee -a "$results"
            run on "$proto" "$client" | tee -a "$results"
        done
    done
done
python3 - "$results" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, proto, client, eps = line.split()
    runs[(client, proto, mode)].append(float(eps))
for client, proto in dict.fromkeys((c, p) for c, p, _ in runs):
    off = sum(runs[(client, proto, "off")]) / len(runs[(client, proto, "off")])
    on = sum(runs[(client, proto, "on")]) / len(runs[(client, proto, "on")])
    print(f"{client} {proto}: off {off:,.0f} events/s, on {on:,.0f} events/s, on/off {on / off:.2f}")
PY
