# Helpers the benchmark scripts share (sourced, not run).

# wait_port PORT: waits until 127.0.0.1:PORT accepts connections (10 s), or fails the script.
wait_port() {
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done
    echo "port $1 never opened" >&2
    exit 1
}

# h2load_events EVENTS_PER_REQUEST: reads h2load's report on stdin and prints events/s (its
# req/s times the events of a request), or 0 when the run did not finish or a request failed.
h2load_events() {
    python3 -c "import re,sys; t=sys.stdin.read(); m=re.search(r'finished in [^,]+, ([0-9.]+) req/s', t); f=re.search(r'([0-9]+) failed', t); print(round(float(m.group(1))*$1) if m and f and f.group(1)=='0' else 0)"
}
