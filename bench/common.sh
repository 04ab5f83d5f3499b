# Shared by the bench scripts: release build, a temp folder, a config on free ports, and
# cleanup of every process started (by PID) when the script ends. Source it; then call
# `bench_setup`, which sets BIN (honouring CARGO_TARGET_DIR), work, the config
# $work/bench.toml and the addresses below, and `track PID` for each process.
#   BASE: a port base where BASE+79..BASE+99 are all free (another exchange may run on 8079-8093)
#   CONTROL_ADDR (+79), FE_ADDR (+81), CAT_ADDR (+82), PLAIN_ADDR (+90), R1_ADDR..R3_ADDR (+91..+93);
#   +94..+99 are left for bench/run.sh's etcd members
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pids=()
track() { pids+=("$1"); }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  netns_teardown
  [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
# A port base with BASE+79..BASE+99 free on 127.0.0.1, tried from a random start.
free_base() {
  echo $(($(python3 bench/free-ports.py 1 --run 21) - 79))
}
bench_setup() {
  cargo build --release -q --workspace
  BIN=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")/release
  BASE=$(free_base)
  CONTROL_ADDR=127.0.0.1:$((BASE + 79)) FE_ADDR=127.0.0.1:$((BASE + 81))
  CAT_ADDR=127.0.0.1:$((BASE + 82)) PLAIN_ADDR=127.0.0.1:$((BASE + 90))
  R1_ADDR=127.0.0.1:$((BASE + 91)) R2_ADDR=127.0.0.1:$((BASE + 92)) R3_ADDR=127.0.0.1:$((BASE + 93))
  local base=$BASE control=$CONTROL_ADDR
  work=$(mktemp -d)
  cat > "$work/bench.toml" <<TOML
data_dir = "$work/data"
log = "warn"
[catalog]
addr = "127.0.0.1:$((base + 82))"
[frontend]
addr = "127.0.0.1:$((base + 81))"
[launcher]
control_addr = "$control"
[[replicas]]
id = 1
addr = "127.0.0.1:$((base + 91))"
[[replicas]]
id = 2
addr = "127.0.0.1:$((base + 92))"
[[replicas]]
id = 3
addr = "127.0.0.1:$((base + 93))"
TOML
}

# --- Hosts on an emulated network (bench/evaluate.sh --netns); needs root and iproute2. ---
# `netns_setup DELAY_MS` (after bench_setup) builds a bridge in this namespace (which gets the
# bridge's first address, so the launcher's readiness probes and curl reach every service),
# one network namespace per service and one for the client, each with a veth into the bridge
# whose namespace end delays every packet it sends by DELAY_MS (tc netem, or NFQUEUE and
# bench/netdelay.py where the kernel has no netem): each direction of
# each hop between two namespaces costs DELAY_MS, a round trip twice that. It rewrites
# $work/bench.toml with the namespaces' addresses and `[launcher] wrap`, so that `tradenet up`
# starts each service inside its namespace, and sets FE_ADDR, CONTROL_ADDR, CLIENT_NS and
# NETNS_DELAY_HOW. Must run in the repository's root (bench_setup goes there).
# The cleanup trap removes it all.
netns_tag=""
netns_names=()
netns_teardown() {
  [ -n "$netns_tag" ] || return 0
  for ns in "${netns_names[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "${netns_tag}br" 2>/dev/null || true
  netns_tag=""
}
netns_setup() {
  local delay=$1 k=$((RANDOM % 200 + 20))
  netns_tag="te$k"
  local subnet="10.231.$k" br="${netns_tag}br" i=0
  ip link add "$br" type bridge
  ip addr add "$subnet.1/24" dev "$br"
  ip link set "$br" up
  # service name -> last byte of its address
  local -A byte=([catalog]=2 [frontend]=3 [order-1]=11 [order-2]=12 [order-3]=13 [client]=50)
  for name in catalog order-1 order-2 order-3 frontend client; do
    local ns="$netns_tag-$name" inner="${netns_tag}v${i}i" port="${netns_tag}v${i}p"
    i=$((i + 1))
    ip netns add "$ns"
    netns_names+=("$ns")
    ip link add "$inner" type veth peer name "$port"
    ip link set "$inner" netns "$ns"
    ip link set "$port" master "$br" up
    ip -n "$ns" addr add "$subnet.${byte[$name]}/24" dev "$inner"
    ip -n "$ns" link set "$inner" up
    ip -n "$ns" link set lo up
    if ip netns exec "$ns" tc qdisc add dev "$inner" root netem delay "${delay}ms" 2>/dev/null; then
      NETNS_DELAY_HOW="tc netem"
    else
      # A kernel without netem (CONFIG_NET_SCH_NETEM): the namespace's iptables hands every
      # packet leaving through the veth to bench/netdelay.py, which lets it go DELAY_MS later.
      NETNS_DELAY_HOW="NFQUEUE + bench/netdelay.py (this kernel has no netem)"
      ip netns exec "$ns" iptables -A OUTPUT -o "$inner" -j NFQUEUE --queue-num 0 --queue-bypass
      ip netns exec "$ns" python3 bench/netdelay.py 0 "$delay" 2>> "$work/netdelay.err" &
      track $!
    fi
  done
  CLIENT_NS="$netns_tag-client"
  CONTROL_ADDR=$subnet.1:$((BASE + 79)) FE_ADDR=$subnet.3:8081
  cat > "$work/bench.toml" <<TOML
data_dir = "$work/data"
log = "warn"
[catalog]
addr = "$subnet.2:8082"
[frontend]
addr = "$FE_ADDR"
[launcher]
control_addr = "$CONTROL_ADDR"
wrap = "ip netns exec $netns_tag-{name}"
[[replicas]]
id = 1
addr = "$subnet.11:8091"
[[replicas]]
id = 2
addr = "$subnet.12:8092"
[[replicas]]
id = 3
addr = "$subnet.13:8093"
TOML
  sleep 0.5   # the delayers bind their queues
}
