#!/usr/bin/env bash
# Proves the container recipe (deploy/container/) for real: builds the image, brings
# compose.yaml up under podman, trades through both front ends, SIGKILLs the leading order
# replica's process and checks that its restart policy brings it back in step, byte for byte.
# CI runs it; it needs root on Debian (12) and Debian's archive, and NO container registry:
#
#   bash deploy/container/check.sh     # from anywhere; here about 20 s warm, 1.5 min with the
#                                      # packages and debootstrap (+ a cold release build: ~3 min)
#
# What it does, in order:
#   1. installs what is missing (apt-get): podman (crun, runc, catatonit, netavark,
#      aardvark-dns, iptables), podman-compose, debootstrap, curl, binutils, python3(-yaml)
#   2. builds a Debian base image without a registry: `debootstrap --variant=minbase
#      --include=curl,ca-certificates bookworm` from the mirror in /etc/apt/sources.list*,
#      tarred into $TRADENET_CI_CACHE (default ${XDG_CACHE_HOME:-/var/cache}/tradenet-ci,
#      rebuilt after 7 days) and `podman import`ed as localhost/debian-base:bookworm
#   3. `cargo build --release -p tradenet -p tradenet-client` (a no-op when CI already built
#      them; TRADENET_CHECK_CARGO=0 skips it) and `podman build --format docker` of
#      Dockerfile.prebuilt FROM that base with those binaries, tagged for this run only
#   4. `podman-compose up -d --no-build` of compose.yaml under a project name of its own, with
#      the image, a fresh cluster secret and the front ends' host ports (free ones, on
#      127.0.0.1, never the default 8081/8083) given through compose.yaml's variables
#   5. waits until every service's own compose healthcheck (/ready) passes, then trades
#      (POST /orders, GET /orders/N) through both front ends
#   6. SIGKILLs the leader replica's tradenet process from the host (not `podman kill`: the
#      engine counts that as a manual stop and does not restart it), trades on meanwhile,
#      checks the restart policy restarted it and it is ready again, then that all three
#      replicas' order files (orders.jsonl in each volume) are identical and hold every order
#   7. tears it all down (compose down -v, then anything left with the project's label, and
#      the run's image tag) on exit, failure or Ctrl-C
# Exits 0 when all of that holds. Where no container can run on this machine at all
# (`podman info` fails, or no container starts) it prints a loud SKIPPED banner and fails,
# unless TRADENET_CHECK_ALLOW_SKIP=1 (then 0); non-zero otherwise.
#
# Environment: TRADENET_CI_CACHE (cache dir), TRADENET_CHECK_CARGO=0 (use the binaries in
# ${CARGO_TARGET_DIR:-target}/release as they are), TRADENET_BIN_DIR (take the binaries from
# there instead; implies no cargo build), TRADENET_CHECK_KEEP=1 (leave the project running),
# TRADENET_CHECK_READY_TIMEOUT (seconds for the first start to be ready, default 180).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root_dir="$PWD"
compose_dir="$root_dir/deploy/container"
t_start=${EPOCHREALTIME/./}

# ---- helpers -------------------------------------------------------------------------------
say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
die() {
  printf '\ncheck.sh: FAILED: %s\n' "$*" >&2
  exit 1
}
now_us() { echo "${EPOCHREALTIME/./}"; }
# secs SINCE_US [UNTIL_US]: elapsed seconds with one decimal
secs() {
  local d=$((${2:-$(now_us)} - $1))
  printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}
