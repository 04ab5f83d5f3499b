//! The catalog's stock table as a pure state machine: trades checked and applied atomically,
//! de-duplicated by request id, and made visible to readers only once durable.
//!
//! Two copies of the table are kept. `working` includes every trade accepted so far and is what
//! a new trade is checked against, so two buys can never both take the last unit (no
//! check-then-act across an await). `durable` includes only trades the journal has synced and
//! is what lookups and invalidations show (rule 8): a reader never sees a quantity a crash could
//! take back. The recent durable trades are kept by request id, so the same request id returns
//! the first answer, and a new order leader can ask which trades happened after the last one it
//! recorded (rule 3).

use crate::replication::CatalogTerm;
use crate::types::{Epoch, RequestId, StockSeed, TradeKind};
use crate::wire::catalog::{TradeOutcome, TradeRecord, TradeRequest};
use crate::wire::frontend::Stock;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Largest quantity one trade may move (order logs store quantities in 32 bits).
pub const MAX_TRADE_QUANTITY: u64 = u32::MAX as u64;

/// One line of the catalog's journal. A trade line is the wire's `TradeRecord` with `"op":
/// "trade"` added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum JournalEntry {
    /// A trade applied to the table.
    Trade(TradeRecord),
    /// The newest leader epoch seen, so a restarted catalog keeps fencing old leaders.
    Epoch {
        /// The epoch.
        epoch: Epoch,
    },
    /// A buy refused for want of quantity, so that the same request id (an Idempotency-Key)
    /// is refused the same way after a restart, never traded later (rule 2).
    Refusal(Refusal),
    /// Every trade after `to` was undone: trades no order log recorded, dropped when the
    /// catalog follows a log that went another way (`docs/catalog-failover.md`).
    Rollback {
        /// The last trade kept.
        to: u64,
    },
    /// The catalog term this catalog accepted (it refuses older ones after a restart too).
    Term(CatalogTerm),
    /// Every trade up to `upto` matches the order log (the point to read it from next).
    Confirmed {
        /// The last trade confirmed.
        upto: u64,
    },
}

/// A refused buy, as journaled and kept in the snapshot's window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// The request id refused.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Units asked for.
    pub quantity: u64,
    /// Units left when it was refused.
    pub available: u64,
}

impl Refusal {
    fn error(&self) -> Error {
        Error::InsufficientQuantity {
            name: self.name.clone(),
            requested: self.quantity,
            available: self.available,
        }
    }
}

/// What `Catalog::trade` decided.
#[derive(Debug, PartialEq)]
pub enum Accepted {
    /// A new trade: journal this entry, then wait for `seq` to become durable.
    New(JournalEntry, u64),
    /// The request id was seen before: wait for `seq` to become durable, then answer.
    Seen(u64),
    /// Refused: journal the entry (when new), wait until it is durable, then answer the error,
    /// so that a refusal a client was told survives a crash.
    Refused(Option<JournalEntry>, Error),
}

/// Everything the catalog needs to start without replaying its whole history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The last trade sequence number included.
    pub seq: u64,
    /// Newest epoch seen.
    pub epoch: Epoch,
    /// The table.
    pub stocks: Vec<Stock>,
    /// The most recent trades, oldest first (the de-duplication window).
    pub trades: Vec<TradeRecord>,
    /// The most recent refusals, oldest first.
    #[serde(default)]
    pub refusals: Vec<Refusal>,
    /// The catalog term accepted (catalog failover; default for a single catalog).
    #[serde(default)]
    pub term: CatalogTerm,
    /// Every trade up to this one matches the order log.
    #[serde(default)]
    pub confirmed: u64,
}

/// The stock table with its trade window; see the module docs.
#[derive(Debug)]
pub struct Catalog {
    durable: Vec<Stock>,
    working: Vec<Stock>,
    index: HashMap<String, usize>,
    pending: VecDeque<TradeRecord>,
    window: VecDeque<TradeRecord>,
    by_rid: HashMap<RequestId, u64>,
    /// Refused buys by request id, so the same request id is refused again the same way
    /// (journaled, as many as the trade window).
    refused: HashMap<RequestId, Refusal>,
    refused_order: VecDeque<RequestId>,
    window_cap: usize,
    last_seq: u64,
    durable_seq: u64,
    epoch: Epoch,
    term: CatalogTerm,
    confirmed: u64,
}

