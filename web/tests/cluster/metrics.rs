//! The domain series on every service's `/metrics` after some trades and lookups: leadership
//! and the cache on the front end, acknowledged trades, replays, follower streams and fsync
//! histograms on the replicas, trades, refusals, pushes and fsyncs on the catalog. Values are
//! checked for sense (counts at least what was done), never for timing.

use crate::harness::*;
use std::time::Duration;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

/// Every sample of a Prometheus text exposition: (name with labels, value).
pub(crate) fn samples(addr: &str) -> Vec<(String, f64)> {
    let (status, body) = get(addr, wire::METRICS);
    assert_eq!(status, 200, "GET {addr}/metrics: {body}");
    let text = body.as_str().expect("/metrics is text").to_string();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series called `name` whose labels include every one of `labels`
/// (`key="value"`); None when there is none.
pub(crate) fn value(samples: &[(String, f64)], name: &str, labels: &[&str]) -> Option<f64> {
    samples.iter().find_map(|(series, v)| {
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|l| rest.contains(l))).then_some(*v)
    })
}

fn must(samples: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in {samples:#?}"))
}

/// Waits until `addr`'s series `name{labels}` is at least `min`; returns its value.
fn wait_at_least(addr: &str, name: &str, labels: &[&str], min: f64) -> f64 {
    wait_for(
        &format!("{name}{labels:?} >= {min} on {addr}"),
        Duration::from_secs(10),
        || value(&samples(addr), name, labels).filter(|v| *v >= min),
    )
}

#[test]
fn every_service_shows_its_domain_series() {
    let c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    wait_serving_hits(&c.frontend);

    // Three trades, one of them sent twice under one Idempotency-Key, and one refusal.
    for (name, key) in [("GameStart", "m-1"), ("FishCo", "m-2"), ("FishCo", "m-2")] {
        let body = order_body(name, TradeKind::Buy, 1);
        let (status, answer) = post(
            &c.frontend,
            wire::ORDERS,
            &body,
            &[("Idempotency-Key", key)],
        );
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = order(&c.frontend, "MenhirCo", TradeKind::Sell, 2);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = order(&c.frontend, "BoarCo", TradeKind::Buy, 1_000);
    assert_eq!(status, 409, "{answer}");
    // The same stock twice: a miss that fills the cache, then a hit.
    stock(&c.frontend, "CaesarTech");
    stock(&c.frontend, "CaesarTech");

    // The front end: leadership, every replica, the cache, the catalog link.
    let fe = samples(&c.frontend);
    assert!(must(&fe, "tradenet_leader_epoch", &[]) > 0.0);
    assert_eq!(must(&fe, "tradenet_leader_id", &[]), leader as f64);
    assert_eq!(must(&fe, "tradenet_has_leader", &[]), 1.0);
    assert!(must(&fe, "tradenet_elections_total", &[]) >= 1.0);
    for id in c.replicas.keys() {
        wait_at_least(
            &c.frontend,
            "tradenet_replica_up",
            &[&format!("replica=\"{id}\"")],
            1.0,
        );
    }
    assert!(must(&fe, "tradenet_cache_hits_total", &[]) >= 1.0);
    assert!(must(&fe, "tradenet_cache_misses_total", &[]) >= 1.0);
    assert!(must(&fe, "tradenet_cache_entries", &[]) >= 1.0);
    assert_eq!(must(&fe, "tradenet_cache_capacity", &[]), 10.0);
    assert_eq!(must(&fe, "tradenet_catalog_link_up", &[]), 1.0);
    assert!(value(&fe, "tradenet_cache_evictions_total", &[]).is_some());
    assert!(value(&fe, "tradenet_cache_invalidations_total", &[]).is_some());
    // Every series carries the service.
    assert!(fe
        .iter()
        .filter(|(s, _)| s.starts_with("tradenet_leader_epoch"))
        .all(|(s, _)| s.contains("service=\"frontend\"")));

    // The leader: what it acknowledged, the replay, each follower's stream, its fsyncs.
    let addr = &c.replicas[&leader];
    let l = samples(addr);
    assert_eq!(must(&l, "tradenet_replica_role", &["role=\"leader\""]), 1.0);
    assert!(must(&l, "tradenet_trades_total", &[]) >= 3.0);
    assert!(must(&l, "tradenet_idempotent_replays_total", &[]) >= 1.0);
    assert!(must(&l, "tradenet_replica_orders", &[]) >= 3.0);
    for id in c.replicas.keys().filter(|id| **id != leader) {
        let f = format!("follower=\"{id}\"");
        assert!(must(&l, "tradenet_follower_lag_orders", &[&f]) >= 0.0);
        wait_at_least(
            addr,
            "tradenet_follower_state",
            &[&f, "state=\"in_step\""],
            1.0,
        );
    }
    assert!(must(&l, "tradenet_fsync_batch_size_count", &[]) >= 1.0);
    assert!(must(&l, "tradenet_fsync_batch_size_sum", &[]) >= 3.0);
    assert!(must(&l, "tradenet_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(value(
        &l,
        "tradenet_fsync_duration_seconds_bucket",
        &["le=\"+Inf\""]
    )
    .is_some());

    // Followers: their role, the orders they hold, their own fsyncs; no follower series.
    for (id, addr) in c.replicas.iter().filter(|(id, _)| **id != leader) {
        let f = samples(addr);
        assert_eq!(
            must(&f, "tradenet_replica_role", &["role=\"follower\""]),
            1.0,
            "replica {id}"
        );
        wait_at_least(addr, "tradenet_replica_orders", &[], 3.0);
        assert!(must(&f, "tradenet_fsync_batch_size_count", &[]) >= 1.0);
        assert!(value(&f, "tradenet_follower_lag_orders", &[]).is_none());
        assert_eq!(must(&f, "tradenet_trades_total", &[]), 0.0);
    }

    // The catalog: trades, the refusal, pushes to the front end, its fsyncs.
    let cat = samples(&c.catalog);
    assert!(must(&cat, "tradenet_catalog_trades_total", &[]) >= 3.0);
    assert!(must(&cat, "tradenet_catalog_refusals_total", &[]) >= 1.0);
    assert!(must(&cat, "tradenet_catalog_last_trade", &[]) >= 3.0);
    assert!(must(&cat, "tradenet_catalog_epoch", &[]) > 0.0);
    assert!(must(&cat, "tradenet_catalog_subscribers", &[]) >= 1.0);
    assert!(must(&cat, "tradenet_fsync_batch_size_count", &[]) >= 1.0);
    assert!(must(&cat, "tradenet_fsync_duration_seconds_count", &[]) >= 1.0);
    assert!(value(
        &cat,
        "tradenet_catalog_pushes_total",
        &["kind=\"invalidation\"", "result=\"failed\""]
    )
    .is_some());
    wait_at_least(
        &c.catalog,
        "tradenet_catalog_pushes_total",
        &["kind=\"invalidation\"", "result=\"ok\""],
        1.0,
    );
    wait_at_least(
        &c.catalog,
        "tradenet_catalog_pushes_total",
        &["kind=\"ping\"", "result=\"ok\""],
        1.0,
    );
}
