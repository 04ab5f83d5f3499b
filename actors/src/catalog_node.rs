//! One catalog of a catalog group as a pure state machine (`docs/catalog-failover.md`):
//! requests (the supervisor's term and heartbeat, order leaders' trades, front ends' lookups),
//! pages of the order log read from a replica, completed journal writes and clock ticks go in
//! through `step`; reads to send, journal lines to write, answers and invalidations come out as
//! `Effect`s. No socket, no clock, no disk: a driver (or the simulator) executes them.
//!
//! - **Standby** (not the primary of its term): answers no trade and no lookup. Every
//!   `follow_every` it reads the order log from the replica that leads, from its last
//!   confirmed trade on (never past what that leader has acknowledged: an acknowledged order
//!   never changes, a newer one may), and applies it (`catalog_follow::follow`).
//! - **Primary, catching up**: a leader's call carries its epoch and its log end. Until the
//!   table matches that leader's log up to its end, the call is answered `unavailable`
//!   (the leader retries) while the node reads the leader's log.
//! - **Primary, serving**: once caught up with leader epoch `e` in this catalog term, it
//!   sequences `e`'s trades itself (they match by construction: that leader records only this
//!   catalog's answers from now on) and answers lookups. A new catalog term or a newer leader
//!   epoch means catching up again. A buy it refuses is shared with the other catalogs before
//!   the refusal is answered (the order log holds no refusals), so the same Idempotency-Key is
//!   refused again after a failover.

use crate::catalog::{Accepted, Catalog, JournalEntry, Refusal};
use crate::catalog_follow::{follow, Stall};
use crate::replication::{
    CatalogCopy, CatalogTerm, Envelope, Millis, NodeId, OrdersPage, ReadOrders,
};
use crate::types::Epoch;
use crate::wire::catalog::{TradeOutcome, TradeRecord, TradeRequest};
use crate::wire::frontend::Stock;
use crate::Error;
use std::collections::VecDeque;

/// How a catalog node behaves; the drivers fill it from the configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// This catalog's id.
    pub id: NodeId,
    /// The order replicas' ids, to read the log from.
    pub replicas: Vec<NodeId>,
    /// A standby reads the log this often.
    pub follow_every: Millis,
    /// Orders per read.
    pub page: usize,
    /// A read not answered within this long is given up.
    pub read_timeout: Millis,
    /// Test only (`Flaw::CatalogServesUnsynced`): a primary serves without catching up.
    pub serve_unsynced: bool,
    /// The other catalogs of the group, asked for their trades past the log before this one
    /// first serves in a term.
    pub peers: Vec<NodeId>,
}

/// How a catalog reports itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Not the primary of its term.
    Standby,
    /// Primary, matching its table with a leader's log before it serves.
    CatchingUp,
    /// Primary, serving.
    Primary,
}

/// The answer to the supervisor's heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// Catalog id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The catalog term it accepted.
    pub term: CatalogTerm,
    /// Its last trade (durable or not).
    pub last_seq: u64,
    /// Every trade up to this one matches the order log.
    pub confirmed: u64,
}

/// Everything a catalog node can be asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The supervisor's heartbeat.
    State,
    /// The supervisor announces a catalog term.
    Term(CatalogTerm),
    /// An order leader's trades, each answered on its own.
    Trades {
        /// The leader's replica id.
        leader: NodeId,
        /// Its epoch.
        epoch: Epoch,
        /// Its next order number.
        log_end: u64,
        /// The trades.
        trades: Vec<TradeRequest>,
        /// The catalog epoch of the leader's catalog term (answered only in that epoch).
        catalog_epoch: Option<Epoch>,
    },
    /// An order leader reads back the trades after `after`.
    TradesSince {
        /// The leader's replica id.
        leader: NodeId,
        /// Its epoch.
        epoch: Epoch,
        /// Its next order number.
        log_end: u64,
        /// Last trade sequence number it holds.
        after: u64,
        /// At most this many.
        limit: usize,
        /// As for `Trades`.
        catalog_epoch: Option<Epoch>,
    },
    /// A front end looks a stock up.
    Lookup(String),
    /// Another catalog of the group, about to serve, asks for the trades after `after`.
    PeerTrades {
        /// Trades after this sequence number.
        after: u64,
    },
    /// The primary shares buys it refused, before it answers them (any role keeps them).
    ShareRefusals(Vec<Refusal>),
}

/// A catalog node's answer to a `Request`.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// To `State`.
    State(NodeState),
    /// To `Term`: accepted (and durable).
    TermAccepted,
    /// To `Trades`: one result per trade, in the order asked.
    Traded(Vec<Result<TradeOutcome, Error>>),
    /// To `TradesSince`.
    Trades {
        /// The trades, in sequence order.
        trades: Vec<TradeRecord>,
        /// False when trades asked for have left the window.
        complete: bool,
        /// The last durable trade.
        last_seq: u64,
    },
    /// To `Lookup`.
    Stock(Stock),
    /// To `PeerTrades`: this catalog's durable trades after `after` (a window's worth at
    /// most), and the request id of its trade `after` (to check that it went the same way up
    /// to there).
    PeerTrades {
        /// The trades, in sequence order.
        trades: Vec<TradeRecord>,
        /// The request id of trade `after`, if held.
        at: Option<crate::types::RequestId>,
    },
    /// To `ShareRefusals`, once durable: how many were new here.
    RefusalsKept(u64),
}

/// What happens to a catalog node.
#[derive(Clone, Debug)]
pub enum Event {
    /// Time passed.
    Tick,
    /// Someone asks something.
    Request(Envelope, Request),
    /// A replica answered read `id` (or the read failed).
    Reply {
        /// The replica.
        from: NodeId,
        /// Our number for the read.
        id: u64,
        /// Its answer.
        result: Result<OrdersPage, Error>,
    },
    /// Every journal line up to this ticket is durable.
    Durable(u64),
    /// Another catalog answered `PeerTrades` (or did not).
    PeerReply {
        /// The catalog.
        from: NodeId,
        /// Our number for the question.
        id: u64,
        /// Its answer.
        result: Result<Response, Error>,
    },
}

/// What a catalog node wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read the order log from a replica; the answer comes back as `Event::Reply` with `id`.
    Read {
        /// The replica.
        to: NodeId,
        /// Our number for it.
        id: u64,
        /// What to read.
        request: ReadOrders,
    },
    /// Answer a request.
    Respond {
        /// Who asked.
        to: Envelope,
        /// The answer.
        result: Result<Response, Error>,
    },
    /// Append one journal line; `Event::Durable(ticket)` says it is on disk.
    Journal {
        /// The line's ticket.
        ticket: u64,
        /// The line.
        entry: JournalEntry,
    },
    /// These stocks changed durably: push invalidations to the front ends.
    Invalidate(Vec<Stock>),
    /// Ask another catalog `Request::PeerTrades`; the answer comes back as
    /// `Event::PeerReply` with `id`.
    AskPeer {
        /// The catalog.
        to: NodeId,
        /// Our number for the question.
        id: u64,
        /// The question.
        request: Request,
    },
}