impl Catalog {
    /// A fresh catalog from the configured seeds. Duplicate names are refused.
    pub fn new(seeds: &[StockSeed], window_cap: usize) -> Result<Catalog> {
        let stocks = seeds
            .iter()
            .map(|s| Stock {
                name: s.name.clone(),
                price: s.price,
                quantity: s.quantity,
                volume: 0,
                version: 0,
            })
            .collect();
        Catalog::from_snapshot(
            Snapshot {
                seq: 0,
                epoch: 0,
                stocks,
                trades: Vec::new(),
                refusals: Vec::new(),
                term: CatalogTerm::default(),
                confirmed: 0,
            },
            window_cap,
        )
    }

    /// A catalog as a snapshot left it.
    pub fn from_snapshot(snap: Snapshot, window_cap: usize) -> Result<Catalog> {
        let mut index = HashMap::new();
        for (i, s) in snap.stocks.iter().enumerate() {
            crate::types::validate_name(&s.name)?;
            if index.insert(s.name.clone(), i).is_some() {
                return Err(Error::BadRequest(format!(
                    "stock '{}' listed twice",
                    s.name
                )));
            }
        }
        let mut catalog = Catalog {
            durable: snap.stocks.clone(),
            working: snap.stocks,
            index,
            pending: VecDeque::new(),
            window: VecDeque::new(),
            by_rid: HashMap::new(),
            refused: HashMap::new(),
            refused_order: VecDeque::new(),
            window_cap: window_cap.max(1),
            last_seq: snap.seq,
            durable_seq: snap.seq,
            epoch: snap.epoch,
            term: snap.term,
            confirmed: snap.confirmed.min(snap.seq),
        };
        for t in snap.trades {
            catalog.remember(t);
        }
        for r in snap.refusals {
            catalog.remember_refusal(r);
        }
        Ok(catalog)
    }

