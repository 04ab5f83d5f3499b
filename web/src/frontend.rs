//! The front end: the public REST API, served from the LRU cache actor for lookups (kept
//! fresh by the catalog's pushed invalidations, `catalog_link.rs`) and through the
//! supervisor's leader for orders, with failover retries that clients do not see.
//!
//! The paths and bodies are `tradenet_actors::wire` (`wire::frontend`, and
//! `wire::catalog::InvalidationBatch` for the catalog's push).

use crate::batch::{self, Batcher};
use crate::catalog_link::{CatalogLink, LinkStatus};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, ok, resource, Metrics};
use crate::supervisor::{self, CatalogPrimary, CurrentLeader, Leader, Recheck, Supervisor};
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};
use tradenet_actors::cache::{self, CacheActor, CacheStatus};
use tradenet_actors::orderlog::Order;
use tradenet_actors::types::{validate_name, RequestId};
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{InvalidationAck, InvalidationBatch};
use tradenet_actors::wire::frontend::{
    FrontendStatus, OrderPlaced, OrderRequest, OrderView, PlaceOrder, Stock,
};

/// Largest quantity one order may ask for.
pub const MAX_ORDER_QUANTITY: u64 = 1_000_000;
/// Pause between two attempts while the leader changes.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Pause between two lookups while the catalog primary changes (the supervisor's next round
/// decides, at most a heartbeat away).
const CATALOG_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What the front end's handlers share.
#[derive(Clone)]
pub struct FrontendState {
    cache: Option<Addr<CacheActor>>,
    supervisor: Addr<Supervisor>,
    link: Addr<CatalogLink>,
    /// Calls to the leader and the catalog, batched under load (`batch.rs`).
    pub(crate) batchers: Batchers,
    /// The catalog lookups go to (the group's primary, set by the supervisor).
    primary: CatalogPrimary,
    /// A catalog group: a lookup waits out a failover (one catalog: it fails at once).
    catalog_group: bool,
    fill_delay: Duration,
    failover_timeout: Duration,
    /// How long a request waits while the group's leader is unreachable from here only.
    unreachable_grace: Duration,
}

/// The front end's batchers: orders placed and read at the leader, stocks looked up at the
/// catalog.
#[derive(Clone)]
pub struct Batchers {
    /// Orders placed.
    pub place: Addr<Batcher<batch::Place>>,
    /// Orders read at the leader.
    pub read: Addr<Batcher<batch::Read>>,
    /// Orders read at followers: calls time out after a heartbeat, then the leader is asked.
    pub follower_read: Addr<Batcher<batch::Read>>,
    /// Cache misses.
    pub lookup: Addr<Batcher<batch::Lookup>>,
}

impl Batchers {
    fn start(timeout: Duration, follower_timeout: Duration) -> Batchers {
        Batchers {
            place: Batcher::new(timeout).start(),
            read: Batcher::new(timeout).start(),
            follower_read: Batcher::new(follower_timeout).start(),
            lookup: Batcher::new(timeout).start(),
        }
    }
}

/// The front end's routes, for `main` and in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(wire::STOCK, "GET").route(web::get().to(lookup)))
        .service(resource(wire::ORDERS, "POST").route(web::post().to(place_order)))
        .service(resource(wire::ORDER, "GET").route(web::get().to(get_order)))
        .service(resource(wire::STATUS, "GET").route(web::get().to(status)))
        .service(resource(wire::OPENAPI, "GET").route(web::get().to(crate::openapi::serve)))
        .service(resource(wire::INVALIDATE, "POST").route(web::post().to(invalidate)));
}

async fn lookup(
    state: web::Data<FrontendState>,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let name = name.into_inner();
    validate_name(&name)?;
    let mut generation = None;
    if let Some(cache) = &state.cache {
        match cache
            .send(cache::Get(name.clone()))
            .await
            .map_err(mailbox)?
        {
            Ok(stock) => return Ok(ok(stock)),
            Err(g) => generation = Some(g),
        }
    }
    let stock = lookup_at_primary(&state, name).await?;
    if let (Some(cache), Some(generation)) = (&state.cache, generation) {
        if !state.fill_delay.is_zero() {
            tokio::time::sleep(state.fill_delay).await;
        }
        cache.do_send(cache::Put {
            stock: stock.clone(),
            generation,
        });
    }
    Ok(ok(stock))
}