/// One trade of a waiting batch: its sequence number until durable, or its answer.
enum Item {
    Seq(u64),
    Done(Result<TradeOutcome, Error>),
}

/// An answer that waits for a journal ticket to be durable.
enum Waiting {
    /// Trade answers; with a share of new refusals (its id) that must be kept by another
    /// catalog (or given up on) first.
    Batch(Vec<Item>, Option<u64>),
    Since {
        after: u64,
        limit: usize,
    },
    Term,
    Kept(u64),
}

/// The other catalogs asked for their trades past the log before serving.
struct PeerCheck {
    /// The leader epoch to serve, and its log's end.
    epoch: Epoch,
    log_end: u64,
    /// Question ids still out.
    asked: Vec<u64>,
    sent: Millis,
    /// Tails past `log_end` that agree with the log at `log_end`: (catalog, trades).
    tails: Vec<(NodeId, Vec<TradeRecord>)>,
}

/// The read in flight: (read id, replica, sent at).
type Reading = (u64, NodeId, Millis);

/// See the module docs.
pub struct CatalogNode {
    cfg: Config,
    table: Catalog,
    now: Millis,
    /// Leader epoch this node caught up with in its current term, once serving.
    serving: Option<Epoch>,
    /// Primary, catching up: the leader, its epoch and the log end its call named.
    target: Option<(NodeId, Epoch, u64)>,
    /// The replica the log is read from (the last one found leading).
    source: Option<NodeId>,
    /// Next replica to try while no leader is known.
    probe: usize,
    reading: Option<Reading>,
    /// Where the next read starts when not at the confirmed point (a page left a gap).
    read_from: Option<u64>,
    /// A read of the log in several pages: (replica, its epoch, how far this read compared
    /// the table with its log). The confirmed point only moves to what a leader acknowledged,
    /// so the pages of one pass go on from here, not from it.
    sweep: Option<(NodeId, Epoch, u64)>,
    /// The other catalogs were asked for their trades past the log in this term.
    peers_checked: bool,
    /// Asking them now.
    peer_check: Option<PeerCheck>,
    /// The table holds this leader's log up to here, as of its last page: (replica, its
    /// epoch, orders). Reported with the next read (`CatalogCopy`) once durable.
    holding: Option<(NodeId, Epoch, u64)>,
    /// That leader holds answers back until a catalog copy holds them: read again as soon as
    /// the last page is durable.
    hurry: bool,
    next_read: Millis,
    next_id: u64,
    ticket: u64,
    durable_ticket: u64,
    /// Trades not yet durable: (ticket, sequence number).
    pending: VecDeque<(u64, u64)>,
    /// Buys refused by the trades being handled, to share before answering.
    fresh_refusals: Vec<Refusal>,
    /// Refusals shared with the other catalogs, not kept by one yet: share id -> (question ids
    /// still out, sent at).
    shares: std::collections::BTreeMap<u64, (Vec<u64>, Millis)>,
    waiting: Vec<(u64, Envelope, Waiting)>,
    out: Vec<Effect>,
}

