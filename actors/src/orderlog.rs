//! An order replica's log as a pure state machine: numbered orders from 0 with no gaps, each
//! carrying the epoch of the leader that wrote it, indexed by request id (exactly once).
//!
//! An order's number is its catalog trade sequence number minus one (`cseq = number + 1`):
//! the catalog serializes every trade anyway, so its sequence is the one global order. A
//! leader that dies after the catalog traded but before any replica recorded the order leaves
//! a gap that the next leader fills from the catalog's journal under the very number the
//! client may already hold (rules 1 to 3).
//!
//! Log matching: an entry is identified by (number, epoch). A leader never writes two entries
//! under one number, and a follower accepts a batch only when the entry before it matches, so
//! two logs that agree on (number, epoch) agree on everything up to that number. That is what
//! lets a returning replica pull only what follows its last matching entry, and drop a suffix
//! that only it holds (a dead leader's unreplicated tail) when a newer epoch wrote elsewhere.

use crate::types::{Epoch, RequestId, TradeKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One order as every replica stores it. Field order is the line's byte order, so the files of
/// replicas that agree are byte-identical (no replica id, no local clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Transaction number, consecutive from 0.
    pub number: u64,
    /// Epoch of the leader that wrote it.
    pub epoch: Epoch,
    /// The request id it was traded under.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
    /// Units.
    pub quantity: u64,
    /// The catalog's trade sequence number for it: always `number + 1`.
    pub cseq: u64,
}

/// The identity of a log entry: (number, epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryId {
    /// Order number.
    pub number: u64,
    /// Epoch that wrote it.
    pub epoch: Epoch,
}

impl EntryId {
    /// Order used to pick the most up-to-date log: newer epoch first, then longer.
    pub fn freshness(this: Option<EntryId>) -> (Epoch, i128) {
        this.map_or((0, -1), |e| (e.epoch, e.number as i128))
    }
}

/// How a batch from a leader or a peer fits this log.
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// The entry before the batch does not match: this log must catch up first.
    Mismatch,
    /// Drop entries from `truncate_from` (when set), then append `batch[skip..]`.
    Apply {
        /// First number to drop: our entry there disagrees with the batch.
        truncate_from: Option<u64>,
        /// How many leading orders of the batch this log already holds.
        skip: usize,
    },
}

/// Stock names seen in the log, each stored once; orders keep a 15-bit index.
#[derive(Debug, Default)]
struct Names {
    names: Vec<String>,
    ids: HashMap<String, u16>,
}

impl Names {
    fn id(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u16::try_from(self.names.len())
            .ok()
            .filter(|id| *id < KIND_BIT)
            .expect("at most 32767 distinct stock names");
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
}

/// High bit of an order's name index: set for a sell.
const KIND_BIT: u16 = 1 << 15;
/// Entries the request-id index takes in a hash map before it merges them into its sorted part:
/// small enough that the map stays in the CPU's cache (16 bytes an entry), large enough that the
/// merge, a pass over the sorted part, costs little per entry.
const RID_MERGE_AT: usize = 1 << 14;

/// Request id -> order number, in 12 bytes an entry: most entries in two sorted columns
/// (64-bit key, 32-bit number), recent ones in a small hash map merged in now and then. Keys
/// are the low 64 bits of the request id; the caller confirms against the full id. Two recent
/// ids that share their low 64 bits (rare) keep the second in `twins`.
#[derive(Debug, Default)]
struct RidIndex {
    keys: Vec<u64>,
    numbers: Vec<u32>,
    recent: HashMap<u64, u32>,
    twins: Vec<(u64, u32)>,
}

impl RidIndex {
    fn insert(&mut self, rid: RequestId, n: u32) {
        let key = rid.0 as u64;
        if let Some(first) = self.recent.insert(key, n) {
            // Keep the first in the map and this one beside it.
            self.recent.insert(key, first);
            self.twins.push((key, n));
        }
        if self.recent.len() >= RID_MERGE_AT {
            self.merge();
        }
    }

    /// Moves the recent entries into the sorted columns: sorts them, then merges the two sorted
    /// runs in one pass (the columns are never sorted again as a whole).
    fn merge(&mut self) {
        let mut fresh: Vec<(u64, u32)> = self.recent.drain().chain(self.twins.drain(..)).collect();
        if fresh.is_empty() {
            return;
        }
        fresh.sort_unstable();
        let total = self.keys.len() + fresh.len();
        let mut keys = Vec::with_capacity(total);
        let mut numbers = Vec::with_capacity(total);
        let mut old = self
            .keys
            .iter()
            .copied()
            .zip(self.numbers.iter().copied())
            .peekable();
        let mut new = fresh.into_iter().peekable();
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if a <= b => old.next(),
                (_, Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            let (k, n) = next.expect("peeked");
            keys.push(k);
            numbers.push(n);
        }
        self.keys = keys;
        self.numbers = numbers;
    }

