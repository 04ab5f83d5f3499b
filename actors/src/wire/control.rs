//! The launcher's control API (`tradenet up`, `[launcher] control_addr`): the answers the
//! client tool reads when it kills, starts and restarts processes and compares the replicas'
//! order files. Every answer is enveloped in `{"data": ...}`. Fields in alphabetical order, as
//! the `json!` literals they replaced wrote them.

use serde::{Deserialize, Serialize};

/// One process the launcher owns, in `GET /control/v1/processes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The address it serves on.
    pub addr: String,
    /// `catalog`, `frontend` or `order-N`.
    pub name: String,
    /// Its OS process id (of the last start, if it is not running).
    pub pid: u32,
    /// Whether it is running.
    pub running: bool,
}

/// A process the launcher just killed or started: the answer of `kill`, `start` and
/// `restart/frontend`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPid {
    /// `catalog`, `frontend` or `order-N`.
    pub name: String,
    /// The OS process id killed, or of the new process.
    pub pid: u32,
}

/// One replica's order file, in `GET /control/v1/digests`: replicas that agree have equal
/// digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Size of `orders.jsonl` in bytes (0 when it does not exist).
    pub bytes: u64,
    /// The replica's process name, `order-N`.
    pub name: String,
    /// SHA-256 of the file, 64 hex digits.
    pub sha256: String,
}

/// One process in `GET /control/v1/overview`: the launcher's view of it and its own word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessView {
    /// The address it serves on.
    pub addr: String,
    /// `catalog`, `frontend` or `order-N`.
    pub name: String,
    /// Its OS process id (of the last start, if it is not running).
    pub pid: u32,
    /// Its `/ready` answered 200.
    pub ready: bool,
    /// Whether it is running.
    pub running: bool,
    /// The `data` of its `/status` (a front end's, a replica's or the catalog's); null when it
    /// did not answer.
    pub status: Option<serde_json::Value>,
}

/// Requests the front end answered on one route since it started, from its `/metrics`: the
/// console turns two readings into a rate and a mean latency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteCount {
    /// Requests answered.
    pub count: u64,
    /// The route pattern, e.g. `/orders`.
    pub route: String,
    /// Their total time to answer, in seconds.
    pub seconds: f64,
}

/// `GET /control/v1/overview`: what the console shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Every process, in start order.
    pub processes: Vec<ProcessView>,
    /// The front end's requests by route (empty while it does not answer).
    pub requests: Vec<RouteCount>,
}

/// `POST /control/v1/load?clients=N&seconds=S&p=P`: a short load at the front end, run by the
/// launcher (lookups of random stocks, each followed by a one-share trade with probability
/// `p`); the answer says what was started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Concurrent sessions, 1 to 32.
    pub clients: u32,
    /// Probability of a trade after each lookup, 0 to 1.
    pub p: f64,
    /// How long it runs, 1 to 60 s.
    pub seconds: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_keep_their_alphabetical_bytes() {
        let d = Digest {
            bytes: 0,
            name: "order-1".into(),
            sha256: "e3b0".into(),
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"bytes":0,"name":"order-1","sha256":"e3b0"}"#
        );
    }
}
