//! What every service's HTTP side shares: body limits and extractor errors turned into the
//! error object, 404/405 for unknown paths and methods, `/health`, `/metrics` with request
//! counts and latencies, and JSON calls to other services with a timeout.

use crate::error::{self, ApiError, ApiResult};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest, HttpResponse};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};
use tradenet_actors::wire::{self, DataBody, ErrorKind, Health, MAX_BODY_BYTES};

/// The cluster secret of this process (set once at start from the configuration): required
/// on every call under `/internal/` and `/control/` that this process serves, and sent on
/// every call it makes to another service.
static SECRET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sets this process's cluster secret; call once, before serving or calling anything.
pub fn set_secret(secret: Option<String>) {
    let _ = SECRET.set(secret);
}

/// This process's cluster secret, if it has one.
pub fn secret() -> Option<&'static str> {
    SECRET.get().and_then(|s| s.as_deref())
}

/// This process's TLS (`[tls]`): what it serves with, and what it trusts when it calls.
#[derive(Clone, Debug)]
pub struct Tls {
    /// Its certificate and key.
    pub server: rustls::ServerConfig,
    /// The cluster's CA.
    pub client: std::sync::Arc<rustls::ClientConfig>,
}

static TLS: std::sync::OnceLock<Option<Tls>> = std::sync::OnceLock::new();

/// Sets this process's TLS; call once, before serving or calling anything.
pub fn set_tls(tls: Option<Tls>) {
    let _ = TLS.set(tls);
}

/// This process's TLS, when it has one.
pub fn tls() -> Option<&'static Tls> {
    TLS.get().and_then(|t| t.as_ref())
}

/// `https` with TLS, else `http`.
pub fn scheme() -> &'static str {
    if tls().is_some() {
        "https"
    } else {
        "http"
    }
}

/// Listens on `listener`, with TLS when this process has it.
pub fn listen<F, I, S, B>(
    server: actix_web::HttpServer<F, I, S, B>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::HttpServer<F, I, S, B>>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: actix_web::dev::ServiceFactory<actix_http::Request, Config = actix_web::dev::AppConfig>
        + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<actix_http::Response<B>> + 'static,
    <S::Service as Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    match tls() {
        Some(t) => server.listen_rustls_0_23(listener, t.server.clone()),
        None => server.listen(listener),
    }
}

/// The paths only the cluster may call.
fn guarded(path: &str) -> bool {
    path.starts_with("/internal/") || path.starts_with("/control/")
}

/// Checks a call's `Authorization: Bearer <secret>` when the path is guarded and a secret is
/// set. The comparison is of SHA-256 digests in constant time, so neither the secret's bytes
/// nor its length leak through timing.
fn authorize(req: &actix_web::dev::ServiceRequest) -> Result<(), ApiError> {
    let Some(secret) = secret() else {
        return Ok(());
    };
    if !guarded(req.path()) {
        return Ok(());
    }
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else {
        return Err(ApiError::with_kind(
            ErrorKind::Unauthorized,
            format!(
                "{} needs the cluster secret (Authorization: Bearer ...)",
                req.path()
            ),
        ));
    };
    use sha2::{Digest, Sha256};
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(secret.as_bytes()),
    );
    let differ = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if differ == 0 {
        Ok(())
    } else {
        Err(ApiError::with_kind(
            ErrorKind::Unauthorized,
            format!("{}: wrong cluster secret", req.path()),
        ))
    }
}

/// Answers `200 {"data": value}`.
pub fn ok<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(DataBody { data: value })
}

/// One check of a probe: `Ok` when it holds, `Err(why)` when not.
pub type Check = std::sync::Arc<
    dyn Fn() -> futures::future::LocalBoxFuture<'static, Result<(), String>> + Send + Sync,
>;

/// How a service answers its probes; each service registers one as app data.
///
/// - `/health` is liveness: the process's actors answer (a supervisor that sees 503 here, or
///   no answer, restarts the process).
/// - `/ready` is readiness: the service can do its job (a front end has a leader and a catalog
///   link; a replica is in step; a catalog has its journal open). Load balancers, compose's
///   start order and the launcher wait on it.
#[derive(Clone)]
pub struct Probes {
    /// Liveness.
    pub live: Check,
    /// Readiness.
    pub ready: Check,
}