    /// Numbers whose request id shares these low 64 bits.
    fn candidates(&self, rid: RequestId) -> impl Iterator<Item = u32> + '_ {
        let key = rid.0 as u64;
        let start = self.keys.partition_point(|k| *k < key);
        let end = start + self.keys[start..].partition_point(|k| *k == key);
        let twins = if self.recent.contains_key(&key) {
            &self.twins[..]
        } else {
            &[]
        };
        self.numbers[start..end]
            .iter()
            .copied()
            .chain(self.recent.get(&key).copied())
            .chain(twins.iter().filter(move |t| t.0 == key).map(|t| t.1))
    }
}

/// The order log; see the module docs. Kept in columns (about 34 bytes an order, so a
/// replica with a million orders stays small): the full request id, the stock name's index
/// with the buy/sell bit, the quantity, and the epochs as runs. Numbers and catalog trade
/// numbers are implicit in the position.
#[derive(Debug, Default)]
pub struct OrderLog {
    rids: Vec<RequestId>,
    names_kinds: Vec<u16>,
    quantities: Vec<u32>,
    /// (first number, epoch) of each run of orders written in one epoch.
    epochs: Vec<(u32, Epoch)>,
    names: Names,
    index: RidIndex,
    len: u64,
}

impl OrderLog {
    /// Records the length of the file the loaded records came from (after any torn tail
    /// was cut), so later appends and truncations know where lines start.
    pub fn set_file_len(&mut self, len: u64) {
        self.len = len;
    }

    /// Adds a record read from the file (its bytes are already counted in the file length).
    /// On error, says what is wrong with it.
    pub fn load(&mut self, o: Order) -> Result<(), String> {
        let expected = self.next_number();
        if o.number != expected || o.cseq != o.number + 1 {
            return Err(format!(
                "holds order {} (catalog trade {}) where order {expected} (catalog trade {}) was expected",
                o.number,
                o.cseq,
                expected + 1
            ));
        }
        self.push(o).map(|_| ())
    }

    /// Rebuilds a log from the bytes of an order file (`path` names it in errors): a torn
    /// tail is left out; returns the log and the length of the good part.
    pub fn from_bytes(path: &std::path::Path, bytes: &[u8]) -> crate::Result<(OrderLog, u64)> {
        let mut log = OrderLog::default();
        let (len, _) = crate::journal::for_each_line(path, bytes, |line, _, order| {
            log.load(order).map_err(|reason| crate::Error::Corrupt {
                path: path.to_path_buf(),
                line,
                reason,
            })
        })?;
        log.set_file_len(len);
        Ok((log, len))
    }

    /// Number the next order gets.
    pub fn next_number(&self) -> u64 {
        self.rids.len() as u64
    }

    fn epoch_at(&self, n: u64) -> Epoch {
        let i = self
            .epochs
            .partition_point(|(start, _)| u64::from(*start) <= n);
        self.epochs[i - 1].1
    }

    /// Identity of the last entry.
    pub fn last(&self) -> Option<EntryId> {
        self.next_number()
            .checked_sub(1)
            .and_then(|n| self.id_at(n))
    }

    /// Identity of entry `n`, if held.
    pub fn id_at(&self, n: u64) -> Option<EntryId> {
        (n < self.next_number()).then(|| EntryId {
            number: n,
            epoch: self.epoch_at(n),
        })
    }

    /// Order `n`, if held.
    pub fn get(&self, n: u64) -> Option<Order> {
        let i = usize::try_from(n).ok().filter(|i| *i < self.rids.len())?;
        let nk = self.names_kinds[i];
        Some(Order {
            number: n,
            epoch: self.epoch_at(n),
            rid: self.rids[i],
            name: self.names.names[usize::from(nk & !KIND_BIT)].clone(),
            kind: if nk & KIND_BIT != 0 {
                TradeKind::Sell
            } else {
                TradeKind::Buy
            },
            quantity: u64::from(self.quantities[i]),
            cseq: n + 1,
        })
    }

    /// The number already given to this request id.
    pub fn find(&self, rid: RequestId) -> Option<u64> {
        self.index
            .candidates(rid)
            .find(|n| self.rids.get(*n as usize) == Some(&rid))
            .map(u64::from)
    }

    /// Number of orders held.
    pub fn len(&self) -> usize {
        self.rids.len()
    }

    /// True when no order is held.
    pub fn is_empty(&self) -> bool {
        self.rids.is_empty()
    }

