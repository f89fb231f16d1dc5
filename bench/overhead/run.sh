#!/usr/bin/env bash
# Gateway overhead: Tokenomy against the fake upstream called directly, a bare aiohttp pass-through
# proxy and the LiteLLM proxy (production settings), measured in one run on this machine.
#
#   bench/overhead/run.sh                              (make bench-overhead; ~25 minutes with REPS=3)
#   SYSTEMS="direct tokenomy" bench/overhead/run.sh    a subset
#   DURATION=5 RATE_DURATION=5 bench/overhead/run.sh   shorter phases
#
# Installs what it needs (bench/overhead/install.sh: nginx + echo module, wrk, golang-go from Debian;
# the ratebench load generator, the reference proxy's venv and LiteLLM 1.109.1's venv under
# ~/.cache/gateway-anchors), starts the nginx fake upstream on CPU 0 (it answers a fixed
# chat.completion with usage), then for each system: starts it pinned to CPU 1, waits until a chat
# completion comes back, records idle RSS, runs wrk (closed loop, c=CONNS, WARMUP s discarded, then
# DURATION s) for the saturation rate and ratebench (open loop, fixed arrival rate, latency from send to
# last byte) at each of RATES; load generators run on CPU 0. Prints one markdown table and writes it to
# bench/overhead/results/latest.md (raw JSON lines: results/overhead-<timestamp>.jsonl).
#
# Systems: direct, minimal (bare aiohttp pass-through), tokenomy (default config, miss path: every request
# carries Cache-Control: no-cache, so it is stored in the cache and recorded in the ledger), tokenomy-hits
# (same config and body: exact-cache hits), tokenomy-pyreqwest (the miss path with the opt-in pyreqwest
# upstream client; not in the default set), litellm. Every system runs REPS times, in turn.
# Env knobs: SYSTEMS ['direct minimal tokenomy tokenomy-hits litellm'], REPS [3], RATES ['50 200 1000'], DURATION [10],
#   WARMUP [3], RATE_DURATION [10], RATE_WARMUP [2], CONNS [64], SKIP_SATURATED [1: a fixed rate above
#   the system's saturation rps is not run (its latency is only queueing) and shows as saturated],
#   START_TIMEOUT [120 s], TOKENOMY_CMD [the tokenomy serve command], ANCHORS_HOME, NO_INSTALL [0],
#   and those in lib.sh (GW_CPU, LG_CPU, QUIET_*, FOREIGN_MAX, RETRIES, ...).
# Harness adapted from shared/anchors/gateway (install.sh, anchor.sh, bench.sh) of the gateway-overhead anchors.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SYSTEMS="${SYSTEMS:-direct minimal tokenomy tokenomy-hits litellm}"
REPS="${REPS:-3}"
START_TIMEOUT="${START_TIMEOUT:-120}"
ANCHORS_HOME="${ANCHORS_HOME:-$HOME/.cache/gateway-anchors}"
TOKENOMY_BIN="${TOKENOMY_BIN:-$ROOT/.venv/bin/tokenomy}"
TOKENOMY_CMD="${TOKENOMY_CMD:-$TOKENOMY_BIN serve --config $HERE/tokenomy.yaml --host 127.0.0.1 --port 8200}"
LITELLM_KEY="sk-bench-8b1b04820ff0c10f4d70a583cef4a9a31e868056b2d8eca687c5ff3466db21e3"  # master_key in configs/litellm-prod.yaml

if [ "${NO_INSTALL:-0}" != 1 ]; then
  need_litellm=0; need_mini=0
  case " $SYSTEMS " in *" litellm "*) need_litellm=1;; esac
  case " $SYSTEMS " in *" minimal "*) need_mini=1;; esac
  NEED_LITELLM=$need_litellm NEED_MINI=$need_mini bash "$HERE/install.sh" || { echo "install failed" >&2; exit 1; }
