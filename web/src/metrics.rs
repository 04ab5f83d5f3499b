//! Domain metrics on each service's `/metrics`, next to the request counts of `http::Metrics`
//! and in the same registry (so every name starts `tradenet_` and carries `service`).
//!
//! Most values are kept by the actors already (the supervisor's view, the cache's counters,
//! the replica machine's followers and counters, the catalog's counters): they are read when
//! `/metrics` is scraped (`http::Metrics::on_scrape`), one message to each actor, so nothing is
//! added to a lookup or a trade. What happens on a thread of its own is counted where it
//! happens: each group commit by the journal's writer thread (two histogram observations),
//! each push by the catalog's publisher (one counter). `deploy/monitoring/` has the alert rules
//! and the Grafana dashboard built on these series.

use crate::batch;
use crate::catalog_link::{CatalogLink, LinkStatus};
use crate::frontend::Batchers;
use crate::http::Refresh;
use crate::replica::driver::{self, ReplicaDriver};
use crate::supervisor::{self, Supervisor};
use actix::{Addr, Recipient};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::{Arc, Mutex};
use tradenet_actors::cache::{self, CacheActor, CacheStatus};
use tradenet_actors::catalog_actor;
use tradenet_actors::journal::{OnSync, SyncStats};
use tradenet_actors::replication::{Role, StreamState};

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry.register(Box::new(m.clone())).expect("register");
    m
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// Moves a counter up to `total`, a count an actor keeps since the process started.
fn advance(c: &IntCounter, total: u64) {
    let have = c.get();
    if total > have {
        c.inc_by(total - have);
    }
}

fn as_gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Runs `f` under `lock`, so that two scrapes at once cannot both advance a counter by the
/// same difference.
fn serialized(lock: &Mutex<()>, f: impl FnOnce()) {
    let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
    f();
}

/// Records every group commit of a journal's writer thread: records per `fdatasync`
/// (`tradenet_fsync_batch_size`), the time to write and sync them
/// (`tradenet_fsync_duration_seconds`), and bytes written (`tradenet_journal_bytes_total`).
pub fn fsync_observer(registry: &Registry) -> OnSync {
    let size = register(
        registry,
        Histogram::with_opts(
            HistogramOpts::new(
                "fsync_batch_size",
                "Records made durable by one fdatasync of the journal (group commit)",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
            ]),
        )
        .expect("valid metric"),
    );
    let duration = register(
        registry,
        Histogram::with_opts(
            HistogramOpts::new(
                "fsync_duration_seconds",
                "Time to write one batch of the journal and fdatasync it",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
        )
        .expect("valid metric"),
    );
    let bytes = counter(
        registry,
        "journal_bytes_total",
        "Bytes appended to the journal",
    );
    Box::new(move |s: SyncStats| {
        size.observe(s.records as f64);
        duration.observe(s.duration.as_secs_f64());
        bytes.inc_by(s.bytes as u64);
    })
}

/// The front end's view: leadership as its supervisor sees it, each replica, the cache and
/// the catalog link.
#[derive(Clone)]
pub struct FrontendMetrics {
    lock: Arc<Mutex<()>>,
    has_leader: IntGauge,
    leader_id: IntGauge,
    leader_epoch: IntGauge,
    elections: IntCounter,
    replica_up: IntGaugeVec,
    replica_last_order: IntGaugeVec,
    catalog_link_up: IntGauge,
    cache_capacity: IntGauge,
    cache_entries: IntGauge,
    cache_serving_hits: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,
    cache_invalidations: IntCounter,
    cache_stale_fills: IntCounter,
    cache_flushes: IntCounter,
    batch_calls: IntCounterVec,
    batch_items: IntCounterVec,
}

