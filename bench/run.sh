#!/usr/bin/env bash
# The benchmark of issue 11: measures every target with intercom-push's release binary on
# exports from `intercom-push gen`, side by side with the sqlite3 CLI, a DuckDB SQL script
# (bench/duckdb/payloads.sql) and a Polars script (bench/polars/payloads.py) on the same
# files, runs bench/push.sh for the push figures, and
# writes docs/BENCHMARKS.md with a "Targets" table on top. Every figure is min / median / max
# of BENCH_RUNS runs: wall and CPU (user + system) seconds and peak RSS. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${BENCH_RUNS:-3}
SEED=${BENCH_SEED:-1}
if [[ ${BENCH_SMALL:-0} == 1 ]]; then
    SIZES=${BENCH_SIZES:-1000}
    CSV_ACCOUNTS=${BENCH_CSV_ACCOUNTS:-1000}
    LAYOUT_ACCOUNTS=${BENCH_LAYOUT_ACCOUNTS:-1000}
    OUT=${BENCH_OUT:-$WORK/BENCHMARKS-small.md} # a smoke run never overwrites the real figures
else
    SIZES=${BENCH_SIZES:-100000 1000000}
    CSV_ACCOUNTS=${BENCH_CSV_ACCOUNTS:-1000000}
    LAYOUT_ACCOUNTS=${BENCH_LAYOUT_ACCOUNTS:-1000000}
    OUT=${BENCH_OUT:-$ROOT/docs/BENCHMARKS.md}
fi
if [[ ${BENCH_XL:-0} == 1 ]]; then
    SIZES="$SIZES 3000000"
fi
TARGET_ACCOUNTS=1000000 # the size issue 11 states its targets for
CHECK_ACCOUNTS=${BENCH_CHECK_ACCOUNTS:-1000}
DUCKDB_VERSION=${BENCH_DUCKDB_VERSION:-2.0.1}
POLARS_VERSION=${BENCH_POLARS_VERSION:-2.1.0}
MOCK_PORT=${BENCH_MOCK_PORT:-18798}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/intercom-push
VENV=$WORK/venv
RESULTS=$WORK/results.tsv # label, runs, wall min/median/max (s), peak RSS min/median/max (KiB), command, CPU min/median/max (s)
FACTS=$WORK/facts.tsv     # key, value: single figures (database sizes, API calls, the DuckDB and Polars checks)
NOTES=$WORK/notes.txt
NOTICES=$WORK/notices.txt # what was skipped, and why
SQLITE3=sqlite3           # empty when the CLI cannot be had
DUCKDB=1                  # 0 when DuckDB cannot be had
POLARS=1                  # 0 when Polars cannot be had

export INTERCOM_ACCESS_TOKEN=bench-token # for the mock and `run` against it

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

notice() {
    log "NOTICE: $*"
    printf '%s\n' "$*" >>"$NOTICES"
}

fact() { printf '%s\t%s\n' "$1" "$2" >>"$FACTS"; }
get_fact() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$FACTS"; }

