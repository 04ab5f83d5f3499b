//! The OpenAPI description of the front end's public API, served at `GET /openapi.json`.
//!
//! Generated from the code: the paths are the `wire` constants the front end routes, the
//! schemas are utoipa's `ToSchema` derived from the `wire` types themselves (the
//! `tradenet-actors` feature `openapi`), and each operation lists every status its handler can
//! answer, every error with the wire's error object. The operations are described here on
//! stub functions, next to nothing else, so that `frontend.rs` keeps only its handlers; the
//! cluster test `openapi.rs` and CI's schemathesis run (`.ci/schemathesis.sh`) hold this
//! description to what a live front end answers.

use crate::error::ApiError;
use actix_web::HttpResponse;
use std::sync::OnceLock;
use tradenet_actors::cache::CacheStatus;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::frontend::{
    CatalogLinkStatus, CatalogView, FrontendStatus, OrderPlaced, OrderRequest, OrderView,
    ReplicaView, Stock,
};
use tradenet_actors::wire::{self, DataBody, ErrorBody, ErrorKind, ErrorObject, Health};
use utoipa::OpenApi;

/// The document: every operation below and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trade-Net public API",
        description = "The front end's REST API: stock lookups and orders, plus its probes, \
            status and metrics. Successful answers are `{\"data\": ...}`; every error is \
            `{\"error\": {\"code\", \"message\", \"kind\"}}` with `code` the HTTP status. Any \
            path not listed answers 404 and any other method on a listed path 405, both with \
            the error object. Request bodies above 64 KiB get 413.",
        license(name = "MIT")
    ),
    paths(
        get_stock,
        place_order,
        get_order,
        health,
        ready,
        status,
        metrics,
        openapi_json
    ),
    components(schemas(
        Stock,
        OrderRequest,
        OrderPlaced,
        OrderView,
        TradeKind,
        Health,
        FrontendStatus,
        ReplicaView,
        CatalogLinkStatus,
        CatalogView,
        CacheStatus,
        ErrorBody,
        ErrorObject,
        ErrorKind
    )),
    tags(
        (name = "stocks", description = "Stock lookups, served from the front end's cache."),
        (name = "orders", description = "Orders, placed through the order replicas' leader."),
        (name = "service", description = "Probes, status, metrics and this document.")
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the document, built once.
pub async fn serve() -> HttpResponse {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    match JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .map_err(|e| e.to_string())
    }) {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json.clone()),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::with_kind(
            ErrorKind::Internal,
            format!("OpenAPI document: {e}"),
        )),
    }
}

// The operations. Each stub stands for the handler named in its doc; it is never called.

