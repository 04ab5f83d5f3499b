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
  [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
# A port base with BASE+79..BASE+99 free on 127.0.0.1, tried from a random start.
free_base() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 31000, 100)
    socks = []
    try:
        for port in range(base + 79, base + 100):
            s = socket.socket(); s.bind(("127.0.0.1", port)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
else:
    raise SystemExit("no free port range found")
PY
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