    fn push(&mut self, o: Order) -> Result<u32, String> {
        let n = u32::try_from(o.number)
            .map_err(|_| "order numbers above 2^32 are not supported".to_string())?;
        let quantity = u32::try_from(o.quantity)
            .map_err(|_| format!("quantity {} is too large", o.quantity))?;
        let kind = if o.kind == TradeKind::Sell {
            KIND_BIT
        } else {
            0
        };
        let name = self.names.id(&o.name);
        if self.epochs.last().is_none_or(|(_, e)| *e != o.epoch) {
            self.epochs.push((n, o.epoch));
        }
        self.rids.push(o.rid);
        self.names_kinds.push(name | kind);
        self.quantities.push(quantity);
        self.index.insert(o.rid, n);
        Ok(n)
    }

    /// Adds the next order; returns its line (without newline) for the journal.
    pub fn append(&mut self, order: Order) -> Vec<u8> {
        assert_eq!(
            order.number,
            self.next_number(),
            "orders are appended in number order"
        );
        let line = serde_json::to_vec(&order).expect("serialize order");
        self.push(order)
            .expect("orders are validated before they are appended");
        self.len += line.len() as u64 + 1;
        line
    }

    /// Drops every order from number `from` on; returns the file length to cut to.
    pub fn truncate(&mut self, from: u64) -> u64 {
        if from >= self.next_number() {
            return self.len;
        }
        // Lines are serialized deterministically, so the dropped tail's size is known
        // without reading the file. Rare (a dead leader's tail), and small.
        let tail: u64 = (from..self.next_number())
            .map(|n| {
                serde_json::to_vec(&self.get(n).expect("held"))
                    .expect("serialize")
                    .len() as u64
                    + 1
            })
            .sum();
        self.len -= tail;
        let keep = from as usize;
        self.rids.truncate(keep);
        self.names_kinds.truncate(keep);
        self.quantities.truncate(keep);
        self.epochs.retain(|(start, _)| u64::from(*start) < from);
        let mut index = RidIndex::default();
        for (n, rid) in self.rids.iter().enumerate() {
            index.insert(*rid, n as u32);
        }
        index.merge();
        self.index = index;
        self.len
    }

    /// Orders after `after` (all when `None`), at most `limit`; `None` when our entry at
    /// `after` differs or is missing (the asker holds something we do not).
    pub fn since(&self, after: Option<EntryId>, limit: usize) -> Option<Vec<Order>> {
        let start = match after {
            None => 0,
            Some(id) if self.id_at(id.number) == Some(id) => id.number + 1,
            Some(_) => return None,
        };
        let end = (start + limit as u64).min(self.next_number());
        Some((start..end).filter_map(|n| self.get(n)).collect())
    }

