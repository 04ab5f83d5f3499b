//! The simulated world: one event queue in simulated milliseconds, the nodes (replicas with
//! their disks, the catalog, front ends with their clients), the network between them, and
//! the fault schedule. See the module docs of `sim`.

use super::catalog::CatalogModel;
use super::check::Checker;
use crate::catalog::{Catalog, JournalEntry};
use crate::catalog_node::{self, CatalogNode, NodeState};
use crate::orderlog::{Order, OrderLog};
use crate::replication::supervision::Supervision;
use crate::replication::supervision::{CatalogElection, CatalogSeen};
use crate::replication::CatalogTerm;
use crate::replication::{
    CatalogAnswer, CatalogCall, Config, Effect, Envelope, Event, Flaw, Millis, NodeId, PlaceOrder,
    Replica, ReplicaState, Request, Response, Term, Write,
};
use crate::types::{RequestId, StockSeed, TradeKind};
use crate::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;

/// The catalog's node id.
const CATALOG: NodeId = 1000;
/// The first front end's node id.
const FRONTEND_BASE: NodeId = 2000;
/// Stocks the clients trade.
const STOCKS: [&str; 3] = ["GameStart", "FishCo", "BoarCo"];

/// One simulation's knobs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed everything comes from.
    pub seed: u64,
    /// Order replicas (ids 1..=n).
    pub replicas: u64,
    /// Front ends, each with its own supervisor.
    pub frontends: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Simulated time with load and faults, then the world heals and must come to rest.
    pub active_ms: Millis,
    /// Longest the healed world may take to come to rest.
    pub settle_ms: Millis,
    /// The receiver's body limit for a batch, in bytes.
    pub body_limit: usize,
    /// Inject faults (crashes, pauses, partitions, drops, duplicates).
    pub faults: bool,
    /// A deliberately broken machine, to show the checks catch it.
    pub flaw: Option<Flaw>,
    /// Keep a readable trace of every event (for replaying a failing seed).
    pub trace: bool,
    /// Catalogs: 1 is the catalog model (never loses what it applied, can be unreachable);
    /// 2 or more is a catalog group of real `CatalogNode`s that crash and restart, with the
    /// front ends electing the primary (`docs/catalog-failover.md`). The group's failure
    /// model is one failure at a time between catalogs and replicas: a catalog crashes only
    /// while every replica is up, and no replica crashes or pauses while a catalog is down
    /// (partitions, drops and duplicates go on throughout). Without that limit an order
    /// acknowledged while both followers lag, held by the leader and the primary catalog
    /// only, is lost when both die before a standby read it (docs/catalog-failover.md).
    pub catalogs: u64,
    /// Crash and pause replicas (false: catalogs, links and messages fail, replicas do not).
    pub replica_faults: bool,
}

impl SimConfig {
    /// The default world for `seed`.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            replicas: 3,
            frontends: 2,
            clients: 6,
            active_ms: 1500,
            settle_ms: 4000,
            body_limit: 2048,
            faults: true,
            flaw: None,
            trace: false,
            catalogs: 1,
            replica_faults: true,
        }
    }
}

/// What one simulation found.
#[derive(Debug, Default)]
pub struct Report {
    /// Rule violations, each with the simulated time; empty when every check held.
    pub violations: Vec<String>,
    /// The trace (when `SimConfig::trace`).
    pub trace: Vec<String>,
    /// Orders acknowledged to clients.
    pub acked: u64,
    /// Reads answered.
    pub reads: u64,
    /// Simulated milliseconds until rest.
    pub ended_at: Millis,
    /// Elections (new epochs) seen by the front ends.
    pub epochs: u64,
}

/// A message in flight.
#[derive(Clone, Debug)]
enum Net {
    Request(u64, Request),
    Reply(u64, Result<Response, Error>),
    Catalog(u64, CatalogCall),
    CatalogReply(u64, Result<CatalogAnswer, Error>),
    /// A front end's heartbeat or term to a catalog of a group, and its answer.
    CatReq(u64, catalog_node::Request),
    CatReply(u64, Result<catalog_node::Response, Error>),
}

#[derive(Debug)]
enum Ev {
    Tick(NodeId, u64),
    Deliver(NodeId, NodeId, Net),
    Sync(NodeId, u64),
    Round(usize),
    RoundEnd(usize, u64),
    FrontendTimeout(usize, u64),
    FrontendRetry(usize, u64),
    ClientNext(usize),
    Fault,
    Restart(NodeId),
    Resume(NodeId),
    Heal(NodeId, NodeId),
    CatTick(u64, u64),
    CatRestart(u64),
}

/// Why a catalog node was asked something: to answer a replica's call, or a front end.
enum CatAsk {
    Call { replica: NodeId, id: u64 },
    Frontend { fe: NodeId, id: u64 },
}

/// One catalog of a group: its machine while up, its journal (every line durable at once:
/// the real journal's group commit is tested on its own), what it was asked.
struct CatNode {
    node: Option<CatalogNode>,
    journal: Vec<JournalEntry>,
    incarnation: u64,
    asks: BTreeMap<u64, CatAsk>,
    next: u64,
}

struct Disk {
    file: Vec<u8>,
    term: Term,
    pending: Vec<Write>,
}

struct ReplicaNode {
    machine: Option<Replica>,
    disk: Disk,
    incarnation: u64,
    paused: bool,
    stash: Vec<(NodeId, Net)>,
    sync_scheduled: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Place(PlaceOrder),
    Get(u64),
}

struct Pending {
    client: usize,
    op: Op,
    deadline: Millis,
    sent: Option<(NodeId, u64)>,
}

/// A heartbeat round in progress: its number, the replica index each probe went to, the
/// answers so far.
type Round = (u64, BTreeMap<u64, usize>, Vec<Option<ReplicaState>>);

struct Frontend {
    id: NodeId,
    sup: Supervision,
    round: Option<Round>,
    rounds: u64,
    recheck: bool,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    by_msg: BTreeMap<u64, u64>,
    /// A catalog group's election, and this round's catalog answers (message id -> index).
    cat: Option<CatalogElection>,
    cat_asked: BTreeMap<u64, usize>,
    cat_seen: Vec<Option<NodeState>>,
}

struct Client {
    frontend: usize,
    /// The order being placed: (order, attempts).
    placing: Option<(PlaceOrder, u32)>,
    busy: bool,
}

/// Front-end timing (simulated milliseconds).
const HEARTBEAT: Millis = 50;
const REQUEST_TIMEOUT: Millis = 300;
const FAILOVER_TIMEOUT: Millis = 1500;
const RETRY_PAUSE: Millis = 10;
const TICK: Millis = 10;

