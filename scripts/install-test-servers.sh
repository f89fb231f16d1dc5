#!/usr/bin/env bash
# Servers the test suite starts on loopback, from Debian packages (installed only when missing):
# PostgreSQL (ledger store), Redis (cache and limits), promtool (checks /metrics), Node.js and the
# JavaScript clients the tests use as callers (tests/js: the Vercel AI SDK), and Chromium (the
# dashboard's browser tests drive Debian's Chromium through Playwright; no browser is downloaded).
set -euo pipefail
need=()
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus)
command -v npm >/dev/null || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "installing test servers: ${need[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the packages start system services; the tests run their own on loopback instead
  for svc in postgresql redis-server prometheus; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi
# the JavaScript callers, pinned by tests/js/package-lock.json
tests_js="$(dirname "$0")/../tests/js"
if [ ! -d "$tests_js/node_modules/ai" ]; then
  npm ci --prefix "$tests_js" --no-audit --no-fund --loglevel=error
fi
