//! One order replica's protocol as a pure state machine: requests, answers, catalog answers,
//! completed disk writes and clock ticks go in through `step`; what to send, write and answer
//! comes out as `Effect`s. No socket, no task, no clock: the HTTP driver in `web/` and the
//! simulator in `sim` execute the effects.
//!
//! The protocol, in the exchange's words:
//!
//! - **Terms.** The supervisor names a leader with a term `(epoch, leader)`. A replica accepts
//!   a term that is not older than the one it holds (persisting it before it answers), and
//!   refuses older epochs and a second leader in the same epoch (rule 5).
//! - **Numbers come from the catalog.** The leader trades at the catalog under the order's
//!   request id and its epoch; the catalog's trade sequence number minus one is the order
//!   number. So every log that holds order `n` holds the same trade under it; logs can differ
//!   only in which epoch wrote an entry and in how far they reach.
//! - **Takeover.** A replica named leader asks every peer for its state, pulls from the
//!   freshest one what it lacks (matching logs by `(number, epoch)`, dropping a tail only it
//!   held), then asks the catalog for every trade after its last order (which also fences the
//!   old leader at the catalog) and records them in its own epoch. Then it serves.
//! - **Replication.** The leader streams its log to each follower, one batch in flight, each
//!   batch bounded in count and bytes. A follower answers once the batch is durable. An order
//!   is acknowledged once it is durable on the leader and on every follower the leader waits
//!   for; a follower that fails or is slower than `replicate_timeout` stops being waited for
//!   ("lagging", which the heartbeat reports so the supervisor counts it as not live) and is
//!   brought back in step by the same stream, however far behind it is.
//! - **Reads** of an order are answered by a serving leader once the order is acknowledged;
//!   an order it does not hold yet is a retryable answer, never "unknown" (rule 9).
//! - **A catalog group** (`Config::catalog_group`; `docs/catalog-failover.md`): the primary
//!   catalog's journal can die with the leader, so an order is also held by a follower or, while
//!   every follower lags, by a standby catalog before it is acknowledged (`second_copy`); a
//!   takeover needs a majority, and its survey (`Request::Survey`) fences the leader it
//!   replaces; catalog calls carry the catalog epoch they were made in.

use super::msg::*;
use crate::catalog::MAX_TRADE_QUANTITY;
use crate::orderlog::{EntryId, Fit, Order, OrderLog};
use crate::types::{validate_name, Epoch, RequestId};
use crate::wire::catalog::{TradeOutcome, TradeRecord, TradeRequest};
use crate::Error;
use std::collections::{BTreeMap, VecDeque};

/// How a replica behaves; the drivers fill it from the configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica's id.
    pub id: NodeId,
    /// The other replicas' ids.
    pub peers: Vec<NodeId>,
    /// A peer or the catalog slower than this is given up on (the call is treated as failed).
    pub replicate_timeout: Millis,
    /// Pause before a failed follower or takeover step is tried again.
    pub retry: Millis,
    /// Largest batch, in bytes of order lines; keep it below the receiver's body limit.
    pub max_batch_bytes: usize,
    /// Largest batch, in orders.
    pub max_batch_orders: usize,
    /// How long an order may wait behind a missing earlier one before the leader fetches the
    /// missing trades from the catalog.
    pub gap_wait: Millis,
    /// How long a returning replica waits to be brought in step by a leader before it reports
    /// ready anyway (the leader still reports it lagging until it is in step).
    pub recovery_wait: Millis,
    /// The catalogs form a group (two or more): the primary's journal is then no copy that
    /// outlives a crash, so an order waits for a follower or a standby catalog to hold it too.
    pub catalog_group: bool,
    /// Simulator self-test only: a deliberate protocol flaw; `None` in every real process.
    pub flaw: Option<Flaw>,
}

impl Config {
    /// Defaults matching `config/default.toml`, for replica `id` among `peers`.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Config {
        Config {
            id,
            peers,
            replicate_timeout: 1000,
            retry: 200,
            max_batch_bytes: 48 * 1024,
            max_batch_orders: 10_000,
            gap_wait: 250,
            recovery_wait: 1000,
            catalog_group: false,
            flaw: None,
        }
    }
}

/// Deliberately broken variants of the protocol, so the simulator can show that it catches
/// each one. Never set outside the simulator's tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// The leader answers an order once it is durable locally, without waiting for followers.
    AckBeforeFollowers,
    /// Terms and batches from older epochs are accepted.
    SkipEpochCheck,
    /// The leader forgets request ids: a retried order is traded again under a new id.
    ForgetRequestIds,
    /// Batches are bounded by count only, not bytes.
    UnboundedBatches,
    /// A catalog made primary serves at once, without catching up with the order log first
    /// (catalog failover; the simulator's catalog group).
    CatalogServesUnsynced,
    /// With a catalog group, a leader whose followers all lag answers without a standby
    /// catalog's copy (the primary catalog's journal as the only other copy).
    AckWithoutCatalogCopy,
}

/// A durable write to execute, in order. Each has a ticket; `Event::Durable(t)` says every
/// write up to ticket `t` is on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Append these order lines (one JSON object a line, no trailing newline on the last; the
    /// writer adds one per order).
    Append {
        /// The ticket.
        ticket: u64,
        /// Serialized orders, one per element.
        lines: Vec<Vec<u8>>,
    },
    /// Cut the order file to `file_len` bytes (orders from `from` on are dropped).
    Truncate {
        /// The ticket.
        ticket: u64,
        /// First order number dropped.
        from: u64,
        /// The file's length afterwards.
        file_len: u64,
    },
    /// Replace the term file.
    SaveTerm {
        /// The ticket.
        ticket: u64,
        /// The term to keep.
        term: Term,
    },
}

impl Write {
    /// This write's ticket.
    pub fn ticket(&self) -> u64 {
        match self {
            Write::Append { ticket, .. }
            | Write::Truncate { ticket, .. }
            | Write::SaveTerm { ticket, .. } => *ticket,
        }
    }
}

/// What happens to a replica.
#[derive(Clone, Debug)]
pub enum Event {
    /// Time passed.
    Tick,
    /// Someone asks something.
    Request(Envelope, Request),
    /// Several requests that arrived together (a front end's batch): each is taken as if it
    /// came alone, but the trades they queue leave for the catalog together, after the last.
    Requests(Vec<(Envelope, Request)>),
    /// A peer answered request `id` (or the call failed: unreachable, timed out, refused).
    Reply {
        /// The peer.
        from: NodeId,
        /// Our number for the request.
        id: u64,
        /// Its answer.
        result: Result<Response, Error>,
    },
    /// The catalog answered call `id`.
    CatalogReply {
        /// Our number for the call.
        id: u64,
        /// Its answer.
        result: Result<CatalogAnswer, Error>,
    },
    /// Every write up to this ticket is durable.
    Durable(u64),
}

/// What a replica wants done.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Send a request to a peer; its answer comes back as `Event::Reply` with this id.
    Send {
        /// The peer.
        to: NodeId,
        /// Our number for it.
        id: u64,
        /// The request.
        request: Request,
    },
    /// Answer a request.
    Respond {
        /// Who asked.
        to: Envelope,
        /// The answer.
        result: Result<Response, Error>,
    },
    /// Call the catalog; its answer comes back as `Event::CatalogReply` with this id.
    Catalog {
        /// The primary catalog of the replica's catalog term (`None`: the one catalog).
        to: Option<NodeId>,
        /// Our number for it.
        id: u64,
        /// The call.
        call: CatalogCall,
    },
    /// Write to disk.
    Write(Write),
}

/// What a replica answered since it started, for its driver's metrics (the machine itself
/// never touches them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Orders acknowledged to a front end while leading, each counted once (a retried request
    /// for an order already acknowledged here is a replay, not a second trade).
    pub acknowledged: u64,
    /// Orders whose request id was already in the log or at the catalog: answered with the
    /// first order's number, not traded again.
    pub replays: u64,
}

/// Where a leader's stream to one follower stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Waited for by acknowledgements.
    InStep,
    /// Not waited for (failed, too slow, or catching up); the stream brings it back.
    Lagging,
    /// Looking for the last entry it shares with the leader after a mismatch.
    Searching,
}

impl StreamState {
    /// The word used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::InStep => "in_step",
            StreamState::Lagging => "lagging",
            StreamState::Searching => "searching",
        }
    }

    /// Every state, for metrics that show one of them.
    pub const ALL: [StreamState; 3] = [
        StreamState::InStep,
        StreamState::Lagging,
        StreamState::Searching,
    ];
}

/// A leader's view of one follower, for its driver's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerView {
    /// The follower.
    pub id: NodeId,
    /// Orders the leader holds durably that the follower is not known to hold.
    pub lag: u64,
    /// Where its stream stands.
    pub state: StreamState,
}

/// What is done with an order a catalog trade gave us.
struct Trading {
    /// The catalog call carrying it; `None` while it waits in `queued`.
    id: Option<u64>,
    sent_at: Millis,
    waiting: Vec<Envelope>,
    /// The trade, to send again at a new primary catalog.
    req: TradeRequest,
}

/// Trade calls to the catalog in flight at once: under load, the trades that arrive while
/// they are out wait and leave together in the next call, so a busy leader makes a few large
/// calls instead of one per trade; with no load a trade leaves at once, alone.
const MAX_TRADE_CALLS: usize = 2;