/// How long a probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe(service: &'static str, check: Option<Check>, word: &'static str) -> HttpResponse {
    let Some(check) = check else {
        return ok(Health {
            service: service.to_string(),
            status: word.to_string(),
        });
    };
    match tokio::time::timeout(PROBE_TIMEOUT, check()).await {
        Ok(Ok(())) => ok(Health {
            service: service.to_string(),
            status: word.to_string(),
        }),
        Ok(Err(why)) => {
            ApiError::unavailable(format!("{service} is not {word}: {why}")).into_response()
        }
        Err(_) => ApiError::unavailable(format!(
            "{service} is not {word}: no answer within {PROBE_TIMEOUT:?}"
        ))
        .into_response(),
    }
}

/// Reads a service's domain values (its actors' status) into its registry just before
/// `/metrics` encodes it; see `Metrics::on_scrape`.
pub type Refresh =
    std::sync::Arc<dyn Fn() -> futures::future::LocalBoxFuture<'static, ()> + Send + Sync>;

/// Request metrics of one service, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    refresh: std::sync::Arc<std::sync::OnceLock<Refresh>>,
}

impl Metrics {
    /// Metrics for the service called `service` (a constant label on every series).
    pub fn new(service: &str) -> Metrics {
        let registry = Registry::new_custom(
            Some("tradenet".into()),
            Some([("service".to_string(), service.to_string())].into()),
        )
        .expect("valid registry");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer, by route")
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ]),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(latency.clone()))
            .expect("register");
        Metrics {
            registry,
            requests,
            latency,
            refresh: Default::default(),
        }
    }

    /// Runs `refresh` before every scrape (set once; later calls are ignored), so values the
    /// actors already keep are read when asked for instead of on every request. A refresh
    /// slower than the probe time-out is abandoned and the registry encoded as it is.
    pub fn on_scrape(&self, refresh: Refresh) {
        let _ = self.refresh.set(refresh);
    }

    /// Refreshes (see `on_scrape`), then encodes.
    pub async fn scrape(&self) -> HttpResponse {
        if let Some(refresh) = self.refresh.get() {
            let _ = tokio::time::timeout(PROBE_TIMEOUT, refresh()).await;
        }
        self.render()
    }

    fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> HttpResponse {
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return ApiError::with_kind(ErrorKind::Internal, format!("metrics: {e}"))
                .into_response();
        }
        HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(buf)
    }
}

trait IntoResponse {
    fn into_response(self) -> HttpResponse;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// Wraps a service's routes with the shared pieces: extractor error mapping, body limits,
/// metrics, `/health` and `/ready` (see `Probes`), `/metrics`, and 404 for unknown paths.
pub fn app(
    service: &'static str,
    metrics: Metrics,
    routes: impl FnOnce(&mut web::ServiceConfig),
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let m = metrics.clone();
    App::new()
        .app_data(
            // A body is read as JSON whatever its Content-Type says, none included (curl -d,
            // quick scripts); a body that is not JSON still gets 400 with the error object.
            web::JsonConfig::default()
                .limit(MAX_BODY_BYTES)
                .content_type_required(false)
                .error_handler(json_error),
        )
        .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::Data::new(metrics))
        .wrap_fn(|req, srv| match authorize(&req) {
            Ok(()) => futures::future::Either::Left(srv.call(req)),
            Err(e) => {
                let res = req.into_response(e.into_response());
                futures::future::Either::Right(futures::future::ready(Ok(res)))
            }
        })
        .wrap_fn(move |req, srv| {
            let start = Instant::now();
            let m = m.clone();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                // The pattern the router matched, as `resource` left it on the request: asking
                // actix (`match_pattern`) would match the path against every route again, a
                // tenth of a cache hit's time.
                let route = match res.request().app_data::<RoutePattern>() {
                    Some(p) => p.0.clone(),
                    None => res
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".into()),
                };
                m.observe(&route, res.status().as_u16(), start.elapsed());
                Ok(res)
            }
        })
        .service(resource(wire::HEALTH, "GET").route(web::get().to(
            move |p: Option<web::Data<Probes>>| probe(service, p.map(|p| p.live.clone()), "ok"),
        )))
        .service(resource(wire::READY, "GET").route(web::get().to(
            move |p: Option<web::Data<Probes>>| probe(service, p.map(|p| p.ready.clone()), "ready"),
        )))
        .service(
            resource(wire::METRICS, "GET")
                .route(web::get().to(|m: web::Data<Metrics>| async move { m.scrape().await })),
        )
        .configure(routes)
        .default_service(web::to(|req: HttpRequest| async move {
            ApiError::not_found(format!("no route for {} {}", req.method(), req.path()))
                .into_response()
        }))
}

