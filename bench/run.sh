#!/usr/bin/env bash
# Trade-Net's benchmark: the exchange and a plain actix-web server measured in the same run on
# this machine, so every figure has a ratio that survives a noisy machine.
# Prints `figure <name> <value> <unit>` lines, then the ratios, then the recovery figures. Release build, default config
# (fsync on), on free ports so a running exchange is not disturbed.
#   bench/run.sh            # about 3 minutes (ends with bench/recovery.sh)
#   DURATION=10 bench/run.sh
set -euo pipefail
DURATION=${DURATION:-5}
source "$(dirname "$0")/common.sh"
bench_setup
FE=http://$FE_ADDR
PLAIN=http://$PLAIN_ADDR
CONTROL=http://$CONTROL_ADDR

"$BIN/tradenet-client" plain --addr "$PLAIN_ADDR" --workers 2 & track $!
start_exchange() { # config file
  : > "$work/up.out"
  "$BIN/tradenet" --config "$1" up > "$work/up.out" 2> "$work/up.err" & up_pid=$!
  track $up_pid
  for _ in $(seq 1 200); do grep -q "Trade-Net is up" "$work/up.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "Trade-Net is up" "$work/up.out" || { cat "$work/up.err"; echo "exchange did not start"; exit 1; }
}
# One catalog first (bench.toml names [catalog] addr); a catalog group of two further down.
start_exchange "$work/bench.toml"
# `up` made a cluster secret; the client tool and curl need it for control and internal calls.
export TRADENET__CLUSTER__SECRET_FILE="$work/data/cluster.secret"
auth=(-H "Authorization: Bearer $(cat "$TRADENET__CLUSTER__SECRET_FILE")")

out="$work/figures"
: > "$out"
bench() { # name kind url connections [orders]
  "$BIN/tradenet-client" bench --name "$1" --kind "$2" --url "$3" --connections "$4" \
    --duration "$DURATION" --orders "${5:-1}" | tee -a "$out"
}
value() { awk -v n="$1" '$1=="figure" && $2==n {print $3}' "$out"; }
ratio() { # name numerator denominator
  awk -v a="$(value "$2")" -v b="$(value "$3")" -v n="$1" 'BEGIN { printf "figure %s %.2f x\n", n, (b > 0 ? a / b : 0) }' | tee -a "$out"
}

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
bench warmup lookup "$FE" 8 > /dev/null
bench plain_c1 lookup "$PLAIN" 1
bench plain_c64 lookup "$PLAIN" 64
bench hit_c1 lookup "$FE" 1
bench hit_c64 lookup "$FE" 64
bench trade_c1 trade "$FE" 1
bench trade_c64 trade "$FE" 64
orders=$(curl -s "$FE/status" | sed -n 's/.*"last_order":\([0-9]*\).*/\1/p' | sort -n | tail -1)
bench query_c64 query "$FE" 64 "${orders:-1}"
curl -s "${auth[@]}" -X POST "$CONTROL/control/v1/restart/frontend?cache_size=0" > /dev/null
bench miss_c64 lookup "$FE" 64
curl -s "${auth[@]}" -X POST "$CONTROL/control/v1/restart/frontend?cache_size=10" > /dev/null
"$BIN/tradenet-client" audit --catalog "http://$CAT_ADDR" --replica "http://$R3_ADDR" | tee -a "$out"
"$BIN/tradenet-client" failover --frontend "$FE" --control "$CONTROL" --rounds 3 | tee -a "$out"
"$BIN/tradenet-client" audit --catalog "http://$CAT_ADDR" --replica "http://$R3_ADDR" | tee -a "$out"

# The same trades with a catalog group of two (issue 12): the primary at CAT_ADDR, a standby
# following the order log at BASE+83, on a fresh data folder.
kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
CAT2_ADDR=127.0.0.1:$((BASE + 83))
sed "s|^data_dir = .*|data_dir = \"$work/data-two-catalogs\"|" "$work/bench.toml" > "$work/bench2.toml"
printf '[[catalogs]]\nid = 1\naddr = "%s"\n[[catalogs]]\nid = 2\naddr = "%s"\n' "$CAT_ADDR" "$CAT2_ADDR" >> "$work/bench2.toml"
# (It runs under the first exchange's secret, which TRADENET__CLUSTER__SECRET_FILE names.)
start_exchange "$work/bench2.toml"
bench warmup2 lookup "$FE" 8 > /dev/null
bench trade_two_catalogs_c1 trade "$FE" 1
bench trade_two_catalogs_c64 trade "$FE" 64
sleep 1 # the standby follows the log once a heartbeat
for c in "$CAT_ADDR" "$CAT2_ADDR"; do
  "$BIN/tradenet-client" audit --catalog "http://$c" --replica "http://$R3_ADDR" | tee -a "$out"
