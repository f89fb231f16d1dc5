#!/usr/bin/env bash
# Copied from shared/anchors/gateway/upstream/start.sh (gateway-overhead anchors); run dir is bench/overhead/run/nginx.
# Start the fake upstream (nginx, 1 worker) pinned to CPU ${UPSTREAM_CPU:-0}.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="$HERE/../run/nginx"
mkdir -p "$RUN"
if [ -f "$RUN/nginx.pid" ] && kill -0 "$(cat "$RUN/nginx.pid")" 2>/dev/null; then echo "upstream already running (pid $(cat "$RUN/nginx.pid"))"; exit 0; fi
taskset -c "${UPSTREAM_CPU:-0}" nginx -p "$RUN/" -c "$HERE/nginx.conf"
sleep 0.3
echo "upstream master pid $(cat "$RUN/nginx.pid")"
