//! The front end's supervisor actor: heartbeats every replica each `heartbeat_ms`, hands the
//! answers to the pure rule (`tradenet_actors::replication::supervision`), announces each new
//! term to the replicas it names, and re-checks at once when a request to the leader fails.
//!
//! With a catalog group (`[[catalogs]]`, `docs/catalog-failover.md`) it heartbeats the
//! catalogs in the same round and applies the same rule to them (a second `Election`): the
//! highest-id live catalog is primary, a change opens a new catalog epoch above every one a
//! catalog or a replica holds, and the term `(epoch, primary)` is announced to every catalog
//! and every replica that does not hold it yet. The primary's URL is what the front end's
//! lookups and its catalog link use (`CatalogPrimary`); a change makes the link resubscribe and
//! empty the cache.

use crate::config::{Config, ReplicaConfig};
use crate::http;
use actix::prelude::*;
use futures::future::join_all;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::replication::supervision::{CatalogElection, CatalogSeen, Supervision};
use tradenet_actors::replication::{CatalogTerm, ReplicaState, Term};
use tradenet_actors::wire::catalog::CatalogState;
use tradenet_actors::wire::frontend::{CatalogView, ReplicaView};
use tradenet_actors::wire::{self, replica::Accepted};

/// The base URL lookups and the catalog link use: the one catalog, or the group's primary
/// (`None` while no catalog of the group is live). Shared by the supervisor, which sets it,
/// and the handlers and link, which read it.
#[derive(Clone, Debug)]
pub struct CatalogPrimary(Arc<RwLock<Option<(u64, String)>>>);

impl CatalogPrimary {
    /// Starts at `first` (the one catalog; `None` for a group until the first round).
    pub fn new(first: Option<(u64, String)>) -> CatalogPrimary {
        CatalogPrimary(Arc::new(RwLock::new(first)))
    }

    /// The primary's id and base URL.
    pub fn get(&self) -> Option<(u64, String)> {
        self.0.read().expect("primary lock").clone()
    }

    fn set(&self, v: Option<(u64, String)>) {
        *self.0.write().expect("primary lock") = v;
    }
}

/// The catalog group as one front end's supervisor sees it.
struct CatalogGroup {
    /// (id, address), in configuration order.
    members: Vec<(u64, String)>,
    election: CatalogElection,
    /// The last heartbeat's answers, in configuration order.
    seen: Vec<Option<CatalogState>>,
    primary: CatalogPrimary,
}

impl CatalogGroup {
    /// Decides from a round's answers (catalogs and replicas) with the pure rule
    /// (`supervision::CatalogElection`); what to announce to whom: (address, term).
    fn decide(
        &mut self,
        catalogs: Vec<Option<CatalogState>>,
        replicas: &[Option<ReplicaState>],
        replica_addrs: &[String],
    ) -> Vec<(String, CatalogTerm)> {
        let seen: Vec<CatalogSeen> = catalogs.iter().flatten().map(CatalogSeen::from).collect();
        let held: Vec<Option<CatalogTerm>> = replicas
            .iter()
            .map(|r| r.as_ref().map(|r| r.catalog_term))
            .collect();
        let before = self.election.primary();
        let d = self.election.decide(&seen, &held);
        self.seen = catalogs;
        if d.changed {
            match d.primary {
                Some(id) => {
                    log::info!(
                        "catalog {id} is primary (catalog epoch {}){}",
                        d.term.epoch,
                        before.map_or(String::new(), |b| format!(
                            "; was catalog {b}: the front end resubscribes and empties its cache"
                        ))
                    );
                }
                None => {
                    log::warn!("no catalog of the group is live: lookups and trades wait for one")
                }
            }
            let url = d.primary.and_then(|id| {
                let (_, addr) = self.members.iter().find(|(m, _)| *m == id)?;
                Some((id, crate::config::url(addr)))
            });
            self.primary.set(url);
        }
        let term = d.term;
        d.tell_catalogs
            .iter()
            .filter_map(|id| self.members.iter().find(|(m, _)| m == id))
            .map(|(_, addr)| (addr.clone(), term))
            .chain(
                d.tell_replicas
                    .iter()
                    .filter_map(|i| replica_addrs.get(*i))
                    .map(|addr| (addr.clone(), term)),
            )
            .collect()
    }
}

