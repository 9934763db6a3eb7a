#!/usr/bin/env bash
# Push benchmark: intercom-push against its mock Intercom on 127.0.0.1, with Intercom's rate
# limit (1,667 requests per 10 s window = 10,000/min) and 50 ms latency per answer.
# Writes the "Push" section of the benchmark report to $PUSH_OUT (default
# target/bench/push.md); bench/run.sh folds it into docs/BENCHMARKS.md.
#
# Knobs: PUSH_COMPANIES (20000), PUSH_USERS_PER_ACCOUNT (users for the contact-resolution
# figure, default 3 on a separate export of PUSH_USER_ACCOUNTS = 2,000 accounts), PUSH_LATENCY_MS (50),
# PUSH_LIMIT (1667), PUSH_RUNS (3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}/push
OUT=${PUSH_OUT:-$ROOT/target/bench/push.md}
N=${PUSH_COMPANIES:-20000}
LATENCY=${PUSH_LATENCY_MS:-50}
LIMIT=${PUSH_LIMIT:-1667}
RUNS=${PUSH_RUNS:-3}
BIN=$ROOT/target/release/intercom-push
PORT=${PUSH_PORT:-18799}
URL=http://127.0.0.1:$PORT
export INTERCOM_ACCESS_TOKEN=bench-token

