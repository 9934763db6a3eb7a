#!/usr/bin/env bash
# Benchmark of intercom-push's load + transform (the push half is a separate script, later).
# Builds release, generates exports with `intercom-push gen`, measures every figure
# BENCH_RUNS times (min / median / max of wall seconds and peak RSS) and writes
# docs/BENCHMARKS.md. See bench/README.md for the knobs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}
RUNS=${BENCH_RUNS:-3}
SEED=${BENCH_SEED:-1}
if [[ ${BENCH_SMALL:-0} == 1 ]]; then
    SIZES=${BENCH_SIZES:-1000}
    CSV_ACCOUNTS=${BENCH_CSV_ACCOUNTS:-1000}
    OUT=${BENCH_OUT:-$WORK/BENCHMARKS-small.md} # a smoke run never overwrites the real figures
else
    SIZES=${BENCH_SIZES:-100000 1000000}
    CSV_ACCOUNTS=${BENCH_CSV_ACCOUNTS:-1000000}
    OUT=${BENCH_OUT:-$ROOT/docs/BENCHMARKS.md}
fi
if [[ ${BENCH_XL:-0} == 1 ]]; then
    SIZES="$SIZES 3000000"
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/intercom-push
RESULTS=$WORK/results.tsv # label, runs, wall min/median/max (s), peak RSS min/median/max (KiB), command
COMMANDS=$WORK/commands.txt
NOTES=$WORK/notes.txt

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The command as shown in BENCHMARKS.md: paths relative to the work directory.
show() {
    local text="$*"
    text=${text//$BIN/intercom-push}
    text=${text//$WORK\//}
    printf '%s' "$text"
}

ensure_sqlite3() {
    if command -v sqlite3 >/dev/null; then return; fi
    log "installing the sqlite3 CLI (Debian package sqlite3)"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get install -y sqlite3 >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y sqlite3 >/dev/null; }
}

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

# timed FILE COMMAND...: runs the command (stdout to /dev/null, stderr to the log) and
# leaves "wall_seconds peak_rss_kib cpu_seconds" (cpu = user + system) in FILE.
timed() {
    local file=$1
    shift
    if ! /usr/bin/time -f '%e %M %U %S' -o "$file" "$@" >/dev/null 2>>"$WORK/stderr.log"; then
        log "failed: $(show "$*") (see $WORK/stderr.log)"
        tail -5 "$WORK/stderr.log" >&2
        exit 1
    fi
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$file" >"$file.sum" && mv "$file.sum" "$file"
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

fresh_db() { rm -f "$1" "$1-wal" "$1-shm"; }

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

# (a) load of the accounts CSV alone vs the sqlite3 CLI's .import of the same file.
bench_accounts_csv() {
    local n=$1 dir=$WORK/accounts-only-$1 db=$WORK/accounts-only.db
    [[ -d $WORK/export-$n ]] || generate "$n"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$WORK/export-$n/accounts.csv" "$dir/"
    measure "(a) load accounts.csv, $n rows" "fresh_db $db" \
        "$BIN" --db "$db" load --input "$dir"

    # The same columns as the header, no types and no indexes: all .import can do.
    local columns
    columns=$(head -1 "$dir/accounts.csv" | tr -d '\r' | sed 's/[^,]*/"&"/g')
    local create="CREATE TABLE accounts($columns);"
    printf '%s\n' "$create" >"$WORK/create-accounts.sql"
    local import="sqlite3 $(show "$db") -cmd '.mode csv' '.import --skip 1 $(show "$dir")/accounts.csv accounts'"
    SHOWN="$import  # after (untimed) sqlite3 $(show "$db") < create-accounts.sql" \
    measure "(a) sqlite3 .import accounts.csv, $n rows (defaults)" \
        "fresh_db $db; sqlite3 $db <$WORK/create-accounts.sql" \
        sqlite3 "$db" -cmd ".mode csv" ".import --skip 1 $dir/accounts.csv accounts"
    local pragmas="-cmd 'PRAGMA journal_mode=WAL' -cmd 'PRAGMA synchronous=NORMAL'"
    SHOWN="sqlite3 $(show "$db") $pragmas -cmd '.mode csv' '.import --skip 1 $(show "$dir")/accounts.csv accounts'  # idem" \
    measure "(a) sqlite3 .import accounts.csv, $n rows (WAL, synchronous=NORMAL)" \
        "fresh_db $db; sqlite3 $db <$WORK/create-accounts.sql" \
        sqlite3 "$db" -cmd "PRAGMA journal_mode=WAL" -cmd "PRAGMA synchronous=NORMAL" \
        -cmd ".mode csv" ".import --skip 1 $dir/accounts.csv accounts"
    local imported
    imported=$(sqlite3 "$db" "SELECT count(*) FROM accounts")
    printf 'sqlite3 imported %s rows of accounts.csv (%s accounts); create statement: %s\n' \
        "$imported" "$n" "$create" >>"$NOTES"
    fresh_db "$db"
}

# (b) load + transform of the full export, and (c) re-runs with nothing changed.
bench_pipeline() {
    local n=$1 dir=$WORK/export-$1 db=$WORK/pipeline-$1.db
    [[ -d $dir ]] || generate "$n"
    local lw=() lr=() lc=() tw=() tr=() tc=() sw=() sr=() sc=() i w r c w2 r2 c2
    for ((i = 1; i <= RUNS; i++)); do
        fresh_db "$db"
        timed "$WORK/t" "$BIN" --db "$db" load --input "$dir"
        read -r w r c <"$WORK/t"
        timed "$WORK/t" "$BIN" --db "$db" transform
        read -r w2 r2 c2 <"$WORK/t"
        lw+=("$w") lr+=("$r") lc+=("$c") tw+=("$w2") tr+=("$r2") tc+=("$c2")
        sw+=("$(calc "$w + $w2")") sr+=("$((r > r2 ? r : r2))") sc+=("$(calc "$c + $c2")")
    done
    WALLS=("${lw[@]}") RSSES=("${lr[@]}") CPUS=("${lc[@]}")
    record "(b) load, $n accounts" "$(show "$BIN --db $db load --input $dir")"
    WALLS=("${tw[@]}") RSSES=("${tr[@]}") CPUS=("${tc[@]}")
    record "(b) transform, $n accounts" "$(show "$BIN --db $db transform")"
    WALLS=("${sw[@]}") RSSES=("${sr[@]}") CPUS=("${sc[@]}")
    record "(b) load + transform, $n accounts" "the two commands above, one after the other on a fresh database"
    local median cpu
    median=$(stats "${sw[@]}" | cut -d' ' -f2)
    cpu=$(stats "${sc[@]}" | cut -d' ' -f2)
    printf 'per-account %s %s %s\n' "$n" "$(calc "int($median * 1000000 / $n * 10 + 0.5) / 10")" \
        "$(calc "int($cpu * 1000000 / $n * 10 + 0.5) / 10")" >>"$WORK/scaling.txt"
    printf 'database after load + transform of %s accounts: %s\n' "$n" "$(du -sh "$db" | cut -f1)" >>"$NOTES"

    measure "(c) transform again, nothing changed, $n accounts" ":" "$BIN" --db "$db" transform
    SHOWN="$(show "$BIN --db $db plan --json") | wc -l" \
    measure "(c) plan --json | wc -l, nothing changed, $n accounts" ":" \
        bash -c "$BIN --db $db plan --json | wc -l"
    printf 'plan --json | wc -l at %s accounts: %s lines (no push yet: every record is new)\n' \
        "$n" "$("$BIN" --db "$db" plan --json | wc -l)" >>"$NOTES"
    fresh_db "$db"
}

machine() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
    [[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | grep -m1 'Model name' | cut -d: -f2- | sed 's/^ *//' || echo unknown)
    cat <<MD
| | |
|---|---|
| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |
| CPU | $cpu |
| cores (nproc) | $(nproc) |
| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -sr) |
| rustc | $(rustc --version) |
| sqlite3 CLI | $(sqlite3 --version | cut -d' ' -f1-2) |
| intercom-push (commit measured) | $(cat "$WORK/commit.txt") |
| load average before / after | $(cat "$WORK/load-before.txt") / $(cut -d' ' -f1-3 /proc/loadavg) |
| CPU pressure (PSI some avg300) before / after | $(cat "$WORK/psi-before.txt") / $(psi) |
| runs per figure | $RUNS |
MD
}

# The figure of the row whose label starts with $1: column $2 (3 min, 4 median, 5 max wall).
figure() { awk -F'\t' -v l="$1" -v c="$2" 'index($1, l) == 1 { print $c; exit }' "$RESULTS"; }

# ratio A B: A / B to two decimals ("n/a" when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

ratio_line() {
    local n=$CSV_ACCOUNTS col label ours default tuned best
    for col in 4 11; do
        label=$([[ $col == 4 ]] && echo "wall" || echo "CPU (user + system)")
        ours=$(figure "(a) load accounts.csv, $n rows" $col)
        default=$(figure "(a) sqlite3 .import accounts.csv, $n rows (defaults)" $col)
        tuned=$(figure "(a) sqlite3 .import accounts.csv, $n rows (WAL" $col)
        best=$(printf '%s\n%s\n' "$default" "$tuned" | sort -g | head -1)
        printf -- '- Median %s: `load` %s s; `sqlite3 .import` %s s (defaults), %s s (WAL, synchronous=NORMAL). ' \
            "$label" "$ours" "$default" "$tuned"
        printf '**sqlite3 (faster variant) / load = %s×** (target ≥ 1.5×: %s).\n' "$(ratio "$best" "$ours")" \
            "$(awk -v a="$best" -v b="$ours" 'BEGIN { print (b > 0 && a / b >= 1.5) ? "met" : "missed" }')"
    done
}

write_report() {
    {
        echo "# Benchmarks"
        echo
        echo "Written by \`bench/run.sh\` (see \`bench/README.md\`); do not edit by hand — re-run it."
        echo "Every figure is min / median / max over the runs: wall and CPU (user + system) in"
        echo "seconds, peak RSS in MiB (\`/usr/bin/time -f '%e %M %U %S'\`). Input files are in the page"
        echo "cache (warm runs). On a shared machine wall time includes waiting for a core: compare"
        echo "the CPU column, and see the CPU pressure (PSI) in the machine table."
        echo
        echo "## Machine"
        echo
        machine
        echo
        echo "## Figures"
        echo
        echo "| measurement | runs | wall min | wall median | wall max | CPU min | CPU median | CPU max | peak RSS min | median | max |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ gsub(/\|/, "\\|", $1); printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f |\n", $1, $2, $3, $4, $5, $10, $11, $12, $6 / 1024, $7 / 1024, $8 / 1024 }' "$RESULTS"
        echo
        echo "## (a) Loading one accounts CSV vs the sqlite3 CLI"
        echo
        ratio_line
        echo
        echo "\`load\` parses, types every column, builds each account's JSON fields and keeps the"
        echo "unique indexes on external_id and id; \`.import\` stores the text cells as they are into"
        echo "a table with the same columns and no index."
        echo
        echo "## Scaling (load + transform, median wall per account)"
        echo
        echo "| accounts | wall µs per account | CPU µs per account |"
        echo "|---:|---:|---:|"
        awk '{ printf "| %s | %s | %s |\n", $2, $3, $4 }' "$WORK/scaling.txt"
        echo
        echo "## Notes"
        echo
        sed 's/^/- /' "$NOTES"
        echo
        echo "## Commands"
        echo
        echo "Paths are relative to the work directory (\`target/bench\`); \`intercom-push\` is"
        echo "\`target/release/intercom-push\`."
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
        if [[ -f $WORK/reconcile.md ]]; then
            echo
            cat "$WORK/reconcile.md"
        fi
    } >"$OUT"
    log "wrote $OUT"
}

