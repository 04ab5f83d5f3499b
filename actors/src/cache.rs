//! The front end's stock cache: an LRU of bounded size whose entries carry the catalog's
//! version, plus the actor that owns it.
//!
//! Freshness (rule 6) rests on versions, not timing. An invalidation for version `v` removes
//! any older entry and raises that stock's floor to `v`; a fill whose version is below the floor
//! was read before the invalidation and is refused, so a slow fill racing an invalidation can
//! never reinstall an old value.

use crate::types::Stock;
use actix::prelude::*;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// What a fill did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// The entry is in the cache now.
    Installed,
    /// The entry is in, and this least recently used entry went out to make room.
    Evicted(String),
    /// The value was older than an invalidation already received; nothing changed.
    Stale,
}

/// Counters and contents, for `/status`. The default is a cache of capacity 0 (off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheStatus {
    /// Maximum number of entries.
    pub capacity: usize,
    /// Cached stock names, most recently used first.
    pub entries: Vec<String>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to ask the catalog.
    pub misses: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Invalidations received (one per stock and version).
    pub invalidations: u64,
    /// Fills refused because an invalidation had overtaken them.
    pub stale_fills: u64,
    /// Times the whole cache was emptied (catalog lost or restarted).
    pub flushes: u64,
    /// Hits are served now: the catalog's word came within the lease (false while it has
    /// lapsed, and before the first word).
    #[serde(default)]
    pub serving_hits: bool,
}

/// LRU of stocks with version floors; see the module docs.
///
/// A flush starts a new generation; a fill that began in an older generation (its read may
/// predate the subscription that would have invalidated it) is refused like a stale one.
#[derive(Debug)]
pub struct StockCache {
    lru: LruCache<String, Stock>,
    floor: HashMap<String, u64>,
    generation: u64,
    status: CacheStatus,
}

impl StockCache {
    /// A cache holding at most `capacity` stocks.
    pub fn new(capacity: NonZeroUsize) -> StockCache {
        StockCache {
            lru: LruCache::new(capacity),
            floor: HashMap::new(),
            generation: 0,
            status: CacheStatus {
                capacity: capacity.get(),
                ..CacheStatus::default()
            },
        }
    }

    /// The cached stock, promoted to most recently used; counts a hit or a miss.
    pub fn get(&mut self, name: &str) -> Option<Stock> {
        match self.lru.get(name) {
            Some(stock) => {
                self.status.hits += 1;
                log::debug!("cache hit {name} (version {})", stock.version);
                Some(stock.clone())
            }
            None => {
                self.status.misses += 1;
                log::debug!("cache miss {name}");
                None
            }
        }
    }

    /// Current generation; pass it back to `fill` for a value read after this call.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Offers a value read from the catalog, read in `generation`.
    pub fn fill(&mut self, stock: Stock, generation: u64) -> Fill {
        if generation != self.generation {
            self.status.stale_fills += 1;
            log::debug!(
                "cache refused fill of {} read before the last flush",
                stock.name
            );
            return Fill::Stale;
        }
        if stock.version < self.floor.get(&stock.name).copied().unwrap_or(0) {
            self.status.stale_fills += 1;
            log::debug!(
                "cache refused stale fill {} version {} (invalidated up to {})",
                stock.name,
                stock.version,
                self.floor[&stock.name]
            );
            return Fill::Stale;
        }
        if self
            .lru
            .peek(&stock.name)
            .is_some_and(|s| s.version > stock.version)
        {
            return Fill::Stale;
        }
        let name = stock.name.clone();
        match self.lru.push(name.clone(), stock) {
            Some((old, _)) if old != name => {
                self.status.evictions += 1;
                log::debug!("cache evicted {old} (least recently used) to make room for {name}");
                Fill::Evicted(old)
            }
            _ => Fill::Installed,
        }
    }

    /// The catalog says `name` is now at `version`: drop any older copy, refuse older fills.
    pub fn invalidate(&mut self, name: &str, version: u64) -> bool {
        self.status.invalidations += 1;
        let floor = self.floor.entry(name.to_string()).or_insert(0);
        *floor = (*floor).max(version);
        let stale = self.lru.peek(name).is_some_and(|s| s.version < version);
        if stale {
            self.lru.pop(name);
        }
        log::debug!(
            "cache invalidation {name} version {version}{}",
            if stale { ": entry removed" } else { "" }
        );
        stale
    }