# The command as shown in BENCHMARKS.md: paths relative to the work directory.
show() {
    local text="$*"
    text=${text//$BIN/intercom-push}
    text=${text//$VENV\/bin\//}
    text=${text//$WORK\//}
    text=${text//$ROOT\//}
    printf '%s' "$text"
}

ensure_sqlite3() {
    command -v sqlite3 >/dev/null && return
    log "installing the sqlite3 CLI (Debian package sqlite3)"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    if ! { $sudo apt-get install -y sqlite3 >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y sqlite3 >/dev/null 2>&1; }; }; then
        SQLITE3=""
        notice "the sqlite3 CLI is not installed and \`apt-get install sqlite3\` failed: the .import comparison and everything after a full push (database size, status, run and the 1 % night) are skipped"
    fi
}

# pip_install NAME VERSION: NAME==VERSION from PyPI in the virtual environment under the work
# directory (each engine's Python package brings it; no CLI needed), unless it is there.
pip_install() {
    local name=$1 version=$2
    if "$VENV/bin/python" -c "import $name, sys; sys.exit($name.__version__ != '$version')" 2>/dev/null; then
        return
    fi
    log "installing $name==$version into $(show "$VENV") (pip)"
    python3 -m venv "$VENV" >>"$WORK/stderr.log" 2>&1 &&
        timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check --timeout 60 \
            "$name==$version" >>"$WORK/stderr.log" 2>&1
}

# ensure_anchor NAME VERSION LABEL SKIP_VAR: installs an anchor's engine, or says why its
# comparison is skipped; answers 1 then.
ensure_anchor() {
    local name=$1 version=$2 label=$3 skip=$4
    if [[ ${!skip:-0} == 1 ]]; then
        notice "$skip=1: the $label comparison is skipped"
        return 1
    fi
    if ! pip_install "$name" "$version"; then
        notice "$label could not be installed (\`python3 -m venv $(show "$VENV")\` + \`pip install $name==$version\` failed, see $(show "$WORK")/stderr.log): the $label comparison is skipped"
        return 1
    fi
}

ensure_duckdb() { ensure_anchor duckdb "$DUCKDB_VERSION" DuckDB BENCH_SKIP_DUCKDB || DUCKDB=0; }
ensure_polars() { ensure_anchor polars "$POLARS_VERSION" Polars BENCH_SKIP_POLARS || POLARS=0; }

build() {
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
    # What was measured: the commit the binary was built from (and whether the tree differed).
    (cd "$ROOT" && echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (with local changes)')") >"$WORK/commit.txt"
}

# min, median (lower middle for an even count) and max of the numbers given.
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[1], v[int((NR + 1) / 2)], v[NR] }'
}

# record LABEL COMMAND: appends one result row from the global arrays WALLS, RSSES, CPUS.
record() {
    local label=$1 command=$2 w r c
    w=$(stats "${WALLS[@]}")
    r=$(stats "${RSSES[@]}")
    c=$(stats "${CPUS[@]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "${#WALLS[@]}" "${w// /$'\t'}" "${r// /$'\t'}" \
        "$command" "${c// /$'\t'}" >>"$RESULTS"
    log "$label: wall ${w// / / } s, CPU ${c// / / } s, peak RSS ${r// / / } KiB"
}

# timed FILE COMMAND...: runs the command (stdout to $WORK/stdout.txt, stderr to the log)
# and leaves "wall_seconds peak_rss_kib cpu_seconds" (cpu = user + system) in FILE.
timed() {
    local file=$1
    shift
    if ! /usr/bin/time -f '%e %M %U %S' -o "$file" "$@" >"$WORK/stdout.txt" 2>>"$WORK/stderr.log"; then
        log "failed: $(show "$*") (see $(show "$WORK")/stderr.log)"
        tail -5 "$WORK/stderr.log" >&2
        exit 1
    fi
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$file" >"$file.sum" && mv "$file.sum" "$file"
}

# timed_into FILE COMMAND...: `timed`, its line appended to FILE (read back by record_file).
timed_into() {
    local file=$1
    shift
    timed "$WORK/t" "$@"
    cat "$WORK/t" >>"$file"
}

# Arithmetic on decimals (no bc on a fresh machine): calc 'EXPRESSION'.
calc() { awk "BEGIN { print $1 }"; }

# measure LABEL SETUP COMMAND...: RUNS runs of COMMAND, each after `eval SETUP`. The command
# shown in the report is $SHOWN when set (for commands whose quoting matters).
measure() {
    local label=$1 setup=$2
    shift 2
    local i w r c
    WALLS=() RSSES=() CPUS=()
    for ((i = 1; i <= RUNS; i++)); do
        eval "$setup"
        timed "$WORK/t" "$@"
        read -r w r c <"$WORK/t"
        WALLS+=("$w") RSSES+=("$r") CPUS+=("$c")
    done
    record "$label" "${SHOWN:-$(show "$*")}"
}

# record_file FILE LABEL COMMAND: records the runs FILE holds ("wall rss cpu" a line, as
# `timed` leaves them), then removes FILE.
record_file() {
    local w r c
    WALLS=() RSSES=() CPUS=()
    while read -r w r c; do WALLS+=("$w") RSSES+=("$r") CPUS+=("$c"); done <"$1"
    record "$2" "$3"
    rm -f "$1"
}

# measure_sum LABEL SETUP SHOWN PART...: RUNS runs of the parts ("PART_LABEL=COMMAND LINE",
# each run by `bash -c`) one after the other, each run after `eval SETUP`. Records every
# part, then their sum as LABEL (wall and CPU added, peak RSS the largest) shown as SHOWN.
measure_sum() {
    local label=$1 setup=$2 shown=$3
    shift 3
    local -a parts=("$@") sw=() sr=() sc=()
    local i j w r c
    for ((j = 0; j < ${#parts[@]}; j++)); do : >"$WORK/part-$j"; done
    for ((i = 1; i <= RUNS; i++)); do
        eval "$setup"
        local tw=0 tr=0 tc=0
        for ((j = 0; j < ${#parts[@]}; j++)); do
            timed "$WORK/t" bash -c "${parts[$j]#*=}"
            read -r w r c <"$WORK/t"
            echo "$w $r $c" >>"$WORK/part-$j"
            tw=$(calc "$tw + $w") tc=$(calc "$tc + $c")
            if ((r > tr)); then tr=$r; fi
        done
        sw+=("$tw") sr+=("$tr") sc+=("$tc")
    done
    for ((j = 0; j < ${#parts[@]}; j++)); do
        record_file "$WORK/part-$j" "${parts[$j]%%=*}" "$(show "${parts[$j]#*=}")"
    done
    WALLS=("${sw[@]}") RSSES=("${sr[@]}") CPUS=("${sc[@]}")
    record "$label" "$shown"
}

fresh_db() { rm -f "$1" "$1-wal" "$1-shm"; }
db_bytes() { cat "$1" "$1-wal" 2>/dev/null | wc -c; }

# generate N: the export of N accounts (CSV) in $WORK/export-N, timed once.
generate() {
    local n=$1 dir=$WORK/export-$1
    rm -rf "$dir"
    timed "$WORK/t" "$BIN" gen --accounts "$n" --seed "$SEED" --out "$dir"
    read -r w r c <"$WORK/t"
    WALLS=("$w") RSSES=("$r") CPUS=("$c")
    record "gen $n accounts (1 run)" "$(show "$BIN gen --accounts $n --seed $SEED --out $dir")"
    printf 'export-%s: %s, %s rows in all\n' "$n" "$(du -sh "$dir" | cut -f1)" \
        "$(cat "$dir"/*.csv | wc -l)" >>"$NOTES"
}

# (a) load of the accounts CSV alone vs the sqlite3 CLI's .import of the same file. The three
# commands run in turn, RUNS rounds (as (h) does): a host whose speed drifts over minutes
# moves all three alike instead of reading as a difference between them.
bench_accounts_csv() {
    local n=$1 dir=$WORK/accounts-only-$1 db=$WORK/accounts-only.db
    [[ -d $WORK/export-$n ]] || generate "$n"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$WORK/export-$n/accounts.csv" "$dir/"
    if [[ -n $SQLITE3 ]]; then
        # The same columns as the header, no types and no indexes: all .import can do.
        local columns
        columns=$(head -1 "$dir/accounts.csv" | tr -d '\r' | sed 's/[^,]*/"&"/g')
        printf 'CREATE TABLE accounts(%s);\n' "$columns" >"$WORK/create-accounts.sql"
    fi
    rm -f "$WORK/a-load" "$WORK/a-import" "$WORK/a-import-wal"
    local i wal="-cmd 'PRAGMA journal_mode=WAL' -cmd 'PRAGMA synchronous=NORMAL'"
    for ((i = 1; i <= RUNS; i++)); do
        fresh_db "$db"
        timed_into "$WORK/a-load" "$BIN" --db "$db" load --input "$dir"
        [[ -n $SQLITE3 ]] || continue
        fresh_db "$db" && sqlite3 "$db" <"$WORK/create-accounts.sql"
        timed_into "$WORK/a-import" sqlite3 "$db" -cmd ".mode csv" ".import --skip 1 $dir/accounts.csv accounts"
        fresh_db "$db" && sqlite3 "$db" <"$WORK/create-accounts.sql"
        timed_into "$WORK/a-import-wal" sqlite3 "$db" -cmd "PRAGMA journal_mode=WAL" -cmd "PRAGMA synchronous=NORMAL" \
            -cmd ".mode csv" ".import --skip 1 $dir/accounts.csv accounts"
    done
    record_file "$WORK/a-load" "(a) load accounts.csv, $n rows" "$(show "$BIN --db $db load --input $dir")"
    [[ -n $SQLITE3 ]] || return 0
    record_file "$WORK/a-import" "(a) sqlite3 .import accounts.csv, $n rows (defaults)" \
        "sqlite3 $(show "$db") -cmd '.mode csv' '.import --skip 1 $(show "$dir")/accounts.csv accounts'  # after (untimed) sqlite3 $(show "$db") < create-accounts.sql"
    record_file "$WORK/a-import-wal" "(a) sqlite3 .import accounts.csv, $n rows (WAL, synchronous=NORMAL)" \
        "sqlite3 $(show "$db") $wal -cmd '.mode csv' '.import --skip 1 $(show "$dir")/accounts.csv accounts'  # idem"
    local imported
    imported=$(sqlite3 "$db" "SELECT count(*) FROM accounts")
    printf 'sqlite3 imported %s rows of accounts.csv (%s accounts); create statement: %s\n' \
        "$imported" "$n" "$(cat "$WORK/create-accounts.sql")" >>"$NOTES"
    fresh_db "$db"
}

# shellcheck source=bench/mock-lifecycle.sh
source "$ROOT/bench/mock-lifecycle.sh"

# An empty mock Intercom on 127.0.0.1 for `run` with nothing changed: any API call would show
# in its request counter.
start_mock() {
    [[ -n $MOCK_PID ]] && return
    "$BIN" mock --mock-port "$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
    MOCK_PID=$!
    for _ in $(seq 100); do
        mock_requests >/dev/null 2>&1 && return
        sleep 0.1
    done
    log "the mock did not start (see $(show "$WORK")/mock.log)"
    exit 1
}

mock_requests() {
    curl -sf "http://127.0.0.1:$MOCK_PORT/_mock/stats" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["total_requests"])'
}

# duckdb_args N: DUCKDB_ARGS = the command running bench/duckdb/payloads.sql on export-N in
# its own directory duckdb-N (where it writes payloads.parquet).
duckdb_args() {
    local dir=$WORK/duckdb-$1
    mkdir -p "$dir"
    ln -sfn "../export-$1" "$dir/export"
    DUCKDB_ARGS=("$VENV/bin/python" "$ROOT/bench/duckdb/run.py" "$ROOT/bench/duckdb/payloads.sql" "$dir")
}

# polars_args N: POLARS_ARGS = the command running bench/polars/payloads.py on export-N in
# its own directory polars-N (where it writes payloads.parquet).
polars_args() {
    local dir=$WORK/polars-$1
    mkdir -p "$dir"
    ln -sfn "../export-$1" "$dir/export"
    POLARS_ARGS=("$VENV/bin/python" "$ROOT/bench/polars/payloads.py" "$dir")
}

# check_plan: `plan --json --all` of export-$CHECK_ACCOUNTS, sorted, in check-plan.ndjson:
# the reference both anchor scripts are checked against (computed once per run).
check_plan() {
    local n=$CHECK_ACCOUNTS db=$WORK/check.db
    [[ $CHECK_PLAN_DONE == 0 ]] || return 0
    [[ -d $WORK/export-$n ]] || generate "$n"
    fresh_db "$db"
    "$BIN" --quiet --db "$db" load --input "$WORK/export-$n" >/dev/null 2>>"$WORK/stderr.log"
    "$BIN" --quiet --db "$db" transform >/dev/null 2>>"$WORK/stderr.log"
    "$BIN" --quiet --db "$db" plan --json --all | LC_ALL=C sort >"$WORK/check-plan.ndjson"
    fresh_db "$db"
    CHECK_PLAN_DONE=1
}
CHECK_PLAN_DONE=0

# check_lines KEY NAME SCRIPT LINES DIFFERENCES: compares an anchor script's lines (file
# LINES) with check-plan.ndjson, sorted, byte for byte. Writes the facts KEY_check and
# KEY_identical; when they differ, the first differences go to DIFFERENCES, with a notice.
check_lines() {
    local key=$1 name=$2 script=$3 lines=$4 differences=$5 n=$CHECK_ACCOUNTS
    LC_ALL=C sort -o "$lines" "$lines"
    local same total companies same_companies
    same=$(LC_ALL=C comm -12 "$WORK/check-plan.ndjson" "$lines" | wc -l)
    total=$(wc -l <"$WORK/check-plan.ndjson")
    companies=$(grep -c '^{"type":"company"' "$WORK/check-plan.ndjson" || true)
    same_companies=$(LC_ALL=C comm -12 "$WORK/check-plan.ndjson" "$lines" | grep -c '^{"type":"company"' || true)
    fact "${key}_check" "$same_companies of $companies company lines and $((same - same_companies)) of $((total - companies)) user lines byte-identical ($n accounts, seed $SEED; $name wrote $(wc -l <"$lines") lines)"
    log "$name check: $(get_fact "${key}_check")"
    fact "${key}_identical" "$((same == total))"
    if ((same != total)); then
        { LC_ALL=C comm -3 "$WORK/check-plan.ndjson" "$lines" || true; } | head -4 >"$differences"
        notice "the $name script's lines differ from plan --json --all on $((total - same)) of $total lines (first ones in $(show "$differences")): the $name comparison is not like for like until $script is fixed"
    fi
}

# The DuckDB script's fairness: its lines against `plan --json --all` of the same export.
check_duckdb() {
    local n=$CHECK_ACCOUNTS
    log "checking the DuckDB script against plan --json --all on $n accounts"
    check_plan
    duckdb_args "$n"
    if ! "${DUCKDB_ARGS[@]}" --lines "$WORK/check-duckdb.ndjson" >/dev/null 2>>"$WORK/stderr.log"; then
        DUCKDB=0
        notice "bench/duckdb/payloads.sql failed on export-$n (see $(show "$WORK")/stderr.log): the DuckDB comparison is skipped"
        return
    fi
    check_lines duckdb DuckDB bench/duckdb/payloads.sql "$WORK/check-duckdb.ndjson" "$WORK/check-differences.txt"
}

# The Polars script's fairness, exactly as the DuckDB script's.
check_polars() {
    local n=$CHECK_ACCOUNTS
    log "checking the Polars script against plan --json --all on $n accounts"
    check_plan
    polars_args "$n"
    if ! "${POLARS_ARGS[@]}" --lines "$WORK/check-polars.ndjson" >/dev/null 2>>"$WORK/stderr.log"; then
        POLARS=0
        notice "bench/polars/payloads.py failed on export-$n (see $(show "$WORK")/stderr.log): the Polars comparison is skipped"
        return
    fi
    check_lines polars Polars bench/polars/payloads.py "$WORK/check-polars.ndjson" "$WORK/check-polars-differences.txt"
    rm -f "$WORK/polars-$n/payloads.parquet"
}

# polars_skip N: why Polars is not run at N accounts (nothing when it is). Above 1M it runs
# only when its peak RSS measured at the largest smaller size, scaled to N, stays under 80 %
# of the machine's memory (BENCH_XL_POLARS=1 runs it anyway).
polars_skip() {
    local n=$1 m best=0 kib mem
    ((n > TARGET_ACCOUNTS)) && [[ ${BENCH_XL_POLARS:-0} != 1 ]] || return 0
    for m in $SIZES; do
        if ((m < n && m > best)) && [[ -n $(figure "(f) Polars payloads.py, $m accounts" 7) ]]; then best=$m; fi
    done
    if ((best == 0)); then
        echo "Polars not run at $(human_accounts "$n") accounts: no smaller size measured its peak memory (BENCH_XL_POLARS=1 runs it anyway)"
        return
    fi
    kib=$(figure "(f) Polars payloads.py, $best accounts" 7)
    mem=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)
    if awk -v k="$kib" -v n="$n" -v b="$best" -v m="$mem" 'BEGIN { exit !(k * n / b > 0.8 * m) }'; then
        echo "Polars not run at $(human_accounts "$n") accounts: its peak memory at $(human_accounts "$best") is $(mib "$kib") MiB, so $(human_accounts "$n") would need ≈ $(awk -v k="$kib" -v n="$n" -v b="$best" 'BEGIN { printf "%.0f", k * n / b / 1024 }') MiB, more than 80 % of this machine's $(mib "$mem") MiB (BENCH_XL_POLARS=1 runs it anyway)"
    fi
}

# (b)–(f) at N accounts: the pipeline on a fresh database, then the nights after a full push.
bench_pipeline() {
    local n=$1 dir=$WORK/export-$1 db=$WORK/pipeline-$1.db pushed=$WORK/pushed-$1.db
    [[ -d $dir ]] || generate "$n"
    measure_sum "(b) load + transform, $n accounts" "fresh_db $db" \
        "the two commands above, one after the other on a fresh database" \
        "(b) load, $n accounts=$BIN --db $db load --input $dir" \
        "(b) transform, $n accounts=$BIN --db $db transform"
    printf 'database after load + transform of %s accounts: %s\n' "$n" "$(du -sh "$db" | cut -f1)" >>"$NOTES"

    if [[ $DUCKDB == 1 && $n -gt $TARGET_ACCOUNTS && ${BENCH_XL_DUCKDB:-0} != 1 ]]; then
        notice "DuckDB not run at $(human_accounts "$n") accounts: its peak memory at 1M is ≈ 13 GB, so $(human_accounts "$n") would need more than this machine has (BENCH_XL_DUCKDB=1 runs it anyway)"
    elif [[ $DUCKDB == 1 ]]; then
        duckdb_args "$n"
        # In a subshell: DuckDB failing (out of memory, say) is a notice, not the end of the run.
        if (measure "(f) DuckDB payloads.sql, $n accounts" "rm -f $WORK/duckdb-$n/payloads.parquet" \
            "${DUCKDB_ARGS[@]}"); then
            printf 'DuckDB wrote %s rows to duckdb-%s/payloads.parquet (%s)\n' \
                "$("$VENV/bin/python" -c "import duckdb, sys; print(duckdb.sql(\"SELECT count(*) FROM '$WORK/duckdb-$n/payloads.parquet'\").fetchall()[0][0])")" \
                "$n" "$(du -sh "$WORK/duckdb-$n/payloads.parquet" | cut -f1)" >>"$NOTES"
        else
            notice "bench/duckdb/payloads.sql failed at $n accounts (see $(show "$WORK")/stderr.log)"
        fi
        rm -f "$WORK/duckdb-$n/payloads.parquet"
    fi
    if [[ $POLARS == 1 ]]; then
        local skip
        skip=$(polars_skip "$n")
        if [[ -n $skip ]]; then
            notice "$skip"
        else
            polars_args "$n"
            # In a subshell, as DuckDB's: a failure is a notice, not the end of the run.
            if (measure "(f) Polars payloads.py, $n accounts" "rm -f $WORK/polars-$n/payloads.parquet" \
                "${POLARS_ARGS[@]}"); then
                printf 'Polars wrote %s rows to polars-%s/payloads.parquet (%s)\n' \
                    "$("$VENV/bin/python" -c "import polars as pl; print(pl.scan_parquet('$WORK/polars-$n/payloads.parquet').select(pl.len()).collect().item())")" \
                    "$n" "$(du -sh "$WORK/polars-$n/payloads.parquet" | cut -f1)" >>"$NOTES"
            else
                notice "bench/polars/payloads.py failed at $n accounts (see $(show "$WORK")/stderr.log)"
            fi
            rm -f "$WORK/polars-$n/payloads.parquet"
        fi
    fi

    measure "(c) transform again, nothing changed, $n accounts" ":" "$BIN" --db "$db" transform
    SHOWN="$(show "$BIN --db $db plan --json") | wc -l" \
        measure "(c) plan --json | wc -l, no push yet, $n accounts" ":" \
        bash -c "$BIN --db $db plan --json | wc -l"
    printf 'plan --json | wc -l at %s accounts before any push: %s lines (every record is new)\n' \
        "$n" "$(tr -d ' ' <"$WORK/stdout.txt")" >>"$NOTES"

    if [[ -z $SQLITE3 ]]; then
        fresh_db "$db"
        return
    fi
    # The state after a full push, simulated (a real one against the mock would take hours
    # at 1M accounts): bench/mark-pushed.sql marks every record accepted.
    log "marking every record of $n accounts pushed (bench/mark-pushed.sql)"
    sqlite3 -bail "$db" <"$ROOT/bench/mark-pushed.sql"
    fresh_db "$pushed"
    mv "$db" "$pushed"
    [[ ! -e $db-wal ]] || mv "$db-wal" "$pushed-wal"
    rm -f "$db-shm"
    fact "db_after_push_$n" "$(db_bytes "$pushed")"

    measure "(d) status after a full push, $n accounts" ":" "$BIN" --db "$pushed" status
    start_mock
    local before after
    before=$(mock_requests)
    measure "(d) run, same export again, $n accounts" ":" \
        "$BIN" --db "$pushed" run --input "$dir" --base-url "http://127.0.0.1:$MOCK_PORT"
    after=$(mock_requests)
    fact "run_api_calls_$n" "$((after - before))"

    # Tonight's export with 1 % of the accounts changed, on the state after the full push. The
    # setup's copy of the database is flushed (`sync`, untimed): otherwise the timed load
    # waits seconds for the harness's own 1.5 GB of dirty pages.
    local mutated=$WORK/export-$n-mutated
    rm -rf "$mutated"
    cp -r "$dir" "$mutated"
    "$BIN" --quiet gen --mutate 1 --seed 11 --out "$mutated" >/dev/null 2>>"$WORK/stderr.log"
    local work=$WORK/night-$n.db
    measure_sum "(e) load + transform + plan, 1 % changed, $n accounts" \
        "fresh_db $work; cp $pushed $work; [[ ! -e $pushed-wal ]] || cp $pushed-wal $work-wal; sync" \
        "the three commands above, one after the other on (a copy of) the database after the full push" \
        "(e) load, 1 % changed, $n accounts=$BIN --db $work load --input $mutated" \
        "(e) transform, 1 % changed, $n accounts=$BIN --db $work transform" \
        "(e) plan --json | wc -l, 1 % changed, $n accounts=$BIN --db $work plan --json | wc -l"
    printf 'plan --json | wc -l at %s accounts, 1 %% changed (gen --mutate 1 --seed 11): %s lines\n' \
        "$n" "$(tr -d ' ' <"$WORK/stdout.txt")" >>"$NOTES"
    fresh_db "$work"
    fresh_db "$pushed"
    rm -rf "$mutated"
}

# (h) the cost per account: load + transform on a fresh database at every size in turn, RUNS
# rounds, so that a drift of the host's speed reaches every size alike ((b) measures the
# sizes minutes apart, and a fast or slow spell there reads as a non-linear cost).
bench_scaling() {
    local -a sizes
    read -ra sizes <<<"$SIZES"
    ((${#sizes[@]} > 1)) || return 0
    local n i db=$WORK/scaling.db
    for n in "${sizes[@]}"; do rm -f "$WORK/scaling-$n"; done
    for ((i = 1; i <= RUNS; i++)); do
        for n in "${sizes[@]}"; do
            fresh_db "$db"
            timed_into "$WORK/scaling-$n" bash -c "$BIN --db $db load --input $WORK/export-$n && $BIN --db $db transform"
        done
    done
    for n in "${sizes[@]}"; do
        record_file "$WORK/scaling-$n" "(h) load + transform, $n accounts, sizes in turn" \
            "$(show "$BIN --db $db load --input $WORK/export-$n && $BIN --db $db transform")"
    done
    fresh_db "$db"
}

# (g) the export layouts of issue 10 at N accounts: 8 gzip CSV parts per table, and Parquet,
# beside the single-file load of (b). Skipped until `gen` offers them.
bench_layouts() {
    local n=$1 help
    help=$("$BIN" gen --help)
    if grep -q -- '--parts' <<<"$help"; then
        layout "$n" "8 gzip CSV parts per table" --parts 8 --gzip
    else
        notice "\`intercom-push gen --help\` offers no --parts: the 8-gzip-parts layout of issue 10 is not measured"
    fi
    if grep -q 'possible values:.*parquet' <<<"$help"; then
        layout "$n" "Parquet" --format parquet
    else
        notice "\`intercom-push gen --help\` offers no --format parquet: the Parquet layout of issue 10 is not measured"
    fi
}

# layout N NAME GEN_FLAGS...: `load` of the export of N accounts that `gen GEN_FLAGS` writes.
layout() {
    local n=$1 name=$2 dir=$WORK/export-$1-layout db=$WORK/layout.db
    shift 2
    rm -rf "$dir"
    if "$BIN" --quiet gen --accounts "$n" --seed "$SEED" "$@" --out "$dir" >/dev/null 2>>"$WORK/stderr.log"; then
        measure "(g) load, $n accounts, $name" "fresh_db $db" "$BIN" --db "$db" load --input "$dir"
        printf 'export-%s as %s (gen %s): %s\n' "$n" "$name" "$*" "$(du -sh "$dir" | cut -f1)" >>"$NOTES"
    else
        notice "\`intercom-push gen $*\` failed (see $(show "$WORK")/stderr.log): the $name layout of issue 10 is not measured"
    fi
    rm -rf "$dir"
    fresh_db "$db"
}

machine() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
    [[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | grep -m1 'Model name' | cut -d: -f2- | sed 's/^ *//' || echo unknown)
    cat <<MD
| | |
|---|---|
| date (UTC) | $(cat "$WORK/date.txt") |
| CPU | $cpu |
| cores (nproc) | $(nproc) |
| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -sr) |
| rustc | $(rustc --version) |
| sqlite3 CLI | $(if [[ -n $SQLITE3 ]]; then sqlite3 --version | cut -d' ' -f1-2; else echo "not available"; fi) |
| DuckDB | $(cat "$WORK/duckdb-version.txt") |
| Polars | $(cat "$WORK/polars-version.txt" 2>/dev/null || echo "not recorded") |
| intercom-push (commit measured) | $(cat "$WORK/commit.txt") |
| load average (1, 5, 15 min) before / after | $(cat "$WORK/load-before.txt") / $(cat "$WORK/load-after.txt") |
| CPU pressure (PSI some avg300) before / after | $(cat "$WORK/psi-before.txt") / $(cat "$WORK/psi-after.txt") |
| runs per figure | $RUNS |
MD
}

# figure LABEL COLUMN: a column of the row labelled exactly LABEL (3/4/5 wall min/median/max,
# 6/7/8 peak RSS KiB, 10/11/12 CPU).
figure() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l { print $c; exit }' "$RESULTS"; }

# ratio A B: A / B to two decimals ("n/a" when either is missing or B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# verdict OK: the status cell — OK is 1 (met), 0 (missed) or a reason it was not judged.
verdict() {
    case $1 in
        1) echo "**met**" ;;
        0) echo "**missed**" ;;
        *) echo "not judged: $1" ;;
    esac
}

# at_least A B / at_most A B: 1 when A ≥ B (A ≤ B), else 0; empty A gives "not measured".
at_least() { if [[ -z $1 ]]; then echo "not measured"; else awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'; fi; }
at_most() { if [[ -z $1 ]]; then echo "not measured"; else awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? 1 : 0 }'; fi; }

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
human_accounts() { awk -v n="$1" 'BEGIN { if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6; else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3; else print n }'; }

# The size the target table reads: 1M accounts when measured, else the largest size measured
# (then nothing is judged against the 1M targets).
target_size() {
    local n best=""
    for n in $SIZES; do
        [[ -n $(figure "(b) load + transform, $n accounts" 4) ]] || continue
        [[ $n == "$TARGET_ACCOUNTS" ]] && { echo "$n"; return; }
        if [[ -z $best ]] || ((n > best)); then best=$n; fi
    done
    echo "$best"
}

# judge_at N OK: OK at the target size, else why it is not judged.
judge_at() {
    if [[ $1 == "$TARGET_ACCOUNTS" ]]; then echo "$2"; else echo "measured at $(human_accounts "$1") accounts, the target is for 1M"; fi
}

# peak_rss N: "KiB command" of the command with the largest median peak RSS at N accounts.
peak_rss() {
    local n=$1 label command best=0 best_command=""
    for command in "load:(b) load, $n accounts" "transform:(b) transform, $n accounts" \
        "plan:(c) plan --json | wc -l, no push yet, $n accounts" "status:(d) status after a full push, $n accounts" \
        "run:(d) run, same export again, $n accounts" "load (1 %):(e) load, 1 % changed, $n accounts" \
        "transform (1 %):(e) transform, 1 % changed, $n accounts" "plan (1 %):(e) plan --json | wc -l, 1 % changed, $n accounts"; do
        label=${command#*:}
        local kib
        kib=$(figure "$label" 7)
        [[ -n $kib ]] || continue
        if ((kib > best)); then best=$kib best_command=${command%%:*}; fi
    done
    if [[ -n $best_command ]]; then echo "$best $best_command"; fi
}

targets_table() {
    local n w c ok
    n=$(target_size)
    echo "| target (issue 11) | measured (median of $RUNS; wall, with CPU = user + system beside it) | target | status |"
    echo "|---|---|---|---|"
    if [[ -z $n ]]; then
        echo "| — | nothing measured | | |"
        return
    fi
    local at="at $(human_accounts "$n") accounts"

    w=$(figure "(b) load + transform, $n accounts" 4)
    c=$(figure "(b) load + transform, $n accounts" 11)
    echo "| \`load\` + \`transform\` on a fresh database | $at: **$w s** wall ($c s CPU) | ≤ 30 s | $(verdict "$(judge_at "$n" "$(at_most "$w" 30)")") |"

    local peak
    peak=$(peak_rss "$n")
    if [[ -n $peak ]]; then
        echo "| peak RSS of any command (load, transform, plan, status, run) | $at: **$(mib "${peak%% *}") MiB** (\`${peak#* }\`; every command in \"Peak RSS per command\") | ≤ 1 GiB | $(verdict "$(judge_at "$n" "$(at_most "${peak%% *}" 1048576)")") |"
    fi

    local bytes
    bytes=$(get_fact "db_after_push_$n")
    if [[ -n $bytes ]]; then
        echo "| database size after a full push (simulated: \`bench/mark-pushed.sql\`) | $at: **$(awk -v b="$bytes" 'BEGIN { printf "%.2f GB (%.0f MiB)", b / 1e9, b / 1048576 }')** | ≤ 1.5 GB | $(verdict "$(judge_at "$n" "$(at_most "$bytes" 1500000000)")") |"
    else
        echo "| database size after a full push | not measured (no sqlite3 CLI) | ≤ 1.5 GB | $(verdict "not measured") |"
    fi

    w=$(figure "(d) run, same export again, $n accounts" 4)
    c=$(figure "(d) run, same export again, $n accounts" 11)
    local calls
    calls=$(get_fact "run_api_calls_$n")
    if [[ -n $w ]]; then
        ok=$(at_most "$w" 3)
        [[ $calls == 0 ]] || ok=0
        echo "| same export again (\`run\` with nothing changed, against the mock) | $at: **$w s** wall ($c s CPU), $calls API calls in $RUNS runs | ≤ 3 s, no API call | $(verdict "$(judge_at "$n" "$ok")") |"
    else
        echo "| same export again (\`run\` with nothing changed) | not measured (no sqlite3 CLI) | ≤ 3 s | $(verdict "not measured") |"
    fi

    w=$(figure "(e) load + transform + plan, 1 % changed, $n accounts" 4)
    c=$(figure "(e) load + transform + plan, 1 % changed, $n accounts" 11)
    if [[ -n $w ]]; then
        echo "| 1 % of accounts changed (\`gen --mutate 1\`): \`load\` + \`transform\` + \`plan\` | $at: **$w s** wall ($c s CPU) | ≤ 35 s | $(verdict "$(judge_at "$n" "$(at_most "$w" 35)")") |"
    else
        echo "| 1 % of accounts changed: \`load\` + \`transform\` + \`plan\` | not measured (no sqlite3 CLI) | ≤ 35 s | $(verdict "not measured") |"
    fi

    echo "| cost per account, 100k → 1M → 3M (load + transform) | $(scaling_summary) |"

    local ours best
    w=$(figure "(a) load accounts.csv, $CSV_ACCOUNTS rows" 4)
    c=$(figure "(a) load accounts.csv, $CSV_ACCOUNTS rows" 11)
    best=$(sqlite_best 4)
    if [[ -n $best ]]; then
        local why
        why=$([[ $CSV_ACCOUNTS == 1000000 ]] && at_least "$(ratio "$best" "$w")" 1.5 || echo "the accounts CSV had $CSV_ACCOUNTS rows, the target is for 1M")
        echo "| \`sqlite3 .import\` ÷ \`load\` of the accounts CSV ($(human_accounts "$CSV_ACCOUNTS") rows) | **$(ratio "$best" "$w")×** wall ($(ratio "$(sqlite_best 11)" "$c")× CPU): load $w s ($c s CPU), .import $best s | ≥ 1.5× | $(verdict "$why") |"
    else
        echo "| \`sqlite3 .import\` ÷ \`load\` of the accounts CSV | not measured (no sqlite3 CLI) | ≥ 1.5× | $(verdict "not measured") |"
    fi

    ours=$(figure "(b) load + transform, $n accounts" 4)
    w=$(figure "(f) DuckDB payloads.sql, $n accounts" 4)
    c=$(figure "(f) DuckDB payloads.sql, $n accounts" 11)
    if [[ -n $w ]]; then
        ok=$(judge_at "$n" "$(at_least "$(ratio "$w" "$ours")" 2)")
        [[ $(get_fact duckdb_identical) == 1 ]] || ok="the script's lines differ from plan's (see Notices)"
        echo "| DuckDB script ÷ our \`load\` + \`transform\` (same export) | $at: **$(ratio "$w" "$ours")×** wall ($(ratio "$c" "$(figure "(b) load + transform, $n accounts" 11)")× CPU): DuckDB $w s ($c s CPU, $(mib "$(figure "(f) DuckDB payloads.sql, $n accounts" 7)") MiB) | ≥ 2× | $(verdict "$ok") |"
    else
        echo "| DuckDB script ÷ our \`load\` + \`transform\` | not measured (DuckDB unavailable: see Notices) | ≥ 2× | $(verdict "not measured") |"
    fi

    # Issue 28 sets no target for the Polars anchor: reported, not judged (bench/README.md).
    w=$(figure "(f) Polars payloads.py, $n accounts" 4)
    c=$(figure "(f) Polars payloads.py, $n accounts" 11)
    if [[ -n $w ]]; then
        ok="report only (no target)"
        [[ $(get_fact polars_identical) == 1 ]] || ok="the script's lines differ from plan's (see Notices)"
        echo "| Polars script ÷ our \`load\` + \`transform\` (same export) | $at: **$(ratio "$w" "$ours")×** wall ($(ratio "$c" "$(figure "(b) load + transform, $n accounts" 11)")× CPU): Polars $w s ($c s CPU, $(mib "$(figure "(f) Polars payloads.py, $n accounts" 7)") MiB) | report only | $(verdict "$ok") |"
    else
        echo "| Polars script ÷ our \`load\` + \`transform\` | not measured (Polars unavailable or not run at this size: see Notices) | report only | $(verdict "not measured") |"
    fi

    local rate companies median
    rate=$(get_fact first_push_rate)
    companies=$(get_fact first_push_companies)
    if [[ -n $rate ]]; then
        median=$(awk -F' / ' '{ print $2 }' <<<"$rate")
        ok=$([[ $companies == 20000 ]] && at_least "$median" 95 || echo "$companies companies, the target is for 20,000")
        echo "| first push of $companies companies at 50 ms latency (\`bench/push.sh\`) | **$median %** of the rate limit (min / median / max: $rate %) | ≥ 95 % | $(verdict "$ok") |"
    else
        echo "| first push of 20,000 companies (\`bench/push.sh\`) | not measured (BENCH_SKIP_PUSH=1) | ≥ 95 % | $(verdict "not measured") |"
    fi
}

# The faster sqlite3 .import variant's median (COLUMN 4 wall, 11 CPU).
sqlite_best() {
    local n=$CSV_ACCOUNTS a b
    a=$(figure "(a) sqlite3 .import accounts.csv, $n rows (defaults)" "$1")
    b=$(figure "(a) sqlite3 .import accounts.csv, $n rows (WAL, synchronous=NORMAL)" "$1")
    if [[ -n $a ]]; then awk -v a="$a" -v b="${b:-$a}" 'BEGIN { print (b < a) ? b : a }'; fi
}

# "measured | target | status" of the scaling target: per-account medians against the
# smallest size's.
scaling_summary() {
    local n first="" w c text="" worst=0 sizes=0
    for n in $SIZES; do
        w=$(figure "(h) load + transform, $n accounts, sizes in turn" 4)
        c=$(figure "(h) load + transform, $n accounts, sizes in turn" 11)
        [[ -n $w ]] || continue
        local us
        us=$(calc "$w * 1000000 / $n")
        [[ -n $first ]] || first=$us
        local dev
        dev=$(awk -v a="$us" -v b="$first" 'BEGIN { d = (a / b - 1) * 100; printf "%+.0f", d }')
        text+="$(human_accounts "$n"): $(printf '%.1f' "$us") µs ($(calc "int($c * 1000000 / $n * 10 + 0.5) / 10") µs CPU, ${dev} %); "
        worst=$(awk -v a="$worst" -v d="${dev#[+-]}" 'BEGIN { print (d > a) ? d : a }')
        sizes=$((sizes + 1))
    done
    local ok
    if ((sizes < 2)); then ok="one size measured"; else ok=$(at_most "$worst" 20); fi
    echo "${text%; } (wall per account, change against the smallest size; (h): the sizes measured in turn) | within ±20 % | $(verdict "$ok")"
}

# Peak RSS (median, MiB) of every command at every size.
rss_table() {
    local n header="| command |" rule="|---|"
    for n in $SIZES; do
        header+=" $(human_accounts "$n") |"
        rule+="---:|"
    done
    echo "$header"
    echo "$rule"
    local row label
    for row in "load:(b) load, N accounts" "transform:(b) transform, N accounts" \
        "transform, nothing changed:(c) transform again, nothing changed, N accounts" \
        "plan --json, no push yet:(c) plan --json | wc -l, no push yet, N accounts" \
        "status after a full push:(d) status after a full push, N accounts" \
        "run, same export again:(d) run, same export again, N accounts" \
        "load, 1 % changed:(e) load, 1 % changed, N accounts" \
        "transform, 1 % changed:(e) transform, 1 % changed, N accounts" \
        "plan --json, 1 % changed:(e) plan --json | wc -l, 1 % changed, N accounts" \
        "DuckDB payloads.sql (for comparison):(f) DuckDB payloads.sql, N accounts" \
        "Polars payloads.py (for comparison):(f) Polars payloads.py, N accounts"; do
        local line="| ${row%%:*} |"
        for n in $SIZES; do
            label=${row#*:}
            local kib
            kib=$(figure "${label//N accounts/$n accounts}" 7)
            line+=" $([[ -n $kib ]] && mib "$kib" || echo —) |"
        done
        echo "$line"
    done
}

# The two anchor scripts beside our load + transform at every size (wall medians; > 1×: ours
# is faster).
anchors_table() {
    local n ours w
    echo "| accounts | our \`load\` + \`transform\` | DuckDB script | DuckDB ÷ ours | Polars script | Polars ÷ ours |"
    echo "|---|---:|---:|---:|---:|---:|"
    for n in $SIZES; do
        ours=$(figure "(b) load + transform, $n accounts" 4)
        local line="| $(human_accounts "$n") | ${ours:-—} s |"
        for w in "$(figure "(f) DuckDB payloads.sql, $n accounts" 4)" "$(figure "(f) Polars payloads.py, $n accounts" 4)"; do
            if [[ -n $w ]]; then line+=" $w s | $(ratio "$w" "$ours")× |"; else line+=" not run | — |"; fi
        done
        echo "$line"
    done
}

layouts_section() {
    local n=$LAYOUT_ACCOUNTS label
    echo "| \`load\` of $(human_accounts "$n") accounts from | wall median | CPU median | peak RSS |"
    echo "|---|---:|---:|---:|"
    for label in "(b) load, $n accounts|one CSV file per table" \
        "(g) load, $n accounts, 8 gzip CSV parts per table|8 gzip CSV parts per table" \
        "(g) load, $n accounts, Parquet|Parquet"; do
        local w
        w=$(figure "${label%%|*}" 4)
        if [[ -n $w ]]; then
            echo "| ${label#*|} | $w s | $(figure "${label%%|*}" 11) s | $(mib "$(figure "${label%%|*}" 7)") MiB |"
        else
            echo "| ${label#*|} | not measured | | |"
        fi
    done
}

ratio_line() {
    local n=$CSV_ACCOUNTS col label ours default tuned
    for col in 4 11; do
        label=$([[ $col == 4 ]] && echo "wall" || echo "CPU (user + system)")
        ours=$(figure "(a) load accounts.csv, $n rows" $col)
        default=$(figure "(a) sqlite3 .import accounts.csv, $n rows (defaults)" $col)
        tuned=$(figure "(a) sqlite3 .import accounts.csv, $n rows (WAL, synchronous=NORMAL)" $col)
        printf -- '- Median %s: `load` %s s; `sqlite3 .import` %s s (defaults), %s s (WAL, synchronous=NORMAL): ' \
            "$label" "$ours" "$default" "$tuned"
        printf '**sqlite3 (faster variant) / load = %s×** (target ≥ 1.5×).\n' "$(ratio "$(sqlite_best $col)" "$ours")"
    done
}

write_report() {
    {
        echo "# Benchmarks"
        echo
        echo "Written by \`bench/run.sh\` (see \`bench/README.md\`); do not edit by hand — re-run it."
        echo "Every figure is the median of $RUNS runs unless it says otherwise: wall and CPU"
        echo "(user + system of the process and its threads) in seconds, peak RSS in MiB"
        echo "(\`/usr/bin/time -f '%e %M %U %S'\`). Input files are in the page cache (warm runs). The"
        echo "machine is shared: wall time includes waiting for a core, so compare CPU beside it and"
        echo "see the load average and CPU pressure in \"Machine\"."
        echo
        echo "## Targets"
        echo
        targets_table
        echo
        echo "Sizes measured: $(for n in $SIZES; do printf '%s ' "$(human_accounts "$n")"; done)accounts (\`intercom-push gen --accounts N --seed $SEED\`)."
        echo "The targets are stated for 1M accounts on an idle 2-core machine; a figure measured at"
        echo "another size is shown but not judged. \"Same export again\" is the real \`run\` against an"
        echo "empty mock Intercom on 127.0.0.1 (its request counter must stay at 0); the database after a"
        echo "full push is simulated with \`bench/mark-pushed.sql\` (see bench/README.md)."
        echo
        echo "## Machine"
        echo
        machine
        echo
        echo "## Peak RSS per command (median, MiB)"
        echo
        rss_table
        echo
        echo "## Figures"
        echo
        echo "| measurement | runs | wall min | wall median | wall max | CPU min | CPU median | CPU max | peak RSS min | median | max |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ gsub(/\|/, "\\|", $1); printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f |\n", $1, $2, $3, $4, $5, $10, $11, $12, $6 / 1024, $7 / 1024, $8 / 1024 }' "$RESULTS"
        echo
        echo "## (a) Loading one accounts CSV vs the sqlite3 CLI"
        echo
        if [[ -n $(sqlite_best 4) ]]; then ratio_line; else echo "Not measured: no sqlite3 CLI (see Notices)."; fi
        echo
        echo "\`.import\` stores the text cells as they are into a table with the header's columns and"
        echo "no index; \`load\` types every column and keeps what \`transform\` needs."
        echo
        echo "## (f) The anchor scripts: DuckDB and Polars"
        echo
        echo "\`bench/duckdb/payloads.sql\` (DuckDB $(cat "$WORK/duckdb-version.txt"), every core) reads the same eight CSVs and"
        echo "builds every company's and user's payload line as \`plan --json --all\` prints it, with a"
        echo "hash of each, into a Parquet file. Fairness check, \`plan --json --all\` against the"
        echo "script's lines: $(get_fact duckdb_check | grep . || echo "not run (DuckDB unavailable)")."
        echo
        echo "\`bench/polars/payloads.py\` (Polars $(cat "$WORK/polars-version.txt" 2>/dev/null || echo "not recorded"), lazy API, every core) builds the same"
        echo "lines from the same CSVs, with a hash of each, into a Parquet file. Fairness check, as for"
        echo "DuckDB: $(get_fact polars_check | grep . || echo "not run (Polars unavailable)")."
        echo
        anchors_table
        echo
        echo "## (g) Export layouts (issue 10)"
        echo
        layouts_section
        echo
        if [[ -s $NOTICES ]]; then
            echo "## Notices"
            echo
            sed 's/^/- /' "$NOTICES"
            echo
        fi
        echo "## Notes"
        echo
        sed 's/^/- /' "$NOTES"
        echo
        echo "## Commands"
        echo
        echo "Paths are relative to the work directory (\`target/bench\`); \`intercom-push\` is"
        echo "\`target/release/intercom-push\`; the \`(d)\` and \`(e)\` commands run on the database after"
        echo "\`sqlite3 -bail DB < bench/mark-pushed.sql\`."
        echo
        echo '```'
        awk -F'\t' '{ printf "# %s\n%s\n", $1, $9 }' "$RESULTS"
        echo '```'
        echo
        if [[ -f $ROOT/bench/findings.md ]]; then
            cat "$ROOT/bench/findings.md"
            echo
        fi
        if [[ -f $WORK/push.md ]]; then
            cat "$WORK/push.md"
        else
            echo "## Push"
            echo
            echo "Not run (BENCH_SKIP_PUSH=1): \`bench/push.sh\` measures it."
        fi
        for part in reconcile bulk; do
            if [[ -f $WORK/$part.md ]]; then
                echo
                cat "$WORK/$part.md"
            fi
        done
    } >"$OUT"
    log "wrote $OUT"
}

# Share of the last 5 minutes in which some runnable task waited for a CPU.
psi() { awk '/^some/ { sub("avg300=", "", $4); print $4 "%" }' /proc/pressure/cpu 2>/dev/null || echo n/a; }

main() {
    mkdir -p "$WORK" "$(dirname "$OUT")"
    if [[ ${BENCH_REPORT_ONLY:-0} == 1 ]]; then # rewrite the report from the last run's results
        # shellcheck source=/dev/null # written by the last run
        source "$WORK/settings.sh"
        write_report
        targets_table
        return
    fi
    : >"$RESULTS"
    : >"$FACTS"
    : >"$NOTES"
    : >"$NOTICES"
    : >"$WORK/stderr.log"
    date -u '+%Y-%m-%d %H:%M' >"$WORK/date.txt"
    cut -d' ' -f1-3 /proc/loadavg >"$WORK/load-before.txt"
    psi >"$WORK/psi-before.txt"
    ensure_sqlite3
    ensure_duckdb
    ensure_polars
    build
    local n
    for n in $SIZES; do generate "$n"; done
    if [[ $DUCKDB == 1 ]]; then check_duckdb; fi
    if [[ $DUCKDB == 1 ]]; then
        "$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)' >"$WORK/duckdb-version.txt"
    else
        echo "not available" >"$WORK/duckdb-version.txt"
    fi
    if [[ $POLARS == 1 ]]; then check_polars; fi
    if [[ $POLARS == 1 ]]; then
        "$VENV/bin/python" -c 'import polars; print(polars.__version__)' >"$WORK/polars-version.txt"
    else
        echo "not available" >"$WORK/polars-version.txt"
    fi
    bench_accounts_csv "$CSV_ACCOUNTS"
    for n in $SIZES; do bench_pipeline "$n"; done
    bench_scaling
    stop_mock
    [[ -d $WORK/export-$LAYOUT_ACCOUNTS ]] || generate "$LAYOUT_ACCOUNTS"
    bench_layouts "$LAYOUT_ACCOUNTS"
    rm -f "$WORK/push.md" "$WORK/push/figures.tsv" "$WORK/reconcile.md" "$WORK/bulk.md"
    if [[ ${BENCH_SKIP_PUSH:-0} != 1 ]]; then
        if [[ ${BENCH_SMALL:-0} == 1 ]]; then
            export PUSH_COMPANIES=${PUSH_COMPANIES:-1000} PUSH_USER_ACCOUNTS=${PUSH_USER_ACCOUNTS:-100}
        fi
        export RECONCILE_COMPANIES=${RECONCILE_COMPANIES:-$([[ ${BENCH_SMALL:-0} == 1 ]] && echo 1000 || echo 20000)}
        export RECONCILE_RUNS=${RECONCILE_RUNS:-$([[ ${BENCH_SMALL:-0} == 1 ]] && echo 1 || echo 3)}
        PUSH_RUNS=${PUSH_RUNS:-$RUNS} BENCH_DIR=$WORK PUSH_OUT=$WORK/push.md "$ROOT/bench/push.sh"
        BENCH_DIR=$WORK RECONCILE_OUT=$WORK/reconcile.md "$ROOT/bench/reconcile.sh"
        BULK_COMPANIES=${BULK_COMPANIES:-$([[ ${BENCH_SMALL:-0} == 1 ]] && echo 100 || echo 20000)} \
            BENCH_DIR=$WORK BULK_OUT=$WORK/bulk.md "$ROOT/bench/bulk.sh"
        fact first_push_rate "$(awk -F'\t' '$1 == "first_push_rate" { print $2 }' "$WORK/push/figures.tsv")"
        fact first_push_companies "$(awk -F'\t' '$1 == "companies" { print $2 }' "$WORK/push/figures.tsv")"
    else
        notice "BENCH_SKIP_PUSH=1: bench/push.sh did not run (no push figures)"
    fi
    cut -d' ' -f1-3 /proc/loadavg >"$WORK/load-after.txt"
    psi >"$WORK/psi-after.txt"
    declare -p SIZES RUNS SEED CSV_ACCOUNTS LAYOUT_ACCOUNTS SQLITE3 >"$WORK/settings.sh" # for BENCH_REPORT_ONLY
    write_report
    targets_table
}

main "$@"
