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

/// The order log; see the module docs.
#[derive(Debug, Default)]
pub struct OrderLog {
    orders: Vec<Order>,
    offsets: Vec<u64>,
    len: u64,
    by_rid: HashMap<RequestId, u64>,
}

impl OrderLog {
    /// Rebuilds the log from loaded records; numbers must run from 0 without gaps and match
    /// their catalog trade. On error, returns the 1-based line and what is wrong.
    pub fn from_records(
        orders: Vec<Order>,
        offsets: Vec<u64>,
        len: u64,
    ) -> Result<OrderLog, (usize, String)> {
        let mut log = OrderLog {
            len,
            ..OrderLog::default()
        };
        for (i, (o, off)) in orders.into_iter().zip(offsets).enumerate() {
            if o.number != i as u64 || o.cseq != o.number + 1 {
                return Err((
                    i + 1,
                    format!(
                        "holds order {} (catalog trade {}) where order {i} (catalog trade {}) was expected",
                        o.number,
                        o.cseq,
                        i + 1
                    ),
                ));
            }
            log.by_rid.insert(o.rid, o.number);
            log.orders.push(o);
            log.offsets.push(off);
        }
        Ok(log)
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
        self.by_rid.insert(order.rid, order.number);
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
        // Rare (a dead leader's tail): rebuild the index rather than patch it.
        self.by_rid = self.orders.iter().map(|o| (o.rid, o.number)).collect();
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
    fn reloading_checks_numbering_and_names_the_line() {
        let o = vec![order(0, 1), order(2, 1)];
        assert_eq!(OrderLog::from_records(o, vec![0, 10], 20).unwrap_err().0, 2);
        let mut bad = order(0, 1);
        bad.cseq = 5;
        assert_eq!(
            OrderLog::from_records(vec![bad], vec![0], 10)
                .unwrap_err()
                .0,
            1
        );
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
