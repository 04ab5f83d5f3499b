//! The actor that drives one replica machine (`tradenet_actors::replication::Replica`): it
//! feeds the machine requests from the HTTP handlers, answers from peers and the catalog,
//! completed disk writes and a clock tick, and carries out what the machine asks: calls to
//! peers and the catalog over awc, writes through the journal's writer thread (group commit;
//! the actor's thread never touches the disk), and answers to waiting handlers.
//!
//! One concurrency model: everything the replica decides happens on this actor's thread, one
//! event at a time; the writer thread only writes; awc calls run as futures on the same
//! thread and come back as events.

use crate::error::{ApiError, ApiResult};
use crate::http;
use actix::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tradenet_actors::journal::{JournalWriter, OnSync};
use tradenet_actors::replication::files::ReplicaFiles;
use tradenet_actors::replication::{
    Appended, CatalogAnswer, CatalogCall, Config, Counters, Effect, Envelope, Event, Fetched,
    FollowerView, NodeId, Replica, ReplicaState, Request, Response, Write,
};
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{
    TradeBatch, TradeResult, TradeResults, TradesPage, TradesSince,
};
use tradenet_actors::Error;

/// How often the machine is given the time.
const TICK: Duration = Duration::from_millis(20);
/// The sender id the driver gives to requests that arrive over HTTP.
const HTTP_CALLER: NodeId = 0;

/// Addresses and timing the driver needs besides the machine's own configuration.
pub struct DriverConfig {
    /// The machine's configuration.
    pub machine: Config,
    /// Peer id -> base URL.
    pub peers: HashMap<NodeId, String>,
    /// Catalog id -> base URL (one entry for one catalog, which every call goes to).
    pub catalogs: std::collections::BTreeMap<NodeId, String>,
    /// Time-out of one call to a peer or the catalog.
    pub call_timeout: Duration,
    /// False only for benchmarks.
    pub fsync: bool,
    /// Hears of every group commit of the order file (metrics).
    pub on_sync: Option<OnSync>,
}

/// What `started` needs once: the order file for the writer thread, and the machine's first
/// effects (asking its peers whether one leads).
struct Start {
    file: File,
    path: PathBuf,
    first: Vec<Effect>,
}

/// See the module docs.
pub struct ReplicaDriver {
    machine: Replica,
    start: Option<Start>,
    writer: Option<JournalWriter>,
    epoch_path: PathBuf,
    cfg: DriverConfig,
    client: awc::Client,
    waiting: HashMap<u64, oneshot::Sender<Result<Response, Error>>>,
    next_request: u64,
    clock: Instant,
}

impl ReplicaDriver {
    /// A driver for the replica whose files were loaded into `files`. Call on the thread the
    /// actor will run on (its awc client stays there).
    pub fn new(files: ReplicaFiles, cfg: DriverConfig) -> ReplicaDriver {
        let ReplicaFiles {
            log,
            term,
            file,
            path,
            epoch_path,
        } = files;
        let (machine, first) = Replica::new(cfg.machine.clone(), log, term, 0);
        ReplicaDriver {
            machine,
            start: Some(Start { file, path, first }),
            writer: None,
            epoch_path,
            client: http::client(cfg.call_timeout),
            cfg,
            waiting: HashMap::new(),
            next_request: 1,
            clock: Instant::now(),
        }
    }

    fn feed(&mut self, ctx: &mut Context<Self>, event: Event) {
        let now = self.clock.elapsed().as_millis() as u64;
        let effects = self.machine.step(now, event);
        for e in effects {
            self.execute(ctx, e);
        }
    }

    fn execute(&mut self, ctx: &mut Context<Self>, effect: Effect) {
        match effect {
            Effect::Respond { to, result } => {
                if let Some(tx) = self.waiting.remove(&to.id) {
                    let _ = tx.send(result);
                }
            }
            Effect::Send { to, id, request } => {
                let Some(base) = self.cfg.peers.get(&to).cloned() else {
                    log::error!("the replica machine addressed unknown peer {to}");
                    return;
                };
                let client = self.client.clone();
                ctx.spawn(call_peer(client, base, request).into_actor(self).map(
                    move |result, act, ctx| {
                        act.feed(
                            ctx,
                            Event::Reply {
                                from: to,
                                id,
                                result,
                            },
                        );
                    },
                ));
            }
            // `to`: the primary of the catalog term (docs/catalog-failover.md); with no term
            // yet (one catalog, or none announced), the highest id, which a group's
            // supervisors make primary when it is live.
            Effect::Catalog { to, id, call } => {
                let client = self.client.clone();
                let base = to
                    .and_then(|t| self.cfg.catalogs.get(&t))
                    .or_else(|| self.cfg.catalogs.values().next_back())
                    .cloned()
                    .unwrap_or_default();
                let leader = self.cfg.machine.id;
                ctx.spawn(
                    call_catalog(client, base, leader, call)
                        .into_actor(self)
                        .map(move |result, act, ctx| {
                            act.feed(ctx, Event::CatalogReply { id, result });
                        }),
                );
            }
            Effect::Write(w) => self.write(ctx, w),
        }
    }

