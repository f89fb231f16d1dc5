#!/usr/bin/env bash
# Copied unchanged from shared/anchors/gateway/upstream/stop.sh (gateway-overhead anchors).
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="$HERE/../run/nginx"
if [ -f "$RUN/nginx.pid" ]; then nginx -p "$RUN/" -c "$HERE/nginx.conf" -s quit && echo "upstream stopped"; fi