/// Answers every item of a batch with `one`, all at once, each result in the order asked; a
/// batch of no items or more than `max` is refused whole (400, naming `what` it holds).
pub async fn each<I, T, Fut>(
    items: Vec<I>,
    max: usize,
    what: &str,
    one: impl FnMut(I) -> Fut,
) -> ApiResult<Vec<ApiResult<T>>>
where
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    batch_size(items.len(), max, what)?;
    Ok(futures::future::join_all(items.into_iter().map(one)).await)
}

/// A batch of `len` items, `what` it holds, is 1 to `max` long (400 otherwise).
pub fn batch_size(len: usize, max: usize, what: &str) -> ApiResult<()> {
    if len == 0 || len > max {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {max} {what}, not {len}"
        )));
    }
    Ok(())
}

/// A resource's path pattern, on every request it routes: the metrics' `route` label.
struct RoutePattern(String);

/// A resource whose other methods get 405 with the error object and `Allow: <allow>`, the one
/// method it answers (HTTP requires the header on a 405).
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(RoutePattern(path.to_string()))
        .default_service(web::to(move |req: HttpRequest| async move {
            let mut res = ApiError::with_kind(
                ErrorKind::MethodNotAllowed,
                format!(
                    "{} is not allowed on {} (only {allow})",
                    req.method(),
                    req.path()
                ),
            )
            .into_response();
            res.headers_mut().insert(
                actix_web::http::header::ALLOW,
                actix_web::http::header::HeaderValue::from_static(allow),
            );
            res
        }))
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::with_kind(
                ErrorKind::TooLarge,
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("expected Content-Type: application/json")
        }
        other => ApiError::bad_request(format!("malformed JSON body: {other}")),
    };
    api.into()
}

fn path_error(err: PathError, req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("malformed path {}: {err}", req.path())).into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("malformed query: {err}")).into()
}

/// Serves a service's routes on `listener` until the process is stopped.
///
/// `start` makes the service's actors and shared state; it runs once, on the first HTTP
/// worker's thread, so that with one worker (each service's default) a handler's message to
/// an actor stays on its own thread instead of waking another one and back (the profile in
/// docs/performance.md). More workers share that state through actor addresses. `routes`
/// registers the state and the routes for each worker.
pub async fn serve<S, Start, Routes>(
    service: &'static str,
    metrics: Metrics,
    listener: std::net::TcpListener,
    workers: usize,
    start: Start,
    routes: Routes,
) -> anyhow::Result<()>
where
    S: Clone + Send + Sync + 'static,
    Start: FnOnce() -> S + Send + 'static,
    Routes: Fn(S, &mut web::ServiceConfig) + Clone + Send + 'static,
{
    let state = std::sync::Arc::new((
        std::sync::OnceLock::<S>::new(),
        std::sync::Mutex::new(Some(start)),
    ));
    let server = actix_web::HttpServer::new(move || {
        let (cell, start) = &*state;
        let s = cell
            .get_or_init(|| {
                (start
                    .lock()
                    .expect("start lock")
                    .take()
                    .expect("started once"))()
            })
            .clone();
        let routes = routes.clone();
        app(service, metrics.clone(), move |cfg| routes(s, cfg))
    })
    .workers(workers);
    listen(server, listener)?.run().await?;
    Ok(())
}

/// Number of HTTP workers: the configured count, or one per core for 0.
pub fn workers(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Binds `addr`, naming it in the error.
pub fn bind(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() != std::io::ErrorKind::AddrInUse {
            return anyhow::anyhow!("cannot listen on {addr}: {e}");
        }
        anyhow::anyhow!("cannot listen on {addr}: {}", who_listens(addr))
    })
}

