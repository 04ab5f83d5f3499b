//! The actor that drives one catalog of a catalog group (`tradenet_actors::catalog_node`,
//! `docs/catalog-failover.md`): it feeds the pure node requests from the HTTP handlers, pages
//! of the order log read from the replicas, durable journal tickets and a clock tick, and
//! carries out what the node asks: journal lines through the group-commit writer thread,
//! reads of the order log over awc, answers to waiting handlers, and invalidations to the
//! publisher. It writes a snapshot (and empties the journal) every `snapshot_every` trades,
//! as the single catalog's actor does.

use crate::http;
use actix::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tradenet_actors::catalog_actor::{
    CatalogCounters, GetStatus, Invalidated, LoadedCatalog, TableStatus,
};
use tradenet_actors::catalog_node::{self, CatalogNode, Effect, Event, Request, Response};
use tradenet_actors::journal::JournalWriter;
use tradenet_actors::replication::{Envelope, NodeId, OrdersPage, ReadOrders};
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{
    CatalogState, PeerTradesPage, PeerTradesQuery, RefusalsKept, RefusalsShare,
};
use tradenet_actors::Error;

/// How often the node is given the time.
const TICK: Duration = Duration::from_millis(20);

/// What the driver needs besides the loaded table.
pub struct GroupOptions {
    /// This catalog's id.
    pub id: NodeId,
    /// Replica id -> base URL, to read the order log from.
    pub replicas: BTreeMap<NodeId, String>,
    /// The other catalogs' id -> base URL, asked for their trades past the log before this
    /// one first serves in a term.
    pub peers: BTreeMap<NodeId, String>,
    /// A standby reads the log this often.
    pub follow_every: Duration,
    /// Time-out of one read.
    pub timeout: Duration,
    /// fsync each group commit (false only for benchmarks).
    pub fsync: bool,
    /// Snapshot after this many trades.
    pub snapshot_every: u64,
}

/// See the module docs.
pub struct NodeDriver {
    node: CatalogNode,
    start: Option<(
        std::fs::File,
        PathBuf,
        Option<tradenet_actors::journal::OnSync>,
    )>,
    writer: Option<JournalWriter>,
    snapshot_path: PathBuf,
    snapshot_every: u64,
    snapshot_seq: u64,
    replicas: BTreeMap<NodeId, String>,
    peers: BTreeMap<NodeId, String>,
    client: awc::Client,
    fsync: bool,
    publish: Recipient<Invalidated>,
    waiting: HashMap<u64, oneshot::Sender<Result<Response, Error>>>,
    next_request: u64,
    clock: Instant,
    counters: CatalogCounters,
}

