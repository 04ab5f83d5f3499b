//! The actor that owns the catalog: it loads the snapshot and journal at start, journals each
//! accepted trade (and each refusal, and each new fencing epoch) through the group-commit
//! writer, answers a trade or a refusal only once it is durable, and then hands the changed
//! stocks to whoever pushes invalidations.
//!
//! Every journal line gets a ticket, in order; the writer reports the highest durable ticket,
//! and the tickets of trade lines say which trades that makes durable.

use crate::catalog::{Accepted, Catalog, JournalEntry, Snapshot};
use crate::journal::{self, JournalWriter, OnSync};
use crate::types::{Epoch, StockSeed};
use crate::wire::catalog::{TradeOutcome, TradeRequest, TradesPage};
use crate::wire::frontend::Stock;
use crate::{Error, Result};
use actix::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

/// Name of the catalog's journal inside its data folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Name of the catalog's snapshot inside its data folder.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// How the catalog actor is set up.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// Folder holding the journal and snapshot.
    pub dir: PathBuf,
    /// Stocks to start with when the folder is empty.
    pub seeds: Vec<StockSeed>,
    /// fsync each batch (false only for benchmarks).
    pub fsync: bool,
    /// How many recent trades are kept for de-duplication and reconciliation.
    pub trade_window: usize,
    /// Write a snapshot (and empty the journal) after this many trades.
    pub snapshot_every: u64,
}

/// Stocks whose durable state changed, sent after each durable batch.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Invalidated {
    /// The changed stocks with their new versions.
    pub stocks: Vec<Stock>,
}

/// A catalog read from its files, not yet running: loading (which may fail and is best done
/// before serving) is apart from starting the actor (which a service may want to do on a
/// particular thread).
pub struct LoadedCatalog {
    catalog: Catalog,
    file: std::fs::File,
    journal_path: PathBuf,
    snapshot_path: PathBuf,
    replayed: usize,
    opts: CatalogOptions,
    on_sync: Option<OnSync>,
}

impl LoadedCatalog {
    /// Loads the snapshot, then the journal (cutting a torn tail). Fails with the file and
    /// line on corruption.
    pub fn load(opts: CatalogOptions) -> Result<LoadedCatalog> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| Error::io(format!("create {}", opts.dir.display()), e))?;
        let snapshot_path = opts.dir.join(SNAPSHOT_FILE);
        let mut catalog = match read_snapshot(&snapshot_path)? {
            Some(snap) => Catalog::from_snapshot(snap, opts.trade_window)?,
            None => Catalog::new(&opts.seeds, opts.trade_window)?,
        };
        let journal_path = opts.dir.join(JOURNAL_FILE);
        let mut replayed = 0;
        let (file, _) = journal::load_each::<JournalEntry>(&journal_path, |line, entry| {
            replayed += 1;
            catalog.replay(entry).map_err(|e| Error::Corrupt {
                path: journal_path.clone(),
                line,
                reason: e.to_string(),
            })
        })?;
        log::info!(
            "catalog loaded: {} stocks, last trade {}, epoch {}, {} journal entries replayed{}",
            catalog.stocks().len(),
            catalog.last_seq(),
            catalog.epoch(),
            replayed,
            if opts.fsync {
                ""
            } else {
                "; fsync is OFF (benchmarks only): a crash can lose acknowledged trades"
            }
        );
        Ok(LoadedCatalog {
            catalog,
            file,
            journal_path,
            snapshot_path,
            replayed,
            opts,
            on_sync: None,
        })
    }

    /// The table, its journal's open file and path, and the snapshot's path, for a driver of
    /// its own (`CatalogNode`'s, in a catalog group). The replayed journal is not folded into
    /// a snapshot: the driver does that on its first durable batch.
    pub fn into_parts(self) -> (Catalog, std::fs::File, PathBuf, PathBuf, Option<OnSync>) {
        (
            self.catalog,
            self.file,
            self.journal_path,
            self.snapshot_path,
            self.on_sync,
        )
    }

    /// Has the journal's writer thread report every group commit to `on_sync` (metrics).
    pub fn observe_syncs(mut self, on_sync: OnSync) -> LoadedCatalog {
        self.on_sync = Some(on_sync);
        self
    }

    /// Starts the actor (and its journal writer thread) on the current arbiter.
    pub fn start(self, publish: Option<Recipient<Invalidated>>) -> Addr<CatalogActor> {
        let LoadedCatalog {
            catalog,
            file,
            journal_path,
            snapshot_path,
            replayed,
            opts,
            on_sync,
        } = self;
        let snapshot_seq = catalog.last_seq();
        Actor::create(move |ctx| {
            let addr = ctx.address();
            let writer = JournalWriter::spawn_observed(
                &journal_path,
                file,
                opts.fsync,
                Box::new(move |upto| addr.do_send(Durable { upto })),
                on_sync,
            );
            if replayed > 0 || !snapshot_path.exists() {
                // Fold the replayed journal into a snapshot so the next start reads less.
                let bytes = serde_json::to_vec(&catalog.snapshot()).expect("serialize snapshot");
                let done = writer.replace(snapshot_path.clone(), bytes, true);
                actix::spawn(async move {
                    if let Ok(Err(e)) = done.await {
                        log::error!("catalog start-up snapshot failed: {e}");
                    }
                });
            }
            CatalogActor {
                catalog,
                writer,
                waiters: BTreeMap::new(),
                ticket: 0,
                durable_ticket: 0,
                pending: VecDeque::new(),
                publish,
                snapshot_path,
                snapshot_every: opts.snapshot_every.max(1),
                snapshot_seq,
                counters: CatalogCounters::default(),
            }
        })
    }
}