impl FrontendMetrics {
    /// Registers the front end's series in `registry`.
    pub fn register(registry: &Registry) -> FrontendMetrics {
        let r = registry;
        FrontendMetrics {
            lock: Default::default(),
            has_leader: gauge(
                r,
                "has_leader",
                "1 when a replica leads (orders can be placed)",
            ),
            leader_id: gauge(r, "leader_id", "Id of the replica orders go to; 0 for none"),
            leader_epoch: gauge(r, "leader_epoch", "Current leadership epoch"),
            elections: counter(
                r,
                "elections_total",
                "Leadership changes this front end saw (a new leader, or a new epoch)",
            ),
            replica_up: gauge_vec(
                r,
                "replica_up",
                "1 when the replica answered the last heartbeat, is ready and is not lagging",
                &["replica"],
            ),
            replica_last_order: gauge_vec(
                r,
                "replica_last_order",
                "Last order number the replica holds durably, as of the last heartbeat",
                &["replica"],
            ),
            catalog_link_up: gauge(
                r,
                "catalog_link_up",
                "1 when subscribed to the catalog and it answers",
            ),
            cache_capacity: gauge(r, "cache_capacity", "Entries the cache may hold; 0 = off"),
            cache_entries: gauge(r, "cache_entries", "Entries in the cache"),
            cache_serving_hits: gauge(
                r,
                "cache_serving_hits",
                "1 while the cache's lease holds (the catalog's word came in time)",
            ),
            cache_hits: counter(r, "cache_hits_total", "Lookups answered from the cache"),
            cache_misses: counter(r, "cache_misses_total", "Lookups that asked the catalog"),
            cache_evictions: counter(
                r,
                "cache_evictions_total",
                "Entries pushed out of the cache to make room (LRU)",
            ),
            cache_invalidations: counter(
                r,
                "cache_invalidations_total",
                "Invalidations received from the catalog (one per stock and version)",
            ),
            cache_stale_fills: counter(
                r,
                "cache_stale_fills_total",
                "Cache fills refused because an invalidation had overtaken them",
            ),
            cache_flushes: counter(
                r,
                "cache_flushes_total",
                "Times the whole cache was emptied (catalog lost or restarted, lease lapsed)",
            ),
            batch_calls: counter_vec(
                r,
                "batch_calls_total",
                "Batched calls made: kind place (orders to the leader), read (order reads at the leader), read_follower (order reads at followers), lookup (cache misses to the catalog)",
                &["kind"],
            ),
            batch_items: counter_vec(
                r,
                "batch_items_total",
                "Items those calls carried; divided by the calls, the mean batch",
                &["kind"],
            ),
        }
    }

    /// Sets one batcher's counters: calls made and items they carried.
    pub fn apply_batches(&self, kind: &str, (calls, items): (u64, u64)) {
        serialized(&self.lock, || {
            advance(&self.batch_calls.with_label_values(&[kind]), calls);
            advance(&self.batch_items.with_label_values(&[kind]), items);
        });
    }

    /// Sets every series from the actors' status.
    pub fn apply(
        &self,
        sup: &supervisor::SupervisorStatus,
        cache: Option<&CacheStatus>,
        link_connected: bool,
    ) {
        serialized(&self.lock, || {
            self.has_leader.set(i64::from(sup.leader.is_some()));
            self.leader_id.set(as_gauge(sup.leader.unwrap_or(0)));
            self.leader_epoch.set(as_gauge(sup.epoch));
            advance(&self.elections, sup.elections);
            for r in &sup.replicas {
                let id = r.id.to_string();
                self.replica_up
                    .with_label_values(&[&id])
                    .set(i64::from(r.live));
                match r.last_order {
                    Some(n) => self
                        .replica_last_order
                        .with_label_values(&[&id])
                        .set(as_gauge(n)),
                    None => {
                        let _ = self.replica_last_order.remove_label_values(&[&id]);
                    }
                }
            }
            self.catalog_link_up.set(i64::from(link_connected));
            let off = CacheStatus::default();
            let c = cache.unwrap_or(&off);
            self.cache_capacity.set(as_gauge(c.capacity as u64));
            self.cache_entries.set(as_gauge(c.entries.len() as u64));
            self.cache_serving_hits.set(i64::from(c.serving_hits));
            advance(&self.cache_hits, c.hits);
            advance(&self.cache_misses, c.misses);
            advance(&self.cache_evictions, c.evictions);
            advance(&self.cache_invalidations, c.invalidations);
            advance(&self.cache_stale_fills, c.stale_fills);
            advance(&self.cache_flushes, c.flushes);
        });
    }

