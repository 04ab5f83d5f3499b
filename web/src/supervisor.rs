//! The front end's supervisor actor: heartbeats every replica each `heartbeat_ms`, hands the
//! answers to the pure rule (`tradenet_actors::replication::supervision`), announces each new
//! term to the replicas it names, and re-checks at once when a request to the leader fails.

use crate::config::{Config, ReplicaConfig};
use crate::http;
use actix::prelude::*;
use futures::future::join_all;
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::replication::supervision::Supervision;
use tradenet_actors::replication::{ReplicaState, Term};
use tradenet_actors::wire::{self, frontend::ReplicaView, replica::Accepted};

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
}

impl Supervisor {
    /// A supervisor for the replicas of `config`.
    pub fn new(config: &Config) -> Supervisor {
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
        ctx.spawn(probes.into_actor(self).then(move |states, act, _| {
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
            let after = act.rule.leader();
            if after.is_some() && after != before {
                act.elections += 1;
            }
            async move {
                let calls = announce.into_iter().map(|(addr, term)| {
                    let client = client.clone();
                    async move {
                        let url = format!("{}{}", crate::config::url(&addr), wire::TERM);
                        if let Err(e) = http::post::<_, Accepted>(&client, &url, &term).await {
                            log::warn!("announcing epoch {} to {addr} failed: {e}", term.epoch);
                        }
                    }
                });
                join_all(calls).await;
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
        }));
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
        })
    }
}
