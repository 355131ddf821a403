#!/usr/bin/env bash
# Issue 14: OTLP intake throughput next to the APM intake's, in one run on one gateway (the
# discard output, aggregated metrics on as by default): the APM intake v2 with an agent payload
# (default: the captured Python agent's, 4 events a request, gzipped), OTLP/HTTP (protobuf,
# gzipped) and OTLP/gRPC (gzip message compression) with a trace of as many spans a request
# (`apmgate-load agents --otlp`), over HTTP/1.1 and h2c (gRPC: h2c), alternating, with the
# project's client and, when installed, Debian's h2load (an independent client). Prints events
# (spans) per second and the ratio of each OTLP run to the APM intake over the same protocol.
#
#   benches/otlp.sh [SECONDS=10] [ROUNDS=2]
#
# PAYLOAD and BIN (default: target/release) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
PAYLOAD=${PAYLOAD:-../shared/fixtures/agents/python-agent.ndjson}
BIN=${BIN:-target/release}
DATA=benches/data
AGENTS=32
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
mkdir -p "$DATA"
[ -f $DATA/certs/server.crt ] || $BIN/apmgate certs dev $DATA/certs >/dev/null
{ sed -e 's|"data/certs/|"certs/|' benches/load.toml
  printf '\n[output.discard]\n'; } >$DATA/otlp.toml
gzip -c "$PAYLOAD" >$DATA/otlp-intake.ndjson.gz
$BIN/apmgate-load otlp-body --payload "$PAYLOAD" --otlp http --gzip --out $DATA/otlp-http.bin >/dev/null
$BIN/apmgate-load otlp-body --payload "$PAYLOAD" --otlp grpc --gzip --out $DATA/otlp-grpc.bin >/dev/null
EVENTS=$(($(grep -c . "$PAYLOAD") - 1))
BASE=http://127.0.0.1:18200

. benches/common.sh

$BIN/apmgate run $DATA/otlp.toml 2>$DATA/otlp-gateway.log &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
wait_port 18200

h2load_eps() { # h2load_eps PROTO URL BODY HEADERS...: events/s from h2load's req/s
    local proto=$1 url=$2 body=$3; shift 3
    local flag=""; [ "$proto" = h1 ] && flag=--h1
    local args=()
    for h in "$@"; do args+=(-H "$h"); done
    h2load $flag -c $AGENTS -D "$SECS" -d "$body" "${args[@]}" \
        -H "Authorization: Bearer $LOAD_TOKEN" "$url" |
        h2load_events $EVENTS
}

run() { # run KIND PROTO CLIENT: prints "KIND PROTO CLIENT events/s"
    local kind=$1 proto=$2 client=$3 eps
    if [ "$client" = apmgate-load ]; then
        local path=/intake/v2/events otlp=()
        case $kind in
            otlp-http) path=/ otlp=(--otlp http) ;;
            otlp-grpc) path=/ otlp=(--otlp grpc) ;;
        esac
        eps=$($BIN/apmgate-load agents --url "$BASE$path" --payload "$PAYLOAD" --protocol "$proto" --gzip \
            "${otlp[@]}" --agents $AGENTS --events 0 --seconds "$SECS" --pid "$GW" |
            python3 -c "import json,sys; r=json.load(sys.stdin); print(round(r['events_per_second']))")
    else
        case $kind in
            intake) eps=$(h2load_eps "$proto" "$BASE/intake/v2/events" $DATA/otlp-intake.ndjson.gz \
                'Content-Type: application/x-ndjson' 'Content-Encoding: gzip') ;;
            otlp-http) eps=$(h2load_eps "$proto" "$BASE/v1/traces" $DATA/otlp-http.bin \
                'Content-Type: application/x-protobuf' 'Content-Encoding: gzip') ;;
            otlp-grpc) eps=$(h2load_eps "$proto" \
                "$BASE/opentelemetry.proto.collector.trace.v1.TraceService/Export" $DATA/otlp-grpc.bin \
                'Content-Type: application/grpc' 'TE: trailers' 'grpc-encoding: gzip') ;;
        esac
    fi
    echo "$kind $proto $client $eps"
}

CLIENTS=apmgate-load
command -v h2load >/dev/null && CLIENTS="apmgate-load h2load"
results=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    for client in $CLIENTS; do
        for kp in "intake h1" "otlp-http h1" "intake h2c" "otlp-http h2c" "otlp-grpc h2c"; do
            # shellcheck disable=SC2086
            run $kp "$client" | tee -a "$results"
        done
    done
done
python3 - "$results" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, proto, client, eps = line.split()
    runs[(client, kind, proto)].append(float(eps))
mean = lambda k: sum(runs[k]) / len(runs[k])
for (client, kind, proto) in runs:
    base = mean((client, "intake", proto))
    ratio = mean((client, kind, proto)) / base if base else 0
    print(f"{client:13} {kind:10} {proto:4} {mean((client, kind, proto)):>9,.0f} events/s  ratio to intake {ratio:.2f}")
PY
