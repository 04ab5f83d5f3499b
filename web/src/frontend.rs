//! The front end: the public REST API, served from the LRU cache actor for lookups (kept
//! fresh by the catalog's pushed invalidations) and through the supervisor's leader for
//! orders, with failover retries that clients do not see.
//!
//! The catalog link actor polls the catalog every heartbeat. When the catalog cannot be
//! reached, restarted (new incarnation), or forgot this front end (a failed push), the cache
//! is emptied and the front end subscribes again (rule 6).

use crate::catalog::{Hello, InvalidationBatch, Subscribe};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, ok, resource, Metrics};
use crate::supervisor::{self, CurrentLeader, Leader, Recheck, Supervisor};
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};
use tradenet_actors::cache::{self, CacheActor, CacheStatus};
use tradenet_actors::orderlog::Order;
use tradenet_actors::types::{validate_name, RequestId, Stock, TradeKind};

/// Largest quantity one order may ask for.
pub const MAX_ORDER_QUANTITY: u64 = 1_000_000;
/// Pause between two attempts while the leader changes.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// A client's order, as the public API takes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Stock name.
    pub name: String,
    /// Units, 1 or more.
    pub quantity: u64,
    /// "buy" or "sell".
    #[serde(rename = "type")]
    pub kind: TradeKind,
}

/// An order as the leader receives it from a front end.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Request id: random, or derived from the client's Idempotency-Key.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Units.
    pub quantity: u64,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
}

/// What the front end's handlers share.
#[derive(Clone)]
pub struct FrontendState {
    cache: Option<Addr<CacheActor>>,
    supervisor: Addr<Supervisor>,
    link: Addr<CatalogLink>,
    catalog_url: String,
    fill_delay: Duration,
    failover_timeout: Duration,
}

/// The front end's routes, for `main` and in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/stocks/{name}").route(web::get().to(lookup)))
        .service(resource("/orders").route(web::post().to(place_order)))
        .service(resource("/orders/{number}").route(web::get().to(get_order)))
        .service(resource("/status").route(web::get().to(status)))
        .service(resource("/internal/v1/invalidate").route(web::post().to(invalidate)));
}

async fn lookup(
    state: web::Data<FrontendState>,
    client: web::Data<awc::Client>,
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
    let url = format!("{}/stocks/{name}", state.catalog_url);
    let stock: Stock = http::get(&client, &url).await?;
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
    client: web::Data<awc::Client>,
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
        let client = client.clone();
        let order = order.clone();
        async move {
            http::post(
                &client,
                &format!("{}/internal/v1/orders", leader.url),
                &order,
            )
            .await
        }
    })
    .await?;
    Ok(ok(
        serde_json::json!({ "transaction_number": placed.number }),
    ))
}

async fn get_order(
    state: web::Data<FrontendState>,
    client: web::Data<awc::Client>,
    number: web::Path<u64>,
) -> ApiResult<HttpResponse> {
    let n = number.into_inner();
    let order: Order = with_leader(&state, |leader| {
        let client = client.clone();
        async move { http::get(&client, &format!("{}/internal/v1/orders/{n}", leader.url)).await }
    })
    .await?;
    Ok(ok(serde_json::json!({
        "number": order.number,
        "name": order.name,
        "type": order.kind,
        "quantity": order.quantity,
    })))
}

/// Runs `call` against the leader; when it fails in a way a new leader may fix, asks the
/// supervisor to re-check at once and tries again (same request, so the same request id),
/// until `failover_timeout`. With no live replica at all the answer is 503 at once.
async fn with_leader<T, F, Fut>(state: &FrontendState, call: F) -> ApiResult<T>
where
    F: Fn(Leader) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let deadline = Instant::now() + state.failover_timeout;
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
    Ok(ok(serde_json::json!({ "ok": true })))
}

async fn status(state: web::Data<FrontendState>) -> ApiResult<HttpResponse> {
    let sup = state
        .supervisor
        .send(supervisor::GetStatus)
        .await
        .map_err(mailbox)?;
    let cache = cache_status(&state).await?;
    let link = state.link.send(LinkStatus).await.map_err(mailbox)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "leader": sup.leader,
        "epoch": sup.epoch,
        "replicas": sup.replicas,
        "cache": cache,
        "catalog": link,
    })))
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

/// Keeps this front end subscribed to the catalog; see the module docs.
pub struct CatalogLink {
    id: String,
    catalog_url: String,
    callback_url: String,
    interval: Duration,
    timeout: Duration,
    cache: Option<Addr<CacheActor>>,
    client: Option<awc::Client>,
    incarnation: Option<u64>,
    connected: bool,
    busy: bool,
}

