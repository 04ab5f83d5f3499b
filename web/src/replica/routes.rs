//! An order replica's routes: each request becomes one `Ask` to the replica's driver actor,
//! each answer one JSON body (the wire types of `tradenet_actors::replication`).
//!
//! - `GET  /internal/v1/state` (also `/status`): the heartbeat answer;
//! - `POST /internal/v1/term` `{epoch, leader}`: accept a term (older is 409 fenced);
//! - `POST /internal/v1/catalog-term` `{epoch, primary}`: which catalog is primary;
//! - `POST /internal/v1/orders` `{rid, name, type, quantity}`: place an order (leader only);
//! - `POST /internal/v1/orders/batch` `{orders: [...]}`: place several, each answered on its own;
//! - `POST /internal/v1/orders/read` `{numbers: [...]}`: read several, each answered on its own;
//! - `GET  /internal/v1/orders/{n}`: one order (leader only; 503 while it is not here yet);
//! - `POST /internal/v1/replicate` `{term, prev, orders, leader_last}`: a leader's batch;
//! - `POST /internal/v1/fetch` `{after, limit, max_bytes}`: a peer taking over pulls orders;
//! - `POST /internal/v1/orders/log` `{from, limit}`: a catalog reads the log.

use super::driver::{Answers, Ask, AskAll, ReplicaDriver};
use crate::error::{ApiError, ApiResult};
use crate::http::{self, ok, resource};
use actix::Addr;
use actix_web::{web, HttpResponse};
use std::time::Duration;
use tradenet_actors::replication::{
    Append, CatalogTerm, Fetch, PlaceOrder, ReadOrders, Request, Response, Term,
};
use tradenet_actors::wire;
use tradenet_actors::wire::replica::{
    OrderResult, OrderResults, PlaceBatch, ReadBatch, MAX_PLACE_BATCH,
};

/// How long a handler waits for the replica's answer; the machine answers every request
/// (its own time-outs are shorter), this only bounds a stuck process.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The replica's routes, for `run` and in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(wire::STATUS, "GET").route(web::get().to(state)))
        .service(resource(wire::REPLICA_STATE, "GET").route(web::get().to(state)))
        .service(resource(wire::TERM, "POST").route(web::post().to(term)))
        .service(resource(wire::SURVEY, "POST").route(web::post().to(survey)))
        .service(resource(wire::CATALOG_TERM, "POST").route(web::post().to(catalog_term)))
        .service(resource(wire::REPLICA_ORDERS, "POST").route(web::post().to(place)))
        // Before `/orders/{number}`, which would otherwise take the path (and answer 405).
        .service(resource(wire::REPLICA_ORDER_BATCH, "POST").route(web::post().to(place_batch)))
        .service(resource(wire::REPLICA_ORDER_READ, "POST").route(web::post().to(read_batch)))
        .service(resource(wire::ORDER_LOG, "POST").route(web::post().to(read_orders)))
        .service(resource(wire::REPLICA_ORDER, "GET").route(web::get().to(get_order)))
        .service(resource(wire::REPLICATE, "POST").route(web::post().to(replicate)))
        .service(resource(wire::FETCH, "POST").route(web::post().to(fetch)));
}

/// Asks the replica's machine and answers with its response's JSON body (each `Response`
/// has one shape, whichever request it answers).
async fn ask(driver: &Addr<ReplicaDriver>, request: Request) -> ApiResult<HttpResponse> {
    let answer = driver
        .send(Ask(request))
        .timeout(ANSWER_WITHIN)
        .await
        .map_err(|e| ApiError::unavailable(format!("order replica busy: {e}")))??;
    Ok(match answer {
        Response::State(s) => ok(s),
        Response::TermAccepted => ok(wire::replica::Accepted { accepted: true }),
        Response::Order(o) => ok(o),
        Response::Appended(a) => ok(a),
        Response::Fetched(f) => ok(f),
        Response::Orders(p) => ok(p),
    })
}

async fn state(d: web::Data<Addr<ReplicaDriver>>) -> ApiResult<HttpResponse> {
    ask(&d, Request::State).await
}

async fn term(d: web::Data<Addr<ReplicaDriver>>, body: web::Json<Term>) -> ApiResult<HttpResponse> {
    ask(&d, Request::Term(body.into_inner())).await
}

async fn survey(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<Term>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::Survey(body.into_inner())).await
}

async fn catalog_term(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<CatalogTerm>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::CatalogTerm(body.into_inner())).await
}

async fn place(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<PlaceOrder>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::Place(body.into_inner())).await
}

/// The orders of a batch go to the machine in one step: each keeps its request id, number and
/// answer as if it came alone, and their trades leave for the catalog in one call. The answer
/// waits for all of them.
async fn place_batch(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<PlaceBatch>,
) -> ApiResult<HttpResponse> {
    let orders = body.into_inner().orders;
    ask_each(&d, orders.into_iter().map(Request::Place).collect()).await
}

/// Each number of a batch is read as `GET /internal/v1/orders/{n}` reads it.
async fn read_batch(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<ReadBatch>,
) -> ApiResult<HttpResponse> {
    let numbers = body.into_inner().numbers;
    ask_each(&d, numbers.into_iter().map(Request::Get).collect()).await
}

/// Asks the machine every request (1 to `MAX_PLACE_BATCH`, each answered with an order) in one
/// step, and answers every result in order.
async fn ask_each(d: &Addr<ReplicaDriver>, requests: Vec<Request>) -> ApiResult<HttpResponse> {
    http::batch_size(requests.len(), MAX_PLACE_BATCH, "items")?;
    let busy =
        |e: &dyn std::fmt::Display| ApiError::unavailable(format!("order replica busy: {e}"));
    let Answers(answers) = d
        .send(AskAll(requests))
        .timeout(ANSWER_WITHIN)
        .await
        .map_err(|e| busy(&e))?;
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    let answers = answers.into_iter().map(|answer| async move {
        match tokio::time::timeout_at(deadline, answer.get()).await {
            Ok(answer) => answer.map_err(ApiError::from),
            Err(_) => Err(busy(&"timed out")),
        }
    });
    let results = futures::future::join_all(answers)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(Response::Order(o)) => OrderResult::Ok(o),
            Ok(other) => OrderResult::Error(
                ApiError::with_kind(
                    tradenet_actors::wire::ErrorKind::Internal,
                    format!("the replica answered with {other:?} where an order was due"),
                )
                .into(),
            ),
            Err(e) => OrderResult::Error(e.into()),
        })
        .collect();
    Ok(ok(OrderResults { results }))
}

async fn get_order(
    d: web::Data<Addr<ReplicaDriver>>,
    n: web::Path<u64>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::Get(n.into_inner())).await
}

async fn replicate(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<Append>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::Append(body.into_inner())).await
}

async fn read_orders(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<ReadOrders>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::ReadOrders(body.into_inner())).await
}

async fn fetch(
    d: web::Data<Addr<ReplicaDriver>>,
    body: web::Json<Fetch>,
) -> ApiResult<HttpResponse> {
    ask(&d, Request::Fetch(body.into_inner())).await
}
