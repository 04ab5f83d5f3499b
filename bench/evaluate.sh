#!/usr/bin/env bash
# Regenerates docs/eval/: the course's experiments (run, sweep of p with the cache on and off,
# LRU trace, chaos) against a fresh exchange on this machine. Release build, the default
# configuration on free ports, data in a temp folder. About two minutes.
#   bench/evaluate.sh [OUT_DIR]
set -euo pipefail
OUT=$(realpath -m "${1:-docs/eval}")
mkdir -p "$OUT"
source "$(dirname "$0")/common.sh"
bench_setup
sed -i 's/^log = "warn"/log = "info"/' "$work/bench.toml"
cd "$work"
"$BIN/tradenet" --config bench.toml up > up.out 2> up.err & track $!
for _ in $(seq 1 200); do grep -q "Trade-Net is up" up.out 2>/dev/null && break; sleep 0.1; done
grep -q "Trade-Net is up" up.out || { cat up.err; echo "exchange did not start"; exit 1; }
# `up` made a cluster secret in ./data (which the client tool reads); curl needs it too.
auth=(-H "Authorization: Bearer $(cat data/cluster.secret)")
fe=(--frontend "http://$FE_ADDR")
ctl=(--control "http://$CONTROL_ADDR")
{
  echo "== machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "== run --p 0.6 --iterations 20 --clients 5"
  "$BIN/tradenet-client" run "${fe[@]}" --p 0.6 --iterations 20 --clients 5
  echo "== sweep --clients 5 --iterations 400"
  "$BIN/tradenet-client" sweep "${fe[@]}" "${ctl[@]}" --clients 5 --iterations 400 --out "$OUT"
  echo "== lru-trace (fresh cache)"
  curl -s "${auth[@]}" -X POST "http://$CONTROL_ADDR/control/v1/restart/frontend?cache_size=10" > /dev/null
  "$BIN/tradenet-client" lru-trace "${fe[@]}" --out "$OUT"
  echo "== chaos --duration 30 --every 5 --down 2 --clients 8"
  "$BIN/tradenet-client" chaos "${fe[@]}" "${ctl[@]}" --duration 30 --every 5 --down 2 --clients 8 --out "$OUT"
  rm -f "$OUT/chaos.csv"   # one row per request: too large to keep
  echo "== what the services logged about elections, recovery and reconciliation"
  grep -E "election|leads epoch|recovered|dropping|joined|records catalog|cache flushed" up.err | sed 's/^\(\[[^]]*\]\) \[[^ ]* /\1 /'
} 2>&1 | tee "$OUT/output.txt"
