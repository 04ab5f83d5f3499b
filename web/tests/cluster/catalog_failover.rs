//! Catalog failover with real processes (`docs/catalog-failover.md`, issue 12): a group of two
//! catalogs, the primary SIGKILLed under a stream of trades from several clients, the old
//! primary's return, and both killed together.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tradenet_actors::catalog_node::Role;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::{self, frontend::OrderView};

const STOCKS: [&str; 3] = ["GameStart", "FishCo", "BoarCo"];

fn group() -> Cluster {
    Cluster::up(Opts {
        catalogs: 2,
        ..Opts::default()
    })
}

/// One client's orders: sells and buys of one unit in turn (never refused), each under its
/// own Idempotency-Key, retried with the same key if the connection fails. Returns every
/// answer's status and body.
fn client(
    frontend: String,
    who: usize,
    round: usize,
    n: usize,
    done: Arc<AtomicUsize>,
) -> Vec<(u16, Value)> {
    let agent = keep_alive_agent();
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 { "sell" } else { "buy" };
            let body =
                json!({"name": STOCKS[(who + i) % STOCKS.len()], "quantity": 1, "type": kind});
            let key = format!("client-{who}-order-{i}-{round}");
            let answer = loop {
                if let Some(a) = try_post_with_headers(
                    &agent,
                    &frontend,
                    wire::ORDERS,
                    &body,
                    &[("Idempotency-Key", &key)],
                ) {
                    break a;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            done.fetch_add(1, Ordering::SeqCst);
            answer
        })
        .collect()
}

/// Runs `clients` clients of `each` orders; calls `during` once `after` orders were answered.
fn load(
    c: &mut Cluster,
    clients: usize,
    each: usize,
    after: usize,
    during: impl FnOnce(&mut Cluster),
) -> Vec<(u16, Value)> {
    // Each load's keys are its own (a key used again would replay its first answer).
    static ROUND: AtomicUsize = AtomicUsize::new(0);
    let round = ROUND.fetch_add(1, Ordering::SeqCst);
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|who| {
            let (f, d) = (c.frontend.clone(), done.clone());
            std::thread::spawn(move || client(f, who, round, each, d))
        })
        .collect();
    wait_for(
        "orders answered before the kill",
        Duration::from_secs(30),
        || (done.load(Ordering::SeqCst) >= after).then_some(()),
    );
    during(c);
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// Every answer is 200, and the numbers are exactly `from..from + answers.len()`.
fn assert_all_numbered(answers: &[(u16, Value)], from: u64) {
    let errors: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    let mut numbers: Vec<u64> = answers.iter().map(|(_, b)| transaction_number(b)).collect();
    numbers.sort_unstable();
    let want: Vec<u64> = (from..from + answers.len() as u64).collect();
    assert_eq!(
        numbers, want,
        "every trade has exactly one number, consecutive"
    );
}

fn node(catalog: &str) -> Option<tradenet_actors::wire::catalog::CatalogState> {
    let (status, body) = try_get(catalog, wire::STATUS)?;
    (status == 200).then(|| data::<tradenet_actors::wire::catalog::CatalogStatus>(&body).node)?
}

/// Waits until catalog `id` is the serving primary.
fn wait_primary(c: &Cluster, id: u64) {
    let addr = c.catalogs[&id].clone();
    wait_for(
        &format!("catalog {id} serving as primary"),
        Duration::from_secs(20),
        || node(&addr).filter(|n| n.role == Role::Primary).map(|_| ()),
    );
}

/// The orders `0..n`, read back through the front end.
fn orders(c: &Cluster, n: u64) -> Vec<OrderView> {
    (0..n)
        .map(|i| {
            let (status, body) = get(&c.frontend, &format!("/orders/{i}"));
            assert_eq!(status, 200, "order {i}: {body}");
            data::<OrderView>(&body)
        })
        .collect()
}