    /// What the front end runs before each scrape: asks the supervisor, the cache, the
    /// catalog link and the order batcher for their status.
    pub fn refresh(
        self,
        supervisor: Addr<Supervisor>,
        cache: Option<Addr<CacheActor>>,
        link: Addr<CatalogLink>,
        batchers: Batchers,
    ) -> Refresh {
        Arc::new(move || {
            let (m, supervisor, cache, link, batchers) = (
                self.clone(),
                supervisor.clone(),
                cache.clone(),
                link.clone(),
                batchers.clone(),
            );
            Box::pin(async move {
                let counts = [
                    ("place", batchers.place.send(batch::Counts).await),
                    ("read", batchers.read.send(batch::Counts).await),
                    (
                        "read_follower",
                        batchers.follower_read.send(batch::Counts).await,
                    ),
                    ("lookup", batchers.lookup.send(batch::Counts).await),
                ];
                for (kind, c) in counts {
                    if let Ok(c) = c {
                        m.apply_batches(kind, c);
                    }
                }
                let Ok(sup) = supervisor.send(supervisor::GetStatus).await else {
                    return;
                };
                let cache = match cache {
                    Some(c) => match c.send(cache::Status).await {
                        Ok(s) => Some(s),
                        Err(_) => return,
                    },
                    None => None,
                };
                let connected = link.send(LinkStatus).await.is_ok_and(|l| l.connected);
                m.apply(&sup, cache.as_ref(), connected);
            })
        })
    }
}

/// An order replica's view: its role and log, each follower's stream (on the leader), and
/// what it acknowledged.
#[derive(Clone)]
pub struct ReplicaMetrics {
    lock: Arc<Mutex<()>>,
    role: IntGaugeVec,
    ready: IntGauge,
    epoch: IntGauge,
    orders: IntGauge,
    follower_lag: IntGaugeVec,
    follower_state: IntGaugeVec,
    trades: IntCounter,
    replays: IntCounter,
    /// Followers with series now (removed when this replica stops leading).
    shown: Arc<Mutex<Vec<String>>>,
}

impl ReplicaMetrics {
    /// Registers the replica's series in `registry`.
    pub fn register(registry: &Registry) -> ReplicaMetrics {
        let r = registry;
        ReplicaMetrics {
            lock: Default::default(),
            role: gauge_vec(
                r,
                "replica_role",
                "1 for the replica's current role (recovering, follower, taking_over, leader)",
                &["role"],
            ),
            ready: gauge(r, "replica_ready", "1 when the replica is ready (in step)"),
            epoch: gauge(r, "replica_epoch", "The epoch this replica has accepted"),
            orders: gauge(r, "replica_orders", "Orders this replica holds durably"),
            follower_lag: gauge_vec(
                r,
                "follower_lag_orders",
                "Leader only: orders durable here that the follower is not known to hold",
                &["follower"],
            ),
            follower_state: gauge_vec(
                r,
                "follower_state",
                "Leader only: 1 for the follower's stream state (in_step, lagging, searching)",
                &["follower", "state"],
            ),
            trades: counter(
                r,
                "trades_total",
                "Orders this replica acknowledged as leader (each once)",
            ),
            replays: counter(
                r,
                "idempotent_replays_total",
                "Orders whose request id was already known, answered with the first number",
            ),
            shown: Default::default(),
        }
    }

    /// Sets every series from the machine's snapshot.
    pub fn apply(&self, s: &driver::MachineSnapshot) {
        serialized(&self.lock, || {
            let role = s.state.role;
            for r in [
                Role::Recovering,
                Role::Follower,
                Role::TakingOver,
                Role::Leader,
            ] {
                self.role
                    .with_label_values(&[r.as_str()])
                    .set(i64::from(r == role));
            }
            self.ready.set(i64::from(s.state.ready));
            self.epoch.set(as_gauge(s.state.term.epoch));
            self.orders.set(as_gauge(s.durable));
            advance(&self.trades, s.counters.acknowledged);
            advance(&self.replays, s.counters.replays);
            let now: Vec<String> = s.followers.iter().map(|f| f.id.to_string()).collect();
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            for gone in shown.iter().filter(|id| !now.contains(id)) {
                let _ = self.follower_lag.remove_label_values(&[gone]);
                for st in StreamState::ALL {
                    let _ = self
                        .follower_state
                        .remove_label_values(&[gone, st.as_str()]);
                }
            }
            for (f, id) in s.followers.iter().zip(&now) {
                self.follower_lag
                    .with_label_values(&[id])
                    .set(as_gauge(f.lag));
                for st in StreamState::ALL {
                    self.follower_state
                        .with_label_values(&[id, st.as_str()])
                        .set(i64::from(st == f.state));
                }
            }
            *shown = now;
        });
    }