/// One stock.
///
/// From the front end's cache when it holds a fresh copy, else from the catalog
/// (`frontend::lookup`).
#[utoipa::path(
    get,
    path = wire::STOCK,
    tag = "stocks",
    operation_id = "getStock",
    params(
        ("name" = String, Path, description = "Stock name: 1..64 printable ASCII characters, no `/`.",
            min_length = 1, max_length = 64, pattern = "^[!-.0-~]+$", example = "GameStart")
    ),
    responses(
        (status = 200, description = "The stock.", body = DataBody<Stock>),
        (status = 400, description = "`bad_request`: the name is not 1..64 printable ASCII characters.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such stock.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the catalog could not be reached.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn get_stock() {}

/// Place an order.
///
/// Sent to the order replicas' leader; a leader change while it is in flight is retried
/// by the front end and not seen by the client (`frontend::place_order`).
#[utoipa::path(
    post,
    path = wire::ORDERS,
    tag = "orders",
    operation_id = "placeOrder",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Names the trade: the same key (at any front end) gets the same \
                transaction number and trades once. 1..256 bytes.",
            nullable = false, min_length = 1, max_length = 256, example = "order-7f3a")
    ),
    request_body(
        content = OrderRequest,
        content_type = "application/json",
        description = "The order, as JSON. The body is read as JSON whatever its Content-Type \
            says (none is needed); a body that is not this JSON gets 400."
    ),
    responses(
        (status = 200, description = "Traded: the order's number, consecutive from 0 across the exchange.", body = DataBody<OrderPlaced>),
        (status = 400, description = "`bad_request`: a body that is not JSON, wrong types, missing fields, a bad name, a quantity outside 1..1,000,000, or an empty or over-long Idempotency-Key.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such stock.", body = ErrorBody),
        (status = 409, description = "`insufficient_quantity`: a buy of more than the stock has left.", body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over 64 KiB.", body = ErrorBody),
        (status = 500, description = "`internal`: a replica found a damaged file or an I/O error.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no leader could take the order in time; nothing was traded under this request (resend it with the same Idempotency-Key).", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn place_order() {}

/// One order.
///
/// Read from the order replicas' leader (`frontend::get_order`).
#[utoipa::path(
    get,
    path = wire::ORDER,
    tag = "orders",
    operation_id = "getOrder",
    params(
        ("number" = u64, Path, description = "Transaction number, from 0.", minimum = 0, example = 0)
    ),
    responses(
        (status = 200, description = "The order.", body = DataBody<OrderView>),
        (status = 400, description = "`bad_request`: the number is not an unsigned 64-bit integer.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order.", body = ErrorBody),
        (status = 500, description = "`internal`: the leader found a damaged file or an I/O error.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no leader could answer in time.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn get_order() {}

/// Liveness.
///
/// The front end's actors answer (`http::probe`).
#[utoipa::path(
    get,
    path = wire::HEALTH,
    tag = "service",
    operation_id = "health",
    responses(
        (status = 200, description = "Live: `status` is `ok`.", body = DataBody<Health>),
        (status = 503, description = "`unavailable`: the actors do not answer within 2 s.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn health() {}

/// Readiness.
///
/// The front end has a leader and a confirmed catalog link (`http::probe`).
#[utoipa::path(
    get,
    path = wire::READY,
    tag = "service",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready: `status` is `ready`.", body = DataBody<Health>),
        (status = 503, description = "`unavailable`, with the reason: no leader, or no catalog link.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn ready() {}

/// The front end's status.
///
/// Its replicas and leader, its cache and its catalog link (`frontend::status`).
#[utoipa::path(
    get,
    path = wire::STATUS,
    tag = "service",
    operation_id = "status",
    responses(
        (status = 200, description = "The front end's status.", body = DataBody<FrontendStatus>),
        (status = 503, description = "`unavailable`: an actor did not answer.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn status() {}

/// Metrics.
///
/// Request counts and latencies, Prometheus text (`http::Metrics::render`).
#[utoipa::path(
    get,
    path = wire::METRICS,
    tag = "service",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition.", body = String, content_type = "text/plain"),
        (status = 500, description = "`internal`: the metrics could not be encoded.", body = ErrorBody)
    )
)]
#[allow(dead_code)]
fn metrics() {}

/// This document.
///
/// The OpenAPI description of this API, not enveloped (`openapi::serve`).
#[utoipa::path(
    get,
    path = wire::OPENAPI,
    tag = "service",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object, content_type = "application/json")
    )
)]
#[allow(dead_code)]
fn openapi_json() {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    #[test]
    fn every_public_path_is_described() {
        let doc = doc();
        for (path, method) in [
            (wire::STOCK, "get"),
            (wire::ORDERS, "post"),
            (wire::ORDER, "get"),
            (wire::HEALTH, "get"),
            (wire::READY, "get"),
            (wire::STATUS, "get"),
            (wire::METRICS, "get"),
            (wire::OPENAPI, "get"),
        ] {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), 8);
    }

    #[test]
    fn errors_are_the_wire_error_object_with_every_kind() {
        let doc = doc();
        let kinds: Vec<&str> = doc["components"]["schemas"]["ErrorKind"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, all);
        let responses = &doc["paths"][wire::ORDERS]["post"]["responses"];
        for status in ["400", "404", "409", "413", "500", "503"] {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{status}"
            );
        }
    }

    #[test]
    fn the_order_limits_are_the_front_ends() {
        let doc = doc();
        let quantity = &doc["components"]["schemas"]["OrderRequest"]["properties"]["quantity"];
        assert_eq!(quantity["minimum"], 1);
        assert_eq!(
            quantity["maximum"].as_u64(),
            Some(crate::frontend::MAX_ORDER_QUANTITY)
        );
        let name = &doc["components"]["schemas"]["OrderRequest"]["properties"]["name"];
        assert_eq!(name["maxLength"], 64);
    }
}