    fn write(&mut self, ctx: &mut Context<Self>, w: Write) {
        let Some(writer) = &self.writer else {
            return;
        };
        let (ticket, done) = match w {
            Write::Append { ticket, lines } => {
                let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                for (i, l) in lines.iter().enumerate() {
                    if i > 0 {
                        bytes.push(b'\n');
                    }
                    bytes.extend_from_slice(l);
                }
                // The writer reports durability through `Durable`.
                writer.append(ticket, bytes);
                return;
            }
            Write::Truncate {
                ticket, file_len, ..
            } => (ticket, writer.truncate(file_len)),
            Write::SaveTerm { ticket, term } => {
                let bytes = serde_json::to_vec(&term).expect("a term serializes");
                (
                    ticket,
                    writer.replace(self.epoch_path.clone(), bytes, false),
                )
            }
        };
        ctx.spawn(done.into_actor(self).map(move |r, act, ctx| match r {
            Ok(Ok(())) => act.feed(ctx, Event::Durable(ticket)),
            Ok(Err(e)) => fatal(&format!("a durable write failed: {e}")),
            Err(_) => fatal("the order log's writer thread stopped"),
        }));
    }
}

/// The replica cannot keep its promises without its disk: stop, so that a supervisor
/// (systemd, the launcher, Kubernetes) restarts it and it recovers from its files.
fn fatal(why: &str) -> ! {
    log::error!("order replica stops: {why}");
    std::process::exit(1)
}

/// What the machine is told of a call: the other service's answer (its error object as the
/// logic crate's error), or `Unavailable` when it never answered, which is not hearing it.
fn as_heard<T>(outcome: Result<ApiResult<T>, ApiError>) -> Result<T, Error> {
    match outcome {
        Ok(answer) => answer.map_err(Error::from),
        Err(unheard) => Err(Error::Unavailable(unheard.message)),
    }
}

async fn call_peer(client: awc::Client, base: String, request: Request) -> Result<Response, Error> {
    match request {
        Request::State => {
            let url = format!("{base}{}", wire::REPLICA_STATE);
            as_heard(http::get_heard::<ReplicaState>(&client, &url).await).map(Response::State)
        }
        Request::Append(a) => {
            let url = format!("{base}{}", wire::REPLICATE);
            as_heard(http::post_heard::<_, Appended>(&client, &url, &a).await)
                .map(Response::Appended)
        }
        Request::Fetch(f) => {
            let url = format!("{base}{}", wire::FETCH);
            as_heard(http::post_heard::<_, Fetched>(&client, &url, &f).await).map(Response::Fetched)
        }
        Request::Survey(t) => {
            let url = format!("{base}{}", wire::SURVEY);
            as_heard(http::post_heard::<_, ReplicaState>(&client, &url, &t).await)
                .map(Response::State)
        }
        other => Err(Error::BadRequest(format!(
            "a replica does not send {} to a peer",
            other.name()
        ))),
    }
}

async fn call_catalog(
    client: awc::Client,
    base: String,
    leader: NodeId,
    call: CatalogCall,
) -> Result<CatalogAnswer, Error> {
    match call {
        CatalogCall::Trades {
            log_end,
            trades,
            catalog_epoch,
        } => {
            let url = format!("{base}{}", wire::TRADE_BATCH);
            let body = TradeBatch {
                trades,
                log_end,
                leader: Some(leader),
                catalog_epoch: Some(catalog_epoch),
            };
            as_heard(http::post_heard::<_, TradeResults>(&client, &url, &body).await).map(|r| {
                CatalogAnswer::Traded(
                    r.results
                        .into_iter()
                        .map(|t| match t {
                            TradeResult::Ok(outcome) => Ok(outcome),
                            TradeResult::Error(e) => Err(Error::from(ApiError::from(e))),
                        })
                        .collect(),
                )
            })
        }
        CatalogCall::Ping => {
            let url = format!("{base}{}", wire::HELLO);
            as_heard(http::get_heard::<tradenet_actors::wire::catalog::Hello>(&client, &url).await)
                .map(|_| CatalogAnswer::Pong)
        }
        CatalogCall::TradesSince {
            after,
            epoch,
            limit,
            log_end,
            catalog_epoch,
        } => {
            let url = format!("{base}{}", wire::TRADES_SINCE);
            let body = TradesSince {
                after,
                epoch,
                limit,
                log_end,
                leader: Some(leader),
                catalog_epoch: Some(catalog_epoch),
            };
            as_heard(http::post_heard::<_, TradesPage>(&client, &url, &body).await).map(|p| {
                CatalogAnswer::Trades {
                    trades: p.trades,
                    complete: p.complete,
                }
            })
        }
    }
}

