# Shared by the bench scripts: release build, a temp folder, a config on its own ports, and
# cleanup of every process started (by PID) when the script ends. Source it; then call
# `bench_setup PORT_BASE [CONTROL_ADDR]`, which sets BIN, work and the config $work/bench.toml
# (front end PORT_BASE+81, catalog +82, replicas +91..+93), and `track PID` for each process.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pids=()
track() { pids+=("$1"); }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
bench_setup() {
  local base=$1 control=${2:-}
  cargo build --release -q --workspace
  BIN=$PWD/target/release
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
