//! Test clusters of real `tradenet` processes: a temp dir, a generated config with ports
//! chosen for this test, readiness polled with a deadline, SIGKILL on demand, and every
//! process killed when the cluster is dropped (with its log printed if the test failed).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::catalog::CatalogStatus;
use tradenet_actors::wire::frontend::{FrontendStatus, OrderPlaced, OrderRequest, Stock};
use tradenet_actors::wire::{self, DataBody, ErrorBody};

/// Every stock's quantity in a fresh catalog (the default config).
pub const INITIAL: i64 = 100;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets to answer /ready.
pub const READY: Duration = Duration::from_secs(20);

/// What a test wants in its cluster.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Number of order replicas (ids 1..=n).
    pub replicas: u64,
    /// Front end cache size.
    pub cache_size: usize,
    /// Test-only fill delay.
    pub fill_delay_ms: u64,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Extra settings appended to the config file.
    pub extra: String,
    /// Catalogs: 1 runs one (`[catalog] addr`); more run a catalog group (`[[catalogs]]`,
    /// ids 1..=n, each process named `catalog-N`).
    pub catalogs: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            replicas: 3,
            cache_size: 10,
            fill_delay_ms: 0,
            heartbeat_ms: 100,
            extra: String::new(),
            catalogs: 1,
        }
    }
}

/// A cluster of processes; see the module docs.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The one catalog; in a group, the highest id (the primary while it lives).
    pub catalog: String,
    /// Every catalog of a group by id (empty for one catalog).
    pub catalogs: BTreeMap<u64, String>,
    pub frontend: String,
    pub replicas: BTreeMap<u64, String>,
    procs: BTreeMap<String, Child>,
    extra_frontends: usize,
}

/// A port no other test of this run was given, below the kernel's ephemeral range
/// (32768-60999), so the outgoing connections of a busy test cannot take it between this
/// check and the process binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread concurrent test runs (other checkouts, CI) apart by process id.
    let base = 20_000 + (std::process::id() % 60) as u16 * 200;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

