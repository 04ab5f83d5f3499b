//! A catalog following the order log, pure: one page of orders from an order replica goes in,
//! the catalog's table comes out matching that log, with the journal entries to write.
//!
//! This is the step a standby catalog repeats to stay in step, and the step a new primary takes
//! before it sequences (`docs/catalog-failover.md`). Order `n` is trade `n + 1`. For every order
//! of the page that the table already holds, the request ids are compared: the same id is the
//! same trade; another id means the table went another way from there (trades it applied that
//! no order log recorded, as a deposed primary's unrecorded tail), so the table is rolled back
//! to just before it and follows the log from there. Orders after the table's last trade are
//! applied as recorded trades.
//!
//! The caller keeps how far the table is confirmed (every trade up to there matches the log)
//! and reads the log from there. A trade not confirmed yet must still be in the table's trade
//! window to be compared; one that left it means starting again from the initial stocks and
//! the whole log (`Stall::PastWindow`). Unconfirmed trades are a primary's own that no leader
//! recorded yet, a few hundred at most against a window of 200,000 by default.

use crate::catalog::{Catalog, JournalEntry};
use crate::orderlog::Order;
use crate::wire::catalog::TradeRecord;
use crate::{Error, Result};

/// What following one page did.
#[derive(Debug, PartialEq)]
pub struct Followed {
    /// Entries to journal, in order (a rollback first, if any, then the trades applied).
    pub entries: Vec<JournalEntry>,
    /// Every trade up to this one matches the log now: ask from this order number next.
    pub confirmed: u64,
    /// Trades undone (0 when the table matched the log).
    pub undone: u64,
}

/// Why a page could not be followed now.
#[derive(Debug, PartialEq)]
pub enum Stall {
    /// The page starts after the first trade not confirmed yet: ask from order `from`.
    Gap {
        /// The first order number to ask for.
        from: u64,
    },
    /// A rollback is due but some trades are not durable yet: try again once they are.
    Pending,
    /// A trade not confirmed yet left the trade window, so it cannot be compared: start again
    /// from the initial stocks and the whole log.
    PastWindow,
}

