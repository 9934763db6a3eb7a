# Sourced by the bench scripts that start a mock Intercom in the background (`MOCK_PID`): it
# is stopped when the script exits, however it exits. They set BIN, PORT, URL, LATENCY, LIMIT,
# WORK and log().

MOCK_PID=
stop_mock() {
    if [[ -n $MOCK_PID ]]; then
        kill "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true # its status is the signal's: not an error here
    fi
    MOCK_PID=
}
trap stop_mock EXIT

# start_seeded_mock SEED_FILE [MOCK_FLAG ...]: a fresh mock on $PORT with Intercom's limit ($LIMIT per
# 10 s) and latency ($LATENCY ms), seeded from SEED_FILE, its log in $WORK/mock.log; returns
# once it answers on $URL.
start_seeded_mock() {
    local seed=$1
    shift
    stop_mock
    "$BIN" mock --mock-port "$PORT" --latency-ms "$LATENCY" --rate-limit "$LIMIT" \
        --seed-file "$seed" "$@" >"$WORK/mock.log" 2>&1 &
    MOCK_PID=$!
    for _ in $(seq 100); do curl -sf "$URL/_mock/stats" >/dev/null && return; sleep 0.1; done
    log "the mock did not start (see $WORK/mock.log)"
    exit 1
}
