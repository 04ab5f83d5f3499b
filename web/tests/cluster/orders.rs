//! Order replication under SIGKILL (rules 1-5, 7, 8 of DESIGN.md): acknowledged orders survive
//! a leader killed right after answering, traders see no errors while replicas die and return,
//! Idempotency-Key trades once across a failover, a dead leader's unreplicated tail is dropped,
//! a trade the catalog applied but no order recorded is found by the next leader, and with no
//! replica at all an order gets a quick 503.

use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::catalog::{TradeOutcome, TradeRequest};
use tradenet_actors::wire::frontend::{OrderView, ReplicaView};
use tradenet_actors::wire::{self, ErrorBody, ErrorKind};

/// Every default stock starts with this quantity.
/// Deadline for one failover step (new leader, returning replica, ...).
const STEP: Duration = Duration::from_secs(20);

fn proc_name(id: u64) -> String {
    format!("order-{id}")
}

/// True for a replica the front end sees live and serving as leader.
fn leads(v: &ReplicaView) -> bool {
    v.role == "leader" && v.live
}

/// Waits until the front end's leader serves and is not one of `not`; returns its id.
fn wait_leader_not(c: &Cluster, not: &[u64]) -> u64 {
    wait_for(
        &format!("a serving leader other than {not:?}"),
        STEP,
        || {
            let s = c.status();
            let leader = s.leader?;
            if not.contains(&leader) {
                return None;
            }
            leads(s.replica(leader)?).then_some(leader)
        },
    )
}

/// Waits until replica `id` is the front end's serving leader.
fn wait_leader_is(c: &Cluster, id: u64) {
    wait_for(&format!("replica {id} serving as leader"), STEP, || {
        let s = c.status();
        (s.leader == Some(id) && leads(s.replica(id)?)).then_some(())
    })
}

/// Waits until the front end sees every replica in `ids` live (answering and ready).
fn wait_live(c: &Cluster, ids: &[u64]) {
    wait_for(&format!("replicas {ids:?} live"), STEP, || {
        let s = c.status();
        ids.iter()
            .all(|id| s.replica(*id).is_some_and(|v| v.live))
            .then_some(())
    })
}

/// Order `n` as replica `addr` holds it (its `data` object), None when it does not (yet). Read
/// loosely: the replica API's bodies are being typed (`wire::replica`).
fn replica_order(addr: &str, n: u64) -> Option<Value> {
    match try_get(addr, &wire::replica_order_path(n)) {
        Some((200, body)) => Some(body["data"].clone()),
        _ => None,
    }
}

/// Places an order through the front end and returns its transaction number (must be 200).
fn place(c: &Cluster, name: &str, kind: TradeKind, quantity: u64) -> u64 {
    let (status, body) = order(&c.frontend, name, kind, quantity);
    assert_eq!(status, 200, "order {kind} {quantity} {name}: {body}");
    transaction_number(&body)
}

/// Places an order with an Idempotency-Key; returns (status, body).
fn place_with_key(
    c: &Cluster,
    key: &str,
    name: &str,
    kind: TradeKind,
    quantity: u64,
) -> (u16, Value) {
    post(
        &c.frontend,
        wire::ORDERS,
        &order_body(name, kind, quantity),
        &[("Idempotency-Key", key)],
    )
}

/// Order `n` as the front end reads it back (must be 200).
fn read_back(c: &Cluster, n: u64) -> OrderView {
    let (status, body) = get(&c.frontend, &wire::order_path(n));
    assert_eq!(status, 200, "GET /orders/{n}: {body}");
    data(&body)
}

/// A catalog trade as an order leader of `epoch` would send it.
fn leader_trade(c: &Cluster, rid: &str, name: &str, quantity: u64, epoch: u64) -> TradeOutcome {
    let trade = TradeRequest {
        rid: rid.parse::<RequestId>().unwrap(),
        name: name.to_string(),
        kind: TradeKind::Buy,
        quantity,
        epoch,
    };
    let (status, body) = post(&c.catalog, wire::TRADE, &trade, &[]);
    assert_eq!(status, 200, "catalog trade: {body}");
    data(&body)
}

