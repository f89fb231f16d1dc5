#!/usr/bin/env bash
# Copied unchanged from shared/anchors/gateway/rss.sh (gateway-overhead anchors).
# rss.sh PID -> total resident memory (MiB) of PID and all its descendants (sum of VmRSS; shared pages counted per process).
pid="$1"; all="$pid"; frontier="$pid"
while [ -n "$frontier" ]; do next=""; for p in $frontier; do c=$(pgrep -P "$p" 2>/dev/null | tr '\n' ' '); next="$next $c"; done; frontier=$(echo $next); all="$all $frontier"; done
tot=0; for p in $all; do r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null); tot=$((tot + ${r:-0})); done
echo "$((tot / 1024))"
