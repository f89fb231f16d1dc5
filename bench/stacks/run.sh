#!/usr/bin/env bash
# Server/client stack comparison for the gateway: which Python stack can pass ~4,000 rps through on ONE core?
#
#   bench/stacks/run.sh                 all stacks, pass-through and +json variants (~20 minutes on a quiet machine)
#   STACKS="uvicorn+aiohttp granian-rsgi-uvloop+aiohttp" JSON_VARIANTS=1 bench/stacks/run.sh
#
# Each stack is a tiny pass-through proxy (bench/stacks/apps.py): POST /v1/chat/completions -> the
# nginx fake upstream on :8090 -> its body and status back. "+json" variants also orjson.loads the
# request (reads "model"), orjson.dumps it for the upstream, and orjson.loads + orjson.dumps the
# upstream answer, as a real gateway does. The proxy runs pinned to CPU 1; nginx and the load
# generators run on CPU 0. Per stack: idle RSS, wrk closed loop (c=64, WARMUP s discarded, DURATION s
# measured) for saturation rps, ratebench open loop at RATES for p50/p99, CPU ms per request.
#
# Env knobs: STACKS (names below) [all], JSON_VARIANTS ['0 1'], STACKS_VENV [~/.cache/tokenomy-stacks/venv,
# created with the packages below if missing], and those of bench/overhead/lib.sh (CONNS 64, WARMUP 3,
# DURATION 10, RATES '1000', RATE_DURATION 10, ...). Output: markdown table on stdout, raw JSON lines in
# bench/stacks/results/<timestamp>.jsonl, the table in bench/stacks/results/latest.md.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export RATES="${RATES:-1000}"
# shellcheck source=../overhead/lib.sh
source "$ROOT/bench/overhead/lib.sh"
# SERVER+CLIENT; servers: uvicorn uvicorn-accesslog uvicorn-h11 uvicorn-asyncio granian-asgi-uvloop granian-asgi-rloop granian-rsgi-uvloop granian-rsgi-rloop
# aiohttp-web aiohttp-lowlevel; clients: aiohttp httpx httpx2 raw (asyncio.Protocol + httptools, apps.py) none (no
# upstream call: the server's own cost)
ALL="direct uvicorn+aiohttp granian-asgi-uvloop+aiohttp granian-asgi-rloop+aiohttp granian-rsgi-uvloop+aiohttp
granian-rsgi-rloop+aiohttp aiohttp-web+aiohttp aiohttp-lowlevel+aiohttp uvicorn+httpx uvicorn+httpx2 uvicorn+raw granian-rsgi-uvloop+raw
uvicorn+none granian-rsgi-uvloop+none aiohttp-lowlevel+none uvicorn-accesslog+aiohttp uvicorn-h11+aiohttp uvicorn-asyncio+aiohttp"
STACKS="${STACKS:-$ALL}"; JSON_VARIANTS="${JSON_VARIANTS:-0 1}"
STACKS_VENV="${STACKS_VENV:-$HOME/.cache/tokenomy-stacks/venv}"
PORT=8300

# --- tools: nginx/wrk/go + ratebench (no LiteLLM needed here), and a venv with every stack's packages
NEED_LITELLM=0 NEED_MINI=0 bash "$ROOT/bench/overhead/install.sh" | grep -v '^benchmark tools ready' || true
if [ ! -x "$STACKS_VENV/bin/granian" ] || ! "$STACKS_VENV/bin/python" -c 'import rloop, httpx, httpx2, uvicorn, aiohttp, orjson, uvloop, httptools' 2>/dev/null; then
  echo "creating $STACKS_VENV"
  python3 -m venv "$STACKS_VENV" && "$STACKS_VENV/bin/pip" install -q aiohttp uvloop httptools uvicorn granian rloop orjson httpx httpx2
fi
PY="$STACKS_VENV/bin/python"
VERSIONS=$("$PY" - <<'EOF'
from importlib.metadata import version
print(", ".join(f"{p} {version(p)}" for p in ("aiohttp", "uvicorn", "uvloop", "httptools", "granian", "rloop", "httpx", "httpx2", "orjson")))
EOF
)

