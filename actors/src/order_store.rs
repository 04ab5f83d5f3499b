//! The actor that owns one replica's order log and its durable files: `orders.jsonl` (one
//! order a line, group-committed) and `epoch.json` (the newest leader epoch this replica has
//! accepted, so a restart keeps fencing older leaders, rule 5).
//!
//! It knows nothing of HTTP or of peers: the replica's network side asks it to record an
//! order (leader), apply a batch (follower or catch-up), or serve a range (to a peer).

use crate::journal::{self, JournalWriter};
use crate::orderlog::{EntryId, Fit, Order, OrderLog};
use crate::types::{Epoch, RequestId, TradeKind};
use crate::{Error, Result};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

/// Name of the order log inside a replica's data folder.
pub const ORDERS_FILE: &str = "orders.jsonl";
/// Name of the epoch file inside a replica's data folder.
pub const EPOCH_FILE: &str = "epoch.json";

/// The leadership a replica has accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Epoch number; 0 before any election.
    pub epoch: Epoch,
    /// Id of that epoch's leader.
    pub leader: Option<u64>,
}

/// Owns the `OrderLog`; see the module docs.
pub struct OrderStore {
    log: OrderLog,
    term: Term,
    writer: JournalWriter,
    epoch_path: PathBuf,
    ticket: u64,
    durable_ticket: u64,
    waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// Leader only: orders whose catalog trade came back ahead of an earlier one, held until
    /// the numbers before them are recorded (orders are appended in number order).
    pending: BTreeMap<u64, (Order, Vec<oneshot::Sender<()>>)>,
    pending_rids: HashMap<RequestId, u64>,
}

/// A replica's files read, not yet running: loading (which may fail and is best done before
/// serving) is apart from starting the actor (which the replica does on its HTTP worker's
/// thread).
pub struct LoadedStore {
    log: OrderLog,
    term: Term,
    file: std::fs::File,
    path: PathBuf,
    epoch_path: PathBuf,
    fsync: bool,
}

impl LoadedStore {
    /// Loads `dir/orders.jsonl` (cutting a torn tail) and `dir/epoch.json`. Corruption stops
    /// it with the file and line.
    pub fn load(dir: &Path, fsync: bool) -> Result<LoadedStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(ORDERS_FILE);
        let mut log = OrderLog::default();
        let (file, len) = journal::load_each::<Order>(&path, |line, order| {
            log.load(order).map_err(|reason| Error::Corrupt {
                path: path.clone(),
                line,
                reason,
            })
        })?;
        log.set_file_len(len);
        release_freed_memory();

        let epoch_path = dir.join(EPOCH_FILE);
        let term = match std::fs::read(&epoch_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: epoch_path.clone(),
                line: e.line(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Term::default(),
            Err(e) => return Err(Error::io(format!("read {}", epoch_path.display()), e)),
        };
        log::info!(
            "order log {} loaded: {} orders, last {:?}, epoch {}{}",
            path.display(),
            log.len(),
            log.last(),
            term.epoch,
            if fsync {
                ""
            } else {
                "; fsync is OFF (benchmarks only)"
            }
        );
        Ok(LoadedStore {
            log,
            term,
            file,
            path,
            epoch_path,
            fsync,
        })
    }

    /// Starts the actor (and its writer thread) on the current arbiter.
    pub fn start(self) -> Addr<OrderStore> {
        let LoadedStore {
            log,
            term,
            file,
            path,
            epoch_path,
            fsync,
        } = self;
        OrderStore::create(move |ctx| {
            let addr = ctx.address();
            let writer = JournalWriter::spawn(
                &path,
                file,
                fsync,
                Box::new(move |upto| addr.do_send(Durable(upto))),
            );
            OrderStore {
                log,
                term,
                writer,
                epoch_path,
                ticket: 0,
                durable_ticket: 0,
                waiters: BTreeMap::new(),
                pending: BTreeMap::new(),
                pending_rids: HashMap::new(),
            }
        })
    }
}

impl OrderStore {
    /// Loads `dir/orders.jsonl` (cutting a torn tail) and `dir/epoch.json`, and starts the
    /// actor on the current arbiter. Corruption stops it with the file and line.
    pub fn start(dir: &Path, fsync: bool) -> Result<Addr<OrderStore>> {
        Ok(LoadedStore::load(dir, fsync)?.start())
    }

