//! Small value types shared by every part of the exchange: request ids, trade kinds, epochs
//! and stock seeds, with their JSON shapes. The bodies built from them live in `crate::wire`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Moved to `crate::wire::frontend`; kept here for `cache.rs` until it imports it from there.
pub use crate::wire::frontend::Stock;

/// A leadership term, numbered by the front end's supervisor; bigger is newer.
pub type Epoch = u64;

/// Identifies one client request across retries and failovers, so a trade is applied once.
///
/// 128 random bits, or a SHA-256 prefix of the client's `Idempotency-Key`; written as 32 hex
/// digits in every file and message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u128);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl std::str::FromStr for RequestId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(format!("request id must be 32 hex digits, got {s:?}"));
        }
        u128::from_str_radix(s, 16)
            .map(RequestId)
            .map_err(|_| format!("request id must be 32 hex digits, got {s:?}"))
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Buy takes quantity out of the market; sell puts it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TradeKind {
    /// Take `quantity` from the stock's remaining quantity.
    Buy,
    /// Add `quantity` to the stock's remaining quantity.
    Sell,
}

impl fmt::Display for TradeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TradeKind::Buy => "buy",
            TradeKind::Sell => "sell",
        })
    }
}

/// How a stock starts out when the catalog has no files yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockSeed {
    /// Unique name.
    pub name: String,
    /// Price per unit.
    pub price: f64,
    /// Initial quantity.
    pub quantity: u64,
}

/// Checks that a stock name is something a client could have meant: non-empty, short, and
/// printable ASCII without '/'. Keeps junk out of logs and files.
pub fn validate_name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(crate::Error::BadRequest(format!(
            "stock name must be 1..64 printable ASCII characters, got {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_round_trips_through_json() {
        let id = RequestId(0xdead_beef);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"000000000000000000000000deadbeef\"");
        assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RequestId>("\"xyz\"").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("GameStart").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("has space").is_err());
    }
}