log() { printf '[push-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mkdir -p "$WORK" "$(dirname "$OUT")"
[[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --quiet)

# shellcheck source=bench/mock-lifecycle.sh
source "$ROOT/bench/mock-lifecycle.sh"

# seed_from EXPORT_DIR SEED_FILE: every account as an Intercom company, every user as a contact.
seed_from() {
    python3 - "$1" "$2" <<'PY'
import csv, json, os, sys
src, out = sys.argv[1], sys.argv[2]
def rows(name):
    path = os.path.join(src, name)
    return list(csv.DictReader(open(path, encoding="utf-8-sig"))) if os.path.exists(path) else []
companies = [{"company_id": r["externalId"], "user_count": 1} for r in rows("accounts.csv")]
contacts = [{"external_id": r.get("externalId") or None, "email": r.get("email") or None} for r in rows("users.csv")]
# As in a real workspace, some users were leads first: a lead with the same email (every 3rd).
contacts += [{"email": c["email"], "role": "lead"} for c in contacts[::3] if c["email"]]
json.dump({"companies": companies, "contacts": contacts, "data_attributes": []}, open(out, "w"))
PY
}

# push_once DB ARGS...: one push; prints "wall calls 429s puts"
push_once() {
    local db=$1; shift
    local start end
    start=$(date +%s.%N)
    "$BIN" --quiet --db "$db" push --base-url "$URL" --json "$@" >"$WORK/report.json"
    end=$(date +%s.%N)
    python3 - "$WORK/report.json" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print(f"{wall:.2f} {r['api_calls']} {r['rate_limited']} {r['companies']['updated'] + r['users']['updated']}")
PY
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s / %s / %s", v[1], v[int((NR + 1) / 2)], v[NR] }'; }

log "generating $N companies (no users) for the throughput figures"
EXPORT=$WORK/companies
rm -rf "$EXPORT"
"$BIN" gen --accounts "$N" --seed 7 --out "$EXPORT" --users-per-account 0 >/dev/null
seed_from "$EXPORT" "$WORK/seed-companies.json"
ALLOWED=$(python3 -c "print($LIMIT / 10)")

first_rates=(); first_walls=(); first_calls=(); first_429=()
resync_rates=(); resync_walls=(); resync_429=()
for run in $(seq "$RUNS"); do
    start_seeded_mock "$WORK/seed-companies.json"
    DB=$WORK/push.db
    rm -f "$DB" "$DB"-wal "$DB"-shm
    "$BIN" --quiet --db "$DB" load --input "$EXPORT" >/dev/null
    "$BIN" --quiet --db "$DB" transform >/dev/null
    log "run $run: first push of $N companies (ids unknown: scroll + PUTs)"
    read -r wall calls r429 puts < <(push_once "$DB")
    first_walls+=("$wall"); first_calls+=("$calls"); first_429+=("$r429")
    first_rates+=("$(python3 -c "print(round($calls / $wall / $ALLOWED * 100, 1))")")
    log "run $run: full re-sync of $N companies (ids known: PUTs only)"
    read -r wall calls r429 puts < <(push_once "$DB" --full-resync)
    resync_walls+=("$wall"); resync_429+=("$r429")
    resync_rates+=("$(python3 -c "print(round($calls / $wall / $ALLOWED * 100, 1))")")
done

log "re-sync with nothing changed"
read -r nc_wall nc_calls _ _ < <(push_once "$DB")

log "re-sync with 1 % of accounts changed"
"$BIN" gen --mutate 1 --seed 11 --out "$EXPORT" >/dev/null
"$BIN" --quiet --db "$DB" load --input "$EXPORT" >/dev/null
"$BIN" --quiet --db "$DB" transform >/dev/null
changed=$("$BIN" --quiet --db "$DB" plan --json | wc -l)
read -r ch_wall ch_calls _ ch_puts < <(push_once "$DB")

USER_ACCOUNTS=${PUSH_USER_ACCOUNTS:-2000}
log "contact resolution: $USER_ACCOUNTS accounts with users"
USERS_EXPORT=$WORK/users
rm -rf "$USERS_EXPORT"
"$BIN" gen --accounts "$USER_ACCOUNTS" --seed 5 --out "$USERS_EXPORT" --users-per-account "${PUSH_USERS_PER_ACCOUNT:-3}" >/dev/null
seed_from "$USERS_EXPORT" "$WORK/seed-users.json"
start_seeded_mock "$WORK/seed-users.json"
UDB=$WORK/users.db
rm -f "$UDB" "$UDB"-wal "$UDB"-shm
"$BIN" --quiet --db "$UDB" load --input "$USERS_EXPORT" >/dev/null
"$BIN" --quiet --db "$UDB" transform >/dev/null
"$BIN" --quiet --db "$UDB" push --base-url "$URL" --json >"$WORK/users-report.json"
read -r users searches < <(curl -s "$URL/_mock/stats" | python3 -c "
import json, sys
s = json.load(sys.stdin)['by_route']
searches = sum(v for k, v in s.items() if k.startswith('POST /contacts/search'))
puts = sum(v for k, v in s.items() if k.startswith('PUT /contacts/'))
print(puts, searches)")
stop_mock

cat >"$OUT" <<MD
## Push (against the in-repo mock Intercom)

Mock: \`intercom-push mock --latency-ms $LATENCY --rate-limit $LIMIT\` on 127.0.0.1 — Intercom's
10,000 requests/min per app as $LIMIT per 10-second window, so the allowed rate is
$ALLOWED requests/s; every answer takes $LATENCY ms. Export: \`intercom-push gen --accounts $N
--seed 7 --users-per-account 0\`; each figure is min / median / max of $RUNS runs
(\`bench/push.sh\`). Rate = API calls ÷ wall time of the whole \`push\` process ÷ allowed rate.

| measurement | figure (min / median / max) | target |
|---|---|---|
| first push, $N companies (directory by scroll, each page's PUTs sent as it arrives): rate | $(minmax "${first_rates[@]}") % of the limit, wall $(minmax "${first_walls[@]}") s, 429s $(minmax "${first_429[@]}") of $(median "${first_calls[@]}") calls | ≥ 95 %, 429s ≤ 1 % |
| full re-sync, $N companies (ids known): rate | $(minmax "${resync_rates[@]}") % of the limit, wall $(minmax "${resync_walls[@]}") s, 429s $(minmax "${resync_429[@]}") | ≥ 95 %, 429s ≤ 1 % |
| re-sync, nothing changed | $nc_calls API calls in $nc_wall s | 0 calls |
| re-sync, 1 % of accounts mutated ($changed changed records) | $ch_calls API calls for $ch_puts updates (+$((ch_calls - ch_puts)) overhead) | calls = changed (+ ≤ 2 %) |
| contact resolution, first run | $searches search calls for $users users ($(python3 -c "print(round($searches / max($users, 1) * 100, 2))") per 100 users) | ≤ 1 per 100 users |

The first push includes the company directory: the scroll API is one call per page and a
scroll cannot be parallelised (one scroll per app at a time), so its pages come at one per
round trip ($LATENCY ms); the PUTs of each page's companies are sent while the next pages are
read, so the scroll costs its calls and no extra time. The re-sync row is the loader's
sustained rate.
MD
# The figures bench/run.sh puts in its targets table.
printf 'companies\t%s\nfirst_push_rate\t%s\n' "$N" "$(minmax "${first_rates[@]}")" >"$WORK/figures.tsv"
log "wrote $OUT"
cat "$OUT"
