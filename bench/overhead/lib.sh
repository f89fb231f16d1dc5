# Shared shell functions for bench/overhead/run.sh and bench/stacks/run.sh. Source it; it defines:
#   upstream_start / upstream_stop       nginx fake upstream (bench/overhead/upstream, pinned to UPSTREAM_CPU)
#   start_pinned LOG CMD...              start CMD pinned to GW_CPU in the background; sets SUT_PID
#   wait_ready URL PID TIMEOUT_S         POST until a 200 with "usage" comes back (or the process dies)
#   stop_tree PID                        TERM the process and its descendants, KILL what is left
#   rss_mib PID                          RSS of the process tree, MiB
#   measure SYSTEM URL PID OUT           idle RSS, wrk warm-up + saturation run, ratebench at each of RATES
#                                        (not above the saturation rps when SKIP_SATURATED=1);
#                                        appends one JSON line per phase to OUT
#   fail_line SYSTEM MESSAGE OUT         records a system that could not be measured
# Knobs (env): GW_CPU [1], LG_CPU [0], UPSTREAM_CPU [0], CONNS [64], WARMUP [3], DURATION [10],
#   RATES ['50 200 1000'], RATE_DURATION [10], RATE_WARMUP [2], MAXINFLIGHT [1024], HEADERS ['Name: v|...'],
#   SKIP_SATURATED [1: a fixed rate above the wrk saturation rps is not run; the table shows it saturated],
#   NICE [-10 when root]: niceness of nginx, the system under test and the load generators, so that
#   other processes on a shared machine take CPU from them less;
#   QUIET_MAX [0.15] / QUIET_WAIT [20]: before each phase wait up to QUIET_WAIT s for the machine to be
#   below QUIET_MAX busy; FOREIGN_MAX [0.15] / RETRIES [1]: repeat a phase (up to RETRIES times) during
#   which other processes used more than FOREIGN_MAX CPUs. Other people's load on a shared machine
#   spoils the numbers; the "foreign CPU %" column of the tables shows how much there was.
# The load-generation approach (nginx fixed response, wrk closed loop, ratebench open loop, CPU pinning)
# follows shared/anchors/gateway/bench.sh (gateway-overhead anchors).

OVH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ANCHORS_HOME="${ANCHORS_HOME:-$HOME/.cache/gateway-anchors}"
RB="${RB:-$ANCHORS_HOME/bin/ratebench}"
BT="$OVH_DIR/benchtool.py"
GW_CPU="${GW_CPU:-1}"; LG_CPU="${LG_CPU:-0}"; export UPSTREAM_CPU="${UPSTREAM_CPU:-0}"
CONNS="${CONNS:-64}"; WARMUP="${WARMUP:-3}"; DURATION="${DURATION:-10}"
RATES="${RATES:-50 200 1000}"; RATE_DURATION="${RATE_DURATION:-10}"; RATE_WARMUP="${RATE_WARMUP:-2}"
MAXINFLIGHT="${MAXINFLIGHT:-1024}"; HEADERS="${HEADERS:-}"; SKIP_SATURATED="${SKIP_SATURATED:-1}"
NICE="${NICE:--10}"; [ "$(id -u)" = 0 ] || NICE=0
QUIET_MAX="${QUIET_MAX:-0.15}"; QUIET_WAIT="${QUIET_WAIT:-20}"; FOREIGN_MAX="${FOREIGN_MAX:-0.15}"; RETRIES="${RETRIES:-1}"
NGINX_PIDFILE="$OVH_DIR/run/nginx/nginx.pid"
BENCH_TMP="$(mktemp -d /tmp/tokenomy-bench.XXXXXX)"
BODY="$BENCH_TMP/body.json"
python3 "$BT" body fake-model > "$BODY"

