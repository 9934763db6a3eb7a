#!/usr/bin/env bash
# Reconcile benchmark: `intercom-push reconcile` against its mock Intercom on 127.0.0.1, with
# Intercom's rate limit (1,667 requests per 10 s window) and 50 ms latency per answer, after a
# share of the companies was changed behind the tool's back (the mock's POST /_mock/edit).
# Writes the "Reconcile" section of the benchmark report to $RECONCILE_OUT (default
# target/bench/reconcile.md); bench/run.sh folds it into docs/BENCHMARKS.md.
#
# Knobs: RECONCILE_COMPANIES (20000), RECONCILE_DRIFT (percent of companies changed, 1),
# RECONCILE_LATENCY_MS (50), RECONCILE_LIMIT (1667), RECONCILE_RUNS (3), RECONCILE_PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}/reconcile
OUT=${RECONCILE_OUT:-$ROOT/target/bench/reconcile.md}
N=${RECONCILE_COMPANIES:-20000}
DRIFT=${RECONCILE_DRIFT:-1}
LATENCY=${RECONCILE_LATENCY_MS:-50}
LIMIT=${RECONCILE_LIMIT:-1667}
RUNS=${RECONCILE_RUNS:-3}
BIN=$ROOT/target/release/intercom-push
PORT=${RECONCILE_PORT:-18798}
URL=http://127.0.0.1:$PORT
DB=$WORK/reconcile.db
export INTERCOM_ACCESS_TOKEN=bench-token

log() { printf '[reconcile-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mkdir -p "$WORK" "$(dirname "$OUT")"
[[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --quiet)

# shellcheck source=bench/mock-lifecycle.sh
source "$ROOT/bench/mock-lifecycle.sh"

stats() { curl -sf "$URL/_mock/stats"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s / %s / %s", v[1], v[int((NR + 1) / 2)], v[NR] }'; }

log "generating $N companies and pushing them once (setup, not measured)"
EXPORT=$WORK/companies
rm -rf "$EXPORT" && "$BIN" gen --accounts "$N" --seed 7 --out "$EXPORT" --users-per-account 0 >/dev/null
python3 - "$EXPORT/accounts.csv" "$WORK/seed.json" <<'PY'
import csv, json, sys
ids = [r["externalId"] for r in csv.DictReader(open(sys.argv[1], encoding="utf-8-sig"))]
json.dump({"companies": [{"company_id": i, "user_count": 1} for i in ids]}, open(sys.argv[2], "w"))
PY
start_seeded_mock "$WORK/seed.json"
rm -f "$DB" "$DB"-wal "$DB"-shm
"$BIN" --quiet --db "$DB" load --input "$EXPORT" >/dev/null 2>&1
"$BIN" --quiet --db "$DB" transform >/dev/null 2>&1
"$BIN" --quiet --db "$DB" push --base-url "$URL" --json >"$WORK/first-push.json"

# drift RUN: changes $DRIFT % of the companies (a different share each run) behind the tool's back.
drift() {
    python3 - "$EXPORT/accounts.csv" "$DRIFT" "$1" <<'PY' | curl -sf -H 'Content-Type: application/json' -d @- "$URL/_mock/edit" >/dev/null
import csv, json, sys
ids = [r["externalId"] for r in csv.DictReader(open(sys.argv[1], encoding="utf-8-sig"))]
step, offset = round(100 / float(sys.argv[2])), int(sys.argv[3])
changed = [{"company_id": i, "custom_attributes": {"Vitally Dashboards": -1}} for i in ids[offset::step]]
print(json.dumps({"companies": changed}))
PY
}

# reconcile_once ARGS...: prints "wall calls drifted writes"
reconcile_once() {
    local before after start end
    before=$(stats | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["company_writes"] + s["contact_writes"])')
    start=$(date +%s.%N)
    "$BIN" --quiet --db "$DB" reconcile --base-url "$URL" --json "$@" >"$WORK/report.json"
    end=$(date +%s.%N)
    after=$(stats | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["company_writes"] + s["contact_writes"])')
    python3 - "$WORK/report.json" "$start" "$end" "$((after - before))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
drifted = r["reconcile"]["companies"]["drifted"] + r["reconcile"]["users"]["drifted"]
print(f"{float(sys.argv[3]) - float(sys.argv[2]):.2f} {r['api_calls']} {drifted} {sys.argv[4]}")
PY
}

walls=() calls=() drifted=() writes=()
for run in $(seq "$RUNS"); do
    drift "$run"
    log "run $run: reconcile of $N companies, $DRIFT % changed behind the tool's back"
    read -r w c d x < <(reconcile_once)
    walls+=("$w") calls+=("$c") drifted+=("$d") writes+=("$x")
done
log "reconcile with nothing changed"
read -r clean_wall clean_calls clean_drifted clean_writes < <(reconcile_once)
drift 0
log "reconcile --mode report of $DRIFT % drift"
read -r report_wall report_calls report_drifted report_writes < <(reconcile_once --mode report)
stop_mock

PAGES=$(python3 -c "print(-(-$N // 50))")
cat >"$OUT" <<MD
## Reconcile (against the in-repo mock Intercom)

Mock as for the push ($LATENCY ms per answer, $LIMIT requests per 10 s); $N companies pushed
once, then $DRIFT % of them ($(median "${drifted[@]}")) given another \`Vitally Dashboards\` (an Element count)
through the mock's \`POST /_mock/edit\` before each run; \`intercom-push reconcile --json\`
(repair: each drifted company is sent again). Figures: min / median / max of $RUNS runs
(\`bench/reconcile.sh\`).

| measurement | figure | bound |
|---|---|---|
| reconcile, $DRIFT % drift: API calls | $(minmax "${calls[@]}") | $N ÷ 50 per page + 1 closing page + $(median "${drifted[@]}") drifted + 2 attribute lists = $((PAGES + 1 + $(median "${drifted[@]}") + 2)) |
| reconcile, $DRIFT % drift: wall | $(minmax "${walls[@]}") s | |
| reconcile, $DRIFT % drift: drifted found / writes | $(median "${drifted[@]}") / $(median "${writes[@]}") | one write per drifted record |
| reconcile, nothing changed | $clean_calls calls, $clean_writes writes, $clean_wall s | |
| \`reconcile --mode report\`, $DRIFT % drift | $report_calls calls, $report_drifted drifted, $report_writes writes, $report_wall s | no write |

A full re-sync of the same companies is $N PUTs (≈ $(python3 -c "print(round($N / ($LIMIT / 10 * 0.98)))") s at the rate limit): this
reconcile makes $(python3 -c "print(round($(median "${calls[@]}") / $N * 100, 1))") % of its calls. Its time is set by the directory, which is one
scroll: a page per round trip ($PAGES pages × ($LATENCY ms + the wait for a slot in the rate
governor)), the drifted companies' PUTs overlapping with it.
MD
log "wrote $OUT"
cat "$OUT"