pub(super) struct World {
    pub cfg: SimConfig,
    rng: StdRng,
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    events: BTreeMap<usize, Ev>,
    next_ev: usize,
    replicas: Vec<ReplicaNode>,
    pub catalog: CatalogModel,
    catalog_down: bool,
    /// A catalog group (empty: the model above).
    cats: Vec<CatNode>,
    frontends: Vec<Frontend>,
    clients: Vec<Client>,
    cut: BTreeSet<(NodeId, NodeId)>,
    drop_p: f64,
    dup_p: f64,
    pub check: Checker,
    pub trace: Vec<String>,
    /// Request ids the clients issued.
    pub issued: BTreeSet<RequestId>,
    /// Place requests being served by a replica: (replica, envelope).
    placing: BTreeSet<(NodeId, Envelope)>,
    report: Report,
}

/// Runs one simulation.
pub fn run(cfg: SimConfig) -> Report {
    let mut w = World::new(cfg);
    w.run();
    let mut report = std::mem::take(&mut w.report);
    report.violations = std::mem::take(&mut w.check.violations);
    report.trace = std::mem::take(&mut w.trace);
    report
}

impl World {
    fn new(cfg: SimConfig) -> World {
        let rng = StdRng::seed_from_u64(cfg.seed);
        let ids: Vec<NodeId> = (1..=cfg.replicas).collect();
        let replicas = ids
            .iter()
            .map(|_| ReplicaNode {
                machine: None,
                disk: Disk {
                    file: Vec::new(),
                    term: Term::default(),
                    pending: Vec::new(),
                },
                incarnation: 0,
                paused: false,
                stash: Vec::new(),
                sync_scheduled: false,
            })
            .collect();
        let frontends = (0..cfg.frontends)
            .map(|i| Frontend {
                id: FRONTEND_BASE + i as NodeId,
                sup: Supervision::new(&ids, 3 * HEARTBEAT),
                round: None,
                rounds: 0,
                recheck: false,
                next_id: 1,
                pending: BTreeMap::new(),
                by_msg: BTreeMap::new(),
                cat: (cfg.catalogs > 1)
                    .then(|| CatalogElection::new(&(1..=cfg.catalogs).collect::<Vec<_>>())),
                cat_asked: BTreeMap::new(),
                cat_seen: Vec::new(),
            })
            .collect();
        let cats = if cfg.catalogs > 1 {
            (0..cfg.catalogs)
                .map(|_| CatNode {
                    node: None,
                    journal: Vec::new(),
                    incarnation: 0,
                    asks: BTreeMap::new(),
                    next: 1,
                })
                .collect()
        } else {
            Vec::new()
        };
        let clients = (0..cfg.clients)
            .map(|i| Client {
                frontend: i % cfg.frontends.max(1),
                placing: None,
                busy: false,
            })
            .collect();
        let (drop_p, dup_p) = if cfg.faults { (0.01, 0.01) } else { (0.0, 0.0) };
        World {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_ev: 0,
            replicas,
            catalog: CatalogModel::new(&STOCKS, 40),
            catalog_down: false,
            cats,
            frontends,
            clients,
            cut: BTreeSet::new(),
            drop_p,
            dup_p,
            check: Checker::default(),
            trace: Vec::new(),
            issued: BTreeSet::new(),
            placing: BTreeSet::new(),
            report: Report::default(),
            cfg,
        }
    }

