//! The wire: every shape Trade-Net's processes send each other and their clients, and the
//! paths they send them on.
//!
//! A handler, the client that calls it and `docs/internal-api.md` name the same constants and
//! structs from here, so they cannot drift apart: `tests/wire_doc.rs` holds the doc (and the
//! README's public API table) to these paths and field names. Nothing here does I/O or knows
//! actix; the `tradenet` crate serves these shapes and `tradenet-client` parses them.
//!
//! The serde shapes are the contract with the cluster tests and the course's clients. Field
//! names and order are exactly what went over the wire before the types moved here; a struct
//! that replaced a `json!` literal keeps that literal's alphabetical field order, since
//! `serde_json` without `preserve_order` sorted its keys.
//!
//! - [`catalog`]: the catalog's internal API and its pushes to front ends;
//! - [`frontend`]: the public API, the front end's call to the order leader, its `/status`;
//! - [`replica`]: the order replicas' API;
//! - [`control`]: the launcher's control API.

use serde::{Deserialize, Serialize};
use std::fmt;

pub mod catalog;
pub mod control;
pub mod frontend;
pub mod replica;

// Every service.

/// `GET` → [`Health`]: liveness, the process's actors answer (503 when they do not).
pub const HEALTH: &str = "/health";
/// `GET` → [`Health`] with status `ready`: readiness, the service can do its job (503 with
/// the reason when not).
pub const READY: &str = "/ready";
/// `GET`: Prometheus text of request counts and latencies.
pub const METRICS: &str = "/metrics";
/// `GET`: what the service knows about itself, not enveloped: [`catalog::CatalogStatus`] at
/// the catalog, [`frontend::FrontendStatus`] at a front end, a replica's state at a replica.
pub const STATUS: &str = "/status";

// Public API (front end); the catalog serves `STOCK` too.

/// `GET`: one stock, [`frontend::Stock`].
pub const STOCK: &str = "/stocks/{name}";
/// `POST` [`frontend::OrderRequest`]: place an order, [`frontend::OrderPlaced`].
pub const ORDERS: &str = "/orders";
/// `GET`: one order, [`frontend::OrderView`].
pub const ORDER: &str = "/orders/{number}";
/// `GET`: the public API as an OpenAPI 3.1 document (not enveloped), generated from these
/// paths and types (`tradenet`'s `openapi` module; the schemas need the `openapi` feature).
pub const OPENAPI: &str = "/openapi.json";

// Catalog, called by order leaders and front ends.

/// `POST` [`catalog::TradeRequest`]: trade once durable, [`catalog::TradeOutcome`].
pub const TRADE: &str = "/internal/v1/trade";
/// `POST` [`catalog::TradeBatch`]: several trades in one call, each durable and answered on
/// its own, [`catalog::TradeResults`].
pub const TRADE_BATCH: &str = "/internal/v1/trades";
/// `POST` [`catalog::TradesSince`]: durable trades after a sequence number,
/// [`catalog::TradesPage`].
pub const TRADES_SINCE: &str = "/internal/v1/trades/since";
/// `POST` [`catalog::LookupBatch`]: several stocks in one call, each as [`STOCK`] answers it,
/// [`catalog::StockResults`] (front ends batch their cache misses).
pub const STOCK_BATCH: &str = "/internal/v1/stocks";
/// `POST` [`catalog::Subscribe`]: push invalidations to a front end, [`catalog::Hello`].
pub const SUBSCRIBE: &str = "/internal/v1/subscribe";
/// `GET` → [`catalog::CatalogState`]: one catalog of a group, the supervisors' heartbeat
/// (they announce the catalog term on [`CATALOG_TERM`], which catalogs take too).
pub const CATALOG_STATE: &str = "/internal/v1/catalog/state";
/// `POST` [`catalog::PeerTradesQuery`] → [`catalog::PeerTradesPage`]: a catalog about to
/// serve as primary asks the others for their trades past the order log's end.
pub const CATALOG_TRADES: &str = "/internal/v1/catalog/trades";
/// `POST` [`catalog::RefusalsShare`] → [`catalog::RefusalsKept`]: the primary shares the buys it
/// refused before it answers them (catalog failover keeps an Idempotency-Key's refusal).
pub const CATALOG_REFUSALS: &str = "/internal/v1/catalog/refusals";
/// `GET ?subscriber=ID` ([`catalog::HelloQuery`]): [`catalog::Hello`], polled by front ends.
pub const HELLO: &str = "/internal/v1/hello";

// Front end, called by the catalog.

/// `POST` [`catalog::InvalidationBatch`]: apply pushed invalidations,
/// [`catalog::InvalidationAck`].
pub const INVALIDATE: &str = "/internal/v1/invalidate";

// Order replicas, called by front ends (supervisor and orders) and by each other. Their bodies
// are in [`replica`] (the replication machines' own values).

