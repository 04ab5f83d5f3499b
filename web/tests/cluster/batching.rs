//! Orders batched between the front end and the leader (`POST /internal/v1/orders/batch`):
//! each order of a batch keeps its own request id, number and answer (an error of one does not
//! touch the others, a repeated request id is one trade), malformed batches are refused whole,
//! and orders sent through the front end by many clients at once are each carried once and
//! answered once.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::frontend::PlaceOrder;
use tradenet_actors::wire::replica::{PlaceBatch, PlaceResult, PlaceResults, MAX_PLACE_BATCH};
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

fn results(body: &Value) -> Vec<PlaceResult> {
    data::<PlaceResults>(body).results
}

fn error_kind(r: &PlaceResult) -> Option<ErrorKind> {
    match r {
        PlaceResult::Error(e) => Some(e.kind),
        PlaceResult::Ok(_) => None,
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
    let PlaceResult::Ok(first) = &r[0] else {
        panic!("a buy of 2 GameStart: {body}")
    };
    assert_eq!(error_kind(&r[1]), Some(ErrorKind::NotFound), "{body}");
    assert_eq!(
        error_kind(&r[2]),
        Some(ErrorKind::InsufficientQuantity),
        "{body}"
    );
    let PlaceResult::Ok(again) = &r[3] else {
        panic!("the same request id again: {body}")
    };
    assert_eq!(
        again.number, first.number,
        "one request id, one trade: {body}"
    );
    let PlaceResult::Ok(sell) = &r[4] else {
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

#[test]
fn orders_from_many_clients_at_once_are_each_carried_once_and_answered_once() {
    let c = Cluster::up(Opts::default());
    let (clients, each) = (32, 5);
    let numbers: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    (0..each)
                        .map(|_| {
                            let (status, body) = order(&c.frontend, "MenhirCo", TradeKind::Sell, 1);
                            assert_eq!(status, 200, "{body}");
                            transaction_number(&body)
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = (clients * each) as u64;
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len() as u64, total, "every order its own number");
    assert_eq!(
        distinct.iter().next_back(),
        Some(&(total - 1)),
        "numbers 0..{total}"
    );
    assert_eq!(stock(&c.catalog, "MenhirCo").quantity, 100 + total);
    for n in [0, total / 2, total - 1] {
        let (status, body) = get(&c.frontend, &wire::order_path(n));
        assert_eq!(status, 200, "GET /orders/{n}: {body}");
    }

    // The front end's counters: every order carried exactly once (no call failed, so none
    // was retried), in at least one call and at most one call each.
    let (status, body) = get(&c.frontend, wire::METRICS);
    assert_eq!(status, 200);
    let text = body.as_str().expect("/metrics is text");
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.rsplit_once(' ')?.1.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(metric("tradenet_order_batch_orders_total"), total as f64);
    let calls = metric("tradenet_order_batches_total");
    assert!(
        (1.0..=total as f64).contains(&calls),
        "{calls} calls for {total} orders"
    );
}