/// The leader's view of one follower.
#[derive(Clone, Debug)]
struct Progress {
    /// Waited for by acknowledgements (in step, or still being probed at leadership start).
    waited: bool,
    /// Entries `0..matched` are known durable on the follower and equal to ours.
    matched: u64,
    /// Next entry to send.
    next: u64,
    /// The batch in flight.
    inflight: Option<Inflight>,
    /// Lagging: try again at this time.
    retry_at: Millis,
    /// Looking for the last common entry after a mismatch: (known match count, known
    /// mismatch number).
    search: Option<(u64, u64)>,
    /// Waited for at leadership start until this time; then lagging unless in step.
    probe_deadline: Option<Millis>,
    /// When the last batch went out (an idle follower gets an empty one every `retry`, the
    /// evidence supervisors use that this leader is alive).
    last_sent: Millis,
}

/// A batch in flight to a follower.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    id: u64,
    sent_at: Millis,
    /// Entries before the batch.
    prev_count: u64,
    /// Entries up to the batch's end.
    upto: u64,
    /// An empty batch sent to find the last common entry.
    probe: bool,
}

struct Leadership {
    epoch: Epoch,
    followers: BTreeMap<NodeId, Progress>,
    /// Answers waiting for their order to be acknowledged, by order number.
    waiting: BTreeMap<u64, Vec<Envelope>>,
    /// Orders at the catalog, by request id.
    trading: BTreeMap<RequestId, Trading>,
    /// Catalog call id -> the request ids it carries, when it left, and the log end it named.
    calls: BTreeMap<u64, (Vec<RequestId>, Millis, u64)>,
    /// Trades waiting for a call to leave in (see `MAX_TRADE_CALLS`), in arrival order.
    queued: Vec<TradeRequest>,
    /// Traded orders beyond our last (an earlier trade's answer has not come back yet).
    held: BTreeMap<u64, Order>,
    /// When the first order started waiting behind a gap.
    gap_since: Option<Millis>,
    /// A gap fill at the catalog: (call id, sent at).
    filling: Option<(u64, Millis)>,
    /// Reads of orders not yet durable here: (number, asker, since). One beyond our log is
    /// answered "unknown" only once the catalog confirms it holds no such trade.
    reads: Vec<(u64, Envelope, Millis)>,
    /// Catalog group only: how much of this epoch's log each catalog reported holding
    /// durably with its reads (`CatalogCopy`).
    copies: BTreeMap<NodeId, u64>,
    /// Reads of standby catalogs that hold the whole log, kept until a new order is durable
    /// here (or `retry` passes) while the answers wait for their copies.
    parked: Vec<(Envelope, ReadOrders, Millis)>,
    /// Catalog group: orders below this are held by the primary of the current catalog term
    /// (it answered a call naming this log end, having caught up with the log, or sequenced
    /// them). 0 after a new catalog term until the new primary answers.
    primary_upto: u64,
}

enum TakeoverStep {
    /// Asked every peer for its state.
    Survey {
        asked: BTreeMap<u64, NodeId>,
        answers: BTreeMap<NodeId, Option<EntryId>>,
        deadline: Millis,
    },
    /// Pulling from peer `from`.
    Pull {
        from: NodeId,
        /// Known: our first `lo` entries are in their log; our entry `hi - 1` is not.
        lo: u64,
        hi: Option<u64>,
        /// The fetch in flight: (id, sent at, (after how many of our entries, a probe)).
        inflight: Option<(u64, Millis, (u64, bool))>,
    },
    /// Asking the catalog for trades after our last order.
    Reconcile { inflight: Option<(u64, Millis)> },
    /// Waiting for what we appended to be durable.
    Settle { ticket: u64 },
}

struct Takeover {
    epoch: Epoch,
    step: TakeoverStep,
    retry_at: Millis,
    pulled: u64,
    dropped: u64,
    recorded: u64,
}

enum Phase {
    Recovering {
        asked: BTreeMap<u64, NodeId>,
        answered: usize,
        leader_seen: bool,
        deadline: Millis,
    },
    Follower,
    TakingOver(Takeover),
    Leader(Box<Leadership>),
}

/// One replica; see the module docs.
pub struct Replica {
    cfg: Config,
    log: OrderLog,
    term: Term,
    phase: Phase,
    now: Millis,
    next_id: u64,
    next_ticket: u64,
    durable_ticket: u64,
    /// Writes not yet durable: (ticket, order count once it is durable).
    writes: VecDeque<(u64, Option<u64>)>,
    durable_len: u64,
    /// Answers held until a write is durable.
    deferred: VecDeque<(u64, Envelope, Result<Response, Error>)>,
    /// When the leader of our term was last heard from (a batch, even empty, or an answer to
    /// our probe); `None` after a probe of it failed.
    leader_heard: Option<Millis>,
    /// A follower's probe of its leader in flight: (request id, sent at); the next is due at
    /// `leader_probe_due`. A leader that died refuses the probe at once, so its followers stop
    /// hearing it within a heartbeat, and the supervisors fail over without waiting.
    leader_probe: Option<(u64, Millis)>,
    leader_probe_due: Millis,
    /// When the catalog last answered anything.
    catalog_heard: Option<Millis>,
    /// The newest epoch the catalog fenced us with.
    catalog_epoch: Option<Epoch>,
    /// Which catalog is primary, as the supervisor announced it (default: the one catalog).
    catalog_term: CatalogTerm,
    /// The catalog ping in flight: (call id, sent at); the next one is due at `ping_due`.
    ping: Option<(u64, Millis)>,
    ping_due: Millis,
    out: Vec<Effect>,
    /// Taking `Event::Requests`: trades queue, and leave once the last request is in.
    gathering: bool,
    counters: Counters,
    /// Orders below this were acknowledged here (as leader) already.
    acked_upto: u64,
}

impl Replica {
    /// A replica starting from what its files held (`log` durable, `term` durable), at `now`.
    /// It recovers first: asks its peers whether one leads, and reports ready once that leader
    /// brought it in step, or when no one leads, or after `recovery_wait`.
    pub fn new(cfg: Config, log: OrderLog, term: Term, now: Millis) -> (Replica, Vec<Effect>) {
        let durable_len = log.next_number();
        let mut r = Replica {
            phase: Phase::Follower,
            log,
            term,
            now,
            next_id: 1,
            next_ticket: 1,
            durable_ticket: 0,
            writes: VecDeque::new(),
            durable_len,
            deferred: VecDeque::new(),
            leader_heard: None,
            leader_probe: None,
            leader_probe_due: now,
            catalog_heard: None,
            catalog_epoch: None,
            catalog_term: CatalogTerm::default(),
            ping: None,
            ping_due: now,
            out: Vec::new(),
            gathering: false,
            counters: Counters::default(),
            acked_upto: 0,
            cfg,
        };
        let mut asked = BTreeMap::new();
        for p in r.cfg.peers.clone() {
            let id = r.send(p, Request::State);
            asked.insert(id, p);
        }
        r.phase = Phase::Recovering {
            asked,
            answered: 0,
            leader_seen: false,
            deadline: now + r.cfg.recovery_wait,
        };
        if r.cfg.peers.is_empty() {
            r.phase = Phase::Follower;
        }
        let out = std::mem::take(&mut r.out);
        (r, out)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The accepted term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.phase {
            Phase::Recovering { .. } => Role::Recovering,
            Phase::Follower => Role::Follower,
            Phase::TakingOver(_) => Role::TakingOver,
            Phase::Leader(_) => Role::Leader,
        }
    }

    /// The log (everything held in memory, durable or not).
    pub fn log(&self) -> &OrderLog {
        &self.log
    }

    /// How many orders are durable (orders `0..n`).
    pub fn durable_len(&self) -> u64 {
        self.durable_len
    }

    /// The heartbeat answer.
    pub fn state(&self) -> ReplicaState {
        let lagging = match &self.phase {
            Phase::Leader(l) => l
                .followers
                .iter()
                .filter(|(_, p)| !p.waited)
                .map(|(id, _)| *id)
                .collect(),
            _ => Vec::new(),
        };
        ReplicaState {
            id: self.cfg.id,
            role: self.role(),
            ready: !matches!(self.phase, Phase::Recovering { .. }),
            last: self
                .durable_len
                .checked_sub(1)
                .and_then(|n| self.log.id_at(n)),
            term: self.term,
            lagging,
            leader_silence_ms: match self.phase {
                Phase::Leader(_) | Phase::TakingOver(_) => None,
                _ => self.leader_heard.map(|t| self.now.saturating_sub(t)),
            },
            catalog_silence_ms: self.catalog_heard.map(|t| self.now.saturating_sub(t)),
            catalog_epoch: self.catalog_epoch,
            catalog_term: self.catalog_term,
        }
    }

    /// The leader's acknowledgement point: orders below it are durable here and on every
    /// follower waited for. `None` unless serving as leader.
    pub fn acknowledged(&self) -> Option<u64> {
        match &self.phase {
            Phase::Leader(l) => Some(self.ack_point(l)),
            _ => None,
        }
    }

