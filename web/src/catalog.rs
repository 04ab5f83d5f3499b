//! The catalog service: the stock table behind HTTP, and the publisher that pushes an
//! invalidation to every subscribed front end after each durable batch of trades.
//!
//! Its internal API is in `docs/internal-api.md`; the paths and bodies are
//! `tradenet_actors::wire` (`wire::catalog` for the bodies).

use crate::catalog_group::{Ask, GetState, GroupOptions, NodeDriver};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, ok, resource, Metrics};
use crate::metrics::{CatalogMetrics, PushMetrics};
use actix::prelude::*;
use actix_web::{web, HttpResponse};
use std::collections::HashMap;
use std::time::Duration;
use tradenet_actors::catalog_actor::{
    CatalogActor, CatalogOptions, GetStatus, Invalidated, LoadedCatalog, Lookup, TableStatus,
    Trade, TradesAfter,
};
use tradenet_actors::catalog_node::{Request as NodeRequest, Response as NodeResponse};
use tradenet_actors::types::validate_name;
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{
    CatalogStatus, Hello, HelloQuery, Invalidation, InvalidationAck, InvalidationBatch,
    LookupBatch, StockResult, StockResults, Subscribe, TradeBatch, TradeRequest, TradeResult,
    TradeResults, TradesSince, MAX_LOOKUP_BATCH,
};
use tradenet_actors::wire::catalog::{
    PeerTradesPage, PeerTradesQuery, RefusalsKept, RefusalsShare, TradeOutcome, TradesPage,
};
use tradenet_actors::wire::frontend::Stock;
use tradenet_actors::wire::replica::{Accepted, CatalogTerm};

struct Subscriber {
    url: String,
    queue: Vec<Invalidation>,
    in_flight: bool,
}

/// Pushes invalidations to subscribed front ends, one request in flight per subscriber (so
/// they arrive in order) carrying everything queued meanwhile. A failed push drops the
/// subscriber; its front end notices through `hello`, empties its cache and subscribes again.
pub struct Publisher {
    incarnation: u64,
    timeout: Duration,
    /// With nothing to push for this long, a subscriber gets an empty batch (a ping), which
    /// renews its cache lease: silence then means the link is down.
    ping_every: Duration,
    client: Option<awc::Client>,
    subscribers: HashMap<String, Subscriber>,
    metrics: PushMetrics,
}

impl Publisher {
    fn new(
        incarnation: u64,
        timeout: Duration,
        ping_every: Duration,
        metrics: PushMetrics,
    ) -> Publisher {
        Publisher {
            incarnation,
            timeout,
            ping_every,
            client: None,
            subscribers: HashMap::new(),
            metrics,
        }
    }

    /// Sends subscriber `id` what is queued for it (with `ping`, an empty batch when nothing
    /// is), unless a push is in flight.
    fn pump(&mut self, id: &str, ping: bool, ctx: &mut Context<Self>) {
        let Some(sub) = self.subscribers.get_mut(id) else {
            return;
        };
        if sub.in_flight || (sub.queue.is_empty() && !ping) {
            return;
        }
        sub.in_flight = true;
        let batch = InvalidationBatch {
            incarnation: self.incarnation,
            stocks: std::mem::take(&mut sub.queue),
        };
        let url = format!("{}{}", sub.url, wire::INVALIDATE);
        let client = self
            .client
            .get_or_insert_with(|| http::client(self.timeout))
            .clone();
        let id = id.to_string();
        let ping = batch.stocks.is_empty();
        ctx.spawn(
            async move { http::post::<_, InvalidationAck>(&client, &url, &batch).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(_) => {
                        act.metrics.pushed(ping, true);
                        if let Some(sub) = act.subscribers.get_mut(&id) {
                            sub.in_flight = false;
                        }
                        act.pump(&id, false, ctx);
                    }
                    Err(e) => {
                        log::warn!(
                            "dropping subscriber {id}: push failed ({e}); it will resubscribe"
                        );
                        act.metrics.pushed(ping, false);
                        act.subscribers.remove(&id);
                        act.metrics.subscribers(act.subscribers.len());
                    }
                }),
        );
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.ping_every, |act, ctx| {
            let ids: Vec<String> = act.subscribers.keys().cloned().collect();
            for id in ids {
                act.pump(&id, true, ctx);
            }
        });
    }
}

