#!/usr/bin/env bash
# One run of the end-to-end measurements of BENCHMARKS.md, all on this machine, one after the
# other: apmgate with the discard output and with the Elasticsearch output (into the stand-in,
# gzip on), the ceiling server over the same protocols, serde_json's parse rate on one core,
# and the memory run with 1,000 agents. Prints one JSON report per line into
# benches/data/load-<date>.jsonl and a Markdown summary on stdout.
#
#   benches/load.sh [SECONDS] [AGENTS]      (default 10 s per run, 32 agents)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
AGENTS=${2:-32}
PAYLOAD=${PAYLOAD:-../shared/fixtures/intake/v2/heavy.ndjson}
export LOAD_TOKEN=load-token-0123456789abcdefghijklmnopqr
export APMGATE_LOAD_TOKEN=$LOAD_TOKEN
BIN=target/release
DATA=benches/data
OUT=$DATA/load-$(date -u +%Y%m%dT%H%M%SZ).jsonl
cargo build --release --bins --quiet
mkdir -p "$DATA"
[ -f $DATA/certs/server.crt ] || $BIN/apmgate certs dev $DATA/certs >/dev/null
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Waits until a TCP port accepts connections.
. benches/common.sh

# run_agents LABEL PID PROTOCOL [AGENTS]: one load run, its report tagged with LABEL.
run_agents() {
  local label=$1 pid=$2 proto=$3 agents=${4:-$AGENTS} url
  case $proto in
    h1|h2c) url=http://127.0.0.1:$PLAIN/intake/v2/events ;;
    *) url=https://localhost:$TLS/intake/v2/events ;;
  esac
  $BIN/apmgate-load agents --url "$url" --payload "$PAYLOAD" --protocol "$proto" --gzip \
    --ca $DATA/certs/ca.crt --agents "$agents" --events 0 --seconds "$SECONDS_PER_RUN" --pid "$pid" |
    python3 -c "import json,sys; r=json.load(sys.stdin); r['run']='$label'; print(json.dumps(r))" >> "$OUT"
}

# gateway OUTPUT-SECTION [DECODERS-LINE]: starts apmgate on benches/load.toml plus the output
# (and another max_concurrent_decoders line, if given); sets GW.
gateway() {
  # (The run's policy lives in benches/data: its paths are relative to that folder.)
  { sed -e "s/^max_concurrent_decoders = 128\$/${2:-max_concurrent_decoders = 128}/" \
        -e 's|"data/certs/|"certs/|' benches/load.toml
    printf '\n%s\n' "$1"; } > $DATA/load-run.toml
  $BIN/apmgate run $DATA/load-run.toml 2>$DATA/gateway.log &
  GW=$!; PIDS+=($GW); wait_port 18200; wait_port 18201
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

PLAIN=18200 TLS=18201
for output in discard elasticsearch; do
  if [ $output = elasticsearch ]; then
    $BIN/apmgate-load es-standin --listen 127.0.0.1:19200 >$DATA/standin.json 2>/dev/null &
    ES=$!; PIDS+=($ES); wait_port 19200
    gateway $'[output.elasticsearch]\nhosts = ["http://127.0.0.1:19200"]\ncompression_level = 1'
  else
    gateway '[output.discard]'
  fi
  for proto in h1 h2c h2 h3; do run_agents "apmgate/$output" $GW $proto; done
  stop $GW
  if [ $output = elasticsearch ]; then stop $ES; cat $DATA/standin.json >&2; fi
done

# The ceiling: the same protocols into a server that reads and discards the bodies.
$BIN/apmgate-load ceiling --plain 127.0.0.1:18300 --tls 127.0.0.1:18301 \
  --cert $DATA/certs/server.crt --key $DATA/certs/server.key >/dev/null 2>&1 &
CEIL=$!; PIDS+=($CEIL); wait_port 18300; wait_port 18301
PLAIN=18300 TLS=18301
for proto in h1 h2c h2 h3; do run_agents ceiling $CEIL $proto; done
stop $CEIL

# serde_json on one core, the same payload.
$BIN/apmgate-load parse --payload "$PAYLOAD" --seconds "$SECONDS_PER_RUN" |
  python3 -c "import json,sys; r=json.load(sys.stdin); r['run']='serde_json'; print(json.dumps(r))" >> "$OUT"

# Memory: 1,000 agents streaming into the discard output, with the policy's 128 decoders and
# with the automatic default.
PLAIN=18200 TLS=18201
gateway '[output.discard]'
run_agents "memory/128-decoders" $GW h1 1000
stop $GW
gateway '[output.discard]' '# max_concurrent_decoders: automatic'
run_agents "memory/automatic" $GW h1 1000
stop $GW

python3 benches/load_summary.py "$OUT"
