//! Several front ends, each with its own supervisor and cache, over one set of replicas: they
//! pick the same leader and epoch, their orders share one numbering, and a leader kill moves
//! both to the same new leader without a client-visible error.

use crate::harness::*;
use std::collections::BTreeSet;
use std::time::Duration;
use tradenet_actors::types::TradeKind;

fn both_agree(a: &str, b: &str) -> Option<(u64, u64)> {
    let x = serving_leader(a)?;
    (Some(x) == serving_leader(b)).then_some(x)
}

#[test]
fn two_front_ends_agree_on_the_leader_and_share_one_numbering() {
    let mut c = Cluster::up(Opts::default());
    let first = c.frontend.clone();
    let second = c.start_extra_frontend();
    let (leader, epoch) = wait_for("both front ends to agree", Duration::from_secs(10), || {
        both_agree(&first, &second)
    });
    assert_eq!(leader, 3);

    let mut numbers = BTreeSet::new();
    for i in 0..10 {
        let fe = if i % 2 == 0 { &first } else { &second };
        let kind = if i % 3 == 0 {
            TradeKind::Buy
        } else {
            TradeKind::Sell
        };
        let (status, body) = order(fe, "GameStart", kind, 1);
        assert_eq!(status, 200, "{body}");
        assert!(
            numbers.insert(transaction_number(&body)),
            "a number given twice: {body}"
        );
    }

    c.kill("order-3");
    // Both keep trading through the failover.
    for i in 0..10 {
        let fe = if i % 2 == 0 { &first } else { &second };
        let (status, body) = order(fe, "FishCo", TradeKind::Sell, 1);
        assert_eq!(status, 200, "{body}");
        assert!(
            numbers.insert(transaction_number(&body)),
            "a number given twice: {body}"
        );
    }
    let (new_leader, new_epoch) = wait_for(
        "both front ends to agree again",
        Duration::from_secs(10),
        || both_agree(&first, &second),
    );
    assert_eq!(new_leader, 2);
    assert!(new_epoch > epoch);
    assert_eq!(numbers, (0..20).collect(), "one numbering, no gaps");

    c.start_replica(3);
    let (back, last_epoch) = wait_for(
        "the returning replica to lead for both",
        Duration::from_secs(10),
        || both_agree(&first, &second).filter(|(l, _)| *l == 3),
    );
    assert_eq!(back, 3);
    assert!(last_epoch > new_epoch);
    let (status, body) = order(&second, "BoarCo", TradeKind::Buy, 2);
    assert_eq!((status, transaction_number(&body)), (200, 20));
    c.wait_converged();
}
