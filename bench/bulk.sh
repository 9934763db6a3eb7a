#!/usr/bin/env bash
# Bulk benchmark: the same pushes with per-record PUTs and with `--bulk` (Intercom's Preview
# bulk updates, which the mock implements), in one run, against the mock on 127.0.0.1 with
# Intercom's rate limit (1,667 requests per 10 s window) and 50 ms latency per answer.
# Two pushes each way: the first push (no Intercom id known) and a full re-sync (every
# company and user changed, ids known). Writes the "Bulk updates" section of the benchmark
# report to $BULK_OUT (default target/bench/bulk.md); bench/run.sh folds it into
# docs/BENCHMARKS.md.
#
# Knobs: BULK_COMPANIES (20000), BULK_USERS_PER_ACCOUNT (3), BULK_LATENCY_MS (50),
# BULK_LIMIT (1667), BULK_TASK_MS (the mock's time to run a task, 200), BULK_PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}/bulk
OUT=${BULK_OUT:-$ROOT/target/bench/bulk.md}
N=${BULK_COMPANIES:-20000}
PER=${BULK_USERS_PER_ACCOUNT:-3}
LATENCY=${BULK_LATENCY_MS:-50}
LIMIT=${BULK_LIMIT:-1667}
TASK_MS=${BULK_TASK_MS:-200}
BIN=$ROOT/target/release/intercom-push
PORT=${BULK_PORT:-18797}
URL=http://127.0.0.1:$PORT
export INTERCOM_ACCESS_TOKEN=bench-token

log() { printf '[bulk-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mkdir -p "$WORK" "$(dirname "$OUT")"
[[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --quiet)

# shellcheck source=bench/mock-lifecycle.sh
source "$ROOT/bench/mock-lifecycle.sh"

log "generating $N accounts with $PER users each"
EXPORT=$WORK/export
rm -rf "$EXPORT"
"$BIN" gen --accounts "$N" --seed 9 --out "$EXPORT" --users-per-account "$PER" >/dev/null
# Every account as a company with a user (a company search finds it), every user as a contact.
python3 - "$EXPORT" "$WORK/seed.json" <<'PY'
import csv, json, os, sys
src, out = sys.argv[1], sys.argv[2]
rows = lambda name: list(csv.DictReader(open(os.path.join(src, name), encoding="utf-8-sig")))
companies = [{"company_id": r["externalId"], "user_count": 1} for r in rows("accounts.csv")]
contacts = [{"external_id": r.get("externalId") or None, "email": r.get("email") or None} for r in rows("users.csv")]
json.dump({"companies": companies, "contacts": contacts, "data_attributes": []}, open(out, "w"))
PY

# push_once MODE DB ARGS...: one push; appends "mode what wall calls updated" to results.
RESULTS=$WORK/results.tsv
: >"$RESULTS"
push_once() {
    local mode=$1 what=$2 db=$3; shift 3
    local start end
    start=$(date +%s.%N)
    "$BIN" --quiet --db "$db" push --base-url "$URL" --json "$@" >"$WORK/report.json"
    end=$(date +%s.%N)
    python3 - "$WORK/report.json" "$start" "$end" "$mode" "$what" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
b = r.get("bulk") or {}
print("\t".join(map(str, [sys.argv[4], sys.argv[5], f"{wall:.2f}", r["api_calls"],
      r["companies"]["updated"] + r["users"]["updated"], b.get("requests", 0), b.get("polls", 0),
      b.get("searches", 0), b.get("resent", 0), r["rate_limited"]])))
PY
}

for mode in per-record bulk; do
    flags=()
    [[ $mode == bulk ]] && flags=(--bulk)
    start_seeded_mock "$WORK/seed.json" --bulk-task-ms "$TASK_MS"
    DB=$WORK/$mode.db
    rm -f "$DB" "$DB"-wal "$DB"-shm
    "$BIN" --quiet --db "$DB" load --input "$EXPORT" >/dev/null
    "$BIN" --quiet --db "$DB" transform >/dev/null
    log "$mode: first push ($N companies, $((N * PER)) users, no id known)"
    push_once "$mode" first "$DB" "${flags[@]}"
    log "$mode: full re-sync (every record sent, ids known)"
    push_once "$mode" resync "$DB" --full-resync "${flags[@]}"
    stop_mock
done

python3 - "$RESULTS" "$N" "$PER" "$LATENCY" "$LIMIT" "$TASK_MS" >"$OUT" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n, per, latency, limit, task_ms = map(int, sys.argv[2:7])
fig = {(r[0], r[1]): dict(wall=float(r[2]), calls=int(r[3]), updated=int(r[4]), requests=int(r[5]),
        polls=int(r[6]), searches=int(r[7]), resent=int(r[8]), r429=int(r[9])) for r in rows}
print("## Bulk updates (Preview API, `--bulk`)\n")
print(f"Mock: `intercom-push mock --latency-ms {latency} --rate-limit {limit} --bulk-task-ms {task_ms}` "
      f"(each bulk task runs {task_ms} ms after its 202). Export: `intercom-push gen --accounts {n} "
      f"--seed 9 --users-per-account {per}`: {n:,} companies and {n * per:,} users, all in the mock. "
      "Per-record and bulk pushes in the same run (`bench/bulk.sh`), one run each.\n")
print("| push | per-record: wall, calls | bulk: wall, calls (of which bulk requests + job polls + company searches) | calls, bulk ÷ per-record | wall, per-record ÷ bulk | target |")
print("|---|---|---|---|---|---|")
for what, label, target in [("first", "first push (no id known)", "≥ 10× shorter"),
                            ("resync", "full re-sync (all records changed)", "≥ 20× shorter, calls ≤ 2 %")]:
    p, b = fig[("per-record", what)], fig[("bulk", what)]
    print(f"| {label}: {p['updated']:,} records updated (bulk: {b['updated']:,}) | {p['wall']:.1f} s, {p['calls']:,} calls "
          f"| {b['wall']:.1f} s, {b['calls']:,} calls ({b['requests']:,} + {b['polls']:,} + {b['searches']:,}) "
          f"| {b['calls'] / max(p['calls'], 1) * 100:.2f} % | {p['wall'] / max(b['wall'], 0.01):.1f}× | {target} |")
PY
printf 'per_record_resync_wall\t%s\n' "$(awk -F'\t' '$1 == "per-record" && $2 == "resync" { print $3 }' "$RESULTS")" >"$WORK/figures.tsv"
log "wrote $OUT"
cat "$OUT"
