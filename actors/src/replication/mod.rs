//! The order replicas' replication protocol without I/O: the replica machine (`replica`), the
//! supervisor's liveness and election rule (`supervision`), and the values they exchange
//! (`msg`). The HTTP drivers in `web/` and the deterministic simulator in `sim` run the same
//! machines; see `docs/design.md` for the protocol in prose.

pub mod files;
pub mod msg;
pub mod replica;
pub mod supervision;

pub use msg::*;
pub use replica::{
    Config, Counters, Effect, Event, Flaw, FollowerView, Replica, StreamState, Write,
};