    /// How a batch whose first order follows `prev` fits this log.
    pub fn fit(&self, prev: Option<EntryId>, batch: &[Order]) -> Fit {
        if let Some(p) = prev {
            if self.id_at(p.number) != Some(p) {
                return Fit::Mismatch;
            }
        }
        let mut skip = 0;
        for o in batch {
            match self.id_at(o.number) {
                Some(mine) if mine.epoch == o.epoch => skip += 1,
                Some(_) => {
                    return Fit::Apply {
                        truncate_from: Some(o.number),
                        skip,
                    }
                }
                None => break,
            }
        }
        Fit::Apply {
            truncate_from: None,
            skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(number: u64, epoch: Epoch) -> Order {
        Order {
            number,
            epoch,
            rid: RequestId(1000 + number as u128 + 100 * epoch as u128),
            name: "GameStart".into(),
            kind: TradeKind::Buy,
            quantity: 1,
            cseq: number + 1,
        }
    }

    fn log_of(epochs: &[Epoch]) -> OrderLog {
        let mut log = OrderLog::default();
        for (n, &e) in epochs.iter().enumerate() {
            log.append(order(n as u64, e));
        }
        log
    }

    #[test]
    fn numbers_and_rids_are_tracked() {
        let log = log_of(&[1, 1, 1]);
        assert_eq!(log.find(RequestId(1101)), Some(1));
        assert_eq!(log.next_number(), 3);
        assert_eq!(
            log.last(),
            Some(EntryId {
                number: 2,
                epoch: 1
            })
        );
    }

    #[test]
    fn loading_checks_numbering() {
        let mut log = OrderLog::default();
        log.load(order(0, 1)).unwrap();
        assert!(log.load(order(2, 1)).is_err(), "a gap");
        let mut bad = order(1, 1);
        bad.cseq = 5;
        assert!(log.load(bad).is_err(), "a catalog trade out of step");
    }

    #[test]
    fn orders_read_back_exactly_as_written() {
        let mut log = OrderLog::default();
        let mut sell = order(0, 4);
        sell.kind = TradeKind::Sell;
        sell.name = "FishCo".into();
        sell.quantity = 1_000_000;
        log.append(sell.clone());
        log.append(order(1, 4));
        log.append(order(2, 5));
        assert_eq!(log.get(0), Some(sell));
        assert_eq!(log.get(2), Some(order(2, 5)));
        assert_eq!(
            log.id_at(1),
            Some(EntryId {
                number: 1,
                epoch: 4
            })
        );
        assert_eq!(log.get(3), None);
    }

    #[test]
    fn the_request_id_index_survives_merges() {
        let mut log = OrderLog::default();
        let n = super::RID_MERGE_AT as u64 + 10;
        for i in 0..n {
            let mut o = order(i, 1);
            o.rid = RequestId((i as u128) << 64 | i as u128);
            log.append(o);
        }
        // Shares its low 64 bits with order 5, which is in the merged (sorted) part by now.
        let mut twin = order(n, 1);
        twin.rid = RequestId(99u128 << 64 | 5);
        log.append(twin);
        assert_eq!(log.find(RequestId(5u128 << 64 | 5)), Some(5));
        assert_eq!(log.find(RequestId(99u128 << 64 | 5)), Some(n));
        assert_eq!(
            log.find(RequestId((n as u128 - 1) << 64 | (n as u128 - 1))),
            Some(n - 1)
        );
        assert_eq!(log.find(RequestId(5)), None);
    }

    #[test]
    fn request_ids_that_share_their_low_bits_are_told_apart_before_and_after_a_merge() {
        let mut log = OrderLog::default();
        let ids = [
            RequestId(7),
            RequestId(1u128 << 64 | 7),
            RequestId(2u128 << 64 | 7),
        ];
        for (i, rid) in ids.iter().enumerate() {
            let mut o = order(i as u64, 1);
            o.rid = *rid;
            log.append(o);
        }
        let found = |log: &OrderLog| ids.map(|rid| log.find(rid));
        assert_eq!(found(&log), [Some(0), Some(1), Some(2)]);
        assert_eq!(log.find(RequestId(3u128 << 64 | 7)), None);
        log.index.merge();
        assert_eq!(found(&log), [Some(0), Some(1), Some(2)]);
        assert_eq!(log.find(RequestId(3u128 << 64 | 7)), None);
    }

    #[test]
    fn truncate_returns_the_byte_offset_and_forgets_the_tail() {
        let mut log = log_of(&[1, 1, 1]);
        let first_len = serde_json::to_vec(&order(0, 1)).unwrap().len() as u64 + 1;
        assert_eq!(log.truncate(1), first_len);
        assert_eq!(log.len(), 1);
        assert_eq!(log.find(RequestId(1102)), None);
        assert_eq!(log.find(RequestId(1100)), Some(0));
    }

    #[test]
    fn since_serves_after_a_matching_entry_only() {
        let log = log_of(&[1, 1, 2, 2]);
        assert_eq!(log.since(None, 10).unwrap().len(), 4);
        let after = Some(EntryId {
            number: 1,
            epoch: 1,
        });
        assert_eq!(log.since(after, 1).unwrap()[0].number, 2);
        assert!(log
            .since(
                Some(EntryId {
                    number: 2,
                    epoch: 1
                }),
                10
            )
            .is_none());
        assert!(log
            .since(
                Some(EntryId {
                    number: 9,
                    epoch: 2
                }),
                10
            )
            .is_none());
    }

    #[test]
    fn fit_skips_what_is_held_and_cuts_a_divergent_tail() {
        // We hold 0..=3; orders 2 and 3 were written by a leader of epoch 1 that died.
        let log = log_of(&[1, 1, 1, 1]);
        let batch = vec![order(1, 1), order(2, 2), order(3, 2), order(4, 2)];
        let prev = Some(EntryId {
            number: 0,
            epoch: 1,
        });
        assert_eq!(
            log.fit(prev, &batch),
            Fit::Apply {
                truncate_from: Some(2),
                skip: 1
            }
        );
        assert_eq!(
            log.fit(
                Some(EntryId {
                    number: 7,
                    epoch: 1
                }),
                &batch
            ),
            Fit::Mismatch
        );
    }

    #[test]
    fn freshness_prefers_newer_epoch_then_longer() {
        let a = Some(EntryId {
            number: 10,
            epoch: 1,
        });
        let b = Some(EntryId {
            number: 3,
            epoch: 2,
        });
        assert!(EntryId::freshness(b) > EntryId::freshness(a));
        assert!(EntryId::freshness(a) > EntryId::freshness(None));
    }
}
