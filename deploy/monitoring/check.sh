#!/usr/bin/env bash
# Checks Trade-Net's monitoring against a real Prometheus (CI runs it; so can you):
#
#  1. promtool: alerts.yml is valid, its unit tests (alerts_test.yml) pass, and the example
#     prometheus.yml and the one generated here are valid configurations;
#  2. starts `tradenet up` on free ports (a temporary config modelled on config/default.toml,
#     data in a temporary folder) and Prometheus on a free port, scraping all five processes
#     every second with alerts.yml loaded;
#  3. sends a few trades and lookups with curl, then polls Prometheus's query API (60 s
#     deadline) until every required domain series is there with a sensible value: leader
#     epoch, trades, cache hits, follower lag and state, fsync histograms, catalog pushes;
#  4. checks through /api/v1/rules that every alert rule is loaded and evaluates without
#     error, that no alert fires on the healthy cluster, and that every query of
#     dashboard.json runs.
#
# Both processes are stopped by PID when the script exits, whatever happens. Exits non-zero
# naming the first failure. Installs Debian's `prometheus` (and python3, curl) when missing,
# which needs root; the package's own service is not started.
#
# Usage: deploy/monitoring/check.sh
#   TRADENET_BIN  the tradenet binary (default target/debug/tradenet; build it first)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
bin=${TRADENET_BIN:-${CARGO_TARGET_DIR:-target}/debug/tradenet}
started=$SECONDS

fail() {
  echo "check.sh: FAILED: $*" >&2
  exit 1
}
say() { echo "== $*"; }

tmp=$(mktemp -d -t tradenet-monitoring.XXXXXX)
up_pid=
prom_pid=
made_policy=

stop() { # stop PID: SIGTERM, then SIGKILL after 10 s
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2> /dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}

cleanup() {
  local rc=$?
  stop "$prom_pid"
  # The launcher stops and reaps its five processes on SIGTERM (their parent-death signal
  # covers a SIGKILL).
  stop "$up_pid"
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" != 0 ]; then
    for log in "$tmp/up.log" "$tmp/prometheus.log"; do
      [ -s "$log" ] && { echo "--- last lines of $(basename "$log")"; tail -n 30 "$log"; }
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# --- tools ----------------------------------------------------------------------------------
need=()
{ command -v promtool && command -v prometheus; } > /dev/null || need+=(prometheus)
command -v python3 > /dev/null || need+=(python3)
command -v curl > /dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]}: install them, or run as root to install Debian's packages"
  say "installing ${need[*]} (Debian packages)"
  # Keep the package from starting the machine's own Prometheus on :9090.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
fi
[ -x "$bin" ] || fail "no tradenet binary at $bin: build it (cargo build -p tradenet) or set TRADENET_BIN"
say "$(prometheus --version 2>&1 | head -n 1); $("$bin" --version)"

# --- static checks ---------------------------------------------------------------------------
say "promtool check rules alerts.yml"
promtool check rules "$here/alerts.yml"
say "promtool test rules alerts_test.yml"
promtool test rules "$here/alerts_test.yml"
say "promtool check config prometheus.yml (the example)"
promtool check config "$here/prometheus.yml"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"' \
  "$here/dashboard.json" || fail "dashboard.json is not a dashboard"

# --- a cluster and a Prometheus on free ports ---------------------------------------------------
# Below the kernel's ephemeral range, so outgoing connections cannot take them meanwhile; other
# Trade-Net processes (8079-8093 by default) are never in this range.
read -r p_fe p_cat p_o1 p_o2 p_o3 p_prom < <(python3 bench/free-ports.py 6)

cat > "$tmp/tradenet.toml" << EOF
# Written by deploy/monitoring/check.sh: config/default.toml with free ports and a temp folder.
data_dir = "$tmp/data"
fsync = true
log = "warn"

[catalog]
addr = "127.0.0.1:$p_cat"

[frontend]
addr = "127.0.0.1:$p_fe"
heartbeat_ms = 200

[launcher]
control_addr = ""

[[replicas]]
id = 1
addr = "127.0.0.1:$p_o1"

[[replicas]]
id = 2
addr = "127.0.0.1:$p_o2"

