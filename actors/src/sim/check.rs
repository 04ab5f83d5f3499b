//! The simulator's checks of DESIGN.md's rules, after every step and at rest:
//!
//! - every order a replica writes is the catalog's trade under that number (rules 2, 3);
//! - a leader acknowledges an order only once it and every follower it reports in step hold
//!   it (rule 1: the supervisor counts exactly those as live);
//! - no number is acknowledged for two requests, no request gets two numbers (rule 2);
//! - a replica never goes back in epoch and never changes its log for a batch from an older
//!   epoch; at most one leader serves each epoch (rule 5);
//! - an acknowledged order is never answered "unknown" and reads back as acknowledged (rule 9);
//! - at rest: every replica's file is byte-identical, holds exactly the catalog's trades with
//!   epochs that never decrease, every acknowledged order under its number, and the catalog's
//!   table equals the initial stocks plus the log (rules 1, 3, 4).

use super::world::World;
use crate::orderlog::{Order, OrderLog};
use crate::replication::{NodeId, PlaceOrder, Response, Role};
use crate::types::{RequestId, TradeKind};
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;

/// What the checks remember between steps.
#[derive(Default)]
pub struct Checker {
    /// Violations found so far.
    pub violations: Vec<String>,
    /// Acknowledged number -> request id.
    pub acked: BTreeMap<u64, RequestId>,
    by_rid: BTreeMap<RequestId, u64>,
}

impl Checker {
    /// The newest acknowledged number (0 when none).
    pub fn newest_ack(&self) -> u64 {
        self.acked.keys().next_back().copied().unwrap_or(0)
    }

    /// The request acknowledged under `n`, if any.
    pub fn acked_number(&self, n: u64) -> Option<RequestId> {
        self.acked.get(&n).copied()
    }
}

/// A replica wrote these orders: each must be the catalog's trade under its number.
pub(super) fn appended(w: &mut World, id: NodeId, orders: &[Order]) {
    if w.group_tables().is_some() {
        // A catalog group: which catalog's trade an order is depends on who was primary (a
        // deposed one's unrecorded trade is rolled back later); the checks at rest compare
        // every catalog with the logs.
        return;
    }
    for o in orders {
        let trade = w.catalog.journal.get(o.number as usize);
        let same = trade.is_some_and(|t| {
            t.rid == o.rid
                && t.name == o.name
                && t.kind == o.kind
                && t.quantity == o.quantity
                && t.seq == o.cseq
        });
        if !same {
            w.violation(format!(
                "rules 2-3: replica {id} writes order {} ({} {} {} rid {}) but the catalog's trade {} is {:?}",
                o.number, o.kind, o.quantity, o.name, o.rid, o.number + 1, trade
            ));
        }
    }
}

/// Replica `leader` answers an order as placed: it and every follower it waits for hold it.
pub(super) fn acknowledged_by_leader(w: &mut World, leader: NodeId, o: &Order) {
    let Some(m) = w.machine(leader) else { return };
    let mut missing = Vec::new();
    if m.durable_len() <= o.number {
        missing.push(leader);
    }
    let epoch = m.term().epoch;
    for f in m.waited_followers().unwrap_or_default() {
        // A follower that is down is not "up": it must hold the order when it returns, which
        // the checks at rest see.
        let Some(fm) = w.machine(f) else { continue };
        // A follower that has moved on to a newer epoch is that epoch's leader's to fill: its
        // takeover recorded every catalog trade, this one included, under the same number
        // (a deposed leader acknowledging late what its followers held before, seed 19608).
        if fm.term().epoch > epoch {
            continue;
        }
        if fm.log().get(o.number).is_none_or(|h| h.rid != o.rid) {
            missing.push(f);
        }
    }
    if !missing.is_empty() {
        w.violation(format!(
            "rule 1: replica {leader} (epoch {epoch}) acknowledges order {} while replicas {missing:?}, which it reports in step, do not hold it",
            o.number
        ));
    }
}

/// A client was told its order has number `o.number`.
pub(super) fn client_acked(w: &mut World, asked: &PlaceOrder, o: &Order) {
    if o.rid != asked.rid
        || o.name != asked.name
        || o.kind != asked.kind
        || o.quantity != asked.quantity
    {
        w.violation(format!(
            "rule 2: request {} was answered with order {} of another request ({} {} {} rid {})",
            asked.rid, o.number, o.kind, o.quantity, o.name, o.rid
        ));
    }
    if let Some(other) = w.check.acked.get(&o.number).copied() {
        if other != asked.rid {
            w.violation(format!(
                "rule 2: number {} acknowledged to requests {other} and {}",
                o.number, asked.rid
            ));
        }
    }
    if let Some(n) = w.check.by_rid.get(&asked.rid).copied() {
        if n != o.number {
            w.violation(format!(
                "rule 2: request {} acknowledged as {n} and as {}",
                asked.rid, o.number
            ));
        }
    }
    w.check.acked.insert(o.number, asked.rid);
    w.check.by_rid.insert(asked.rid, o.number);
}

/// A client read order `n`, which it was acknowledged.
pub(super) fn client_read(w: &mut World, n: u64, result: &Result<Response, Error>) {
    let Some(rid) = w.check.acked_number(n) else {
        return;
    };
    match result {
        Ok(Response::Order(o)) if o.number == n && o.rid == rid => {}
        Ok(other) => w.violation(format!(
            "rule 9: acknowledged order {n} (rid {rid}) reads back as {other:?}"
        )),
        Err(Error::UnknownOrder(_)) => w.violation(format!(
            "rule 9: acknowledged order {n} is answered unknown"
        )),
        Err(_) => {}
    }
}

