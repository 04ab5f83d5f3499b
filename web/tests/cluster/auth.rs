//! Who may call what: with a cluster secret configured, every call under `/internal/` needs
//! `Authorization: Bearer <secret>`; a forged or malformed internal call is refused (401 without
//! the secret, 400 for a bad body with it), changes nothing and panics nothing. The calls are
//! the ones an adversarial run used to break the exchange.

use crate::harness::*;
use serde_json::{json, Value};
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

const SECRET: &str = "correct-horse-battery-staple";

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Every forged call of the adversarial run, as (service address, path, body).
fn forged(c: &Cluster) -> Vec<(String, &'static str, Value)> {
    let leader = c.replicas[&3].clone();
    let follower = c.replicas[&1].clone();
    vec![
        // Would fence every leader forever (it is journaled).
        (
            c.catalog.clone(),
            wire::TRADES_SINCE,
            json!({"after": 0, "epoch": 1_000_000_000_000u64, "limit": 10}),
        ),
        // Would make the supervisor's next epoch wrap.
        (
            follower.clone(),
            wire::TERM,
            json!({"epoch": u64::MAX, "leader": 1}),
        ),
        // Would redirect the front end's invalidations.
        (
            c.catalog.clone(),
            wire::SUBSCRIBE,
            json!({"id": "0000000000000000", "url": "http://127.0.0.1:9"}),
        ),
        // Would plant a fake order, or panic the order log.
        (
            follower.clone(),
            wire::REPLICATE,
            json!({"term": {"epoch": 99, "leader": 3}, "prev": null, "orders": [
                {"number": 1000000, "epoch": 99, "rid": "0000000000000000000000000000beef",
                 "name": "GameStart", "type": "buy", "quantity": 1099511627776u64, "cseq": 1000001}
            ]}),
        ),
        // Would trade without a leader.
        (
            c.catalog.clone(),
            wire::TRADE,
            json!({"rid": "0000000000000000000000000000f00d", "name": "GameStart", "type": "buy",
                   "quantity": 1, "epoch": 1_000_000u64}),
        ),
        (
            leader,
            wire::REPLICA_ORDERS,
            json!({"rid": "0000000000000000000000000000cafe",
            "name": "GameStart", "quantity": 1, "type": "buy"}),
        ),
    ]
}

#[test]
fn internal_calls_need_the_cluster_secret_and_forged_ones_change_nothing() {
    let c = Cluster::up(Opts {
        extra: format!("[cluster]\nsecret = {SECRET:?}\n"),
        ..Opts::default()
    });
    // The cluster works: heartbeats, terms, trades, replication and pushes carry the secret.
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 1);
    assert_eq!(status, 200, "{body}");
    let before = c.status();
    let stocks = catalog_stocks(&c.catalog);

    let wrong = bearer("wrong");
    for (addr, path, body) in forged(&c) {
        for headers in [vec![], vec![("Authorization", wrong.as_str())]] {
            let (status, answer) = post(&addr, path, &body, &headers);
            assert_eq!(status, 401, "{path} at {addr} with {headers:?}: {answer}");
            assert_eq!(answer["error"]["kind"], "unauthorized", "{answer}");
            assert_eq!(answer["error"]["code"], 401, "{answer}");
        }
    }
    let (status, _) = get(&c.replicas[&1], wire::REPLICA_STATE);
    assert_eq!(status, 401, "even the heartbeat needs the secret");

    // With the secret, the malformed ones are 400 and change nothing either.
    let ok = bearer(SECRET);
    let auth = [("Authorization", ok.as_str())];
    let follower = c.replicas[&1].clone();
    let (status, answer) = post(
        &follower,
        wire::TERM,
        &json!({"epoch": u64::MAX, "leader": 1}),
        &auth,
    );
    assert_eq!(status, 400, "an epoch of 2^64-1: {answer}");
    let (status, answer) = post(
        &c.catalog,
        wire::TRADES_SINCE,
        &json!({"after": 0, "epoch": u64::MAX, "limit": 1}),
        &auth,
    );
    assert_eq!(status, 400, "{answer}");
    let (addr, path, body) = forged(&c).swap_remove(3);
    let (status, answer) = post(&addr, path, &body, &auth);
    assert_eq!(status, 400, "order 1,000,000 with quantity 2^40: {answer}");

    // Nothing changed, nothing died: same leader and epoch, same stocks, and trading goes on
    // with the next number.
    let after = c.status();
    assert_eq!((after.leader, after.epoch), (before.leader, before.epoch));
    assert_eq!(catalog_stocks(&c.catalog), stocks);
    for addr in c.replicas.values() {
        assert_eq!(get(addr, wire::HEALTH).0, 200, "{addr} is alive");
    }
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(transaction_number(&body), 1);
    let log = String::from_utf8(c.wait_converged()).unwrap();
    assert_eq!(log.lines().count(), 2, "no planted order: {log}");
}