impl Handler<Invalidated> for Publisher {
    type Result = ();
    fn handle(&mut self, msg: Invalidated, ctx: &mut Context<Self>) {
        let items: Vec<Invalidation> = msg
            .stocks
            .into_iter()
            .map(|s| Invalidation {
                name: s.name,
                version: s.version,
            })
            .collect();
        let ids: Vec<String> = self.subscribers.keys().cloned().collect();
        for id in ids {
            if let Some(sub) = self.subscribers.get_mut(&id) {
                sub.queue.extend(items.iter().cloned());
            }
            self.pump(&id, false, ctx);
        }
    }
}

#[derive(Message)]
#[rtype(result = "Hello")]
struct AddSubscriber(Subscribe);

impl Handler<AddSubscriber> for Publisher {
    type Result = MessageResult<AddSubscriber>;
    fn handle(&mut self, msg: AddSubscriber, ctx: &mut Context<Self>) -> Self::Result {
        log::info!("front end {} subscribed ({})", msg.0.id, msg.0.url);
        // A ping right away: the front end's cache serves hits only once word has come.
        let id = msg.0.id.clone();
        ctx.run_later(Duration::ZERO, move |act, ctx| act.pump(&id, true, ctx));
        self.subscribers.insert(
            msg.0.id,
            Subscriber {
                url: msg.0.url.trim_end_matches('/').to_string(),
                queue: Vec::new(),
                in_flight: false,
            },
        );
        self.metrics.subscribers(self.subscribers.len());
        MessageResult(Hello {
            incarnation: self.incarnation,
            subscribed: true,
        })
    }
}

#[derive(Message)]
#[rtype(result = "Hello")]
struct AskHello(Option<String>);