    fn at(&mut self, when: Millis, ev: Ev) {
        self.seq += 1;
        let key = self.next_ev;
        self.next_ev += 1;
        self.events.insert(key, ev);
        self.queue.push(Reverse((when, self.seq, key)));
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>6} ms  {}", self.now, what());
            self.trace.push(line);
        }
    }

    pub fn violation(&mut self, what: String) {
        let line = format!("{} ms: {what}", self.now);
        self.note(|| format!("VIOLATION {what}"));
        self.check.violations.push(line);
    }

    fn run(&mut self) {
        for id in 1..=self.cfg.replicas {
            self.start_replica(id);
        }
        for c in 1..=self.cats.len() as u64 {
            self.start_catalog(c);
        }
        for f in 0..self.frontends.len() {
            self.at(f as Millis, Ev::Round(f));
        }
        for c in 0..self.clients.len() {
            self.at(100 + c as Millis, Ev::ClientNext(c));
        }
        if self.cfg.faults {
            self.at(150, Ev::Fault);
        }
        let mut healed = false;
        let limit = self.cfg.active_ms + self.cfg.settle_ms;
        let mut next_rest_check = self.cfg.active_ms;
        while let Some(Reverse((when, _, key))) = self.queue.pop() {
            if when > limit {
                break;
            }
            self.now = when;
            let ev = self.events.remove(&key).expect("queued event");
            self.handle(ev);
            if self.check.violations.len() > 20 {
                return;
            }
            if self.now >= self.cfg.active_ms && !healed {
                healed = true;
                self.heal_all();
            }
            if healed && self.now >= next_rest_check {
                next_rest_check = self.now + 50;
                if self.at_rest() {
                    self.report.ended_at = self.now;
                    super::check::at_rest(self);
                    return;
                }
            }
        }
        self.report.ended_at = self.now;
        let detail = self.describe();
        self.violation(format!(
            "the healed cluster did not come to rest within {} ms: {detail}",
            self.cfg.settle_ms
        ));
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(id, inc) => {
                let node = &self.replicas[(id - 1) as usize];
                if node.incarnation == inc && node.machine.is_some() {
                    if !node.paused {
                        self.step_replica(id, Event::Tick, None);
                    }
                    self.at(self.now + TICK, Ev::Tick(id, inc));
                }
            }
            Ev::Deliver(from, to, net) => self.deliver(from, to, net),
            Ev::Sync(id, inc) => self.sync(id, inc),
            Ev::Round(f) => self.round(f),
            Ev::RoundEnd(f, no) => self.round_end(f, no),
            Ev::FrontendTimeout(f, msg) => self.frontend_timeout(f, msg),
            Ev::FrontendRetry(f, req) => self.dispatch(f, req),
            Ev::ClientNext(c) => self.client_next(c),
            Ev::Fault => self.fault(),
            Ev::Restart(id) => {
                if self.replicas[(id - 1) as usize].machine.is_none() {
                    self.start_replica(id);
                }
            }
            Ev::Resume(id) => self.resume(id),
            Ev::CatTick(c, inc) => {
                let cat = &self.cats[(c - 1) as usize];
                if cat.incarnation == inc && cat.node.is_some() {
                    self.step_catalog(c, catalog_node::Event::Tick);
                    self.at(self.now + TICK, Ev::CatTick(c, inc));
                }
            }
            Ev::CatRestart(c) => {
                if self.cats[(c - 1) as usize].node.is_none() {
                    self.start_catalog(c);
                }
            }
            Ev::Heal(a, b) => {
                self.cut.remove(&(a, b));
                if a == CATALOG || b == CATALOG {
                    self.catalog_down = false;
                }
            }
        }
    }

    // ----- network -----

    fn send(&mut self, from: NodeId, to: NodeId, net: Net) {
        if self.cut.contains(&(from, to)) || self.rng.gen_bool(self.drop_p) {
            self.note(|| format!("net drops {from}->{to} {}", net_name(&net)));
            return;
        }
        let copies = if self.rng.gen_bool(self.dup_p) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..=4);
            self.at(self.now + delay, Ev::Deliver(from, to, net.clone()));
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, net: Net) {
        if to > CATALOG && to < FRONTEND_BASE {
            return self.deliver_to_catalog(from, to - CATALOG, net);
        }
        if to == CATALOG {
            if let Net::Catalog(id, call) = net {
                if self.catalog_down {
                    return;
                }
                let result = self.catalog.call(call.clone());
                if let (
                    Ok(CatalogAnswer::Traded(results)),
                    CatalogCall::Trades { trades: reqs, .. },
                ) = (&result, &call)
                {
                    for (req, t) in reqs.iter().zip(results) {
                        if let Ok(t) = t {
                            if !self.issued.contains(&req.rid) {
                                self.violation(format!(
                                    "rule 2: the catalog traded request {} (trade {}), which no client issued",
                                    req.rid, t.seq
                                ));
                            }
                        }
                    }
                }
                self.note(|| format!("catalog answers {from}: {}", short(&result)));
                self.send(CATALOG, from, Net::CatalogReply(id, result));
            }
            return;
        }
        if to >= FRONTEND_BASE {
            let f = (to - FRONTEND_BASE) as usize;
            match net {
                Net::Reply(id, result) => self.frontend_reply(f, from, id, result),
                Net::CatReply(id, Ok(catalog_node::Response::State(st))) => {
                    let fe = &mut self.frontends[f];
                    if let Some(i) = fe.cat_asked.remove(&id) {
                        fe.cat_seen[i] = Some(st);
                    }
                }
                _ => {}
            }
            return;
        }
        let node = &mut self.replicas[(to - 1) as usize];
        if node.machine.is_none() {
            // A crashed process's port refuses connections at once (a cut or paused one just
            // does not answer).
            if let Net::Request(id, _) = net {
                let refused = Err(Error::Unavailable("connection refused".into()));
                self.send(to, from, Net::Reply(id, refused));
            }
            return;
        }
        if node.paused {
            node.stash.push((from, net));
            return;
        }
        let event = match net {
            Net::Request(id, req) => {
                if let Request::Append(a) = &req {
                    let size: usize = 200
                        + a.orders
                            .iter()
                            .map(crate::replication::replica::order_bytes)
                            .sum::<usize>();
                    if size > self.cfg.body_limit {
                        self.note(|| format!("replica {to} refuses a {size}-byte batch (413)"));
                        let e = Error::Unavailable(format!("413: a {size}-byte body"));
                        self.send(to, from, Net::Reply(id, Err(e)));
                        return;
                    }
                }
                let env = Envelope { from, id };
                if matches!(req, Request::Place(_)) {
                    self.placing.insert((to, env));
                    // Orders that reach this replica in the same millisecond arrive together,
                    // as a front end's batch does (`Event::Requests`).
                    let mut together = vec![(env, req)];
                    while let Some(more) = self.next_place_for(to) {
                        self.placing.insert((to, more.0));
                        together.push(more);
                    }
                    if together.len() > 1 {
                        self.note(|| {
                            format!("replica {to} takes {} orders together", together.len())
                        });
                        Event::Requests(together)
                    } else {
                        let (env, req) = together.pop().expect("one");
                        Event::Request(env, req)
                    }
                } else {
                    Event::Request(env, req)
                }
            }
            Net::Reply(id, result) => Event::Reply { from, id, result },
            Net::CatalogReply(id, result) => Event::CatalogReply { id, result },
            Net::Catalog(..) | Net::CatReq(..) | Net::CatReply(..) => return,
        };
        let before = self.replicas[(to - 1) as usize]
            .machine
            .as_ref()
            .map(|m| m.term());
        self.step_replica(to, event, before);
    }

    /// The next queued event, if it is an order delivered to replica `to` now: taken off the
    /// queue and returned.
    fn next_place_for(&mut self, to: NodeId) -> Option<(Envelope, Request)> {
        let Reverse((when, _, key)) = *self.queue.peek()?;
        let is_place = matches!(
            self.events.get(&key),
            Some(Ev::Deliver(_, t, Net::Request(_, Request::Place(_)))) if *t == to
        );
        if when != self.now || !is_place {
            return None;
        }
        self.queue.pop();
        match self.events.remove(&key) {
            Some(Ev::Deliver(from, _, Net::Request(id, req))) => Some((Envelope { from, id }, req)),
            _ => unreachable!("checked above"),
        }
    }

    // ----- replicas and disks -----

    fn replica_config(&self, id: NodeId) -> Config {
        let peers = (1..=self.cfg.replicas).filter(|p| *p != id).collect();
        let mut c = Config::new(id, peers);
        c.replicate_timeout = 200;
        c.retry = 50;
        c.max_batch_bytes = self.cfg.body_limit / 2;
        c.max_batch_orders = 10_000;
        c.gap_wait = 60;
        c.recovery_wait = 300;
        c.catalog_group = self.cfg.catalogs >= 2;
        c.flaw = self.cfg.flaw;
        c
    }

    fn start_replica(&mut self, id: NodeId) {
        let cfg = self.replica_config(id);
        let node = &mut self.replicas[(id - 1) as usize];
        let path = format!("order-{id}/orders.jsonl");
        let (log, len) = match OrderLog::from_bytes(Path::new(&path), &node.disk.file) {
            Ok(l) => l,
            Err(e) => {
                let msg = format!("replica {id} cannot restart: {e}");
                self.violation(msg);
                return;
            }
        };
        node.disk.file.truncate(len as usize);
        node.incarnation += 1;
        let inc = node.incarnation;
        let term = node.disk.term;
        let (m, effects) = Replica::new(cfg, log, term, self.now);
        let n = m.log().next_number();
        self.replicas[(id - 1) as usize].machine = Some(m);
        self.note(|| format!("replica {id} starts with {n} orders, epoch {}", term.epoch));
        self.at(self.now + 1, Ev::Tick(id, inc));
        self.run_effects(id, effects);
    }

    fn step_replica(&mut self, id: NodeId, event: Event, before: Option<Term>) {
        let idx = (id - 1) as usize;
        let Some(m) = self.replicas[idx].machine.as_mut() else {
            return;
        };
        let older_batch = match (&event, before) {
            (Event::Request(_, Request::Append(a)), Some(t)) => a.term.epoch < t.epoch,
            _ => false,
        };
        if self.cfg.trace && !matches!(event, Event::Tick) {
            let line = format!("{:>6} ms  replica {id} <- {}", self.now, event_name(&event));
            self.trace.push(line);
        }
        let effects = m.step(self.now, event);
        let term = m.term();
        if let Some(b) = before {
            if term.epoch < b.epoch {
                self.violation(format!(
                    "rule 5: replica {id} went back from epoch {} to {}",
                    b.epoch, term.epoch
                ));
            }
        }
        if older_batch
            && effects.iter().any(|e| {
                matches!(
                    e,
                    Effect::Write(Write::Append { .. } | Write::Truncate { .. })
                )
            })
        {
            self.violation(format!(
                "rule 5: replica {id} (epoch {}) changed its log for a batch from an older epoch",
                before.map_or(0, |t| t.epoch)
            ));
        }
        super::check::one_leader_per_epoch(self, id);
        self.run_effects(id, effects);
    }

    fn run_effects(&mut self, id: NodeId, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send {
                    to,
                    id: rid,
                    request,
                } => self.send(id, to, Net::Request(rid, request)),
                Effect::Respond { to, result } => {
                    if self.placing.remove(&(id, to)) {
                        if let Ok(Response::Order(o)) = &result {
                            super::check::acknowledged_by_leader(self, id, o);
                        }
                    }
                    self.send(id, to.from, Net::Reply(to.id, result))
                }
                Effect::Catalog { id: cid, call, to } => {
                    // A group: the primary of the replica's catalog term (the highest id
                    // before any term, as the real driver does).
                    let target = if self.cats.is_empty() {
                        CATALOG
                    } else {
                        CATALOG + to.unwrap_or(self.cats.len() as u64)
                    };
                    self.send(id, target, Net::Catalog(cid, call))
                }
                Effect::Write(w) => {
                    if let Write::Append { lines, .. } = &w {
                        let orders: Vec<Order> = lines
                            .iter()
                            .map(|l| serde_json::from_slice(l).expect("order line"))
                            .collect();
                        super::check::appended(self, id, &orders);
                    }
                    let node = &mut self.replicas[(id - 1) as usize];
                    node.disk.pending.push(w);
                    if !node.sync_scheduled {
                        node.sync_scheduled = true;
                        let inc = node.incarnation;
                        let delay = self.rng.gen_range(0..=3);
                        self.at(self.now + delay, Ev::Sync(id, inc));
                    }
                }
            }
        }
    }

    fn sync(&mut self, id: NodeId, inc: u64) {
        let node = &mut self.replicas[(id - 1) as usize];
        if node.incarnation != inc || node.machine.is_none() {
            return;
        }
        node.sync_scheduled = false;
        if node.paused {
            // A stopped process learns of its writes when it resumes.
            return;
        }
        let pending = std::mem::take(&mut node.disk.pending);
        let Some(last) = pending.last().map(|w| w.ticket()) else {
            return;
        };
        for w in pending {
            apply_write(&mut node.disk, w, None);
        }
        self.step_replica(id, Event::Durable(last), None);
    }

    fn crash(&mut self, id: NodeId) {
        let torn = self.rng.gen_bool(0.5);
        let keep = self
            .rng
            .gen_range(0..=self.replicas[(id - 1) as usize].disk.pending.len());
        let cut = self.rng.gen_range(0.0..1.0);
        let node = &mut self.replicas[(id - 1) as usize];
        // Unsynced writes may or may not have reached the disk: a prefix of them did, and the
        // last of those may be torn.
        let pending = std::mem::take(&mut node.disk.pending);
        let n = pending.len();
        for (i, w) in pending.into_iter().take(keep).enumerate() {
            let tear = (torn && i + 1 == keep.min(n)).then_some(cut);
            apply_write(&mut node.disk, w, tear);
        }
        node.machine = None;
        node.paused = false;
        node.stash.clear();
        node.sync_scheduled = false;
        node.incarnation += 1;
        self.note(|| format!("CRASH replica {id} ({keep} of {n} unsynced writes reach the disk)"));
    }

    fn resume(&mut self, id: NodeId) {
        let node = &mut self.replicas[(id - 1) as usize];
        if !node.paused {
            return;
        }
        node.paused = false;
        let stash = std::mem::take(&mut node.stash);
        if !node.disk.pending.is_empty() && !node.sync_scheduled {
            node.sync_scheduled = true;
            let inc = node.incarnation;
            self.at(self.now, Ev::Sync(id, inc));
        }
        self.note(|| format!("RESUME replica {id} ({} messages waited)", stash.len()));
        for (from, net) in stash {
            self.at(self.now, Ev::Deliver(from, id, net));
        }
    }

    // ----- faults -----

    fn fault(&mut self) {
        if self.now >= self.cfg.active_ms {
            return;
        }
        let next = self.now + self.rng.gen_range(50..250);
        self.at(next, Ev::Fault);
        let id = self.rng.gen_range(1..=self.cfg.replicas);
        // With a catalog group, one failure at a time between the two kinds: no replica
        // crashes or pauses while a catalog is down, and a catalog crashes only while every
        // replica is up (see `SimConfig::catalogs`).
        let catalog_down = self.cats.iter().any(|c| c.node.is_none());
        let replicas_whole = self
            .replicas
            .iter()
            .all(|n| n.machine.is_some() && !n.paused);
        let kind = self.rng.gen_range(0..10);
        if !self.cats.is_empty() && ((catalog_down && kind <= 4) || (!replicas_whole && kind == 9))
        {
            return;
        }
        if !self.cfg.replica_faults && kind <= 4 {
            return;
        }
        match kind {
            0..=2 => {
                if self.replicas[(id - 1) as usize].machine.is_some() {
                    self.crash(id);
                    let back = self.now + self.rng.gen_range(20..600);
                    self.at(back, Ev::Restart(id));
                }
            }
            3..=4 => {
                let node = &mut self.replicas[(id - 1) as usize];
                if node.machine.is_some() && !node.paused {
                    node.paused = true;
                    let back = self.now + self.rng.gen_range(50..900);
                    self.note(|| format!("PAUSE replica {id} until {back} ms"));
                    self.at(back, Ev::Resume(id));
                }
            }
            5..=7 => {
                // Cut one direction of one link (or both), for a while.
                let mut ends: Vec<NodeId> = (1..=self.cfg.replicas).collect();
                if self.cats.is_empty() {
                    ends.push(CATALOG);
                } else {
                    ends.extend((1..=self.cats.len() as NodeId).map(|c| CATALOG + c));
                }
                ends.extend((0..self.cfg.frontends).map(|f| FRONTEND_BASE + f as NodeId));
                let a = ends[self.rng.gen_range(0..ends.len())];
                let b = ends[self.rng.gen_range(0..ends.len())];
                if a == b || (a >= FRONTEND_BASE && b >= FRONTEND_BASE) {
                    return;
                }
                let both = self.rng.gen_bool(0.5);
                let until = self.now + self.rng.gen_range(50..700);
                self.cut.insert((a, b));
                self.at(until, Ev::Heal(a, b));
                if both {
                    self.cut.insert((b, a));
                    self.at(until, Ev::Heal(b, a));
                }
                self.note(|| {
                    format!(
                        "CUT {a}->{b}{} until {until} ms",
                        if both { " both ways" } else { "" }
                    )
                });
            }
            8 => {
                // Isolate one replica from every front end only (it still reaches its peers
                // and the catalog): a deposed leader that lives on.
                let until = self.now + self.rng.gen_range(100..800);
                for f in 0..self.cfg.frontends {
                    let fe = FRONTEND_BASE + f as NodeId;
                    for (a, b) in [(fe, id), (id, fe)] {
                        self.cut.insert((a, b));
                        self.at(until, Ev::Heal(a, b));
                    }
                }
                self.note(|| format!("CUT replica {id} from the front ends until {until} ms"));
            }
            _ if !self.cats.is_empty() => {
                // A catalog of the group crashes (the primary most often: the highest id).
                let c = if self.rng.gen_bool(0.5) {
                    self.cats.len() as u64
                } else {
                    self.rng.gen_range(1..=self.cats.len() as u64)
                };
                if self.cats[(c - 1) as usize].node.is_some() {
                    self.crash_catalog(c);
                    let back = self.now + self.rng.gen_range(20..600);
                    self.at(back, Ev::CatRestart(c));
                }
            }
            _ => {
                if !self.catalog_down {
                    self.catalog_down = true;
                    let until = self.now + self.rng.gen_range(20..300);
                    self.at(until, Ev::Heal(CATALOG, CATALOG));
                    self.note(|| format!("CATALOG unreachable until {until} ms"));
                }
            }
        }
    }

    fn heal_all(&mut self) {
        self.note(|| "HEAL: no more faults; every process back, every link up".into());
        self.cut.clear();
        self.catalog_down = false;
        self.drop_p = 0.0;
        self.dup_p = 0.0;
        for id in 1..=self.cfg.replicas {
            if self.replicas[(id - 1) as usize].machine.is_none() {
                self.start_replica(id);
            } else {
                self.resume(id);
            }
        }
        for c in 1..=self.cats.len() as u64 {
            if self.cats[(c - 1) as usize].node.is_none() {
                self.start_catalog(c);
            }
        }
    }

    // ----- front ends -----

    fn round(&mut self, f: usize) {
        self.at(self.now + HEARTBEAT, Ev::Round(f));
        self.start_round(f);
    }

    fn start_round(&mut self, f: usize) {
        let fe = &mut self.frontends[f];
        if fe.round.is_some() {
            fe.recheck = true;
            return;
        }
        fe.rounds += 1;
        let no = fe.rounds;
        let from = fe.id;
        let mut asked = BTreeMap::new();
        let mut sends = Vec::new();
        for i in 0..self.cfg.replicas as usize {
            let id = fe.next_id;
            fe.next_id += 1;
            asked.insert(id, i);
            sends.push((i as NodeId + 1, id));
        }
        fe.round = Some((no, asked, vec![None; self.cfg.replicas as usize]));
        let mut cat_sends = Vec::new();
        fe.cat_asked.clear();
        fe.cat_seen = vec![None; self.cats.len()];
        for c in 0..self.cats.len() {
            let id = fe.next_id;
            fe.next_id += 1;
            fe.cat_asked.insert(id, c);
            cat_sends.push((CATALOG + c as NodeId + 1, id));
        }
        for (to, id) in sends {
            self.send(from, to, Net::Request(id, Request::State));
        }
        for (to, id) in cat_sends {
            self.send(from, to, Net::CatReq(id, catalog_node::Request::State));
        }
        self.at(self.now + HEARTBEAT, Ev::RoundEnd(f, no));
    }

    fn round_end(&mut self, f: usize, no: u64) {
        let fe = &mut self.frontends[f];
        if fe.round.as_ref().is_none_or(|r| r.0 != no) {
            return;
        }
        let (_, _, states) = fe.round.take().expect("checked");
        let mut cat_sends: Vec<(NodeId, Net)> = Vec::new();
        if let Some(election) = &mut fe.cat {
            let seen: Vec<CatalogSeen> = fe
                .cat_seen
                .iter()
                .flatten()
                .map(CatalogSeen::from)
                .collect();
            let held: Vec<Option<CatalogTerm>> = states
                .iter()
                .map(|s| s.as_ref().map(|s| s.catalog_term))
                .collect();
            let d = election.decide(&seen, &held);
            for c in d.tell_catalogs {
                let id = fe.next_id;
                fe.next_id += 1;
                let req = catalog_node::Request::Term(d.term);
                cat_sends.push((CATALOG + c, Net::CatReq(id, req)));
            }
            for i in d.tell_replicas {
                let id = fe.next_id;
                fe.next_id += 1;
                let req = Request::CatalogTerm(d.term);
                cat_sends.push((i as NodeId + 1, Net::Request(id, req)));
            }
        }
        let epoch_before = fe.sup.epoch();
        let announce = fe.sup.observe(&states);
        if fe.sup.epoch() > epoch_before {
            self.report.epochs += 1;
        }
        let from = fe.id;
        let leader = fe.sup.leader();
        let mut sends = Vec::new();
        for (to, term) in announce {
            let id = fe.next_id;
            fe.next_id += 1;
            sends.push((to, id, term));
        }
        let waiting: Vec<u64> = fe
            .pending
            .iter()
            .filter(|(_, p)| p.sent.is_none())
            .map(|(k, _)| *k)
            .collect();
        let again = std::mem::take(&mut fe.recheck);
        self.note(|| format!("front end {f} round {no}: leader {leader:?}"));
        for (to, id, term) in sends {
            self.send(from, to, Net::Request(id, Request::Term(term)));
        }
        for (to, net) in cat_sends {
            self.send(from, to, net);
        }
        for req in waiting {
            self.dispatch(f, req);
        }
        if again {
            self.start_round(f);
        }
    }

    fn submit(&mut self, f: usize, client: usize, op: Op) {
        let fe = &mut self.frontends[f];
        let key = fe.next_id;
        fe.next_id += 1;
        fe.pending.insert(
            key,
            Pending {
                client,
                op,
                deadline: self.now + FAILOVER_TIMEOUT,
                sent: None,
            },
        );
        self.dispatch(f, key);
    }

    fn dispatch(&mut self, f: usize, key: u64) {
        let now = self.now;
        let fe = &mut self.frontends[f];
        let Some(p) = fe.pending.get_mut(&key) else {
            return;
        };
        if p.sent.is_some() {
            return;
        }
        if now >= p.deadline {
            let p = fe.pending.remove(&key).expect("present");
            let e = Error::Unavailable("no leader could take the request in time".into());
            return self.client_result(p.client, p.op, Err(e));
        }
        let Some((leader, _)) = fe.sup.leader() else {
            // Wait for the next round.
            return self.start_round(f);
        };
        if fe.sup.leader_unreachable_here() {
            // As the real front end: wait out one silence window (the leader may have died),
            // then a 503; nothing sent, never a fight.
            let waited = now + FAILOVER_TIMEOUT - p.deadline;
            if waited >= 5 * HEARTBEAT {
                let p = fe.pending.remove(&key).expect("present");
                let e = Error::Unavailable("the leader is alive but unreachable from here".into());
                return self.client_result(p.client, p.op, Err(e));
            }
            self.at(now + RETRY_PAUSE, Ev::FrontendRetry(f, key));
            return self.start_round(f);
        }
        let id = fe.next_id;
        fe.next_id += 1;
        p.sent = Some((leader, id));
        fe.by_msg.insert(id, key);
        let req = match &p.op {
            Op::Place(o) => Request::Place(o.clone()),
            Op::Get(n) => Request::Get(*n),
        };
        let from = fe.id;
        self.send(from, leader, Net::Request(id, req));
        self.at(now + REQUEST_TIMEOUT, Ev::FrontendTimeout(f, id));
    }

    fn frontend_reply(&mut self, f: usize, from: NodeId, id: u64, result: Result<Response, Error>) {
        let fe = &mut self.frontends[f];
        if let Some(round) = &mut fe.round {
            if let Some(i) = round.1.remove(&id) {
                if let Ok(Response::State(s)) = result {
                    round.2[i] = Some(s);
                }
                return;
            }
        }
        let Some(key) = fe.by_msg.remove(&id) else {
            return;
        };
        let Some(p) = fe.pending.get_mut(&key) else {
            return;
        };
        if p.sent.is_none_or(|s| s.0 != from) {
            return;
        }
        match result {
            Err(e) if e.is_retryable() => {
                p.sent = None;
                self.note(|| format!("front end {f}: leader {from} failed ({e}); re-checking"));
                self.at(self.now + RETRY_PAUSE, Ev::FrontendRetry(f, key));
                self.start_round(f);
            }
            other => {
                let p = self.frontends[f].pending.remove(&key).expect("present");
                self.client_result(p.client, p.op, other);
            }
        }
    }

    fn frontend_timeout(&mut self, f: usize, msg: u64) {
        let fe = &mut self.frontends[f];
        let Some(key) = fe.by_msg.remove(&msg) else {
            return;
        };
        if let Some(p) = fe.pending.get_mut(&key) {
            p.sent = None;
            self.at(self.now + RETRY_PAUSE, Ev::FrontendRetry(f, key));
            self.start_round(f);
        }
    }

    // ----- clients -----

    fn client_next(&mut self, c: usize) {
        let active = self.now < self.cfg.active_ms;
        let client = &mut self.clients[c];
        if client.busy {
            return;
        }
        let f = client.frontend;
        if let Some((order, attempts)) = client.placing.clone() {
            // Retrying after a 503: the same request id (an Idempotency-Key).
            client.placing = Some((order.clone(), attempts + 1));
            client.busy = true;
            return self.submit(f, c, Op::Place(order));
        }
        if !active {
            return;
        }
        let read = !self.check.acked.is_empty() && self.rng.gen_bool(0.3);
        let op = if read {
            let newest = self.check.newest_ack();
            let n = if self.rng.gen_bool(0.5) {
                newest
            } else {
                self.rng.gen_range(0..=newest)
            };
            match self.check.acked_number(n) {
                Some(_) => Op::Get(n),
                None => Op::Get(newest),
            }
        } else {
            let order = PlaceOrder {
                rid: RequestId(self.rng.gen()),
                name: STOCKS[self.rng.gen_range(0..STOCKS.len())].to_string(),
                quantity: self.rng.gen_range(1..=3),
                kind: if self.rng.gen_bool(0.6) {
                    TradeKind::Buy
                } else {
                    TradeKind::Sell
                },
            };
            self.issued.insert(order.rid);
            self.clients[c].placing = Some((order.clone(), 1));
            Op::Place(order)
        };
        self.clients[c].busy = true;
        self.submit(f, c, op);
    }

    fn client_result(&mut self, c: usize, op: Op, result: Result<Response, Error>) {
        self.clients[c].busy = false;
        match op {
            Op::Place(order) => match result {
                Ok(Response::Order(o)) => {
                    self.clients[c].placing = None;
                    self.report.acked += 1;
                    super::check::client_acked(self, &order, &o);
                }
                Err(e) if e.is_retryable() => {
                    let attempts = self.clients[c].placing.as_ref().map_or(0, |p| p.1);
                    if attempts >= 4 && self.now < self.cfg.active_ms {
                        // Gives up for now: the outcome stays unknown to this client.
                        self.clients[c].placing = None;
                    }
                }
                _ => self.clients[c].placing = None,
            },
            Op::Get(n) => {
                self.report.reads += 1;
                super::check::client_read(self, n, &result);
            }
        }
        let pause = self.rng.gen_range(1..15);
        self.at(self.now + pause, Ev::ClientNext(c));
    }

    // ----- rest -----

    fn at_rest(&self) -> bool {
        if self.clients.iter().any(|c| c.busy || c.placing.is_some()) {
            return false;
        }
        let journal = match self.group_tables() {
            None => self.catalog.journal.len() as u64,
            Some(tables) => {
                // Every catalog up with the same number of trades, every standby has compared
                // its table with the log to the end (its confirmed point), and no primary is
                // still catching up (its table may hold trades the log went past another way).
                let standbys_confirmed =
                    self.cats.iter().filter_map(|c| c.node.as_ref()).all(|n| {
                        let st = n.state();
                        match st.role {
                            catalog_node::Role::Standby => st.confirmed == st.last_seq,
                            catalog_node::Role::CatchingUp => false,
                            catalog_node::Role::Primary => true,
                        }
                    });
                if tables.len() != self.cats.len()
                    || !standbys_confirmed
                    || tables
                        .windows(2)
                        .any(|t| t[0].last_seq() != t[1].last_seq())
                {
                    return false;
                }
                tables[0].last_seq()
            }
        };
        let mut files = Vec::new();
        for node in &self.replicas {
            let Some(m) = &node.machine else {
                return false;
            };
            if node.paused || m.durable_len() != journal || !node.disk.pending.is_empty() {
                return false;
            }
            files.push(&node.disk.file);
        }
        let leaders: Vec<&Replica> = self
            .replicas
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .filter(|m| m.role() == crate::replication::Role::Leader)
            .collect();
        let in_step = leaders.len() == 1
            && leaders[0]
                .waited_followers()
                .is_some_and(|w| w.len() as u64 == self.cfg.replicas - 1);
        in_step && files.windows(2).all(|w| w[0] == w[1])
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (i, node) in self.replicas.iter().enumerate() {
            parts.push(match &node.machine {
                None => format!("replica {} down", i + 1),
                Some(m) => format!(
                    "replica {} {} epoch {} durable {} orders ({} bytes){}",
                    i + 1,
                    m.role(),
                    m.term().epoch,
                    m.durable_len(),
                    node.disk.file.len(),
                    m.waited_followers()
                        .map_or(String::new(), |w| format!(" waits for {w:?}"))
                ),
            });
        }
        let busy = self
            .clients
            .iter()
            .filter(|c| c.busy || c.placing.is_some())
            .count();
        match self.group_tables() {
            None => parts.push(format!(
                "catalog holds {} trades",
                self.catalog.journal.len()
            )),
            Some(_) => {
                for (i, c) in self.cats.iter().enumerate() {
                    parts.push(match &c.node {
                        None => format!("catalog {} down", i + 1),
                        Some(n) => format!("catalog {} {:?}", i + 1, n.state()),
                    });
                }
            }
        }
        parts.push(format!("{busy} clients busy"));
        parts.join("; ")
    }
}

