//! `POST /internal/v1/orders/log`, what a catalog following the order log reads
//! (`docs/catalog-failover.md`): pages from any replica, with what only the serving leader
//! knows (acknowledged, leading). And the catalog's pure follower (`catalog_node`) reading a
//! real leader's log over HTTP ends with the same table as the real catalog.

use crate::harness::*;
use std::collections::VecDeque;
use tradenet_actors::catalog::Catalog;
use tradenet_actors::catalog_node::{CatalogNode, Config, Effect, Event, Role};
use tradenet_actors::replication::{CatalogTerm, Envelope};
use tradenet_actors::types::{StockSeed, TradeKind};
use tradenet_actors::wire::replica::{OrdersPage, ReadOrders};
use tradenet_actors::wire::{self};

fn read(addr: &str, from: u64, limit: usize) -> OrdersPage {
    let (status, body) = post(
        addr,
        wire::ORDER_LOG,
        &ReadOrders {
            from,
            limit,
            copy: None,
        },
        &[],
    );
    assert_eq!(status, 200, "{body}");
    data(&body)
}

#[test]
fn a_catalog_reads_the_log_from_any_replica_and_follows_it_to_the_catalogs_table() {
    let c = Cluster::up(Opts::default());
    let names = ["GameStart", "FishCo", "BoarCo"];
    for i in 0..12 {
        let kind = if i % 3 == 0 {
            TradeKind::Sell
        } else {
            TradeKind::Buy
        };
        let (status, body) = order(&c.frontend, names[i % 3], kind, 1 + i as u64);
        assert_eq!(status, 200, "{body}");
    }
    let leader = c.wait_leader();
    let page = read(&c.replicas[&leader], 0, 5);
    assert!(page.leading);
    assert_eq!((page.log_end, page.acknowledged), (12, 12));
    let numbers: Vec<u64> = page.orders.iter().map(|o| o.number).collect();
    assert_eq!(numbers, vec![0, 1, 2, 3, 4]);
    assert!(page.orders.iter().all(|o| o.cseq == o.number + 1));
    assert_eq!(read(&c.replicas[&leader], 10, 5).orders.len(), 2);
    assert!(read(&c.replicas[&leader], 40, 5).orders.is_empty());
    // A follower answers from its own log but knows neither leading nor acknowledged.
    let follower = *c.replicas.keys().find(|id| **id != leader).unwrap();
    let f = wait_for(
        "the follower in step",
        std::time::Duration::from_secs(10),
        || {
            let p = read(&c.replicas[&follower], 0, 100);
            (p.log_end == 12).then_some(p)
        },
    );
    assert!(!f.leading);
    assert_eq!(f.acknowledged, 0);

    // A standby catalog, the pure machine, reading the real leader over HTTP.
    let seeds: Vec<StockSeed> = catalog_status(&c.catalog)
        .stocks
        .iter()
        .map(|s| StockSeed {
            name: s.name.clone(),
            price: s.price,
            quantity: 100,
        })
        .collect();
    let cfg = Config {
        id: 2,
        replicas: c.replicas.keys().copied().collect(),
        follow_every: 10,
        page: 5,
        read_timeout: 5_000,
        serve_unsynced: false,
        peers: Vec::new(),
    };
    let mut node = CatalogNode::new(cfg, Catalog::new(&seeds, 1000).unwrap(), 0);
    let term = CatalogTerm {
        epoch: 1,
        primary: Some(1),
    };
    let mut events = VecDeque::from([Event::Request(Envelope { from: 0, id: 1 }, {
        tradenet_actors::catalog_node::Request::Term(term)
    })]);
    let mut now = 0;
    for _ in 0..500 {
        let event = events.pop_front().unwrap_or(Event::Tick);
        now += 10;
        for effect in node.step(now, event) {
            match effect {
                Effect::Journal { ticket, .. } => events.push_back(Event::Durable(ticket)),
                Effect::Read { to, id, request } => {
                    let (_, body) = post(&c.replicas[&to], wire::ORDER_LOG, &request, &[]);
                    let result = Ok(data::<OrdersPage>(&body));
                    events.push_back(Event::Reply {
                        from: to,
                        id,
                        result,
                    });
                }
                Effect::Respond { .. } | Effect::Invalidate(_) | Effect::AskPeer { .. } => {}
            }
        }
        if node.state().confirmed == 12 && events.is_empty() {
            break;
        }
    }
    let s = node.state();
    assert_eq!((s.role, s.last_seq, s.confirmed), (Role::Standby, 12, 12));
    let real = catalog_status(&c.catalog).stocks;
    let mine = node.table().stocks();
    for (a, b) in real.iter().zip(mine) {
        assert_eq!(
            (&a.name, a.quantity, a.volume, a.version),
            (&b.name, b.quantity, b.volume, b.version),
            "the standby's table is the catalog's"
        );
    }
}

/// `POST /internal/v1/catalog-term` on a replica: held and reported in its state, an older
/// epoch or a second primary in one epoch fenced (409); with one catalog running, the driver
/// still calls it, and trading goes on.
#[test]
fn a_replica_holds_the_catalog_term_and_fences_older_ones() {
    let c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    let at = &c.replicas[&leader];
    let term = CatalogTerm {
        epoch: 3,
        primary: Some(1),
    };
    let (status, body) = post(at, wire::CATALOG_TERM, &term, &[]);
    assert_eq!(status, 200, "{body}");
    let (_, state) = get(at, wire::REPLICA_STATE);
    let state: tradenet_actors::wire::replica::ReplicaState = data(&state);
    assert_eq!(state.catalog_term, term);
    for (epoch, primary) in [(2, Some(1)), (3, Some(2))] {
        let (status, body) = post(at, wire::CATALOG_TERM, &CatalogTerm { epoch, primary }, &[]);
        assert_eq!(status, 409, "epoch {epoch}, primary {primary:?}: {body}");
    }
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 1);
    assert_eq!(status, 200, "{body}");
}
