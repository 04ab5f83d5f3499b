//! What the replication machines say to each other, as plain values: the requests a replica
//! takes (from the supervisor, a front end, its leader or a peer taking over), its answers, and
//! the calls it makes to the catalog. The HTTP drivers map each request to one path of the
//! internal API and each body to JSON; the simulator passes the same values through its
//! network. Nothing here does I/O.

use crate::orderlog::{EntryId, Order};
use crate::types::Epoch;
use crate::wire::catalog::{TradeOutcome, TradeRecord, TradeRequest};
pub use crate::wire::frontend::PlaceOrder;
use serde::{Deserialize, Serialize};

/// A process of the cluster, as the machines name it: a replica's configured id, or one of the
/// ids the drivers and the simulator give to front ends.
pub type NodeId = u64;

/// Milliseconds on the caller's clock. Machines never read a clock; time comes in with
/// `tick(now)`.
pub type Millis = u64;

/// The largest epoch any service accepts (2^48: hundreds of trillions of elections). Above it a
/// term, batch or trade is refused as malformed, so epoch arithmetic never comes near the end
/// of `u64` and a forged huge epoch cannot end all elections.
pub const MAX_EPOCH: Epoch = 1 << 48;

/// The leadership a replica has accepted: an epoch and the replica that leads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Epoch number; 0 before any election.
    pub epoch: Epoch,
    /// Id of that epoch's leader.
    pub leader: Option<NodeId>,
}

/// Which catalog is primary, as the front ends' supervisors announce it: an epoch of its own
/// (apart from the order leaders' epochs) and the catalog that leads it
/// (`docs/catalog-failover.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTerm {
    /// Catalog epoch; 0 before any choice.
    pub epoch: Epoch,
    /// Id of that epoch's primary catalog.
    pub primary: Option<NodeId>,
}

impl CatalogTerm {
    /// The newer of two terms (by epoch; `self` on a tie).
    pub fn max_by_epoch(self, other: CatalogTerm) -> CatalogTerm {
        if other.epoch > self.epoch {
            other
        } else {
            self
        }
    }
}

/// A replica's role, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Started, not yet known to be in step with a leader (or to have none).
    Recovering,
    /// Applies its leader's batches.
    Follower,
    /// Named leader; pulling what it lacks from peers and the catalog before it serves.
    TakingOver,
    /// Serves orders.
    Leader,
}

impl Role {
    /// True for a replica that leads or is about to.
    pub fn is_leading(self) -> bool {
        matches!(self, Role::Leader | Role::TakingOver)
    }

    /// The word used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Recovering => "recovering",
            Role::Follower => "follower",
            Role::TakingOver => "taking_over",
            Role::Leader => "leader",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replica's answer to the heartbeat (`GET /internal/v1/state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Replica id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Able to take part: recovered and in step with its leader, or no leader to follow.
    pub ready: bool,
    /// Last entry held durably.
    pub last: Option<EntryId>,
    /// Accepted term.
    pub term: Term,
    /// Leader only: followers it does not wait for (unreachable, too slow, or catching up).
    /// The supervisor counts them as not live until they are in step again.
    #[serde(default)]
    pub lagging: Vec<NodeId>,
    /// Follower: milliseconds since it last heard from the leader of its term (the leader
    /// sends at least an empty batch every heartbeat); `None` when it never has. The
    /// supervisors' evidence that the leader is alive for the group.
    #[serde(default)]
    pub leader_silence_ms: Option<u64>,
    /// Milliseconds since this replica last heard from the catalog (every replica pings it
    /// every heartbeat); `None` when it never has.
    #[serde(default)]
    pub catalog_silence_ms: Option<u64>,
    /// The newest epoch the catalog fenced this replica with, if it ever did: supervisors open
    /// new epochs above it, so a catalog that saw a newer epoch cannot stall elections.
    #[serde(default)]
    pub catalog_epoch: Option<u64>,
    /// The catalog term it holds (catalog failover; the default with one catalog).
    #[serde(default)]
    pub catalog_term: CatalogTerm,
}

/// A batch from the leader (`POST /internal/v1/replicate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Append {
    /// The leader's term.
    pub term: Term,
    /// The entry just before the batch (None: the batch starts at order 0).
    pub prev: Option<EntryId>,
    /// Consecutive orders; empty for a probe.
    pub orders: Vec<Order>,
    /// The leader's last entry, so a follower knows when it is in step.
    #[serde(default)]
    pub leader_last: Option<EntryId>,
}

/// A follower's answer to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// False when `prev` is not in this log: the leader must go back.
    pub matched: bool,
    /// Our last entry afterwards (durable when `matched`).
    pub last: Option<EntryId>,
}

/// A replica taking over asks a peer for orders it lacks (`POST /internal/v1/fetch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// The asker's entry to continue after (None: from order 0).
    pub after: Option<EntryId>,
    /// At most this many orders (0: only say whether `after` matches).
    pub limit: usize,
    /// At most this many bytes of orders (one order is always sent if any).
    pub max_bytes: usize,
}

/// A peer's answer to `Fetch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    /// The orders after `after`; `None` when this log does not hold `after`.
    pub orders: Option<Vec<Order>>,
    /// This log's last durable entry.
    pub last: Option<EntryId>,
}

