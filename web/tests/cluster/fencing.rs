//! Fencing a deposed leader (DESIGN.md rules 1, 2, 4 and 5): a leader that the front end has
//! replaced but that still reaches its peers and the catalog, and still believes it leads,
//! gets no order acknowledged once the new epoch is in force, and nothing it answered
//! conflicts with the new leader's log.
//!
//! Each service runs in its own network namespace (`netns.rs`). The old leader is cut from the
//! front end both ways, and the other replicas cannot start a conversation with it, but it can
//! still start conversations with them and with the catalog (their answers come back). So the
//! front end deposes it and no one can tell it of the new epoch: it still believes it leads,
//! and it can still send its followers batches and the catalog trades. The test asks it for
//! orders directly, as a front end that still reached it would: the followers and the catalog
//! must fence it. Every replica, the old leader included, looks gone to the group, so the test
//! does not depend on whether one front end's view alone may depose a leader.
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs them). Where the network cannot be
//! built the test fails, saying why: it must not pass without having run.

use crate::harness::*;
use crate::netns::{bearer, nft, Lab};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hosts, with the last byte of their address.
const HOSTS: [(&str, u8); 5] = [("cat", 2), ("o1", 11), ("o2", 12), ("o3", 13), ("f1", 21)];
/// Every service listens on this port of its own address.
const PORT: u16 = 8090;
/// Deadline for one leadership change to be served.
const STEP: Duration = Duration::from_secs(30);
/// Orders sent straight to the deposed leader.
const ZOMBIE_ORDERS: usize = 30;
/// Pause between the front end trader's orders: it shapes the load so that it lasts through
/// the test; it is not a wait for anything to settle.
const TRADER_PACE: Duration = Duration::from_millis(10);

/// Orders acknowledged through the front end: number -> (name, type, quantity).
type Acked = Arc<Mutex<BTreeMap<u64, (String, String, u64)>>>;

/// A fresh request id, as a front end makes one (32 hex digits).
fn fresh_rid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Places an order straight at a replica's internal endpoint, as a front end does.
fn direct_order(agent: &ureq::Agent, replica: &str, rid: &str) -> Option<(u16, Value)> {
    let body = json!({"rid": rid, "name": "GameStart", "quantity": 1, "type": "buy"});
    // With the cluster secret: the point is what the old leader does, not the guard.
    let auth = bearer();
    try_post_with_headers(
        agent,
        replica,
        "/internal/v1/orders",
        &body,
        &[("Authorization", &auth)],
    )
}

/// The epoch in which replica `id` serves as the front end's leader, once it is newer than
/// `after_epoch`.
fn leads(frontend: &str, id: u64, after_epoch: u64) -> Option<u64> {
    serving_leader(frontend)
        .filter(|(l, e)| *l == id && *e > after_epoch)
        .map(|(_, e)| e)
}