    /// What the replica runs before each scrape: asks its driver for the machine's snapshot.
    pub fn refresh(self, driver: Addr<ReplicaDriver>) -> Refresh {
        Arc::new(move || {
            let (m, driver) = (self.clone(), driver.clone());
            Box::pin(async move {
                if let Ok(s) = driver.send(driver::Snapshot).await {
                    m.apply(&s);
                }
            })
        })
    }
}

/// The catalog publisher's series, counted where pushes happen.
#[derive(Clone)]
pub struct PushMetrics {
    pushes: IntCounterVec,
    subscribers: IntGauge,
}

impl PushMetrics {
    /// One push to a front end: `ping` when it carried no invalidation, `ok` when answered.
    pub fn pushed(&self, ping: bool, ok: bool) {
        self.pushes
            .with_label_values(&[
                if ping { "ping" } else { "invalidation" },
                if ok { "ok" } else { "failed" },
            ])
            .inc();
    }

    /// The number of subscribed front ends changed.
    pub fn subscribers(&self, n: usize) {
        self.subscribers.set(as_gauge(n as u64));
    }
}

/// The catalog's table: trades, refusals, replays, fencing, and its publisher's pushes.
#[derive(Clone)]
pub struct CatalogMetrics {
    lock: Arc<Mutex<()>>,
    trades: IntCounter,
    refusals: IntCounter,
    replays: IntCounter,
    fenced: IntCounter,
    last_trade: IntGauge,
    epoch: IntGauge,
    /// Counted by the publisher.
    pub pushes: PushMetrics,
}