impl Cluster {
    /// Writes the config; starts nothing.
    pub fn new(opts: Opts) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let catalogs: BTreeMap<u64, String> = if opts.catalogs > 1 {
            (1..=opts.catalogs).map(|id| (id, addr())).collect()
        } else {
            BTreeMap::new()
        };
        let catalog = catalogs.values().next_back().cloned().unwrap_or_else(addr);
        let frontend = addr();
        let replicas: BTreeMap<u64, String> = (1..=opts.replicas).map(|id| (id, addr())).collect();
        let mut text = format!(
            "data_dir = {:?}\nlog = \"info\"\n\n[catalog]\naddr = {catalog:?}\nworkers = 2\n\n[frontend]\naddr = {frontend:?}\nworkers = 2\ncache_size = {}\nheartbeat_ms = {}\ncache_lease_ms = {}\nfill_delay_ms = {}\nfailover_timeout_ms = 10000\n\n[order]\nworkers = 2\n\n",
            dir.path().join("data"),
            opts.cache_size,
            opts.heartbeat_ms,
            (3 * opts.heartbeat_ms).max(600),
            opts.fill_delay_ms
        );
        if replicas.is_empty() {
            // Top-level key: it must come before the first table.
            text.insert_str(0, "replicas = []\n");
        }
        for (id, a) in &replicas {
            text.push_str(&format!("[[replicas]]\nid = {id}\naddr = {a:?}\n\n"));
        }
        for (id, a) in &catalogs {
            text.push_str(&format!("[[catalogs]]\nid = {id}\naddr = {a:?}\n\n"));
        }
        text.push_str(&opts.extra);
        let config = dir.path().join("tradenet.toml");
        std::fs::write(&config, text).unwrap();
        Cluster {
            dir,
            config,
            catalog,
            catalogs,
            frontend,
            replicas,
            procs: BTreeMap::new(),
            extra_frontends: 0,
        }
    }

    /// A cluster with every process started and healthy, and a leader elected when there
    /// are replicas.
    pub fn up(opts: Opts) -> Cluster {
        let mut c = Cluster::new(opts);
        if c.catalogs.is_empty() {
            c.start_catalog();
        }
        let catalog_ids: Vec<u64> = c.catalogs.keys().copied().collect();
        for id in catalog_ids {
            c.start_catalog_id(id);
        }
        let ids: Vec<u64> = c.replicas.keys().copied().collect();
        for id in ids {
            c.start_replica(id);
        }
        c.start_frontend();
        if !c.replicas.is_empty() {
            c.wait_leader();
        }
        c
    }

    /// Path of a service's data folder.
    pub fn data(&self, service: &str) -> PathBuf {
        self.dir.path().join("data").join(service)
    }

    /// The probe a front end is waited on: `/ready` (a leader and a catalog link) when the
    /// cluster has replicas, `/health` (it answers) when it has none.
    fn frontend_probe(&self) -> &'static str {
        if self.replicas.is_empty() {
            wire::HEALTH
        } else {
            wire::READY
        }
    }

    fn spawn(&mut self, name: &str, args: &[&str], health: &str) {
        self.spawn_until(name, args, health, wire::READY);
    }

    fn spawn_until(&mut self, name: &str, args: &[&str], health: &str, probe: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradenet"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        self.procs.insert(name.to_string(), child);
        self.wait_probe(name, health, probe);
    }

    /// Polls `probe` (`/ready` or `/health`) until it answers 200, or fails the test naming
    /// the process.
    pub fn wait_probe(&mut self, name: &str, addr: &str, probe: &str) {
        let deadline = Instant::now() + READY;
        loop {
            if let Some((200, _)) = try_get(addr, probe) {
                return;
            }
            if let Some(status) = self.procs.get_mut(name).and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "{name} exited with {status} before it was healthy:\n{}",
                    self.log(name)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} not answering {probe} at {addr} within {READY:?}:\n{}",
                try_get(addr, probe).map_or("no answer".into(), |(s, b)| format!("{s} {b}"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn start_catalog(&mut self) {
        let a = self.catalog.clone();
        self.spawn("catalog", &["catalog"], &a);
    }

    /// Starts catalog `id` of the group (process `catalog-N`).
    pub fn start_catalog_id(&mut self, id: u64) {
        let a = self.catalogs[&id].clone();
        self.spawn(
            &format!("catalog-{id}"),
            &["catalog", "--id", &id.to_string()],
            &a,
        );
    }

    pub fn start_replica(&mut self, id: u64) {
        let a = self.replicas[&id].clone();
        self.spawn(
            &format!("order-{id}"),
            &["order", "--id", &id.to_string()],
            &a,
        );
    }

    pub fn start_frontend(&mut self) {
        let a = self.frontend.clone();
        let probe = self.frontend_probe();
        self.spawn_until("frontend", &["frontend"], &a, probe);
        wait_serving_hits(&a);
    }

    /// Starts the front end and waits only until it answers `/health` (it may not be ready).
    pub fn spawn_frontend_live(&mut self) {
        let a = self.frontend.clone();
        self.spawn_until("frontend", &["frontend"], &a, wire::HEALTH);
    }

    /// Starts one more front end on its own port; returns its address.
    pub fn start_extra_frontend(&mut self) -> String {
        self.extra_frontends += 1;
        let a = addr();
        let name = format!("frontend-{}", self.extra_frontends);
        let probe = self.frontend_probe();
        self.spawn_until(&name, &["frontend", "--addr", &a], &a, probe);
        wait_serving_hits(&a);
        a
    }

    /// SIGKILLs a process and reaps it.
    pub fn kill(&mut self, name: &str) {
        let mut child = self
            .procs
            .remove(name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs the binary to completion (for start-up failures); returns (success, output).
    pub fn run_to_end(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tradenet"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// A process's log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The front end's /status.
    pub fn status(&self) -> FrontendStatus {
        frontend_status(&self.frontend)
    }

    /// Waits until the front end has a leader that serves; returns its id.
    pub fn wait_leader(&self) -> u64 {
        wait_for("a serving leader", Duration::from_secs(20), || {
            self.status().serving_leader()
        })
    }

    /// The order files of every replica.
    pub fn order_files(&self) -> Vec<(u64, Vec<u8>)> {
        self.replicas
            .keys()
            .map(|id| {
                (
                    *id,
                    std::fs::read(self.data(&format!("order-{id}")).join("orders.jsonl"))
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits until every replica's order file is byte-identical and non-empty; returns it.
    pub fn wait_converged(&self) -> Vec<u8> {
        wait_for("identical order files", Duration::from_secs(20), || {
            let files = self.order_files();
            let first = files[0].1.clone();
            (!first.is_empty() && files.iter().all(|(_, f)| *f == first)).then_some(first)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Every process that ever ran, killed ones included (their logs matter most).
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".log")
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for (_, child) in self.procs.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for name in names {
                let log = self.log(&name);
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- {name} (last lines) ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Polls `f` until it returns Some, or fails the test after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
}

fn answer(res: Result<ureq::Response, ureq::Error>) -> Option<(u16, Value)> {
    match res {
        Ok(r) => {
            let status = r.status();
            let text = r.into_string().ok()?;
            Some((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        }
        Err(ureq::Error::Status(status, r)) => {
            let text = r.into_string().ok()?;
            Some((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        }
        Err(_) => None,
    }
}

/// GET, or None when the connection failed.
pub fn try_get(addr: &str, path: &str) -> Option<(u16, Value)> {
    answer(agent().get(&format!("http://{addr}{path}")).call())
}

/// GET; the connection must work.
pub fn get(addr: &str, path: &str) -> (u16, Value) {
    try_get(addr, path).unwrap_or_else(|| panic!("GET {addr}{path}: no answer"))
}

/// Waits until a front end's cache serves hits (the catalog's first word confirmed its lease),
/// unless its cache is off.
pub fn wait_serving_hits(frontend: &str) {
    wait_for("the cache's lease", READY, || {
        let c = frontend_status(frontend).cache;
        (c.capacity == 0 || c.serving_hits).then_some(())
    });
}

/// GET with headers; the connection must work.
pub fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = agent().get(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    answer(req.call()).unwrap_or_else(|| panic!("GET {addr}{path}: no answer"))
}

/// POST a JSON body (a wire type, or a `json!` value to send something malformed; with
/// optional headers); the connection must work.
pub fn post(
    addr: &str,
    path: &str,
    body: &impl Serialize,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    try_post(addr, path, body, headers).unwrap_or_else(|| panic!("POST {addr}{path}: no answer"))
}

/// POST, or None when the connection failed.
pub fn try_post(
    addr: &str,
    path: &str,
    body: &impl Serialize,
    headers: &[(&str, &str)],
) -> Option<(u16, Value)> {
    let mut req = agent().post(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    answer(req.send_json(body))
}

/// POST raw bytes with a content type.
pub fn post_raw(addr: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    answer(
        agent()
            .post(&format!("http://{addr}{path}"))
            .set("Content-Type", content_type)
            .send_bytes(body),
    )
    .unwrap_or_else(|| panic!("POST {addr}{path}: no answer"))
}

/// The payload of a `{"data": ...}` answer as a `T`; fails the test, showing the answer, when
/// it is not one.
pub fn data<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value::<DataBody<T>>(body.clone())
        .unwrap_or_else(|e| {
            panic!(
                "not a {{\"data\": {}}} answer ({e}): {body}",
                std::any::type_name::<T>()
            )
        })
        .data
}

/// The transaction number of a 200 answer to `POST /orders`.
pub fn transaction_number(body: &Value) -> u64 {
    data::<OrderPlaced>(body).transaction_number
}

/// A client's order body.
pub fn order_body(name: &str, kind: TradeKind, quantity: u64) -> OrderRequest {
    OrderRequest {
        name: name.to_string(),
        quantity,
        kind,
    }
}

/// Buys `quantity` of `name` under an Idempotency-Key; returns (status, body).
pub fn buy_with_key(frontend: &str, name: &str, quantity: u64, key: &str) -> (u16, Value) {
    post(
        frontend,
        wire::ORDERS,
        &order_body(name, TradeKind::Buy, quantity),
        &[("Idempotency-Key", key)],
    )
}

/// Places an order through a front end; returns (status, body).
pub fn order(frontend: &str, name: &str, kind: TradeKind, quantity: u64) -> (u16, Value) {
    post(
        frontend,
        wire::ORDERS,
        &order_body(name, kind, quantity),
        &[],
    )
}

/// Looks a stock up.
pub fn stock(addr: &str, name: &str) -> Stock {
    let (status, body) = get(addr, &wire::stock_path(name));
    assert_eq!(status, 200, "lookup {name}: {body}");
    data(&body)
}

/// The error object's code, checking the whole shape (code, message, a known kind).
pub fn error_code(body: &Value) -> u64 {
    let e = serde_json::from_value::<ErrorBody>(body.clone())
        .unwrap_or_else(|e| panic!("not an error object ({e}): {body}"))
        .error;
    e.code.into()
}

/// A front end's /status.
pub fn frontend_status(frontend: &str) -> FrontendStatus {
    try_frontend_status(frontend).unwrap_or_else(|| panic!("GET {frontend}/status: no 200 answer"))
}

/// A front end's /status, or None when it did not answer one.
pub fn try_frontend_status(frontend: &str) -> Option<FrontendStatus> {
    let (200, body) = try_get(frontend, wire::STATUS)? else {
        return None;
    };
    Some(
        serde_json::from_value(body["data"].clone())
            .unwrap_or_else(|e| panic!("front end /status of an unknown shape ({e}): {body}")),
    )
}

/// The leader a front end routes orders to, and its epoch, once that replica serves as leader.
pub fn serving_leader(frontend: &str) -> Option<(u64, u64)> {
    let s = try_frontend_status(frontend)?;
    Some((s.serving_leader()?, s.epoch))
}

/// The catalog's /status.
pub fn catalog_status(catalog: &str) -> CatalogStatus {
    let (status, body) = get(catalog, wire::STATUS);
    assert_eq!(status, 200, "catalog /status: {body}");
    serde_json::from_value(body["data"].clone())
        .unwrap_or_else(|e| panic!("catalog /status of an unknown shape ({e}): {body}"))
}

/// The catalog's stock table from its /status: name -> (quantity, volume).
pub fn catalog_stocks(catalog: &str) -> BTreeMap<String, (i64, i64)> {
    catalog_status(catalog)
        .stocks
        .into_iter()
        .map(|s| (s.name, (s.quantity as i64, s.volume as i64)))
        .collect()
}

/// What conservation needs of a record: orders from a log and the catalog's trade records
/// both have these fields (and others, ignored here).
#[derive(Deserialize)]
struct Traded {
    name: String,
    #[serde(rename = "type")]
    kind: TradeKind,
    quantity: u64,
}

/// Rule 3 for every listed stock: quantity = initial - buys + sells and volume = every traded
/// unit, over `records` (orders from a log, or the catalog's trade records: both have name,
/// type and quantity).
pub fn assert_conservation(catalog: &str, records: &[impl Serialize]) {
    let mut expect: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for record in records {
        let value = serde_json::to_value(record).unwrap();
        let o: Traded = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("record without name, type and quantity ({e}): {value}"));
        let q = o.quantity as i64;
        let e = expect.entry(o.name).or_insert((INITIAL, 0));
        match o.kind {
            TradeKind::Buy => e.0 -= q,
            TradeKind::Sell => e.0 += q,
        }
        e.1 += q;
    }
    let stocks = catalog_stocks(catalog);
    for name in expect.keys() {
        assert!(
            stocks.contains_key(name),
            "{name} is traded but not listed by the catalog"
        );
    }
    for (name, got) in &stocks {
        let want = expect.get(name).copied().unwrap_or((INITIAL, 0));
        assert_eq!(
            *got, want,
            "conservation for {name}: catalog (quantity, volume) vs initial and the records"
        );
    }
}

// Helpers for tests that pause processes or drive thousands of requests (lag.rs, fencing.rs).

impl Cluster {
    /// The OS process id of a running process, by name ("order-2", "frontend").
    pub fn pid(&self, name: &str) -> u32 {
        self.procs
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not running"))
            .id()
    }

    /// Sends `signal` (`libc::SIGSTOP`, `libc::SIGCONT`, ...) to a running process; unlike
    /// `kill` it leaves the process in the cluster, so `Drop` still ends it.
    pub fn signal(&self, name: &str, signal: i32) {
        send_signal(self.pid(name), signal);
    }
}

/// Sends `signal` to process `pid`, failing the test if it cannot.
pub fn send_signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// A client that keeps its connection between calls. Give each load thread its own: a load
/// of thousands of requests through `get`/`post` (a new connection each) would leave as many
/// sockets in TIME_WAIT.
pub fn keep_alive_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
}

/// GET through `agent`, or None when the connection failed.
pub fn try_get_with(agent: &ureq::Agent, addr: &str, path: &str) -> Option<(u16, Value)> {
    answer(agent.get(&format!("http://{addr}{path}")).call())
}

/// POST a JSON body through `agent`, or None when the connection failed.
pub fn try_post_with(
    agent: &ureq::Agent,
    addr: &str,
    path: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    try_post_with_headers(agent, addr, path, body, &[])
}

/// `try_post_with`, with headers.
pub fn try_post_with_headers(
    agent: &ureq::Agent,
    addr: &str,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Option<(u16, Value)> {
    let mut req = agent.post(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    answer(req.send_json(body.clone()))
}