/// The link's state for `/status`.
#[derive(Clone, Debug, Serialize, Deserialize, MessageResponse)]
pub struct LinkState {
    /// This front end's subscriber id.
    pub subscriber: String,
    /// Subscribed and answering.
    pub connected: bool,
    /// The catalog incarnation subscribed to.
    pub incarnation: Option<u64>,
}

#[derive(Message)]
#[rtype(result = "LinkState")]
struct LinkStatus;

impl Handler<LinkStatus> for CatalogLink {
    type Result = LinkState;
    fn handle(&mut self, _: LinkStatus, _: &mut Context<Self>) -> LinkState {
        LinkState {
            subscriber: self.id.clone(),
            connected: self.connected,
            incarnation: self.incarnation,
        }
    }
}

impl CatalogLink {
    fn flush(&self, reason: String) {
        if let Some(cache) = &self.cache {
            cache.do_send(cache::Flush(reason));
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let client = self
            .client
            .get_or_insert_with(|| http::client(self.timeout))
            .clone();
        let hello_url = format!(
            "{}/internal/v1/hello?subscriber={}",
            self.catalog_url, self.id
        );
        let sub_url = format!("{}/internal/v1/subscribe", self.catalog_url);
        let sub = Subscribe {
            id: self.id.clone(),
            url: self.callback_url.clone(),
        };
        let known = self.incarnation;
        let connected = self.connected;
        ctx.spawn(
            async move {
                let hello: Hello = http::get(&client, &hello_url).await?;
                if connected && hello.subscribed && Some(hello.incarnation) == known {
                    return Ok(None);
                }
                let fresh: Hello = http::post(&client, &sub_url, &sub).await?;
                Ok::<_, ApiError>(Some(fresh.incarnation))
            }
            .into_actor(self)
            .map(|res, act, _| {
                act.busy = false;
                match res {
                    Ok(None) => {}
                    Ok(Some(incarnation)) => {
                        let reason = match act.incarnation {
                            None => "subscribed to the catalog".to_string(),
                            Some(old) if old != incarnation => {
                                format!("the catalog restarted (incarnation {old:016x} -> {incarnation:016x}); resubscribed")
                            }
                            Some(_) => "the catalog had dropped this front end; resubscribed".to_string(),
                        };
                        act.incarnation = Some(incarnation);
                        act.connected = true;
                        act.flush(reason);
                    }
                    Err(e) => {
                        if act.connected {
                            act.connected = false;
                            act.flush(format!("lost the catalog ({e})"));
                        }
                    }
                }
            }),
        );
    }
}

impl Actor for CatalogLink {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.check(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.check(ctx));
    }
}

/// Starts the front end's actors on the current thread's arbiter.
fn start_actors(config: &Config) -> FrontendState {
    let cache = NonZeroUsize::new(config.frontend.cache_size).map(|n| CacheActor::new(n).start());
    match &cache {
        Some(_) => log::info!("cache on: {} entries (LRU)", config.frontend.cache_size),
        None => log::info!("cache off (cache_size = 0): every lookup asks the catalog"),
    }
    let catalog_url = crate::config::url(&config.catalog.addr);
    let link = CatalogLink {
        id: format!("{:016x}", rand::random::<u64>()),
        catalog_url: catalog_url.clone(),
        callback_url: crate::config::url(&config.frontend.addr),
        interval: config.heartbeat(),
        timeout: config.request_timeout(),
        cache: cache.clone(),
        client: None,
        incarnation: None,
        connected: false,
        busy: false,
    }
    .start();
    let supervisor = Supervisor::new(config).start();
    FrontendState {
        cache,
        supervisor,
        link,
        catalog_url,
        fill_delay: Duration::from_millis(config.frontend.fill_delay_ms),
        failover_timeout: Duration::from_millis(config.frontend.failover_timeout_ms),
    }
}

/// Starts the front end and serves on `listener` until the process is stopped.
///
/// The actors (cache, catalog link, supervisor) start on the first HTTP worker's thread
/// (`http::serve`): with one worker, the default, a cache hit never wakes another thread.
pub async fn run(config: Config, listener: std::net::TcpListener) -> anyhow::Result<()> {
    let metrics = Metrics::new("frontend");
    let timeout = config.request_timeout();
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
        move || start_actors(&config),
        move |state, cfg| {
            cfg.app_data(web::Data::new(state))
                .app_data(web::Data::new(http::client(timeout)));
            configure(cfg);
        },
    )
    .await
}