/// Looks `name` up at the catalog (primary). In a catalog group a failover (no primary known,
/// or one that is not serving yet) is waited out up to `failover_timeout`, asking again each
/// pause: the client sees latency, not an error.
async fn lookup_at_primary(state: &FrontendState, name: String) -> ApiResult<Stock> {
    let deadline = Instant::now() + state.failover_timeout;
    loop {
        let result = match state.primary.get() {
            Some((_, url)) => batch::submit(&state.batchers.lookup, url, name.clone()).await,
            None => Err(ApiError::unavailable(
                "no catalog of the group is live (no primary)",
            )),
        };
        match result {
            Err(e) if state.catalog_group && e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(CATALOG_RETRY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// The request id for an order: SHA-256 of the client's Idempotency-Key (so the same key
/// names the same trade at every front end), otherwise random.
pub fn request_id(req: &HttpRequest) -> ApiResult<RequestId> {
    match req.headers().get("Idempotency-Key") {
        None => Ok(RequestId(rand::random())),
        Some(v) => {
            let key = v.as_bytes();
            if key.is_empty() || key.len() > 256 {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1..256 bytes",
                ));
            }
            let digest = Sha256::digest(key);
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            Ok(RequestId(u128::from_be_bytes(first)))
        }
    }
}

async fn place_order(
    state: web::Data<FrontendState>,
    req: HttpRequest,
    body: web::Json<OrderRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    validate_name(&body.name)?;
    if body.quantity == 0 || body.quantity > MAX_ORDER_QUANTITY {
        return Err(ApiError::bad_request(format!(
            "quantity must be between 1 and {MAX_ORDER_QUANTITY}, got {}",
            body.quantity
        )));
    }
    let order = PlaceOrder {
        rid: request_id(&req)?,
        name: body.name,
        quantity: body.quantity,
        kind: body.kind,
    };
    let placed: Order = with_leader(&state, |leader| {
        let batcher = state.batchers.place.clone();
        let item = order.clone();
        async move { batch::submit(&batcher, leader.url, item).await }
    })
    .await?;
    Ok(ok(OrderPlaced {
        transaction_number: placed.number,
    }))
}

async fn get_order(
    state: web::Data<FrontendState>,
    number: web::Path<u64>,
) -> ApiResult<HttpResponse> {
    let n = number.into_inner();
    let order: Order = match read_at_follower(&state, n).await {
        Some(order) => order,
        None => {
            with_leader(&state, |leader| {
                let batcher = state.batchers.read.clone();
                async move { batch::submit(&batcher, leader.url, n).await }
            })
            .await?
        }
    };
    Ok(ok(OrderView {
        name: order.name,
        number: order.number,
        quantity: order.quantity,
        kind: order.kind,
    }))
}

/// Order reads go to one follower that reads (`Leader::readers`: live, in step, in the
/// leader's epoch), so the leader is left to trade and the reads still batch together; `None`
/// when there is none. A follower shows only an order it holds durably, which is the catalog's
/// trade under that number whoever shows it (rule 8), so a client reads its own acknowledged
/// order or newer, never an older answer. Any other answer (it lacks the order, it fails, a
/// heartbeat passes) leaves the read to the leader, which alone may say that an order does not
/// exist.
async fn read_at_follower(state: &FrontendState, n: u64) -> Option<Order> {
    let leader = state.supervisor.send(CurrentLeader).await.ok()??;
    let url = leader.readers.first()?.clone();
    batch::submit(&state.batchers.follower_read, url, n)
        .await
        .ok()
}

/// Runs `call` against the leader; when it fails in a way a new leader may fix, asks the
/// supervisor to re-check at once and tries again (same request, so the same request id),
/// until `failover_timeout`. With no live replica at all the answer is 503 at once.
async fn with_leader<T, F, Fut>(state: &FrontendState, call: F) -> ApiResult<T>
where
    F: Fn(Leader) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let started = Instant::now();
    let deadline = started + state.failover_timeout;
    let mut leader = state
        .supervisor
        .send(CurrentLeader)
        .await
        .map_err(mailbox)?;
    loop {
        let Some(l) = leader else {
            leader = state.supervisor.send(Recheck).await.map_err(mailbox)?;
            if leader.is_none() {
                return Err(ApiError::unavailable(
                    "no order replica is reachable (no leader)",
                ));
            }
            continue;
        };
        let id = l.id;
        if l.unreachable_here {
            // The group hears this leader; we cannot reach it. Either it just died (its
            // followers stop hearing it within the silence limit, and a new leader is chosen),
            // or only our link to it is cut: wait out one silence window, then say so; never
            // start a leadership fight. Nothing was sent, so nothing traded.
            let waited = started.elapsed();
            if waited >= state.unreachable_grace {
                return Err(ApiError::unavailable(format!(
                    "leader {id} is alive, but this front end has not reached it for {waited:?}; nothing was traded: try another front end"
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            leader = state.supervisor.send(Recheck).await.map_err(mailbox)?;
            continue;
        }
        match call(l).await {
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                log::info!("request to leader {id} failed ({e}); re-checking and retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                leader = state.supervisor.send(Recheck).await.map_err(mailbox)?;
            }
            Err(e) if e.is_retryable() => {
                return Err(ApiError::unavailable(format!(
                    "no leader could take the request within {:?} (last: {})",
                    state.failover_timeout, e.message
                )))
            }
            other => return other,
        }
    }
}

async fn invalidate(
    state: web::Data<FrontendState>,
    body: web::Json<InvalidationBatch>,
) -> ApiResult<HttpResponse> {
    let batch = body.into_inner();
    if let Some(cache) = &state.cache {
        let items = batch
            .stocks
            .into_iter()
            .map(|i| (i.name, i.version))
            .collect();
        cache
            .send(cache::Invalidate(items))
            .await
            .map_err(mailbox)?;
    }
    Ok(ok(InvalidationAck { ok: true }))
}

async fn status(state: web::Data<FrontendState>) -> ApiResult<HttpResponse> {
    let sup = state
        .supervisor
        .send(supervisor::GetStatus)
        .await
        .map_err(mailbox)?;
    let cache = cache_status(&state).await?;
    let link = state.link.send(LinkStatus).await.map_err(mailbox)?;
    Ok(ok(FrontendStatus {
        cache,
        catalog: link,
        catalog_primary: sup.catalog_primary,
        catalogs: sup.catalogs,
        epoch: sup.epoch,
        leader: sup.leader,
        replicas: sup.replicas,
    }))
}

async fn cache_status(state: &FrontendState) -> ApiResult<CacheStatus> {
    Ok(match &state.cache {
        Some(cache) => cache.send(cache::Status).await.map_err(mailbox)?,
        None => CacheStatus::default(),
    })
}

fn mailbox(e: MailboxError) -> ApiError {
    ApiError::from(tradenet_actors::Error::from(e))
}

/// Starts the front end's actors on the current thread's arbiter.
fn start_actors(config: &Config) -> FrontendState {
    let lease = Duration::from_millis(config.frontend.cache_lease_ms);
    let cache =
        NonZeroUsize::new(config.frontend.cache_size).map(|n| CacheActor::new(n, lease).start());
    match &cache {
        Some(_) => log::info!("cache on: {} entries (LRU)", config.frontend.cache_size),
        None => log::info!("cache off (cache_size = 0): every lookup asks the catalog"),
    }
    let primary = CatalogPrimary::new(if config.catalog_group() {
        None
    } else {
        let one = &config.catalog_members()[0];
        Some((one.id, crate::config::url(&one.addr)))
    });
    let link = CatalogLink::new(
        primary.clone(),
        crate::config::url(&config.frontend.addr),
        config.heartbeat(),
        config.request_timeout(),
        cache.clone(),
    )
    .start();
    let supervisor = Supervisor::new(config, primary.clone()).start();
    FrontendState {
        cache,
        supervisor,
        link,
        batchers: Batchers::start(config.request_timeout(), config.heartbeat()),
        primary,
        catalog_group: config.catalog_group(),
        fill_delay: Duration::from_millis(config.frontend.fill_delay_ms),
        failover_timeout: Duration::from_millis(config.frontend.failover_timeout_ms),
        // One silence window (three heartbeats) and two heartbeats more for the election.
        unreachable_grace: config.heartbeat() * 5,
    }
}

/// Starts the front end and serves on `listener` until the process is stopped.
///
/// The actors (cache, catalog link, supervisor) start on the first HTTP worker's thread
/// (`http::serve`): with one worker, the default, a cache hit never wakes another thread.
pub async fn run(config: Config, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let metrics = Metrics::new("frontend");
    let domain = crate::metrics::FrontendMetrics::register(&metrics.registry);
    let scrape = metrics.clone();
    let workers = http::workers(config.frontend.workers);
    log::info!(
        "front end listening on {} ({workers} HTTP workers)",
        listener.local_addr()?
    );
    http::serve(
        "frontend",
        metrics,
        listener,
        workers,
        move || {
            let s = start_actors(&config);
            scrape.on_scrape(domain.refresh(
                s.supervisor.clone(),
                s.cache.clone(),
                s.link.clone(),
                s.batchers.clone(),
            ));
            s
        },
        move |state: FrontendState, cfg| {
            cfg.app_data(web::Data::new(probes(&state)))
                .app_data(web::Data::new(state));
            configure(cfg);
        },
    )
    .await
}

/// A front end is live when its supervisor answers, and ready when it also has a leader to
/// send orders to and a confirmed link to the catalog.
fn probes(state: &FrontendState) -> http::Probes {
    let (supervisor, link) = (state.supervisor.clone(), state.link.clone());
    let live_supervisor = supervisor.clone();
    http::Probes {
        live: std::sync::Arc::new(move || {
            let supervisor = live_supervisor.clone();
            Box::pin(async move {
                supervisor
                    .send(CurrentLeader)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the supervisor does not answer: {e}"))
            })
        }),
        ready: std::sync::Arc::new(move || {
            let (supervisor, link) = (supervisor.clone(), link.clone());
            Box::pin(async move {
                let leader = supervisor
                    .send(CurrentLeader)
                    .await
                    .map_err(|e| e.to_string())?;
                let link = link.send(LinkStatus).await.map_err(|e| e.to_string())?;
                match (leader, link.connected) {
                    (Some(_), true) => Ok(()),
                    (None, _) => Err("no order replica is live (no leader)".into()),
                    (_, false) => Err("no confirmed link to the catalog".into()),
                }
            })
        }),
    }
}