/// `GET` → [`replica::ReplicaState`]: a replica's state, the supervisor's heartbeat (also
/// served on [`STATUS`]).
pub const REPLICA_STATE: &str = "/internal/v1/state";
/// `POST` [`replica::Term`] → [`replica::Accepted`]: accept a new term.
pub const TERM: &str = "/internal/v1/term";
/// `POST` [`replica::Term`] → [`replica::ReplicaState`]: a replica taking over (catalog group)
/// asks a peer for its state under its term, which the peer adopts first.
pub const SURVEY: &str = "/internal/v1/survey";
/// `POST` [`replica::CatalogTerm`] → [`replica::Accepted`]: which catalog is primary
/// (catalog failover, `docs/catalog-failover.md`).
pub const CATALOG_TERM: &str = "/internal/v1/catalog-term";
/// `POST` [`frontend::PlaceOrder`] → [`crate::orderlog::Order`]: place an order at the leader.
pub const REPLICA_ORDERS: &str = "/internal/v1/orders";
/// `POST` [`replica::PlaceBatch`] → [`replica::OrderResults`]: several orders in one call, each
/// placed and answered on its own (the front end batches what waits while a call is out).
pub const REPLICA_ORDER_BATCH: &str = "/internal/v1/orders/batch";
/// `POST` [`replica::ReadBatch`] → [`replica::OrderResults`]: several orders read in one call,
/// each answered as [`REPLICA_ORDER`] would.
pub const REPLICA_ORDER_READ: &str = "/internal/v1/orders/read";
/// `GET` → [`crate::orderlog::Order`]: one order, from the serving leader.
pub const REPLICA_ORDER: &str = "/internal/v1/orders/{number}";
/// `POST` [`replica::Append`] → [`replica::Appended`]: a batch of orders from the leader.
pub const REPLICATE: &str = "/internal/v1/replicate";
/// `POST` [`replica::Fetch`] → [`replica::Fetched`]: a replica taking over pulls orders.
pub const FETCH: &str = "/internal/v1/fetch";
/// `POST` [`replica::ReadOrders`] → [`replica::OrdersPage`]: a catalog reads the order log
/// (catalog failover, `docs/catalog-failover.md`).
pub const ORDER_LOG: &str = "/internal/v1/orders/log";

// Launcher control API, used by the client tool.

/// `GET`: every process, a list of [`control::Process`].
pub const CONTROL_PROCESSES: &str = "/control/v1/processes";
/// `POST`: SIGKILL a process, [`control::ProcessPid`].
pub const CONTROL_KILL: &str = "/control/v1/kill/{name}";
/// `POST`: start a process again once it is healthy, [`control::ProcessPid`].
pub const CONTROL_START: &str = "/control/v1/start/{name}";
/// `POST ?cache_size=N`: restart the front end with another cache size,
/// [`control::ProcessPid`].
pub const CONTROL_RESTART_FRONTEND: &str = "/control/v1/restart/frontend";
/// `GET`: every replica's order file, a list of [`control::Digest`].
pub const CONTROL_DIGESTS: &str = "/control/v1/digests";
/// `POST`: stop every process, remove their data folders, start them all again once every one
/// is healthy (a fresh exchange); a list of [`control::Process`].
pub const CONTROL_RESET: &str = "/control/v1/reset";
/// `GET`: every process with its status and readiness, and the front end's request counts,
/// [`control::Overview`] (what the console polls).
pub const CONTROL_OVERVIEW: &str = "/control/v1/overview";
/// `POST ?clients=N&seconds=S&p=P`: start a short load at the front end, [`control::Load`].
pub const CONTROL_LOAD: &str = "/control/v1/load";
/// `GET`: the console, a web page (open; its calls carry the secret from the page's
/// `#token=` fragment).
pub const CONSOLE: &str = "/";

/// Largest request body any service accepts, in bytes; larger bodies get 413 `too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// [`STOCK`] for one stock name, percent-encoded: a name may hold any printable ASCII but
/// `/` (`types::validate_name`), and `?`, `#` or `%` taken as they are would cut the path or
/// make it no URI at all.
pub fn stock_path(name: &str) -> String {
    fill(STOCK, encode_segment(name))
}

/// [`ORDER`] for one transaction number.
pub fn order_path(number: u64) -> String {
    fill(ORDER, number)
}

/// [`REPLICA_ORDER`] for one order number.
pub fn replica_order_path(number: u64) -> String {
    fill(REPLICA_ORDER, number)
}

/// [`HELLO`] asked by the subscriber `id`.
pub fn hello_path(subscriber: &str) -> String {
    format!("{HELLO}?subscriber={subscriber}")
}

/// [`CONTROL_KILL`] for a process name (`catalog`, `frontend`, `order-N`).
pub fn control_kill_path(name: &str) -> String {
    fill(CONTROL_KILL, name)
}

/// [`CONTROL_START`] for a process name.
pub fn control_start_path(name: &str) -> String {
    fill(CONTROL_START, name)
}

/// [`CONTROL_RESTART_FRONTEND`] with a cache size (0 = off).
pub fn control_restart_frontend_path(cache_size: usize) -> String {
    format!("{CONTROL_RESTART_FRONTEND}?cache_size={cache_size}")
}

