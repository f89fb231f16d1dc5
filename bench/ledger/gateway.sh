#!/usr/bin/env bash
# The ledger's cost on the request path: Tokenomy's saturation throughput (one core, wrk closed loop
# against the nginx fake upstream, as in bench/overhead) with the ledger off, on without a store
# (token/cost metrics only) and on with SQLite. Rounds alternate the configurations so drift on a
# shared machine hits all of them alike; the table reports the median of the rounds.
#
#   bench/ledger/gateway.sh                 (make bench-ledger runs this and the other ledger benches)
#   ROUNDS=5 DURATION=10 bench/ledger/gateway.sh
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OVH="$ROOT/bench/overhead"
ROUNDS="${ROUNDS:-3}"
export DURATION="${DURATION:-10}" RATES="1000000" SKIP_SATURATED=1 RETRIES="${RETRIES:-1}"  # saturation only
[ "${NO_INSTALL:-0}" = 1 ] || NEED_LITELLM=0 NEED_MINI=0 bash "$OVH/install.sh" || exit 1
# shellcheck source=../overhead/lib.sh
source "$OVH/lib.sh"
WORK="$(mktemp -d /tmp/tokenomy-ledger-bench.XXXXXX)"
SUT_PID=""
trap 'stop_tree "$SUT_PID"; upstream_stop; rm -rf "$BENCH_TMP" "$WORK"' EXIT
upstream_start || exit 1
OUT="$WORK/runs.jsonl"; : > "$OUT"

config() {  # NAME -> a config file for that ledger setting
  local f="$WORK/$1.yaml"
  { echo "cache: {exact: {enabled: false}}"  # the bench body is deterministic: measure the proxy path
    sed -n '/^models:/,$p' "$OVH/tokenomy.yaml"
    case "$1" in
      off) echo "ledger: {enabled: false}";;
      metrics-only) echo "ledger: {store: none${LEDGER_OPTS:+, $LEDGER_OPTS}}";;
      sqlite) echo "ledger: {store: sqlite, path: $WORK/ledger.db${LEDGER_OPTS:+, $LEDGER_OPTS}}";;
    esac; } > "$f"
  echo "$f"
}

for round in $(seq 1 "$ROUNDS"); do
  for name in ${CONFIGS:-off metrics-only sqlite}; do
    start_pinned "$WORK/$name.log" env FAKE_KEY=sk-fake TOKENOMY_HOME="$WORK" "$ROOT/.venv/bin/tokenomy" serve \
      --config "$(config "$name")" --host 127.0.0.1 --port 8200
    wait_ready "http://127.0.0.1:8200/v1/chat/completions" "$SUT_PID" 60 || { tail "$WORK/$name.log"; exit 1; }
    measure "ledger $name" "http://127.0.0.1:8200/v1/chat/completions" "$SUT_PID" "$OUT" | grep -v '^$'
    stop_tree "$SUT_PID"; SUT_PID=""
    sleep 1
  done
done
records=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/ledger.db').execute('select count(*) from requests').fetchone()[0])")
python3 "$HERE/gateway_table.py" "$OUT" "$records" | tee "$HERE/results-gateway.md"