/// The leader to send orders to.
#[derive(Clone, Debug)]
pub struct Leader {
    /// Replica id.
    pub id: u64,
    /// Base URL.
    pub url: String,
    /// Its epoch.
    pub epoch: u64,
    /// Alive for the group (its followers hear it) but not reachable from this front end:
    /// orders here get a quick 503 instead of a leadership fight.
    pub unreachable_here: bool,
    /// Base URLs of the followers that answer order reads (`Supervision::readers`), as of
    /// the last heartbeat round.
    pub readers: Arc<[String]>,
}

/// See the module docs.
pub struct Supervisor {
    replicas: Vec<ReplicaConfig>,
    interval: Duration,
    client: Option<awc::Client>,
    rule: Supervision,
    round_running: bool,
    waiting: Vec<oneshot::Sender<()>>,
    queued: Vec<oneshot::Sender<()>>,
    /// Leadership changes seen (a new leader or a new epoch), for `/metrics`.
    elections: u64,
    /// The catalog group, when the configuration lists one.
    catalogs: Option<CatalogGroup>,
    /// `Leader::readers`, refreshed each round.
    readers: Arc<[String]>,
}

impl Supervisor {
    /// A supervisor for the replicas (and the catalog group) of `config`; it keeps `primary`
    /// pointing at the catalog to use.
    pub fn new(config: &Config, primary: CatalogPrimary) -> Supervisor {
        let ids: Vec<u64> = config.replicas.iter().map(|r| r.id).collect();
        // Replicas hear from their leader and from the catalog every heartbeat; three missed
        // in a row is silence.
        let silence_limit = 3 * config.frontend.heartbeat_ms;
        Supervisor {
            replicas: config.replicas.clone(),
            interval: config.heartbeat(),
            client: None,
            rule: Supervision::new(&ids, silence_limit),
            round_running: false,
            waiting: Vec::new(),
            queued: Vec::new(),
            elections: 0,
            readers: Arc::from([]),
            catalogs: config.catalog_group().then(|| {
                let members: Vec<(u64, String)> = config
                    .catalog_members()
                    .into_iter()
                    .map(|c| (c.id, c.addr))
                    .collect();
                let ids: Vec<u64> = members.iter().map(|m| m.0).collect();
                CatalogGroup {
                    seen: vec![None; members.len()],
                    members,
                    election: CatalogElection::new(&ids),
                    primary,
                }
            }),
        }
    }

    fn leader(&self) -> Option<Leader> {
        let (id, epoch) = self.rule.leader()?;
        let r = self.replicas.iter().find(|r| r.id == id)?;
        Some(Leader {
            id,
            url: crate::config::url(&r.addr),
            epoch,
            unreachable_here: self.rule.leader_unreachable_here(),
            readers: self.readers.clone(),
        })
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.round_running {
            return;
        }
        self.round_running = true;
        // A heartbeat slower than the interval counts as a miss.
        let client = self
            .client
            .get_or_insert_with(|| http::client(self.interval.max(Duration::from_millis(100))))
            .clone();
        let probes = self.replicas.iter().map(|r| {
            let client = client.clone();
            let url = format!("{}{}", crate::config::url(&r.addr), wire::REPLICA_STATE);
            async move { http::get::<ReplicaState>(&client, &url).await.ok() }
        });
        let probes = join_all(probes.collect::<Vec<_>>());
        let catalog_addrs: Vec<String> = self
            .catalogs
            .as_ref()
            .map(|g| g.members.iter().map(|m| m.1.clone()).collect())
            .unwrap_or_default();
        let catalog_probes = join_all(catalog_addrs.into_iter().map(|addr| {
            let client = client.clone();
            let url = format!("{}{}", crate::config::url(&addr), wire::CATALOG_STATE);
            async move { http::get::<CatalogState>(&client, &url).await.ok() }
        }));
        let probes = futures::future::join(probes, catalog_probes);
        ctx.spawn(
            probes
                .into_actor(self)
                .then(move |(states, catalogs), act, _| {
                    let replica_addrs: Vec<String> =
                        act.replicas.iter().map(|r| r.addr.clone()).collect();
                    let catalog_terms = match &mut act.catalogs {
                        Some(g) => g.decide(catalogs, &states, &replica_addrs),
                        None => Vec::new(),
                    };
                    let before = act.rule.leader();
                    let announce: Vec<(String, Term)> = act
                        .rule
                        .observe(&states)
                        .into_iter()
                        .filter_map(|(id, term)| {
                            let r = act.replicas.iter().find(|r| r.id == id)?;
                            Some((r.addr.clone(), term))
                        })
                        .collect();
                    // Asked for on every order read: worked out once a round, not per read.
                    act.readers = act
                        .rule
                        .readers()
                        .into_iter()
                        .filter_map(|f| act.replicas.iter().find(|r| r.id == f))
                        .map(|r| crate::config::url(&r.addr))
                        .collect();
                    let after = act.rule.leader();
                    if after.is_some() && after != before {
                        act.elections += 1;
                    }
                    async move {
                        let calls = announce.into_iter().map(|(addr, term)| {
                            let client = client.clone();
                            async move {
                                let url = format!("{}{}", crate::config::url(&addr), wire::TERM);
                                if let Err(e) =
                                    http::post::<_, Accepted>(&client, &url, &term).await
                                {
                                    log::warn!(
                                        "announcing epoch {} to {addr} failed: {e}",
                                        term.epoch
                                    );
                                }
                            }
                        });
                        let catalog_calls = catalog_terms.into_iter().map(|(addr, term)| {
                            let client = client.clone();
                            async move {
                                let url =
                                    format!("{}{}", crate::config::url(&addr), wire::CATALOG_TERM);
                                if let Err(e) =
                                    http::post::<_, Accepted>(&client, &url, &term).await
                                {
                                    log::warn!(
                                "announcing catalog epoch {} (primary {:?}) to {addr} failed: {e}",
                                term.epoch,
                                term.primary
                            );
                                }
                            }
                        });
                        futures::future::join(join_all(calls), join_all(catalog_calls)).await;
                    }
                    .into_actor(act)
                    .map(|_, act, ctx| {
                        act.round_running = false;
                        for tx in act.waiting.drain(..) {
                            let _ = tx.send(());
                        }
                        if !act.queued.is_empty() {
                            act.waiting = std::mem::take(&mut act.queued);
                            act.round(ctx);
                        }
                    })
                }),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.round(ctx));
    }
}