    /// Followers the leader currently waits for (None unless leading).
    pub fn waited_followers(&self) -> Option<Vec<NodeId>> {
        match &self.phase {
            Phase::Leader(l) => Some(
                l.followers
                    .iter()
                    .filter(|(_, p)| p.waited)
                    .map(|(id, _)| *id)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// What this replica answered since it started.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The leader's view of each follower (empty unless leading).
    pub fn followers(&self) -> Vec<FollowerView> {
        let Phase::Leader(l) = &self.phase else {
            return Vec::new();
        };
        l.followers
            .iter()
            .map(|(&id, p)| FollowerView {
                id,
                lag: self.durable_len.saturating_sub(p.matched),
                state: if p.search.is_some() {
                    StreamState::Searching
                } else if p.waited {
                    StreamState::InStep
                } else {
                    StreamState::Lagging
                },
            })
            .collect()
    }

    /// Time passes.
    pub fn tick(&mut self, now: Millis) -> Vec<Effect> {
        self.step(now, Event::Tick)
    }

    /// Feeds one event at time `now`; returns what to do.
    pub fn step(&mut self, now: Millis, event: Event) -> Vec<Effect> {
        self.now = self.now.max(now);
        match event {
            Event::Tick => {}
            Event::Request(env, req) => self.on_request(env, req),
            Event::Requests(requests) => {
                self.gathering = true;
                for (env, req) in requests {
                    self.on_request(env, req);
                }
                self.gathering = false;
                self.send_trades();
            }
            Event::Reply { from, id, result } => self.on_reply(from, id, result),
            Event::CatalogReply { id, result } => self.on_catalog(id, result),
            Event::Durable(t) => self.on_durable(t),
        }
        self.on_time();
        std::mem::take(&mut self.out)
    }

    // ----- plumbing -----

    fn send(&mut self, to: NodeId, request: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push(Effect::Send { to, id, request });
        id
    }

    fn call_catalog(&mut self, call: CatalogCall) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push(Effect::Catalog {
            to: self.catalog_term.primary,
            id,
            call,
        });
        id
    }

    fn respond(&mut self, to: Envelope, result: Result<Response, Error>) {
        self.out.push(Effect::Respond { to, result });
    }

    /// Answers once every write issued so far is durable.
    fn respond_when_durable(&mut self, to: Envelope, result: Result<Response, Error>) {
        let last = self.next_ticket - 1;
        if last <= self.durable_ticket {
            self.respond(to, result);
        } else {
            self.deferred.push_back((last, to, result));
        }
    }

    fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    fn save_term(&mut self, term: Term) {
        self.term = term;
        let ticket = self.ticket();
        self.writes.push_back((ticket, None));
        self.out
            .push(Effect::Write(Write::SaveTerm { ticket, term }));
    }

    /// Appends orders (consecutive from our next number) to the log and the disk.
    fn append(&mut self, orders: Vec<Order>) {
        if orders.is_empty() {
            return;
        }
        let lines = orders.into_iter().map(|o| self.log.append(o)).collect();
        let ticket = self.ticket();
        self.writes
            .push_back((ticket, Some(self.log.next_number())));
        self.out
            .push(Effect::Write(Write::Append { ticket, lines }));
    }

    /// Drops orders from `from` on.
    fn truncate(&mut self, from: u64) -> u64 {
        let dropped = self.log.next_number().saturating_sub(from);
        if dropped == 0 {
            return 0;
        }
        let file_len = self.log.truncate(from);
        self.durable_len = self.durable_len.min(from);
        for w in self.writes.iter_mut() {
            if let Some(n) = &mut w.1 {
                *n = (*n).min(from);
            }
        }
        let ticket = self.ticket();
        self.writes.push_back((ticket, Some(from)));
        self.out.push(Effect::Write(Write::Truncate {
            ticket,
            from,
            file_len,
        }));
        dropped
    }

    fn on_durable(&mut self, t: u64) {
        if t <= self.durable_ticket {
            return;
        }
        self.durable_ticket = t;
        while self.writes.front().is_some_and(|w| w.0 <= t) {
            let (_, len) = self.writes.pop_front().expect("front");
            if let Some(len) = len {
                self.durable_len = len.min(self.log.next_number());
            }
        }
        while self.deferred.front().is_some_and(|d| d.0 <= t) {
            let (_, to, result) = self.deferred.pop_front().expect("front");
            // A survey's answer (the only state answer that waits) is the state now.
            let result = match result {
                Ok(Response::State(_)) => Ok(Response::State(self.state())),
                other => other,
            };
            self.respond(to, result);
        }
        if let Phase::TakingOver(t_over) = &self.phase {
            if let TakeoverStep::Settle { ticket } = t_over.step {
                if ticket <= t {
                    self.finish_takeover();
                }
            }
        }
        self.advance_acks();
        self.answer_reads(false);
    }

    // ----- requests -----

    fn on_request(&mut self, env: Envelope, req: Request) {
        match req {
            Request::State => {
                let s = self.state();
                self.respond(env, Ok(Response::State(s)));
            }
            Request::Term(term) => self.on_term(env, term),
            Request::Place(order) => self.on_place(env, order),
            Request::Get(n) => self.on_get(env, n),
            Request::Append(a) => self.on_append(env, a),
            Request::Fetch(f) => self.on_fetch(env, f),
            Request::ReadOrders(r) => self.on_read_orders(env, r),
            Request::CatalogTerm(t) => self.on_catalog_term(env, t),
            Request::Survey(t) => self.on_survey(env, t),
        }
    }

    /// A peer taking over asks for our state under its term (see `Request::Survey`).
    fn on_survey(&mut self, env: Envelope, term: Term) {
        if term.epoch == 0
            || term.epoch > MAX_EPOCH
            || !self.valid_member(term.leader)
            || term.leader == Some(self.cfg.id)
        {
            let msg = format!("a survey needs a peer's term, got {term:?}");
            return self.respond(env, Err(Error::BadRequest(msg)));
        }
        if let Err(e) = self.check_term(term, "a takeover's survey") {
            return self.respond(env, Err(e));
        }
        // The state is taken when the answer leaves (`on_durable`): everything written before
        // the term, the old leader's last batch included, is durable and counted by then.
        let placeholder = Ok(Response::State(self.state()));
        self.respond_when_durable(env, placeholder);
    }

    /// Checks a term from a request; adopts it when newer. Err: fenced.
    fn check_term(&mut self, term: Term, why: &str) -> Result<(), Error> {
        let skip = self.cfg.flaw == Some(Flaw::SkipEpochCheck);
        let conflict =
            term.epoch == self.term.epoch && self.term.epoch > 0 && term.leader != self.term.leader;
        if !skip && (term.epoch < self.term.epoch || conflict) {
            return Err(Error::Fenced {
                got: term.epoch,
                known: self.term.epoch,
            });
        }
        if term == self.term {
            return Ok(());
        }
        if self.role().is_leading() && term.leader != Some(self.cfg.id) {
            self.step_down(&format!(
                "{why} names replica {:?} leader of epoch {}",
                term.leader, term.epoch
            ));
        }
        log::info!(
            "replica {} accepts epoch {} led by replica {:?}",
            self.cfg.id,
            term.epoch,
            term.leader
        );
        self.save_term(term);
        Ok(())
    }

    fn valid_member(&self, id: Option<NodeId>) -> bool {
        id.is_some_and(|l| l == self.cfg.id || self.cfg.peers.contains(&l))
    }

    fn on_term(&mut self, env: Envelope, term: Term) {
        if term.epoch == 0 || term.epoch > MAX_EPOCH || !self.valid_member(term.leader) {
            let msg = format!(
                "a term needs an epoch from 1 to {MAX_EPOCH} and a known leader, got {term:?}"
            );
            return self.respond(env, Err(Error::BadRequest(msg)));
        }
        if let Err(e) = self.check_term(term, "the supervisor") {
            return self.respond(env, Err(e));
        }
        let leading_epoch = match &self.phase {
            Phase::Leader(l) => Some(l.epoch),
            Phase::TakingOver(t) => Some(t.epoch),
            _ => None,
        };
        if term.leader == Some(self.cfg.id) && leading_epoch != Some(term.epoch) {
            if leading_epoch.is_some() {
                self.step_down(&format!("named leader again in epoch {}", term.epoch));
            }
            self.start_takeover(term.epoch);
        }
        self.respond_when_durable(env, Ok(Response::TermAccepted));
    }

    fn on_append(&mut self, env: Envelope, a: Append) {
        if a.term.leader == Some(self.cfg.id)
            || !self.valid_member(a.term.leader)
            || a.term.epoch == 0
            || a.term.epoch > MAX_EPOCH
        {
            let msg = format!("a batch from an unknown leader or epoch: {:?}", a.term);
            return self.respond(env, Err(Error::BadRequest(msg)));
        }
        if let Err(e) = validate_batch(a.prev, &a.orders, a.term.epoch) {
            return self.respond(env, Err(e));
        }
        if let Err(e) = self.check_term(a.term, "a batch") {
            return self.respond(env, Err(e));
        }
        self.leader_heard = Some(self.now);
        let (truncate_from, skip) = match self.log.fit(a.prev, &a.orders) {
            Fit::Mismatch => {
                let last = self.log.last();
                return self.respond(
                    env,
                    Ok(Response::Appended(Appended {
                        matched: false,
                        last,
                    })),
                );
            }
            Fit::Apply {
                truncate_from,
                skip,
            } => (truncate_from, skip),
        };
        if let Some(from) = truncate_from {
            let dropped = self.truncate(from);
            log::warn!(
                "replica {} is dropping orders {from}..{} that only it held: leader {:?} of epoch {} wrote those numbers",
                self.cfg.id,
                from + dropped - 1,
                a.term.leader,
                a.term.epoch
            );
        }
        self.append(a.orders.into_iter().skip(skip).collect());
        let last = self.log.last();
        if let Phase::Recovering { leader_seen, .. } = &mut self.phase {
            *leader_seen = true;
            if a.leader_last.is_some() && last == a.leader_last {
                log::info!(
                    "replica {} is in step with leader {:?} at order {:?}: ready",
                    self.cfg.id,
                    a.term.leader,
                    last.map(|e| e.number)
                );
                self.phase = Phase::Follower;
            }
        }
        self.respond_when_durable(
            env,
            Ok(Response::Appended(Appended {
                matched: true,
                last,
            })),
        );
    }

    fn on_fetch(&mut self, env: Envelope, f: Fetch) {
        let start = match f.after {
            None => Some(0),
            Some(id) if id.number < self.durable_len && self.log.id_at(id.number) == Some(id) => {
                Some(id.number + 1)
            }
            Some(_) => None,
        };
        let orders = start.map(|s| self.batch(s, self.durable_len, f.limit, f.max_bytes));
        let last = self
            .durable_len
            .checked_sub(1)
            .and_then(|n| self.log.id_at(n));
        self.respond(env, Ok(Response::Fetched(Fetched { orders, last })));
    }

    /// The catalog term the supervisor announces. A new one means a new primary catalog: every
    /// call to the old one is abandoned (its answers are dropped when they come), and every
    /// trade it was asked for or answered but not yet appended goes to the new primary under
    /// the same request id, so a client sees latency, not an error, and no order is recorded
    /// from a catalog that is no longer primary.
    fn on_catalog_term(&mut self, env: Envelope, t: CatalogTerm) {
        let known = self.catalog_term;
        let second_primary = t.epoch == known.epoch && t.primary != known.primary && t.epoch > 0;
        if t.epoch > MAX_EPOCH || t.epoch < known.epoch || second_primary {
            return self.respond(
                env,
                Err(Error::Fenced {
                    got: t.epoch,
                    known: known.epoch,
                }),
            );
        }
        if t != known {
            log::info!(
                "replica {}: catalog epoch {}, primary catalog {:?}",
                self.cfg.id,
                t.epoch,
                t.primary
            );
            self.catalog_term = t;
            self.abandon_catalog_calls();
        }
        self.respond(env, Ok(Response::TermAccepted));
        self.send_trades();
    }

    /// Drops every catalog call in flight; trades go back to the queue (see `on_catalog_term`).
    fn abandon_catalog_calls(&mut self) {
        self.ping = None;
        match &mut self.phase {
            Phase::TakingOver(t) => {
                if let TakeoverStep::Reconcile { inflight } = &mut t.step {
                    *inflight = None;
                }
            }
            Phase::Leader(l) => {
                l.calls.clear();
                l.filling = None;
                l.primary_upto = 0;
                let mut again: Vec<TradeRequest> = Vec::new();
                for t in l.trading.values_mut() {
                    if t.id.take().is_some() {
                        again.push(t.req.clone());
                    }
                }
                // Answers from the old primary not appended yet: traded again, same request id.
                for (n, o) in std::mem::take(&mut l.held) {
                    let req = TradeRequest {
                        rid: o.rid,
                        name: o.name,
                        kind: o.kind,
                        quantity: o.quantity,
                        epoch: l.epoch,
                    };
                    let waiting = l.waiting.remove(&n).unwrap_or_default();
                    again.push(req.clone());
                    l.trading.insert(
                        o.rid,
                        Trading {
                            id: None,
                            sent_at: self.now,
                            waiting,
                            req,
                        },
                    );
                }
                l.gap_since = None;
                again.append(&mut l.queued);
                l.queued = again;
            }
            Phase::Recovering { .. } | Phase::Follower => {}
        }
    }

    /// The catalog term this replica holds.
    pub fn catalog_term(&self) -> CatalogTerm {
        self.catalog_term
    }

    /// A catalog reads the log (any role answers; only a serving leader says `leading`, and
    /// only it knows what is acknowledged): durable orders from `from` on.
    fn on_read_orders(&mut self, env: Envelope, r: ReadOrders) {
        let durable = self.durable_len;
        let wanted = self.copies_wanted();
        if let (Some(c), Phase::Leader(l)) = (r.copy, &mut self.phase) {
            if c.epoch == l.epoch {
                let upto = c.upto.min(durable);
                let held = l.copies.entry(c.catalog).or_default();
                *held = (*held).max(upto);
                if wanted && c.upto >= durable {
                    // It holds the whole log: answer when there is more (see `on_time`).
                    l.parked.push((env, r, self.now));
                    self.advance_acks();
                    return;
                }
            }
        }
        self.advance_acks();
        self.answer_read(env, r);
    }

    /// Catalog group: every follower lags, so answers wait for a standby catalog's copy.
    fn copies_wanted(&self) -> bool {
        match &self.phase {
            Phase::Leader(l) => {
                self.cfg.catalog_group
                    && self.cfg.flaw != Some(Flaw::AckWithoutCatalogCopy)
                    && l.followers.values().all(|p| !p.waited)
            }
            _ => false,
        }
    }

    /// Answers parked standby reads once a new order is durable, after `retry`, or when
    /// copies are no longer wanted.
    fn release_parked_reads(&mut self) {
        let (now, durable, wait) = (self.now, self.durable_len, self.cfg.retry);
        let wanted = self.copies_wanted();
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        if l.parked.is_empty() {
            return;
        }
        let (ready, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut l.parked)
                .into_iter()
                .partition(|(_, r, at)| {
                    !wanted || now >= at + wait || r.copy.is_none_or(|c| durable > c.upto)
                });
        l.parked = kept;
        for (env, r, _) in ready {
            self.answer_read(env, r);
        }
    }

    fn answer_read(&mut self, env: Envelope, r: ReadOrders) {
        let from = r.from.min(self.durable_len);
        let limit = r.limit.clamp(1, self.cfg.max_batch_orders);
        let orders = self.batch(from, self.durable_len, limit, self.cfg.max_batch_bytes);
        let page = OrdersPage {
            orders,
            log_end: self.durable_len,
            acknowledged: self.acknowledged().unwrap_or(0),
            // Taking over counts: such a leader asks the catalog primary to reconcile, and the
            // primary reads its log before it answers (acknowledged 0: nothing is promised yet).
            leading: matches!(self.phase, Phase::Leader(_) | Phase::TakingOver(_)),
            epoch: self.term.epoch,
            copy_wanted: self.copies_wanted(),
        };
        self.respond(env, Ok(Response::Orders(page)));
    }

    /// Orders `from..end`, at most `limit` of them and `max_bytes` of lines (at least one).
    fn batch(&self, from: u64, end: u64, limit: usize, max_bytes: usize) -> Vec<Order> {
        let mut bytes = 0;
        let mut out = Vec::new();
        for n in from..end {
            if out.len() >= limit {
                break;
            }
            let o = self.log.get(n).expect("held");
            bytes += order_bytes(&o);
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(o);
        }
        out
    }

    fn on_get(&mut self, env: Envelope, n: u64) {
        let now = self.now;
        let durable = self.durable_len;
        // Every order a replica holds durably is the catalog's trade under that number, which
        // any later leader records under the same number: it can be shown (rule 8), by any
        // replica.
        if n < durable {
            let order = self.log.get(n).expect("held");
            return self.respond(env, Ok(Response::Order(order)));
        }
        let Phase::Leader(l) = &mut self.phase else {
            let msg = format!(
                "replica {} is {} and does not hold order {n}; ask the leader",
                self.cfg.id,
                self.role()
            );
            return self.respond(env, Err(Error::NotLeader(msg)));
        };
        // Not here yet, or beyond our log: wait for it, and never say "unknown" before the
        // catalog confirms there is no such trade (a deposed leader that does not know it yet
        // is fenced by that call instead, rule 9).
        l.reads.push((n, env, now));
        if n >= self.log.next_number() && l.filling.is_none() {
            self.fill_from_catalog();
        }
    }

    /// Asks the catalog for every trade after our log (a gap, or a read beyond it).
    fn fill_from_catalog(&mut self) {
        let now = self.now;
        let Phase::Leader(l) = &self.phase else {
            return;
        };
        let epoch = l.epoch;
        let id = self.call_catalog(CatalogCall::TradesSince {
            catalog_epoch: self.catalog_term.epoch,
            after: self.log.next_number(),
            epoch,
            limit: self.cfg.max_batch_orders,
            log_end: self.log.next_number(),
        });
        if let Phase::Leader(l) = &mut self.phase {
            l.filling = Some((id, now));
            if l.gap_since.is_some() {
                l.gap_since = Some(now);
            }
        }
    }

    /// Answers the reads that can be answered: durable ones, and (when `confirmed`: the
    /// catalog holds nothing beyond our log) those beyond our log.
    fn answer_reads(&mut self, confirmed: bool) {
        let durable = self.durable_len;
        let len = self.log.next_number();
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        if l.reads.is_empty() {
            return;
        }
        let mut answers = Vec::new();
        l.reads.retain(|&(n, env, _)| {
            if n < durable {
                answers.push((env, Ok(n)));
                false
            } else if n >= len && confirmed {
                answers.push((env, Err(Error::UnknownOrder(n))));
                false
            } else {
                true
            }
        });
        let refill = l.reads.iter().any(|r| r.0 >= len) && l.filling.is_none();
        for (env, r) in answers {
            let result = r.map(|n| Response::Order(self.log.get(n).expect("durable")));
            self.respond(env, result);
        }
        if refill {
            self.fill_from_catalog();
        }
    }

    fn on_place(&mut self, env: Envelope, o: PlaceOrder) {
        let Phase::Leader(l) = &mut self.phase else {
            let msg = format!(
                "replica {} is {}, not serving as leader",
                self.cfg.id,
                self.role()
            );
            return self.respond(env, Err(Error::NotLeader(msg)));
        };
        if let Err(e) = validate_name(&o.name) {
            return self.respond(env, Err(e));
        }
        if o.quantity == 0 || o.quantity > MAX_TRADE_QUANTITY {
            let msg = format!("quantity must be between 1 and {MAX_TRADE_QUANTITY}");
            return self.respond(env, Err(Error::BadRequest(msg)));
        }
        let forget = self.cfg.flaw == Some(Flaw::ForgetRequestIds);
        if !forget {
            // A retry (failover or Idempotency-Key): the same number, no second trade.
            let known = self
                .log
                .find(o.rid)
                .or_else(|| l.held.values().find(|h| h.rid == o.rid).map(|h| h.number));
            if let Some(n) = known {
                self.counters.replays += 1;
                l.waiting.entry(n).or_default().push(env);
                return self.advance_acks();
            }
            if let Some(t) = l.trading.get_mut(&o.rid) {
                self.counters.replays += 1;
                t.waiting.push(env);
                return;
            }
        }
        let rid = if forget {
            // The flaw: a fresh id per attempt, so a retry trades again.
            RequestId(o.rid.0 ^ (u128::from(self.next_id) << 64))
        } else {
            o.rid
        };
        let epoch = l.epoch;
        let req = TradeRequest {
            rid,
            name: o.name,
            kind: o.kind,
            quantity: o.quantity,
            epoch,
        };
        l.queued.push(req.clone());
        l.trading.insert(
            rid,
            Trading {
                id: None,
                sent_at: self.now,
                waiting: vec![env],
                req,
            },
        );
        self.send_trades();
    }

    /// Sends the queued trades to the catalog, at most `MAX_TRADE_BATCH` a call, while fewer
    /// than `MAX_TRADE_CALLS` calls are out.
    fn send_trades(&mut self) {
        if self.gathering {
            return;
        }
        loop {
            let Phase::Leader(l) = &mut self.phase else {
                return;
            };
            if l.queued.is_empty() || l.calls.len() >= MAX_TRADE_CALLS {
                return;
            }
            let take = l.queued.len().min(MAX_TRADE_BATCH);
            let batch: Vec<TradeRequest> = l.queued.drain(..take).collect();
            let rids: Vec<RequestId> = batch.iter().map(|t| t.rid).collect();
            let log_end = self.log.next_number();
            let id = self.call_catalog(CatalogCall::Trades {
                catalog_epoch: self.catalog_term.epoch,
                log_end,
                trades: batch,
            });
            let Phase::Leader(l) = &mut self.phase else {
                unreachable!("still leading")
            };
            for rid in &rids {
                if let Some(t) = l.trading.get_mut(rid) {
                    t.id = Some(id);
                }
            }
            l.calls.insert(id, (rids, self.now, log_end));
        }
    }

    // ----- catalog answers -----

    fn on_catalog(&mut self, id: u64, result: Result<CatalogAnswer, Error>) {
        if result.is_ok() || matches!(result, Err(Error::Fenced { .. }) | Err(Error::Answered(_))) {
            // The catalog answered (a refusal is an answer too).
            self.catalog_heard = Some(self.now);
        }
        if let Err(Error::Fenced { known, .. }) = result {
            if known <= MAX_EPOCH {
                self.catalog_epoch = Some(self.catalog_epoch.unwrap_or(0).max(known));
            }
        }
        if self.ping.is_some_and(|p| p.0 == id) {
            self.ping = None;
            return;
        }
        let fill = match &self.phase {
            Phase::Leader(l) if l.filling.is_some_and(|f| f.0 == id) => true,
            Phase::Leader(l) if l.calls.contains_key(&id) => false,
            Phase::TakingOver(t) => {
                if matches!(t.step, TakeoverStep::Reconcile { inflight: Some((i, _)) } if i == id) {
                    return self.on_reconcile(result);
                }
                return;
            }
            _ => return,
        };
        if fill {
            if let Phase::Leader(l) = &mut self.phase {
                l.filling = None;
            }
            match result {
                Ok(CatalogAnswer::Trades { trades, complete }) => {
                    if !complete {
                        log::warn!(
                            "replica {}: the catalog's window no longer holds every missing trade",
                            self.cfg.id
                        );
                    }
                    let confirmed = trades.len() < self.cfg.max_batch_orders;
                    self.record_trades(trades);
                    self.answer_reads(confirmed);
                }
                Err(Error::Fenced { got, known }) => {
                    self.step_down(&format!("the catalog knows epoch {known} (ours {got})"))
                }
                Ok(_) | Err(_) => {}
            }
            return;
        }
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let (rids, _, log_end) = l.calls.remove(&id).expect("checked");
        // Trades that timed out meanwhile were answered already; the rest, each its own.
        let results: Vec<Result<TradeOutcome, Error>> = match result {
            Ok(CatalogAnswer::Traded(results)) if results.len() == rids.len() => results,
            Ok(_) => vec![
                Err(Error::Io(
                    "the catalog answered trades with something else".into()
                ));
                rids.len()
            ],
            Err(e) => vec![Err(e); rids.len()],
        };
        // A trade answered means the primary caught up with this log to `log_end` first.
        if let Some(seq) = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|t| t.seq)
            .max()
        {
            l.primary_upto = l.primary_upto.max(log_end).max(seq);
        }
        let mut fenced = None;
        for (rid, result) in rids.into_iter().zip(results) {
            let Phase::Leader(l) = &mut self.phase else {
                return;
            };
            let Some(t) = l.trading.remove(&rid) else {
                continue;
            };
            match result {
                Ok(outcome) => self.on_traded(rid, outcome, t.waiting),
                Err(Error::Fenced { got, known }) => {
                    for env in t.waiting {
                        self.respond(
                            env,
                            Err(Error::NotLeader(format!(
                                "the catalog knows a newer epoch {known} than {got}"
                            ))),
                        );
                    }
                    fenced = Some((got, known));
                }
                Err(e) => {
                    for env in t.waiting {
                        self.respond(env, Err(e.clone()));
                    }
                }
            }
        }
        // The call's orders join the log together: one write, and one batch to each idle
        // follower. (Released one at a time, the first order left alone and the rest waited
        // for its round trip: most followers' fsyncs carried one order.)
        self.release_held();
        self.advance_acks();
        match fenced {
            Some((got, known)) => {
                self.step_down(&format!("the catalog knows epoch {known} (ours {got})"))
            }
            None => self.send_trades(),
        }
    }

    /// Holds a traded order for the log (or notes who waits for one already recorded); the
    /// caller releases the held orders once the whole call's answers are in.
    fn on_traded(&mut self, rid: RequestId, t: TradeOutcome, waiting: Vec<Envelope>) {
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        if !well_formed_trade(t.seq, t.quantity, &t.name) {
            for env in waiting {
                self.respond(
                    env,
                    Err(Error::Io(format!(
                        "the catalog answered a malformed trade {t:?}"
                    ))),
                );
            }
            return;
        }
        let n = t.seq - 1;
        let order = Order {
            number: n,
            epoch: l.epoch,
            rid,
            name: t.name,
            kind: t.kind,
            quantity: t.quantity,
            cseq: t.seq,
        };
        if n < self.log.next_number() {
            if self.log.get(n).is_some_and(|o| o.rid == rid) {
                l.waiting.entry(n).or_default().extend(waiting);
            } else {
                log::error!(
                    "replica {}: catalog trade {} is request {rid} but order {n} records another request",
                    self.cfg.id,
                    t.seq
                );
                for env in waiting {
                    self.respond(
                        env,
                        Err(Error::Io(format!("order {n} records another request"))),
                    );
                }
            }
        } else {
            l.waiting.entry(n).or_default().extend(waiting);
            l.held.insert(n, order);
        }
    }

    /// Records catalog trades (a gap fill) that are at or after our next number.
    fn record_trades(&mut self, trades: Vec<TradeRecord>) {
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let epoch = l.epoch;
        for t in trades {
            let Some(o) = trade_order(&t, epoch) else {
                log::error!(
                    "replica {}: the catalog sent a malformed trade {t:?}",
                    self.cfg.id
                );
                return;
            };
            if o.number >= self.log.next_number() && !l.held.contains_key(&o.number) {
                l.held.insert(o.number, o);
            }
        }
        self.release_held();
        self.advance_acks();
    }

    /// Appends every held order whose turn has come.
    fn release_held(&mut self) {
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let mut batch = Vec::new();
        let mut next = self.log.next_number();
        while let Some(o) = l.held.remove(&next) {
            batch.push(o);
            next += 1;
        }
        l.gap_since = if l.held.is_empty() {
            None
        } else {
            l.gap_since.or(Some(self.now))
        };
        self.append(batch);
        self.pump_all();
    }

    // ----- replies from peers -----

    fn on_reply(&mut self, from: NodeId, id: u64, result: Result<Response, Error>) {
        if self.leader_probe.is_some_and(|p| p.0 == id) {
            self.leader_probe = None;
            let term = self.term;
            self.leader_heard = match result {
                Ok(Response::State(s)) if s.term == term && s.role.is_leading() => Some(self.now),
                _ => None,
            };
            return;
        }
        match &mut self.phase {
            Phase::Recovering {
                asked,
                answered,
                leader_seen,
                ..
            } => {
                if asked.remove(&id).is_some() {
                    *answered += 1;
                    if let Ok(Response::State(s)) = &result {
                        if s.role.is_leading() && s.term.epoch >= self.term.epoch {
                            *leader_seen = true;
                        }
                    }
                }
            }
            Phase::Follower => {}
            Phase::TakingOver(_) => self.on_takeover_reply(from, id, result),
            Phase::Leader(_) => self.on_stream_reply(from, id, result),
        }
    }

    // ----- leadership: takeover -----

    fn start_takeover(&mut self, epoch: Epoch) {
        log::info!(
            "replica {} is named leader of epoch {epoch}: taking over",
            self.cfg.id
        );
        self.phase = Phase::TakingOver(Takeover {
            epoch,
            step: TakeoverStep::Reconcile { inflight: None },
            retry_at: self.now,
            pulled: 0,
            dropped: 0,
            recorded: 0,
        });
        self.survey();
    }

    /// Asks every peer for its state (the first step of a takeover). With a catalog group it
    /// names its term, which fences the leader it replaces at each peer that answers: that
    /// leader cannot acknowledge an order through a peer after the peer answered the survey.
    fn survey(&mut self) {
        let mut asked = BTreeMap::new();
        let term = match &self.phase {
            Phase::TakingOver(t) => Term {
                epoch: t.epoch,
                leader: Some(self.cfg.id),
            },
            _ => return,
        };
        for p in self.cfg.peers.clone() {
            let request = if self.cfg.catalog_group {
                Request::Survey(term)
            } else {
                Request::State
            };
            let id = self.send(p, request);
            asked.insert(id, p);
        }
        let deadline = self.now + self.cfg.replicate_timeout;
        if let Phase::TakingOver(t) = &mut self.phase {
            t.step = TakeoverStep::Survey {
                asked,
                answers: BTreeMap::new(),
                deadline,
            };
        }
        self.after_survey();
    }

    /// A pull from the freshest peer failed. With one catalog the catalog's journal holds
    /// every acknowledged trade, so the takeover goes on with it; a catalog group's primary
    /// may be new and lack what only the peers hold, so the peers are asked again.
    fn pull_failed(&mut self) {
        if self.cfg.catalog_group {
            self.survey();
        } else {
            self.start_reconcile();
        }
    }

    fn on_takeover_reply(&mut self, from: NodeId, id: u64, result: Result<Response, Error>) {
        let Phase::TakingOver(t) = &mut self.phase else {
            return;
        };
        let epoch = t.epoch;
        match &mut t.step {
            TakeoverStep::Survey { asked, answers, .. } => {
                if asked.remove(&id).is_none() {
                    return;
                }
                match result {
                    Ok(Response::State(s)) => {
                        if s.term.epoch > epoch {
                            let e = s.term.epoch;
                            return self.step_down(&format!("replica {from} knows epoch {e}"));
                        }
                        answers.insert(from, s.last);
                    }
                    Err(Error::Fenced { known, .. }) if known > epoch => {
                        return self.step_down(&format!("replica {from} knows epoch {known}"));
                    }
                    _ => {}
                }
                self.after_survey();
            }
            TakeoverStep::Pull {
                from: peer,
                inflight,
                ..
            } => {
                let Some((fid, _, after)) = *inflight else {
                    return;
                };
                if *peer != from || fid != id {
                    return;
                }
                *inflight = None;
                match result {
                    Ok(Response::Fetched(f)) => self.on_fetched(after, f),
                    other => {
                        log::warn!(
                            "replica {}: pulling from replica {from} failed ({other:?}); {}",
                            self.cfg.id,
                            if self.cfg.catalog_group {
                                "asking every peer again"
                            } else {
                                "going on with the catalog"
                            }
                        );
                        self.pull_failed();
                    }
                }
            }
            _ => {}
        }
    }

    /// Once every peer answered the survey (or time is up), pulls from the freshest peer if
    /// its log is fresher than ours, else goes on to the catalog.
    ///
    /// With a catalog group, a majority of the replicas (this one included) must have
    /// answered first. An acknowledged order is on the leader and a follower (or, while every
    /// follower lags, on a standby catalog), and the primary catalog that held it too may be
    /// gone: any majority includes one of the two replicas that hold it. Until then the silent
    /// peers are asked again every `replicate_timeout`.
    fn after_survey(&mut self) {
        let now = self.now;
        let ours = self.log.last();
        let replicas = self.cfg.peers.len() + 1;
        let majority = replicas / 2 + 1;
        let timeout = self.cfg.replicate_timeout;
        let retry = self.cfg.retry;
        let id = self.cfg.id;
        let group = self.cfg.catalog_group;
        let Phase::TakingOver(t) = &mut self.phase else {
            return;
        };
        let TakeoverStep::Survey {
            asked,
            answers,
            deadline,
        } = &mut t.step
        else {
            return;
        };
        if !asked.is_empty() && now < *deadline {
            return;
        }
        if group && answers.len() + 1 < majority {
            if now < *deadline {
                // Every ask failed already (a peer not listening yet): ask again after the
                // retry pause rather than the whole timeout.
                *deadline = (*deadline).min(now + retry);
                return;
            }
            let silent: Vec<NodeId> = self
                .cfg
                .peers
                .iter()
                .copied()
                .filter(|p| !answers.contains_key(p))
                .collect();
            log::info!(
                "replica {id}: {} of {} replicas answered its takeover survey, a majority is {majority}; asking {silent:?} again",
                answers.len() + 1,
                self.cfg.peers.len() + 1
            );
            *deadline = now + timeout;
            let term = Term {
                epoch: t.epoch,
                leader: Some(id),
            };
            for p in silent {
                let rid = self.send(p, Request::Survey(term));
                if let Phase::TakingOver(Takeover {
                    step: TakeoverStep::Survey { asked, .. },
                    ..
                }) = &mut self.phase
                {
                    asked.insert(rid, p);
                }
            }
            return;
        }
        let Phase::TakingOver(t) = &mut self.phase else {
            return;
        };
        let TakeoverStep::Survey { answers, .. } = &t.step else {
            return;
        };
        let best = answers
            .iter()
            .filter(|(_, last)| EntryId::freshness(**last) > EntryId::freshness(ours))
            .max_by_key(|(id, last)| (EntryId::freshness(**last), **id))
            .map(|(id, _)| *id);
        match best {
            Some(from) => {
                t.step = TakeoverStep::Pull {
                    from,
                    lo: 0,
                    hi: None,
                    inflight: None,
                };
                self.pull();
            }
            None => self.start_reconcile(),
        }
    }

    /// Sends the next fetch of a pull: a probe (limit 0) while looking for the last common
    /// entry between the known match `lo` and the known mismatch `hi` (counts of entries), or
    /// a page after the common part.
    fn pull(&mut self) {
        let len = self.log.next_number();
        let Phase::TakingOver(Takeover {
            step: TakeoverStep::Pull { from, lo, hi, .. },
            ..
        }) = &self.phase
        else {
            return;
        };
        let (from, lo, hi) = (*from, *lo, *hi);
        let (after, limit) = match hi {
            // Our last entry first: usually we are a prefix of theirs.
            None => (len, self.cfg.max_batch_orders),
            Some(h) if h > lo + 1 => (lo + (h - lo) / 2, 0),
            Some(_) => (lo, self.cfg.max_batch_orders),
        };
        let fetch = Fetch {
            after: after.checked_sub(1).and_then(|n| self.log.id_at(n)),
            limit,
            max_bytes: self.cfg.max_batch_bytes,
        };
        let id = self.send(from, Request::Fetch(fetch));
        let now = self.now;
        if let Phase::TakingOver(Takeover {
            step: TakeoverStep::Pull { inflight, .. },
            ..
        }) = &mut self.phase
        {
            *inflight = Some((id, now, (after, limit == 0)));
        }
    }

    /// A peer's answer to a fetch after our first `after.0` entries (`after.1`: a probe).
    fn on_fetched(&mut self, (after, probe): (u64, bool), f: Fetched) {
        let len = self.log.next_number();
        let Phase::TakingOver(Takeover {
            step: TakeoverStep::Pull { lo, hi, .. },
            ..
        }) = &mut self.phase
        else {
            return;
        };
        match f.orders {
            None if after == 0 => {
                log::warn!(
                    "replica {}: a peer refused a fetch from the start",
                    self.cfg.id
                );
                return self.start_reconcile();
            }
            None => *hi = Some(hi.map_or(after, |h| h.min(after))),
            Some(_) if probe => *lo = (*lo).max(after),
            Some(orders) => {
                let prev = after.checked_sub(1).and_then(|n| self.log.id_at(n));
                if let Err(e) = validate_batch(prev, &orders, Epoch::MAX) {
                    log::error!("replica {}: a peer sent a malformed page: {e}", self.cfg.id);
                    return self.start_reconcile();
                }
                *hi = None;
                *lo = 0;
                let count = orders.len() as u64;
                let dropped = if after < len && count > 0 {
                    log::warn!(
                        "replica {} is dropping orders {after}..{} that only it held: a fresher peer wrote those numbers",
                        self.cfg.id,
                        len - 1
                    );
                    self.truncate(after)
                } else {
                    0
                };
                self.append(orders);
                if let Phase::TakingOver(t) = &mut self.phase {
                    t.pulled += count;
                    t.dropped += dropped;
                }
                if count == 0 || self.log.last() == f.last {
                    return self.start_reconcile();
                }
            }
        }
        self.pull();
    }

    fn start_reconcile(&mut self) {
        if let Phase::TakingOver(t) = &mut self.phase {
            t.step = TakeoverStep::Reconcile { inflight: None };
            self.reconcile();
        }
    }

    fn reconcile(&mut self) {
        let Phase::TakingOver(t) = &self.phase else {
            return;
        };
        let epoch = t.epoch;
        let id = self.call_catalog(CatalogCall::TradesSince {
            catalog_epoch: self.catalog_term.epoch,
            after: self.log.next_number(),
            epoch,
            limit: self.cfg.max_batch_orders,
            log_end: self.log.next_number(),
        });
        let now = self.now;
        if let Phase::TakingOver(t) = &mut self.phase {
            t.step = TakeoverStep::Reconcile {
                inflight: Some((id, now)),
            };
        }
    }

    fn on_reconcile(&mut self, result: Result<CatalogAnswer, Error>) {
        let Phase::TakingOver(t) = &self.phase else {
            return;
        };
        let epoch = t.epoch;
        match result {
            Ok(CatalogAnswer::Trades { trades, complete }) => {
                if !complete {
                    log::warn!(
                        "replica {}: the catalog's window no longer holds trade {}; orders cannot be completed from it",
                        self.cfg.id,
                        self.log.next_number() + 1
                    );
                }
                let full = trades.len() >= self.cfg.max_batch_orders;
                let mut batch = Vec::new();
                let mut next = self.log.next_number();
                for tr in &trades {
                    match trade_order(tr, epoch) {
                        Some(o) if o.number == next => {
                            log::info!(
                                "replica {} records catalog trade {} as order {}, which no replica had recorded",
                                self.cfg.id,
                                o.cseq,
                                o.number
                            );
                            batch.push(o);
                            next += 1;
                        }
                        Some(o) if o.number < next => {}
                        _ => {
                            log::error!(
                                "replica {}: the catalog sent trade {tr:?} out of order",
                                self.cfg.id
                            );
                            break;
                        }
                    }
                }
                let count = batch.len() as u64;
                self.append(batch);
                let settled = self.next_ticket - 1;
                let Phase::TakingOver(t) = &mut self.phase else {
                    return;
                };
                t.recorded += count;
                if full {
                    self.reconcile();
                } else {
                    t.step = TakeoverStep::Settle { ticket: settled };
                    if settled <= self.durable_ticket {
                        self.finish_takeover();
                    }
                }
            }
            Err(Error::Fenced { known, .. }) => {
                self.step_down(&format!("the catalog knows epoch {known}"))
            }
            other => {
                log::warn!(
                    "replica {}: the catalog could not reconcile ({other:?}); retrying",
                    self.cfg.id
                );
                // A catalog group's primary answers `unavailable` while it reads this leader's
                // log (a round trip or two): ask again soon, not a heartbeat later.
                let unavailable =
                    matches!(&other, Err(e) if e.kind() == crate::wire::ErrorKind::Unavailable);
                let pause = if unavailable {
                    (self.cfg.retry / 8).max(1)
                } else {
                    self.cfg.retry
                };
                let retry_at = self.now + pause;
                if let Phase::TakingOver(t) = &mut self.phase {
                    t.step = TakeoverStep::Reconcile { inflight: None };
                    t.retry_at = retry_at;
                }
            }
        }
    }

    fn finish_takeover(&mut self) {
        let Phase::TakingOver(t) = &self.phase else {
            return;
        };
        log::info!(
            "replica {} leads epoch {}: {} orders pulled from peers ({} dropped), {} recorded from the catalog journal; last order {:?}",
            self.cfg.id,
            t.epoch,
            t.pulled,
            t.dropped,
            t.recorded,
            self.log.last().map(|e| e.number)
        );
        let epoch = t.epoch;
        let deadline = self.now + self.cfg.replicate_timeout;
        let len = self.log.next_number();
        let followers = self
            .cfg
            .peers
            .iter()
            .map(|p| {
                (
                    *p,
                    Progress {
                        waited: true,
                        matched: 0,
                        next: len,
                        inflight: None,
                        retry_at: 0,
                        search: None,
                        probe_deadline: Some(deadline),
                        last_sent: 0,
                    },
                )
            })
            .collect();
        self.phase = Phase::Leader(Box::new(Leadership {
            epoch,
            followers,
            waiting: BTreeMap::new(),
            trading: BTreeMap::new(),
            calls: BTreeMap::new(),
            queued: Vec::new(),
            held: BTreeMap::new(),
            gap_since: None,
            filling: None,
            reads: Vec::new(),
            copies: BTreeMap::new(),
            parked: Vec::new(),
            primary_upto: 0,
        }));
        self.pump_all();
    }

    fn step_down(&mut self, why: &str) {
        let old = std::mem::replace(&mut self.phase, Phase::Follower);
        match old {
            Phase::Leader(l) => {
                log::info!(
                    "replica {} steps down from epoch {}: {why}",
                    self.cfg.id,
                    l.epoch
                );
                let msg = format!("replica {} stepped down: {why}", self.cfg.id);
                for env in l.waiting.into_values().flatten() {
                    self.respond(env, Err(Error::NotLeader(msg.clone())));
                }
                for t in l.trading.into_values() {
                    for env in t.waiting {
                        self.respond(env, Err(Error::NotLeader(msg.clone())));
                    }
                }
                for (_, env, _) in l.reads {
                    self.respond(env, Err(Error::NotLeader(msg.clone())));
                }
                for (env, r, _) in l.parked {
                    self.answer_read(env, r);
                }
            }
            Phase::TakingOver(t) => log::info!(
                "replica {} abandons its takeover of epoch {}: {why}",
                self.cfg.id,
                t.epoch
            ),
            other => self.phase = other,
        }
    }

    // ----- leadership: streams -----

    fn ack_point(&self, l: &Leadership) -> u64 {
        let mut point = self.durable_len;
        if self.cfg.flaw != Some(Flaw::AckBeforeFollowers) {
            for p in l.followers.values().filter(|p| p.waited) {
                point = point.min(p.matched);
            }
            if self.cfg.catalog_group && self.cfg.flaw != Some(Flaw::AckWithoutCatalogCopy) {
                point = point.min(self.second_copy(l));
            }
        }
        point
    }

    /// Catalog group: orders below this are held by a node that outlives this leader and the
    /// primary catalog together (a follower, or a catalog that is not the primary). With one
    /// catalog its journal is that copy: the next leader reads it back (`trades/since`). A
    /// group's primary can die with the leader, and the next leader then reads a catalog
    /// that never saw the order. Any follower waited for holds every acknowledged order, so
    /// this only bites while every follower lags.
    ///
    /// With every follower lagging, an order needs both catalogs: a standby's copy, and the
    /// primary of the current catalog term holding it too. The second matters after a change of
    /// primary: orders the old primary traded are held by it (now a standby) and this leader
    /// only, until the new primary catches up with this log.
    fn second_copy(&self, l: &Leadership) -> u64 {
        let primary = self.catalog_term.primary;
        let followers = l.followers.values().map(|p| p.matched).max().unwrap_or(0);
        let standby = l
            .copies
            .iter()
            .filter(|(c, _)| Some(**c) != primary)
            .map(|(_, upto)| *upto)
            .max()
            .unwrap_or(0);
        followers.max(standby.min(l.primary_upto))
    }

    fn advance_acks(&mut self) {
        let Phase::Leader(l) = &self.phase else {
            return;
        };
        let point = self.ack_point(l);
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let later = l.waiting.split_off(&point);
        let ready = std::mem::replace(&mut l.waiting, later);
        for (n, envs) in ready {
            if n >= self.acked_upto && !envs.is_empty() {
                self.counters.acknowledged += 1;
            }
            let order = self.log.get(n).expect("acknowledged orders are held");
            for env in envs {
                self.out.push(Effect::Respond {
                    to: env,
                    result: Ok(Response::Order(order.clone())),
                });
            }
        }
        self.acked_upto = self.acked_upto.max(point);
    }

    fn pump_all(&mut self) {
        let ids: Vec<NodeId> = match &self.phase {
            Phase::Leader(l) => l.followers.keys().copied().collect(),
            _ => return,
        };
        for id in ids {
            self.pump(id);
        }
    }

    /// Sends follower `id` its next batch (or a probe while looking for the last common
    /// entry) unless one is in flight, it is not due yet, or it is in step with nothing new.
    fn pump(&mut self, id: NodeId) {
        let len = self.log.next_number();
        let max_bytes = if self.cfg.flaw == Some(Flaw::UnboundedBatches) {
            usize::MAX
        } else {
            self.cfg.max_batch_bytes
        };
        let now = self.now;
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let epoch = l.epoch;
        let Some(p) = l.followers.get_mut(&id) else {
            return;
        };
        if p.inflight.is_some() || now < p.retry_at {
            return;
        }
        if let Some((lo, hi)) = p.search {
            if hi <= lo + 1 {
                p.search = None;
                p.next = lo;
            }
        }
        let (prev_count, probe) = match p.search {
            Some((lo, hi)) => (lo + (hi - lo) / 2, true),
            None => (p.next.min(len), false),
        };
        // In step and confirmed to hold everything: nothing to send until the next order, or
        // the next heartbeat.
        let idle = now < p.last_sent + self.cfg.retry;
        if !probe && p.waited && prev_count >= len && p.matched >= len && idle {
            return;
        }
        let orders = if probe {
            Vec::new()
        } else {
            self.batch(prev_count, len, self.cfg.max_batch_orders, max_bytes)
        };
        let upto = prev_count + orders.len() as u64;
        let append = Append {
            term: Term {
                epoch,
                leader: Some(self.cfg.id),
            },
            prev: prev_count.checked_sub(1).and_then(|n| self.log.id_at(n)),
            orders,
            leader_last: self.log.last(),
        };
        let rid = self.send(id, Request::Append(append));
        if let Phase::Leader(l) = &mut self.phase {
            if let Some(p) = l.followers.get_mut(&id) {
                p.last_sent = now;
                p.inflight = Some(Inflight {
                    id: rid,
                    sent_at: now,
                    prev_count,
                    upto,
                    probe,
                });
            }
        }
    }

    fn on_stream_reply(&mut self, from: NodeId, id: u64, result: Result<Response, Error>) {
        let len = self.log.next_number();
        let me = self.cfg.id;
        let retry_at = self.now + self.cfg.retry;
        // Whether the follower's last entry is also ours (then it holds a prefix of our log).
        let prefix_of_ours = |last: Option<EntryId>, log: &OrderLog| {
            last.is_none_or(|e| log.id_at(e.number) == Some(e))
        };
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let Some(p) = l.followers.get_mut(&from) else {
            return;
        };
        let Some(f) = p.inflight else {
            return;
        };
        if f.id != id {
            return;
        }
        p.inflight = None;
        match result {
            Ok(Response::Appended(a)) if a.matched && f.probe => {
                if let Some((lo, hi)) = p.search {
                    p.search = Some((lo.max(f.prev_count), hi));
                }
            }
            Ok(Response::Appended(a)) if a.matched => {
                p.matched = f.upto;
                p.next = f.upto;
                let behind = f.upto < len;
                if p.probe_deadline.take().is_some() && behind {
                    // Found behind at leadership start: caught up without being waited for.
                    log::info!(
                        "replica {me}: follower {from} is behind at order {}; catching it up",
                        f.upto as i64 - 1
                    );
                    p.waited = false;
                } else if !behind && !p.waited {
                    log::info!(
                        "replica {me}: follower {from} is in step at order {}",
                        f.upto as i64 - 1
                    );
                    p.waited = true;
                }
            }
            Ok(Response::Appended(a)) => {
                // Their log lacks our entry before the batch: find the last common entry.
                // Their own last entry bounds it.
                let their_len = a.last.map_or(0, |e| e.number + 1);
                if p.waited {
                    log::warn!(
                        "replica {me}: follower {from} does not hold our order {}; catching it up",
                        f.prev_count as i64 - 1
                    );
                }
                p.waited = false;
                p.probe_deadline = None;
                p.matched = p.matched.min(their_len).min(f.prev_count.saturating_sub(1));
                if prefix_of_ours(a.last, &self.log) {
                    p.search = None;
                    p.next = their_len;
                } else {
                    let (lo, hi) = p.search.unwrap_or((0, u64::MAX));
                    let hi = hi.min(f.prev_count).min(their_len);
                    p.search = Some((lo.min(hi), hi));
                }
            }
            Err(Error::Fenced { known, .. }) => {
                return self.step_down(&format!("follower {from} knows epoch {known}"));
            }
            other => {
                if p.waited {
                    let why = match &other {
                        Err(e) => e.to_string(),
                        Ok(r) => format!("unexpected answer {r:?}"),
                    };
                    log::warn!("replica {me}: follower {from} failed ({why}); orders no longer wait for it");
                }
                p.waited = false;
                p.probe_deadline = None;
                p.retry_at = retry_at;
            }
        }
        self.advance_acks();
        self.pump(from);
    }

    // ----- time -----

    fn on_time(&mut self) {
        let now = self.now;
        self.release_parked_reads();
        if self
            .ping
            .is_some_and(|p| now >= p.1 + self.cfg.replicate_timeout)
        {
            self.ping = None;
        }
        if self
            .leader_probe
            .is_some_and(|p| now >= p.1 + self.cfg.replicate_timeout)
        {
            self.leader_probe = None;
            self.leader_heard = None;
        }
        let leader = self.term.leader.filter(|l| *l != self.cfg.id);
        if let (Some(l), false, None) = (leader, self.role().is_leading(), self.leader_probe) {
            if now >= self.leader_probe_due {
                // Four probes a heartbeat: a dead leader is noticed within a quarter of one.
                self.leader_probe_due = now + (self.cfg.retry / 4).max(1);
                let id = self.send(l, Request::State);
                self.leader_probe = Some((id, now));
            }
        }
        if self.ping.is_none() && now >= self.ping_due {
            // Four times a heartbeat: a leader cut from the catalog is noticed within a
            // heartbeat and a half.
            self.ping_due = now + (self.cfg.retry / 4).max(1);
            let id = self.call_catalog(CatalogCall::Ping);
            self.ping = Some((id, now));
        }
        match &mut self.phase {
            Phase::Recovering {
                asked,
                leader_seen,
                deadline,
                ..
            } => {
                let late = now >= *deadline;
                if (asked.is_empty() && !*leader_seen) || late {
                    log::info!(
                        "replica {} ready: last order {:?}, epoch {}{}",
                        self.cfg.id,
                        self.log.last().map(|e| e.number),
                        self.term.epoch,
                        if late && *leader_seen {
                            " (no leader brought it in step in time; the leader reports it lagging until it does)"
                        } else {
                            ""
                        }
                    );
                    self.phase = Phase::Follower;
                }
            }
            Phase::Follower => {}
            Phase::TakingOver(t) => {
                let timeout = self.cfg.replicate_timeout;
                match &mut t.step {
                    TakeoverStep::Survey { deadline, .. } if now >= *deadline => {
                        self.after_survey()
                    }
                    TakeoverStep::Pull { inflight, .. }
                        if inflight.is_some_and(|f| now >= f.1 + timeout) =>
                    {
                        *inflight = None;
                        self.pull_failed();
                    }
                    TakeoverStep::Reconcile { inflight } => match inflight {
                        Some(f) if now >= f.1 + timeout => {
                            *inflight = None;
                            t.retry_at = now + self.cfg.retry;
                        }
                        None if now >= t.retry_at => self.reconcile(),
                        _ => {}
                    },
                    _ => {}
                }
            }
            Phase::Leader(_) => self.leader_time(),
        }
    }

    fn leader_time(&mut self) {
        let now = self.now;
        let timeout = self.cfg.replicate_timeout;
        let retry = self.cfg.retry;
        let len = self.log.next_number();
        let me = self.cfg.id;
        let Phase::Leader(l) = &mut self.phase else {
            return;
        };
        let mut changed = false;
        for (id, p) in l.followers.iter_mut() {
            let timed_out = p.inflight.is_some_and(|f| now >= f.sent_at + timeout);
            let probe_over = p.probe_deadline.is_some_and(|d| now >= d);
            if !timed_out && !probe_over {
                continue;
            }
            if p.waited && (timed_out || p.matched < len) {
                log::warn!(
                    "replica {me}: follower {id} is {}; orders no longer wait for it",
                    if timed_out {
                        "too slow or unreachable"
                    } else {
                        "behind"
                    }
                );
                p.waited = false;
                changed = true;
            }
            p.probe_deadline = None;
            if timed_out {
                p.inflight = None;
                p.retry_at = now + retry;
            }
        }
        // Catalog calls that never came back, and trades that waited too long for a call to
        // leave in: the caller gets a retryable answer (a retry under the same request id
        // trades once). A call given up frees its place for the queued trades.
        let stale_calls: Vec<u64> = l
            .calls
            .iter()
            .filter(|(_, (_, sent, _))| now >= sent + timeout)
            .map(|(id, _)| *id)
            .collect();
        let mut stale: Vec<RequestId> = Vec::new();
        for id in stale_calls {
            stale.extend(l.calls.remove(&id).expect("listed").0);
        }
        let queued_too_long: Vec<RequestId> = l
            .trading
            .iter()
            .filter(|(_, t)| t.id.is_none() && now >= t.sent_at + timeout)
            .map(|(rid, _)| *rid)
            .collect();
        if !queued_too_long.is_empty() {
            l.queued.retain(|q| !queued_too_long.contains(&q.rid));
            stale.extend(queued_too_long);
        }
        let mut failed = Vec::new();
        for rid in stale {
            if let Some(t) = l.trading.remove(&rid) {
                failed.extend(t.waiting);
            }
        }
        let mut slow_reads = Vec::new();
        l.reads.retain(|&(_, env, since)| {
            let keep = now < since + timeout;
            if !keep {
                slow_reads.push(env);
            }
            keep
        });
        if l.filling.is_some_and(|f| now >= f.1 + timeout) {
            l.filling = None;
        }
        let fill_due =
            l.filling.is_none() && l.gap_since.is_some_and(|s| now >= s + self.cfg.gap_wait);
        let freed = !failed.is_empty();
        for env in failed {
            self.respond(
                env,
                Err(Error::Unavailable(
                    "the catalog did not answer in time; retry with the same request id".into(),
                )),
            );
        }
        if freed {
            self.send_trades();
        }
        for env in slow_reads {
            self.respond(
                env,
                Err(Error::Unavailable(
                    "the order is not here yet and the catalog did not confirm it in time".into(),
                )),
            );
        }
        if fill_due {
            log::info!("replica {me}: orders wait behind a missing one; asking the catalog for it");
            self.fill_from_catalog();
        }
        if changed {
            self.advance_acks();
        }
        self.pump_all();
    }
}

/// A catalog trade a log can hold: a sequence number that fits the log, a sane quantity and
/// name (the catalog is checked like any other caller).
fn well_formed_trade(seq: u64, quantity: u64, name: &str) -> bool {
    (1..=u64::from(u32::MAX)).contains(&seq)
        && (1..=MAX_TRADE_QUANTITY).contains(&quantity)
        && validate_name(name).is_ok()
}

/// The order a catalog trade becomes in `epoch`, if the trade is well-formed.
fn trade_order(t: &TradeRecord, epoch: Epoch) -> Option<Order> {
    well_formed_trade(t.seq, t.quantity, &t.name).then(|| Order {
        number: t.seq - 1,
        epoch,
        rid: t.rid,
        name: t.name.clone(),
        kind: t.kind,
        quantity: t.quantity,
        cseq: t.seq,
    })
}

/// Bytes one order takes in a batch (its JSON line).
pub fn order_bytes(o: &Order) -> usize {
    // number, epoch, rid (32), name, type, quantity, cseq, and the punctuation around them.
    90 + o.name.len() + digits(o.number) * 2 + digits(o.epoch) + digits(o.quantity)
}

fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Checks a batch before it reaches the log: consecutive numbers after `prev`, catalog
/// numbers that match, epochs not above `max_epoch` and never decreasing, sane quantities
/// and names. Anything else is a 400 that changes nothing.
pub fn validate_batch(
    prev: Option<EntryId>,
    orders: &[Order],
    max_epoch: Epoch,
) -> Result<(), Error> {
    let mut next = prev.map_or(Some(0), |p| p.number.checked_add(1));
    let mut epoch = prev.map_or(0, |p| p.epoch);
    for o in orders {
        let bad = |why: &str| {
            Err(Error::BadRequest(format!(
                "order {} in a batch: {why}",
                o.number
            )))
        };
        if Some(o.number) != next {
            return bad("numbers must follow the previous entry without a gap");
        }
        if o.number >= u64::from(u32::MAX) || o.cseq != o.number + 1 {
            return bad("number out of range or catalog number not number + 1");
        }
        if o.epoch < epoch || o.epoch > max_epoch || o.epoch == 0 {
            return bad("epochs must be positive, not above the sender's and never decrease");
        }
        if o.quantity == 0 || o.quantity > MAX_TRADE_QUANTITY {
            return bad("quantity out of range");
        }
        validate_name(&o.name)?;
        epoch = o.epoch;
        next = o.number.checked_add(1);
    }
    Ok(())
}
