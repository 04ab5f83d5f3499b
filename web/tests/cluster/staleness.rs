//! Rule 6 under a one-way cut: the catalog cannot reach the front end (its invalidations and
//! pings fail) while the front end still reaches the catalog. The front end serves cached
//! hits only while the catalog's word came within the lease, so after a trade is
//! acknowledged no lookup shows the old quantity later than the lease.

use crate::harness::*;
use crate::netns::{Lab, PORT};
use std::time::{Duration, Instant};
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

const LEASE_MS: u64 = 300;
/// How long lookups are watched after the trade.
const WATCH: Duration = Duration::from_secs(3);

#[test]
fn under_a_one_way_cut_no_hit_is_older_than_the_lease_after_a_trade() {
    let lab = Lab::exchange("ts", 215, &["f1"], &format!("cache_lease_ms = {LEASE_MS}"));
    let f1 = lab.addr("f1", PORT);

    // Cached, and served from the cache.
    let before = wait_for("a cached GameStart", Duration::from_secs(5), || {
        let s = stock(&f1, "GameStart");
        let st = frontend_status(&f1);
        st.cache
            .entries
            .iter()
            .any(|e| e == "GameStart")
            .then_some(s)
    });

    // The catalog can no longer open connections to the front end; the front end still
    // reaches the catalog (and the replicas reach everything).
    lab.set_one_way("cat", "f1", true).unwrap();
    let (status, body) = order(&f1, "GameStart", TradeKind::Buy, 1);
    assert_eq!(status, 200, "{body}");
    let acked = Instant::now();
    let mut stale_late = Vec::new();
    let mut stale_early = 0;
    let mut fresh = 0;
    while acked.elapsed() < WATCH {
        let sent = acked.elapsed();
        let (status, body) = get(&f1, &wire::stock_path("GameStart"));
        assert_eq!(status, 200, "lookups keep working through the cut: {body}");
        let quantity = body["data"]["quantity"].as_u64().unwrap();
        if quantity == before.quantity {
            if sent > Duration::from_millis(LEASE_MS) {
                stale_late.push(sent);
            } else {
                stale_early += 1;
            }
        } else {
            assert_eq!(quantity, before.quantity - 1, "{body}");
            fresh += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "staleness: {stale_early} stale lookups within the {LEASE_MS} ms lease, {} after it, {fresh} fresh",
        stale_late.len()
    );
    assert!(
        stale_late.is_empty(),
        "lookups sent after the lease showed the quantity from before the trade, at {stale_late:?}"
    );
    assert!(fresh > 0);
    lab.set_one_way("cat", "f1", false).unwrap();
}
