# Sourced by the bench scripts that start a mock Intercom in the background (`MOCK_PID`): it
# is stopped when the script exits, however it exits.

MOCK_PID=
stop_mock() {
    if [[ -n $MOCK_PID ]]; then
        kill "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true # its status is the signal's: not an error here
    fi
    MOCK_PID=
}
trap stop_mock EXIT