/// Owns the `Catalog` and its journal.
pub struct CatalogActor {
    catalog: Catalog,
    writer: JournalWriter,
    /// Answers waiting for a ticket to be durable.
    waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// The last ticket given to a journal line.
    ticket: u64,
    /// The highest durable ticket.
    durable_ticket: u64,
    /// Trades not yet durable: (ticket, trade sequence number).
    pending: VecDeque<(u64, u64)>,
    publish: Option<Recipient<Invalidated>>,
    snapshot_path: PathBuf,
    snapshot_every: u64,
    snapshot_seq: u64,
    counters: CatalogCounters,
}

/// What the catalog answered since it started, for metrics (`/metrics` reads them through
/// `GetStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatalogCounters {
    /// New trades accepted.
    pub trades: u64,
    /// Buys refused for want of quantity (journaled; a repeated one counts as a replay).
    pub refusals: u64,
    /// Requests whose id was seen before, answered with the first answer.
    pub replays: u64,
    /// Trades refused because they came from an older leader's epoch.
    pub fenced: u64,
}

impl CatalogActor {
    /// Loads the catalog from `opts.dir` and starts its actor on the current arbiter.
    pub fn start(
        opts: CatalogOptions,
        publish: Option<Recipient<Invalidated>>,
    ) -> Result<Addr<Self>> {
        Ok(LoadedCatalog::load(opts)?.start(publish))
    }

    /// Resolves once the journal line with `ticket` (and every one before it) is durable.
    fn wait_durable(&mut self, ticket: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if ticket <= self.durable_ticket {
            let _ = tx.send(());
        } else {
            self.waiters.entry(ticket).or_default().push(tx);
        }
        rx
    }

    /// The ticket after which trade `seq` is durable (a barrier on everything journaled so far
    /// when it is not pending any more, which is immediate).
    fn ticket_of(&self, seq: u64) -> u64 {
        self.pending
            .iter()
            .find(|(_, s)| *s == seq)
            .map_or(self.durable_ticket.min(self.ticket), |(t, _)| *t)
    }

