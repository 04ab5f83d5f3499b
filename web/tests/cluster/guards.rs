//! Guards against operators' and callers' mistakes: one process per data directory; probes
//! that tell a live process from a ready one.

use crate::harness::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

/// Runs `tradenet <service...>` on the cluster's config; it must stop at once. The data
/// directory is locked before the port is bound, so the refusal is the lock's, as the
/// message checks show; the catalog is also given another port to make that plain.
fn second_process(c: &Cluster, args: &[&str]) -> (bool, String) {
    let other = format!("127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_tradenet"))
        .arg("--config")
        .arg(&c.config)
        .args(args)
        .env("TRADENET__CATALOG__ADDR", &other)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_process_on_a_live_data_directory_refuses_and_the_first_loses_nothing() {
    let c = Cluster::up(Opts::default());
    c.wait_leader();
    for _ in 0..5 {
        let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 1);
        assert_eq!(status, 200, "{body}");
    }

    let (ok, err) = second_process(&c, &["catalog"]);
    assert!(
        !ok,
        "a second catalog started on a live data directory:\n{err}"
    );
    let holder = c.pid("catalog").to_string();
    assert!(
        err.contains("in use by process") && err.contains(&holder) && err.contains("catalog"),
        "the refusal names neither the directory nor the holder {holder}:\n{err}"
    );
    let (ok, err) = second_process(&c, &["order", "--id", "2"]);
    assert!(
        !ok,
        "a second replica 2 started on a live data directory:\n{err}"
    );
    assert!(
        err.contains("order-2") && err.contains(&c.pid("order-2").to_string()),
        "{err}"
    );

    // The first processes lost nothing and go on.
    for _ in 0..5 {
        let (status, body) = order(&c.frontend, "FishCo", TradeKind::Sell, 2);
        assert_eq!(status, 200, "{body}");
    }
    let log: Vec<Value> = String::from_utf8(c.wait_converged())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        log.len(),
        10,
        "every acknowledged order is in the converged log"
    );
    assert_conservation(&c.catalog, &log);
}

/// Liveness and readiness differ: a front end with no replica to lead is alive (its actors
/// answer) but cannot take orders, so it is not ready, and says why; once a leader exists it is.
#[test]
fn a_front_end_without_a_leader_is_live_but_not_ready() {
    let mut c = Cluster::new(Opts::default());
    c.start_catalog();
    // The front end comes up before any replica: wait for liveness only.
    let fe = c.frontend.clone();
    c.spawn_frontend_live();
    let (status, body) = get(&fe, wire::HEALTH);
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&fe, wire::READY);
    assert_eq!(status, 503, "ready without a leader: {body}");
    assert!(
        body.to_string().contains("no leader"),
        "the answer says why: {body}"
    );
    for id in 1..=3 {
        c.start_replica(id);
    }
    wait_for(
        "the front end to become ready",
        Duration::from_secs(20),
        || (try_get(&fe, wire::READY)?.0 == 200).then_some(()),
    );
}

/// Rule 2 for refusals: an Idempotency-Key that was refused (not enough to buy) stays refused,
/// with the same answer, after the catalog is SIGKILLed and restarted, even once the stock
/// could fill it; a new key can buy.
#[test]
fn a_refused_idempotency_key_stays_refused_across_a_catalog_restart() {
    let mut c = Cluster::up(Opts::default());
    let frontend = c.frontend.clone();
    let buy = |key: &str| buy_with_key(&frontend, "MenhirCo", 150, key);
    let (status, first) = buy("too-big-1");
    assert_eq!(status, 409, "100 in stock, 150 asked: {first}");

    c.kill("catalog");
    c.start_catalog();
    let (status, body) = order(&c.frontend, "MenhirCo", TradeKind::Sell, 100);
    assert_eq!(status, 200, "{body}");
    let (status, again) = buy("too-big-1");
    assert_eq!(
        (status, &again),
        (409, &first),
        "the same key gets the same answer after a restart"
    );
    let (status, body) = buy("a-new-key");
    assert_eq!(status, 200, "a new key may buy the 150 now: {body}");
}