fi
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# system NAME -> sets S_LABEL, S_URL, S_HEADERS, S_CMD (empty: nothing to start), S_ENV (extra env)
system_def() {
  S_HEADERS=""; S_ENV=(); S_CMD=""
  case "$1" in
    direct)
      S_LABEL="direct (nginx)"; S_URL="http://127.0.0.1:8090/v1/chat/completions";;
    minimal)
      S_LABEL="bare aiohttp+uvloop proxy"; S_URL="http://127.0.0.1:8100/v1/chat/completions"
      S_CMD="$ANCHORS_HOME/mini-venv/bin/python $HERE/proxies/minimal_proxy.py --host 127.0.0.1 --port 8100 --route fake-model=http://127.0.0.1:8090";;
    litellm)
      S_LABEL="LiteLLM 1.109.1 (prod settings)"; S_URL="http://127.0.0.1:4001/v1/chat/completions"
      S_HEADERS="Authorization: Bearer $LITELLM_KEY"
      S_ENV=(LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION)
      S_CMD="$ANCHORS_HOME/litellm-venv/bin/litellm --config $HERE/configs/litellm-prod.yaml --host 127.0.0.1 --port 4001 --num_workers 1";;
    tokenomy)  # default config, every request a cache miss that is stored and recorded
      S_LABEL="Tokenomy default, miss path"; S_URL="http://127.0.0.1:8200/v1/chat/completions"
      S_HEADERS="Cache-Control: no-cache"
      S_ENV=(FAKE_KEY=sk-fake TOKENOMY_HOME="$BENCH_TMP/tokenomy-$REP")
      S_CMD="$TOKENOMY_CMD";;
    tokenomy-pyreqwest)  # the miss path with the opt-in pyreqwest upstream client (server.upstream_client)
      S_LABEL="Tokenomy default + pyreqwest client, miss path"; S_URL="http://127.0.0.1:8200/v1/chat/completions"
      S_HEADERS="Cache-Control: no-cache"
      S_ENV=(FAKE_KEY=sk-fake TOKENOMY_HOME="$BENCH_TMP/tokenomy-pyreqwest-$REP")
      S_CMD="$TOKENOMY_BIN serve --config $HERE/tokenomy-pyreqwest.yaml --host 127.0.0.1 --port 8200";;
    tokenomy-hits)  # same config and body: after the first request every answer is an exact-cache hit
      S_LABEL="Tokenomy default, exact-cache hits"; S_URL="http://127.0.0.1:8200/v1/chat/completions"
      S_ENV=(FAKE_KEY=sk-fake TOKENOMY_HOME="$BENCH_TMP/tokenomy-hits-$REP")
      S_CMD="$TOKENOMY_CMD";;
    *) return 1;;
  esac
}

mkdir -p "$HERE/results" "$HERE/run"
TS=$(date +%Y%m%d-%H%M%S); OUTS=()
SUT_PID=""
trap 'stop_tree "$SUT_PID"; upstream_stop; rm -rf "$BENCH_TMP"' EXIT
trap 'exit 130' INT TERM
upstream_start || exit 1
echo "systems: $SYSTEMS | $REPS repetitions | wrk c=$CONNS ${DURATION}s (+${WARMUP}s warm-up) | fixed rates: $RATES (${RATE_DURATION}s each)"
for REP in $(seq 1 "$REPS"); do
OUT="$HERE/results/overhead-$TS-rep$REP.jsonl"; : > "$OUT"; OUTS+=("$OUT")
echo "== repetition $REP of $REPS"
for name in $SYSTEMS; do
  system_def "$name" || { echo "unknown system $name (known: direct minimal tokenomy tokenomy-pyreqwest tokenomy-hits litellm)" >&2; continue; }
  echo "== $S_LABEL"
  export HEADERS="$S_HEADERS"
  SUT_PID=""
  if [ -n "$S_CMD" ]; then
    bin="${S_CMD%% *}"
    if [ ! -x "$bin" ]; then
      echo "  $bin not found; skipping"; fail_line "$S_LABEL" "not installed ($bin)" "$OUT"; continue
    fi
    log="$HERE/run/$name.log"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    start_pinned "$log" env "${S_ENV[@]}" $S_CMD
    if ! wait_ready "$S_URL" "$SUT_PID" "$START_TIMEOUT"; then
      echo "  $S_LABEL did not answer; log tail:"; tail -15 "$log" | sed 's/^/    /'
      fail_line "$S_LABEL" "did not answer a chat completion (log: bench/overhead/run/$name.log)" "$OUT"
      stop_tree "$SUT_PID"; SUT_PID=""; continue
    fi
    echo "  ready after $(python3 -c "import time; print(round(time.time() - $t0, 1))") s (pid $SUT_PID)"
    sleep 1  # let start-up work settle before the idle RSS reading
  else
    wait_ready "$S_URL" "" 5 || { fail_line "$S_LABEL" "no answer" "$OUT"; continue; }
  fi
  measure "$S_LABEL" "$S_URL" "$SUT_PID" "$OUT"
  if [ -n "$SUT_PID" ]; then
    echo "{\"system\":\"$S_LABEL\",\"phase\":\"rss_final\",\"rss_mib\":$(rss_mib "$SUT_PID")}" >> "$OUT"
    stop_tree "$SUT_PID"; SUT_PID=""
  fi
  sleep 1
done
done
{
  echo "Gateway overhead, $(date -Is), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
  echo "System under test pinned to CPU $GW_CPU; nginx fake upstream and load generators on CPU $LG_CPU."
  echo "Saturation: wrk -t1 -c$CONNS ${DURATION}s after ${WARMUP}s warm-up. Latency: ratebench fixed rate, ${RATE_DURATION}s per rate, send to last byte."
  echo "$REPS repetitions of every system in turn; cells are the median (min-max) over them; the % column compares"
  echo "each repetition's saturation with the bare pass-through's in the same repetition."
  echo
  python3 "$BT" reps "${OUTS[@]}"
  echo
  echo "Last repetition in full:"
  echo
  python3 "$BT" table overhead "$OUT"
} > "$HERE/results/latest.md"
echo; cat "$HERE/results/latest.md"
echo; echo "written: bench/overhead/results/latest.md (raw: bench/overhead/results/overhead-$TS-rep*.jsonl)"