    fn write(&mut self, line: Vec<u8>) -> oneshot::Receiver<()> {
        self.ticket += 1;
        self.writer.append(self.ticket, line);
        self.when_written()
    }

    /// Resolves once everything written so far is durable.
    fn when_written(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if self.ticket <= self.durable_ticket {
            let _ = tx.send(());
        } else {
            self.waiters.entry(self.ticket).or_default().push(tx);
        }
        rx
    }

    /// Appends every held order whose turn has come.
    fn release_pending(&mut self) {
        while let Some((order, waiting)) = self.pending.remove(&self.log.next_number()) {
            self.pending_rids.remove(&order.rid);
            let line = self.log.append(order);
            self.ticket += 1;
            self.writer.append(self.ticket, line);
            self.waiters.entry(self.ticket).or_default().extend(waiting);
        }
    }

    /// Drops held orders (leadership moved on); their callers see an error and retry.
    fn drop_pending(&mut self) {
        if !self.pending.is_empty() {
            log::info!(
                "dropping {} held orders of an older term",
                self.pending.len()
            );
        }
        self.pending.clear();
        self.pending_rids.clear();
    }

    fn state(&self) -> StoreState {
        StoreState {
            last: self.log.last(),
            next: self.log.next_number(),
            term: self.term,
            gap: self
                .pending
                .keys()
                .next()
                .map(|first| (self.log.next_number(), *first)),
        }
    }

    /// Accepts `term` if it is not older; persists it. Same epoch with another leader is a
    /// conflict and refused.
    fn accept_term(&mut self, term: Term) -> Result<Option<oneshot::Receiver<Result<()>>>> {
        if term.epoch < self.term.epoch
            || (term.epoch == self.term.epoch
                && term.leader != self.term.leader
                && self.term.epoch > 0)
        {
            return Err(Error::Fenced {
                got: term.epoch,
                known: self.term.epoch,
            });
        }
        if term == self.term {
            return Ok(None);
        }
        self.drop_pending();
        self.term = term;
        let bytes = serde_json::to_vec(&term).expect("serialize term");
        Ok(Some(self.writer.replace(
            self.epoch_path.clone(),
            bytes,
            false,
        )))
    }
}

/// Loading parses the whole file through short-lived buffers; hand the freed heap back to the
/// system so a replica with a large log stays small at rest (glibc keeps it otherwise).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Actor for OrderStore {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Durable(u64);

impl Handler<Durable> for OrderStore {
    type Result = ();
    fn handle(&mut self, msg: Durable, _: &mut Context<Self>) {
        self.durable_ticket = msg.0;
        let later = self.waiters.split_off(&(msg.0 + 1));
        for tx in std::mem::replace(&mut self.waiters, later)
            .into_values()
            .flatten()
        {
            let _ = tx.send(());
        }
    }
}

/// A replica's log position and term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Last entry held.
    pub last: Option<EntryId>,
    /// Number the next order would get.
    pub next: u64,
    /// Accepted leadership.
    pub term: Term,
    /// Leader only: `(first missing, first held)` when orders are held behind a missing one.
    pub gap: Option<(u64, u64)>,
}

/// Asks for the store's position and term.
#[derive(Message)]
#[rtype(result = "StoreState")]
pub struct GetState;

impl Handler<GetState> for OrderStore {
    type Result = MessageResult<GetState>;
    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state())
    }
}

/// Reads one order.
#[derive(Message)]
#[rtype(result = "Option<Order>")]
pub struct GetOrder(pub u64);

impl Handler<GetOrder> for OrderStore {
    type Result = Option<Order>;
    fn handle(&mut self, msg: GetOrder, _: &mut Context<Self>) -> Option<Order> {
        self.log.get(msg.0)
    }
}

/// Accepts a new leadership term (from the front end's announcement).
#[derive(Message)]
#[rtype(result = "Result<bool>")]
pub struct Adopt(pub Term);