#[test]
fn a_deposed_leader_that_still_reaches_its_peers_gets_no_order_acknowledged() {
    let mut lab = Lab::create("tf", 214, &HOSTS).unwrap_or_else(|e| {
        panic!(
            "cannot build the network this test needs (one network namespace per service, \
             veth links on a bridge; needs root, iproute2 and nftables): {e}"
        )
    });
    nft(&lab.ns("o1"), &["list", "tables"])
        .unwrap_or_else(|e| panic!("this test cuts links one way with nftables: {e}"));
    let (cat, f1) = (lab.addr("cat", PORT), lab.addr("f1", PORT));
    let replica = |id: u64| lab.addr(&format!("o{id}"), PORT);
    let (o1, o2, o3) = (replica(1), replica(2), replica(3));
    let mut text = format!(
        "data_dir = {:?}\nlog = \"info\"\n\n[catalog]\naddr = {cat:?}\nworkers = 2\n\n\
         [frontend]\naddr = {f1:?}\nworkers = 2\nheartbeat_ms = 100\nfailover_timeout_ms = 10000\n\n\
         [order]\nworkers = 2\n\n",
        lab.dir.path().join("data"),
    );
    for (id, a) in [(1, &o1), (2, &o2), (3, &o3)] {
        text.push_str(&format!("[[replicas]]\nid = {id}\naddr = {a:?}\n\n"));
    }
    lab.write_config(&text);
    lab.start("cat", &["catalog"], &cat);
    for (id, a) in [(1u64, &o1), (2, &o2), (3, &o3)] {
        lab.start(&format!("o{id}"), &["order", "--id", &id.to_string()], a);
    }
    lab.start("f1", &["frontend"], &f1);
    let first = wait_for("replica 3 to lead", STEP, || leads(&f1, 3, 0));

    // A trader through the front end for the whole test, so that the new leader's log grows
    // past anything the old one might still number.
    let acked: Acked = Arc::default();
    let trader_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let trader = {
        let (acked, errors, stop, answered, f1) = (
            acked.clone(),
            trader_errors.clone(),
            stop.clone(),
            answered.clone(),
            f1.clone(),
        );
        std::thread::spawn(move || {
            let agent = keep_alive_agent();
            let started = Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                let name = ["FishCo", "BoarCo", "MenhirCo"][(i % 3) as usize];
                let kind = if i.is_multiple_of(2) { "sell" } else { "buy" };
                i += 1;
                let body = json!({"name": name, "type": kind, "quantity": 1});
                match try_post_with(&agent, &f1, "/orders", &body) {
                    Some((200, b)) => {
                        let n = b["data"]["transaction_number"].as_u64().unwrap();
                        let old = acked
                            .lock()
                            .unwrap()
                            .insert(n, (name.to_string(), kind.to_string(), 1));
                        if let Some(old) = old {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("number {n} given twice: {old:?} and {b}"));
                        }
                    }
                    other => errors.lock().unwrap().push(format!("{other:?}")),
                }
                answered.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(TRADER_PACE);
            }
        })
    };
    let progress = |more: usize| {
        let target = answered.load(Ordering::Relaxed) + more;
        wait_for("the front end trader to progress", STEP, || {
            (answered.load(Ordering::Relaxed) >= target).then_some(())
        });
    };
    progress(10);

    // While it leads, replica 3 acknowledges orders asked of it directly.
    let agent = keep_alive_agent();
    let mut before_cut: Vec<(String, u64)> = Vec::new();
    for _ in 0..5 {
        let rid = fresh_rid();
        let (status, body) = direct_order(&agent, &o3, &rid).expect("replica 3 answers");
        assert_eq!(status, 200, "the leader refused a direct order: {body}");
        before_cut.push((rid, body["data"]["number"].as_u64().unwrap()));
    }

    // Cut replica 3 off: from the front end both ways; the others may not open a connection
    // to it, but it may to them. Nothing can tell it of the new epoch; it can still act.
    let cut = |on: bool| {
        let what = if on { "cut" } else { "restore" };
        lab.set_cut("f1", "o3", on)
            .unwrap_or_else(|e| panic!("cannot {what} f1 - o3: {e}"));
        for from in ["o1", "o2"] {
            lab.set_one_way(from, "o3", on)
                .unwrap_or_else(|e| panic!("cannot {what} {from} -> o3: {e}"));
        }
    };
    cut(true);
    // Replica 3 still reaches its followers (its heartbeats arrive) and the catalog, so the
    // front end's supervisor, which decides by the group's evidence, rightly keeps it as
    // leader. A newer epoch is named here as another supervisor with another view would: the
    // point of this test is what the deposed leader can still do, not why it was deposed.
    let auth = bearer();
    let mut epoch = first + 1;
    while epoch % 4 != 2 {
        epoch += 1; // an epoch of replica 2's under the supervisors' stride rule
    }
    for o in [&o1, &o2] {
        let (status, body) = post(
            o,
            "/internal/v1/term",
            &json!({"epoch": epoch, "leader": 2}),
            &[("Authorization", &auth)],
        );
        assert_eq!(status, 200, "announcing epoch {epoch} to {o}: {body}");
    }
    let second = wait_for("replica 2 to lead a newer epoch", STEP, || {
        leads(&f1, 2, first)
    });
    let (status, state) = get_with(&o3, "/internal/v1/state", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "the old leader answers the test: {state}");
    eprintln!(
        "fencing: epoch {second} (replica 2) in force; replica 3 says role {} in term {}",
        state["data"]["role"], state["data"]["term"]
    );
    progress(10);

    // The new epoch is in force: the new leader serves, so the followers and the catalog know
    // it. The deposed leader is asked for orders directly: none may be acknowledged now.
    let mut zombie: Vec<(String, Option<(u16, Value)>)> = Vec::new();
    for _ in 0..ZOMBIE_ORDERS {
        let rid = fresh_rid();
        let answer = direct_order(&agent, &o3, &rid);
        zombie.push((rid, answer));
    }
    let (_, state) = get_with(&o3, "/internal/v1/state", &[("Authorization", &auth)]);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for (_, a) in &zombie {
        let key = match a {
            Some((status, body)) => format!("{status} {}", body["error"]["kind"]),
            None => "no answer".into(),
        };
        *answers.entry(key).or_default() += 1;
    }
    eprintln!(
        "fencing: the deposed leader answered {answers:?} (status and error kind: count); \
         afterwards it says role {} in term {}",
        state["data"]["role"], state["data"]["term"]
    );
    let accepted: Vec<String> = zombie
        .iter()
        .filter_map(|(rid, a)| match a {
            Some((200, body)) => Some(format!("rid {rid} -> {body}")),
            _ => None,
        })
        .collect();
    assert!(
        accepted.is_empty(),
        "the deposed leader 3 (epoch {first}) acknowledged {} of {} orders after epoch {second} \
         was in force (rule 5); first: {:?}",
        accepted.len(),
        zombie.len(),
        &accepted[..accepted.len().min(3)]
    );
    progress(10);

    // The links return: replica 3, the highest id, leads again in a newer epoch.
    cut(false);
    let third = wait_for("replica 3 to lead again", STEP, || leads(&f1, 3, second));
    progress(10);
    stop.store(true, Ordering::Relaxed);
    trader.join().unwrap();

    // At rest: identical files, every acknowledged order under its number, each trade once.
    let file = |id: u64| {
        std::fs::read(lab.dir.path().join(format!("data/order-{id}/orders.jsonl")))
            .unwrap_or_default()
    };
    let log = wait_for("identical order files", STEP, || {
        let (a, b, c) = (file(1), file(2), file(3));
        (a == b && b == c && !a.is_empty()).then_some(a)
    });
    let log: Vec<Value> = String::from_utf8(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, o) in log.iter().enumerate() {
        assert_eq!(
            o["number"].as_u64(),
            Some(i as u64),
            "line {} of the log: {o}",
            i + 1
        );
    }
    let mut rids = BTreeSet::new();
    for o in &log {
        assert!(
            rids.insert(o["rid"].to_string()),
            "a request traded twice: {o}"
        );
    }
    for (n, (name, kind, q)) in acked.lock().unwrap().iter() {
        let o = &log[*n as usize];
        assert_eq!(
            (
                o["name"].as_str(),
                o["type"].as_str(),
                o["quantity"].as_u64()
            ),
            (Some(name.as_str()), Some(kind.as_str()), Some(*q)),
            "order {n}, acknowledged by the front end"
        );
    }
    for (rid, n) in &before_cut {
        assert_eq!(
            log[*n as usize]["rid"].as_str(),
            Some(rid.as_str()),
            "order {n}, acknowledged by replica 3 while it led: another order holds its number"
        );
    }
    let recorded = zombie
        .iter()
        .filter(|(rid, _)| rids.contains(&json!(rid).to_string()))
        .count();
    assert_conservation(&cat, &log);
    eprintln!(
        "fencing: epochs {first} -> {second} -> {third}; {} orders in the log, {} of them through \
         the front end; {recorded} of the {} refused direct orders were recorded anyway; front end \
         trader saw {:?}",
        log.len(),
        acked.lock().unwrap().len(),
        zombie.len(),
        trader_errors.lock().unwrap()
    );
}