impl Handler<AskHello> for Publisher {
    type Result = MessageResult<AskHello>;
    fn handle(&mut self, msg: AskHello, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Hello {
            incarnation: self.incarnation,
            subscribed: msg.0.is_some_and(|id| self.subscribers.contains_key(&id)),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Vec<String>")]
struct ListSubscribers;

impl Handler<ListSubscribers> for Publisher {
    type Result = MessageResult<ListSubscribers>;
    fn handle(&mut self, _: ListSubscribers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.subscribers.keys().cloned().collect())
    }
}

/// The table behind the handlers: one catalog's actor, or a catalog group member's node.
#[derive(Clone)]
pub enum Table {
    /// One catalog (`[catalog] addr`).
    Solo(Addr<CatalogActor>),
    /// One catalog of a group (`[[catalogs]]`, `catalog_group.rs`).
    Group(Addr<NodeDriver>),
}

impl Table {
    async fn lookup(&self, name: String) -> ApiResult<Stock> {
        match self {
            Table::Solo(a) => Ok(a.send(Lookup(name)).await.map_err(to_api)??),
            Table::Group(a) => match a
                .send(Ask(NodeRequest::Lookup(name)))
                .await
                .map_err(to_api)??
            {
                NodeResponse::Stock(s) => Ok(s),
                other => Err(unexpected(&other)),
            },
        }
    }

    /// Trades of one leader's call, each answered on its own, in order.
    async fn trades(
        &self,
        trades: Vec<TradeRequest>,
        leader: Option<u64>,
        log_end: u64,
        catalog_epoch: Option<tradenet_actors::types::Epoch>,
    ) -> ApiResult<Vec<ApiResult<TradeOutcome>>> {
        let max = tradenet_actors::replication::MAX_TRADE_BATCH;
        let a = match self {
            // Each trade goes to the actor as if it came alone (in order; the journal's group
            // commit makes them durable together).
            Table::Solo(a) => {
                return http::each(trades, max, "trades", |t| {
                    let catalog = a.clone();
                    async move {
                        validate_name(&t.name)?;
                        catalog
                            .send(Trade(t))
                            .await
                            .map_err(to_api)?
                            .map_err(ApiError::from)
                    }
                })
                .await
            }
            Table::Group(a) => a,
        };
        http::batch_size(trades.len(), max, "trades")?;
        for t in &trades {
            validate_name(&t.name)?;
        }
        let Some(leader) = leader else {
            return Err(ApiError::bad_request(
                "a catalog group takes trades only from an order leader that names itself (leader)",
            ));
        };
        let epoch = trades[0].epoch;
        let req = NodeRequest::Trades {
            leader,
            epoch,
            log_end,
            trades,
            catalog_epoch,
        };
        match a.send(Ask(req)).await.map_err(to_api)?? {
            NodeResponse::Traded(results) => Ok(results
                .into_iter()
                .map(|r| r.map_err(ApiError::from))
                .collect()),
            other => Err(unexpected(&other)),
        }
    }

    async fn trades_since(&self, q: TradesSince) -> ApiResult<TradesPage> {
        let limit = q.limit.clamp(1, 100_000);
        match self {
            Table::Solo(a) => Ok(a
                .send(TradesAfter {
                    after: q.after,
                    epoch: q.epoch,
                    limit,
                })
                .await
                .map_err(to_api)??),
            Table::Group(a) => {
                let Some(leader) = q.leader else {
                    return Err(ApiError::bad_request(
                        "a catalog group answers trades/since only to an order leader that names itself (leader)",
                    ));
                };
                let req = NodeRequest::TradesSince {
                    leader,
                    epoch: q.epoch,
                    log_end: q.log_end,
                    after: q.after,
                    limit,
                    catalog_epoch: q.catalog_epoch,
                };
                match a.send(Ask(req)).await.map_err(to_api)?? {
                    NodeResponse::Trades {
                        trades,
                        complete,
                        last_seq,
                    } => Ok(TradesPage {
                        trades,
                        complete,
                        last_seq,
                    }),
                    other => Err(unexpected(&other)),
                }
            }
        }
    }

    async fn status(&self) -> ApiResult<TableStatus> {
        match self {
            Table::Solo(a) => a.send(GetStatus).await.map_err(to_api),
            Table::Group(a) => a.send(GetStatus).await.map_err(to_api),
        }
    }

    fn status_recipient(&self) -> Recipient<GetStatus> {
        match self {
            Table::Solo(a) => a.clone().recipient(),
            Table::Group(a) => a.clone().recipient(),
        }
    }
}

fn unexpected(r: &NodeResponse) -> ApiError {
    ApiError::from(tradenet_actors::Error::Io(format!(
        "the catalog node answered with something else: {r:?}"
    )))
}

/// What the catalog's handlers share.
#[derive(Clone)]
pub struct CatalogState {
    /// The table.
    pub table: Table,
    publisher: Addr<Publisher>,
}

/// The catalog's routes, for `main` and in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(wire::STOCK, "GET").route(web::get().to(lookup)))
        .service(resource(wire::STATUS, "GET").route(web::get().to(status)))
        .service(resource(wire::TRADE, "POST").route(web::post().to(trade)))
        .service(resource(wire::TRADE_BATCH, "POST").route(web::post().to(trade_batch)))
        .service(resource(wire::STOCK_BATCH, "POST").route(web::post().to(lookup_batch)))
        .service(resource(wire::TRADES_SINCE, "POST").route(web::post().to(trades_since)))
        .service(resource(wire::CATALOG_STATE, "GET").route(web::get().to(node_state)))
        .service(resource(wire::CATALOG_TRADES, "POST").route(web::post().to(peer_trades)))
        .service(resource(wire::CATALOG_REFUSALS, "POST").route(web::post().to(keep_refusals)))
        .service(resource(wire::CATALOG_TERM, "POST").route(web::post().to(catalog_term)))
        .service(resource(wire::SUBSCRIBE, "POST").route(web::post().to(subscribe)))
        .service(resource(wire::HELLO, "GET").route(web::get().to(hello)));
}

async fn lookup(
    state: web::Data<CatalogState>,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    validate_name(&name)?;
    Ok(ok(state.table.lookup(name.into_inner()).await?))
}

/// Each name of a batch is looked up as if asked alone (an unknown one is its own 404); the
/// actor answers them in turn from the durable table.
async fn lookup_batch(
    state: web::Data<CatalogState>,
    body: web::Json<LookupBatch>,
) -> ApiResult<HttpResponse> {
    let names = body.into_inner().names;
    let results = http::each(names, MAX_LOOKUP_BATCH, "names", |name| {
        let table = state.table.clone();
        async move {
            validate_name(&name)?;
            table.lookup(name).await
        }
    })
    .await?
    .into_iter()
    .map(|r| r.map_or_else(|e| StockResult::Error(e.into()), StockResult::Ok))
    .collect();
    Ok(ok(StockResults { results }))
}

async fn trade(
    state: web::Data<CatalogState>,
    body: web::Json<TradeRequest>,
) -> ApiResult<HttpResponse> {
    validate_name(&body.name)?;
    let Table::Solo(catalog) = &state.table else {
        return Err(ApiError::bad_request(format!(
            "a catalog group takes trades only as POST {} naming the leader",
            wire::TRADE_BATCH
        )));
    };
    let outcome = catalog
        .send(Trade(body.into_inner()))
        .await
        .map_err(to_api)??;
    Ok(ok(outcome))
}

/// Each trade of a batch goes to the actor as if it came alone (in order; the journal's group
/// commit makes them durable together); the answer waits for all of them.
async fn trade_batch(
    state: web::Data<CatalogState>,
    body: web::Json<TradeBatch>,
) -> ApiResult<HttpResponse> {
    let TradeBatch {
        trades,
        log_end,
        leader,
        catalog_epoch,
    } = body.into_inner();
    let results = state
        .table
        .trades(trades, leader, log_end, catalog_epoch)
        .await?
        .into_iter()
        .map(|r| r.map_or_else(|e| TradeResult::Error(e.into()), TradeResult::Ok))
        .collect();
    Ok(ok(TradeResults { results }))
}

async fn trades_since(
    state: web::Data<CatalogState>,
    body: web::Json<TradesSince>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.table.trades_since(body.into_inner()).await?))
}

