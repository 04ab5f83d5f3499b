//! The public API the front end serves to clients (stocks and orders), the order it sends the
//! leader replica for each `POST /orders`, and its `/status`.

use crate::cache::CacheStatus;
use crate::types::{RequestId, TradeKind};
use serde::{Deserialize, Serialize};

/// One listed stock as clients see it, at the front end and at the catalog alike. `version`
/// grows by one with every trade of it, so a cache can tell an older copy from a newer one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stock {
    /// Unique name, e.g. `GameStart`.
    pub name: String,
    /// Price per unit.
    pub price: f64,
    /// Quantity left to buy.
    pub quantity: u64,
    /// Total quantity traded so far (buys and sells).
    pub volume: u64,
    /// Number of trades applied to this stock.
    pub version: u64,
}

/// `POST /orders`: a client's order. An optional `Idempotency-Key` header names the trade, so
/// a resent order trades once and gets the same number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderRequest {
    /// Stock name: 1..64 printable ASCII characters, no `/`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = "^[!-.0-~]+$",
            example = "GameStart"
        )
    )]
    pub name: String,
    /// Units, 1 to 1,000,000 (the front end's `MAX_ORDER_QUANTITY`).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 1_000_000, example = 3)
    )]
    pub quantity: u64,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
}

/// The answer to `POST /orders`: the order's number, consecutive from 0 across the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderPlaced {
    /// The number `GET /orders/{number}` reads it back under.
    pub transaction_number: u64,
}

/// `GET /orders/{number}`: an order as clients see it. Fields in alphabetical order, as the
/// `json!` literal it replaced wrote them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    /// Stock name.
    pub name: String,
    /// Transaction number.
    pub number: u64,
    /// Units.
    pub quantity: u64,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
}

/// `POST /internal/v1/orders` at the leader replica: a client's order with its request id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Request id: random, or derived from the client's Idempotency-Key.
    pub rid: RequestId,
    /// Stock name.
    pub name: String,
    /// Units.
    pub quantity: u64,
    /// Buy or sell.
    #[serde(rename = "type")]
    pub kind: TradeKind,
}

/// The front end's `GET /status`: its supervisor's view of the replicas, its
/// cache, and its link to the catalog. Fields in alphabetical order, as the `json!` literal it
/// replaced wrote them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FrontendStatus {
    /// Counters and entries (most recently used first) of the cache.
    pub cache: CacheStatus,
    /// The subscription to the catalog.
    pub catalog: CatalogLinkStatus,
    /// A catalog group's primary as this front end's supervisor chose it (absent for one
    /// catalog, or while no catalog of the group is live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_primary: Option<u64>,
    /// Every catalog of a group, as the last heartbeat saw it (empty for one catalog).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogs: Vec<CatalogView>,
    /// The current leadership epoch.
    pub epoch: u64,
    /// The replica orders go to, if any is live.
    pub leader: Option<u64>,
    /// Every configured replica.
    pub replicas: Vec<ReplicaView>,
}

/// One catalog of a group, in the front end's `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogView {
    /// Its id in `[[catalogs]]`.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// `primary`, `catching_up`, `standby`, or `down` (no answer to the last heartbeat).
    pub role: String,
    /// Its last trade, as it answered.
    pub last_trade: Option<u64>,
    /// The catalog epoch it holds.
    pub epoch: Option<u64>,
}

impl FrontendStatus {
    /// The view of replica `id`, if it is configured.
    pub fn replica(&self, id: u64) -> Option<&ReplicaView> {
        self.replicas.iter().find(|r| r.id == id)
    }

    /// The leader, once the replica it names reports itself serving as leader.
    pub fn serving_leader(&self) -> Option<u64> {
        let leader = self.leader?;
        self.replica(leader)
            .is_some_and(|r| r.role == "leader")
            .then_some(leader)
    }
}

/// What a front end's supervisor knows of one replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaView {
    /// Replica id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// `leader`, `follower`, `taking_over`, `recovering`, `lagging` (the leader does not wait
    /// for it) or `down`.
    pub role: String,
    /// Answered the last heartbeat and is ready.
    pub live: bool,
    /// Last order number it holds.
    pub last_order: Option<u64>,
    /// The epoch it has accepted.
    pub epoch: Option<u64>,
}

/// The front end's subscription to the catalog, in its `/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogLinkStatus {
    /// This front end's subscriber id.
    pub subscriber: String,
    /// Subscribed and answering.
    pub connected: bool,
    /// The catalog incarnation subscribed to.
    pub incarnation: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_view_keeps_its_alphabetical_bytes() {
        // As the README shows it.
        let v = OrderView {
            name: "GameStart".into(),
            number: 0,
            quantity: 3,
            kind: TradeKind::Buy,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"name":"GameStart","number":0,"quantity":3,"type":"buy"}"#
        );
    }

    #[test]
    fn order_request_reads_the_public_body() {
        let o: OrderRequest =
            serde_json::from_str(r#"{"name":"GameStart","quantity":3,"type":"buy"}"#).unwrap();
        assert_eq!((o.quantity, o.kind), (3, TradeKind::Buy));
        assert!(serde_json::from_str::<OrderRequest>(
            r#"{"name":"GameStart","quantity":3,"type":"steal"}"#
        )
        .is_err());
    }

    #[test]
    fn status_keys_are_alphabetical() {
        let s = FrontendStatus {
            cache: CacheStatus::default(),
            catalog: CatalogLinkStatus {
                subscriber: "ab".into(),
                connected: true,
                incarnation: Some(1),
            },
            catalog_primary: None,
            catalogs: Vec::new(),
            epoch: 2,
            leader: Some(3),
            replicas: vec![ReplicaView {
                id: 3,
                addr: "127.0.0.1:8093".into(),
                role: "leader".into(),
                live: true,
                last_order: None,
                epoch: Some(2),
            }],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.starts_with(r#"{"cache":{"capacity":0,"#), "{text}");
        assert!(
            text.contains(r#"},"catalog":{"subscriber":"ab","connected":true,"incarnation":1},"epoch":2,"leader":3,"replicas":[{"id":3,"#),
            "{text}"
        );
        assert_eq!(s.serving_leader(), Some(3));
    }
}
