#!/usr/bin/env bash
# Exact-cache hits at the gateway: saturation throughput (wrk, closed loop, one core) and latency at
# fixed rates (ratebench, send to last byte), for the same deterministic request answered from the
# cache (hits) and, for reference, with the cache off (every request proxied to the nginx upstream).
# Same harness as bench/overhead (nginx fake upstream, CPU pinning).
#
#   bench/cache/exact.sh                     (make bench-cache runs this and bench/cache/semantic.py)
#   RATES="1000 3000" DURATION=10 bench/cache/exact.sh
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OVH="$ROOT/bench/overhead"
export DURATION="${DURATION:-10}" RATES="${RATES:-1000 3000 5000}" RETRIES="${RETRIES:-1}"
[ "${NO_INSTALL:-0}" = 1 ] || NEED_LITELLM=0 NEED_MINI=0 bash "$OVH/install.sh" || exit 1
# shellcheck source=../overhead/lib.sh
source "$OVH/lib.sh"
WORK="$(mktemp -d /tmp/tokenomy-cache-bench.XXXXXX)"
SUT_PID=""
trap 'stop_tree "$SUT_PID"; upstream_stop; rm -rf "$BENCH_TMP" "$WORK"' EXIT
upstream_start || exit 1
OUT="$WORK/runs.jsonl"; : > "$OUT"

for name in ${CONFIGS:-hits cache-off}; do
  cfg="$WORK/$name.yaml"
  { case "$name" in
      hits) echo "cache: {exact: {path: $WORK/cache.db}}";;
      hits-no-ledger) echo "cache: {exact: {path: $WORK/cache2.db}}"; echo "ledger: {enabled: false}";;
      cache-off) echo "cache: {exact: {enabled: false}}";;
    esac
    [ "$name" = hits-no-ledger ] || echo "ledger: {path: $WORK/ledger.db}"
    sed -n '/^models:/,$p' "$OVH/tokenomy.yaml"; } > "$cfg"
  start_pinned "$WORK/$name.log" env FAKE_KEY=sk-fake TOKENOMY_HOME="$WORK" "$ROOT/.venv/bin/tokenomy" serve \
    --config "$cfg" --host 127.0.0.1 --port 8200
  wait_ready "http://127.0.0.1:8200/v1/chat/completions" "$SUT_PID" 60 || { tail "$WORK/$name.log"; exit 1; }
  measure "$name" "http://127.0.0.1:8200/v1/chat/completions" "$SUT_PID" "$OUT" | grep -v '^$'
  stop_tree "$SUT_PID"; SUT_PID=""
  sleep 1
done
{
  echo "Exact-cache hits, $(date -Is), gateway pinned to CPU $GW_CPU; wrk/ratebench and nginx on CPU $LG_CPU."
  echo
  python3 "$BT" table overhead "$OUT"
} | tee "$HERE/results-exact.md"