fn apply_write(disk: &mut Disk, w: Write, tear: Option<f64>) {
    match w {
        Write::Append { lines, .. } => {
            let mut bytes = Vec::new();
            for l in lines {
                bytes.extend_from_slice(&l);
                bytes.push(b'\n');
            }
            if let Some(f) = tear {
                let keep = (bytes.len() as f64 * f) as usize;
                bytes.truncate(keep);
            }
            disk.file.extend_from_slice(&bytes);
        }
        Write::Truncate { file_len, .. } => disk.file.truncate(file_len as usize),
        Write::SaveTerm { term, .. } => disk.term = term,
    }
}

fn net_name(n: &Net) -> String {
    match n {
        Net::Request(_, r) => r.name().to_string(),
        Net::Reply(_, r) => short(r),
        Net::Catalog(..) => "catalog call".into(),
        Net::CatalogReply(_, r) => short(r),
        Net::CatReq(_, r) => format!("{r:?}"),
        Net::CatReply(_, r) => short(r),
    }
}

fn short<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    let s = match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error: {e}"),
    };
    s.chars().take(160).collect()
}

fn event_name(e: &Event) -> String {
    let s = match e {
        Event::Request(env, r) => format!("{} from {} #{}: {r:?}", r.name(), env.from, env.id),
        Event::Requests(all) => format!("{} requests together", all.len()),
        Event::Reply { from, id, result } => format!("reply from {from} #{id}: {}", short(result)),
        Event::CatalogReply { id, result } => format!("catalog reply #{id}: {}", short(result)),
        Event::Durable(t) => format!("durable up to write {t}"),
        Event::Tick => "tick".into(),
    };
    s.chars().take(220).collect()
}

