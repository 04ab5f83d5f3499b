#!/usr/bin/env bash
# Regenerates docs/eval/: the course's experiments (run, sweep of p with the cache on and off,
# LRU trace, chaos) against a fresh exchange on this machine. Release build, the default
# configuration on free ports, data in a temp folder. About two minutes.
#   bench/evaluate.sh [OUT_DIR]
#   bench/evaluate.sh --netns [DELAY_MS] [OUT_DIR]     (root; OUT_DIR defaults to docs/eval-netns)
# --netns runs the same experiments "as on real hosts": every service in its own network
# namespace, the client in another, all joined by a bridge, each namespace's link delaying
# what it sends by DELAY_MS (default 0.5 ms each way, as between hosts in one data centre;
# tc netem, or NFQUEUE and bench/netdelay.py on a kernel without netem). Both experiments'
# sweeps start each half on a fresh exchange. See docs/evaluation.md, section 5.
set -euo pipefail
NETNS=0 DELAY=0.5
if [ "${1:-}" = --netns ]; then
  NETNS=1
  shift
  if [[ "${1:-}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then DELAY=$1; shift; fi
  OUT=$(realpath -m "${1:-docs/eval-netns}")
else
  OUT=$(realpath -m "${1:-docs/eval}")
fi
mkdir -p "$OUT"
source "$(dirname "$0")/common.sh"
bench_setup
client=("$BIN/tradenet-client")
network="loopback"
if [ "$NETNS" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "--netns needs root (network namespaces, tc)"; exit 1; }
  netns_setup "$DELAY"
  client=(ip netns exec "$CLIENT_NS" "$BIN/tradenet-client")
  network="one network namespace per service and one for the client on a bridge, every packet delayed ${DELAY} ms on leaving its namespace ($NETNS_DELAY_HOW)"
fi
sed -i 's/^log = "warn"/log = "info"/' "$work/bench.toml"
cd "$work"
"$BIN/tradenet" --config bench.toml up > up.out 2> up.err & track $!
for _ in $(seq 1 300); do grep -q "Trade-Net is up" up.out 2>/dev/null && break; sleep 0.1; done
grep -q "Trade-Net is up" up.out || { cat up.err; echo "exchange did not start"; exit 1; }
# `up` made a cluster secret in ./data (which the client tool reads); curl needs it too.
auth=(-H "Authorization: Bearer $(cat data/cluster.secret)")
fe=(--frontend "http://$FE_ADDR")
ctl=(--control "http://$CONTROL_ADDR")
start=$(date +%s)
{
  echo "== machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "== network: $network"
  echo "== run --p 0.6 --iterations 20 --clients 5"
  "${client[@]}" run "${fe[@]}" --p 0.6 --iterations 20 --clients 5
  echo "== sweep --clients 5 --iterations 400 (each half on a fresh exchange)"
  "${client[@]}" sweep "${fe[@]}" "${ctl[@]}" --clients 5 --iterations 400 --out "$OUT"
  echo "== lru-trace (fresh cache)"
  curl -s "${auth[@]}" -X POST "http://$CONTROL_ADDR/control/v1/restart/frontend?cache_size=10" > /dev/null
  "${client[@]}" lru-trace "${fe[@]}" --out "$OUT"
  echo "== chaos --duration 30 --every 5 --down 2 --clients 8"
  "${client[@]}" chaos "${fe[@]}" "${ctl[@]}" --duration 30 --every 5 --down 2 --clients 8 --out "$OUT"
  rm -f "$OUT/chaos.csv"   # one row per request: too large to keep
  echo "== what the services logged about elections, recovery and reconciliation"
  grep -E "election|leads epoch|recovered|dropping|joined|records catalog|cache flushed|reset" up.err | sed 's/^\(\[[^]]*\]\) \[[^ ]* /\1 /'
  echo "== experiments took $(( $(date +%s) - start )) s"
} 2>&1 | tee "$OUT/output.txt"