    /// Empties the cache (the catalog was lost or restarted: versions may restart too).
    pub fn flush(&mut self) {
        self.lru.clear();
        self.floor.clear();
        self.generation += 1;
        self.status.flushes += 1;
    }

    /// Counters and entries, most recently used first.
    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            entries: self.lru.iter().map(|(k, _)| k.clone()).collect(),
            ..self.status.clone()
        }
    }
}

/// Owns the `StockCache`; one per front end.
pub struct CacheActor {
    cache: StockCache,
    lease: Lease,
}

impl CacheActor {
    /// A cache actor of the given capacity whose hits need word from the catalog (a push or a
    /// ping) within `lease`.
    pub fn new(capacity: NonZeroUsize, lease: Duration) -> CacheActor {
        CacheActor {
            cache: StockCache::new(capacity),
            lease: Lease::new(lease),
        }
    }
}

/// Bounded staleness (rule 6): the cache serves hits only while the catalog's word reached
/// this front end within the lease. The catalog pushes invalidations, and pings every
/// heartbeat when it has none, over the same path; when neither arrives (a one-way cut, a
/// stalled catalog), hits stop within the lease and lookups go to the catalog. When word comes
/// again the cache is emptied first: invalidations may have been lost meanwhile.
#[derive(Debug)]
pub struct Lease {
    lease: Duration,
    confirmed: Option<Instant>,
    lapsed: bool,
}

impl Lease {
    /// A lease of `lease`, not yet confirmed.
    pub fn new(lease: Duration) -> Lease {
        Lease {
            lease,
            confirmed: None,
            lapsed: false,
        }
    }

    /// Word from the catalog at `now`. True when the lease had lapsed: empty the cache first.
    pub fn confirm(&mut self, now: Instant) -> bool {
        self.confirmed = Some(now);
        std::mem::take(&mut self.lapsed)
    }

    /// Whether a hit could be served at `now`, changing nothing (for `/status`).
    pub fn peek(&self, now: Instant) -> bool {
        self.confirmed
            .is_some_and(|t| now.saturating_duration_since(t) <= self.lease)
    }

    /// May a hit be served at `now`? Marks the lease lapsed when it is not.
    pub fn holds(&mut self, now: Instant) -> bool {
        let holds = self
            .confirmed
            .is_some_and(|t| now.saturating_duration_since(t) <= self.lease);
        if !holds && !self.lapsed {
            if self.confirmed.is_some() {
                log::warn!(
                    "cache hits paused: no word from the catalog for over {:?}; lookups go to the catalog until it pushes again",
                    self.lease
                );
            }
            self.lapsed = true;
        }
        holds
    }
}

impl Actor for CacheActor {
    type Context = Context<Self>;
}

/// Looks a stock up in the cache: the stock on a hit, the generation to fill in on a miss.
#[derive(Message)]
#[rtype(result = "Result<Stock, u64>")]
pub struct Get(pub String);

impl Handler<Get> for CacheActor {
    type Result = Result<Stock, u64>;
    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Result<Stock, u64> {
        if !self.lease.holds(Instant::now()) {
            return Err(self.cache.generation());
        }
        self.cache.get(&msg.0).ok_or(self.cache.generation())
    }
}

/// Offers a value read from the catalog after a miss in `generation`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Put {
    /// The value read.
    pub stock: Stock,
    /// The generation the miss reported.
    pub generation: u64,
}

impl Handler<Put> for CacheActor {
    type Result = ();
    fn handle(&mut self, msg: Put, _: &mut Context<Self>) {
        // While the lease has lapsed nothing is served from the cache, and it is emptied when
        // word comes again: filling it now would be wasted.
        if self.lease.holds(Instant::now()) {
            self.cache.fill(msg.stock, msg.generation);
        }
    }
}

/// Invalidations pushed by the catalog: (name, new version) pairs; empty for a ping. Either
/// confirms the lease.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invalidate(pub Vec<(String, u64)>);

impl Handler<Invalidate> for CacheActor {
    type Result = ();
    fn handle(&mut self, msg: Invalidate, _: &mut Context<Self>) {
        if self.lease.confirm(Instant::now()) {
            log::info!(
                "cache flushed: the catalog's word came back after the lease lapsed; hits resume"
            );
            self.cache.flush();
        }
        for (name, version) in msg.0 {
            self.cache.invalidate(&name, version);
        }
    }
}

