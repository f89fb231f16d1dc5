#!/usr/bin/env bash
# Install everything the gateway-overhead benchmark needs, outside the project.
# Adapted from shared/anchors/gateway/install.sh (gateway-overhead anchors); changes: the fixed-rate
# load generator is built into $ANCHORS_HOME/bin (not into the work tree), Portkey is left out, and
# each part can be skipped (NEED_LITELLM=0, NEED_MINI=0).
#   Debian: nginx + echo module (fake upstream), wrk, golang-go (to build the fixed-rate load generator)
#   venvs under $ANCHORS_HOME: mini-venv (aiohttp+uvloop reference proxy), litellm-venv (LiteLLM proxy 1.109.1)
# Idempotent: a second run only checks.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ANCHORS_HOME="${ANCHORS_HOME:-$HOME/.cache/gateway-anchors}"; mkdir -p "$ANCHORS_HOME/bin"
export DEBIAN_FRONTEND=noninteractive
if ! { command -v nginx >/dev/null && command -v wrk >/dev/null && command -v go >/dev/null \
       && [ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ]; }; then
  echo "installing nginx, libnginx-mod-http-echo, wrk, golang-go (apt)"
  apt-get update -qq && apt-get install -y -qq nginx libnginx-mod-http-echo wrk golang-go >/dev/null
fi
RB="$ANCHORS_HOME/bin/ratebench"
if [ ! -x "$RB" ] || [ "$HERE/loadgen/ratebench.go" -nt "$RB" ]; then
  echo "building ratebench -> $RB"
  # Debian golang-go, stdlib only; no module downloads.
  (cd "$HERE/loadgen" && GOFLAGS=-mod=mod GO111MODULE=off GOCACHE="$ANCHORS_HOME/gocache" go build -o "$RB" ratebench.go)
fi
if [ "${NEED_MINI:-1}" = 1 ] && [ ! -x "$ANCHORS_HOME/mini-venv/bin/python" ]; then
  echo "creating $ANCHORS_HOME/mini-venv (aiohttp + uvloop)"
  python3 -m venv "$ANCHORS_HOME/mini-venv" && "$ANCHORS_HOME/mini-venv/bin/pip" install -q aiohttp uvloop
fi
if [ "${NEED_LITELLM:-1}" = 1 ] && [ ! -x "$ANCHORS_HOME/litellm-venv/bin/litellm" ]; then
  echo "creating $ANCHORS_HOME/litellm-venv (LiteLLM 1.109.1; a few minutes)"
  V="$ANCHORS_HOME/litellm-venv"; python3 -m venv "$V"
  "$V/bin/pip" install -q --no-deps 'litellm==1.109.1'
  # Its pinned requirements include two versions not on the package index here; relax just those two.
  "$V/bin/python" - > "$ANCHORS_HOME/litellm-reqs.txt" <<'PY'
import re
from importlib.metadata import requires
for r in requires("litellm") or []:
    if "extra ==" in r and "proxy" not in r: continue
    r = re.sub(r";.*", "", r).strip()
    r = re.sub(r"^certifi.*", "certifi", r)
    r = re.sub(r"^litellm-proxy-extras.*", "litellm-proxy-extras", r)
    print(r)
PY
  "$V/bin/pip" install -q -r "$ANCHORS_HOME/litellm-reqs.txt"
fi
echo "benchmark tools ready under $ANCHORS_HOME"
