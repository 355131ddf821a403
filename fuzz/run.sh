#!/usr/bin/env bash
# Fuzzes apmgate with AFL++ (cargo-afl), on the stable toolchain.
#
#   fuzz/run.sh TARGET SECONDS    build, fuzz TARGET for SECONDS, minimize its queue into
#                                 corpus/TARGET, print the figures
#   fuzz/run.sh all SECONDS       every target in turn, SECONDS each
#   fuzz/run.sh cmin TARGET       only minimize corpus/TARGET (with out/TARGET's queue, if any)
#   fuzz/run.sh replay            the replay test (cargo test), no fuzzer
#
# Targets: policy_compile rule_grammar intake_v2 intake_rumv3 body_framing router.
# Everything runs under `nice -n 19`. Crashes and hangs found are copied to
# crashes/TARGET/ (replayed by tests/replay.rs: look at them, minimize with
# `cargo afl tmin`, and report them). AFL's working directory is out/TARGET (not committed).
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FIXTURES (default ../shared/fixtures,
# for the seeds), AFL_TIMEOUT_MS (per execution, default 2000), NO_BUILD=1 (fuzz the binaries
# already built, e.g. to run several targets at once from one build).
set -euo pipefail

FUZZ="$(cd "$(dirname "$0")" && pwd)"
cd "$FUZZ"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FUZZ/target}"
TARGETS=(policy_compile rule_grammar intake_v2 intake_rumv3 body_framing router)
NICE=(nice -n 19)

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

ensure_afl() {
    if ! cargo afl --version >/dev/null 2>&1; then
        echo "== installing cargo-afl (builds AFL++ from the sources it ships)"
        "${NICE[@]}" cargo install cargo-afl --locked
    fi
    # cargo-afl builds AFL++ when it is installed; this is only needed when that was skipped.
    if [ -z "$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -name afl-fuzz -type f 2>/dev/null | head -n 1)" ]; then
        "${NICE[@]}" cargo afl config --build
    fi
}

build() {
    echo "== cargo afl build --release --features afl"
    "${NICE[@]}" cargo afl build --release --features afl --locked
}

seeds() {
    if [ ! -d "$FUZZ/seeds" ]; then
        local fixtures="${FIXTURES:-$FUZZ/../../shared/fixtures}"
        if [ -d "$fixtures" ]; then
            python3 "$FUZZ/make_seeds.py" --fixtures "$fixtures" >/dev/null
        else
            echo "(no fixtures at $fixtures: fuzzing from corpus/ alone)"
        fi
    fi
}

stat() { # stat FILE KEY
    awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"
}

