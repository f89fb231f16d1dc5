#!/usr/bin/env bash
# Overload behaviour: Tokenomy (CPU 1) offered fixed rates above its saturation point by ratebench
# (CPU 0) against the nginx fake upstream. Shows that it sheds (503 + Retry-After) instead of
# queueing: errors stay 0 and latency stays bounded. Run bench/overhead/run.sh once first (installs).
#   bench/overhead/overload.sh            RATES="4000 8000 12000" DURATION=5s by default
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
RATES="${RATES:-4000 8000 12000}"; DURATION="${DURATION:-5s}"
RB="${ANCHORS_HOME:-$HOME/.cache/gateway-anchors}/bin/ratebench"
bash "$HERE/upstream/start.sh" >/dev/null
FAKE_KEY=sk-fake taskset -c 1 "$ROOT/.venv/bin/tokenomy" serve --config "$HERE/tokenomy.yaml" --port 8200 \
  > "$HERE/run/overload-tokenomy.log" 2>&1 &
PID=$!; trap 'kill $PID 2>/dev/null; bash "$HERE/upstream/stop.sh" >/dev/null 2>&1' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:8200/healthz && break; sleep 0.1; done
BODY="$(mktemp)"; python3 "$HERE/benchtool.py" body fake-model > "$BODY"
echo "| offered rps | ok rps | 200 | 503 | other | p50 / p99 / max ms |"
echo "|---|---|---|---|---|---|"
for r in $RATES; do
  taskset -c 0 "$RB" -url http://127.0.0.1:8200/v1/chat/completions -body "$BODY" -rate "$r" -duration "$DURATION" \
    -warmup 1s 2>/dev/null | tail -1 | python3 "$HERE/overload_row.py"
done