[[replicas]]
id = 3
addr = "127.0.0.1:$p_o3"
EOF

cat > "$tmp/prometheus.yml" << EOF
# Written by deploy/monitoring/check.sh: prometheus.yml for the ports chosen here.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $here/alerts.yml
scrape_configs:
  - job_name: tradenet-frontend
    static_configs: [{targets: ["127.0.0.1:$p_fe"]}]
  - job_name: tradenet-catalog
    static_configs: [{targets: ["127.0.0.1:$p_cat"]}]
  - job_name: tradenet-order
    static_configs: [{targets: ["127.0.0.1:$p_o1", "127.0.0.1:$p_o2", "127.0.0.1:$p_o3"]}]
EOF
say "promtool check config (the generated one)"
promtool check config "$tmp/prometheus.yml"

fe=http://127.0.0.1:$p_fe
prom=http://127.0.0.1:$p_prom

say "tradenet up: front end $p_fe, catalog $p_cat, replicas $p_o1 $p_o2 $p_o3"
"$bin" --config "$tmp/tradenet.toml" up > "$tmp/up.log" 2>&1 &
up_pid=$!
say "prometheus on $p_prom (data in a temp folder)"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus" \
  --web.listen-address="127.0.0.1:$p_prom" --log.level=warn > "$tmp/prometheus.log" 2>&1 &
prom_pid=$!

# wait_for WHAT SECONDS COMMAND...: runs COMMAND until it succeeds, or fails naming WHAT.
wait_for() {
  local what=$1 limit=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" > /dev/null 2>&1; do
    kill -0 "$up_pid" 2> /dev/null || fail "tradenet up stopped while waiting for $what"
    kill -0 "$prom_pid" 2> /dev/null || fail "prometheus stopped while waiting for $what"
    [ "$SECONDS" -lt "$deadline" ] || fail "no $what within ${limit}s"
    sleep 0.2
  done
}
wait_for "ready front end (a leader and a catalog link)" 60 curl -fsS "$fe/ready"
wait_for "ready Prometheus" 60 curl -fsS "$prom/-/ready"

# query EXPR: Prometheus's answer to an instant query (JSON).
query() { curl -fsS --get --data-urlencode "query=$1" "$prom/api/v1/query"; }

# count_at_least N EXPR: the query returns at least N series; prints them.
count_at_least() {
  query "$2" | python3 -c '
import json, sys
n, d = int(sys.argv[1]), json.load(sys.stdin)
assert d["status"] == "success", d
rs = d["data"]["result"]
for r in rs:
    m = r["metric"]
    labels = ",".join(f"{k}={v}" for k, v in sorted(m.items()) if k not in ("__name__", "job"))
    name, value = m.get("__name__", ""), r["value"][1]
    print(f"    {name}{{{labels}}} = {value}")
sys.exit(0 if len(rs) >= n else 1)' "$1"
}

# Every process scraped once before the traffic, so rates see it arrive.
wait_for "first scrape of all five processes" 30 count_at_least 5 'up{job=~"tradenet.*"} == 1'