# Share of the last 5 minutes in which some runnable task waited for a CPU.
psi() { awk '/^some/ { sub("avg300=", "", $4); print $4 "%" }' /proc/pressure/cpu 2>/dev/null || echo n/a; }

main() {
    mkdir -p "$WORK" "$(dirname "$OUT")"
    if [[ ${BENCH_REPORT_ONLY:-0} == 1 ]]; then # rewrite the report from the last run's results
        write_report
        return
    fi
    : >"$RESULTS"
    : >"$NOTES"
    : >"$WORK/scaling.txt"
    : >"$WORK/stderr.log"
    cut -d' ' -f1-3 /proc/loadavg >"$WORK/load-before.txt"
    psi >"$WORK/psi-before.txt"
    ensure_sqlite3
    build
    local n
    for n in $SIZES; do generate "$n"; done
    bench_accounts_csv "$CSV_ACCOUNTS"
    for n in $SIZES; do bench_pipeline "$n"; done
    rm -f "$WORK/push.md" "$WORK/reconcile.md"
    if [[ ${BENCH_SKIP_PUSH:-0} != 1 ]]; then
        if [[ ${BENCH_SMALL:-0} == 1 ]]; then
            export PUSH_COMPANIES=${PUSH_COMPANIES:-1000} PUSH_RUNS=${PUSH_RUNS:-1} PUSH_USER_ACCOUNTS=${PUSH_USER_ACCOUNTS:-100}
            export RECONCILE_COMPANIES=${RECONCILE_COMPANIES:-1000} RECONCILE_RUNS=${RECONCILE_RUNS:-1}
        fi
        BENCH_DIR=$WORK PUSH_OUT=$WORK/push.md "$ROOT/bench/push.sh"
        BENCH_DIR=$WORK RECONCILE_OUT=$WORK/reconcile.md "$ROOT/bench/reconcile.sh"
    fi
    write_report
}

main "$@"