    fn journal(&mut self, entry: &JournalEntry) -> u64 {
        self.ticket += 1;
        self.writer.append(
            self.ticket,
            serde_json::to_vec(entry).expect("serialize journal entry"),
        );
        self.ticket
    }
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                line: e.line(),
                reason: format!("unreadable snapshot ({e})"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

impl Actor for CatalogActor {
    type Context = Context<Self>;
}

/// Internal: the writer thread made every entry up to `upto` durable.
#[derive(Message)]
#[rtype(result = "()")]
struct Durable {
    upto: u64,
}

impl Handler<Durable> for CatalogActor {
    type Result = ();
    fn handle(&mut self, msg: Durable, _: &mut Context<Self>) {
        self.durable_ticket = self.durable_ticket.max(msg.upto);
        let mut seq = None;
        while self.pending.front().is_some_and(|(t, _)| *t <= msg.upto) {
            seq = self.pending.pop_front().map(|(_, s)| s);
        }
        let changed = seq.map_or_else(Vec::new, |s| self.catalog.mark_durable(s));
        let later = self.waiters.split_off(&(msg.upto + 1));
        for tx in std::mem::replace(&mut self.waiters, later)
            .into_values()
            .flatten()
        {
            let _ = tx.send(());
        }
        if !changed.is_empty() {
            if let Some(publish) = &self.publish {
                publish.do_send(Invalidated { stocks: changed });
            }
        }
        if self.catalog.last_seq() >= self.snapshot_seq + self.snapshot_every {
            self.snapshot_seq = self.catalog.last_seq();
            let bytes = serde_json::to_vec(&self.catalog.snapshot()).expect("serialize snapshot");
            let done = self.writer.replace(self.snapshot_path.clone(), bytes, true);
            let seq = self.snapshot_seq;
            actix::spawn(async move {
                match done.await {
                    Ok(Ok(())) => {
                        log::info!("catalog snapshot written at trade {seq}; journal emptied")
                    }
                    Ok(Err(e)) => log::error!("catalog snapshot failed: {e}"),
                    Err(_) => {}
                }
            });
        }
    }
}

/// Looks up one stock's durable state.
#[derive(Message)]
#[rtype(result = "Result<Stock>")]
pub struct Lookup(pub String);

impl Handler<Lookup> for CatalogActor {
    type Result = Result<Stock>;
    fn handle(&mut self, msg: Lookup, _: &mut Context<Self>) -> Result<Stock> {
        self.catalog.lookup(&msg.0).cloned()
    }
}

/// Applies a trade; answers once it is durable.
#[derive(Message)]
#[rtype(result = "Result<TradeOutcome>")]
pub struct Trade(pub TradeRequest);

impl Handler<Trade> for CatalogActor {
    type Result = ResponseActFuture<Self, Result<TradeOutcome>>;
    fn handle(&mut self, msg: Trade, _: &mut Context<Self>) -> Self::Result {
        let (seq, ticket) = match self.catalog.trade(&msg.0) {
            Ok(Accepted::New(entry, seq)) => {
                self.counters.trades += 1;
                let ticket = self.journal(&entry);
                self.pending.push_back((ticket, seq));
                (seq, ticket)
            }
            Ok(Accepted::Seen(seq)) => {
                self.counters.replays += 1;
                (seq, self.ticket_of(seq))
            }
            Ok(Accepted::Refused(entry, err)) => {
                match entry {
                    Some(_) => self.counters.refusals += 1,
                    None => self.counters.replays += 1,
                }
                // Answered once the refusal is durable, so a client told "refused" is never
                // traded later under the same request id (a restart replays the refusal).
                let ticket = match entry {
                    Some(entry) => self.journal(&entry),
                    None => self.ticket,
                };
                let durable = self.wait_durable(ticket);
                return Box::pin(durable.into_actor(self).map(move |r, _, _| {
                    r.map_err(|_| Error::Unavailable("catalog journal stopped".into()))?;
                    Err(err)
                }));
            }
            Err(e) => {
                if matches!(e, Error::Fenced { .. }) {
                    self.counters.fenced += 1;
                }
                return Box::pin(fut::ready(Err(e)));
            }
        };
        let durable = self.wait_durable(ticket);
        Box::pin(durable.into_actor(self).map(move |r, act, _| {
            r.map_err(|_| Error::Unavailable("catalog journal stopped".into()))?;
            act.catalog
                .outcome(seq)
                .ok_or_else(|| Error::Unavailable(format!("trade {seq} left the window")))
        }))
    }
}

/// Durable trades after `after`, once every trade accepted so far is durable. Carries the
/// asking leader's epoch, which fences older leaders from trading from now on.
#[derive(Message)]
#[rtype(result = "Result<TradesPage>")]
pub struct TradesAfter {
    /// Return trades with a larger sequence number.
    pub after: u64,
    /// The asking leader's epoch.
    pub epoch: Epoch,
    /// At most this many.
    pub limit: usize,
}

impl Handler<TradesAfter> for CatalogActor {
    type Result = ResponseActFuture<Self, Result<TradesPage>>;
    fn handle(&mut self, msg: TradesAfter, _: &mut Context<Self>) -> Self::Result {
        match self.catalog.observe_epoch(msg.epoch) {
            Ok(Some(entry)) => {
                log::info!(
                    "catalog: leader epoch is now {}; older leaders are fenced",
                    msg.epoch
                );
                self.journal(&entry);
            }
            Ok(None) => {}
            Err(e) => return Box::pin(fut::ready(Err(e))),
        }
        // A barrier: trades accepted before this point (and the new epoch) are reported only
        // once durable.
        let durable = self.wait_durable(self.ticket);
        Box::pin(durable.into_actor(self).map(move |r, act, _| {
            r.map_err(|_| Error::Unavailable("catalog journal stopped".into()))?;
            let (trades, complete) = act.catalog.trades_after(msg.after, msg.limit);
            Ok(TradesPage {
                trades,
                complete,
                last_seq: act.catalog.durable_seq(),
            })
        }))
    }
}

/// The table's part of the catalog's `/status` (the service adds its incarnation and
/// subscribers to make `wire::catalog::CatalogStatus`).
#[derive(Debug, Clone)]
pub struct TableStatus {
    /// Last durable trade.
    pub last_seq: u64,
    /// Newest leader epoch seen.
    pub epoch: Epoch,
    /// Every stock, durable state.
    pub stocks: Vec<Stock>,
    /// What it answered since it started.
    pub counters: CatalogCounters,
}

/// Asks for the catalog's status.
#[derive(Message)]
#[rtype(result = "TableStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for CatalogActor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(TableStatus {
            last_seq: self.catalog.durable_seq(),
            epoch: self.catalog.epoch(),
            stocks: self.catalog.stocks().to_vec(),
            counters: self.counters,
        })
    }
}