skip() {
  local line
  echo
  echo "##############################################################################"
  echo "##"
  echo "##   SKIPPED: deploy/container/check.sh: no container engine can run here"
  echo "##"
  while IFS= read -r line; do echo "##   $line"; done <<<"$*"
  echo "##"
  echo "##############################################################################"
  echo "The container recipe was NOT proven on this machine."
  # A check that passes without running hides a broken recipe: only an explicit opt-in
  # (a developer machine without any engine) turns this into success.
  if [ "${TRADENET_CHECK_ALLOW_SKIP:-0}" = 1 ]; then
    exit 0
  fi
  echo "check.sh: failing (set TRADENET_CHECK_ALLOW_SKIP=1 to let a machine without an engine pass)" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  die "run it as root (it installs packages and runs rootful podman), e.g. sudo bash $0"
fi

work="$(mktemp -d /tmp/tradenet-check.XXXXXX)"
project="tnchk$$$(printf '%04x' $((RANDOM % 65536)))"
image="localhost/tradenet:check-$project"
export TRADENET_IMAGE="$image"
export TRADENET_CLUSTER_SECRET
TRADENET_CLUSTER_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
compose_started=no
# Debian's python3 (podman-compose's, with python3-yaml), not whichever python3 is first in PATH
py=/usr/bin/python3

# containers, volumes and networks of this run's compose project (by the label the compose
# provider puts on them)
project_ids() { podman "$1" ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null || true; }

teardown() {
  local rc=$? ids
  trap - EXIT INT TERM ERR
  set +e
  if [ "${TRADENET_CHECK_KEEP:-0}" = 1 ] && [ "$compose_started" = yes ]; then
    echo "== TRADENET_CHECK_KEEP=1: leaving project $project running (podman-compose -p $project"
    echo "   -f deploy/container/compose.yaml down -v, then podman rmi $image, to remove it;"
    echo "   CONTAINERS_CONF=${CONTAINERS_CONF:-} (kept) for podman commands)"
    return "$rc"
  fi
  if [ "$compose_started" = yes ]; then
    echo "== teardown: compose down -v, project $project"
    timeout 120 bash -c "cd '$compose_dir' && podman-compose -p '$project' -f compose.yaml down -v" \
      >"$work/compose-down.log" 2>&1 || echo "   (compose down failed; removing by label)"
  fi
  if command -v podman >/dev/null; then
    ids="$(podman ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null)"
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086 # one id a word
      timeout 60 podman rm -f -t 0 $ids >/dev/null 2>&1
    fi
    ids="$(project_ids volume)"
    # shellcheck disable=SC2086
    if [ -n "$ids" ]; then timeout 60 podman volume rm -f $ids >/dev/null 2>&1; fi
    ids="$(project_ids network)"
    # shellcheck disable=SC2086
    if [ -n "$ids" ]; then timeout 60 podman network rm -f $ids >/dev/null 2>&1; fi
    if podman image exists "$image" 2>/dev/null; then podman rmi "$image" >/dev/null 2>&1; fi
    if [ -n "$(podman ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null)" ]; then
      echo "   WARNING: containers of project $project are still there"
      rc=1
    fi
  fi
  rm -rf "$work"
  exit "$rc"
}
trap teardown EXIT
# Any other failing command (set -e) says where it failed.
trap 'printf "\ncheck.sh: FAILED: line %s: %s (exit %s)\n" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# Shown on failure: the state of the project and the last lines of every container's log.
dump_state() {
  local c
  echo "---- podman ps (project $project)"
  podman ps -a --filter "label=com.docker.compose.project=$project" \
    --format '{{.Names}}  {{.Status}}  {{.Ports}}' 2>&1 || true
  for c in $(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}' 2>/dev/null); do
    echo "---- podman logs --tail 15 $c"
    podman logs --tail 15 "$c" 2>&1 | sed 's/^/   /' || true
  done
}
fail() {
  dump_state >&2
  die "$@"
}

# ---- 1. tools ------------------------------------------------------------------------------
say "1. tools"
packages=(podman crun runc catatonit netavark aardvark-dns iptables podman-compose debootstrap
  curl ca-certificates binutils python3 python3-yaml)
missing=()
t_tools=$(now_us)
tools_how="all there"
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -ne 0 ]; then
  note "installing ${missing[*]}"
  timeout 300 apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  tools_how="installed ${#missing[@]} packages"