impl World {
    /// Every replica machine that is up, with its id.
    pub(super) fn machines(&self) -> impl Iterator<Item = (NodeId, &Replica)> {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.machine.as_ref().map(|m| (i as NodeId + 1, m)))
    }

    /// Replica `id`'s durable order file.
    pub(super) fn file(&self, id: NodeId) -> &[u8] {
        &self.replicas[(id - 1) as usize].disk.file
    }

    /// Replica `id`'s machine, if up.
    pub(super) fn machine(&self, id: NodeId) -> Option<&Replica> {
        self.replicas[(id - 1) as usize].machine.as_ref()
    }

    /// Ids of every replica.
    pub(super) fn replica_ids(&self) -> BTreeSet<NodeId> {
        (1..=self.cfg.replicas).collect()
    }
}

// ----- a catalog group (SimConfig::catalogs > 1) -----

impl World {
    /// Every catalog's table while all of a group are up (`Some(vec![])` never: a group has
    /// two or more); `None` for the catalog model.
    pub(super) fn group_tables(&self) -> Option<Vec<&Catalog>> {
        if self.cats.is_empty() {
            return None;
        }
        Some(
            self.cats
                .iter()
                .filter_map(|c| c.node.as_ref().map(|n| n.table()))
                .collect(),
        )
    }

