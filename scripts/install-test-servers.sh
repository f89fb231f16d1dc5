#!/usr/bin/env bash
# Servers the test suite starts on loopback, from Debian packages (installed only when missing).
set -euo pipefail
need=()
# nothing yet: PostgreSQL, Redis and promtool join with the ledger and cache issues
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
