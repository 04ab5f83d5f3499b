#!/usr/bin/env bash
# Fuzzes the front end's public API against its own OpenAPI document with schemathesis.
#
# Starts a whole cluster (`tradenet up`: catalog, three order replicas, front end) on free
# loopback ports with a throw-away data folder, waits for the front end's /ready, then runs
# schemathesis against http://<front end>/openapi.json (generated from the wire types,
# web/src/openapi.rs) with these checks:
#   not_a_server_error           no 5xx at all: a healthy cluster has a leader and a catalog,
#                                so even the documented 503 (no leader in time) and 500 (a
#                                damaged file) are failures here;
#   status_code_conformance      every status answered is documented for its operation;
#   content_type_conformance     every answer has the documented Content-Type;
#   response_schema_conformance  every body fits the documented schema ({"data": ...} or the
#                                error object);
#   unsupported_method           a method a path does not answer gets 405 with an Allow header.
# Bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation and round (default 100), and
# SCHEMATHESIS_MAX_TIME seconds for the whole run (default 60; fuzzing repeats until it is
# spent), under an outer `timeout`. SCHEMATHESIS_SEED replays a run (the seed is printed).
#
# Needs the binary built (`cargo build -p tradenet`; TRADENET_BIN, default
# target/debug/tradenet) and python3 with venv (installed with apt-get where missing).
# Schemathesis is pip-installed once into a venv under
# ${TRADENET_CI_CACHE:-${XDG_CACHE_HOME:-/var/cache}/tradenet-ci}. The cluster is stopped by its
# launcher's PID (SIGTERM, then SIGKILL to its process group) whatever happens. Exits non-zero,
# saying why, when anything fails.
set -euo pipefail

# A relative TRADENET_BIN is the caller's; make it absolute before moving to the repo root.
if [[ -n ${TRADENET_BIN:-} && $TRADENET_BIN != /* ]]; then
  TRADENET_BIN=$PWD/$TRADENET_BIN
fi
cd "$(dirname "$0")/.."
root=$PWD
bin=${TRADENET_BIN:-$root/target/debug/tradenet}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
max_time=${SCHEMATHESIS_MAX_TIME:-60}
version=4.32.5
cache=${TRADENET_CI_CACHE:-${XDG_CACHE_HOME:-/var/cache}/tradenet-ci}
venv=$cache/schemathesis-$version

fail() {
  echo "schemathesis.sh: FAILED: $*" >&2
  exit 1
}

[[ -x $bin ]] || fail "no tradenet binary at $bin: run 'cargo build -p tradenet' first, or set TRADENET_BIN"

# Python with venv: Debian's own (CI), else whichever python3 is first on PATH.
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3 || true)
if [[ -z $py ]] || ! "$py" -c 'import venv, ensurepip' 2> /dev/null; then
  echo "== installing python3 and python3-venv"
  apt-get update -qq && apt-get install -y -qq python3 python3-venv > /dev/null
  py=/usr/bin/python3
fi
if ! "$venv/bin/schemathesis" --version 2> /dev/null | grep -qF "$version"; then
  echo "== installing schemathesis $version into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version" \
    || fail "pip could not install schemathesis==$version"
fi

tmp=$(mktemp -d)
pid=
cleanup() {
  local rc=$?
  if [[ -n $pid ]] && kill -0 "$pid" 2> /dev/null; then
    # `up` stops every process it started on SIGTERM; give it 10 s, then kill its group.
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2> /dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Five free loopback ports below the ephemeral range (other Trade-Net processes on this
# machine may hold the defaults, 8079-8093).
read -r catalog frontend r1 r2 r3 < <("$py" bench/free-ports.py 5) || true
[[ -n ${r3:-} ]] || fail "could not find five free ports"

config=$tmp/tradenet.toml
cat > "$config" << EOF
# Written by .ci/schemathesis.sh: config/default.toml's cluster on free ports.
data_dir = "$tmp/data"
# Nothing here survives the run, so nothing needs to survive a crash.
fsync = false
log = "info"

[catalog]
addr = "127.0.0.1:$catalog"

[frontend]
addr = "127.0.0.1:$frontend"

[launcher]
control_addr = ""

[[replicas]]
id = 1
addr = "127.0.0.1:$r1"

[[replicas]]
id = 2
addr = "127.0.0.1:$r2"

[[replicas]]
id = 3
addr = "127.0.0.1:$r3"
EOF

fe=127.0.0.1:$frontend
echo "== starting a cluster (front end $fe) with $bin"
# Its own process group, so the trap can end every process it started by the launcher's PID.
setsid "$bin" --config "$config" up > "$tmp/up.log" 2>&1 &
pid=$!
started=$SECONDS

ready() {
  "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://$fe/ready" 2> /dev/null
}
deadline=$((SECONDS + 60))
until ready; do
  if ! kill -0 "$pid" 2> /dev/null; then
    tail -n 40 "$tmp/up.log" >&2
    fail "the cluster stopped before its front end was ready (its log above)"
  fi
  if ((SECONDS >= deadline)); then
    tail -n 40 "$tmp/up.log" >&2
    fail "the front end at $fe was not ready within 60 s (the cluster's log above)"
  fi
  sleep 0.2
done
echo "== front end ready after $((SECONDS - started)) s; schemathesis (at most $max_examples cases per operation, ${max_time} s)"

seed=()
[[ -n ${SCHEMATHESIS_SEED:-} ]] && seed=(--seed "$SCHEMATHESIS_SEED")
# From the temp folder: schemathesis keeps .hypothesis/ and .schemathesis/ in its working
# directory, which must not land in the work tree.
rc=0
(cd "$tmp" && timeout "$((max_time + 180))" "$venv/bin/schemathesis" run \
  "http://$fe/openapi.json" \
  --url "http://$fe" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --workers 2 \
  --request-timeout 10 \
  --no-color \
  "${seed[@]}") || rc=$?

if ((rc != 0)); then
  echo "== the cluster's log (last 40 lines)" >&2
  tail -n 40 "$tmp/up.log" >&2
  if ((rc == 124)); then
    fail "schemathesis did not finish within $((max_time + 180)) s"
  fi
  fail "schemathesis found answers that do not fit /openapi.json (exit $rc; cases above, each with a curl line to replay it)"
fi
echo "== schemathesis: no failures"