fi
t_tools_done=$(now_us)
note "$(podman --version), podman-compose $(dpkg-query -W -f='${Version}' podman-compose), $(debootstrap --version 2>/dev/null | head -1)"

if ! podman_info="$(timeout 60 podman info 2>&1)"; then
  skip "\`podman info\` fails here:"$'\n'"$(tail -5 <<<"$podman_info")"
fi

# ---- 2. the Debian base image, without a registry --------------------------------------------
say "2. base image localhost/debian-base:bookworm (debootstrap, no registry)"
cache="${TRADENET_CI_CACHE:-${XDG_CACHE_HOME:-/var/cache}/tradenet-ci}"
mkdir -p "$cache"
rootfs_tar="$cache/debian-bookworm-minbase-curl.tar.gz"
base_image="localhost/debian-base:bookworm"
# The machine's own Debian mirror (one-line or deb822 sources), else deb.debian.org.
mirror="$(
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk '
      /^[[:space:]]*#/ { next }
      $1 == "deb" && $0 ~ / bookworm( |$)/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }
      $1 == "URIs:" { uri = $2 }
      $1 == "Suites:" && uri != "" && $0 ~ / bookworm( |$)/ { print uri; exit }
    '
)"
mirror="${mirror:-http://deb.debian.org/debian}"
t_base=$(now_us)
base_how="cached rootfs $(basename "$rootfs_tar")"
if [ -s "$rootfs_tar" ] && [ -z "$(find "$rootfs_tar" -mtime +7)" ]; then
  note "rootfs from the cache: $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1))"
else
  base_how="debootstrap from $mirror"
  note "debootstrap --variant=minbase --include=curl,ca-certificates bookworm $mirror"
  if ! timeout 600 debootstrap --variant=minbase --include=curl,ca-certificates bookworm \
    "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  tar --numeric-owner -C "$work/rootfs" -c . | gzip -1 >"$rootfs_tar.tmp$$"
  mv -f "$rootfs_tar.tmp$$" "$rootfs_tar"
  rm -rf "$work/rootfs"
fi
rootfs_sum="$(sha256sum "$rootfs_tar" | cut -c1-16)"
if [ "$(podman image inspect -f '{{index .Labels "tradenet.rootfs"}}' "$base_image" 2>/dev/null)" = "$rootfs_sum" ]; then
  note "$base_image already imported from this rootfs ($rootfs_sum)"
else
  podman import --change "LABEL tradenet.rootfs=$rootfs_sum" --message "debootstrap bookworm minbase+curl" \
    - "$base_image" <"$rootfs_tar" >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; die "podman import failed"; }
  note "imported $base_image ($rootfs_sum)"
fi
t_base_done=$(now_us)

