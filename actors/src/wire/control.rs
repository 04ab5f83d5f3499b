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