/// Follows `page`, consecutive orders from the log, given that every trade up to `confirmed`
/// already matches it; the page must start at or before order `confirmed` (the first trade
/// not confirmed). `Err(Error)` for a page that is not well-formed (not consecutive, a wrong
/// `cseq`, a trade the table refuses); `Ok(Err(Stall))` when it cannot be followed now.
pub fn follow(
    catalog: &mut Catalog,
    confirmed: u64,
    page: &[Order],
) -> Result<std::result::Result<Followed, Stall>> {
    let confirmed = confirmed.min(catalog.last_seq());
    let Some(first) = page.first() else {
        return Ok(Ok(Followed {
            entries: Vec::new(),
            confirmed,
            undone: 0,
        }));
    };
    for (i, o) in page.iter().enumerate() {
        let want = first.number.checked_add(i as u64);
        if Some(o.number) != want || o.number.checked_add(1) != Some(o.cseq) {
            return Err(Error::BadRequest(format!(
                "order {} of a page starting at {} is not where it belongs (cseq {})",
                o.number, first.number, o.cseq
            )));
        }
    }
    if first.number > confirmed {
        return Ok(Err(Stall::Gap { from: confirmed }));
    }
    let mut entries = Vec::new();
    let mut undone = 0;
    for o in page {
        let seq = o.cseq;
        if seq <= confirmed {
            continue;
        }
        if seq <= catalog.last_seq() {
            match catalog.rid_at(seq) {
                None => return Ok(Err(Stall::PastWindow)),
                Some(rid) if rid == o.rid => continue,
                Some(_) => {
                    if catalog.last_seq() > catalog.durable_seq() {
                        return Ok(Err(Stall::Pending));
                    }
                    let before = catalog.last_seq();
                    if let Some(entry) = catalog.rollback_to(seq - 1)? {
                        entries.push(entry);
                    }
                    undone += before - catalog.last_seq();
                }
            }
        }
        entries.push(catalog.apply_recorded(TradeRecord {
            seq,
            rid: o.rid,
            name: o.name.clone(),
            kind: o.kind,
            quantity: o.quantity,
            epoch: o.epoch,
        })?);
    }
    Ok(Ok(Followed {
        entries,
        confirmed: confirmed.max(first.number + page.len() as u64),
        undone,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::Accepted;
    use crate::types::{RequestId, StockSeed, TradeKind};
    use crate::wire::catalog::TradeRequest;

    /// Two stocks of 100 (also the catalog node's tests').
    pub(crate) fn seeds() -> Vec<StockSeed> {
        ["GameStart", "FishCo"]
            .iter()
            .map(|n| StockSeed {
                name: n.to_string(),
                price: 1.0,
                quantity: 100,
            })
            .collect()
    }

    fn order(number: u64, rid: u128, name: &str, kind: TradeKind, quantity: u64) -> Order {
        Order {
            number,
            epoch: 1,
            rid: RequestId(rid),
            name: name.into(),
            kind,
            quantity,
            cseq: number + 1,
        }
    }

    /// Trades order `o` at `c` as its leader did.
    fn trade_as_leader(c: &mut Catalog, o: &Order) -> Accepted {
        c.trade(&TradeRequest {
            rid: o.rid,
            name: o.name.clone(),
            kind: o.kind,
            quantity: o.quantity,
            epoch: 1,
        })
        .unwrap()
    }

    /// A primary's table after the trades of `log`, traded as a leader would.
    fn primary(log: &[Order]) -> Catalog {
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        for o in log {
            let a = trade_as_leader(&mut c, o);
            assert!(matches!(a, Accepted::New(_, s) if s == o.cseq));
        }
        c.mark_durable(c.last_seq());
        c
    }

    fn log() -> Vec<Order> {
        vec![
            order(0, 1, "FishCo", TradeKind::Buy, 5),
            order(1, 2, "GameStart", TradeKind::Sell, 2),
            order(2, 3, "FishCo", TradeKind::Buy, 7),
            order(3, 4, "GameStart", TradeKind::Buy, 1),
        ]
    }

    fn durable(c: &mut Catalog) {
        c.mark_durable(c.last_seq());
    }

    fn sell(rid: u128, quantity: u64) -> TradeRequest {
        TradeRequest {
            rid: RequestId(rid),
            name: "FishCo".into(),
            kind: TradeKind::Sell,
            quantity,
            epoch: 1,
        }
    }

    #[test]
    fn a_standby_follows_page_by_page_to_the_primarys_table() {
        let log = log();
        let mut standby = Catalog::new(&seeds(), 100).unwrap();
        let f = follow(&mut standby, 0, &log[..2]).unwrap().unwrap();
        assert_eq!((f.entries.len(), f.confirmed, f.undone), (2, 2, 0));
        durable(&mut standby);
        // A page overlapping what it holds: the confirmed part is skipped, not applied twice.
        let f = follow(&mut standby, 2, &log[1..]).unwrap().unwrap();
        assert_eq!(
            (f.entries.len(), f.confirmed),
            (2, 4),
            "orders 2 and 3 only"
        );
        durable(&mut standby);
        assert_eq!(standby.stocks(), primary(&log).stocks());
        let f = follow(&mut standby, 4, &log[3..]).unwrap().unwrap();
        assert_eq!((f.entries.len(), f.confirmed), (0, 4), "nothing new");
    }

    #[test]
    fn a_deposed_primary_drops_its_unrecorded_tail_and_follows_the_log() {
        let log = log();
        // It traded orders 0-1 as the log has them (confirmed), then two trades no log
        // recorded.
        let mut old = primary(&[
            log[0].clone(),
            log[1].clone(),
            order(2, 90, "FishCo", TradeKind::Buy, 50),
            order(3, 91, "FishCo", TradeKind::Sell, 3),
        ]);
        let f = follow(&mut old, 2, &log[2..]).unwrap().unwrap();
        assert_eq!(f.entries[0], JournalEntry::Rollback { to: 2 });
        assert_eq!((f.undone, f.confirmed), (2, 4));
        durable(&mut old);
        assert_eq!(old.stocks(), primary(&log).stocks());
        assert_eq!(old.rid_at(3), Some(RequestId(3)));
    }

    #[test]
    fn its_own_trades_that_the_log_recorded_are_kept_and_those_beyond_it_wait() {
        let log = log();
        // A primary that sequenced all four itself and one more, not recorded yet.
        let mut p = primary(&log);
        p.trade(&sell(77, 1)).unwrap();
        durable(&mut p);
        let f = follow(&mut p, 0, &log).unwrap().unwrap();
        assert_eq!((f.entries.len(), f.undone, f.confirmed), (0, 0, 4));
        assert_eq!(
            p.last_seq(),
            5,
            "trade 5 is beyond the log: kept, for the leader to record"
        );
    }

    #[test]
    fn stalls_and_malformed_pages() {
        let log = log();
        let mut c = Catalog::new(&seeds(), 100).unwrap();
        assert_eq!(
            follow(&mut c, 0, &log[2..]).unwrap(),
            Err(Stall::Gap { from: 0 }),
            "nothing confirmed yet: ask from order 0"
        );
        let mut skipping = log.clone();
        skipping.remove(1);
        assert!(follow(&mut c, 0, &skipping).is_err(), "not consecutive");
        let mut wrong = log[..1].to_vec();
        wrong[0].cseq = 5;
        assert!(follow(&mut c, 0, &wrong).is_err(), "cseq is number + 1");
        // A rollback over trades not durable yet waits.
        let mut pending = primary(&log[..1]);
        pending.trade(&sell(70, 1)).unwrap();
        assert_eq!(
            follow(&mut pending, 1, &log[..2]).unwrap(),
            Err(Stall::Pending)
        );
        durable(&mut pending);
        assert_eq!(
            follow(&mut pending, 1, &log[..2]).unwrap().unwrap().undone,
            1
        );
        // An unconfirmed trade that left the window cannot be compared.
        let mut narrow = Catalog::new(&seeds(), 1).unwrap();
        narrow.trade(&sell(60, 1)).unwrap();
        narrow.trade(&sell(61, 2)).unwrap();
        durable(&mut narrow);
        assert_eq!(narrow.rid_at(1), None, "trade 1 left the window");
        assert_eq!(
            follow(&mut narrow, 0, &log[..2]).unwrap(),
            Err(Stall::PastWindow)
        );
        assert_eq!(narrow.last_seq(), 2, "a stalled page changes nothing");
        // Confirmed, it needs no comparing: trade 2 differs and is rolled back.
        let f = follow(&mut narrow, 1, &log[1..2]).unwrap().unwrap();
        assert_eq!((f.undone, f.confirmed), (1, 2));
    }

    /// Many random histories: a log, and a catalog that holds a random prefix of it and then a
    /// random tail of its own that no log recorded, some of it not durable, with a random part
    /// of the prefix known to be confirmed. Following the log in random pages from the
    /// confirmed point, waiting out pending trades, always ends at the log's table (plus its
    /// own tail when the log ended before it went another way), or says it cannot, and then
    /// only because an unconfirmed trade left the window.
    #[test]
    fn random_histories_end_at_the_logs_table() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut resets, mut rolled_back, mut followed) = (0, 0, 0);
        let names = ["GameStart", "FishCo"];
        for _ in 0..3000 {
            let len = rng.gen_range(0..40u64);
            let log: Vec<Order> = (0..len)
                .map(|n| {
                    let kind = [TradeKind::Buy, TradeKind::Sell][rng.gen_range(0..2)];
                    let name = names[rng.gen_range(0..2)];
                    order(n, 1000 + u128::from(n), name, kind, rng.gen_range(1..4))
                })
                .collect();
            let window = rng.gen_range(1..30usize);
            let mut c = Catalog::new(&seeds(), window).unwrap();
            let prefix = rng.gen_range(0..=len);
            let tail = rng.gen_range(0..10u128);
            for o in &log[..prefix as usize] {
                trade_as_leader(&mut c, o);
            }
            for i in 0..tail {
                c.trade(&sell(5000 + i, 1)).unwrap();
            }
            c.mark_durable(rng.gen_range(0..=c.last_seq()));
            let mut confirmed = rng.gen_range(0..=prefix);
            let unconfirmed_left_window = c.last_seq().saturating_sub(window as u64) > confirmed;
            let mut rounds = 0;
            let outcome = loop {
                rounds += 1;
                assert!(rounds < 200, "following does not end");
                let start = confirmed.min(len) as usize;
                let end = (start + rng.gen_range(1..8usize)).min(len as usize);
                match follow(&mut c, confirmed, &log[start..end]).unwrap() {
                    Ok(f) => {
                        rolled_back += usize::from(f.undone > 0);
                        c.mark_durable(c.last_seq());
                        confirmed = f.confirmed;
                        if confirmed >= len {
                            break Ok(());
                        }
                    }
                    Err(Stall::Gap { from }) => panic!("a page from {start} asked from {from}"),
                    Err(Stall::Pending) => {
                        c.mark_durable(c.last_seq());
                    }
                    Err(Stall::PastWindow) => break Err(()),
                }
            };
            match outcome {
                Ok(()) => {
                    followed += 1;
                    if prefix == len {
                        // The log ended before the table went another way: its own tail stays.
                        assert_eq!(c.last_seq(), len + tail as u64);
                    } else {
                        assert_eq!(c.last_seq(), len);
                        assert_eq!(c.stocks(), primary(&log).stocks(), "log {log:?}");
                    }
                }
                Err(()) => {
                    resets += 1;
                    assert!(
                        unconfirmed_left_window,
                        "a reset with every unconfirmed trade in the window"
                    );
                }
            }
        }
        assert!(
            rolled_back > 300,
            "histories that went another way: {rolled_back}"
        );
        assert!(
            followed > 1000 && resets > 0,
            "followed {followed}, resets {resets}"
        );
    }
}