say "traffic: lookups (each stock twice), trades (one repeated under its Idempotency-Key), a refusal"
code() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
order() { # order BODY [KEY]
  local args=(-X POST "$fe/orders" -H 'Content-Type: application/json' -d "$1")
  [ $# -gt 1 ] && args+=(-H "Idempotency-Key: $2")
  code "${args[@]}"
}
for stock in GameStart FishCo GameStart FishCo CaesarTech CaesarTech; do
  c=$(code "$fe/stocks/$stock")
  [ "$c" = 200 ] || fail "GET /stocks/$stock answered $c"
done
for i in 1 2 3 4 5; do
  c=$(order "{\"name\":\"MenhirCo\",\"quantity\":1,\"type\":\"buy\"}" "check-$i")
  [ "$c" = 200 ] || fail "order $i answered $c"
done
c=$(order '{"name":"MenhirCo","quantity":1,"type":"buy"}' check-1)
[ "$c" = 200 ] || fail "the repeated order answered $c"
c=$(order '{"name":"BoarCo","quantity":1000,"type":"buy"}')
[ "$c" = 409 ] || fail "a buy of 1000 BoarCo answered $c, not 409"

say "waiting for each domain series in Prometheus (60 s deadline)"
checks=(
  "1|leader epoch|tradenet_leader_epoch{service=\"frontend\"} > 0"
  "1|a leader|tradenet_has_leader{service=\"frontend\"} == 1"
  "1|elections|tradenet_elections_total >= 1"
  "3|replicas live|tradenet_replica_up{service=\"frontend\"} == 1"
  "1|trades acknowledged by the leader|tradenet_trades_total >= 5"
  "1|idempotent replays|tradenet_idempotent_replays_total >= 1"
  "1|catalog trades|tradenet_catalog_trades_total >= 5"
  "1|catalog refusals|tradenet_catalog_refusals_total >= 1"
  "1|cache hits|tradenet_cache_hits_total >= 3"
  "1|cache misses|tradenet_cache_misses_total >= 3"
  "2|follower lag|tradenet_follower_lag_orders"
  "2|followers in step|tradenet_follower_state{state=\"in_step\"} == 1"
  "4|fsync histograms (catalog, 3 replicas)|tradenet_fsync_duration_seconds_count > 0"
  "4|fsync batch sizes|tradenet_fsync_batch_size_sum >= 5"
  "4|fsync p99|histogram_quantile(0.99, sum by (le, service) (rate(tradenet_fsync_duration_seconds_bucket[1m]))) > 0"
  "1|catalog pushes|tradenet_catalog_pushes_total{kind=\"invalidation\",result=\"ok\"} > 0"
)
deadline=$((SECONDS + 60))
for c in "${checks[@]}"; do
  IFS='|' read -r n what expr <<< "$c"
  until out=$(count_at_least "$n" "$expr"); do
    [ "$SECONDS" -lt "$deadline" ] || fail "Prometheus has no $what: $expr (wanted $n series)${out:+; got:
$out}"
    sleep 0.5
  done
  echo "  $what: $expr"
  echo "$out"
done

say "alert rules (GET /api/v1/rules): every rule loaded and evaluating without error"
rules_ok() {
  curl -fsS "$prom/api/v1/rules" | python3 -c '
import json, re, sys
want = set(re.findall(r"^\s*- alert: (\w+)", open(sys.argv[1]).read(), re.M))
d = json.load(sys.stdin)
rules = [r for g in d["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"]
got = {r["name"]: r for r in rules}
missing = want - got.keys()
if missing:
    sys.exit(f"not loaded: {sorted(missing)}")
bad = {n: (r["health"], r.get("lastError", "")) for n, r in got.items() if r["health"] != "ok"}
if bad:
    sys.exit(f"not healthy yet: {bad}")
for n in sorted(got):
    h, st = got[n]["health"], got[n]["state"]
    print(f"    {n}: health {h}, state {st}")' "$here/alerts.yml"
}
deadline=$((SECONDS + 30))
until out=$(rules_ok 2>&1); do
  [ "$SECONDS" -lt "$deadline" ] || fail "alert rules: $out"
  sleep 0.5
done
echo "$out"

say "no alert fires on the healthy cluster (GET /api/v1/alerts)"
curl -fsS "$prom/api/v1/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)["data"]["alerts"]
firing = [a["labels"] for a in alerts if a["state"] == "firing"]
print(f"    {len(alerts)} active, {len(firing)} firing")
sys.exit(f"firing: {firing}" if firing else 0)' || fail "an alert fires on a healthy cluster"

say "every query of dashboard.json runs"
python3 - "$here/dashboard.json" "$prom" << 'EOF' || fail "a dashboard query does not run"
import json, sys, urllib.parse, urllib.request
dash, prom = json.load(open(sys.argv[1])), sys.argv[2]
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
with_data = 0
for e in exprs:
    q = e.replace("$__rate_interval", "1m")
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        d = json.load(urllib.request.urlopen(url, timeout=10))
    except Exception as err:
        sys.exit(f"{e}: {err}")
    if d.get("status") != "success":
        sys.exit(f"{e}: {d}")
    with_data += bool(d["data"]["result"])
print(f"    {len(exprs)} queries of {len(dash['panels'])} panels run; {with_data} return data now")
EOF

say "OK: monitoring checked against Prometheus in $((SECONDS - started))s"
