#!/usr/bin/env bash
# Recovery figures: a replica that missed N orders catching up from its peers, a replica
# starting on a log of M orders, and resident memory afterwards. Release build; fsync on.
#   bench/recovery.sh            # N = 100000, M = 1000000
set -euo pipefail
GAP=${GAP:-100000}
LOG=${LOG:-1000000}
source "$(dirname "$0")/common.sh"
bench_setup
now_ms() { date +%s%3N; }
wait_healthy() { # addr -> elapsed ms since $2
  until curl -sf "http://$1/ready" > /dev/null; do sleep 0.005; done
  echo $(( $(now_ms) - $2 ))
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# 1. Catch-up: replicas 2 and 3 hold GAP orders, replica 1 none. A returning replica is brought
# in step by the leader's stream (byte-bounded batches), so a catalog and a front end run too:
# the front end makes replica 3 leader, then replica 1 starts empty and is timed until it is
# ready (in step) and its file is byte-identical.
for id in 2 3; do mkdir -p "$work/data/order-$id"; "$BIN/tradenet-client" gen-log --orders "$GAP" --out "$work/data/order-$id/orders.jsonl" > /dev/null; done
"$BIN/tradenet" --config "$work/bench.toml" catalog & track $!
"$BIN/tradenet" --config "$work/bench.toml" order --id 2 & track $!
"$BIN/tradenet" --config "$work/bench.toml" order --id 3 & track $!
"$BIN/tradenet" --config "$work/bench.toml" frontend & track $!
t=$(now_ms); wait_healthy "$R2_ADDR" "$t" > /dev/null; wait_healthy "$R3_ADDR" "$t" > /dev/null
for _ in $(seq 1 200); do
  curl -s "http://$R3_ADDR/internal/v1/state" | grep -q '"role":"leader"' && break
  sleep 0.05
done
curl -s "http://$R3_ADDR/internal/v1/state" | grep -q '"role":"leader"' || { echo "replica 3 did not become leader"; exit 1; }
t=$(now_ms)
"$BIN/tradenet" --config "$work/bench.toml" order --id 1 & p1=$!; track $p1
ms=$(wait_healthy "$R1_ADDR" "$t")
same=no
for _ in $(seq 1 100); do
  cmp -s "$work/data/order-1/orders.jsonl" "$work/data/order-3/orders.jsonl" && { same=yes; break; }
  sleep 0.01
done
[ "$same" = yes ] || { echo "replica 1 is not byte-identical to replica 3 after it reported ready"; exit 1; }
echo "replica 1 is byte-identical to replica 3 after catch-up"
echo "figure catchup_${GAP}_ms $ms ms"
echo "figure catchup_rss_replica1 $(rss_mb $p1) MB"
for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
pids=()

# 2. Start-up on a log of LOG orders, alone (no peer answers).
rm -rf "$work/data"; mkdir -p "$work/data/order-1"
"$BIN/tradenet-client" gen-log --orders "$LOG" --out "$work/data/order-1/orders.jsonl" > /dev/null
echo "log of $LOG orders: $(du -h "$work/data/order-1/orders.jsonl" | cut -f1)"
t=$(now_ms)
"$BIN/tradenet" --config "$work/bench.toml" order --id 1 & p1=$!; track $p1
ms=$(wait_healthy "$R1_ADDR" "$t")
echo "figure startup_${LOG}_ms $ms ms"
sleep 1
echo "figure startup_rss_at_rest $(rss_mb $p1) MB"