impl NodeDriver {
    /// A driver for the catalog `loaded` from its files. Call on the thread the actor will
    /// run on (its awc client stays there).
    pub fn new(
        loaded: LoadedCatalog,
        opts: GroupOptions,
        publish: Recipient<Invalidated>,
    ) -> NodeDriver {
        let (table, file, journal_path, snapshot_path, on_sync) = loaded.into_parts();
        let snapshot_seq = table.last_seq();
        let follow_ms = opts.follow_every.as_millis() as u64;
        let cfg = catalog_node::Config {
            id: opts.id,
            replicas: opts.replicas.keys().copied().collect(),
            follow_every: follow_ms.max(1),
            page: 2_000,
            read_timeout: opts.timeout.as_millis() as u64,
            serve_unsynced: false,
            peers: opts.peers.keys().copied().collect(),
        };
        NodeDriver {
            node: CatalogNode::new(cfg, table, 0),
            start: Some((file, journal_path, on_sync)),
            writer: None,
            snapshot_path,
            snapshot_every: opts.snapshot_every.max(1),
            snapshot_seq,
            replicas: opts.replicas,
            peers: opts.peers,
            client: http::client(opts.timeout),
            fsync: opts.fsync,
            publish,
            waiting: HashMap::new(),
            next_request: 1,
            clock: Instant::now(),
            counters: CatalogCounters::default(),
        }
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn feed(&mut self, ctx: &mut Context<Self>, event: Event) {
        let effects = self.node.step(self.now(), event);
        for e in effects {
            self.execute(ctx, e);
        }
    }

    fn execute(&mut self, ctx: &mut Context<Self>, effect: Effect) {
        match effect {
            Effect::Respond { to, result } => {
                if let Ok(Response::Traded(results)) = &result {
                    for r in results {
                        match r {
                            Ok(_) => self.counters.trades += 1,
                            Err(Error::Fenced { .. }) => self.counters.fenced += 1,
                            Err(Error::InsufficientQuantity { .. }) => self.counters.refusals += 1,
                            Err(_) => {}
                        }
                    }
                }
                if let Some(tx) = self.waiting.remove(&to.id) {
                    let _ = tx.send(result);
                }
            }
            Effect::Journal { ticket, entry } => {
                if let Some(w) = &self.writer {
                    w.append(
                        ticket,
                        serde_json::to_vec(&entry).expect("serialize journal entry"),
                    );
                }
            }
            Effect::Invalidate(stocks) => self.publish.do_send(Invalidated { stocks }),
            Effect::AskPeer { to, id, request } => {
                let Some(base) = self.peers.get(&to).cloned() else {
                    log::error!("the catalog node addressed unknown catalog {to}");
                    return;
                };
                let client = self.client.clone();
                ctx.spawn(ask_peer(client, base, request).into_actor(self).map(
                    move |result, act, ctx| {
                        act.feed(
                            ctx,
                            Event::PeerReply {
                                from: to,
                                id,
                                result,
                            },
                        )
                    },
                ));
            }
            Effect::Read { to, id, request } => {
                let Some(base) = self.replicas.get(&to).cloned() else {
                    log::error!("the catalog node addressed unknown replica {to}");
                    return;
                };
                let client = self.client.clone();
                ctx.spawn(read_log(client, base, request).into_actor(self).map(
                    move |result, act, ctx| {
                        act.feed(
                            ctx,
                            Event::Reply {
                                from: to,
                                id,
                                result,
                            },
                        )
                    },
                ));
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        let last = self.node.table().last_seq();
        if last < self.snapshot_seq + self.snapshot_every {
            return;
        }
        let Some(writer) = &self.writer else {
            return;
        };
        self.snapshot_seq = last;
        let bytes = serde_json::to_vec(&self.node.table().snapshot()).expect("serialize snapshot");
        let done = writer.replace(self.snapshot_path.clone(), bytes, true);
        actix::spawn(async move {
            match done.await {
                Ok(Ok(())) => {
                    log::info!("catalog snapshot written at trade {last}; journal emptied")
                }
                Ok(Err(e)) => log::error!("catalog snapshot failed: {e}"),
                Err(_) => {}
            }
        });
    }
}

async fn read_log(
    client: awc::Client,
    base: String,
    request: ReadOrders,
) -> Result<OrdersPage, Error> {
    let url = format!("{base}{}", wire::ORDER_LOG);
    match http::post_heard::<_, OrdersPage>(&client, &url, &request).await {
        Ok(answer) => answer.map_err(Error::from),
        Err(unheard) => Err(Error::Unavailable(unheard.message)),
    }
}

/// Another catalog of the group: the trades past the log (`PeerTrades`), or keep these
/// refusals (`ShareRefusals`).
async fn ask_peer(client: awc::Client, base: String, request: Request) -> Result<Response, Error> {
    let outcome = match request {
        Request::PeerTrades { after } => {
            let url = format!("{base}{}", wire::CATALOG_TRADES);
            let body = PeerTradesQuery { after };
            http::post_heard::<_, PeerTradesPage>(&client, &url, &body)
                .await
                .map(|a| {
                    a.map(|p| Response::PeerTrades {
                        trades: p.trades,
                        at: p.at,
                    })
                })
        }
        Request::ShareRefusals(refusals) => {
            let url = format!("{base}{}", wire::CATALOG_REFUSALS);
            let body = RefusalsShare { refusals };
            http::post_heard::<_, RefusalsKept>(&client, &url, &body)
                .await
                .map(|a| a.map(|k| Response::RefusalsKept(k.kept)))
        }
        other => {
            return Err(Error::BadRequest(format!(
                "not a question for a peer: {other:?}"
            )))
        }
    };
    match outcome {
        Ok(answer) => answer.map_err(Error::from),
        Err(unheard) => Err(Error::Unavailable(unheard.message)),
    }
}

impl Actor for NodeDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (file, path, on_sync) = self.start.take().expect("started once");
        let addr = ctx.address();
        let writer = JournalWriter::spawn_observed(
            &path,
            file,
            self.fsync,
            Box::new(move |upto| addr.do_send(Durable(upto))),
            on_sync,
        );
        // Fold whatever the journal replayed into a snapshot, so the next start reads less.
        let bytes = serde_json::to_vec(&self.node.table().snapshot()).expect("serialize snapshot");
        let done = writer.replace(self.snapshot_path.clone(), bytes, true);
        actix::spawn(async move {
            if let Ok(Err(e)) = done.await {
                log::error!("catalog start-up snapshot failed: {e}");
            }
        });
        self.writer = Some(writer);
        ctx.run_interval(TICK, |act, ctx| act.feed(ctx, Event::Tick));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Durable(u64);

impl Handler<Durable> for NodeDriver {
    type Result = ();
    fn handle(&mut self, msg: Durable, ctx: &mut Context<Self>) {
        self.feed(ctx, Event::Durable(msg.0));
        self.maybe_snapshot();
    }
}

/// A request from an HTTP handler; answered when the node answers it.
#[derive(Message)]
#[rtype(result = "Result<Response, Error>")]
pub struct Ask(pub Request);

impl Handler<Ask> for NodeDriver {
    type Result = ResponseFuture<Result<Response, Error>>;
    fn handle(&mut self, msg: Ask, ctx: &mut Context<Self>) -> Self::Result {
        let id = self.next_request;
        self.next_request += 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id, tx);
        self.feed(ctx, Event::Request(Envelope { from: 0, id }, msg.0));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(Error::Unavailable("the catalog dropped the request".into()))
            })
        })
    }
}

/// The node's heartbeat answer, for the supervisors and `/status`.
#[derive(Message)]
#[rtype(result = "CatalogState")]
pub struct GetState;

impl Handler<GetState> for NodeDriver {
    type Result = MessageResult<GetState>;
    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        let s = self.node.state();
        MessageResult(CatalogState {
            id: s.id,
            role: s.role,
            term: s.term,
            last_trade: s.last_seq,
            confirmed: s.confirmed,
        })
    }
}

impl Handler<GetStatus> for NodeDriver {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let t = self.node.table();
        MessageResult(TableStatus {
            last_seq: t.durable_seq(),
            epoch: t.epoch(),
            stocks: t.stocks().to_vec(),
            counters: self.counters,
        })
    }
}