# Can a container run at all? Where the defaults fail, try what makes podman work on hosts like
# this one: ulimits within podman's own (without CAP_SYS_RESOURCE podman cannot raise them to
# its default 1048576; it runs itself with nproc at most 32768) and runc where crun refuses a
# hybrid cgroup v1/v2 host ("cgroups in hybrid mode not supported").
probe() { timeout 60 podman run --rm --network none "$base_image" true >"$work/probe.log" 2>&1; }
engine_how="podman defaults"
if ! probe; then
  # Only then: a containers.conf of this run's own (CONTAINERS_CONF makes podman read it instead
  # of the machine's; the machine's configuration is left alone). podman-compose and the
  # engine's restarts (conmon's exit command) inherit it.
  export CONTAINERS_CONF="$work/containers.conf"
  first_error="$(tail -3 "$work/probe.log")"
  hard_nofile="$(ulimit -Hn)"
  hard_nproc="$(ulimit -Hu)"
  [ "$hard_nofile" = unlimited ] && hard_nofile=1048576
  [ "$hard_nproc" = unlimited ] && hard_nproc=32768
  [ "$hard_nofile" -gt 1048576 ] && hard_nofile=1048576
  [ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
  for runtime in crun runc; do
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "%s"\n' \
      "$hard_nofile" "$hard_nofile" "$hard_nproc" "$hard_nproc" "$runtime" >"$CONTAINERS_CONF"
    if probe; then
      engine_how="runtime $runtime, ulimits nofile=$hard_nofile nproc=$hard_nproc (podman's defaults fail here: $(tail -1 <<<"$first_error"))"
      break
    fi
  done
  if [ "$engine_how" = "podman defaults" ]; then
    skip "podman cannot start a container here, with its defaults:"$'\n'"$first_error"$'\n'"nor with runc and lower ulimits:"$'\n'"$(tail -3 "$work/probe.log")"
  fi
fi
note "containers run: $engine_how"

# ---- 3. the Trade-Net image from the release binaries ----------------------------------------
say "3. image $image from the release binaries (Dockerfile.prebuilt)"
if [ -n "${TRADENET_BIN_DIR:-}" ]; then
  bin_dir="$TRADENET_BIN_DIR"
  cargo_how="skipped (TRADENET_BIN_DIR=$bin_dir)"
else
  bin_dir="${CARGO_TARGET_DIR:-target}/release"
  cargo_how="skipped (TRADENET_CHECK_CARGO=0)"
  if [ "${TRADENET_CHECK_CARGO:-1}" != 0 ]; then
    t_cargo=$(now_us)
    # The whole log is kept: a failed build names its cause in its first error, not its last lines
    # (a full disk, for one, shows only as rustc's exit status at the end).
    if ! cargo build --release -p tradenet -p tradenet-client >"$work/cargo.log" 2>&1; then
      grep -E -m 12 -A 3 '^(error|warning: (unused|failed))|No space left|panicked' "$work/cargo.log" | cut -c 1-300 >&2 || true
      tail -5 "$work/cargo.log" | cut -c 1-300 >&2
      die "cargo build --release failed (disk: $(df -h --output=avail "${CARGO_TARGET_DIR:-target}" 2>/dev/null | tail -1 | tr -d ' ') free)"
    fi
    tail -1 "$work/cargo.log" | sed 's/^/   /'
    cargo_how="$(secs "$t_cargo") s"
    note "cargo build --release: $cargo_how"
  fi
fi
for b in tradenet tradenet-client; do
  [ -x "$bin_dir/$b" ] || die "no $bin_dir/$b: build it first (cargo build --release -p tradenet -p tradenet-client)"
done
mkdir -p "$work/ctx"
cp "$bin_dir/tradenet" "$bin_dir/tradenet-client" "$work/ctx/"
# (only to shrink the image, as ./Dockerfile does; a binary strip cannot read stays as it is)
if command -v strip >/dev/null; then
  strip --strip-debug "$work/ctx/tradenet" "$work/ctx/tradenet-client" 2>/dev/null || note "(strip failed; binaries left unstripped)"
fi
t_build=$(now_us)
podman build --format docker --pull=never -f "$compose_dir/Dockerfile.prebuilt" \
  --build-arg "BASE=$base_image" -t "$image" "$work/ctx" >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log" >&2; die "podman build failed"; }
t_build_done=$(now_us)
[ "$(podman image inspect -f '{{.Config.Healthcheck.Test}}' "$image")" != "[]" ] ||
  die "the image lost its HEALTHCHECK (build with --format docker)"
note "built in $(secs "$t_build" "$t_build_done") s: $(podman run --rm --network none "$image" --version 2>/dev/null), HEALTHCHECK kept, user $(podman image inspect -f '{{.Config.User}}' "$image")"

# ---- 4. compose up -----------------------------------------------------------------------------
say "4. podman-compose up, project $project"
# Two free ports on 127.0.0.1, away from the ones Trade-Net uses by default (8079-8093) and from
# the ephemeral range.
read -r port1 port2 < <("$py" bench/free-ports.py 2)
[ -n "${port2:-}" ] || die "could not find two free ports"
export TRADENET_FRONTEND_1_PORT="127.0.0.1:$port1" TRADENET_FRONTEND_2_PORT="127.0.0.1:$port2"
frontends=("http://127.0.0.1:$port1" "http://127.0.0.1:$port2")
mapfile -t services < <("$py" -c '
import sys, yaml
print("\n".join(yaml.safe_load(open(sys.argv[1]))["services"]))' "$compose_dir/compose.yaml")
nfront=0
for s in "${services[@]}"; do case "$s" in frontend-*) nfront=$((nfront + 1)) ;; esac; done
[ "$nfront" -eq 2 ] || die "compose.yaml has $nfront front end services; this check expects frontend-1 and frontend-2"
note "services: ${services[*]}; front ends on ${frontends[*]}"
t_up=$(now_us)
compose_started=yes
# --no-build: the image is there (podman-compose would build only a missing one; it never
# pulls an image it has).
if ! timeout 300 bash -c "cd '$compose_dir' && podman-compose -p '$project' -f compose.yaml up -d --no-build" \
  >"$work/compose-up.log" 2>&1; then
  sed "s/$TRADENET_CLUSTER_SECRET/<secret>/g" "$work/compose-up.log" | tail -30 >&2
  fail "podman-compose up failed"
fi

# container NAME of a compose service, found by its labels (names differ between providers)
declare -A ctr
for s in "${services[@]}"; do
  ctr[$s]="$(podman ps -a --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$s" --format '{{.Names}}' | head -1)"
  [ -n "${ctr[$s]}" ] || fail "no container for service $s"
