//! Leadership decided by the group's evidence, in network namespaces: a leader cut from the
//! catalog only is replaced by a replica that reaches it; a front end that cannot reach a
//! leader its group hears keeps it (its clients get a quick 503) instead of fighting the other
//! front end with new epochs.

use crate::harness::*;
use crate::netns::{Lab, HEARTBEAT_MS, PORT};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(20);

#[test]
fn a_leader_cut_from_the_catalog_only_is_replaced_by_one_that_reaches_it() {
    let lab = Lab::exchange("tc", 216, &["f1"], "");
    let f1 = lab.addr("f1", PORT);
    let cat = lab.addr("cat", PORT);
    let (_, first) = serving_leader(&f1).unwrap();
    let before = catalog_stocks(&cat)["GameStart"];
    lab.set_cut("o3", "cat", true).unwrap();
    let cut = Instant::now();
    // An order sent at the cut waits for the failover (the front end retries it at the new
    // leader under the same request id): its answer is when trading resumed.
    let (status, body) = order(&f1, "GameStart", tradenet_actors::types::TradeKind::Buy, 1);
    assert_eq!(
        status, 200,
        "the order sent at the cut is traded by the new leader: {body}"
    );
    let served = cut.elapsed();
    assert_eq!(
        catalog_stocks(&cat)["GameStart"],
        (before.0 - 1, before.1 + 1),
        "traded exactly once"
    );
    let (leader, epoch) = wait_for("another leader, one that reaches the catalog", STEP, || {
        serving_leader(&f1).filter(|(l, _)| *l != 3)
    });
    eprintln!(
        "leadership: leader 3 cut from the catalog; the order sent at the cut answered {served:?} later ({:.1} heartbeats); replica {leader} leads epoch {epoch} (was {first})",
        served.as_secs_f64() * 1000.0 / HEARTBEAT_MS as f64,
    );
    assert_eq!(leader, 2, "the highest id that reaches the catalog");
    lab.set_cut("o3", "cat", false).unwrap();
    wait_for(
        "replica 3 back as leader once it reaches the catalog",
        STEP,
        || serving_leader(&f1).filter(|(l, _)| *l == 3),
    );
}

#[test]
fn a_front_end_cut_from_the_leader_keeps_it_and_starts_no_fight() {
    let lab = Lab::exchange("tl", 217, &["f1", "f2"], "");
    let (f1, f2) = (lab.addr("f1", PORT), lab.addr("f2", PORT));
    let (_, epoch) = serving_leader(&f1).unwrap();

    // Two traders, one per front end, for the whole cut.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let outcomes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let traders: Vec<_> = [f1.clone(), f2.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, fe)| {
            let (stop, acked, outcomes) = (stop.clone(), acked.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let agent = keep_alive_agent();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("fe{i}-{n}");
                    let started = Instant::now();
                    let res = agent
                        .post(&format!("http://{fe}/orders"))
                        .set("Idempotency-Key", &key)
                        .send_json(json!({"name": "GameStart", "type": if n.is_multiple_of(2) { "buy" } else { "sell" }, "quantity": 1}));
                    let (status, body) = match res {
                        Ok(r) => (r.status(), r.into_json::<serde_json::Value>().unwrap()),
                        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap_or_default()),
                        Err(e) => (0, json!(e.to_string())),
                    };
                    let took = started.elapsed();
                    let what = format!("front end {} {status}{}", i + 1, if status == 503 && took > Duration::from_secs(2) { " (slow)" } else { "" });
                    *outcomes.lock().unwrap().entry(what).or_default() += 1;
                    if status == 200 {
                        let number = body["data"]["transaction_number"].as_u64().unwrap();
                        let old = acked.lock().unwrap().insert(number, key.clone());
                        assert!(old.is_none(), "number {number} given to {old:?} and {key}");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    lab.set_cut("f2", "o3", true).unwrap();
    let mut epochs = vec![epoch];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        for fe in [&f1, &f2] {
            let e = frontend_status(fe).epoch;
            if !epochs.contains(&e) {
                epochs.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.set_cut("f2", "o3", false).unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in traders {
        t.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!("leadership: epochs seen during the 10 s cut: {epochs:?}; answers: {outcomes:?}");
    assert!(
        epochs.len() <= 2,
        "at most one leadership change, saw epochs {epochs:?}"
    );
    assert!(
        !outcomes.keys().any(|k| k.contains("slow")),
        "front end 2's clients get quick answers: {outcomes:?}"
    );
    assert!(
        outcomes.get("front end 1 200").copied().unwrap_or(0) > 50,
        "front end 1 keeps trading: {outcomes:?}"
    );

    // Nothing acknowledged is lost or given twice.
    let files: Vec<Vec<u8>> = (1..=3)
        .map(|id| lab.dir.path().join(format!("data/order-{id}/orders.jsonl")))
        .map(|p| {
            wait_for("identical order files", STEP, || {
                let all: Vec<Vec<u8>> = (1..=3)
                    .map(|id| {
                        std::fs::read(lab.dir.path().join(format!("data/order-{id}/orders.jsonl")))
                            .unwrap_or_default()
                    })
                    .collect();
                (all[0] == all[1] && all[1] == all[2]).then(|| std::fs::read(&p).unwrap())
            })
        })
        .collect();
    let log: Vec<serde_json::Value> = String::from_utf8(files[0].clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (n, key) in acked.lock().unwrap().iter() {
        assert!(
            (*n as usize) < log.len(),
            "acknowledged order {n} ({key}) is not in the log"
        );
    }
    assert_conservation(&lab.addr("cat", PORT), &log);
}