/// Empties the cache, saying why in the log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush(pub String);

impl Handler<Flush> for CacheActor {
    type Result = ();
    fn handle(&mut self, msg: Flush, _: &mut Context<Self>) {
        log::info!("cache flushed: {}", msg.0);
        self.cache.flush();
    }
}

/// Asks for the cache's counters and entries.
#[derive(Message)]
#[rtype(result = "CacheStatus")]
pub struct Status;

impl Handler<Status> for CacheActor {
    type Result = MessageResult<Status>;
    fn handle(&mut self, _: Status, _: &mut Context<Self>) -> Self::Result {
        MessageResult(CacheStatus {
            serving_hits: self.lease.peek(Instant::now()),
            ..self.cache.status()
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn hits_stop_when_the_lease_lapses_and_the_cache_is_emptied_before_they_resume() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut lease = Lease::new(ms(600));
        assert!(!lease.holds(t0), "no word from the catalog yet");
        assert!(
            lease.confirm(t0),
            "first word: nothing cached can be trusted yet"
        );
        assert!(lease.holds(t0 + ms(600)));
        assert!(!lease.holds(t0 + ms(601)), "lapsed");
        assert!(
            lease.confirm(t0 + ms(900)),
            "word again: empty the cache first"
        );
        assert!(lease.holds(t0 + ms(1000)));
        assert!(
            !lease.confirm(t0 + ms(1100)),
            "a lease that held needs no flush"
        );
    }

    use super::*;

    fn stock(name: &str, version: u64) -> Stock {
        Stock {
            name: name.into(),
            price: 1.0,
            quantity: 100 - version,
            volume: version,
            version,
        }
    }

    fn cache(n: usize) -> StockCache {
        StockCache::new(NonZeroUsize::new(n).unwrap())
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut c = cache(2);
        assert_eq!(c.fill(stock("A", 0), 0), Fill::Installed);
        assert_eq!(c.fill(stock("B", 0), 0), Fill::Installed);
        assert!(c.get("A").is_some()); // A is now most recent
        assert_eq!(c.fill(stock("C", 0), 0), Fill::Evicted("B".into()));
        assert_eq!(c.status().entries, vec!["C", "A"]);
        assert!(c.get("B").is_none());
        let s = c.status();
        assert_eq!((s.hits, s.misses, s.evictions), (1, 1, 1));
    }

    #[test]
    fn invalidation_removes_older_entries_only() {
        let mut c = cache(4);
        c.fill(stock("A", 3), 0);
        assert!(!c.invalidate("A", 3), "same version is not stale");
        assert!(c.invalidate("A", 4));
        assert!(c.get("A").is_none());
        assert_eq!(c.status().invalidations, 2);
    }

    #[test]
    fn a_fill_that_lost_the_race_to_an_invalidation_is_refused() {
        let mut c = cache(4);
        // The fill read version 1 from the catalog, then version 2 was invalidated.
        c.invalidate("A", 2);
        assert_eq!(c.fill(stock("A", 1), 0), Fill::Stale);
        assert!(c.get("A").is_none());
        assert_eq!(c.fill(stock("A", 2), 0), Fill::Installed);
        assert_eq!(c.get("A").unwrap().version, 2);
        assert_eq!(c.status().stale_fills, 1);
    }

    #[test]
    fn a_newer_entry_is_not_replaced_by_an_older_fill() {
        let mut c = cache(4);
        c.fill(stock("A", 5), 0);
        assert_eq!(c.fill(stock("A", 4), 0), Fill::Stale);
        assert_eq!(c.get("A").unwrap().version, 5);
    }

    #[test]
    fn flush_forgets_entries_and_floors() {
        let mut c = cache(4);
        c.fill(stock("A", 1), 0);
        c.invalidate("B", 9);
        c.flush();
        assert!(c.status().entries.is_empty());
        // A fill read before the flush is refused; after it, versions may start over.
        assert_eq!(c.fill(stock("B", 0), 0), Fill::Stale);
        assert_eq!(c.fill(stock("B", 0), c.generation()), Fill::Installed);
    }
}