/// `segment` percent-encoded for a URL path: every byte but RFC 3986's unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Puts `value` in place of the one `{...}` segment of a route pattern.
fn fill(pattern: &str, value: impl fmt::Display) -> String {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{value}{}", &pattern[..open], &pattern[close + 1..])
        }
        _ => pattern.to_string(),
    }
}

/// The envelope of every successful answer: `{"data": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataBody<T> {
    /// The answer itself.
    pub data: T,
}

/// The envelope of every error any service answers: `{"error": {"code", "message", "kind"}}`,
/// with `code` also the HTTP status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// An error as it travels: a service that forwards one (a front end, a leader) keeps it
/// intact, and `kind` tells the caller whether a retry may help.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorObject {
    /// HTTP status.
    #[cfg_attr(feature = "openapi", schema(minimum = 400, maximum = 599))]
    pub code: u16,
    /// Human-readable message.
    pub message: String,
    /// Stable machine word.
    pub kind: ErrorKind,
}

impl ErrorObject {
    /// An error of `kind` with that kind's HTTP status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code: kind.status(),
            message: message.into(),
            kind,
        }
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.kind, self.message)
    }
}

/// What went wrong, as a stable word a caller can act on. Each kind has one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorKind {
    /// 400: malformed input (bad JSON, wrong types, missing fields, quantity 0, bad name).
    BadRequest,
    /// 401: an internal or control call without the cluster secret, or with a wrong one.
    Unauthorized,
    /// 404: unknown stock, order or path.
    NotFound,
    /// 409: a buy asked for more than the stock has left.
    InsufficientQuantity,
    /// 409: the request came from (or for) a leader epoch older than one already seen.
    Fenced,
    /// 503: this replica is not serving as leader.
    NotLeader,
    /// 503: a peer, the leader or the disk could not be reached in time.
    Unavailable,
    /// 413: request body over [`MAX_BODY_BYTES`].
    TooLarge,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 500: a damaged file or an I/O error.
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::InsufficientQuantity,
        ErrorKind::Fenced,
        ErrorKind::NotLeader,
        ErrorKind::Unavailable,
        ErrorKind::TooLarge,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Internal,
    ];

    /// The word used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InsufficientQuantity => "insufficient_quantity",
            ErrorKind::Fenced => "fenced",
            ErrorKind::NotLeader => "not_leader",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status answered with this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::InsufficientQuantity | ErrorKind::Fenced => 409,
            ErrorKind::NotLeader | ErrorKind::Unavailable => 503,
            ErrorKind::TooLarge => 413,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Internal => 500,
        }
    }

    /// True when the same request may succeed elsewhere or later: another replica may lead
    /// (`not_leader`), a peer may come back (`unavailable`), or a newer leader may take it
    /// (`fenced`). The others are final.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::NotLeader | ErrorKind::Fenced
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown error kind {s:?}"))
    }
}

/// The answer of [`HEALTH`] once the service can serve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Which service answered: `catalog`, `frontend` or `order`.
    pub service: String,
    /// Always `ok`.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_their_one_segment() {
        assert_eq!(stock_path("GameStart"), "/stocks/GameStart");
        assert_eq!(stock_path("a?b#c%d e"), "/stocks/a%3Fb%23c%25d%20e");
        assert_eq!(order_path(7), "/orders/7");
        assert_eq!(replica_order_path(0), "/internal/v1/orders/0");
        assert_eq!(hello_path("ab12"), "/internal/v1/hello?subscriber=ab12");
        assert_eq!(control_kill_path("order-2"), "/control/v1/kill/order-2");
        assert_eq!(control_start_path("frontend"), "/control/v1/start/frontend");
        assert_eq!(
            control_restart_frontend_path(0),
            "/control/v1/restart/frontend?cache_size=0"
        );
    }

    #[test]
    fn error_objects_keep_their_bytes() {
        let body = ErrorBody {
            error: ErrorObject::new(ErrorKind::NotFound, "unknown stock 'Panoramix'"),
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"code":404,"message":"unknown stock 'Panoramix'","kind":"not_found"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&text).unwrap(), body);
        assert!(serde_json::from_str::<ErrorBody>(
            r#"{"error":{"code":400,"message":"x","kind":"nonsense"}}"#
        )
        .is_err());
    }

    #[test]
    fn kinds_have_one_word_and_one_status_each() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
        }
        let retryable: Vec<ErrorKind> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::Fenced,
                ErrorKind::NotLeader,
                ErrorKind::Unavailable
            ]
        );
        assert_eq!(ErrorKind::TooLarge.status(), 413);
    }

    #[test]
    fn health_keeps_its_alphabetical_bytes() {
        let h = Health {
            service: "catalog".into(),
            status: "ok".into(),
        };
        assert_eq!(
            serde_json::to_string(&DataBody { data: h }).unwrap(),
            r#"{"data":{"service":"catalog","status":"ok"}}"#
        );
    }
}