/// What a catalog asks a replica (`POST /internal/v1/orders/log`): the orders from `from` on,
/// at most `limit` (and at most half the body limit in bytes), whatever the replica's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOrders {
    /// First order number.
    pub from: u64,
    /// At most this many.
    pub limit: usize,
    /// A standby catalog of a group says how much of the leader's log it holds durably.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CatalogCopy>,
}

/// What a standby catalog reports with its read: orders `0..upto` of the log of leader epoch
/// `epoch` are durable in its table, as the log went (compared or applied page by page). With
/// a catalog group, a leader whose followers all lag acknowledges an order only once such a
/// copy holds it: the primary catalog's journal alone does not outlive the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogCopy {
    /// The catalog's id.
    pub catalog: NodeId,
    /// The leader epoch of the log it compared with.
    pub epoch: Epoch,
    /// Orders `0..upto` are durable in its table.
    pub upto: u64,
}

/// A replica's answer to `ReadOrders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersPage {
    /// The orders, consecutive from the asked number (fewer at the log's end).
    pub orders: Vec<Order>,
    /// The replica's next order number.
    pub log_end: u64,
    /// Orders below this number are acknowledged (0 unless it leads).
    pub acknowledged: u64,
    /// The replica serves as leader.
    pub leading: bool,
    /// The epoch of its term.
    pub epoch: Epoch,
    /// Catalog group: every follower of this leader lags, so its answers wait for a standby
    /// catalog's copy. Read again as soon as this page is durable; a read whose copy already
    /// holds the whole log is answered when a new order is durable (or after a heartbeat).
    #[serde(default)]
    pub copy_wanted: bool,
}

/// Everything a replica can be asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The supervisor's heartbeat.
    State,
    /// The supervisor announces a term.
    Term(Term),
    /// A front end places an order (leader only).
    Place(PlaceOrder),
    /// A front end reads an order.
    Get(u64),
    /// The leader's batch.
    Append(Append),
    /// A peer taking over pulls orders.
    Fetch(Fetch),
    /// A catalog reads the order log.
    ReadOrders(ReadOrders),
    /// The supervisor announces which catalog is primary.
    CatalogTerm(CatalogTerm),
    /// A replica taking over the leadership of a catalog group's exchange asks for the state,
    /// naming its term: the peer adopts the term first (durably), so the leader it replaces
    /// can no longer replicate to it, and answers its state once everything it wrote before is
    /// durable.
    Survey(Term),
}

impl Request {
    /// Short name, for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Request::State => "state",
            Request::Term(_) => "term",
            Request::Place(_) => "place",
            Request::Get(_) => "get",
            Request::Append(_) => "append",
            Request::Fetch(_) => "fetch",
            Request::ReadOrders(_) => "read_orders",
            Request::CatalogTerm(_) => "catalog_term",
            Request::Survey(_) => "survey",
        }
    }
}

/// A replica's answer to a `Request`.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// To `State`.
    State(ReplicaState),
    /// To `Term`: accepted (and durable).
    TermAccepted,
    /// To `Place` and `Get`: the order.
    Order(Order),
    /// To `Append`.
    Appended(Appended),
    /// To `Fetch`.
    Fetched(Fetched),
    /// To `ReadOrders`.
    Orders(OrdersPage),
}

/// Who asked, so that the answer finds its way back: the asker's node id and a number the
/// asker (or its driver) chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Envelope {
    /// The asking node.
    pub from: NodeId,
    /// The asker's number for this request.
    pub id: u64,
}

/// A call a leader makes to the catalog.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogCall {
    /// `POST /internal/v1/trades`: apply each trade under its request id, fenced by epoch, in
    /// one call (at most `MAX_TRADE_BATCH`); each keeps its own answer.
    Trades {
        /// The leader's next order number: a primary catalog that took over serves the leader
        /// only once its table holds that leader's log up to here (`docs/catalog-failover.md`).
        log_end: u64,
        /// The trades.
        trades: Vec<TradeRequest>,
        /// The catalog epoch of the leader's catalog term: a catalog answers only in that
        /// epoch, so an answer made under an older term never reaches the leader as this one's.
        catalog_epoch: Epoch,
    },
    /// `POST /internal/v1/trades/since`: durable trades after `after`; raises the catalog's
    /// fencing epoch to `epoch` first.
    TradesSince {
        /// Last trade sequence number already held.
        after: u64,
        /// The asking leader's epoch.
        epoch: Epoch,
        /// At most this many trades.
        limit: usize,
        /// The leader's next order number, as for `Trades`.
        log_end: u64,
        /// As for `Trades`.
        catalog_epoch: Epoch,
    },
    /// `GET /internal/v1/hello`: is the catalog there (every heartbeat, from every replica)?
    Ping,
}

/// The most trades a leader sends the catalog in one call: well under the 64 KiB body limit
/// (a trade is about 130 bytes of JSON).
pub const MAX_TRADE_BATCH: usize = 256;

/// The catalog's answer to a `CatalogCall`.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogAnswer {
    /// To `Trades`: one result per trade, in the order asked.
    Traded(Vec<Result<TradeOutcome, crate::Error>>),
    /// To `TradesSince`.
    Trades {
        /// The trades, in sequence order.
        trades: Vec<TradeRecord>,
        /// False when trades asked for have left the catalog's window.
        complete: bool,
    },
    /// To `Ping`.
    Pong,
}
