//! The front end's supervisor actor: heartbeats every replica, makes the highest live id the
//! leader (pure choice in `tradenet_actors::leader`), announces each new term to every live
//! replica, and re-checks at once when a request to the leader fails.

use crate::config::{Config, ReplicaConfig};
use crate::http;
use crate::replica::ReplicaState;
use actix::prelude::*;
use futures::future::join_all;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::leader::{Election, Seen};
use tradenet_actors::order_store::Term;

/// What the supervisor knows of one replica.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaView {
    /// Replica id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// leader, follower, taking_over, recovering, lagging (the leader does not wait for it),
    /// or down.
    pub role: String,
    /// Answered the last heartbeat and is ready.
    pub live: bool,
    /// Last order number it holds.
    pub last_order: Option<u64>,
    /// The epoch it has accepted.
    pub epoch: Option<u64>,
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
}

/// See the module docs.
pub struct Supervisor {
    replicas: Vec<ReplicaConfig>,
    interval: Duration,
    client: Option<awc::Client>,
    election: Election,
    views: Vec<ReplicaView>,
    round_running: bool,
    waiting: Vec<oneshot::Sender<()>>,
    queued: Vec<oneshot::Sender<()>>,
}

impl Supervisor {
    /// A supervisor for the replicas of `config`.
    pub fn new(config: &Config) -> Supervisor {
        Supervisor {
            views: config
                .replicas
                .iter()
                .map(|r| ReplicaView {
                    id: r.id,
                    addr: r.addr.clone(),
                    role: "down".into(),
                    live: false,
                    last_order: None,
                    epoch: None,
                })
                .collect(),
            replicas: config.replicas.clone(),
            interval: config.heartbeat(),
            client: None,
            election: Election::default(),
            round_running: false,
            waiting: Vec::new(),
            queued: Vec::new(),
        }
    }

    fn leader(&self) -> Option<Leader> {
        let id = self.election.leader()?;
        let r = self.replicas.iter().find(|r| r.id == id)?;
        Some(Leader {
            id,
            url: crate::config::url(&r.addr),
            epoch: self.election.epoch(),
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
            let url = format!("{}/internal/v1/state", crate::config::url(&r.addr));
            async move { http::get::<ReplicaState>(&client, &url).await.ok() }
        });
        let probes = join_all(probes.collect::<Vec<_>>());
        ctx.spawn(probes.into_actor(self).then(move |states, act, _| {
            let announce = act.observe(&states);
            let client = client.clone();
            async move {
                let calls = announce.into_iter().map(|(addr, term)| {
                    let client = client.clone();
                    async move {
                        let url = format!("{}/internal/v1/term", crate::config::url(&addr));
                        if let Err(e) =
                            http::post::<_, serde_json::Value>(&client, &url, &term).await
                        {
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

    /// Folds one round of heartbeats into the views and the election; returns who must be
    /// told the current term.
    fn observe(&mut self, states: &[Option<ReplicaState>]) -> Vec<(String, Term)> {
        let mut live = Vec::new();
        // Followers the current leader does not wait for are not live until in step again:
        // a live replica is one that holds every acknowledged order.
        let lagging: Vec<u64> = states
            .iter()
            .flatten()
            .filter(|s| s.role == "leader" && Some(s.id) == self.election.leader())
            .flat_map(|s| s.lagging.iter().copied())
            .collect();
        for (view, state) in self.views.iter_mut().zip(states) {
            let was_live = view.live;
            match state {
                Some(s) if s.ready && lagging.contains(&s.id) => {
                    view.live = false;
                    view.role = "lagging".into();
                    view.last_order = s.last.map(|e| e.number);
                    view.epoch = Some(s.term.epoch);
                }
                Some(s) => {
                    view.live = s.ready;
                    view.role = s.role.clone();
                    view.last_order = s.last.map(|e| e.number);
                    view.epoch = Some(s.term.epoch);
                    if s.ready {
                        live.push(Seen {
                            id: view.id,
                            term: s.term,
                            leading: s.role == "leader" || s.role == "taking_over",
                        });
                    }
                }
                None => {
                    view.live = false;
                    view.role = "down".into();
                }
            }
            if was_live != view.live {
                log::info!(
                    "replica {} at {} is {}",
                    view.id,
                    view.addr,
                    if view.live { "up" } else { view.role.as_str() }
                );
            }
        }
        let before = self.election.leader();
        let decision = self.election.decide(&live);
        if decision.elected || before != decision.leader {
            match decision.leader {
                Some(l) if !decision.new_epoch => log::info!(
                    "replica {l} leads epoch {} (an existing term, adopted); live replicas {:?}",
                    decision.epoch,
                    live.iter().map(|s| s.id).collect::<Vec<_>>()
                ),
                Some(l) => log::info!(
                    "election: replica {l} leads in epoch {} (was {}); live replicas {:?}",
                    decision.epoch,
                    before.map_or("none".into(), |b| b.to_string()),
                    live.iter().map(|s| s.id).collect::<Vec<_>>()
                ),
                None => {
                    log::warn!("election: no replica is live; orders get 503 until one returns")
                }
            }
        }
        let term = Term {
            epoch: decision.epoch,
            leader: decision.leader,
        };
        decision
            .announce_to
            .iter()
            .filter_map(|id| self.replicas.iter().find(|r| r.id == *id))
            .map(|r| (r.addr.clone(), term))
            .collect()
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
#[derive(Clone, Debug, Serialize)]
pub struct SupervisorStatus {
    /// Current leader id.
    pub leader: Option<u64>,
    /// Current epoch.
    pub epoch: u64,
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
        MessageResult(SupervisorStatus {
            leader: self.election.leader(),
            epoch: self.election.epoch(),
            replicas: self.views.clone(),
        })
    }
}