    /// The stocks a catalog starts with: the model's.
    fn seeds(&self) -> Vec<StockSeed> {
        self.catalog
            .initial
            .iter()
            .map(|(name, q)| StockSeed {
                name: name.clone(),
                price: 10.0,
                quantity: *q,
            })
            .collect()
    }

    fn start_catalog(&mut self, c: u64) {
        let mut table = Catalog::new(&self.seeds(), 100_000).expect("valid seeds");
        for entry in self.cats[(c - 1) as usize].journal.clone() {
            if let Err(e) = table.replay(entry) {
                return self.violation(format!("catalog {c} cannot replay its journal: {e}"));
            }
        }
        let cfg = catalog_node::Config {
            id: c,
            replicas: (1..=self.cfg.replicas).collect(),
            follow_every: HEARTBEAT,
            page: 50,
            read_timeout: REQUEST_TIMEOUT,
            serve_unsynced: self.cfg.flaw == Some(Flaw::CatalogServesUnsynced),
            peers: (1..=self.cats.len() as u64).filter(|p| *p != c).collect(),
        };
        let last = table.last_seq();
        let cat = &mut self.cats[(c - 1) as usize];
        cat.node = Some(CatalogNode::new(cfg, table, self.now));
        cat.incarnation += 1;
        cat.asks.clear();
        let inc = cat.incarnation;
        self.note(|| format!("catalog {c} starts with {last} trades"));
        self.at(self.now + 1, Ev::CatTick(c, inc));
    }

