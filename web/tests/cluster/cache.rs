//! The front end's cache against real processes: LRU replacement, pushed invalidation to two
//! front ends, the fill/invalidation race, cache size 0, and flushing after a catalog restart.

use crate::harness::*;
use std::time::Duration;
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::catalog::TradeRequest;
use tradenet_actors::wire::frontend::FrontendStatus;
use tradenet_actors::wire::{self, STOCK};

fn entries(status: &FrontendStatus) -> Vec<String> {
    status.cache.entries.clone()
}

fn catalog_trade(c: &Cluster, rid: u128, name: &str) {
    let trade = TradeRequest {
        rid: RequestId(rid),
        name: name.to_string(),
        kind: TradeKind::Buy,
        quantity: 1,
        epoch: 0,
    };
    let (status, body) = post(&c.catalog, wire::TRADE, &trade, &[]);
    assert_eq!(status, 200, "{body}");
}

/// Requests the catalog has answered on its lookup route, from its Prometheus metrics.
/// Lookup calls the catalog answered: single (`GET /stocks/{name}`) and batched
/// (`POST /internal/v1/stocks`, how a front end asks; one at a time, a batch holds one name).
fn catalog_lookups(c: &Cluster) -> u64 {
    let text = try_get(&c.catalog, wire::METRICS).unwrap().1;
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter(|l| {
            l.starts_with("tradenet_http_requests_total")
                && (l.contains(&format!("route=\"{STOCK}\""))
                    || l.contains(&format!("route=\"{}\"", wire::STOCK_BATCH)))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn subscribed(addr: &str) -> bool {
    frontend_status(addr).catalog.connected
}

fn catalog_front_end(cache_size: usize, fill_delay_ms: u64) -> Cluster {
    let mut c = Cluster::new(Opts {
        replicas: 0,
        cache_size,
        fill_delay_ms,
        ..Opts::default()
    });
    c.start_catalog();
    c.start_frontend();
    let fe = c.frontend.clone();
    wait_for("front end subscribed", Duration::from_secs(10), || {
        subscribed(&fe).then_some(())
    });
    c
}

#[test]
fn least_recently_used_entry_is_replaced_first() {
    let c = catalog_front_end(3, 0);
    for name in ["GameStart", "FishCo", "BoarCo", "GameStart", "MenhirCo"] {
        stock(&c.frontend, name);
    }
    let s = c.status();
    assert_eq!(
        entries(&s),
        ["MenhirCo", "GameStart", "BoarCo"],
        "FishCo was least recently used"
    );
    assert_eq!(
        (
            s.cache.capacity,
            s.cache.evictions,
            s.cache.hits,
            s.cache.misses
        ),
        (3, 1, 1, 4)
    );
    // More lookups: the cache never holds more than its capacity.
    for name in ["Reneium", "PiloteCo", "FishCo", "CaesarTech"] {
        stock(&c.frontend, name);
    }
    let s = c.status();
    assert_eq!(entries(&s), ["CaesarTech", "FishCo", "PiloteCo"]);
    assert_eq!(s.cache.evictions, 5);
}

#[test]
fn one_trade_invalidates_the_entry_in_two_front_ends() {
    let mut c = catalog_front_end(10, 0);
    let second = c.start_extra_frontend();
    wait_for(
        "second front end subscribed",
        Duration::from_secs(10),
        || subscribed(&second).then_some(()),
    );
    for fe in [&c.frontend, &second] {
        assert_eq!(stock(fe, "GameStart").quantity, 100);
        assert_eq!(
            stock(fe, "GameStart").quantity,
            100,
            "second lookup is a hit"
        );
    }
    catalog_trade(&c, 1, "GameStart");
    for fe in [c.frontend.clone(), second] {
        wait_for("invalidation", Duration::from_secs(10), || {
            let s = frontend_status(&fe);
            (!entries(&s).contains(&"GameStart".to_string())).then_some(())
        });
        let s = stock(&fe, "GameStart");
        assert_eq!((s.quantity, s.version), (99, 1));
    }
}

#[test]
fn a_slow_fill_racing_an_invalidation_leaves_no_stale_entry() {
    // Every fill waits 3 s between reading the catalog and filling the cache.
    let c = catalog_front_end(10, 3000);
    let before = catalog_lookups(&c);
    let fe = c.frontend.clone();
    let lookup = std::thread::spawn(move || stock(&fe, "FishCo"));
    // The front end has read version 0 from the catalog and is now holding it.
    wait_for("the fill's catalog read", Duration::from_secs(10), || {
        (catalog_lookups(&c) > before).then_some(())
    });
    catalog_trade(&c, 2, "FishCo");
    wait_for("the invalidation", Duration::from_secs(10), || {
        (c.status().cache.invalidations >= 1).then_some(())
    });
    assert!(
        !lookup.is_finished(),
        "the invalidation must overtake the slow fill"
    );
    assert_eq!(
        lookup.join().unwrap().quantity,
        100,
        "that lookup read before the trade"
    );
    let s = c.status();
    assert!(
        !entries(&s).contains(&"FishCo".to_string()),
        "stale value reinstalled: {s:?}"
    );
    assert_eq!(s.cache.stale_fills, 1);
    // The next lookup reads the new value (and, after its own delay, caches it).
    assert_eq!(stock(&c.frontend, "FishCo").quantity, 99);
}

#[test]
fn cache_size_zero_sends_every_lookup_to_the_catalog() {
    let c = catalog_front_end(0, 0);
    let before = catalog_lookups(&c);
    for _ in 0..5 {
        stock(&c.frontend, "GameStart");
    }
    assert_eq!(catalog_lookups(&c) - before, 5);
    let s = c.status();
    assert_eq!(s.cache.capacity, 0);
    assert!(entries(&s).is_empty());
    catalog_trade(&c, 3, "GameStart");
    assert_eq!(
        stock(&c.frontend, "GameStart").quantity,
        99,
        "no cache, no staleness"
    );
}

#[test]
fn front_end_flushes_and_resubscribes_after_a_catalog_restart() {
    let mut c = catalog_front_end(10, 0);
    stock(&c.frontend, "BoarCo");
    let s = c.status();
    assert_eq!(entries(&s), ["BoarCo"]);
    let incarnation = s.catalog.incarnation;
    let flushes = s.cache.flushes;
    c.kill("catalog");
    c.start_catalog();
    // /status reads the cache before the link, so it can show the new incarnation a moment
    // before the flush it triggers: wait for both.
    let s = wait_for("flush and resubscription", Duration::from_secs(10), || {
        let s = c.status();
        (s.catalog.connected && s.catalog.incarnation != incarnation && entries(&s).is_empty())
            .then_some(s)
    });
    assert!(s.cache.flushes > flushes);
    assert!(
        c.log("frontend").contains("cache flushed"),
        "{}",
        c.log("frontend")
    );
    // Pushes reach it again.
    stock(&c.frontend, "BoarCo");
    catalog_trade(&c, 4, "BoarCo");
    wait_for(
        "invalidation after resubscribing",
        Duration::from_secs(10),
        || (!entries(&c.status()).contains(&"BoarCo".to_string())).then_some(()),
    );
    assert_eq!(stock(&c.frontend, "BoarCo").quantity, 99);
}