impl Handler<Adopt> for OrderStore {
    type Result = ResponseFuture<Result<bool>>;
    fn handle(&mut self, msg: Adopt, _: &mut Context<Self>) -> Self::Result {
        let done = self.accept_term(msg.0);
        Box::pin(async move {
            match done? {
                None => Ok(false),
                Some(rx) => rx
                    .await
                    .map_err(|_| Error::Unavailable("writer stopped".into()))?
                    .map(|_| true),
            }
        })
    }
}

/// The leader records a trade the catalog applied.
#[derive(Message)]
#[rtype(result = "Result<Recorded>")]
pub struct Record {
    /// The leader's epoch; must be the store's current one.
    pub epoch: Epoch,
    /// Request id.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Buy or sell.
    pub kind: TradeKind,
    /// Units.
    pub quantity: u64,
    /// The catalog's trade sequence number.
    pub cseq: u64,
}

/// What `Record` did.
#[derive(Debug)]
pub struct Recorded {
    /// The order (the earlier one, when the request id was already recorded).
    pub order: Order,
    /// False when the request id was already recorded.
    pub fresh: bool,
    /// Resolves once the order is on this replica's disk.
    pub durable: oneshot::Receiver<()>,
}

impl Handler<Record> for OrderStore {
    type Result = Result<Recorded>;
    fn handle(&mut self, msg: Record, _: &mut Context<Self>) -> Result<Recorded> {
        if msg.epoch != self.term.epoch {
            return Err(Error::NotLeader(format!(
                "epoch {} is not the current epoch {}",
                msg.epoch, self.term.epoch
            )));
        }
        if let Some(order) = self.log.find(msg.rid).and_then(|n| self.log.get(n)) {
            // Durable once everything written so far is: conservative, and rare.
            return Ok(Recorded {
                order,
                fresh: false,
                durable: self.when_written(),
            });
        }
        if let Some(n) = self.pending_rids.get(&msg.rid).copied() {
            let (tx, durable) = oneshot::channel();
            let entry = self.pending.get_mut(&n).expect("indexed pending order");
            entry.1.push(tx);
            return Ok(Recorded {
                order: entry.0.clone(),
                fresh: false,
                durable,
            });
        }
        if msg.quantity > crate::catalog::MAX_TRADE_QUANTITY {
            return Err(Error::BadRequest(format!(
                "quantity {} is too large",
                msg.quantity
            )));
        }
        let number = msg
            .cseq
            .checked_sub(1)
            .ok_or_else(|| Error::BadRequest("catalog trade numbers start at 1".into()))?;
        if number < self.log.next_number() {
            let held = self.log.get(number).map(|o| o.rid);
            return Err(Error::Io(format!(
                "catalog trade {} is request {} but order {number} already records request {:?}",
                msg.cseq, msg.rid, held
            )));
        }
        let order = Order {
            number,
            epoch: msg.epoch,
            rid: msg.rid,
            name: msg.name,
            kind: msg.kind,
            quantity: msg.quantity,
            cseq: msg.cseq,
        };
        let (tx, durable) = oneshot::channel();
        self.pending_rids.insert(order.rid, number);
        self.pending.insert(number, (order.clone(), vec![tx]));
        self.release_pending();
        Ok(Recorded {
            order,
            fresh: true,
            durable,
        })
    }
}

/// Orders after `after`, at most `limit` (for a follower or a recovering peer).
#[derive(Message)]
#[rtype(result = "Since")]
pub struct GetSince {
    /// The asker's last entry (None: from the start).
    pub after: Option<EntryId>,
    /// Page size.
    pub limit: usize,
}

/// A page of orders, or a mismatch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Since {
    /// The orders; `None` when the asker's entry does not match ours.
    pub orders: Option<Vec<Order>>,
    /// Our last entry.
    pub last: Option<EntryId>,
}

impl Handler<GetSince> for OrderStore {
    type Result = MessageResult<GetSince>;
    fn handle(&mut self, msg: GetSince, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Since {
            orders: self.log.since(msg.after, msg.limit),
            last: self.log.last(),
        })
    }
}

/// Applies a batch from a leader (with its term) or from a peer during catch-up (no term).
#[derive(Message)]
#[rtype(result = "Result<Applied>")]
pub struct Apply {
    /// The sending leader's term; older than ours is fenced, newer is adopted.
    pub term: Option<Term>,
    /// The entry just before the batch (None: the batch starts at order 0).
    pub prev: Option<EntryId>,
    /// The orders, consecutive.
    pub orders: Vec<Order>,
}