/// The lines of an order file (read loosely, like the replica's answers).
fn parse_log(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("order log is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad order line {l:?}: {e}")))
        .collect()
}

/// Asserts the log numbers orders 0..N-1 in file order; returns N.
fn assert_consecutive(log: &[Value]) -> u64 {
    for (i, o) in log.iter().enumerate() {
        assert_eq!(
            o["number"].as_u64(),
            Some(i as u64),
            "line {} of the log: {o}",
            i + 1
        );
    }
    log.len() as u64
}

/// Rule 1, the sharpest case: the leader is SIGKILLed the moment it has answered.
#[test]
fn leader_killed_right_after_answering_keeps_the_order() {
    let mut c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    let n = place(&c, "GameStart", TradeKind::Buy, 3);
    c.kill(&proc_name(leader));

    let survivors: Vec<(u64, String)> = c
        .replicas
        .iter()
        .filter(|(id, _)| **id != leader)
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    let mut held = Vec::new();
    for (id, addr) in &survivors {
        let o = replica_order(addr, n).unwrap_or_else(|| {
            panic!("replica {id} does not hold acknowledged order {n} after leader {leader} died")
        });
        assert_eq!(
            (
                o["number"].as_u64(),
                o["name"].as_str(),
                o["type"].as_str(),
                o["quantity"].as_u64()
            ),
            (Some(n), Some("GameStart"), Some("buy"), Some(3)),
            "replica {id}'s order {n}"
        );
        held.push(o);
    }
    assert_eq!(
        held[0], held[1],
        "the survivors hold different orders under {n}"
    );

    // The survivors serve it too, through the new leader.
    wait_leader_not(&c, &[leader]);
    assert_eq!(
        read_back(&c, n),
        OrderView {
            name: "GameStart".into(),
            number: n,
            quantity: 3,
            kind: TradeKind::Buy
        },
        "GET /orders/{n} after the failover"
    );

    c.start_replica(leader);
    let back = c.replicas[&leader].clone();
    let o = wait_for(
        &format!("returning replica {leader} to hold order {n}"),
        STEP,
        || replica_order(&back, n),
    );
    assert_eq!(o, held[0], "the returning replica's order {n}");
    let log = parse_log(&c.wait_converged());
    assert_eq!(assert_consecutive(&log), n + 1);
    assert_eq!(log[n as usize], held[0]);
    assert_conservation(&c.catalog, &log);
}

/// What one trader thread saw.
#[derive(Default)]
struct TraderReport {
    /// number -> (name, type, quantity) for every 200.
    acked: Vec<(u64, (String, TradeKind, u64))>,
    /// Buys refused with 409 for want of quantity.
    not_enough: usize,
    /// Anything else a client would notice.
    errors: Vec<String>,
    /// The longest any order took to be answered.
    slowest: Duration,
}

/// A tiny deterministic generator (xorshift64), so each trader's choices are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const TRADED: [&str; 4] = ["GameStart", "FishCo", "BoarCo", "MenhirCo"];
/// Orders one trader may place at most (the stop flag normally ends it first).
const TRADER_MAX_ORDERS: usize = 250;
/// Pause between a trader's orders: it shapes the load (about 100 orders a second per
/// trader) so that it lasts through the chaos; it is not a wait for anything to settle.
const TRADER_PACE: Duration = Duration::from_millis(10);
/// Rounds of the kill sequence.
const CHAOS_ROUNDS: usize = 3;

fn trader(
    frontend: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> TraderReport {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut report = TraderReport::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed)
        && report.acked.len() + report.not_enough + report.errors.len() < TRADER_MAX_ORDERS
        && Instant::now() < deadline
    {
        let name = TRADED[(rng.next() % TRADED.len() as u64) as usize];
        let kind = if rng.next().is_multiple_of(2) {
            TradeKind::Buy
        } else {
            TradeKind::Sell
        };
        let quantity = 1 + rng.next() % 3;
        let started = Instant::now();
        let body = order_body(name, kind, quantity);
        match try_post(&frontend, wire::ORDERS, &body, &[]) {
            Some((200, b)) => report
                .acked
                .push((transaction_number(&b), (name.to_string(), kind, quantity))),
            Some((409, b))
                if kind == TradeKind::Buy
                    && serde_json::from_value::<ErrorBody>(b.clone())
                        .is_ok_and(|e| e.error.kind == ErrorKind::InsufficientQuantity) =>
            {
                report.not_enough += 1
            }
            Some((status, b)) => report.errors.push(format!(
                "{kind} {quantity} {name}: {status} {b} after {:?}",
                started.elapsed()
            )),
            None => report.errors.push(format!(
                "{kind} {quantity} {name}: no answer after {:?}",
                started.elapsed()
            )),
        }
        report.slowest = report.slowest.max(started.elapsed());
        count.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(TRADER_PACE);
    }
    report
}

