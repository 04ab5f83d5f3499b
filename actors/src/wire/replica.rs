//! The order replicas' bodies. They are the replication machines' own values
//! (`crate::replication::msg`), so the machine, the HTTP driver, the simulator and the tests
//! share one definition; this module names them where the other wire types live.

pub use crate::orderlog::{EntryId, Order};
pub use crate::replication::msg::{
    Append, Appended, CatalogCopy, CatalogTerm, Fetch, Fetched, OrdersPage, ReadOrders,
    ReplicaState, Role, Term,
};
use serde::{Deserialize, Serialize};

/// The answer to `POST /internal/v1/term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Always true: a refused term is an error (409 `fenced`).
    pub accepted: bool,
}

/// The most orders (or order numbers) a front end sends its leader in one batch: an order is
/// under 200 bytes of JSON, so a full batch stays well below the 64 KiB body limit.
pub const MAX_PLACE_BATCH: usize = 256;

/// `POST /internal/v1/orders/batch`: the orders a front end sends its leader in one call (1 to
/// [`MAX_PLACE_BATCH`]), each placed as if sent alone (its own request id, number and answer).
/// The answer comes when every one of them is answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBatch {
    /// The orders, in the order they are placed.
    pub orders: Vec<crate::wire::frontend::PlaceOrder>,
}

/// `POST /internal/v1/orders/read`: order numbers a front end reads from its leader in one call
/// (1 to [`MAX_PLACE_BATCH`]), each answered as `GET /internal/v1/orders/{n}` would answer it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadBatch {
    /// The order numbers.
    pub numbers: Vec<u64>,
}

/// One order's answer in an [`OrderResults`]: the order as recorded, or the error object the
/// request alone would have been answered with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderResult {
    /// `{"ok": {number, epoch, rid, name, type, quantity, cseq}}`.
    Ok(Order),
    /// `{"error": {code, message, kind}}`.
    Error(super::ErrorObject),
}

/// The answer to a [`PlaceBatch`] or a [`ReadBatch`]: one result per item, in the order asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderResults {
    /// The results.
    pub results: Vec<OrderResult>,
}