done

# healthy SERVICE: runs the service's own compose healthcheck (curl .../ready inside it) now.
# Podman schedules healthchecks with systemd timers; without systemd (as here) nothing runs
# them, and podman-compose does not wait on `condition: service_healthy` either, so this
# script runs them itself.
healthy() { podman healthcheck run "${ctr[$1]}" >/dev/null 2>&1; }
ready_url() { [ "$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1/ready")" = 200 ]; }
# wait_ready DEADLINE_S SERVICE...: until every service passes its healthcheck, and the front
# ends answer /ready on the host's published ports
wait_ready() {
  local limit=$1 began=$SECONDS s pending
  local deadline=$((began + limit)) next_report=$((began + 10))
  shift
  while :; do
    pending=()
    for s in "$@"; do
      if [ "$(podman inspect -f '{{.State.Status}}' "${ctr[$s]}" 2>/dev/null)" != running ] || ! healthy "$s"; then
        pending+=("$s")
      fi
    done
    for s in "${frontends[@]}"; do ready_url "$s" || pending+=("$s/ready"); done
    [ "${#pending[@]}" -eq 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "not ready after $limit s: ${pending[*]}"
    if [ "$SECONDS" -ge "$next_report" ]; then
      note "($((SECONDS - began)) s) waiting for: ${pending[*]}"
      next_report=$((SECONDS + 10))
    fi
    sleep 0.5
  done
}
wait_ready "${TRADENET_CHECK_READY_TIMEOUT:-180}" "${services[@]}"
t_ready=$(now_us)
note "all ${#services[@]} services healthy (/ready), both front ends ready: $(secs "$t_up" "$t_ready") s after up"

# ---- 5. trades ---------------------------------------------------------------------------------
say "5. trades through both front ends"
acked=()      # transaction numbers acknowledged
retried=0     # POSTs answered other than 200 at first (only while a replica is down)
# trade BASE_URL KEY STRICT: POST /orders with Idempotency-Key KEY; sets txn. STRICT=yes:
# anything but 200 fails; else retries the same key (trades once) until 60 s have passed.
trade() {
  local url=$1 key=$2 strict=$3 deadline=$((SECONDS + 60)) out code
  while :; do
    out="$(curl -s -m 10 -w '\n%{http_code}' -X POST "$url/orders" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: $key" -d '{"name":"GameStart","quantity":1,"type":"buy"}')" || out=$'\n000'
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    if [ "$code" = 200 ]; then
      txn="$(sed -n 's/.*"transaction_number":\([0-9][0-9]*\).*/\1/p' <<<"$out")"
      [ -n "$txn" ] || fail "POST $url/orders: 200 without a transaction_number: $out"
      acked+=("$txn")
      return 0
    fi
    [ "$strict" = yes ] && fail "POST $url/orders: $code $out"
    retried=$((retried + 1))
    [ "$SECONDS" -lt "$deadline" ] || fail "POST $url/orders (key $key): still $code after 60 s: $out"
    sleep 0.2
  done
}
# query BASE_URL N: GET /orders/N must be 200 and be order N
query() {
  local out code
  out="$(curl -s -m 10 -w '\n%{http_code}' "$1/orders/$2")" || out=$'\n000'
  code="${out##*$'\n'}"
  out="${out%$'\n'*}"
  [ "$code" = 200 ] || fail "GET $1/orders/$2: $code $out"
  grep -q "\"number\":$2[,}]" <<<"$out" || fail "GET $1/orders/$2: not order $2: $out"
}
for i in 1 2 3 4 5; do
  for f in 0 1; do
    trade "${frontends[$f]}" "$project-a$i-$f" yes
    query "${frontends[$((1 - f))]}" "$txn" # read back through the other front end
  done
done
note "${#acked[@]} orders placed, numbers ${acked[*]}, each read back through the other front end"

# ---- 6. SIGKILL a replica's process ----------------------------------------------------------
say "6. SIGKILL the leader replica's process; its restart policy must bring it back"
leader="$(curl -s -m 5 "${frontends[0]}/status" | "$py" -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("data", d)
print(d["leader"])' 2>/dev/null)" || leader=""
case "$leader" in [1-9]*) ;; *) leader=3 && note "(no leader in the front end's /status; killing order-3)" ;; esac
victim="order-$leader"
[ -n "${ctr[$victim]:-}" ] || fail "the leader is replica $leader, but there is no service $victim"
vc="${ctr[$victim]}"
restarts_before="$(podman inspect -f '{{.RestartCount}}' "$vc")"
# The container's main process is podman's init (compose's `init: true`); the replica is its
# child. Kill the replica itself, from the host, as a crash would: the init exits with it.
main_pid="$(podman inspect -f '{{.State.Pid}}' "$vc")"
victim_pid=""
if [ "$(cat "/proc/$main_pid/comm" 2>/dev/null)" = tradenet ]; then
  victim_pid="$main_pid"