/// Waits until the traders have been answered `more` more times: trading goes on.
fn wait_progress(count: &AtomicUsize, more: usize, what: &str) {
    let from = count.load(Ordering::Relaxed);
    wait_for(
        &format!("{more} more answers to traders after {what}"),
        STEP,
        || (count.load(Ordering::Relaxed) >= from + more).then_some(()),
    )
}

/// Rules 1-4 under load: the leader, a follower, then two replicas at once die and return
/// (three rounds) while four traders keep ordering; no trader notices, and at rest everything
/// adds up.
#[test]
fn traders_see_no_errors_while_replicas_die_and_return() {
    let mut c = Cluster::up(Opts::default());
    let top = c.wait_leader();
    let ids: Vec<u64> = c.replicas.keys().copied().collect();
    assert_eq!(top, *ids.last().unwrap(), "the highest id leads");

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let traders: Vec<_> = (0..4u64)
        .map(|i| {
            let fe = c.frontend.clone();
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || trader(fe, i + 1, stop, count))
        })
        .collect();
    let chaos_started = Instant::now();
    wait_progress(&count, 8, "the start");
    let mut interims = Vec::new();
    for _ in 0..CHAOS_ROUNDS {
        // 1. The leader dies; a survivor takes over; the old leader returns (and leads
        //    again, being the highest id).
        c.kill(&proc_name(top));
        interims.push(wait_leader_not(&c, &[top]));
        wait_progress(&count, 8, "the leader died");
        c.start_replica(top);
        wait_leader_is(&c, top);
        wait_live(&c, &ids);
        wait_progress(&count, 8, "the leader returned");

        // 2. A follower dies and returns.
        let follower = ids[0];
        c.kill(&proc_name(follower));
        wait_progress(&count, 8, "a follower died");
        c.start_replica(follower);
        wait_live(&c, &ids);
        wait_progress(&count, 8, "the follower returned");

        // 3. Two replicas die at once (the two lowest ids; the leader stays up) and return.
        let (a, b) = (ids[0], ids[1]);
        c.kill(&proc_name(a));
        c.kill(&proc_name(b));
        wait_progress(&count, 8, "two followers died");
        c.start_replica(a);
        c.start_replica(b);
        wait_live(&c, &ids);
        wait_progress(&count, 8, "two followers returned");
    }
    let chaos = chaos_started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let reports: Vec<TraderReport> = traders.into_iter().map(|t| t.join().unwrap()).collect();
    let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
    let mut acked: BTreeMap<u64, (String, TradeKind, u64)> = BTreeMap::new();
    for (n, o) in reports.iter().flat_map(|r| r.acked.iter().cloned()) {
        if let Some(before) = acked.insert(n, o.clone()) {
            panic!("transaction number {n} given twice: {before:?} and {o:?}");
        }
    }
    let not_enough: usize = reports.iter().map(|r| r.not_enough).sum();
    let slowest = reports.iter().map(|r| r.slowest).max().unwrap();
    eprintln!(
        "traders: {} orders acknowledged, {not_enough} refused for want of quantity, {} errors, \
         slowest answer {slowest:?}; chaos took {chaos:?} (interim leaders {interims:?})",
        acked.len(),
        errors.len()
    );
    assert!(errors.is_empty(), "client-visible errors: {errors:#?}");
    for (i, r) in reports.iter().enumerate() {
        assert!(
            r.acked.len() + r.not_enough < TRADER_MAX_ORDERS,
            "trader {i} ran out of orders before the chaos ended; the load did not cover it"
        );
    }

    // At rest: identical files, numbered 0..N-1, holding every acknowledged order as answered.
    let log = parse_log(&c.wait_converged());
    let n = assert_consecutive(&log);
    for (num, (name, kind, q)) in &acked {
        assert!(
            *num < n,
            "acknowledged order {num} is missing from the log of {n} orders"
        );
        let o = &log[*num as usize];
        assert_eq!(
            (
                o["name"].as_str(),
                o["type"].as_str(),
                o["quantity"].as_u64()
            ),
            (
                Some(name.as_str()),
                Some(kind.to_string().as_str()),
                Some(*q)
            ),
            "log line for acknowledged order {num}"
        );
    }
    assert_eq!(
        n as usize,
        acked.len(),
        "the log holds orders no trader was told about"
    );
    let rids: BTreeSet<&str> = log.iter().map(|o| o["rid"].as_str().unwrap()).collect();
    assert_eq!(rids.len(), log.len(), "a request id recorded twice");
    for (num, (name, kind, q)) in &acked {
        assert_eq!(
            read_back(&c, *num),
            OrderView {
                name: name.clone(),
                number: *num,
                quantity: *q,
                kind: *kind
            },
            "order {num} read back"
        );
    }
    assert_conservation(&c.catalog, &log);
}