impl CatalogNode {
    /// A node over `table` (as its files left it, durable), at `now`.
    pub fn new(cfg: Config, table: Catalog, now: Millis) -> CatalogNode {
        CatalogNode {
            cfg,
            table,
            now,
            serving: None,
            target: None,
            source: None,
            probe: 0,
            reading: None,
            read_from: None,
            sweep: None,
            peers_checked: false,
            peer_check: None,
            holding: None,
            hurry: false,
            next_read: now,
            next_id: 1,
            ticket: 0,
            durable_ticket: 0,
            pending: VecDeque::new(),
            fresh_refusals: Vec::new(),
            shares: std::collections::BTreeMap::new(),
            waiting: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The table (for status, checks and tests).
    pub fn table(&self) -> &Catalog {
        &self.table
    }

    /// How it reports itself.
    pub fn state(&self) -> NodeState {
        NodeState {
            id: self.cfg.id,
            role: self.role(),
            term: self.table.term(),
            last_seq: self.table.last_seq(),
            confirmed: self.table.confirmed(),
        }
    }

    fn role(&self) -> Role {
        if self.table.term().primary != Some(self.cfg.id) {
            Role::Standby
        } else if self.serving.is_some() {
            Role::Primary
        } else {
            Role::CatchingUp
        }
    }

    /// Time passed.
    pub fn tick(&mut self, now: Millis) -> Vec<Effect> {
        self.step(now, Event::Tick)
    }

    /// Takes one event at `now`; what to do comes back.
    pub fn step(&mut self, now: Millis, event: Event) -> Vec<Effect> {
        self.now = self.now.max(now);
        match event {
            Event::Tick => {}
            Event::Request(env, req) => self.on_request(env, req),
            Event::Reply { from, id, result } => self.on_reply(from, id, result),
            Event::Durable(t) => self.on_durable(t),
            Event::PeerReply { from, id, result } => self.on_peer_reply(from, id, result),
        }
        self.expire_shares();
        self.maybe_finish_peer_check();
        self.maybe_read();
        std::mem::take(&mut self.out)
    }

    fn journal(&mut self, entry: JournalEntry) -> u64 {
        self.ticket += 1;
        if let JournalEntry::Trade(t) = &entry {
            self.pending.push_back((self.ticket, t.seq));
        }
        self.out.push(Effect::Journal {
            ticket: self.ticket,
            entry,
        });
        self.ticket
    }

    fn respond(&mut self, to: Envelope, result: Result<Response, Error>) {
        self.out.push(Effect::Respond { to, result });
    }

    /// Answers once every journal line written so far is durable.
    fn respond_when_durable(&mut self, to: Envelope, w: Waiting) {
        self.waiting.push((self.ticket, to, w));
        if self.ticket <= self.durable_ticket {
            self.release();
        }
    }

    fn on_request(&mut self, env: Envelope, req: Request) {
        match req {
            Request::State => {
                let s = self.state();
                self.respond(env, Ok(Response::State(s)));
            }
            Request::Term(term) => match self.table.accept_term(term) {
                Ok(entry) => {
                    if let Some(entry) = entry {
                        log::info!(
                            "catalog {}: catalog epoch {}, primary {:?}{}",
                            self.cfg.id,
                            term.epoch,
                            term.primary,
                            if term.primary == Some(self.cfg.id) {
                                " (this catalog: it catches up with the order log before it serves)"
                            } else {
                                ""
                            }
                        );
                        self.serving = None;
                        self.target = None;
                        self.peers_checked = false;
                        self.peer_check = None;
                        self.holding = None;
                        if !self.shares.is_empty() {
                            self.drop_shares();
                        }
                        self.journal(entry);
                    }
                    self.respond_when_durable(env, Waiting::Term);
                }
                Err(e) => self.respond(env, Err(e)),
            },
            Request::ShareRefusals(refusals) => {
                let mut kept = 0;
                for r in refusals {
                    match self.table.learn_refusal(r) {
                        Ok(Some(entry)) => {
                            self.journal(entry);
                            kept += 1;
                        }
                        Ok(None) => {}
                        Err(e) => return self.respond(env, Err(e)),
                    }
                }
                self.respond_when_durable(env, Waiting::Kept(kept));
            }
            Request::PeerTrades { after } => {
                // Durable trades only: an answer a crash could take back is no evidence.
                let (mut trades, _) = self.table.trades_after(after, 10_000);
                trades.retain(|t| t.seq <= self.table.durable_seq());
                let at = if after == 0 {
                    None
                } else {
                    self.table.rid_at(after)
                };
                self.respond(env, Ok(Response::PeerTrades { trades, at }));
            }
            Request::Lookup(name) => {
                if self.role() != Role::Primary {
                    let msg = self.not_serving();
                    return self.respond(env, Err(Error::Unavailable(msg)));
                }
                let r = self.table.lookup(&name).cloned().map(Response::Stock);
                self.respond(env, r);
            }
            Request::Trades {
                leader,
                epoch,
                log_end,
                trades,
                catalog_epoch,
            } => {
                if let Err(e) = self.admit(leader, epoch, log_end, catalog_epoch) {
                    let n = trades.len();
                    let all = (0..n).map(|_| Err(e.clone())).collect();
                    return self.respond(env, Ok(Response::Traded(all)));
                }
                let items = trades.iter().map(|t| self.trade(t)).collect();
                let share = self.share_refusals();
                self.respond_when_durable(env, Waiting::Batch(items, share));
            }
            Request::TradesSince {
                leader,
                epoch,
                log_end,
                after,
                limit,
                catalog_epoch,
            } => {
                if let Err(e) = self.admit(leader, epoch, log_end, catalog_epoch) {
                    return self.respond(env, Err(e));
                }
                match self.table.observe_epoch(epoch) {
                    Ok(Some(entry)) => {
                        self.journal(entry);
                    }
                    Ok(None) => {}
                    Err(e) => return self.respond(env, Err(e)),
                }
                self.respond_when_durable(env, Waiting::Since { after, limit });
            }
        }
    }

    fn not_serving(&self) -> String {
        match self.role() {
            Role::Standby => format!(
                "catalog {} is a standby (primary: {:?})",
                self.cfg.id,
                self.table.term().primary
            ),
            _ => format!(
                "catalog {} is catching up with the order log before it serves",
                self.cfg.id
            ),
        }
    }

    /// May leader `leader` of `epoch`, whose log ends at `log_end`, be served now? Starts
    /// catching up with its log when not.
    fn admit(
        &mut self,
        leader: NodeId,
        epoch: Epoch,
        log_end: u64,
        catalog_epoch: Option<Epoch>,
    ) -> Result<(), Error> {
        if self.role() == Role::Standby {
            return Err(Error::Unavailable(self.not_serving()));
        }
        let held = self.table.term().epoch;
        if catalog_epoch.is_some_and(|c| c != held) {
            // The leader and this catalog are in different catalog terms: an answer now would
            // reach the leader as made in its term although it was not (the leader retries
            // once both hold the same term, which the supervisors announce to both).
            return Err(Error::Unavailable(format!(
                "catalog {} holds catalog epoch {held}, the leader's call is for {}",
                self.cfg.id,
                catalog_epoch.unwrap_or_default()
            )));
        }
        if epoch < self.table.epoch() {
            return Err(Error::Fenced {
                got: epoch,
                known: self.table.epoch(),
            });
        }
        if self.cfg.serve_unsynced {
            self.serving = Some(epoch);
            return Ok(());
        }
        if self.serving == Some(epoch) && log_end <= self.table.last_seq() {
            // Nothing is confirmed here: this leader's log past what it acknowledged may still
            // be replaced by the next leader's (a dead leader's unreplicated tail). The
            // confirmed point moves only with a leader's acknowledged point, when the log is
            // read.
            return Ok(());
        }
        match &mut self.target {
            Some((l, e, end)) if *l == leader && *e == epoch => *end = (*end).max(log_end),
            _ => {
                log::info!(
                    "catalog {}: catching up with leader {leader}'s log (epoch {epoch}, {log_end} orders) before serving it",
                    self.cfg.id
                );
                self.serving = None;
                if !self.shares.is_empty() {
                    self.drop_shares();
                }
                self.target = Some((leader, epoch, log_end));
                self.source = Some(leader);
                self.next_read = self.now;
            }
        }
        Err(Error::Unavailable(self.not_serving()))
    }

    fn trade(&mut self, t: &TradeRequest) -> Item {
        match self.table.trade(t) {
            Ok(Accepted::New(entry, seq)) => {
                self.journal(entry);
                Item::Seq(seq)
            }
            Ok(Accepted::Seen(seq)) => Item::Seq(seq),
            Ok(Accepted::Refused(entry, err)) => {
                if let Some(entry) = entry {
                    if let JournalEntry::Refusal(r) = &entry {
                        self.fresh_refusals.push(r.clone());
                    }
                    self.journal(entry);
                }
                Item::Done(Err(err))
            }
            Err(e) => Item::Done(Err(e)),
        }
    }

    fn on_durable(&mut self, t: u64) {
        self.durable_ticket = self.durable_ticket.max(t);
        if self.hurry {
            // The copy the leader waits for is durable: report it now.
            self.next_read = self.next_read.min(self.now);
        }
        let mut seq = None;
        while self.pending.front().is_some_and(|(pt, _)| *pt <= t) {
            seq = self.pending.pop_front().map(|(_, s)| s);
        }
        if let Some(s) = seq {
            let changed = self.table.mark_durable(s);
            if !changed.is_empty() {
                self.out.push(Effect::Invalidate(changed));
            }
        }
        self.release();
    }

    /// Sends the buys just refused to the other catalogs (a standby that takes over must
    /// refuse the same request id again, rule 2); the answers wait until one of them kept
    /// them, or every one failed, or `read_timeout` passed (then a refusal is held here only).
    fn share_refusals(&mut self) -> Option<u64> {
        let refusals = std::mem::take(&mut self.fresh_refusals);
        if refusals.is_empty() || self.cfg.peers.is_empty() {
            return None;
        }
        let share = self.next_id;
        self.next_id += 1;
        let asked = self.ask_every_peer(&Request::ShareRefusals(refusals));
        self.shares.insert(share, (asked, self.now));
        Some(share)
    }

    /// Sends `request` to every other catalog; the question ids, one per catalog.
    fn ask_every_peer(&mut self, request: &Request) -> Vec<u64> {
        let mut asked = Vec::new();
        for to in self.cfg.peers.clone() {
            let id = self.next_id;
            self.next_id += 1;
            asked.push(id);
            self.out.push(Effect::AskPeer {
                to,
                id,
                request: request.clone(),
            });
        }
        asked
    }

    /// A new term (or a newer leader to catch up with) while refusals were being shared: the
    /// batches that waited for them are answered now, their trades as `unavailable` (this
    /// catalog no longer sequences for that leader; the leader trades them again under their
    /// request ids, and a catalog drops a trade no log recorded when it next follows the log).
    fn drop_shares(&mut self) {
        self.shares.clear();
        let id = self.cfg.id;
        for (_, _, w) in &mut self.waiting {
            if let Waiting::Batch(items, share @ Some(_)) = w {
                *share = None;
                for item in items.iter_mut() {
                    if matches!(item, Item::Seq(_)) {
                        *item = Item::Done(Err(Error::Unavailable(format!(
                            "catalog {id} took a new catalog term before it could answer"
                        ))));
                    }
                }
            }
        }
        self.release();
    }

    /// A share no other catalog answered in time: answer the refusals anyway.
    fn expire_shares(&mut self) {
        let (now, limit) = (self.now, self.cfg.read_timeout);
        let before = self.shares.len();
        self.shares
            .retain(|_, (_, sent)| now.saturating_sub(*sent) < limit);
        if self.shares.len() < before {
            log::warn!(
                "catalog {}: no other catalog kept a refusal within {limit} ms; answered with this catalog holding it alone",
                self.cfg.id
            );
            self.release();
        }
    }

    /// Answers what waited for durable tickets (and for shared refusals to be kept).
    fn release(&mut self) {
        let durable = self.durable_ticket;
        let shares = &self.shares;
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(t, _, w)| {
                *t <= durable && !matches!(w, Waiting::Batch(_, Some(s)) if shares.contains_key(s))
            });
        self.waiting = later;
        for (_, to, w) in ready {
            let result = match w {
                Waiting::Term => Ok(Response::TermAccepted),
                Waiting::Kept(n) => Ok(Response::RefusalsKept(n)),
                Waiting::Since { after, limit } => {
                    let (trades, complete) = self.table.trades_after(after, limit);
                    Ok(Response::Trades {
                        trades,
                        complete,
                        last_seq: self.table.durable_seq(),
                    })
                }
                Waiting::Batch(items, _) => Ok(Response::Traded(
                    items
                        .into_iter()
                        .map(|i| match i {
                            Item::Done(r) => r,
                            Item::Seq(seq) => self.table.outcome(seq).ok_or_else(|| {
                                Error::Unavailable(format!("trade {seq} left the window"))
                            }),
                        })
                        .collect(),
                )),
            };
            self.respond(to, result);
        }
    }

    // ----- reading the order log -----

    fn maybe_read(&mut self) {
        if let Some((_, _, sent)) = self.reading {
            if self.now.saturating_sub(sent) < self.cfg.read_timeout {
                return;
            }
            // Given up: try another replica next.
            self.reading = None;
            self.source = None;
        }
        if self.peer_check.is_some() {
            // The table stays where the other catalogs were asked about until they answer.
            return;
        }
        // A primary catches up with the leader even before that leader calls (so lookups are
        // served after a failover without waiting for a trade); a standby follows.
        let wanted = self.role() != Role::Primary;
        if !wanted || self.now < self.next_read || self.cfg.replicas.is_empty() {
            return;
        }
        if self.hurry && self.ticket > self.durable_ticket {
            // The copy the leader waits for is reported once it is durable.
            return;
        }
        self.hurry = false;
        let to = match self.source {
            Some(s) => s,
            None => {
                self.probe = (self.probe + 1) % self.cfg.replicas.len();
                self.cfg.replicas[self.probe]
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.reading = Some((id, to, self.now));
        let swept = self.sweep.filter(|s| s.0 == to).map(|s| s.2);
        let from = self
            .read_from
            .take()
            .or(swept)
            .unwrap_or(self.table.confirmed())
            .min(self.table.last_seq());
        let copy = self
            .holding
            .filter(|h| h.0 == to)
            .map(|(_, epoch, upto)| CatalogCopy {
                catalog: self.cfg.id,
                epoch,
                upto: upto.min(self.table.durable_seq()),
            });
        self.out.push(Effect::Read {
            to,
            id,
            request: ReadOrders {
                from,
                limit: self.cfg.page,
                copy,
            },
        });
    }

    /// Caught up with leader epoch `epoch`'s log of `log_end` orders: serves it. Trades past
    /// the log's end stay, as with one catalog: none of their request ids is in the log (the
    /// table matches it up to its end, and a request id is traded once per table), so the
    /// leader records them when it reads the trades back (`trades/since`) — they may be
    /// orders an earlier leader acknowledged whose replicas are all down.
    fn serve(&mut self, epoch: Epoch, log_end: u64) {
        if !self.peers_checked && !self.cfg.peers.is_empty() {
            if self.peer_check.is_none() {
                self.ask_peers(epoch, log_end);
            }
            return;
        }
        log::info!(
            "catalog {}: caught up with the order log ({log_end} orders, leader epoch {epoch}); serving",
            self.cfg.id
        );
        self.serving = Some(epoch);
    }

    /// Before it first serves in a term, a catalog asks the others for their trades past the
    /// log's end: an order an earlier leader acknowledged while its followers lagged may be
    /// held only by that leader (gone) and by the catalog that was primary then, and the new
    /// leader records what the primary holds past its log (`trades/since`).
    fn ask_peers(&mut self, epoch: Epoch, log_end: u64) {
        let asked = self.ask_every_peer(&Request::PeerTrades { after: log_end });
        self.peer_check = Some(PeerCheck {
            epoch,
            log_end,
            asked,
            sent: self.now,
            tails: Vec::new(),
        });
    }

    fn on_peer_reply(&mut self, from: NodeId, id: u64, result: Result<Response, Error>) {
        let share = self
            .shares
            .iter()
            .find(|(_, (asked, _))| asked.contains(&id))
            .map(|(s, _)| *s);
        if let Some(s) = share {
            let kept = matches!(result, Ok(Response::RefusalsKept(_)));
            let done = match self.shares.get_mut(&s) {
                Some((asked, _)) => {
                    asked.retain(|a| *a != id);
                    kept || asked.is_empty()
                }
                None => false,
            };
            if done {
                if !kept {
                    log::warn!(
                        "catalog {}: no other catalog could keep a refusal ({result:?}); answered with this catalog holding it alone",
                        self.cfg.id
                    );
                }
                self.shares.remove(&s);
                self.release();
            }
            return;
        }
        let Some(check) = &mut self.peer_check else {
            return;
        };
        let Some(i) = check.asked.iter().position(|a| *a == id) else {
            return;
        };
        check.asked.remove(i);
        if let Ok(Response::PeerTrades { trades, at }) = result {
            let end = check.log_end;
            // Only a catalog that went the log's way up to its end has a tail to offer.
            let agrees = end == 0 || (at.is_some() && at == self.table.rid_at(end));
            let consecutive = trades
                .iter()
                .enumerate()
                .all(|(k, t)| t.seq == end + 1 + k as u64);
            if agrees && consecutive && !trades.is_empty() {
                check.tails.push((from, trades));
            }
        }
    }

    /// Every other catalog answered (or the time is up): adopts the newest tail, then serves.
    fn maybe_finish_peer_check(&mut self) {
        let Some(check) = &self.peer_check else {
            return;
        };
        if !check.asked.is_empty() && self.now.saturating_sub(check.sent) < self.cfg.read_timeout {
            return;
        }
        let (epoch, log_end) = (check.epoch, check.log_end);
        // The tail of the newest leader epoch: leaders record only the primary of their
        // catalog term, so the newest leader's trades are the ones it may have acknowledged.
        let own_newest = (self.table.last_seq() > log_end)
            .then(|| self.table.trades_after(log_end, usize::MAX).0)
            .and_then(|t| t.last().map(|t| (t.epoch, t.seq)));
        let best = check
            .tails
            .iter()
            .filter_map(|(from, t)| t.last().map(|l| ((l.epoch, l.seq), *from)))
            .max();
        if let Some(((e, seq), from)) = best {
            if own_newest.is_none_or(|own| (e, seq) > own) {
                if self.table.last_seq() > self.table.durable_seq() {
                    // Our own tail must be durable before it can be undone: next step.
                    return;
                }
                let tail = self
                    .peer_check
                    .as_ref()
                    .and_then(|c| c.tails.iter().find(|(f, _)| *f == from))
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                self.holding = None;
                match self.table.rollback_to(log_end) {
                    Ok(Some(entry)) => {
                        self.journal(entry);
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("catalog {}: cannot drop its tail: {e}", self.cfg.id),
                }
                let mut took = 0;
                for t in tail {
                    match self.table.apply_recorded(t) {
                        Ok(entry) => {
                            self.journal(entry);
                            took += 1;
                        }
                        Err(e) => {
                            log::warn!(
                                "catalog {}: catalog {from}'s trades past the log stop here: {e}",
                                self.cfg.id
                            );
                            break;
                        }
                    }
                }
                log::info!(
                    "catalog {}: took {took} trades past the order log's end ({log_end}) from catalog {from}, whose leader epoch is newer; the leader records them",
                    self.cfg.id
                );
            }
        }
        self.peer_check = None;
        self.peers_checked = true;
        self.serve(epoch, log_end);
        if self.serving.is_some() {
            self.target = None;
        }
    }

    fn on_reply(&mut self, from: NodeId, id: u64, result: Result<OrdersPage, Error>) {
        if self.reading.is_none_or(|r| r.0 != id) {
            return;
        }
        self.reading = None;
        self.next_read = self.now + self.cfg.follow_every;
        if self.role() == Role::Primary {
            // Serving: the table is this catalog's own; a late read changes nothing.
            return;
        }
        let page = match result {
            Ok(p) if p.leading => p,
            // Not the leader (or no answer): look for it.
            other => {
                if other.is_ok() && self.target.is_some_and(|t| t.0 == from) {
                    // The leader we caught up with no longer leads: follow whoever does.
                    self.target = None;
                }
                self.source = None;
                return;
            }
        };
        if let Some((leader, epoch, _)) = self.target {
            if from == leader && page.epoch != epoch {
                // That leader's term changed: the next leader's call names it.
                self.target = None;
                return;
            }
            if from != leader && page.epoch <= epoch {
                // A standby's read from before: read the leader we catch up with instead.
                self.source = Some(leader);
                self.next_read = self.now;
                return;
            }
            if from != leader {
                // A newer leader than the one that called (which may never call again, with
                // nothing to trade): catch up with this one; its next call names its log's end.
                self.target = None;
            }
        }
        self.source = Some(from);
        // The table's confirmed point was never set past what a leader had acknowledged, and
        // acknowledged orders never change: compare from there, and confirm no further than
        // this page's leader has acknowledged (a leader taking over promises nothing yet).
        let confirmed = self.table.confirmed();
        let may_confirm = confirmed.max(page.acknowledged);
        let compared = match self.sweep.take() {
            Some((s, e, upto)) if s == from && e == page.epoch => upto.max(confirmed),
            _ => confirmed,
        };
        match follow(&mut self.table, compared, &page.orders) {
            Ok(Ok(f)) => {
                if f.undone > 0 {
                    log::warn!(
                        "catalog {}: dropped {} trades no order log recorded (the log went another way)",
                        self.cfg.id,
                        f.undone
                    );
                }
                for e in f.entries {
                    self.journal(e);
                }
                if let Some(e) = self.table.confirm(f.confirmed.min(may_confirm)) {
                    self.journal(e);
                }
                self.holding = Some((from, page.epoch, f.confirmed));
                let done = f.confirmed >= page.log_end;
                if done && page.copy_wanted {
                    // Read again (reporting this page's copy) as soon as it is durable.
                    self.hurry = true;
                    self.next_read = self.now.saturating_add(1).min(self.next_read);
                }
                if !done {
                    // More to read: at once, on from where this page ended.
                    self.sweep = Some((from, page.epoch, f.confirmed));
                    self.next_read = self.now;
                } else if let Some((_, epoch, log_end)) = self.target {
                    if page.log_end >= log_end {
                        self.serve(epoch, page.log_end);
                        if self.serving.is_some() {
                            self.target = None;
                        }
                    } else {
                        self.next_read = self.now;
                    }
                } else if self.role() == Role::CatchingUp {
                    // No leader has called yet: the leader's whole durable log (every order
                    // it acknowledged) is in the table, so lookups may be answered. A call
                    // with a longer log, or the first call of a new term, makes it catch up
                    // again first (`admit`).
                    self.serve(page.epoch, page.log_end);
                }
            }
            Ok(Err(Stall::Gap { from })) => {
                self.sweep = None;
                self.read_from = Some(from);
                self.next_read = self.now;
            }
            Ok(Err(Stall::Pending)) => {}
            Ok(Err(Stall::PastWindow)) => {
                log::error!(
                    "catalog {}: an unconfirmed trade left the trade window; it cannot follow the order log (reset needed)",
                    self.cfg.id
                );
            }
            Err(e) => log::warn!(
                "catalog {}: replica {from} sent a page it cannot follow: {e}",
                self.cfg.id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog_follow::tests::seeds;
    use crate::orderlog::Order;
    use crate::types::{RequestId, TradeKind};

    const ME: NodeId = 1;
    const LEADER: NodeId = 3;

    fn order(number: u64, rid: u128, quantity: u64) -> Order {
        Order {
            number,
            epoch: 5,
            rid: RequestId(rid),
            name: "FishCo".into(),
            kind: TradeKind::Buy,
            quantity,
            cseq: number + 1,
        }
    }

    fn trade(rid: u128, quantity: u64, epoch: Epoch) -> TradeRequest {
        TradeRequest {
            rid: RequestId(rid),
            name: "FishCo".into(),
            kind: TradeKind::Buy,
            quantity,
            epoch,
        }
    }

    /// A node, the leader's log as replica 3 holds it, and everything written, answered and
    /// pushed. Journal lines are durable at once; reads are answered from `log`.
    struct World {
        node: CatalogNode,
        now: Millis,
        log: Vec<Order>,
        acknowledged: u64,
        leader_epoch: Epoch,
        journal: Vec<JournalEntry>,
        answers: Vec<(Envelope, Result<Response, Error>)>,
        invalidated: usize,
        next_env: u64,
        /// Another catalog (id 2) when configured: its trades and its rid at any asked end.
        peer: Option<(Vec<TradeRecord>, Option<RequestId>)>,
        /// The leader's pages say it waits for a catalog copy.
        copy_wanted: bool,
        /// Refusals shared with the other catalog, and whether it is down.
        shared: Vec<Refusal>,
        peer_down: bool,
        /// The other catalog never answers a share.
        peer_silent: bool,
        /// Every read the node sent.
        reads: Vec<ReadOrders>,
    }

    impl World {
        /// A node with one other catalog (id 2) holding `tail`, which says `at` is its
        /// request id at the asked end.
        fn with_peer(log: Vec<Order>, tail: Vec<TradeRecord>, at: Option<RequestId>) -> World {
            let mut w = World::new(log);
            w.peer = Some((tail, at));
            let cfg = Config {
                peers: vec![2],
                ..w.node.cfg.clone()
            };
            let table = Catalog::new(&seeds(), 100).unwrap();
            w.node = CatalogNode::new(cfg, table, 0);
            w
        }

        fn new(log: Vec<Order>) -> World {
            let cfg = Config {
                id: ME,
                replicas: vec![2, LEADER],
                follow_every: 100,
                page: 2,
                read_timeout: 1000,
                serve_unsynced: false,
                peers: Vec::new(),
            };
            let table = Catalog::new(&seeds(), 100).unwrap();
            World {
                node: CatalogNode::new(cfg, table, 0),
                now: 0,
                acknowledged: log.len() as u64,
                log,
                leader_epoch: 5,
                journal: Vec::new(),
                answers: Vec::new(),
                invalidated: 0,
                next_env: 1,
                peer: None,
                copy_wanted: false,
                reads: Vec::new(),
                shared: Vec::new(),
                peer_down: false,
                peer_silent: false,
            }
        }

        /// Runs `event` and every effect it leads to (reads answered, lines made durable).
        fn run(&mut self, event: Event) {
            let mut queue = VecDeque::from([event]);
            while let Some(ev) = queue.pop_front() {
                for effect in self.node.step(self.now, ev) {
                    match effect {
                        Effect::Journal { ticket, entry } => {
                            self.journal.push(entry);
                            queue.push_back(Event::Durable(ticket));
                        }
                        Effect::Read { to, id, request } => {
                            self.reads.push(request);
                            let result = if to == LEADER {
                                let from = request.from as usize;
                                let end = (from + request.limit).min(self.log.len());
                                Ok(OrdersPage {
                                    orders: self.log[from.min(end)..end].to_vec(),
                                    log_end: self.log.len() as u64,
                                    acknowledged: self.acknowledged,
                                    leading: true,
                                    epoch: self.leader_epoch,
                                    copy_wanted: self.copy_wanted,
                                })
                            } else {
                                Ok(OrdersPage {
                                    orders: vec![],
                                    log_end: 0,
                                    acknowledged: 0,
                                    leading: false,
                                    epoch: self.leader_epoch,
                                    copy_wanted: false,
                                })
                            };
                            queue.push_back(Event::Reply {
                                from: to,
                                id,
                                result,
                            });
                        }
                        Effect::Respond { to, result } => self.answers.push((to, result)),
                        Effect::Invalidate(s) => self.invalidated += s.len(),
                        // The other catalog answers with `peer` (its tail and its rid at the
                        // asked end).
                        Effect::AskPeer { to, id, request } => {
                            let after = match request {
                                Request::PeerTrades { after } => after,
                                Request::ShareRefusals(_) if self.peer_silent => continue,
                                Request::ShareRefusals(r) => {
                                    let result = if self.peer_down {
                                        Err(Error::Unavailable("connection refused".into()))
                                    } else {
                                        let n = r.len() as u64;
                                        self.shared.extend(r);
                                        Ok(Response::RefusalsKept(n))
                                    };
                                    queue.push_back(Event::PeerReply {
                                        from: to,
                                        id,
                                        result,
                                    });
                                    continue;
                                }
                                other => unreachable!("not for a peer: {other:?}"),
                            };
                            let (tail, at) = self.peer.clone().expect("a peer configured");
                            let trades = tail.into_iter().filter(|t| t.seq > after).collect();
                            queue.push_back(Event::PeerReply {
                                from: to,
                                id,
                                result: Ok(Response::PeerTrades { trades, at }),
                            });
                        }
                    }
                }
            }
        }

        /// Ticks for `ms` in steps of 50.
        fn pass(&mut self, ms: Millis) {
            for _ in 0..ms / 50 {
                self.now += 50;
                self.run(Event::Tick);
            }
        }

        fn ask(&mut self, req: Request) -> Result<Response, Error> {
            let env = Envelope {
                from: 100,
                id: self.next_env,
            };
            self.next_env += 1;
            self.run(Event::Request(env, req));
            let i = self
                .answers
                .iter()
                .position(|(e, _)| *e == env)
                .expect("answered at once (journal lines are durable at once)");
            self.answers.remove(i).1
        }

        fn term(&mut self, epoch: Epoch, primary: NodeId) {
            let r = self.ask(Request::Term(CatalogTerm {
                epoch,
                primary: Some(primary),
            }));
            assert_eq!(r, Ok(Response::TermAccepted));
        }

        fn trades(&mut self, trades: Vec<TradeRequest>) -> Vec<Result<TradeOutcome, Error>> {
            let req = Request::Trades {
                leader: LEADER,
                epoch: self.leader_epoch,
                log_end: self.log.len() as u64,
                trades,
                catalog_epoch: None,
            };
            match self.ask(req) {
                Ok(Response::Traded(r)) => r,
                other => panic!("{other:?}"),
            }
        }

        /// Records trade answers in the log, as the leader does.
        fn record(&mut self, results: &[Result<TradeOutcome, Error>], rids: &[u128]) {
            for (r, rid) in results.iter().zip(rids) {
                let o = r.as_ref().expect("traded");
                assert_eq!(
                    o.seq,
                    self.log.len() as u64 + 1,
                    "numbered from the log's end"
                );
                self.log.push(order(o.seq - 1, *rid, o.quantity));
            }
            self.acknowledged = self.log.len() as u64;
        }

        fn fish(&self) -> u64 {
            self.node.table().stocks()[1].quantity
        }
    }

    fn unavailable(r: &Result<TradeOutcome, Error>) -> bool {
        matches!(r, Err(Error::Unavailable(_)))
    }

    #[test]
    fn a_standby_answers_nothing_and_follows_the_leaders_log() {
        let mut w = World::new((0..5).map(|n| order(n, 10 + u128::from(n), 2)).collect());
        w.term(1, 2);
        assert!(matches!(
            w.ask(Request::Lookup("FishCo".into())),
            Err(Error::Unavailable(_))
        ));
        assert!(unavailable(&w.trades(vec![trade(99, 1, 5)])[0]));
        w.pass(1000);
        assert_eq!(w.node.state().role, Role::Standby);
        assert_eq!((w.node.state().last_seq, w.node.state().confirmed), (5, 5));
        assert_eq!(w.fish(), 90);
        // More orders: it keeps following.
        w.log.push(order(5, 15, 1));
        w.acknowledged = 6;
        w.pass(500);
        assert_eq!((w.node.state().last_seq, w.fish()), (6, 89));
    }

    #[test]
    fn a_standby_reports_its_durable_copy_and_reads_again_at_once_while_the_leader_waits() {
        // One page's worth (two orders).
        let mut w = World::new((0..2).map(|n| order(n, 10 + u128::from(n), 2)).collect());
        // The leader holds its answers back until a catalog copy holds them.
        w.acknowledged = 0;
        w.copy_wanted = true;
        w.term(1, 2);
        w.run(Event::Tick);
        // The first read holds nothing yet; the page is durable at once here, so the next read
        // leaves at once and reports it.
        assert_eq!(w.reads[0].copy, None);
        let copy = CatalogCopy {
            catalog: ME,
            epoch: 5,
            upto: 2,
        };
        assert_eq!(w.reads.len(), 2, "{:?}", w.reads);
        assert_eq!(w.reads[1].copy, Some(copy));
        // The leader acknowledged them (the page that answered that read still asked for a
        // copy, so one more read follows a millisecond later): then one read every
        // `follow_every`.
        w.acknowledged = 2;
        w.copy_wanted = false;
        w.now += 1;
        w.run(Event::Tick);
        assert_eq!(w.reads.len(), 3);
        w.now += 50;
        w.run(Event::Tick);
        assert_eq!(w.reads.len(), 3);
        w.now += 60;
        w.run(Event::Tick);
        assert_eq!(w.reads.len(), 4);
        assert_eq!(w.reads[3].copy, Some(copy));
    }

    #[test]
    fn a_primary_answers_only_calls_made_in_its_catalog_epoch() {
        let mut w = World::new((0..3).map(|n| order(n, 10 + u128::from(n), 2)).collect());
        w.term(2, ME);
        w.pass(2000);
        assert_eq!(w.node.state().role, Role::Primary);
        let call = |catalog_epoch| Request::Trades {
            leader: LEADER,
            epoch: 5,
            log_end: 3,
            trades: vec![trade(20, 1, 5)],
            catalog_epoch,
        };
        // A leader that already holds catalog epoch 3 (or still holds 1): the answer would be
        // taken as made in its term, so it is refused (the leader retries).
        for other in [3, 1] {
            match w.ask(call(Some(other))) {
                Ok(Response::Traded(r)) => {
                    assert!(matches!(&r[0], Err(Error::Unavailable(m)) if m.contains("epoch")))
                }
                r => panic!("{r:?}"),
            }
        }
        assert_eq!(w.node.state().last_seq, 3, "nothing traded");
        match w.ask(call(Some(2))) {
            Ok(Response::Traded(r)) => assert_eq!(r[0].as_ref().unwrap().seq, 4),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn a_primary_answers_a_refusal_once_another_catalog_kept_it_and_a_standby_refuses_it_again() {
        let log: Vec<Order> = (0..3).map(|n| order(n, 10 + u128::from(n), 2)).collect();
        let mut w = World::with_peer(log.clone(), Vec::new(), None);
        w.term(2, ME);
        w.pass(2000);
        assert_eq!(w.node.state().role, Role::Primary);
        // 94 FishCo left: a buy of 200 is refused, and the refusal shared first.
        let r = w.trades(vec![trade(40, 200, 5)]);
        assert!(matches!(r[0], Err(Error::InsufficientQuantity { .. })));
        assert_eq!(w.shared.len(), 1);
        assert_eq!(w.shared[0].rid, RequestId(40));
        // The other catalog is down: the answer waits for it until the read timeout.
        w.peer_down = true;
        let env = Envelope { from: 100, id: 999 };
        let req = Request::Trades {
            leader: LEADER,
            epoch: 5,
            log_end: 3,
            trades: vec![trade(41, 300, 5)],
            catalog_epoch: None,
        };
        w.run(Event::Request(env, req));
        // (One failed answer from the only other catalog ends the wait at once.)
        assert!(w.answers.iter().any(|(e, _)| *e == env));

        // A standby that was told of refusal 40 refuses it again once it is primary, though
        // the stock could fill it by then.
        let mut s = World::new(log);
        let shared = w.shared.clone();
        assert_eq!(
            s.ask(Request::ShareRefusals(shared.clone())),
            Ok(Response::RefusalsKept(1))
        );
        assert_eq!(
            s.ask(Request::ShareRefusals(shared)),
            Ok(Response::RefusalsKept(0)),
            "kept once"
        );
        s.term(2, ME);
        s.pass(2000);
        let again = s.trades(vec![TradeRequest {
            kind: TradeKind::Sell,
            ..trade(42, 300, 5)
        }]);
        assert!(again[0].is_ok(), "300 more FishCo: {again:?}");
        let r = s.trades(vec![trade(40, 200, 5)]);
        assert!(
            matches!(
                &r[0],
                Err(Error::InsufficientQuantity { requested: 200, .. })
            ),
            "the same request id, the same answer: {r:?}"
        );
    }

    #[test]
    fn a_batch_waiting_for_its_refusal_to_be_kept_is_answered_after_the_timeout_or_a_new_term() {
        let log: Vec<Order> = (0..3).map(|n| order(n, 10 + u128::from(n), 2)).collect();
        let mut w = World::with_peer(log, Vec::new(), None);
        w.term(2, ME);
        w.pass(2000);
        w.peer_silent = true;
        let batch = |w: &mut World, id, rids: [u128; 2]| {
            let env = Envelope { from: 100, id };
            let req = Request::Trades {
                leader: LEADER,
                epoch: 5,
                log_end: 3,
                trades: vec![trade(rids[0], 1, 5), trade(rids[1], 500, 5)],
                catalog_epoch: None,
            };
            w.run(Event::Request(env, req));
            env
        };
        let answer = |w: &mut World, env| {
            let i = w.answers.iter().position(|(e, _)| *e == env)?;
            match w.answers.remove(i).1 {
                Ok(Response::Traded(r)) => Some(r),
                other => panic!("{other:?}"),
            }
        };
        // The other catalog is silent: the answer waits for it, then comes after the timeout.
        let first = batch(&mut w, 900, [50, 51]);
        assert!(answer(&mut w, first).is_none());
        w.pass(1000);
        let r = answer(&mut w, first).expect("answered after the read timeout");
        assert!(r[0].is_ok() && matches!(r[1], Err(Error::InsufficientQuantity { .. })));
        // A new term meanwhile: answered at once, the trade as unavailable (this catalog no
        // longer sequences), the refusal as it was.
        let second = batch(&mut w, 901, [52, 53]);
        assert!(answer(&mut w, second).is_none());
        w.term(3, 2);
        let r = answer(&mut w, second).expect("answered at the new term");
        assert!(matches!(r[0], Err(Error::Unavailable(_))), "{r:?}");
        assert!(matches!(r[1], Err(Error::InsufficientQuantity { .. })));
    }

    #[test]
    fn a_new_primary_catches_up_before_it_serves_then_numbers_from_the_logs_end() {
        let mut w = World::new((0..3).map(|n| order(n, 10 + u128::from(n), 2)).collect());
        // Made primary, it answers nothing until it has read the leader's log, which it does
        // on its own, before any call (the fake leader answers reads at once).
        assert!(matches!(
            w.node.step(0, Event::Request(Envelope { from: 7, id: 1 }, Request::Lookup("FishCo".into()))),
            fx if fx.iter().any(|e| matches!(e, Effect::Respond { result: Err(Error::Unavailable(_)), .. }))
        ));
        w.term(2, ME);
        // (The read the lookup started went unanswered above: it is given up after a second.)
        w.pass(2000);
        assert_eq!(w.node.state().role, Role::Primary);
        assert_eq!(w.fish(), 94, "the log's three trades");
        let r = w.trades(vec![trade(20, 1, 5), trade(21, 200, 5), trade(22, 3, 5)]);
        assert!(matches!(r[1], Err(Error::InsufficientQuantity { .. })));
        assert_eq!(r[0].as_ref().unwrap().seq, 4);
        assert_eq!(r[2].as_ref().unwrap().seq, 5);
        assert!(w.invalidated > 0, "durable trades are pushed");
        assert!(matches!(
            w.ask(Request::Lookup("FishCo".into())),
            Ok(Response::Stock(s)) if s.quantity == 90
        ));
        // An older leader is fenced; a newer one makes it catch up again.
        let old = w.ask(Request::Trades {
            leader: 2,
            epoch: 4,
            log_end: 3,
            trades: vec![trade(30, 1, 4)],
            catalog_epoch: None,
        });
        assert!(
            matches!(old, Ok(Response::Traded(r)) if matches!(r[0], Err(Error::Fenced { .. })))
        );
        w.leader_epoch = 6;
        w.record(&[r[0].clone(), r[2].clone()], &[20, 22]);
        let since = w.ask(Request::TradesSince {
            leader: LEADER,
            epoch: 6,
            log_end: 5,
            after: 3,
            limit: 10,
            catalog_epoch: None,
        });
        assert!(matches!(since, Err(Error::Unavailable(_))), "{since:?}");
        assert_eq!(
            w.node.state().role,
            Role::Primary,
            "caught up again at once here"
        );
    }

    #[test]
    fn a_deposed_primary_drops_what_no_log_recorded_and_follows() {
        let mut w = World::new((0..2).map(|n| order(n, 10 + u128::from(n), 2)).collect());
        w.term(2, ME);
        w.trades(vec![trade(20, 1, 5)]);
        let r = w.trades(vec![trade(20, 1, 5), trade(21, 1, 5)]);
        w.record(&r[..1], &[20]);
        assert_eq!(
            w.node.state().last_seq,
            4,
            "trade 4 (request 21) was never recorded"
        );
        // Another catalog became primary and sequenced order 3 differently.
        w.term(3, 2);
        w.log.push(order(3, 40, 7));
        w.acknowledged = 4;
        w.pass(500);
        assert_eq!(w.node.state().role, Role::Standby);
        assert_eq!(w.node.state().last_seq, 4);
        assert_eq!(w.node.table().rid_at(4), Some(RequestId(40)));
        assert_eq!(w.fish(), 100 - 2 - 2 - 1 - 7);
        assert!(w.journal.contains(&JournalEntry::Rollback { to: 3 }));
    }

    fn record(seq: u64, rid: u128, epoch: Epoch) -> TradeRecord {
        TradeRecord {
            seq,
            rid: RequestId(rid),
            name: "FishCo".into(),
            kind: TradeKind::Buy,
            quantity: 1,
            epoch,
        }
    }

    #[test]
    fn a_new_primary_takes_the_newer_tail_another_catalog_holds_past_the_log() {
        // The log has 3 orders; the other catalog (primary before) also holds trades 4 and 5
        // of a newer leader epoch, which that leader may have acknowledged before it died.
        let log: Vec<Order> = (0..3).map(|n| order(n, 10 + u128::from(n), 2)).collect();
        let tail = vec![record(4, 50, 6), record(5, 51, 6)];
        let mut w = World::with_peer(log.clone(), tail.clone(), Some(RequestId(12)));
        w.term(2, ME);
        w.pass(2000);
        assert_eq!(w.node.state().role, Role::Primary);
        assert_eq!(w.node.state().last_seq, 5, "took the peer's tail");
        assert_eq!(w.node.table().rid_at(4), Some(RequestId(50)));
        assert_eq!(w.fish(), 100 - 6 - 2);
        // The next leader (a newer epoch than the tail's) reads them back to record them:
        // its first call makes the node catch up with its log (answered at once here).
        w.leader_epoch = 7;
        let ask = Request::TradesSince {
            leader: LEADER,
            epoch: 7,
            log_end: 3,
            after: 3,
            limit: 10,
            catalog_epoch: None,
        };
        let first = w.ask(ask.clone());
        assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
        let since = w.ask(ask);
        assert!(
            matches!(&since, Ok(Response::Trades { trades, .. }) if trades.len() == 2),
            "{since:?}"
        );

        // A catalog that went another way before the log's end offers nothing.
        let mut w = World::with_peer(log, tail, Some(RequestId(99)));
        w.term(2, ME);
        w.pass(2000);
        assert_eq!(w.node.state().role, Role::Primary);
        assert_eq!(w.node.state().last_seq, 3);
    }

    #[test]
    fn terms_are_kept_and_older_ones_refused_and_the_journal_replays() {
        let mut w = World::new((0..4).map(|n| order(n, 10 + u128::from(n), 1)).collect());
        w.term(3, 2);
        assert!(matches!(
            w.ask(Request::Term(CatalogTerm {
                epoch: 2,
                primary: Some(ME)
            })),
            Err(Error::Fenced { .. })
        ));
        assert!(
            matches!(
                w.ask(Request::Term(CatalogTerm {
                    epoch: 3,
                    primary: Some(ME)
                })),
                Err(Error::Fenced { .. })
            ),
            "one primary per catalog epoch"
        );
        w.term(3, 2);
        w.pass(500);
        // A restart: the journal rebuilds the table, the term and the confirmed point.
        let mut again = Catalog::new(&seeds(), 100).unwrap();
        for e in w.journal.clone() {
            again.replay(e).unwrap();
        }
        assert_eq!(again.stocks(), w.node.table().stocks());
        assert_eq!(again.term(), w.node.table().term());
        assert_eq!(again.confirmed(), 4);
    }
}