    /// The state to write as a snapshot: everything accepted so far, since the journal writer
    /// writes every queued entry before it writes the snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.last_seq,
            epoch: self.epoch,
            stocks: self.working.clone(),
            trades: self
                .window
                .iter()
                .chain(self.pending.iter())
                .skip((self.window.len() + self.pending.len()).saturating_sub(self.window_cap))
                .cloned()
                .collect(),
            refusals: self
                .refused_order
                .iter()
                .filter_map(|rid| self.refused.get(rid).cloned())
                .collect(),
            term: self.term,
            confirmed: self.confirmed,
        }
    }

    /// Re-applies a journal entry read at start-up (already durable). Entries the snapshot
    /// already holds are skipped, which makes a crash between snapshot and journal truncation
    /// harmless.
    pub fn replay(&mut self, entry: JournalEntry) -> Result<()> {
        match entry {
            JournalEntry::Epoch { epoch } => self.epoch = self.epoch.max(epoch),
            JournalEntry::Rollback { to } => {
                self.rollback_to(to)?;
            }
            JournalEntry::Term(term) => self.term = self.term.max_by_epoch(term),
            JournalEntry::Confirmed { upto } => self.confirmed = upto.min(self.last_seq),
            JournalEntry::Refusal(r) => {
                if !self.refused.contains_key(&r.rid) {
                    self.remember_refusal(r);
                }
            }
            JournalEntry::Trade(t) => {
                if t.seq <= self.last_seq {
                    return Ok(());
                }
                if t.seq != self.last_seq + 1 {
                    return Err(Error::BadRequest(format!(
                        "journal skips from trade {} to {}",
                        self.last_seq, t.seq
                    )));
                }
                let i = self.position(&t.name)?;
                apply(&mut self.working[i], t.kind, t.quantity)?;
                apply(&mut self.durable[i], t.kind, t.quantity)?;
                self.epoch = self.epoch.max(t.epoch);
                self.last_seq = t.seq;
                self.durable_seq = t.seq;
                self.remember(t);
            }
        }
        Ok(())
    }

    /// The durable state of one stock.
    pub fn lookup(&self, name: &str) -> Result<&Stock> {
        Ok(&self.durable[self.position(name)?])
    }

    /// Every stock's durable state, in listing order.
    pub fn stocks(&self) -> &[Stock] {
        &self.durable
    }

    /// Checks and applies a trade to the working table. The caller journals a new entry and
    /// answers once its sequence number is durable.
    pub fn trade(&mut self, req: &TradeRequest) -> Result<Accepted> {
        if req.quantity == 0 || req.quantity > MAX_TRADE_QUANTITY {
            return Err(Error::BadRequest(format!(
                "quantity must be between 1 and {MAX_TRADE_QUANTITY}, got {}",
                req.quantity
            )));
        }
        if let Some(&seq) = self.by_rid.get(&req.rid) {
            return Ok(Accepted::Seen(seq));
        }
        if let Some(r) = self.refused.get(&req.rid) {
            return Ok(Accepted::Refused(None, r.error()));
        }
        self.check_epoch(req.epoch)?;
        let i = self.position(&req.name)?;
        let available = self.working[i].quantity;
        if let Err(err) = apply(&mut self.working[i], req.kind, req.quantity) {
            let refusal = Refusal {
                rid: req.rid,
                name: req.name.clone(),
                quantity: req.quantity,
                available,
            };
            self.remember_refusal(refusal.clone());
            return Ok(Accepted::Refused(Some(JournalEntry::Refusal(refusal)), err));
        }
        self.epoch = req.epoch;
        self.last_seq += 1;
        let record = TradeRecord {
            seq: self.last_seq,
            rid: req.rid,
            name: req.name.clone(),
            kind: req.kind,
            quantity: req.quantity,
            epoch: req.epoch,
        };
        self.by_rid.insert(req.rid, record.seq);
        self.pending.push_back(record.clone());
        Ok(Accepted::New(JournalEntry::Trade(record), self.last_seq))
    }

    /// Applies a trade an order log recorded (a catalog following the log, not sequencing):
    /// it must be the next trade, and it must fit the table (a buy the table cannot cover means
    /// this table went another way than the log; roll back first). The caller journals the
    /// entry and marks it durable as for `trade`.
    pub fn apply_recorded(&mut self, record: TradeRecord) -> Result<JournalEntry> {
        if record.seq != self.last_seq + 1 {
            return Err(Error::BadRequest(format!(
                "recorded trade {} does not follow trade {}",
                record.seq, self.last_seq
            )));
        }
        if record.quantity == 0 || record.quantity > MAX_TRADE_QUANTITY {
            return Err(Error::BadRequest(format!(
                "recorded trade {} moves {} units",
                record.seq, record.quantity
            )));
        }
        if self.by_rid.contains_key(&record.rid) {
            return Err(Error::BadRequest(format!(
                "recorded trade {} repeats request {} traded already",
                record.seq, record.rid
            )));
        }
        let i = self.position(&record.name)?;
        apply(&mut self.working[i], record.kind, record.quantity)?;
        self.epoch = self.epoch.max(record.epoch);
        self.last_seq = record.seq;
        self.by_rid.insert(record.rid, record.seq);
        self.pending.push_back(record.clone());
        Ok(JournalEntry::Trade(record))
    }

    /// The request id of trade `seq`, while the table still holds it (pending or in the
    /// window); what a catalog following the order log compares with the log's order.
    pub fn rid_at(&self, seq: u64) -> Option<RequestId> {
        let find = |q: &VecDeque<TradeRecord>| {
            let first = q.front()?.seq;
            q.get(seq.checked_sub(first)? as usize).map(|t| t.rid)
        };
        find(&self.pending).or_else(|| find(&self.window))
    }

    /// Undoes every trade after `to`, newest first, restoring quantity, volume and version
    /// exactly; `Some(entry)` to journal when anything was undone. Only durable trades can be
    /// undone (wait for the pending ones first), and only those still in the window.
    pub fn rollback_to(&mut self, to: u64) -> Result<Option<JournalEntry>> {
        if to >= self.last_seq {
            return Ok(None);
        }
        if !self.pending.is_empty() {
            return Err(Error::BadRequest(format!(
                "cannot roll back to trade {to} while trades up to {} are not durable",
                self.last_seq
            )));
        }
        let first = self.window.front().map_or(self.last_seq + 1, |t| t.seq);
        if to + 1 < first {
            return Err(Error::BadRequest(format!(
                "cannot roll back to trade {to}: the window starts at trade {first}"
            )));
        }
        while self.window.back().is_some_and(|t| t.seq > to) {
            let t = self.window.pop_back().expect("checked back");
            let i = self.index[&t.name];
            for table in [&mut self.working, &mut self.durable] {
                undo(&mut table[i], t.kind, t.quantity)?;
            }
            self.by_rid.remove(&t.rid);
        }
        self.last_seq = to;
        self.durable_seq = to;
        self.confirmed = self.confirmed.min(to);
        Ok(Some(JournalEntry::Rollback { to }))
    }

    /// Raises the fencing epoch; `Some(entry)` when it moved and must be journaled.
    pub fn observe_epoch(&mut self, epoch: Epoch) -> Result<Option<JournalEntry>> {
        self.check_epoch(epoch)?;
        if epoch > self.epoch {
            self.epoch = epoch;
            return Ok(Some(JournalEntry::Epoch { epoch }));
        }
        Ok(None)
    }

    fn check_epoch(&self, epoch: Epoch) -> Result<()> {
        if epoch > crate::replication::MAX_EPOCH {
            return Err(Error::BadRequest(format!(
                "epoch {epoch} is above the largest accepted, {}",
                crate::replication::MAX_EPOCH
            )));
        }
        if epoch < self.epoch {
            return Err(Error::Fenced {
                got: epoch,
                known: self.epoch,
            });
        }
        Ok(())
    }

    /// Moves every accepted trade up to `seq` into the durable table. Returns the stocks that
    /// changed, with their new versions, for the invalidations to push.
    pub fn mark_durable(&mut self, seq: u64) -> Vec<Stock> {
        let mut changed: Vec<usize> = Vec::new();
        while self.pending.front().is_some_and(|t| t.seq <= seq) {
            let t = self.pending.pop_front().expect("checked front");
            let i = self.index[&t.name];
            apply(&mut self.durable[i], t.kind, t.quantity).expect("checked on the working table");
            self.durable_seq = t.seq;
            if !changed.contains(&i) {
                changed.push(i);
            }
            self.remember(t);
        }
        changed
            .into_iter()
            .map(|i| self.durable[i].clone())
            .collect()
    }

    /// The answer for a durable trade, found by sequence number.
    pub fn outcome(&self, seq: u64) -> Option<TradeOutcome> {
        let first = self.window.front()?.seq;
        let t = self.window.get(seq.checked_sub(first)? as usize)?;
        Some(TradeOutcome {
            seq: t.seq,
            name: t.name.clone(),
            kind: t.kind,
            quantity: t.quantity,
            price: self.durable[self.index[&t.name]].price,
        })
    }

    /// Durable trades with a sequence number above `after`, at most `limit`. The flag is false
    /// when older trades that were asked for have left the window.
    pub fn trades_after(&self, after: u64, limit: usize) -> (Vec<TradeRecord>, bool) {
        let first = self.window.front().map_or(self.durable_seq + 1, |t| t.seq);
        let complete = after + 1 >= first;
        let skip = (after + 1).saturating_sub(first) as usize;
        (
            self.window.iter().skip(skip).take(limit).cloned().collect(),
            complete,
        )
    }

    /// Sequence number of the last trade accepted (durable or not).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Sequence number of the last durable trade.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Newest leader epoch seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The catalog term accepted.
    pub fn term(&self) -> CatalogTerm {
        self.term
    }

    /// Accepts a catalog term: `Some(entry)` to journal when it is new, an error for an older
    /// epoch or a second primary in the same epoch.
    pub fn accept_term(&mut self, term: CatalogTerm) -> Result<Option<JournalEntry>> {
        if term.epoch > crate::replication::MAX_EPOCH {
            return Err(Error::BadRequest(format!(
                "catalog epoch {} is above the largest accepted",
                term.epoch
            )));
        }
        if term.epoch < self.term.epoch
            || (term.epoch == self.term.epoch
                && term.primary != self.term.primary
                && term.epoch > 0)
        {
            return Err(Error::Fenced {
                got: term.epoch,
                known: self.term.epoch,
            });
        }
        if term == self.term {
            return Ok(None);
        }
        self.term = term;
        Ok(Some(JournalEntry::Term(term)))
    }

    /// Every trade up to this one matches the order log.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Records how far the table matches the order log; `Some(entry)` to journal when it moved.
    pub fn confirm(&mut self, upto: u64) -> Option<JournalEntry> {
        let upto = upto.min(self.last_seq);
        if upto == self.confirmed {
            return None;
        }
        self.confirmed = upto;
        Some(JournalEntry::Confirmed { upto })
    }

    fn position(&self, name: &str) -> Result<usize> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownStock(name.to_string()))
    }

    /// Learns a buy another catalog of the group refused (the primary shares each before it
    /// answers), so that the same request id is refused here too after a failover. `None` when
    /// the request id is known here already (traded or refused).
    pub fn learn_refusal(&mut self, r: Refusal) -> Result<Option<JournalEntry>> {
        self.position(&r.name)?;
        if r.quantity == 0 || r.quantity > MAX_TRADE_QUANTITY {
            return Err(Error::BadRequest(format!(
                "a refusal of {} units",
                r.quantity
            )));
        }
        if self.by_rid.contains_key(&r.rid) || self.refused.contains_key(&r.rid) {
            return Ok(None);
        }
        self.remember_refusal(r.clone());
        Ok(Some(JournalEntry::Refusal(r)))
    }

    fn remember_refusal(&mut self, r: Refusal) {
        self.refused_order.push_back(r.rid);
        self.refused.insert(r.rid, r);
        if self.refused_order.len() > self.window_cap {
            let old = self.refused_order.pop_front().expect("non-empty");
            self.refused.remove(&old);
        }
    }

    fn remember(&mut self, t: TradeRecord) {
        self.by_rid.insert(t.rid, t.seq);
        self.window.push_back(t);
        while self.window.len() > self.window_cap {
            let old = self.window.pop_front().expect("non-empty");
            self.by_rid.remove(&old.rid);
        }
    }
}