impl CatalogMetrics {
    /// Registers the catalog's series in `registry`.
    pub fn register(registry: &Registry) -> CatalogMetrics {
        let r = registry;
        let pushes = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "catalog_pushes_total",
                    "Pushes to subscribed front ends, by kind (invalidation, ping) and result (ok, failed)",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
        );
        for kind in ["invalidation", "ping"] {
            for result in ["ok", "failed"] {
                pushes.with_label_values(&[kind, result]);
            }
        }
        CatalogMetrics {
            lock: Default::default(),
            trades: counter(r, "catalog_trades_total", "New trades accepted"),
            refusals: counter(
                r,
                "catalog_refusals_total",
                "Buys refused for want of quantity",
            ),
            replays: counter(
                r,
                "catalog_replays_total",
                "Trades whose request id was seen before, answered with the first answer",
            ),
            fenced: counter(
                r,
                "catalog_fenced_total",
                "Trades refused because they came from an older leader's epoch",
            ),
            last_trade: gauge(
                r,
                "catalog_last_trade",
                "Sequence number of the last durable trade",
            ),
            epoch: gauge(
                r,
                "catalog_epoch",
                "Newest leader epoch the catalog has seen (its fence)",
            ),
            pushes: PushMetrics {
                pushes,
                subscribers: gauge(r, "catalog_subscribers", "Front ends subscribed"),
            },
        }
    }

    /// Sets the table's series from its status.
    pub fn apply(&self, s: &catalog_actor::TableStatus) {
        serialized(&self.lock, || {
            advance(&self.trades, s.counters.trades);
            advance(&self.refusals, s.counters.refusals);
            advance(&self.replays, s.counters.replays);
            advance(&self.fenced, s.counters.fenced);
            self.last_trade.set(as_gauge(s.last_seq));
            self.epoch.set(as_gauge(s.epoch));
        });
    }

    /// What the catalog runs before each scrape: asks the table's actor for its status.
    pub fn refresh(self, catalog: Recipient<catalog_actor::GetStatus>) -> Refresh {
        Arc::new(move || {
            let (m, catalog) = (self.clone(), catalog.clone());
            Box::pin(async move {
                if let Ok(s) = catalog.send(catalog_actor::GetStatus).await {
                    m.apply(&s);
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradenet_actors::replication::{Counters, FollowerView, ReplicaState, Term};
    use tradenet_actors::wire::frontend::ReplicaView;

    fn text(registry: &Registry) -> String {
        let mut buf = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut buf,
        )
        .unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn registry() -> Registry {
        Registry::new_custom(Some("tradenet".into()), None).unwrap()
    }

    #[test]
    fn the_front_end_shows_leadership_replicas_and_the_cache() {
        let r = registry();
        let m = FrontendMetrics::register(&r);
        let view = |id, live, last_order| ReplicaView {
            id,
            addr: String::new(),
            role: "follower".into(),
            live,
            last_order,
            epoch: Some(4),
        };
        let sup = supervisor::SupervisorStatus {
            leader: Some(3),
            epoch: 4,
            elections: 2,
            replicas: vec![view(1, false, None), view(3, true, Some(7))],
            catalog_primary: None,
            catalogs: Vec::new(),
        };
        let cache = CacheStatus {
            capacity: 10,
            entries: vec!["A".into(), "B".into()],
            hits: 5,
            misses: 2,
            ..CacheStatus::default()
        };
        m.apply(&sup, Some(&cache), true);
        m.apply(&sup, Some(&cache), true);
        let t = text(&r);
        for line in [
            "tradenet_leader_id 3",
            "tradenet_leader_epoch 4",
            "tradenet_has_leader 1",
            "tradenet_elections_total 2",
            "tradenet_replica_up{replica=\"1\"} 0",
            "tradenet_replica_up{replica=\"3\"} 1",
            "tradenet_replica_last_order{replica=\"3\"} 7",
            "tradenet_cache_hits_total 5",
            "tradenet_cache_misses_total 2",
            "tradenet_cache_entries 2",
            "tradenet_catalog_link_up 1",
        ] {
            assert!(
                t.contains(line),
                "{line} missing (applying twice counts once) in\n{t}"
            );
        }
        assert!(!t.contains("tradenet_replica_last_order{replica=\"1\"}"));
    }

    #[test]
    fn a_replica_shows_its_followers_only_while_it_leads() {
        let r = registry();
        let m = ReplicaMetrics::register(&r);
        let state = |role| ReplicaState {
            id: 3,
            role,
            ready: true,
            last: None,
            term: Term {
                epoch: 6,
                leader: Some(3),
            },
            lagging: Vec::new(),
            leader_silence_ms: None,
            catalog_silence_ms: None,
            catalog_epoch: None,
            catalog_term: Default::default(),
        };
        let mut snap = driver::MachineSnapshot {
            state: state(Role::Leader),
            followers: vec![
                FollowerView {
                    id: 1,
                    lag: 0,
                    state: StreamState::InStep,
                },
                FollowerView {
                    id: 2,
                    lag: 40,
                    state: StreamState::Lagging,
                },
            ],
            counters: Counters {
                acknowledged: 9,
                replays: 1,
            },
            durable: 12,
        };
        m.apply(&snap);
        let t = text(&r);
        for line in [
            "tradenet_replica_role{role=\"leader\"} 1",
            "tradenet_replica_role{role=\"follower\"} 0",
            "tradenet_replica_epoch 6",
            "tradenet_replica_orders 12",
            "tradenet_follower_lag_orders{follower=\"2\"} 40",
            "tradenet_follower_state{follower=\"2\",state=\"lagging\"} 1",
            "tradenet_follower_state{follower=\"2\",state=\"in_step\"} 0",
            "tradenet_trades_total 9",
            "tradenet_idempotent_replays_total 1",
        ] {
            assert!(t.contains(line), "{line} missing in\n{t}");
        }
        snap.state = state(Role::Follower);
        snap.followers.clear();
        m.apply(&snap);
        let t = text(&r);
        assert!(!t.contains("tradenet_follower_"), "{t}");
        assert!(t.contains("tradenet_trades_total 9"));
    }

    #[test]
    fn the_fsync_observer_fills_both_histograms() {
        let r = registry();
        let mut observe = fsync_observer(&r);
        observe(SyncStats {
            records: 3,
            bytes: 300,
            duration: std::time::Duration::from_micros(800),
        });
        let t = text(&r);
        assert!(t.contains("tradenet_fsync_batch_size_sum 3"), "{t}");
        assert!(t.contains("tradenet_fsync_duration_seconds_count 1"), "{t}");
        assert!(
            t.contains("tradenet_fsync_duration_seconds_bucket{le=\"0.001\"} 1"),
            "{t}"
        );
        assert!(t.contains("tradenet_journal_bytes_total 300"), "{t}");
    }
}
