#!/usr/bin/env bash
# Issue 15: agent-payload throughput into the Elasticsearch output (the stand-in of
# `apmgate-load es-standin`) without a spool, with `[spool] fsync = "batch"` and with
# `fsync = "interval"`, in one run, alternating, with the project's load client and, when
# installed, Debian's h2load (an independent client). Reports events/s, the ratio to the run
# without a spool, fsyncs per second (the gateway's `apmgate_spool_fsyncs_total`) and, with the
# project's client, p99 request latency.
#
#   benches/spool.sh [SECONDS=10] [ROUNDS=2] [PROTOCOLS="h1"]
#
# PAYLOAD (default: the captured Python agent payload), BIN (default: target/release, the
# folder of `apmgate` and `apmgate-load`) and PORT_SHIFT (default 0: added to every port, 18200,
# 18201, 18299 and 19200, so that a run does not meet another one on a shared machine) can be set
# in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
PROTOCOLS=${3:-h1}
PAYLOAD=${PAYLOAD:-../shared/fixtures/agents/python-agent.ndjson}
BIN=${BIN:-target/release}
SHIFT=${PORT_SHIFT:-0}
P_IN=$((18200 + SHIFT)) P_TLS=$((18201 + SHIFT)) P_MET=$((18299 + SHIFT)) P_ES=$((19200 + SHIFT))
DATA=benches/data
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
mkdir -p "$DATA"
[ -f $DATA/certs/server.crt ] || $BIN/apmgate certs dev $DATA/certs >/dev/null
for mode in memory batch interval; do
    { sed -e 's|"data/certs/|"certs/|' -e "s|127.0.0.1:18200|127.0.0.1:$P_IN|" \
          -e "s|127.0.0.1:18201|127.0.0.1:$P_TLS|" benches/load.toml
      printf '\n[[listener]]\nname = "metrics"\nbind = "127.0.0.1:%s"\nroutes = ["metrics"]\n' $P_MET
      printf '\n[aggregation]\nenabled = false\n'
      printf '\n[output.elasticsearch]\nhosts = ["http://127.0.0.1:%s"]\n' $P_ES
      case $mode in
          batch) printf '\n[spool]\npath = "spool-bench"\nfsync = "batch"\n' ;;
          interval) printf '\n[spool]\npath = "spool-bench"\nfsync = "interval"\n' ;;
      esac; } >$DATA/spool-$mode.toml
done
gzip -c "$PAYLOAD" >$DATA/spool-payload.ndjson.gz
EVENTS=$(($(grep -c . "$PAYLOAD") - 1))

. benches/common.sh
fsyncs() { curl -s -H "Authorization: Bearer $LOAD_TOKEN" http://127.0.0.1:$P_MET/metrics |
    awk '$1 == "apmgate_spool_fsyncs_total" { print $2; f = 1 } END { if (!f) print 0 }'; }

$BIN/apmgate-load es-standin --listen 127.0.0.1:$P_ES >$DATA/spool-standin.log 2>&1 &
STANDIN=$!
trap 'kill $STANDIN 2>/dev/null || true' EXIT
wait_port $P_ES

run() { # run MODE PROTOCOL CLIENT: prints "MODE PROTOCOL CLIENT events/s fsyncs/s p99_ms"
    rm -rf $DATA/spool-bench
    $BIN/apmgate run $DATA/spool-$1.toml 2>$DATA/spool-gateway.log &
    local gw=$!
    wait_port $P_IN
    wait_port $P_MET
    local url=http://127.0.0.1:$P_IN/intake/v2/events eps p99="-" before after
    before=$(fsyncs)
    if [ "$3" = apmgate-load ]; then
        read -r eps p99 < <($BIN/apmgate-load agents --url "$url" --payload "$PAYLOAD" --protocol "$2" --gzip \
            --agents 32 --events 0 --seconds "$SECS" --pid "$gw" |
            python3 -c "import json,sys; r=json.load(sys.stdin); print(round(r['events_per_second']), r['latency_ms']['p99'])")
    else
        local flag=""; [ "$2" = h1 ] && flag=--h1
        eps=$(h2load $flag -c 32 -D "$SECS" -d $DATA/spool-payload.ndjson.gz \
            -H 'Content-Encoding: gzip' -H 'Content-Type: application/x-ndjson' \
            -H "Authorization: Bearer $LOAD_TOKEN" "$url" |
            h2load_events $EVENTS)
    fi
    after=$(fsyncs)
    echo "$1 $2 $3 $eps $(( (after - before) / SECS )) $p99"
    kill -TERM $gw
    wait $gw 2>/dev/null || true
}

CLIENTS=apmgate-load
command -v h2load >/dev/null && CLIENTS="apmgate-load h2load"
results=$(mktemp)
for client in $CLIENTS; do
    for proto in $PROTOCOLS; do
        for _ in $(seq "$ROUNDS"); do
            for mode in memory batch interval; do
                run $mode "$proto" "$client" | tee -a "$results"
            done
        done
    done
done
python3 - "$results" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, proto, client, eps, fsyncs, p99 = line.split()
    runs[(client, proto, mode)].append((float(eps), int(fsyncs), p99))
for client, proto in dict.fromkeys((c, p) for c, p, _ in runs):
    mean = lambda m: sum(r[0] for r in runs[(client, proto, m)]) / len(runs[(client, proto, m)])
    base = mean("memory")
    for mode in ("memory", "batch", "interval"):
        rs = runs[(client, proto, mode)]
        fs = sum(r[1] for r in rs) / len(rs)
        p99 = "/".join(r[2] for r in rs)
        print(f"{client} {proto} {mode}: {mean(mode):,.0f} events/s, ratio {mean(mode) / base:.2f}, {fs:,.0f} fsyncs/s, p99 ms {p99}")
PY