/// The supervisors' heartbeat of a group member (a lone catalog is not in a group: 404).
async fn node_state(state: web::Data<CatalogState>) -> ApiResult<HttpResponse> {
    match &state.table {
        Table::Group(a) => Ok(ok(a.send(GetState).await.map_err(to_api)?)),
        Table::Solo(_) => Err(not_in_group()),
    }
}

fn not_in_group() -> ApiError {
    ApiError::not_found("this catalog runs alone, not in a catalog group ([[catalogs]])")
}

/// Another catalog of the group, about to serve, asks for the trades past its log's end.
async fn peer_trades(
    state: web::Data<CatalogState>,
    body: web::Json<PeerTradesQuery>,
) -> ApiResult<HttpResponse> {
    let Table::Group(a) = &state.table else {
        return Err(not_in_group());
    };
    let req = NodeRequest::PeerTrades {
        after: body.into_inner().after,
    };
    match a.send(Ask(req)).await.map_err(to_api)?? {
        NodeResponse::PeerTrades { trades, at } => Ok(ok(PeerTradesPage { trades, at })),
        other => Err(unexpected(&other)),
    }
}

/// The primary shares buys it refused; answered once they are durable here.
async fn keep_refusals(
    state: web::Data<CatalogState>,
    body: web::Json<RefusalsShare>,
) -> ApiResult<HttpResponse> {
    let Table::Group(a) = &state.table else {
        return Err(not_in_group());
    };
    let refusals = body.into_inner().refusals;
    http::batch_size(refusals.len(), MAX_REFUSALS, "refusals")?;
    match a
        .send(Ask(NodeRequest::ShareRefusals(refusals)))
        .await
        .map_err(to_api)??
    {
        NodeResponse::RefusalsKept(kept) => Ok(ok(RefusalsKept { kept })),
        other => Err(unexpected(&other)),
    }
}

/// The most refusals one share carries: one trade call's worth.
const MAX_REFUSALS: usize = tradenet_actors::replication::MAX_TRADE_BATCH;

/// A supervisor announces the catalog term; answered once it is durable.
async fn catalog_term(
    state: web::Data<CatalogState>,
    body: web::Json<CatalogTerm>,
) -> ApiResult<HttpResponse> {
    let Table::Group(a) = &state.table else {
        return Err(not_in_group());
    };
    match a
        .send(Ask(NodeRequest::Term(body.into_inner())))
        .await
        .map_err(to_api)??
    {
        NodeResponse::TermAccepted => Ok(ok(Accepted { accepted: true })),
        other => Err(unexpected(&other)),
    }
}

async fn subscribe(
    state: web::Data<CatalogState>,
    body: web::Json<Subscribe>,
) -> ApiResult<HttpResponse> {
    if !body.url.starts_with("http://") && !body.url.starts_with("https://") {
        return Err(ApiError::bad_request(format!(
            "subscriber url must be http(s)://..., got {:?}",
            body.url
        )));
    }
    let hello = state
        .publisher
        .send(AddSubscriber(body.into_inner()))
        .await
        .map_err(to_api)?;
    Ok(ok(hello))
}