/// At most one replica serves as leader in each epoch.
pub(super) fn one_leader_per_epoch(w: &mut World, id: NodeId) {
    let Some(m) = w.machine(id) else { return };
    if m.role() != Role::Leader {
        return;
    }
    let epoch = m.term().epoch;
    let other = w
        .machines()
        .find(|(o, om)| *o != id && om.role() == Role::Leader && om.term().epoch == epoch)
        .map(|(o, _)| o);
    if let Some(o) = other {
        w.violation(format!(
            "rule 5: replicas {id} and {o} both lead epoch {epoch}"
        ));
    }
}

/// The checks at rest; see the module docs.
pub(super) fn at_rest(w: &mut World) {
    let ids: Vec<NodeId> = w.replica_ids().into_iter().collect();
    let first = w.file(ids[0]).to_vec();
    for id in &ids[1..] {
        if w.file(*id) != first.as_slice() {
            w.violation(format!(
                "rule 4: at rest, replica {id}'s order file differs from replica {}'s",
                ids[0]
            ));
        }
    }
    let log = match OrderLog::from_bytes(Path::new("orders.jsonl"), &first) {
        Ok((log, _)) => log,
        Err(e) => return w.violation(format!("rule 7: at rest, an order file does not load: {e}")),
    };
    let len = log.next_number();
    if w.group_tables().is_some() {
        return group_at_rest(w, &log);
    }
    if len != w.catalog.journal.len() as u64 {
        w.violation(format!(
            "rule 3: at rest the logs hold {len} orders, the catalog {} trades",
            w.catalog.journal.len()
        ));
    }
    let mut epoch = 0;
    let mut table: BTreeMap<String, (i64, u64)> = w
        .catalog
        .initial
        .iter()
        .map(|(k, v)| (k.clone(), (*v as i64, 0)))
        .collect();
    for n in 0..len {
        let o = log.get(n).expect("held");
        if o.epoch < epoch {
            w.violation(format!(
                "rule 4: at rest, order {n}'s epoch {} is below an earlier order's {epoch}",
                o.epoch
            ));
        }
        epoch = o.epoch;
        let t = table.entry(o.name.clone()).or_default();
        match o.kind {
            TradeKind::Buy => t.0 -= o.quantity as i64,
            TradeKind::Sell => t.0 += o.quantity as i64,
        }
        t.1 += o.quantity;
    }
    let acked: Vec<(u64, RequestId)> = w.check.acked.iter().map(|(n, r)| (*n, *r)).collect();
    for (n, rid) in acked {
        if log.get(n).is_none_or(|o| o.rid != rid) {
            w.violation(format!(
                "rule 1: at rest, acknowledged order {n} (rid {rid}) is not in the logs"
            ));
        }
    }
    for (name, (quantity, volume)) in w.catalog.stocks.clone() {
        let expect = table.get(&name).copied().unwrap_or_default();
        if (quantity as i64, volume) != expect {
            w.violation(format!(
                "rule 3: {name} has quantity {quantity} and volume {volume} at the catalog, the log says {expect:?}"
            ));
        }
    }
}

/// At rest with a catalog group: every catalog holds exactly the logs' trades, request id for
/// request id under the same numbers, and its table is the initial stocks plus the log
/// (rule 3 on every catalog); every acknowledged order is in the log; every order was issued.
fn group_at_rest(w: &mut World, log: &OrderLog) {
    let len = log.next_number();
    let mut expect: BTreeMap<String, (i64, u64)> = w
        .catalog
        .initial
        .iter()
        .map(|(k, v)| (k.clone(), (*v as i64, 0)))
        .collect();
    let mut problems = Vec::new();
    for n in 0..len {
        let o = log.get(n).expect("held");
        if !w.issued.contains(&o.rid) {
            problems.push(format!(
                "rule 2: order {n} (rid {}) was never issued by a client",
                o.rid
            ));
        }
        let t = expect.entry(o.name.clone()).or_default();
        match o.kind {
            TradeKind::Buy => t.0 -= o.quantity as i64,
            TradeKind::Sell => t.0 += o.quantity as i64,
        }
        t.1 += o.quantity;
    }
    for (n, rid) in w.check.acked.clone() {
        if log.get(n).is_none_or(|o| o.rid != rid) {
            problems.push(format!(
                "rule 1: at rest, acknowledged order {n} (rid {rid}) is not in the logs"
            ));
        }
    }
    let tables = w.group_tables().unwrap_or_default();
    for (i, t) in tables.iter().enumerate() {
        let c = i + 1;
        if t.last_seq() != len {
            problems.push(format!(
                "rule 3: at rest catalog {c} holds {} trades, the logs {len} orders",
                t.last_seq()
            ));
        }
        for n in 0..len.min(t.last_seq()) {
            let want = log.get(n).map(|o| o.rid);
            let got = t.rid_at(n + 1);
            if got.is_some() && got != want {
                problems.push(format!(
                    "rules 2-3: at rest catalog {c}'s trade {} is request {got:?}, the log's order {n} is {want:?}",
                    n + 1
                ));
                break;
            }
        }
        for s in t.stocks() {
            let want = expect.get(&s.name).copied().unwrap_or_default();
            if (s.quantity as i64, s.volume) != want {
                problems.push(format!(
                    "rule 3: at rest catalog {c} has {} at quantity {} volume {}, the log says {want:?}",
                    s.name, s.quantity, s.volume
                ));
            }
        }
    }
    for p in problems {
        w.violation(p);
    }
}