    fn crash_catalog(&mut self, c: u64) {
        let cat = &mut self.cats[(c - 1) as usize];
        cat.node = None;
        cat.asks.clear();
        cat.incarnation += 1;
        self.note(|| format!("CRASH catalog {c}"));
    }

    fn deliver_to_catalog(&mut self, from: NodeId, c: u64, net: Net) {
        let me = CATALOG + c;
        let idx = (c - 1) as usize;
        if self.cats[idx].node.is_none() {
            // A crashed process's port refuses connections.
            match net {
                Net::Catalog(id, _) => {
                    let e = Err(Error::Unavailable("connection refused".into()));
                    self.send(me, from, Net::CatalogReply(id, e));
                }
                Net::CatReq(id, _) => {
                    let e = Err(Error::Unavailable("connection refused".into()));
                    self.send(me, from, Net::CatReply(id, e));
                }
                _ => {}
            }
            return;
        }
        let cat = &mut self.cats[idx];
        let env = Envelope { from, id: cat.next };
        let event = match net {
            Net::Catalog(id, CatalogCall::Ping) => {
                return self.send(me, from, Net::CatalogReply(id, Ok(CatalogAnswer::Pong)));
            }
            Net::Catalog(
                id,
                CatalogCall::Trades {
                    log_end,
                    trades,
                    catalog_epoch,
                },
            ) => {
                cat.next += 1;
                cat.asks.insert(env.id, CatAsk::Call { replica: from, id });
                let epoch = trades.first().map_or(0, |t| t.epoch);
                let req = catalog_node::Request::Trades {
                    leader: from,
                    epoch,
                    log_end,
                    trades,
                    catalog_epoch: Some(catalog_epoch),
                };
                catalog_node::Event::Request(env, req)
            }
            Net::Catalog(
                id,
                CatalogCall::TradesSince {
                    after,
                    epoch,
                    limit,
                    log_end,
                    catalog_epoch,
                },
            ) => {
                cat.next += 1;
                cat.asks.insert(env.id, CatAsk::Call { replica: from, id });
                let req = catalog_node::Request::TradesSince {
                    leader: from,
                    epoch,
                    log_end,
                    after,
                    limit,
                    catalog_epoch: Some(catalog_epoch),
                };
                catalog_node::Event::Request(env, req)
            }
            Net::CatReq(id, req) => {
                cat.next += 1;
                cat.asks.insert(env.id, CatAsk::Frontend { fe: from, id });
                catalog_node::Event::Request(env, req)
            }
            Net::Reply(id, result) => catalog_node::Event::Reply {
                from,
                id,
                result: match result {
                    Ok(Response::Orders(page)) => Ok(page),
                    Ok(other) => Err(Error::Io(format!("not a page of orders: {other:?}"))),
                    Err(e) => Err(e),
                },
            },
            Net::CatReply(id, result) => catalog_node::Event::PeerReply {
                from: from - CATALOG,
                id,
                result,
            },
            Net::Request(..) | Net::CatalogReply(..) => return,
        };
        self.step_catalog(c, event);
    }