/// Waits until every catalog holds `n` trades with the same table; returns it.
fn wait_same_tables(c: &Cluster, n: u64) -> BTreeMap<String, (i64, i64)> {
    wait_for(
        "every catalog's table the same",
        Duration::from_secs(20),
        || {
            let tables: Vec<_> = c
                .catalogs
                .values()
                .map(|a| (catalog_status(a).last_trade, catalog_stocks(a)))
                .collect();
            tables
                .iter()
                .all(|t| *t == tables[0] && t.0 == n)
                .then(|| tables[0].1.clone())
        },
    )
}

#[test]
fn killing_the_primary_catalog_under_load_loses_no_order_and_shows_no_error() {
    let mut c = group();
    wait_primary(&c, 2);
    let answers = load(&mut c, 4, 40, 30, |c| c.kill("catalog-2"));
    assert_all_numbered(&answers, 0);
    wait_primary(&c, 1);
    let n = answers.len() as u64;
    let records = orders(&c, n);
    assert_conservation(&c.catalogs[&1], &records);
    assert!(
        c.log("frontend").contains("catalog 1 is primary"),
        "the front end logs the failover"
    );
    // /status shows the group: catalog 1 primary, catalog 2 down.
    wait_for(
        "/status showing the failover",
        Duration::from_secs(10),
        || {
            let s = c.status();
            let roles: Vec<(u64, String)> =
                s.catalogs.iter().map(|v| (v.id, v.role.clone())).collect();
            (s.catalog_primary == Some(1)
                && roles == [(1, "primary".to_string()), (2, "down".to_string())])
            .then_some(())
        },
    );

    // The old primary returns: being the highest id it is primary again, once it has caught
    // up with the order log; the other one follows as a standby. Same table, same trades.
    c.start_catalog_id(2);
    wait_primary(&c, 2);
    let more = load(&mut c, 2, 5, 0, |_| {});
    assert_all_numbered(&more, n);
    let total = n + more.len() as u64;
    let table = wait_same_tables(&c, total);
    let records = orders(&c, total);
    for addr in c.catalogs.values() {
        assert_conservation(addr, &records);
    }
    // The front end's cache (emptied at each change of primary) serves the new primary's
    // values, never an older one's.
    for name in STOCKS {
        let s = stock(&c.frontend, name);
        assert_eq!(
            (s.quantity as i64, s.volume as i64),
            table[name],
            "{name}: the front end vs the primary"
        );
    }
}

#[test]
fn both_catalogs_killed_and_restarted_recover_the_same_state() {
    let mut c = group();
    wait_primary(&c, 2);
    let first = load(&mut c, 2, 10, 0, |_| {});
    assert_all_numbered(&first, 0);
    c.kill("catalog-2");
    c.kill("catalog-1");
    c.start_catalog_id(1);
    c.start_catalog_id(2);
    wait_primary(&c, 2);
    let n = first.len() as u64;
    let second = load(&mut c, 2, 10, 0, |_| {});
    assert_all_numbered(&second, n);
    let total = n + second.len() as u64;
    wait_same_tables(&c, total);
    let records = orders(&c, total);
    for addr in c.catalogs.values() {
        assert_conservation(addr, &records);
    }
}

#[test]
fn a_standby_answers_no_lookup_and_no_trade() {
    let c = group();
    wait_primary(&c, 2);
    let standby = &c.catalogs[&1];
    let (status, body) = get(standby, "/stocks/GameStart");
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("standby"), "{body}");
    let (status, body) = post(
        standby,
        wire::TRADE_BATCH,
        &json!({"trades": [{"rid": "00000000000000000000000000000001", "name": "GameStart", "type": "buy", "quantity": 1, "epoch": 9}], "leader": 3, "log_end": 0}),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("unavailable"), "{body}");
    // A trade through the front end still works, and the standby follows it.
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 2);
    assert_eq!(status, 200, "{body}");
    wait_same_tables(&c, 1);
}