fn apply(stock: &mut Stock, kind: TradeKind, quantity: u64) -> Result<()> {
    match kind {
        TradeKind::Buy => {
            if stock.quantity < quantity {
                return Err(Error::InsufficientQuantity {
                    name: stock.name.clone(),
                    requested: quantity,
                    available: stock.quantity,
                });
            }
            stock.quantity -= quantity;
        }
        TradeKind::Sell => stock.quantity += quantity,
    }
    stock.volume += quantity;
    stock.version += 1;
    Ok(())
}

/// The inverse of `apply`: what the stock was before the trade.
fn undo(stock: &mut Stock, kind: TradeKind, quantity: u64) -> Result<()> {
    let inconsistent = || {
        Error::Io(format!(
            "undoing a trade of {quantity} {} leaves a negative count",
            stock.name
        ))
    };
    let quantity_before = match kind {
        TradeKind::Buy => stock.quantity.checked_add(quantity),
        TradeKind::Sell => stock.quantity.checked_sub(quantity),
    };
    let (Some(q), Some(v), Some(ver)) = (
        quantity_before,
        stock.volume.checked_sub(quantity),
        stock.version.checked_sub(1),
    ) else {
        return Err(inconsistent());
    };
    (stock.quantity, stock.volume, stock.version) = (q, v, ver);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> Vec<StockSeed> {
        vec![
            StockSeed {
                name: "GameStart".into(),
                price: 15.99,
                quantity: 100,
            },
            StockSeed {
                name: "FishCo".into(),
                price: 3.5,
                quantity: 10,
            },
        ]
    }

    fn req(rid: u128, name: &str, kind: TradeKind, quantity: u64) -> TradeRequest {
        TradeRequest {
            rid: RequestId(rid),
            name: name.into(),
            kind,
            quantity,
            epoch: 1,
        }
    }

    #[test]
    fn trade_is_visible_only_once_durable() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        let a = c.trade(&req(1, "FishCo", TradeKind::Buy, 4)).unwrap();
        assert!(matches!(a, Accepted::New(_, 1)));
        assert_eq!(c.lookup("FishCo").unwrap().quantity, 10, "not durable yet");
        let changed = c.mark_durable(1);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].quantity, changed[0].volume, changed[0].version),
            (6, 4, 1)
        );
        assert_eq!(c.lookup("FishCo").unwrap().quantity, 6);
    }

    #[test]
    fn buys_are_checked_against_pending_trades_too() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        c.trade(&req(1, "FishCo", TradeKind::Buy, 8)).unwrap();
        let err = refused(c.trade(&req(2, "FishCo", TradeKind::Buy, 3)));
        assert!(matches!(
            err,
            Error::InsufficientQuantity { available: 2, .. }
        ));
        c.trade(&req(3, "FishCo", TradeKind::Sell, 5)).unwrap();
        c.trade(&req(4, "FishCo", TradeKind::Buy, 7)).unwrap();
        c.mark_durable(3);
        let s = c.lookup("FishCo").unwrap();
        assert_eq!((s.quantity, s.volume, s.version), (0, 20, 3));
    }

    #[test]
    fn same_request_id_trades_once() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        c.trade(&req(7, "GameStart", TradeKind::Buy, 1)).unwrap();
        assert_eq!(
            c.trade(&req(7, "GameStart", TradeKind::Buy, 1)).unwrap(),
            Accepted::Seen(1)
        );
        c.mark_durable(1);
        assert_eq!(
            c.trade(&req(7, "GameStart", TradeKind::Buy, 1)).unwrap(),
            Accepted::Seen(1)
        );
        assert_eq!(c.lookup("GameStart").unwrap().quantity, 99);
        assert_eq!(c.outcome(1).unwrap().quantity, 1);
    }

    /// The error of a refused trade (journaled when new).
    fn refused(a: Result<Accepted>) -> Error {
        match a {
            Ok(Accepted::Refused(_, e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_request_id_is_refused_again_even_after_a_sell() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        let big = req(9, "FishCo", TradeKind::Buy, 11);
        let first = c.trade(&big);
        assert!(
            matches!(
                &first,
                Ok(Accepted::Refused(Some(JournalEntry::Refusal(_)), _))
            ),
            "a new refusal is journaled: {first:?}"
        );
        let first = refused(first);
        c.trade(&req(10, "FishCo", TradeKind::Sell, 5)).unwrap();
        let again = c.trade(&big);
        assert!(
            matches!(&again, Ok(Accepted::Refused(None, _))),
            "{again:?}"
        );
        assert_eq!(refused(again), first, "same request id, same answer");
        assert!(
            c.trade(&req(11, "FishCo", TradeKind::Buy, 11)).is_ok(),
            "a new id may buy"
        );
    }

    #[test]
    fn a_refusal_survives_a_snapshot_and_a_journal_replay() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        let big = req(9, "FishCo", TradeKind::Buy, 11);
        let Ok(Accepted::Refused(Some(entry), first)) = c.trade(&big) else {
            panic!("refused")
        };
        // From the snapshot.
        let mut from_snap = Catalog::from_snapshot(c.snapshot(), 100).unwrap();
        from_snap
            .trade(&req(10, "FishCo", TradeKind::Sell, 5))
            .unwrap();
        assert_eq!(refused(from_snap.trade(&big)), first);
        // From the journal.
        let mut replayed = Catalog::new(&seeds(), 100).unwrap();
        replayed.replay(entry).unwrap();
        replayed
            .trade(&req(10, "FishCo", TradeKind::Sell, 5))
            .unwrap();
        assert_eq!(refused(replayed.trade(&big)), first);
    }

    #[test]
    fn unknown_stock_and_zero_quantity_change_nothing() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        assert!(matches!(
            c.trade(&req(1, "Nope", TradeKind::Buy, 1)),
            Err(Error::UnknownStock(_))
        ));
        assert!(matches!(
            c.trade(&req(2, "FishCo", TradeKind::Buy, 0)),
            Err(Error::BadRequest(_))
        ));
        assert_eq!(c.last_seq(), 0);
    }

    #[test]
    fn older_epochs_are_fenced() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        assert!(c.observe_epoch(3).unwrap().is_some());
        assert!(c.observe_epoch(3).unwrap().is_none());
        let err = c.trade(&req(1, "FishCo", TradeKind::Buy, 1)).unwrap_err();
        assert_eq!(err, Error::Fenced { got: 1, known: 3 });
    }

    #[test]
    fn snapshot_and_replay_rebuild_the_same_table() {
        let mut c = Catalog::new(&seeds(), 2).unwrap();
        let mut journal = Vec::new();
        for (rid, kind) in [
            (1, TradeKind::Buy),
            (2, TradeKind::Sell),
            (3, TradeKind::Buy),
        ] {
            if let Accepted::New(e, _) = c.trade(&req(rid, "GameStart", kind, 2)).unwrap() {
                journal.push(e);
            }
        }
        c.mark_durable(3);
        let snap = c.snapshot();
        assert_eq!(snap.trades.len(), 2, "window is capped");
        let restored = Catalog::from_snapshot(snap.clone(), 2).unwrap();
        assert_eq!(restored.stocks(), c.stocks());
        // Replaying the journal over a snapshot that already holds it changes nothing.
        let mut again = Catalog::from_snapshot(snap, 2).unwrap();
        for e in journal.clone() {
            again.replay(e).unwrap();
        }
        assert_eq!(again.stocks(), c.stocks());
        // Replaying from scratch reaches the same state.
        let mut fresh = Catalog::new(&seeds(), 2).unwrap();
        for e in journal {
            fresh.replay(e).unwrap();
        }
        assert_eq!(fresh.stocks(), c.stocks());
        assert_eq!(fresh.lookup("GameStart").unwrap().quantity, 98);
    }

    #[test]
    fn trades_after_reports_a_gap_past_the_window() {
        let mut c = Catalog::new(&seeds(), 2).unwrap();
        for rid in 1..=4 {
            c.trade(&req(rid, "GameStart", TradeKind::Buy, 1)).unwrap();
        }
        c.mark_durable(4);
        let (t, complete) = c.trades_after(2, 10);
        assert_eq!((t.len(), complete), (2, true));
        let (t, complete) = c.trades_after(0, 10);
        assert_eq!((t.len(), complete), (2, false));
        assert_eq!(c.trades_after(4, 10).0.len(), 0);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut s = seeds();
        s.push(s[0].clone());
        assert!(Catalog::new(&s, 10).is_err());
    }

    /// Trades `reqs` on `c` and makes them durable; their records, in order.
    fn traded(c: &mut Catalog, reqs: &[TradeRequest]) -> Vec<TradeRecord> {
        let records: Vec<TradeRecord> = reqs
            .iter()
            .map(|r| match c.trade(r).unwrap() {
                Accepted::New(JournalEntry::Trade(t), _) => t,
                other => panic!("{r:?}: {other:?}"),
            })
            .collect();
        c.mark_durable(c.last_seq());
        records
    }

    #[test]
    fn rollback_restores_quantity_volume_and_version_exactly() {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        traded(&mut c, &[req(1, "FishCo", TradeKind::Buy, 4)]);
        let after_one = c.stocks().to_vec();
        traded(
            &mut c,
            &[
                req(2, "GameStart", TradeKind::Sell, 3),
                req(3, "FishCo", TradeKind::Buy, 6),
                req(4, "FishCo", TradeKind::Sell, 1),
            ],
        );
        assert_eq!(c.rid_at(3), Some(RequestId(3)));
        let entry = c.rollback_to(1).unwrap();
        assert_eq!(entry, Some(JournalEntry::Rollback { to: 1 }));
        assert_eq!(c.stocks(), &after_one[..]);
        assert_eq!((c.last_seq(), c.durable_seq()), (1, 1));
        assert_eq!(c.rid_at(2), None);
        assert_eq!(c.rid_at(1), Some(RequestId(1)));
        // An undone request id is new again, and the next trade takes the next number.
        assert!(matches!(
            c.trade(&req(3, "FishCo", TradeKind::Buy, 6)).unwrap(),
            Accepted::New(_, 2)
        ));
        // Nothing to undo: no entry.
        assert_eq!(c.rollback_to(5).unwrap(), None);
    }

    #[test]
    fn rollback_is_refused_over_pending_trades_and_past_the_window() {
        let mut c = Catalog::new(&seeds(), 2).unwrap();
        traded(
            &mut c,
            &[
                req(1, "FishCo", TradeKind::Sell, 1),
                req(2, "FishCo", TradeKind::Sell, 1),
                req(3, "FishCo", TradeKind::Sell, 1),
            ],
        );
        // The window holds trades 2 and 3: back to 1 works, back to 0 cannot.
        assert!(c.rollback_to(0).is_err());
        assert_eq!(c.last_seq(), 3, "a refused rollback changes nothing");
        c.trade(&req(4, "FishCo", TradeKind::Sell, 1)).unwrap();
        assert!(c.rollback_to(2).is_err(), "trade 4 is not durable yet");
        c.mark_durable(4);
        c.rollback_to(2).unwrap();
        assert_eq!(c.lookup("FishCo").unwrap().quantity, 12);
    }

    #[test]
    fn a_catalog_following_the_log_holds_the_same_table_and_replays_it() {
        let mut primary = Catalog::new(&seeds(), 100).unwrap();
        let records = traded(
            &mut primary,
            &[
                req(1, "FishCo", TradeKind::Buy, 4),
                req(2, "GameStart", TradeKind::Sell, 3),
                req(3, "FishCo", TradeKind::Buy, 6),
            ],
        );
        let mut standby = Catalog::new(&seeds(), 100).unwrap();
        let mut journal = Vec::new();
        // It went another way first: an unrecorded trade of its own at number 1.
        journal.push(JournalEntry::Trade(
            traded(&mut standby, &[req(9, "FishCo", TradeKind::Buy, 10)])[0].clone(),
        ));
        // The follower compares request ids number by number (the table alone cannot know
        // the log went another way) and undoes from the first that differs.
        assert_ne!(standby.rid_at(1), Some(records[0].rid));
        journal.push(standby.rollback_to(0).unwrap().expect("undone"));
        for r in &records {
            journal.push(standby.apply_recorded(r.clone()).unwrap());
        }
        assert_eq!(
            standby.lookup("FishCo").unwrap().quantity,
            10,
            "not durable yet"
        );
        standby.mark_durable(3);
        assert_eq!(standby.stocks(), primary.stocks());
        assert_eq!(standby.last_seq(), 3);
        // The same journal, replayed from the start, gives the same table.
        let mut replayed = Catalog::new(&seeds(), 100).unwrap();
        for e in journal {
            replayed.replay(e).unwrap();
        }
        assert_eq!(replayed.stocks(), primary.stocks());
        assert_eq!(replayed.rid_at(3), Some(RequestId(3)));
        // A trade the table cannot cover, a gap and a repeated request id are refused.
        let mut bad = records[2].clone();
        bad.seq = 4;
        bad.rid = RequestId(7);
        bad.quantity = 50;
        assert!(matches!(
            standby.apply_recorded(bad.clone()),
            Err(Error::InsufficientQuantity { .. })
        ));
        bad.quantity = 1;
        bad.seq = 5;
        assert!(standby.apply_recorded(bad.clone()).is_err(), "a gap");
        bad.seq = 4;
        bad.rid = RequestId(1);
        assert!(
            standby.apply_recorded(bad).is_err(),
            "request 1 traded already"
        );
        assert_eq!(standby.last_seq(), 3);
    }
}