    fn step_catalog(&mut self, c: u64, event: catalog_node::Event) {
        let me = CATALOG + c;
        let idx = (c - 1) as usize;
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(ev) = queue.pop_front() {
            if self.cfg.trace && !matches!(ev, catalog_node::Event::Tick) {
                let line = format!("{:>6} ms  catalog {c} <- {ev:?}", self.now);
                self.trace.push(line.chars().take(260).collect());
            }
            let Some(node) = self.cats[idx].node.as_mut() else {
                return;
            };
            let effects = node.step(self.now, ev);
            let role = node.state().role;
            for e in effects {
                match e {
                    catalog_node::Effect::Journal { ticket, entry } => {
                        self.cats[idx].journal.push(entry);
                        queue.push_back(catalog_node::Event::Durable(ticket));
                    }
                    catalog_node::Effect::Invalidate(_) => {}
                    catalog_node::Effect::AskPeer { to, id, request } => {
                        self.send(me, CATALOG + to, Net::CatReq(id, request))
                    }
                    catalog_node::Effect::Read { to, id, request } => {
                        self.send(me, to, Net::Request(id, Request::ReadOrders(request)))
                    }
                    catalog_node::Effect::Respond { to, result } => {
                        match self.cats[idx].asks.remove(&to.id) {
                            Some(CatAsk::Call { replica, id }) => {
                                let answer = match result {
                                    Ok(catalog_node::Response::Traded(results)) => {
                                        self.check_group_trades(c, role, &results);
                                        Ok(CatalogAnswer::Traded(results))
                                    }
                                    Ok(catalog_node::Response::Trades {
                                        trades, complete, ..
                                    }) => Ok(CatalogAnswer::Trades { trades, complete }),
                                    Ok(other) => Err(Error::Io(format!("{other:?}"))),
                                    Err(e) => Err(e),
                                };
                                self.note(|| {
                                    format!("catalog {c} answers {replica}: {}", short(&answer))
                                });
                                self.send(me, replica, Net::CatalogReply(id, answer));
                            }
                            Some(CatAsk::Frontend { fe, id }) => {
                                self.send(me, fe, Net::CatReply(id, result))
                            }
                            None => {}
                        }
                    }
                }
            }
        }
    }

    /// A catalog of the group answered trades: only a serving primary trades, and only
    /// requests clients issued.
    fn check_group_trades(
        &mut self,
        c: u64,
        role: catalog_node::Role,
        results: &[Result<crate::wire::catalog::TradeOutcome, Error>],
    ) {
        if role != catalog_node::Role::Primary && results.iter().any(|r| r.is_ok()) {
            self.violation(format!(
                "catalog failover: catalog {c} traded while {role:?}, not a serving primary"
            ));
        }
    }
}