upstream_start() {
  nice -n "$NICE" "$OVH_DIR/upstream/start.sh" >/dev/null
  local resp
  resp=$(curl -s -X POST http://127.0.0.1:8090/v1/chat/completions -H 'Content-Type: application/json' --data-binary @"$BODY")
  # the fixed answer must look like a real chat.completion with usage, or the comparison means little
  if ! echo "$resp" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["object"]=="chat.completion" and d["usage"]["total_tokens"]>0 and d["choices"][0]["message"]["content"]'; then
    echo "fake upstream did not answer a chat.completion with usage: $resp" >&2; return 1
  fi
  echo "fake upstream (nginx, CPU $UPSTREAM_CPU) up: $(cat "$NGINX_PIDFILE")"
}
upstream_stop() { "$OVH_DIR/upstream/stop.sh" >/dev/null 2>&1 || true; }

start_pinned() {
  local log="$1"; shift
  nice -n "$NICE" taskset -c "$GW_CPU" "$@" >"$log" 2>&1 &
  SUT_PID=$!
}

_curl_headers() {
  CURLH=(); RBH=()
  local hs h; IFS='|' read -ra hs <<< "$HEADERS"
  for h in "${hs[@]}"; do [ -n "$h" ] && CURLH+=(-H "$h") && RBH+=(-H "$h"); done
  return 0
}

wait_ready() {
  local url="$1" pid="$2" timeout="${3:-60}" code="" i
  _curl_headers
  for i in $(seq 1 $((timeout * 5))); do
    code=$(curl -s -o "$BENCH_TMP/ready.out" -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' \
      "${CURLH[@]}" --data-binary @"$BODY" 2>/dev/null)
    if [ "$code" = 200 ] && grep -q '"usage"' "$BENCH_TMP/ready.out"; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then echo "process $pid exited before answering" >&2; return 1; fi
    sleep 0.2
  done
  echo "no 200 with usage from $url after ${timeout}s (last code $code: $(head -c 300 "$BENCH_TMP/ready.out"))" >&2
  return 1
}

_descendants() {
  local frontier="$1" all="" next p
  while [ -n "$frontier" ]; do
    next=""; for p in $frontier; do next="$next $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')"; done
    frontier=$(echo $next); all="$all $frontier"
  done
  echo $all
}

stop_tree() {
  local pid="$1" kids i k
  [ -n "$pid" ] || return 0
  kids=$(_descendants "$pid")
  kill "$pid" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill "$k" 2>/dev/null; done
  sleep 0.2
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -9 "$k" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  return 0
}

rss_mib() { "$OVH_DIR/loadgen/rss.sh" "$1"; }

_quiet() {
  local q; q=$(python3 "$BT" quiet "$QUIET_MAX" "$QUIET_WAIT")
  echo "$q" | grep -q '"quiet": true' || echo "  WARNING: machine busy before phase: $q" >&2
}

fail_line() { python3 -c 'import json,sys; print(json.dumps({"system":sys.argv[1],"phase":"error","message":sys.argv[2]}))' "$1" "$2" >> "$3"; }

# one measured phase: KIND wrk|rate_N; retried (up to RETRIES times) when other processes used more than
# FOREIGN_MAX of the machine during it; sets PHASE_JSON (the line to append)
_phase() {
  local sys="$1" url="$2" pid="$3" kind="$4" upid j c f attempt
  upid="$(cat "$NGINX_PIDFILE" 2>/dev/null || echo null)"
  for attempt in $(seq 0 "$RETRIES"); do
    _quiet
    python3 "$BT" snap "${pid:-null}" "$upid" $$ > "$BENCH_TMP/a.json"
    if [ "$kind" = wrk ]; then
      j=$(BODY_FILE="$BODY" WRK_HEADERS="$HEADERS" nice -n "$NICE" taskset -c "$LG_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 30s \
          --latency -s "$OVH_DIR/loadgen/post.lua" "$url" | sed -n 's/^WRKJSON //p')
    else
      j=$(nice -n "$NICE" taskset -c "$LG_CPU" "$RB" -url "$url" -body "$BODY" -rate "${kind#rate_}" -duration "${RATE_DURATION}s" \
          -warmup "${RATE_WARMUP}s" -maxinflight "$MAXINFLIGHT" -expect '"usage"' "${RBH[@]}")
    fi
    python3 "$BT" snap "${pid:-null}" "$upid" $$ > "$BENCH_TMP/b.json"
    c=$(python3 "$BT" diff "$BENCH_TMP/a.json" "$BENCH_TMP/b.json")
    f=$(echo "$c" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["foreign_cpu_s"]/max(d["wall_s"],0.1),2))')
    if python3 -c "import sys; sys.exit(0 if $f <= $FOREIGN_MAX else 1)" || [ "$attempt" = "$RETRIES" ]; then break; fi
    echo "  [$sys] $kind: other processes used $f CPUs meanwhile; repeating the phase" >&2
    sleep 2
  done
  if [ "$kind" = wrk ]; then
    PHASE_JSON="{\"system\":\"$sys\",\"phase\":\"wrk\",\"conns\":$CONNS,\"result\":${j:-null},\"cpu\":$c,\"attempts\":$((attempt + 1))}"
  else
    PHASE_JSON="{\"system\":\"$sys\",\"phase\":\"$kind\",\"rate\":${kind#rate_},\"result\":${j:-null},\"cpu\":$c,\"attempts\":$((attempt + 1))}"
  fi
}

measure() {
  local sys="$1" url="$2" pid="$3" out="$4" rss rate sat
  _curl_headers
  [ -n "$pid" ] && rss=$(rss_mib "$pid") || rss=null
  echo "{\"system\":\"$sys\",\"phase\":\"rss_idle\",\"rss_mib\":$rss}" >> "$out"
  # wrk: warm-up (discarded), then the measured closed-loop run
  BODY_FILE="$BODY" WRK_HEADERS="$HEADERS" nice -n "$NICE" taskset -c "$LG_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" --timeout 30s \
    -s "$OVH_DIR/loadgen/post.lua" "$url" >/dev/null
  sleep 0.5
  _phase "$sys" "$url" "$pid" wrk; echo "$PHASE_JSON" >> "$out"
  echo "  [$sys] wrk c=$CONNS ${DURATION}s: $(echo "$PHASE_JSON" | python3 -c 'import json,sys; r=json.load(sys.stdin); d=r["result"]; c=r["cpu"]; print("rps=%.0f p50=%.2fms p99=%.2fms errors=%s foreign_cpu=%.2f" % (d["rps"], d["lat_ms"]["p50"], d["lat_ms"]["p99"], d["errors"], c["foreign_cpu_s"]/c["wall_s"])) if d else print("wrk produced no result")')"
  sat=$(echo "$PHASE_JSON" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(int(r["result"]["rps"]) if r.get("result") else 0)')
  for rate in $RATES; do
    # a fixed rate above the saturation rate measures only queueing (and takes long to drain): skip it
    if [ "$SKIP_SATURATED" = 1 ] && [ "$rate" -gt "$sat" ]; then
      echo "{\"system\":\"$sys\",\"phase\":\"rate_$rate\",\"rate\":$rate,\"skipped\":true,\"sat_rps\":$sat}" >> "$out"
      echo "  [$sys] rate=$rate: not run (above saturation, $sat rps)"; continue
    fi
    sleep 1
    _phase "$sys" "$url" "$pid" "rate_$rate"; echo "$PHASE_JSON" >> "$out"
    echo "  [$sys] rate=$rate: $(echo "$PHASE_JSON" | python3 -c 'import json,sys; r=json.load(sys.stdin); d=r["result"]; c=r["cpu"]; print("ok_rps=%.0f codes=%s dropped=%d bad_body=%d p50=%.2fms p99=%.2fms foreign_cpu=%.2f" % (d["achieved_ok_rps"], d["codes"], d["dropped_inflight_cap"], d["bad_body"], d["lat_ms"]["p50"], d["lat_ms"]["p99"], c["foreign_cpu_s"]/c["wall_s"])) if d else print("ratebench produced no result")')"
  done
}