#[test]
fn a_paused_primary_catalog_is_replaced_and_follows_when_it_resumes() {
    let mut c = group();
    wait_primary(&c, 2);
    // SIGSTOP: the primary neither answers nor refuses; the calls to it time out.
    let answers = load(&mut c, 4, 30, 20, |c| c.signal("catalog-2", libc::SIGSTOP));
    assert_all_numbered(&answers, 0);
    wait_primary(&c, 1);
    let n = answers.len() as u64;
    // Resumed, it learns of the newer term, is made primary again (the highest id), and
    // catches up before it serves; nothing it did before the pause survives unrecorded.
    c.signal("catalog-2", libc::SIGCONT);
    wait_primary(&c, 2);
    let more = load(&mut c, 2, 5, 0, |_| {});
    assert_all_numbered(&more, n);
    let total = n + more.len() as u64;
    wait_same_tables(&c, total);
    let records = orders(&c, total);
    for addr in c.catalogs.values() {
        assert_conservation(addr, &records);
    }
}

#[test]
fn orders_answered_while_every_follower_was_down_outlive_the_leader_and_the_primary_catalog() {
    let mut c = group();
    wait_primary(&c, 2);
    assert_eq!(c.wait_leader(), 3);
    // Both followers die: the leader alone holds the orders, with the primary catalog. Each
    // is answered only once the standby catalog holds it too (its reads report the copy).
    c.kill("order-1");
    c.kill("order-2");
    let first = load(&mut c, 2, 10, 0, |_| {});
    assert_all_numbered(&first, 0);
    let n = first.len() as u64;
    // The leader and the primary catalog die together: the standby catalog is the only
    // process left that holds those orders.
    c.kill("order-3");
    c.kill("catalog-2");
    c.start_replica(1);
    c.start_replica(2);
    wait_primary(&c, 1);
    // Replica 2 leads; it records from catalog 1 every order the old leader answered, each
    // under the number its client holds.
    let mut read: Vec<(String, String)> = orders(&c, n)
        .into_iter()
        .map(|o| (o.name, format!("{:?}", o.kind)))
        .collect();
    let mut placed: Vec<(String, String)> = (0..2)
        .flat_map(|who| (0..10).map(move |i| (who, i)))
        .map(|(who, i)| {
            let kind = if i % 2 == 0 {
                TradeKind::Sell
            } else {
                TradeKind::Buy
            };
            (
                STOCKS[(who + i) % STOCKS.len()].to_string(),
                format!("{kind:?}"),
            )
        })
        .collect();
    read.sort();
    placed.sort();
    assert_eq!(read, placed, "the orders read back are the orders placed");
    let second = load(&mut c, 2, 5, 0, |_| {});
    assert_all_numbered(&second, n);
    let total = n + second.len() as u64;
    // Everyone returns: the logs converge and both catalogs hold the same table.
    c.start_replica(3);
    c.start_catalog_id(2);
    wait_primary(&c, 2);
    c.wait_converged();
    wait_same_tables(&c, total);
    let records = orders(&c, total);
    for addr in c.catalogs.values() {
        assert_conservation(addr, &records);
    }
}

/// Rule 2 for refusals across a failover: the primary shares every refusal with the standby
/// before it answers, so an Idempotency-Key refused once is refused again by the new primary,
/// even once the stock could fill it; a new key can buy.
#[test]
fn a_refused_idempotency_key_stays_refused_when_the_primary_catalog_fails_over() {
    let mut c = group();
    wait_primary(&c, 2);
    let frontend = c.frontend.clone();
    let buy = |key: &str| buy_with_key(&frontend, "MenhirCo", 150, key);
    let (status, first) = buy("too-big-1");
    assert_eq!(status, 409, "100 in stock, 150 asked: {first}");
    c.kill("catalog-2");
    wait_primary(&c, 1);
    let (status, body) = order(&c.frontend, "MenhirCo", TradeKind::Sell, 100);
    assert_eq!(status, 200, "{body}");
    let (status, again) = buy("too-big-1");
    assert_eq!(
        (status, &again),
        (409, &first),
        "the same key gets the same answer from the new primary"
    );
    let (status, body) = buy("a-new-key");
    assert_eq!(status, 200, "a new key may buy the 150 now: {body}");
}