/// What `Apply` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Applied {
    /// False when `prev` did not match: this replica must catch up first.
    pub matched: bool,
    /// Orders dropped because a newer epoch wrote those numbers.
    pub dropped: u64,
    /// Our last entry afterwards (durable when `matched`).
    pub last: Option<EntryId>,
}

impl Handler<Apply> for OrderStore {
    type Result = ResponseFuture<Result<Applied>>;
    fn handle(&mut self, msg: Apply, _: &mut Context<Self>) -> Self::Result {
        let term_written = match msg.term.map(|t| self.accept_term(t)).transpose() {
            Ok(w) => w.flatten(),
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (truncate_from, skip) = match self.log.fit(msg.prev, &msg.orders) {
            Fit::Mismatch => {
                let last = self.log.last();
                return Box::pin(async move {
                    Ok(Applied {
                        matched: false,
                        dropped: 0,
                        last,
                    })
                });
            }
            Fit::Apply {
                truncate_from,
                skip,
            } => (truncate_from, skip),
        };
        let mut dropped = 0;
        let mut cut = None;
        if let Some(from) = truncate_from {
            dropped = self.log.next_number() - from;
            log::warn!(
                "dropping orders {from}..{} that only this replica held (a newer epoch wrote those numbers)",
                self.log.next_number() - 1
            );
            cut = Some(self.writer.truncate(self.log.truncate(from)));
        }
        let mut durable = None;
        for o in msg.orders.into_iter().skip(skip) {
            let line = self.log.append(o);
            durable = Some(self.write(line));
        }
        let last = self.log.last();
        Box::pin(async move {
            let stopped = |_| Error::Unavailable("order log writer stopped".into());
            if let Some(rx) = term_written {
                rx.await.map_err(stopped)??;
            }
            if let Some(rx) = cut {
                rx.await.map_err(stopped)??;
            }
            if let Some(rx) = durable {
                rx.await.map_err(stopped)?;
            }
            Ok(Applied {
                matched: true,
                dropped,
                last,
            })
        })
    }
}

/// The identity of our entry `n`, if held (for the binary search of a catch-up).
#[derive(Message)]
#[rtype(result = "Option<EntryId>")]
pub struct IdAt(pub u64);

impl Handler<IdAt> for OrderStore {
    type Result = Option<EntryId>;
    fn handle(&mut self, msg: IdAt, _: &mut Context<Self>) -> Option<EntryId> {
        self.log.id_at(msg.0)
    }
}

/// Drops every entry after `keep`, but only if our last entry is still `seen` (a leader's
/// push may have extended the log meanwhile). Returns how many were dropped.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
pub struct TruncateAfter {
    /// Last entry to keep (None: drop everything).
    pub keep: Option<EntryId>,
    /// The last entry the caller saw.
    pub seen: Option<EntryId>,
}

impl Handler<TruncateAfter> for OrderStore {
    type Result = ResponseFuture<Result<u64>>;
    fn handle(&mut self, msg: TruncateAfter, _: &mut Context<Self>) -> Self::Result {
        let from = msg.keep.map_or(0, |k| k.number + 1);
        if self.log.last() != msg.seen || from >= self.log.next_number() {
            return Box::pin(async { Ok(0) });
        }
        let dropped = self.log.next_number() - from;
        log::warn!(
            "dropping orders {from}..{} that only this replica held (a newer epoch wrote past them)",
            self.log.next_number() - 1
        );
        let cut = self.writer.truncate(self.log.truncate(from));
        Box::pin(async move {
            cut.await
                .map_err(|_| Error::Unavailable("order log writer stopped".into()))??;
            Ok(dropped)
        })
    }
}

/// Finds the order recorded under a request id.
#[derive(Message)]
#[rtype(result = "Option<Order>")]
pub struct FindRequest(pub RequestId);

impl Handler<FindRequest> for OrderStore {
    type Result = Option<Order>;
    fn handle(&mut self, msg: FindRequest, _: &mut Context<Self>) -> Option<Order> {
        self.log.find(msg.0).and_then(|n| self.log.get(n))
    }
}
