//! The catalog's internal API: trades from order leaders, the trade window a new leader reads
//! back, front ends' subscriptions, the invalidations pushed to them, and `/status`.
//!
//! [`TradeRecord`] is also the catalog journal's trade line (`crate::catalog::JournalEntry`),
//! so a change here changes that file format too.

use super::frontend::Stock;
use crate::types::{Epoch, RequestId, TradeKind};
use serde::{Deserialize, Serialize};

/// `POST /internal/v1/trade`: what an order leader asks the catalog to trade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeRequest {
    /// Request id; the same id is applied once.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
    /// Units, at least 1.
    pub quantity: u64,
    /// Epoch of the order leader asking; older than the newest seen is refused (`fenced`).
    pub epoch: Epoch,
}

/// The catalog's answer to a trade, once it is durable; the same request id always gets the
/// first answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeOutcome {
    /// Catalog sequence number of the trade (the order's number plus one).
    pub seq: u64,
    /// Stock name.
    pub name: String,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
    /// Units traded.
    pub quantity: u64,
    /// Price per unit.
    pub price: f64,
}

/// `POST /internal/v1/trades`: the trades an order leader sends in one call (at most 256),
/// each applied once under its own request id as if sent alone; the answer comes when every
/// one of them is durable (or refused).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeBatch {
    /// The trades, in the order they are applied.
    pub trades: Vec<TradeRequest>,
    /// The leader's next order number, as in [`TradesSince`].
    #[serde(default)]
    pub log_end: u64,
    /// The asking leader's replica id (a catalog group's primary reads that leader's log
    /// before it serves it; one catalog alone ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    /// The catalog epoch of the leader's catalog term: a group's catalog answers only in that
    /// epoch (503 `unavailable` otherwise; one catalog alone ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_epoch: Option<Epoch>,
}

/// One trade's answer in a [`TradeResults`]: its outcome, or the error object a single trade
/// would have been answered with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeResult {
    /// `{"ok": {seq, name, type, quantity, price}}`.
    Ok(TradeOutcome),
    /// `{"error": {code, message, kind}}`.
    Error(super::ErrorObject),
}

/// The answer to a [`TradeBatch`]: one result per trade, in the order asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeResults {
    /// The results.
    pub results: Vec<TradeResult>,
}

/// The most stock names a front end looks up in one `POST /internal/v1/stocks`.
pub const MAX_LOOKUP_BATCH: usize = 256;

/// `POST /internal/v1/stocks`: the stocks a front end looks up in one call (1 to
/// [`MAX_LOOKUP_BATCH`] names), each answered as `GET /stocks/{name}` would answer it alone:
/// the durable state when the catalog answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBatch {
    /// Stock names.
    pub names: Vec<String>,
}

/// One stock's answer in a [`StockResults`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockResult {
    /// `{"ok": {name, price, quantity, volume, version}}`.
    Ok(Stock),
    /// `{"error": {code, message, kind}}` (404 for an unknown stock).
    Error(super::ErrorObject),
}

/// The answer to a [`LookupBatch`]: one result per name, in the order asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockResults {
    /// The results.
    pub results: Vec<StockResult>,
}

/// One trade as the catalog journals it and reports it to a new leader. `seq` numbers the
/// catalog's trades from 1 with no gaps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    /// Catalog trade sequence number.
    pub seq: u64,
    /// The request id the order leader traded under.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
    /// Units traded.
    pub quantity: u64,
    /// Epoch of the leader that asked for it.
    pub epoch: Epoch,
}

/// How many trades [`TradesSince`] asks for when it does not say.
pub const DEFAULT_TRADES_LIMIT: usize = 10_000;

fn default_trades_limit() -> usize {
    DEFAULT_TRADES_LIMIT
}

/// `POST /internal/v1/trades/since`: a new leader asks for the durable trades after the last
/// one it recorded. Carrying its epoch raises the catalog's fence, so older leaders can no
/// longer trade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradesSince {
    /// Return trades with a larger sequence number.
    pub after: u64,
    /// The asking leader's epoch.
    pub epoch: Epoch,
    /// At most this many ([`DEFAULT_TRADES_LIMIT`] when absent; the catalog clamps it).
    #[serde(default = "default_trades_limit")]
    pub limit: usize,
    /// The leader's next order number (catalog failover: a primary serves a leader only once
    /// it holds that leader's log up to here; one catalog alone ignores it).
    #[serde(default)]
    pub log_end: u64,
    /// The asking leader's replica id, as in [`TradeBatch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    /// As in [`TradeBatch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_epoch: Option<Epoch>,
}

/// The answer to [`TradesSince`]: a page of the catalog's trade window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradesPage {
    /// The trades, in sequence order.
    pub trades: Vec<TradeRecord>,
    /// False when trades that were asked for have already left the window.
    pub complete: bool,
    /// The catalog's last durable trade.
    pub last_seq: u64,
}