/// The request id the front end derives from an Idempotency-Key: the first 16 bytes of its
/// SHA-256, as 32 lowercase hex digits.
fn key_rid(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rule 2: the same Idempotency-Key trades once and gets one number, also when the retry
/// reaches a new leader.
#[test]
fn idempotency_key_trades_once_even_across_a_leader_kill() {
    let mut c = Cluster::up(Opts::default());
    let volume = |c: &Cluster, name: &str| catalog_stocks(&c.catalog)[name].1;

    let v0 = volume(&c, "BoarCo");
    let (s1, b1) = place_with_key(&c, "key-one", "BoarCo", TradeKind::Buy, 4);
    assert_eq!(s1, 200, "first send: {b1}");
    let (s2, b2) = place_with_key(&c, "key-one", "BoarCo", TradeKind::Buy, 4);
    assert_eq!(s2, 200, "second send: {b2}");
    let n1 = transaction_number(&b1);
    assert_eq!(transaction_number(&b2), n1, "same key, same number");
    assert_eq!(volume(&c, "BoarCo"), v0 + 4, "same key traded once");

    let leader = c.wait_leader();
    let (s3, b3) = place_with_key(&c, "key-two", "BoarCo", TradeKind::Sell, 2);
    assert_eq!(s3, 200, "key-two first send: {b3}");
    let n2 = transaction_number(&b3);
    assert_ne!(n2, n1);
    c.kill(&proc_name(leader));
    let (s4, b4) = place_with_key(&c, "key-two", "BoarCo", TradeKind::Sell, 2);
    assert_eq!(s4, 200, "key-two resent after the leader died: {b4}");
    assert_eq!(
        transaction_number(&b4),
        n2,
        "the retry after a failover gets the original number"
    );
    let new_leader = wait_leader_not(&c, &[leader]);
    assert_eq!(volume(&c, "BoarCo"), v0 + 4 + 2, "key-two traded once");

    // Once more against the new leader, and a fresh key still gets a fresh number.
    let (s5, b5) = place_with_key(&c, "key-two", "BoarCo", TradeKind::Sell, 2);
    assert_eq!(s5, 200, "{b5}");
    assert_eq!(transaction_number(&b5), n2, "{b5}");
    let (s6, b6) = place_with_key(&c, "key-three", "BoarCo", TradeKind::Buy, 1);
    assert_eq!(s6, 200, "{b6}");
    let n3 = transaction_number(&b6);
    assert_eq!(n3, n2 + 1, "numbers stay consecutive");
    assert_eq!(volume(&c, "BoarCo"), v0 + 7);

    c.start_replica(leader);
    wait_live(&c, &c.replicas.keys().copied().collect::<Vec<_>>());
    let log = parse_log(&c.wait_converged());
    assert_eq!(
        assert_consecutive(&log),
        n3 + 1,
        "one order per key (new leader {new_leader})"
    );
    for (n, key) in [(n1, "key-one"), (n2, "key-two"), (n3, "key-three")] {
        assert_eq!(
            log[n as usize]["rid"],
            key_rid(key),
            "order {n}'s request id is derived from {key:?}"
        );
    }
    assert_conservation(&c.catalog, &log);
}

/// Rule 4: a leader that wrote an order and died before replicating it drops that entry when
/// it returns, because a newer epoch wrote the same number elsewhere. The order itself is not
/// lost: its trade is in the catalog's journal, so the next leader recorded it under the same
/// number, and the returning replica ends with the newer epoch's identical-but-for-epoch line.
#[test]
fn returning_replica_drops_a_dead_leaders_unreplicated_tail() {
    let mut c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    assert_eq!(leader, 3);
    assert_eq!(place(&c, "GameStart", TradeKind::Buy, 1), 0);
    assert_eq!(place(&c, "FishCo", TradeKind::Sell, 2), 1);
    let before = parse_log(&c.wait_converged());
    let epoch = before[1]["epoch"].as_u64().unwrap();

    // What leader 3 does for the next order, up to its own log write: trade at the catalog...
    let rid = "00000000dead0000beef0000000004a1";
    assert_eq!(leader_trade(&c, rid, "GameStart", 1, epoch).seq, 3);
    // ...and the line it writes; then it dies before replicating.
    c.kill("order-3");
    let line = format!(
        "{{\"number\":2,\"epoch\":{epoch},\"rid\":\"{rid}\",\"name\":\"GameStart\",\"type\":\"buy\",\"quantity\":1,\"cseq\":3}}\n"
    );
    let path = c.data("order-3").join("orders.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, line.as_bytes()).unwrap();
    drop(file);

    assert_eq!(wait_leader_not(&c, &[3]), 2);
    assert_eq!(
        place(&c, "MenhirCo", TradeKind::Buy, 5),
        3,
        "the new leader recorded order 2 first"
    );
    let new2 = replica_order(&c.replicas[&2], 2).expect("the new leader holds order 2");
    assert_eq!(new2["rid"], rid, "order 2 keeps its number and its trade");
    assert!(
        new2["epoch"].as_u64().unwrap() > epoch,
        "written in a newer epoch: {new2}"
    );

    c.start_replica(3);
    let log = parse_log(&c.wait_converged());
    assert_eq!(assert_consecutive(&log), 4);
    assert_eq!(
        log[2], new2,
        "the converged order 2 is the new leader's line"
    );
    assert!(
        c.log("order-3").contains("dropping orders"),
        "order-3 does not say it dropped its tail:\n{}",
        c.log("order-3")
    );
    wait_leader_is(&c, 3);
    assert_eq!(place(&c, "GameStart", TradeKind::Sell, 1), 4);
    let log = parse_log(&c.wait_converged());
    assert_conservation(&c.catalog, &log);
}

/// Rule 3: a leader that died between the catalog's answer and its own log write left a trade
/// with no order; the next leader finds it in the catalog's journal and records it.
#[test]
fn trade_applied_at_the_catalog_but_not_recorded_is_found_by_the_next_leader() {
    let mut c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    assert_eq!(place(&c, "GameStart", TradeKind::Buy, 1), 0);
    let epoch = c.status().epoch;
    let rid = "0123456789abcdef0123456789abcdef";
    leader_trade(&c, rid, "FishCo", 2, epoch);
    c.kill(&proc_name(leader));

    let new_leader = wait_leader_not(&c, &[leader]);
    let addr = c.replicas[&new_leader].clone();
    let found = wait_for("the new leader to record the orphan trade", STEP, || {
        (0..10)
            .map_while(|n| replica_order(&addr, n))
            .find(|o| o["rid"] == rid)
    });
    assert_eq!(
        (
            found["name"].as_str(),
            found["type"].as_str(),
            found["quantity"].as_u64()
        ),
        (Some("FishCo"), Some("buy"), Some(2)),
        "{found}"
    );
    assert_eq!(
        found["number"].as_u64(),
        Some(1),
        "recorded under the next number: {found}"
    );

    // A client order after the takeover gets the number after it.
    assert_eq!(place(&c, "FishCo", TradeKind::Sell, 1), 2);
    c.start_replica(leader);
    let log = parse_log(&c.wait_converged());
    assert_eq!(assert_consecutive(&log), 3);
    assert_eq!(log.iter().filter(|o| o["rid"] == rid).count(), 1, "{log:?}");
    assert_conservation(&c.catalog, &log);
}

/// "Never a hang": with every replica down an order is refused at once with 503, and trading
/// resumes as soon as one replica returns.
#[test]
fn all_replicas_down_gives_503_quickly_then_trading_resumes() {
    let mut c = Cluster::up(Opts::default());
    assert_eq!(place(&c, "CaesarTech", TradeKind::Buy, 2), 0);
    let ids: Vec<u64> = c.replicas.keys().copied().collect();
    for id in &ids {
        c.kill(&proc_name(*id));
    }
    // At once, before the supervisor's next heartbeat: the failed call to the leader makes it
    // re-check, finds nobody, and answers 503 instead of waiting out the failover timeout.
    let started = Instant::now();
    let (status, body) = order(&c.frontend, "CaesarTech", TradeKind::Buy, 1);
    let took = started.elapsed();
    assert_eq!((status, error_code(&body)), (503, 503), "{body}");
    assert!(
        took < Duration::from_secs(3),
        "503 right after the kills took {took:?}"
    );
    wait_for("the front end to see no live replica", STEP, || {
        let s = c.status();
        (s.leader.is_none() && s.replicas.iter().all(|r| !r.live)).then_some(())
    });

    let started = Instant::now();
    let (status, body) = order(&c.frontend, "CaesarTech", TradeKind::Buy, 1);
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), 503, "{body}");
    eprintln!("with no replica, an order was refused in {took:?}");
    assert!(took < Duration::from_secs(3), "503 took {took:?}");
    let (status, body) = get(&c.frontend, &wire::order_path(0));
    assert_eq!((status, error_code(&body)), (503, 503), "{body}");

    c.start_replica(1);
    wait_leader_is(&c, 1);
    assert_eq!(
        place(&c, "CaesarTech", TradeKind::Sell, 1),
        1,
        "replica 1 numbers on from its log"
    );
    assert_eq!(
        read_back(&c, 0),
        OrderView {
            name: "CaesarTech".into(),
            number: 0,
            quantity: 2,
            kind: TradeKind::Buy
        }
    );
    let log = parse_log(&std::fs::read(c.data("order-1").join("orders.jsonl")).unwrap());
    assert_eq!(assert_consecutive(&log), 2);
    assert_conservation(&c.catalog, &log);
}

