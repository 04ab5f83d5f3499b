//! The order replicas' bodies. They are the replication machines' own values
//! (`crate::replication::msg`), so the machine, the HTTP driver, the simulator and the tests
//! share one definition; this module names them where the other wire types live.

pub use crate::orderlog::{EntryId, Order};
pub use crate::replication::msg::{Append, Appended, Fetch, Fetched, ReplicaState, Role, Term};
use serde::{Deserialize, Serialize};

/// The answer to `POST /internal/v1/term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Always true: a refused term is an error (409 `fenced`).
    pub accepted: bool,
}

/// The most orders a front end sends its leader in one `POST /internal/v1/orders/batch`: an
/// order is under 200 bytes of JSON, so a full batch stays well below the 64 KiB body limit.
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

/// One order's answer in a [`PlaceResults`]: the order as recorded, or the error object the
/// order alone would have been answered with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceResult {
    /// `{"ok": {number, epoch, rid, name, type, quantity, cseq}}`.
    Ok(Order),
    /// `{"error": {code, message, kind}}`.
    Error(super::ErrorObject),
}

/// The answer to a [`PlaceBatch`]: one result per order, in the order asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlaceResults {
    /// The results.
    pub results: Vec<PlaceResult>,
}