else
  # /proc/PID/task/TID/children: the children's PIDs, space-separated on one line
  for p in $(cat /proc/"$main_pid"/task/*/children 2>/dev/null | tr ' ' '\n'); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = tradenet ]; then victim_pid="$p"; fi
  done
fi
[ -n "$victim_pid" ] || fail "no tradenet process in container $vc (main pid $main_pid)"
note "leader is replica $leader: kill -KILL $victim_pid (tradenet in $vc, under init $main_pid)"
t_kill=$(now_us)
kill -KILL "$victim_pid"
n_before=${#acked[@]}
for i in 1 2 3 4 5 6 7 8 9 10; do
  f=$((i % 2))
  trade "${frontends[$f]}" "$project-b$i" no
done
note "$((${#acked[@]} - n_before)) orders placed meanwhile through both front ends ($retried answers other than 200, retried with the same Idempotency-Key)"
# restarted: a new process and RestartCount up (the engine restarted it, nobody else did)
deadline=$((SECONDS + 60))
while :; do
  st="$(podman inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.Pid}}' "$vc")"
  read -r status restarts pid <<<"$st"
  if [ "$status" = running ] && [ "$restarts" -gt "$restarts_before" ] && [ "$pid" != "$main_pid" ]; then break; fi
  [ "$SECONDS" -lt "$deadline" ] || fail "$vc not restarted by its restart policy after 60 s (status $status, restarts $restarts)"
  sleep 0.2
done
t_restarted=$(now_us)
restart_policy="$(podman inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$vc")"
note "restarted by its restart policy ($restart_policy) $(secs "$t_kill" "$t_restarted") s after the kill (restart count $restarts_before -> $restarts)"
wait_ready 120 "$victim"
t_again=$(now_us)
note "$victim healthy (/ready: in step with its leader) $(secs "$t_kill" "$t_again") s after the kill"
wait_ready 60 "${services[@]}"

# ---- convergence -------------------------------------------------------------------------------
say "6b. the replicas' order files converge"
total=${#acked[@]}
distinct="$(printf '%s\n' "${acked[@]}" | sort -un | wc -l)"
max="$(printf '%s\n' "${acked[@]}" | sort -n | tail -1)"
[ "$distinct" -eq "$total" ] || fail "acknowledged numbers repeat: ${acked[*]}"
[ "$max" -eq $((total - 1)) ] || fail "acknowledged numbers are not 0..$((total - 1)): ${acked[*]}"
declare -A files
for s in "${services[@]}"; do
  case "$s" in order-*) ;; *) continue ;; esac
  src="$(podman inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/tradenet"}}{{.Source}}{{end}}{{end}}' "${ctr[$s]}")"
  [ -n "$src" ] || fail "no volume at /var/lib/tradenet in ${ctr[$s]}"
  files[$s]="$src/$s/orders.jsonl"
done
t_conv=$(now_us)
deadline=$((SECONDS + 60))
while :; do
  sums=()
  lines=()
  for s in "${!files[@]}"; do
    sums+=("$(sha256sum <"${files[$s]}" 2>/dev/null | cut -c1-64)")
    lines+=("$(wc -l <"${files[$s]}" 2>/dev/null || echo 0)")
  done
  if [ "$(printf '%s\n' "${sums[@]}" | sort -u | wc -l)" -eq 1 ] && [ "${lines[0]}" -eq "$total" ]; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    for s in "${!files[@]}"; do sha256sum "${files[$s]}" >&2; wc -l "${files[$s]}" >&2; done
    fail "the replicas' orders.jsonl differ, or do not hold all $total orders, after 60 s"
  fi
  sleep 0.5
done
note "orders.jsonl identical on all ${#files[@]} replicas ($total orders, sha256 ${sums[0]:0:16}...), $(secs "$t_conv") s after the check began"
for n in "${acked[@]}"; do query "${frontends[$((n % 2))]}" "$n"; done
note "every acknowledged order (0..$max) reads back through the front ends"

# ---- summary -----------------------------------------------------------------------------------
t_end=$(now_us)
echo
echo "deploy/container/check.sh: ok: the compose recipe runs, trades, survives a SIGKILLed replica"
printf '   %-34s %s\n' \
  "engine" "$(podman --version) + podman-compose $(dpkg-query -W -f='${Version}' podman-compose); $engine_how" \
  "tools (apt-get)" "$(secs "$t_tools" "$t_tools_done") s ($tools_how)" \
  "base image" "$(secs "$t_base" "$t_base_done") s ($base_how)" \
  "cargo build --release" "${cargo_how}" \
  "tradenet image build" "$(secs "$t_build" "$t_build_done") s" \
  "compose up -> all ready" "$(secs "$t_up" "$t_ready") s (${#services[@]} services)" \
  "SIGKILL -> restarted (policy)" "$(secs "$t_kill" "$t_restarted") s ($victim, the leader)" \
  "SIGKILL -> ready again" "$(secs "$t_kill" "$t_again") s" \
  "orders" "$total acknowledged ($retried retried answers during the kill), replicas identical" \
  "total" "$(secs "$t_start" "$t_end") s"