# Minimizes corpus/T (plus the fuzzer's queue) into corpus/T: inputs over 32 KiB are left out,
# then at most CORPUS_MAX_FILES (64) inputs and CORPUS_MAX_BYTES (256 KiB) are kept, chosen for
# coverage (trim_corpus.py).
cmin() {
    local t="$1" bin="$CARGO_TARGET_DIR/release/$1"
    local pool="$FUZZ/out/$t/pool" min="$FUZZ/out/$t/min"
    rm -rf "$pool" "$min"
    mkdir -p "$pool" "$FUZZ/corpus/$t"
    find "$FUZZ/corpus/$t" "$FUZZ/out/$t/default/queue" -maxdepth 1 -type f -size -32k \
        ! -name '.*' ! -name 'README*' -exec cp -t "$pool" {} + 2>/dev/null || true
    # cp -t keeps names: the queue's names (id:...,op:...) are renamed by content below.
    AFL_NO_AFFINITY=1 "${NICE[@]}" cargo afl cmin -T 1 -t 5000 \
        -i "$pool" -o "$min" -- "$bin" >"$FUZZ/out/$t/cmin.log" 2>&1 || {
        echo "cmin failed for $t: see out/$t/cmin.log"
        return 1
    }
    # afl-cmin (4.40c, python variant) found "0 unique tuples" here once: fall back to the pool.
    if [ -z "$(ls -A "$min" 2>/dev/null)" ]; then rm -rf "$min" && cp -r "$pool" "$min"; fi
    rm -f "$FUZZ/corpus/$t"/*
    local f
    for f in "$min"/*; do
        cp "$f" "$FUZZ/corpus/$t/$(sha1sum "$f" | cut -c1-16)"
    done
    # Then a coverage-greedy subset within the budget of a committed corpus.
    local maps="$FUZZ/out/$t/maps"
    rm -rf "$maps"
    AFL_NO_AFFINITY=1 "${NICE[@]}" cargo afl showmap -q -t 5000 -i "$FUZZ/corpus/$t" -o "$maps" \
        -- "$bin" >>"$FUZZ/out/$t/cmin.log" 2>&1 || true
    python3 "$FUZZ/trim_corpus.py" "$FUZZ/corpus/$t" "$maps" \
        "${CORPUS_MAX_FILES:-64}" "${CORPUS_MAX_BYTES:-262144}"
    echo "corpus/$t: $(find "$FUZZ/corpus/$t" -type f | wc -l) files, $(du -sh --apparent-size "$FUZZ/corpus/$t" | cut -f1)"
}

fuzz() { # fuzz TARGET SECONDS
    local t="$1" secs="$2"
    local in="$FUZZ/out/$t/in" out="$FUZZ/out/$t"
    rm -rf "$in" "$out/default"
    mkdir -p "$in" "$FUZZ/corpus/$t" "$FUZZ/crashes/$t"
    find "$FUZZ/corpus/$t" "$FUZZ/seeds/$t" -maxdepth 1 -type f ! -name '.*' ! -name 'README*' \
        -exec cp -t "$in" {} + 2>/dev/null || true
    if [ -z "$(ls -A "$in")" ]; then printf 'x' >"$in/empty"; fi
    local dict=()
    if [ -f "$FUZZ/dict/$t.dict" ]; then dict=(-x "$FUZZ/dict/$t.dict"); fi
    echo "== fuzzing $t for ${secs}s ($(ls "$in" | wc -l) inputs)"
    # AFL_NO_AFFINITY: the cores are shared; AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES: core_pattern
    # may pipe to a handler on CI machines; AFL_SKIP_CPUFREQ: no governor to set in containers.
    AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_FAST_CAL=1 \
        "${NICE[@]}" cargo afl fuzz -V "$secs" -t "${AFL_TIMEOUT_MS:-2000}+" "${dict[@]}" \
        -i "$in" -o "$out" -- "$CARGO_TARGET_DIR/release/$t" >"$out/afl.log" 2>&1 || {
        echo "afl-fuzz failed for $t: tail of out/$t/afl.log:"
        tail -n 30 "$out/afl.log"
        return 1
    }
    local stats="$out/default/fuzzer_stats" f new=0
    for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
        [ -f "$f" ] || continue
        local kind=crash
        case "$f" in */hangs/*) kind=hang ;; esac
        cp "$f" "$FUZZ/crashes/$t/$kind-$(sha1sum "$f" | cut -c1-16)"
        new=$((new + 1))
    done
    printf '%s: %s execs in %ss (%s exec/s), %s crashes, %s hangs, corpus %s, edges %s\n' \
        "$t" "$(stat "$stats" execs_done)" "$(stat "$stats" run_time)" \
        "$(stat "$stats" execs_per_sec)" "$(stat "$stats" saved_crashes)" \
        "$(stat "$stats" saved_hangs)" "$(stat "$stats" corpus_count)" \
        "$(stat "$stats" bitmap_cvg)" | tee -a "$FUZZ/out/summary.log"
    if [ "$new" -gt 0 ]; then
        echo "   $new finding(s) copied to crashes/$t/ (minimize: cargo afl tmin -i IN -o OUT -- $CARGO_TARGET_DIR/release/$t)"
    fi
    cmin "$t"
}

[ $# -ge 1 ] || usage
case "$1" in
replay)
    exec "${NICE[@]}" cargo test --locked --manifest-path "$FUZZ/Cargo.toml"
    ;;
cmin)
    [ $# -eq 2 ] || usage
    ensure_afl
    build
    cmin "$2"
    ;;
all)
    [ $# -eq 2 ] || usage
    ensure_afl
    seeds
    build
    for t in "${TARGETS[@]}"; do fuzz "$t" "$2"; done
    ;;
*)
    [ $# -eq 2 ] || usage
    [[ " ${TARGETS[*]} " == *" $1 "* ]] || {
        echo "unknown target $1 (one of: ${TARGETS[*]})"
        exit 2
    }
    ensure_afl
    seeds
    [ -n "${NO_BUILD:-}" ] || build
    fuzz "$1" "$2"
    ;;
esac
