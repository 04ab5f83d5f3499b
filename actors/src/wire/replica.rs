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