/// Says who holds `addr`: another Trade-Net process answers `/health` with its name.
fn who_listens(addr: &str) -> String {
    let short = Duration::from_millis(500);
    let answer = blocking_agent(short, short)
        .get(&format!("{}{}", crate::config::url(addr), wire::HEALTH))
        .call();
    let service = match answer {
        Ok(r) => r
            .into_json::<DataBody<Health>>()
            .ok()
            .map(|h| h.data.service),
        Err(ureq::Error::Status(_, r)) => r.into_json::<Health>().ok().map(|h| h.service),
        Err(_) => None,
    };
    match service {
        Some(s) => format!(
            "another Trade-Net process ({s}) already listens there: stop it (`tradenet status` \
             lists what runs), or give this one another address"
        ),
        None => "the address is in use by another program: stop it, or choose another \
                 address in the configuration"
            .to_string(),
    }
}

/// A blocking client (ureq) for threads outside actix: the launcher's readiness probes and
/// the console's load. It trusts the cluster's CA when this process has TLS.
pub fn blocking_agent(connect: Duration, timeout: Duration) -> ureq::Agent {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout(timeout);
    match tls() {
        Some(t) => agent.tls_config(t.client.clone()),
        None => agent,
    }
    .build()
}

/// A client for calls to other services; one per thread (awc clients are not `Send`). It
/// carries the cluster secret, when there is one, on every call.
pub fn client(timeout: Duration) -> awc::Client {
    let mut connector = awc::Connector::new().timeout(timeout).limit(256);
    if let Some(t) = tls() {
        connector = connector.rustls_0_23(t.client.clone());
    }
    let mut builder = awc::Client::builder().timeout(timeout).connector(connector);
    if let Some(secret) = secret() {
        builder = builder.add_default_header((
            actix_web::http::header::AUTHORIZATION,
            format!("Bearer {secret}"),
        ));
    }
    builder.finish()
}

/// Sends `body` as JSON with POST and decodes `{"data": T}`; transport failures and time-outs
/// are 503 `unavailable`, error objects are passed through.
pub async fn post<B: Serialize, T: DeserializeOwned>(
    client: &awc::Client,
    url: &str,
    body: &B,
) -> ApiResult<T> {
    post_heard(client, url, body).await?
}

/// GET `url` and decode `{"data": T}`; errors as for `post`.
pub async fn get<T: DeserializeOwned>(client: &awc::Client, url: &str) -> ApiResult<T> {
    get_heard(client, url).await?
}

/// As `post`, keeping apart what the other service answered (the inner result, its error
/// object included) from a call that was never answered (the outer `Err`: no connection, a
/// time-out, a body that is not the wire's). A state machine that measures how long it has
/// not heard a peer must not count the second as hearing it.
pub async fn post_heard<B: Serialize, T: DeserializeOwned>(
    client: &awc::Client,
    url: &str,
    body: &B,
) -> Result<ApiResult<T>, ApiError> {
    let res = client.post(url).send_json(body).await;
    decode(url, res).await
}

/// As `get`, with the answer kept apart from a call never answered (see `post_heard`).
pub async fn get_heard<T: DeserializeOwned>(
    client: &awc::Client,
    url: &str,
) -> Result<ApiResult<T>, ApiError> {
    let res = client.get(url).send().await;
    decode(url, res).await
}

async fn decode<T: DeserializeOwned, S>(
    url: &str,
    res: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
) -> Result<ApiResult<T>, ApiError>
where
    S: futures::Stream<Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>>
        + Unpin,
{
    let mut res = res.map_err(|e| ApiError::unavailable(format!("{url}: {e}")))?;
    let body = res
        .body()
        .limit(256 << 20)
        .await
        .map_err(|e| ApiError::unavailable(format!("{url}: reading answer: {e}")))?;
    if !res.status().is_success() {
        // Only the wire's error object is the other service's answer; anything else (a
        // proxy's page, an empty body) says nothing of it.
        let status = res.status().as_u16();
        return match serde_json::from_slice::<tradenet_actors::wire::ErrorBody>(&body) {
            Ok(_) => Ok(Err(error::from_body(status, &body))),
            Err(_) => Err(error::from_body(status, &body)),
        };
    }
    serde_json::from_slice::<DataBody<T>>(&body)
        .map(|d| Ok(d.data))
        .map_err(|e| ApiError::unavailable(format!("{url}: unexpected answer ({e})")))
}