impl Actor for ReplicaDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Start { file, path, first } = self.start.take().expect("started once");
        let addr = ctx.address();
        self.writer = Some(JournalWriter::spawn_observed(
            &path,
            file,
            self.cfg.fsync,
            Box::new(move |upto| addr.do_send(Durable(upto))),
            self.cfg.on_sync.take(),
        ));
        for e in first {
            self.execute(ctx, e);
        }
        ctx.run_interval(TICK, |act, ctx| act.feed(ctx, Event::Tick));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Durable(u64);

impl Handler<Durable> for ReplicaDriver {
    type Result = ();
    fn handle(&mut self, msg: Durable, ctx: &mut Context<Self>) {
        self.feed(ctx, Event::Durable(msg.0));
    }
}

/// A request from an HTTP handler; answered when the machine answers it.
#[derive(Message)]
#[rtype(result = "Result<Response, Error>")]
pub struct Ask(pub Request);

impl ReplicaDriver {
    /// An envelope for a request from an HTTP handler, and where its answer will arrive.
    fn envelope(&mut self) -> (Envelope, Answer) {
        let id = self.next_request;
        self.next_request += 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id, tx);
        let to = Envelope {
            from: HTTP_CALLER,
            id,
        };
        (to, Answer(rx))
    }
}

/// Where the machine's answer to one request arrives.
pub struct Answer(oneshot::Receiver<Result<Response, Error>>);

impl Answer {
    /// The machine's answer (503 if the driver dropped the request).
    pub async fn get(self) -> Result<Response, Error> {
        self.0
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("the replica dropped the request".into())))
    }
}

impl Handler<Ask> for ReplicaDriver {
    type Result = ResponseFuture<Result<Response, Error>>;
    fn handle(&mut self, msg: Ask, ctx: &mut Context<Self>) -> Self::Result {
        let (to, answer) = self.envelope();
        self.feed(ctx, Event::Request(to, msg.0));
        Box::pin(answer.get())
    }
}

/// Requests that arrived together (a front end's batch), taken by the machine in one step so
/// that their trades leave for the catalog in one call; each answered on its own.
#[derive(Message)]
#[rtype(result = "Answers")]
pub struct AskAll(pub Vec<Request>);

/// One answer for each request of an `AskAll`, in its order.
#[derive(MessageResponse)]
pub struct Answers(pub Vec<Answer>);

impl Handler<AskAll> for ReplicaDriver {
    type Result = Answers;
    fn handle(&mut self, msg: AskAll, ctx: &mut Context<Self>) -> Answers {
        let (requests, answers) = msg
            .0
            .into_iter()
            .map(|request| {
                let (to, answer) = self.envelope();
                ((to, request), answer)
            })
            .unzip();
        self.feed(ctx, Event::Requests(requests));
        Answers(answers)
    }
}

/// What `/metrics` reads from the machine (`metrics::ReplicaMetrics`).
#[derive(Clone, Debug)]
pub struct MachineSnapshot {
    /// The heartbeat answer.
    pub state: ReplicaState,
    /// The leader's view of each follower (empty unless leading).
    pub followers: Vec<FollowerView>,
    /// What the machine answered since start.
    pub counters: Counters,
    /// Orders held durably.
    pub durable: u64,
}

/// Asks for a `MachineSnapshot`.
#[derive(Message)]
#[rtype(result = "MachineSnapshot")]
pub struct Snapshot;

impl Handler<Snapshot> for ReplicaDriver {
    type Result = MessageResult<Snapshot>;
    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(MachineSnapshot {
            state: self.machine.state(),
            followers: self.machine.followers(),
            counters: self.machine.counters(),
            durable: self.machine.durable_len(),
        })
    }
}