# stack NAME -> command line (uses $PORT); env STACK_CLIENT / STACK_JSON are set by the caller
stack_cmd() {
  local G=("$STACKS_VENV/bin/granian" --host 127.0.0.1 --port "$PORT" --workers 1 --http 1 --no-ws
           --no-access-log --log-level warning --backlog 4096 --working-dir "$HERE")
  local U=("$PY" -m uvicorn apps:asgi_app --app-dir "$HERE" --host 127.0.0.1 --port "$PORT" --loop uvloop
           --http httptools --no-access-log --log-level warning --backlog 4096 --no-server-header --no-date-header)
  case "$1" in
    uvicorn) echo "${U[@]}";;
    uvicorn-accesslog) echo "${U[@]/--no-access-log/--access-log}" --log-level info;;   # logs go to the stack's log file
    uvicorn-h11) echo "${U[@]/httptools/h11}";;
    uvicorn-asyncio) echo "${U[@]/uvloop/asyncio}";;
    granian-asgi-uvloop) echo "${G[@]}" --interface asgi --loop uvloop apps:asgi_app;;
    granian-asgi-rloop)  echo "${G[@]}" --interface asgi --loop rloop apps:asgi_app;;
    granian-rsgi-uvloop) echo "${G[@]}" --interface rsgi --loop uvloop apps:rsgi_app;;
    granian-rsgi-rloop)  echo "${G[@]}" --interface rsgi --loop rloop apps:rsgi_app;;
    aiohttp-web)         echo "$PY" "$HERE/apps.py" aiohttp "$PORT";;
    aiohttp-lowlevel)    echo "$PY" "$HERE/apps.py" aiohttp-lowlevel "$PORT";;
    *) return 1;;
  esac
}

mkdir -p "$HERE/results" "$HERE/run"
TS=$(date +%Y%m%d-%H%M%S); OUT="$HERE/results/stacks-$TS.jsonl"; : > "$OUT"
trap 'stop_tree "${SUT_PID:-}"; upstream_stop; rm -rf "$BENCH_TMP"' EXIT
upstream_start || exit 1
echo "stacks: $STACKS | json variants: $JSON_VARIANTS | wrk c=$CONNS ${DURATION}s | rates: $RATES"
for s in $STACKS; do
  if [ "$s" = direct ]; then
    echo "== direct (nginx, no proxy)"
    SUT_PID=""; measure "direct (nginx)" "http://127.0.0.1:8090/v1/chat/completions" "" "$OUT"
    continue
  fi
  for jv in $JSON_VARIANTS; do
    label="$s"; [ "$jv" = 1 ] && label="$s +json"
    server="${s%%+*}"; client="${s#*+}"; [ "$client" = "$s" ] && client=aiohttp
    cmd=$(stack_cmd "$server") || { echo "unknown stack $s" >&2; continue; }
    log="$HERE/run/${s/+/_}-json$jv.log"
    echo "== $label"
    # shellcheck disable=SC2086
    STACK_CLIENT=$client STACK_JSON=$jv start_pinned "$log" $cmd
    if ! wait_ready "http://127.0.0.1:$PORT/v1/chat/completions" "$SUT_PID" 30; then
      echo "  $label did not start; log:"; tail -15 "$log"
      fail_line "$label" "did not start (see bench/stacks/run/$(basename "$log"))" "$OUT"
      stop_tree "$SUT_PID"; SUT_PID=""; continue
    fi
    measure "$label" "http://127.0.0.1:$PORT/v1/chat/completions" "$SUT_PID" "$OUT"
    stop_tree "$SUT_PID"; SUT_PID=""
    sleep 1
  done
done
{
  echo "Stack comparison, $(date -Is), $(nproc) CPUs; proxy on CPU $GW_CPU, nginx + load on CPU $LG_CPU."
  echo "wrk -t1 -c$CONNS ${DURATION}s (after ${WARMUP}s warm-up); ratebench ${RATE_DURATION}s per rate; $VERSIONS."
  echo
  python3 "$BT" table stacks "$OUT"
} | tee "$HERE/results/latest.md"
echo "raw: $OUT"
