//! Calls batched between the front end and the leader (`POST /internal/v1/orders/batch`,
//! `/orders/read`) and the catalog (`POST /internal/v1/stocks`): each item of a batch keeps its
//! own answer (an error of one does not touch the others, a repeated request id is one trade),
//! malformed batches are refused whole, and requests sent through the front end by many
//! clients at once are each carried once and answered once.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::catalog::{LookupBatch, StockResult, StockResults};
use tradenet_actors::wire::frontend::PlaceOrder;
use tradenet_actors::wire::replica::{
    OrderResult, OrderResults, PlaceBatch, ReadBatch, MAX_PLACE_BATCH,
};
use tradenet_actors::wire::{self, ErrorKind};

fn place(rid: u128, name: &str, kind: TradeKind, quantity: u64) -> PlaceOrder {
    PlaceOrder {
        rid: RequestId(rid),
        name: name.into(),
        quantity,
        kind,
    }
}

fn send_batch(addr: &str, orders: Vec<PlaceOrder>) -> (u16, Value) {
    post(addr, wire::REPLICA_ORDER_BATCH, &PlaceBatch { orders }, &[])
}

fn results(body: &Value) -> Vec<OrderResult> {
    data::<OrderResults>(body).results
}

fn error_kind(r: &OrderResult) -> Option<ErrorKind> {
    match r {
        OrderResult::Error(e) => Some(e.kind),
        OrderResult::Ok(_) => None,
    }
}