/// Rule 1 when the followers have just come back: the leader answers orders while its
/// replication streams to the returning (already recovered and live) followers are still
/// marked down, then dies. Every number a client was given must still name its order.
#[test]
fn leader_killed_while_followers_rejoin_keeps_every_acknowledged_number() {
    // A slower heartbeat widens the time a leader takes to notice a returning follower.
    let mut c = Cluster::up(Opts {
        heartbeat_ms: 300,
        ..Opts::default()
    });
    let top = c.wait_leader();
    let followers: Vec<u64> = c.replicas.keys().copied().filter(|i| *i != top).collect();
    let mut acked: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut lacking = Vec::new();
    let mut renumbered = Vec::new();
    for round in 0..3 {
        wait_leader_is(&c, top);
        for f in &followers {
            c.kill(&proc_name(*f));
        }
        // The leader notices the followers are gone while it replicates this one.
        let n = place(&c, "GameStart", TradeKind::Buy, 1);
        acked.insert(n, ("GameStart".into(), 1));
        for f in &followers {
            c.start_replica(*f);
        }
        for f in &followers {
            let a = c.replicas[f].clone();
            wait_for(&format!("replica {f} ready"), STEP, || {
                let (_, s) = try_get(&a, wire::REPLICA_STATE)?;
                (s["data"]["ready"] == true).then_some(())
            });
        }
        // Eight distinct orders at once: (stock, quantity) tells them apart.
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                let fe = c.frontend.clone();
                std::thread::spawn(move || {
                    let name = TRADED[(i % 4) as usize];
                    let (status, body) = order(&fe, name, TradeKind::Sell, 1 + i);
                    assert_eq!(status, 200, "sell {} {name}: {body}", 1 + i);
                    (transaction_number(&body), name.to_string(), 1 + i)
                })
            })
            .collect();
        let batch: Vec<(u64, String, u64)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (n, name, q) in &batch {
            for f in &followers {
                if replica_order(&c.replicas[f], *n).is_none() {
                    lacking.push(format!(
                        "round {round}: live replica {f} lacks acknowledged order {n}"
                    ));
                }
            }
            assert!(
                acked.insert(*n, (name.clone(), *q)).is_none(),
                "number {n} given twice"
            );
        }
        c.kill(&proc_name(top));
        let next = wait_leader_not(&c, &[top]);
        for (n, name, q) in &batch {
            let held = replica_order(&c.replicas[&next], *n);
            if !held
                .as_ref()
                .is_some_and(|o| o["name"] == name.as_str() && o["quantity"] == *q)
            {
                renumbered.push(format!(
                    "round {round}: order {n} was acknowledged as sell {q} {name}; new leader {next} holds {}",
                    held.map_or("nothing".to_string(), |o| o.to_string())
                ));
            }
        }
        c.start_replica(top);
        c.wait_converged();
    }
    assert!(
        renumbered.is_empty(),
        "acknowledged numbers now name other orders:\n{}\n(context: {} times a live follower \
         lacked an order right after it was acknowledged; first: {:?})",
        renumbered.join("\n"),
        lacking.len(),
        lacking.first()
    );
    let log = parse_log(&c.wait_converged());
    assert_consecutive(&log);
    for (n, (name, q)) in &acked {
        let o = &log[*n as usize];
        assert_eq!(
            (o["name"].as_str(), o["quantity"].as_u64()),
            (Some(name.as_str()), Some(*q)),
            "order {n}: {o}"
        );
    }
    assert!(
        lacking.is_empty(),
        "live followers lacked acknowledged orders: {lacking:#?}"
    );
    assert_conservation(&c.catalog, &log);
}

