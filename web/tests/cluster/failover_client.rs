//! A client that knows two front ends: one is SIGKILLed and restarted under load, and the
//! client's sessions move to the other, sending the same request again (a trade with the same
//! Idempotency-Key): no request fails, every order reads back, every trade counts once.

use crate::harness::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tradenet_client::run::{self, RunOpts, DEFAULT_STOCKS};

#[test]
fn a_front_ends_death_costs_a_client_that_knows_two_latency_not_errors() {
    let mut c = Cluster::up(Opts::default());
    let second = c.start_extra_frontend();
    let opts = RunOpts {
        frontend: format!("http://{}", c.frontend),
        others: vec![format!("http://{second}")],
        clients: 8,
        iterations: usize::MAX / 2,
        p: 0.8,
        seed: 11,
        stocks: DEFAULT_STOCKS.iter().map(|s| s.to_string()).collect(),
        threads: 2,
        progress: false,
        time_limit: Some(Duration::from_secs(6)),
        timeout: Duration::from_secs(10),
    };
    let load = std::thread::spawn(move || run::run(&opts, Arc::new(AtomicBool::new(false))));
    std::thread::sleep(Duration::from_secs(2));
    c.kill("frontend");
    std::thread::sleep(Duration::from_secs(2));
    c.start_frontend();
    let report = load.join().unwrap().unwrap();

    let failed: Vec<_> = report.samples.iter().filter(|s| s.is_error()).collect();
    eprintln!(
        "client with two front ends, one killed for 2 s: {} requests, {} orders, {} moves, {} failed, {} mismatches",
        report.samples.len(),
        report.orders.len(),
        report.moves,
        failed.len(),
        report.mismatches.len()
    );
    assert!(
        report.moves > 0,
        "the kill moved no session: was it under load?"
    );
    assert!(
        failed.is_empty(),
        "{} failed; first: {:?}",
        failed.len(),
        report.first_error
    );
    assert!(
        report.mismatches.is_empty(),
        "{:?}",
        &report.mismatches[..report.mismatches.len().min(5)]
    );
    assert!(report.orders.len() > 50, "too few orders to mean anything");
    assert_conservation(&c.catalog, &report.orders);
}
