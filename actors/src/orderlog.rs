//! An order replica's log as a pure state machine: numbered orders from 0 with no gaps, each
//! carrying the epoch of the leader that wrote it, indexed by request id (exactly once) and by
//! catalog trade number (reconciliation).
//!
//! Log matching: an entry is identified by (number, epoch). A leader never writes two entries
//! under one number, and a follower accepts a batch only when the entry before it matches, so
//! two logs that agree on (number, epoch) agree on everything up to that number. That is what
//! lets a returning replica pull only what follows its last matching entry, and drop a suffix
//! that only it holds (a dead leader's unreplicated tail) when a newer epoch wrote elsewhere.

use crate::types::{Epoch, RequestId, TradeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

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
    /// The catalog's trade sequence number for it.
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

/// The order log; see the module docs.
#[derive(Debug, Default)]
pub struct OrderLog {
    orders: Vec<Order>,
    offsets: Vec<u64>,
    len: u64,
    by_rid: HashMap<RequestId, u64>,
    cseqs_above: BTreeSet<u64>,
    watermark: u64,
}

impl OrderLog {
    /// Rebuilds the log from loaded records; numbers must run from 0 without gaps.
    pub fn from_records(orders: Vec<Order>, offsets: Vec<u64>, len: u64) -> Result<OrderLog> {
        let mut log = OrderLog {
            len,
            ..OrderLog::default()
        };
        for (i, (o, off)) in orders.into_iter().zip(offsets).enumerate() {
            if o.number != i as u64 {
                return Err(Error::BadRequest(format!(
                    "order log line {} holds order {} where {i} was expected",
                    i + 1,
                    o.number
                )));
            }
            log.index(&o);
            log.orders.push(o);
            log.offsets.push(off);
        }
        Ok(log)
    }

    fn index(&mut self, o: &Order) {
        self.by_rid.insert(o.rid, o.number);
        if o.cseq > self.watermark {
            self.cseqs_above.insert(o.cseq);
            while self.cseqs_above.remove(&(self.watermark + 1)) {
                self.watermark += 1;
            }
        }
    }

    /// Number the next order gets.
    pub fn next_number(&self) -> u64 {
        self.orders.len() as u64
    }

    /// Identity of the last entry.
    pub fn last(&self) -> Option<EntryId> {
        self.orders.last().map(id_of)
    }

    /// Identity of entry `n`, if held.
    pub fn id_at(&self, n: u64) -> Option<EntryId> {
        self.orders.get(n as usize).map(id_of)
    }

    /// Order `n`, if held.
    pub fn get(&self, n: u64) -> Option<&Order> {
        self.orders.get(n as usize)
    }

    /// The number already given to this request id.
    pub fn find(&self, rid: RequestId) -> Option<u64> {
        self.by_rid.get(&rid).copied()
    }

    /// Every catalog trade up to this sequence number is recorded as an order.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Number of orders held.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// True when no order is held.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// Adds the next order; returns its line (without newline) for the journal.
    pub fn append(&mut self, order: Order) -> Vec<u8> {
        assert_eq!(
            order.number,
            self.next_number(),
            "orders are appended in number order"
        );
        let line = serde_json::to_vec(&order).expect("serialize order");
        self.index(&order);
        self.offsets.push(self.len);
        self.len += line.len() as u64 + 1;
        self.orders.push(order);
        line
    }

    /// Drops every order from number `from` on; returns the file length to cut to.
    pub fn truncate(&mut self, from: u64) -> u64 {
        let from = from as usize;
        if from >= self.orders.len() {
            return self.len;
        }
        self.len = self.offsets[from];
        self.orders.truncate(from);
        self.offsets.truncate(from);
        // Rare (a dead leader's tail): rebuild the indexes rather than patch them.
        let orders = std::mem::take(&mut self.orders);
        self.by_rid.clear();
        self.cseqs_above.clear();
        self.watermark = 0;
        for o in &orders {
            self.index(o);
        }
        self.orders = orders;
        self.len
    }

    /// Orders after `after` (all when `None`), at most `limit`; `None` when our entry at
    /// `after` differs or is missing (the asker holds something we do not).
    pub fn since(&self, after: Option<EntryId>, limit: usize) -> Option<&[Order]> {
        let start = match after {
            None => 0,
            Some(id) if self.id_at(id.number) == Some(id) => id.number as usize + 1,
            Some(_) => return None,
        };
        let end = (start + limit).min(self.orders.len());
        Some(&self.orders[start..end])
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

fn id_of(o: &Order) -> EntryId {
    EntryId {
        number: o.number,
        epoch: o.epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(number: u64, epoch: Epoch, cseq: u64) -> Order {
        Order {
            number,
            epoch,
            rid: RequestId(1000 + number as u128 + 100 * epoch as u128),
            name: "GameStart".into(),
            kind: TradeKind::Buy,
            quantity: 1,
            cseq,
        }
    }

    fn log_of(epochs: &[Epoch]) -> OrderLog {
        let mut log = OrderLog::default();
        for (n, &e) in epochs.iter().enumerate() {
            log.append(order(n as u64, e, n as u64 + 1));
        }
        log
    }

    #[test]
    fn numbers_rids_and_watermark_are_tracked() {
        let mut log = OrderLog::default();
        log.append(order(0, 1, 1));
        log.append(order(1, 1, 3));
        assert_eq!(log.watermark(), 1, "catalog trade 2 is not recorded yet");
        log.append(order(2, 1, 2));
        assert_eq!(log.watermark(), 3);
        assert_eq!(log.find(RequestId(1101)), Some(1));
        assert_eq!(log.next_number(), 3);
    }

    #[test]
    fn reloading_checks_numbering() {
        let o = vec![order(0, 1, 1), order(2, 1, 2)];
        assert!(OrderLog::from_records(o, vec![0, 10], 20).is_err());
    }

    #[test]
    fn truncate_returns_the_byte_offset_and_forgets_the_tail() {
        let mut log = log_of(&[1, 1, 1]);
        let first_len = serde_json::to_vec(&order(0, 1, 1)).unwrap().len() as u64 + 1;
        assert_eq!(log.truncate(1), first_len);
        assert_eq!(log.len(), 1);
        assert_eq!(log.find(RequestId(1102)), None);
        assert_eq!(log.watermark(), 1);
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
        let batch = vec![
            order(1, 1, 2),
            order(2, 2, 9),
            order(3, 2, 10),
            order(4, 2, 11),
        ];
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