/// Order reads go to a follower in step, leaving the leader to trade: each order reads back
/// as placed the moment it is acknowledged (a follower the leader waited for holds it durably),
/// and the front end's metrics show the follower answering. With that follower paused, every
/// read still answers: after at most a heartbeat it goes to the leader.
#[test]
fn acknowledged_orders_read_back_from_a_follower_and_from_the_leader_while_it_pauses() {
    let c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    let fe = c.frontend.clone();
    let read = |n: u64| {
        let (status, body) = get(&fe, &format!("/orders/{n}"));
        assert_eq!(status, 200, "GET /orders/{n}: {body}");
        data::<OrderView>(&body)
    };
    let mut placed = Vec::new();
    for i in 0..30 {
        let kind = if i % 2 == 0 {
            TradeKind::Buy
        } else {
            TradeKind::Sell
        };
        let (status, body) = order(&fe, "GameStart", kind, 1 + i);
        assert_eq!(status, 200, "{body}");
        let n = transaction_number(&body);
        let v = read(n);
        assert_eq!(
            (v.number, v.name.as_str(), v.kind, v.quantity),
            (n, "GameStart", kind, 1 + i),
            "order {n}, read right after its acknowledgement"
        );
        placed.push(v);
    }
    let by_follower = |fe: &str| {
        let s = crate::metrics::samples(fe);
        crate::metrics::value(
            &s,
            "tradenet_batch_items_total",
            &["kind=\"read_follower\""],
        )
        .unwrap_or(0.0)
    };
    assert!(
        by_follower(&fe) >= 1.0,
        "no order read was answered by a follower"
    );
    // The follower that reads is the lowest id that does not lead.
    let reader = (1..=3).find(|id| *id != leader).expect("a follower");
    c.signal(&proc_name(reader), libc::SIGSTOP);
    for v in &placed {
        assert_eq!(
            &read(v.number),
            v,
            "order {} with follower {reader} paused",
            v.number
        );
    }
    c.signal(&proc_name(reader), libc::SIGCONT);
}