/// `POST /internal/v1/subscribe`: a front end asks for invalidation pushes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The front end's instance id (random per start).
    pub id: String,
    /// Base URL the catalog pushes to (`POST {url}/internal/v1/invalidate`).
    pub url: String,
}

/// The query of `GET /internal/v1/hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HelloQuery {
    /// The asking front end's id, if it has subscribed.
    pub subscriber: Option<String>,
}

/// What the catalog says about itself to a subscriber, answering `subscribe` and `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Random per catalog start: a change means the catalog restarted.
    pub incarnation: u64,
    /// Whether the asking front end is still subscribed (false: a push failed and the
    /// catalog dropped it).
    pub subscribed: bool,
}

/// One stock's new version, as pushed to front ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Stock name.
    pub name: String,
    /// Its version after the trade.
    pub version: u64,
}

/// `POST /internal/v1/invalidate` at a front end: the stocks a durable batch of trades changed.
/// One push in flight per subscriber, so pushes arrive in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidationBatch {
    /// The pushing catalog's incarnation.
    pub incarnation: u64,
    /// Changed stocks.
    pub stocks: Vec<Invalidation>,
}

/// A front end's answer to [`InvalidationBatch`], once its cache applied it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvalidationAck {
    /// Always true.
    pub ok: bool,
}

/// The catalog's `GET /status`. Fields in alphabetical order, as the
/// `json!` literal it replaced wrote them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogStatus {
    /// Newest leader epoch seen (the fence).
    pub epoch: Epoch,
    /// Random per catalog start.
    pub incarnation: u64,
    /// Sequence number of the last durable trade.
    pub last_trade: u64,
    /// In a catalog group: this catalog's id, role and term (absent for a lone catalog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<CatalogState>,
    /// Every stock's durable state, in listing order.
    pub stocks: Vec<Stock>,
    /// Ids of the subscribed front ends.
    pub subscribers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_since_defaults_its_limit_and_refuses_strangers() {
        let s: TradesSince = serde_json::from_str(r#"{"after":3,"epoch":2}"#).unwrap();
        assert_eq!(s.limit, DEFAULT_TRADES_LIMIT);
        assert!(serde_json::from_str::<TradesSince>(r#"{"after":3,"epoch":2,"x":1}"#).is_err());
    }

    #[test]
    fn catalog_status_keeps_its_alphabetical_bytes() {
        let s = CatalogStatus {
            epoch: 2,
            incarnation: 9,
            last_trade: 4,
            node: None,
            stocks: Vec::new(),
            subscribers: vec!["ab".into()],
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"epoch":2,"incarnation":9,"last_trade":4,"stocks":[],"subscribers":["ab"]}"#
        );
    }

    #[test]
    fn a_trade_request_reads_as_the_leader_writes_it() {
        let t = TradeRequest {
            rid: RequestId(0xabc),
            name: "FishCo".into(),
            kind: TradeKind::Sell,
            quantity: 2,
            epoch: 1,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"rid":"00000000000000000000000000000abc","name":"FishCo","type":"sell","quantity":2,"epoch":1}"#
        );
    }
}

/// `GET /internal/v1/catalog/state`: one catalog of a catalog group, as the front ends'
/// supervisors heartbeat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    /// Its id in `[[catalogs]]`.
    pub id: u64,
    /// `standby`, `catching_up` or `primary`.
    pub role: crate::catalog_node::Role,
    /// The catalog term it holds.
    pub term: crate::replication::CatalogTerm,
    /// Its last trade (durable or not).
    pub last_trade: u64,
    /// Every trade up to this one is known to match the order log.
    pub confirmed: u64,
}

/// `POST /internal/v1/catalog/trades`: another catalog of the group, about to serve as
/// primary, asks for the trades after `after` (its order log's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTradesQuery {
    /// Trades after this sequence number.
    pub after: u64,
}

/// `POST /internal/v1/catalog/refusals`: a group's primary shares the buys it refused with the
/// other catalogs before it answers them, so that an Idempotency-Key refused once is refused
/// again after a failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalsShare {
    /// The refusals: request id, stock, units asked, units there were.
    pub refusals: Vec<crate::catalog::Refusal>,
}

/// The answer to [`RefusalsShare`], once they are durable: how many were new here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalsKept {
    /// Refusals this catalog did not hold before.
    pub kept: u64,
}

/// The answer to [`PeerTradesQuery`]: durable trades after `after`, and the request id of
/// trade `after` (so the asker can check this catalog went the log's way up to there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerTradesPage {
    /// The trades, in sequence order.
    pub trades: Vec<TradeRecord>,
    /// The request id of trade `after`, if held.
    pub at: Option<RequestId>,
}