#[test]
fn a_batch_is_answered_order_by_order_and_refused_whole_only_when_malformed() {
    let c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    let at_leader = c.replicas[&leader].clone();

    let (status, body) = send_batch(
        &at_leader,
        vec![
            place(1, "GameStart", TradeKind::Buy, 2),
            place(2, "NoSuchStock", TradeKind::Buy, 1),
            place(3, "FishCo", TradeKind::Buy, 1000),
            place(1, "GameStart", TradeKind::Buy, 2),
            place(4, "FishCo", TradeKind::Sell, 5),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let r = results(&body);
    assert_eq!(r.len(), 5, "one result per order: {body}");
    let OrderResult::Ok(first) = &r[0] else {
        panic!("a buy of 2 GameStart: {body}")
    };
    assert_eq!(error_kind(&r[1]), Some(ErrorKind::NotFound), "{body}");
    assert_eq!(
        error_kind(&r[2]),
        Some(ErrorKind::InsufficientQuantity),
        "{body}"
    );
    let OrderResult::Ok(again) = &r[3] else {
        panic!("the same request id again: {body}")
    };
    assert_eq!(
        again.number, first.number,
        "one request id, one trade: {body}"
    );
    let OrderResult::Ok(sell) = &r[4] else {
        panic!("a sell: {body}")
    };
    assert_ne!(sell.number, first.number);
    // Two trades happened, not three: GameStart went down by 2 once.
    assert_eq!(stock(&c.catalog, "GameStart").quantity, 98);
    assert_eq!(stock(&c.catalog, "FishCo").quantity, 105);

    // Malformed batches are refused whole, with nothing traded.
    let (status, body) = send_batch(&at_leader, vec![]);
    assert_eq!((status, error_code(&body)), (400, 400), "{body}");
    let too_many = (0..=MAX_PLACE_BATCH as u128)
        .map(|i| place(100 + i, "BoarCo", TradeKind::Sell, 1))
        .collect();
    let (status, body) = send_batch(&at_leader, too_many);
    assert_eq!(status, 400, "{} orders: {body}", MAX_PLACE_BATCH + 1);
    let (status, body) = post(
        &at_leader,
        wire::REPLICA_ORDER_BATCH,
        &json!({"orders": [{"rid": "zz", "name": "BoarCo", "quantity": 1, "type": "sell"}]}),
        &[],
    );
    assert_eq!(status, 400, "a malformed request id: {body}");
    assert_eq!(stock(&c.catalog, "BoarCo").quantity, 100);

    // Reads: each number its own answer; one not recorded yet waits as a single read would,
    // so only numbers the log holds are asked here, and a malformed batch is refused.
    let (status, body) = post(
        &at_leader,
        wire::REPLICA_ORDER_READ,
        &ReadBatch {
            numbers: vec![sell.number, first.number, sell.number],
        },
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let read: Vec<u64> = results(&body)
        .iter()
        .map(|r| match r {
            OrderResult::Ok(o) => o.number,
            OrderResult::Error(e) => panic!("read: {e:?}"),
        })
        .collect();
    assert_eq!(read, vec![sell.number, first.number, sell.number]);
    let (status, body) = post(
        &at_leader,
        wire::REPLICA_ORDER_READ,
        &ReadBatch { numbers: vec![] },
        &[],
    );
    assert_eq!(status, 400, "{body}");

    // Lookups at the catalog: each name its own answer, an unknown one its own 404.
    let (status, body) = post(
        &c.catalog,
        wire::STOCK_BATCH,
        &LookupBatch {
            names: vec!["GameStart".into(), "Nope".into(), "FishCo".into()],
        },
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let looked = data::<StockResults>(&body).results;
    match &looked[..] {
        [StockResult::Ok(g), StockResult::Error(e), StockResult::Ok(f)] => {
            assert_eq!((g.name.as_str(), g.quantity), ("GameStart", 98));
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert_eq!((f.name.as_str(), f.quantity), ("FishCo", 105));
        }
        other => panic!("three results: {other:?}"),
    }
    for names in [vec![], vec!["BoarCo".to_string(); 257]] {
        let n = names.len();
        let (status, body) = post(&c.catalog, wire::STOCK_BATCH, &LookupBatch { names }, &[]);
        assert_eq!(status, 400, "{n} names: {body}");
    }

    // A follower answers each order with a retryable not_leader, and trades nothing.
    let follower = *c.replicas.keys().find(|id| **id != leader).unwrap();
    let (status, body) = send_batch(
        &c.replicas[&follower],
        vec![place(200, "BoarCo", TradeKind::Sell, 1)],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        error_kind(&results(&body)[0]),
        Some(ErrorKind::NotLeader),
        "{body}"
    );
    assert_eq!(stock(&c.catalog, "BoarCo").quantity, 100);
}

/// The value of the front end's series `name{kind="…"}`.
fn batch_metric(frontend: &str, name: &str, kind: &str) -> f64 {
    let (status, body) = get(frontend, wire::METRICS);
    assert_eq!(status, 200);
    let text = body.as_str().expect("/metrics is text");
    let series = format!("{name}{{kind=\"{kind}\",service=\"frontend\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Runs `f` from `clients` threads `each` times at once; every result.
fn from_many<T: Send>(clients: usize, each: usize, f: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| s.spawn(|| (0..each).map(|_| f()).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn requests_from_many_clients_at_once_are_each_carried_once_and_answered_once() {
    // No cache: every lookup is a batched call to the catalog.
    let c = Cluster::up(Opts {
        cache_size: 0,
        ..Opts::default()
    });
    let (clients, each) = (32, 5);
    let total = (clients * each) as u64;
    let numbers = from_many(clients, each, || {
        let (status, body) = order(&c.frontend, "MenhirCo", TradeKind::Sell, 1);
        assert_eq!(status, 200, "{body}");
        transaction_number(&body)
    });
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len() as u64, total, "every order its own number");
    assert_eq!(
        distinct.iter().next_back(),
        Some(&(total - 1)),
        "numbers 0..{total}"
    );

    // Reads: each order read back as placed.
    let views = std::thread::scope(|s| {
        let handles: Vec<_> = numbers
            .chunks(each)
            .map(|chunk| {
                s.spawn(|| {
                    chunk
                        .iter()
                        .map(|n| {
                            let (status, body) = get(&c.frontend, &wire::order_path(*n));
                            assert_eq!(status, 200, "GET /orders/{n}: {body}");
                            let v: tradenet_actors::wire::frontend::OrderView = data(&body);
                            assert_eq!(v.number, *n);
                            assert_eq!((v.name.as_str(), v.quantity), ("MenhirCo", 1));
                        })
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(views as u64, total);

    // Lookups: all see every sell (each trade was durable at the catalog before its answer).
    let quantities = from_many(clients, each, || stock(&c.frontend, "MenhirCo").quantity);
    assert!(
        quantities.iter().all(|q| *q == 100 + total),
        "{quantities:?}"
    );

    // Every item carried exactly once (no call failed, so none was retried), in at least one
    // call and at most one call each. Reads go to a follower in step, or to the leader.
    for kinds in [&["place"][..], &["read", "read_follower"], &["lookup"]] {
        let sum = |metric: &str| -> f64 {
            kinds
                .iter()
                .map(|kind| batch_metric(&c.frontend, metric, kind))
                .sum()
        };
        let items = sum("tradenet_batch_items_total");
        assert_eq!(items, total as f64, "{kinds:?}");
        let calls = sum("tradenet_batch_calls_total");
        assert!(
            (1.0..=total as f64).contains(&calls),
            "{kinds:?}: {calls} calls for {total} items"
        );
    }
}