/// Asks for the current leader.
#[derive(Message)]
#[rtype(result = "Option<Leader>")]
pub struct CurrentLeader;

impl Handler<CurrentLeader> for Supervisor {
    type Result = Option<Leader>;
    fn handle(&mut self, _: CurrentLeader, _: &mut Context<Self>) -> Option<Leader> {
        self.leader()
    }
}

/// A request to the leader failed: heartbeat everyone now. Answers after a fresh round with
/// the leader it chose (None when no replica is live).
#[derive(Message)]
#[rtype(result = "Option<Leader>")]
pub struct Recheck;

impl Handler<Recheck> for Supervisor {
    type Result = ResponseActFuture<Self, Option<Leader>>;
    fn handle(&mut self, _: Recheck, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.round_running {
            // The running round may have started before the failure: wait for a fresh one.
            self.queued.push(tx);
        } else {
            self.waiting.push(tx);
            self.round(ctx);
        }
        Box::pin(rx.into_actor(self).map(|_, act, _| act.leader()))
    }
}

/// The leader, epoch and every replica's view, for `/status`.
#[derive(Clone, Debug)]
pub struct SupervisorStatus {
    /// Current leader id.
    pub leader: Option<u64>,
    /// Current epoch.
    pub epoch: u64,
    /// Leadership changes seen since start (a new leader, or a new epoch).
    pub elections: u64,
    /// Every configured replica.
    pub replicas: Vec<ReplicaView>,
    /// A catalog group's primary.
    pub catalog_primary: Option<u64>,
    /// Every catalog of a group (empty for one catalog).
    pub catalogs: Vec<CatalogView>,
}

/// Asks for the supervisor's status.
#[derive(Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let replicas = self
            .rule
            .views()
            .iter()
            .zip(&self.replicas)
            .map(|(v, r)| ReplicaView {
                id: v.id,
                addr: r.addr.clone(),
                role: v.role.as_str().to_string(),
                live: v.live,
                last_order: v.last_order,
                epoch: v.epoch,
            })
            .collect();
        MessageResult(SupervisorStatus {
            leader: self.rule.leader().map(|l| l.0),
            epoch: self.rule.epoch(),
            elections: self.elections,
            replicas,
            catalog_primary: self.catalogs.as_ref().and_then(|g| g.election.primary()),
            catalogs: self
                .catalogs
                .as_ref()
                .map(|g| {
                    g.members
                        .iter()
                        .zip(&g.seen)
                        .map(|((id, addr), seen)| CatalogView {
                            id: *id,
                            addr: addr.clone(),
                            role: match seen {
                                Some(s) => serde_json::to_value(s.role)
                                    .ok()
                                    .and_then(|v| v.as_str().map(String::from))
                                    .unwrap_or_default(),
                                None => "down".into(),
                            },
                            last_trade: seen.map(|s| s.last_trade),
                            epoch: seen.map(|s| s.term.epoch),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