done

# etcd beside it: a 3-member etcd 3.4 (Debian's etcd-server) on loopback, fsync on, measured
# with the same load tool: durable puts through its JSON gateway, a fresh key each. An etcd
# put waits for a majority (2 of 3) to fsync its log; a trade waits for the catalog and every
# live replica (3 of 3) to fsync, and makes four calls between processes on the way.
etcd_bin=$(command -v etcd || true)
if [ -z "$etcd_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  echo "== installing Debian's etcd-server for the comparison"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server > /dev/null && etcd_bin=$(command -v etcd || true)
fi
if [ -n "$etcd_bin" ]; then
  echo "== etcd $("$etcd_bin" --version | sed -n 's/^etcd Version: //p'), 3 members on loopback"
  peers=""
  for i in 1 2 3; do peers="${peers:+$peers,}e$i=http://127.0.0.1:$((BASE + 96 + i))"; done
  for i in 1 2 3; do
    "$etcd_bin" --name "e$i" --data-dir "$work/etcd-$i" --logger zap --log-level error \
      --listen-client-urls "http://127.0.0.1:$((BASE + 93 + i))" \
      --advertise-client-urls "http://127.0.0.1:$((BASE + 93 + i))" \
      --listen-peer-urls "http://127.0.0.1:$((BASE + 96 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 96 + i))" \
      --initial-cluster "$peers" --initial-cluster-token tradenet-bench \
      --initial-cluster-state new 2> "$work/etcd-$i.log" & track $!
  done
  ETCD=http://127.0.0.1:$((BASE + 94))
  for _ in $(seq 1 100); do curl -sf "$ETCD/health" | grep -q '"health":"true"' && break; sleep 0.1; done
  curl -sf "$ETCD/health" | grep -q '"health":"true"' || { tail -5 "$work"/etcd-*.log; echo "etcd did not become healthy"; exit 1; }
  bench etcd_put_c1 etcd-put "$ETCD" 1
  bench etcd_put_c64 etcd-put "$ETCD" 64
else
  echo "== etcd not installed (and cannot be installed here): no etcd comparison"
fi

echo "== resident memory of each process at rest"
sleep 1
processes=$(curl -s "${auth[@]}" "$CONTROL/control/v1/processes" || true)
echo "$processes" | grep -o '"name":"[^"]*","pid":[0-9]*' | sed 's/"name":"\([^"]*\)","pid":\([0-9]*\)/\1 \2/' |
  while read -r name pid; do
    awk -v n="$name" '/VmRSS/ {printf "figure rss_%s %.1f MB\n", n, $2/1024}' "/proc/$pid/status"
  done | tr '-' '_' | tee -a "$out"
grep -q '"pid"' <<< "$processes" || echo "(no process listed by $CONTROL/control/v1/processes: ${processes:0:200})"

echo "== ratios (targets, issue 13: hit c64 >= 0.9x plain; miss and query c64 >= 0.5x; trade c64 >= 0.25x plain and >= 4x etcd; hit p50 c1 <= 1.3x)"
ratio hit_c1_p50_vs_plain hit_c1_p50 plain_c1_p50
ratio hit_c64_rps_vs_plain hit_c64_rps plain_c64_rps
ratio miss_c64_rps_vs_plain miss_c64_rps plain_c64_rps
ratio query_c64_rps_vs_plain query_c64_rps plain_c64_rps
ratio trade_c64_rps_vs_plain trade_c64_rps plain_c64_rps
echo "== two catalogs vs one (issue 12: trades within 20%)"
ratio trade_c64_rps_two_catalogs_vs_one trade_two_catalogs_c64_rps trade_c64_rps
ratio trade_c1_p50_two_catalogs_vs_one trade_two_catalogs_c1_p50 trade_c1_p50
if [ -n "$etcd_bin" ]; then
  ratio trade_c64_rps_vs_etcd trade_c64_rps etcd_put_c64_rps
  ratio trade_c1_p50_vs_etcd trade_c1_p50 etcd_put_c1_p50
  ratio trade_c1_rps_vs_etcd trade_c1_rps etcd_put_c1_rps
fi
heartbeat=200
awk -v f="$(value failover_max)" -v h=$heartbeat 'BEGIN { printf "figure failover_max_vs_budget %.2f x (budget 2 heartbeats + 50 ms = %d ms)\n", f / (2*h+50), 2*h+50 }' | tee -a "$out"

echo "== recovery: catch-up, start-up on a large log, memory (bench/recovery.sh)"
env -u TRADENET__CLUSTER__SECRET_FILE bash "$(dirname "$0")/recovery.sh"
