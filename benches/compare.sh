#!/usr/bin/env bash
# Two builds of apmgate side by side, in one run, on the same machine: each protocol is measured
# ROUNDS times, alternating old and new, with the same load client (the new build's
# apmgate-load), the same policy (benches/load.toml with the discard output) and the same payload
# (default: the captured Python agent payload). Prints one line per run and the mean events/s of
# each build and their ratio per protocol.
#
#   benches/compare.sh OLD_RELEASE_DIR [SECONDS=10] [ROUNDS=2] [PROTOCOLS="h1 h2c"]
#
# OLD_RELEASE_DIR holds the old build's `apmgate` (e.g. a worktree's target/release, built with
# `cargo build --release --bins`); NEW (default target/release) the new one's. NEW_POLICY_EXTRA is appended to the new build's policy only:
# for work the old build did not do, e.g. `NEW_POLICY_EXTRA=$'[aggregation]\nenabled = false'`
# against a build from before aggregated metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1
SECS=${2:-10}
ROUNDS=${3:-2}
PROTOCOLS=${4:-h1 h2c}
PAYLOAD=${PAYLOAD:-../shared/fixtures/agents/python-agent.ndjson}
NEW=${NEW:-target/release}
DATA=benches/data
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
mkdir -p "$DATA"
[ -f $DATA/certs/server.crt ] || $NEW/apmgate certs dev $DATA/certs >/dev/null
{ sed -e 's|"data/certs/|"certs/|' benches/load.toml; printf '\n[output.discard]\n'; } >$DATA/compare-old.toml
{ cat $DATA/compare-old.toml; printf '\n%s\n' "${NEW_POLICY_EXTRA:-}"; } >$DATA/compare-new.toml

. benches/common.sh

run() { # run LABEL BIN_DIR PROTOCOL: one measured run; prints "LABEL PROTOCOL events/s"
    "$2/apmgate" run $DATA/compare-$1.toml 2>$DATA/compare-gateway.log &
    local gw=$!
    wait_port 18200
    wait_port 18201
    local url=http://127.0.0.1:18200/intake/v2/events
    $NEW/apmgate-load agents --url "$url" --payload "$PAYLOAD" --protocol "$3" --gzip \
        --ca $DATA/certs/ca.crt --agents 32 --events 0 --seconds "$SECS" --pid "$gw" |
        python3 -c "import json,sys; r=json.load(sys.stdin); print('$1', '$3', round(r['events_per_second']))"
    kill -TERM $gw
    wait $gw 2>/dev/null || true
}

results=$(mktemp)
for proto in $PROTOCOLS; do
    for _ in $(seq "$ROUNDS"); do
        run old "$OLD" "$proto" | tee -a "$results"
        run new "$NEW" "$proto" | tee -a "$results"
    done
done
python3 - "$results" <<'EOF'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, proto, eps = line.split()
    runs[(proto, label)].append(float(eps))
for proto in dict.fromkeys(p for p, _ in runs):
    old = sum(runs[(proto, "old")]) / len(runs[(proto, "old")])
    new = sum(runs[(proto, "new")]) / len(runs[(proto, "new")])
    print(f"{proto}: old {old:,.0f} events/s, new {new:,.0f} events/s, new/old {new / old:.2f}")
EOF