async fn hello(
    state: web::Data<CatalogState>,
    q: web::Query<HelloQuery>,
) -> ApiResult<HttpResponse> {
    let hello = state
        .publisher
        .send(AskHello(q.into_inner().subscriber))
        .await
        .map_err(to_api)?;
    Ok(ok(hello))
}

async fn status(state: web::Data<CatalogState>) -> ApiResult<HttpResponse> {
    let status = state.table.status().await?;
    let node = match &state.table {
        Table::Group(a) => Some(a.send(GetState).await.map_err(to_api)?),
        Table::Solo(_) => None,
    };
    let subscribers = state
        .publisher
        .send(ListSubscribers)
        .await
        .map_err(to_api)?;
    let hello = state.publisher.send(AskHello(None)).await.map_err(to_api)?;
    Ok(crate::http::ok(CatalogStatus {
        epoch: status.epoch,
        incarnation: hello.incarnation,
        last_trade: status.last_seq,
        stocks: status.stocks,
        subscribers,
        node,
    }))
}

fn to_api(e: MailboxError) -> ApiError {
    ApiError::from(tradenet_actors::Error::from(e))
}

/// Loads catalog `id` from `config` (stopping with a clear message if its files are damaged)
/// and serves on `listener` until the process is stopped: the table's own actor for one
/// catalog, a catalog node's driver (`catalog_group.rs`) for one of a group.
/// The actors start on the first HTTP worker's thread (`http::serve`).
pub async fn run(config: Config, id: u64, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let name = config.catalog_name(id);
    if !config.fsync {
        log::warn!("{name}: fsync is OFF: acknowledged trades can be lost in a power failure (benchmarks only)");
    }
    let metrics = Metrics::new(&name);
    let domain = CatalogMetrics::register(&metrics.registry);
    let loaded = LoadedCatalog::load(CatalogOptions {
        dir: config.service_dir(&name),
        seeds: config.catalog.stocks.clone(),
        fsync: config.fsync,
        trade_window: config.catalog.trade_window,
        snapshot_every: config.catalog.snapshot_every,
    })
    .map_err(|e| anyhow::anyhow!("{name} cannot start: {e}"))?
    .observe_syncs(crate::metrics::fsync_observer(&metrics.registry));
    let incarnation = rand::random::<u64>();
    let timeout = config.request_timeout();
    let heartbeat = config.heartbeat();
    let workers = http::workers(config.catalog.workers);
    let group = config.catalog_group().then(|| GroupOptions {
        id,
        replicas: config
            .replicas
            .iter()
            .map(|r| (r.id, crate::config::url(&r.addr)))
            .collect(),
        peers: config
            .catalog_members()
            .iter()
            .filter(|c| c.id != id)
            .map(|c| (c.id, crate::config::url(&c.addr)))
            .collect(),
        follow_every: heartbeat,
        timeout,
        fsync: config.fsync,
        snapshot_every: config.catalog.snapshot_every,
    });
    log::info!(
        "{name} listening on {} (incarnation {incarnation:016x}, {workers} HTTP workers{})",
        listener.local_addr()?,
        if group.is_some() {
            "; one of a catalog group: a standby until the front ends make it primary"
        } else {
            ""
        }
    );
    let scrape = metrics.clone();
    http::serve(
        "catalog",
        metrics,
        listener,
        workers,
        move || {
            let publisher =
                Publisher::new(incarnation, timeout, heartbeat, domain.pushes.clone()).start();
            let table = match group {
                None => Table::Solo(loaded.start(Some(publisher.clone().recipient()))),
                Some(opts) => Table::Group(
                    NodeDriver::new(loaded, opts, publisher.clone().recipient()).start(),
                ),
            };
            scrape.on_scrape(domain.refresh(table.status_recipient()));
            CatalogState { table, publisher }
        },
        |state: CatalogState, cfg| {
            cfg.app_data(web::Data::new(probes(&state.table)))
                .app_data(web::Data::new(state));
            configure(cfg);
        },
    )
    .await
}

/// The catalog is live and ready when its table's actor answers: it only starts once its
/// journal and snapshot are loaded and open.
fn probes(table: &Table) -> http::Probes {
    let check: http::Check = {
        let table = table.status_recipient();
        std::sync::Arc::new(move || {
            let table = table.clone();
            Box::pin(async move {
                table
                    .send(GetStatus)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the catalog's actor does not answer: {e}"))
            })
        })
    };
    http::Probes {
        live: check.clone(),
        ready: check,
    }
}
