//! Benchmark of the order log's request-id index (not a test): loads a log of N orders with
//! random request ids, as a replica does at start-up and as a leader does order by order, and
//! prints the time, the slowest single append (the index's merge pause) and the time to find
//! every seventh id.
//!
//!     cargo run --release -p tradenet-actors --example orderlog_index [-- N]

use std::time::{Duration, Instant};
use tradenet_actors::orderlog::{Order, OrderLog};
use tradenet_actors::types::{RequestId, TradeKind};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of orders"))
        .unwrap_or(1_000_000);
    // A fixed pseudo-random sequence (a 128-bit LCG), so runs compare.
    let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
    let rids: Vec<RequestId> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d);
            RequestId(x)
        })
        .collect();
    let mut log = OrderLog::default();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for (i, rid) in rids.iter().enumerate() {
        let one = Instant::now();
        log.load(Order {
            number: i as u64,
            epoch: 1,
            rid: *rid,
            name: "GameStart".into(),
            kind: TradeKind::Buy,
            quantity: 1,
            cseq: i as u64 + 1,
        })
        .expect("a valid order");
        slowest = slowest.max(one.elapsed());
    }
    let loaded = start.elapsed();
    let start = Instant::now();
    let asked: Vec<RequestId> = rids.iter().step_by(7).copied().collect();
    let found = asked.iter().filter(|r| log.find(**r).is_some()).count();
    let finding = start.elapsed();
    assert_eq!(found, asked.len(), "every id is found");
    println!(
        "figure index_load_ms {:.1} ms ({n} orders)",
        loaded.as_secs_f64() * 1e3
    );
    println!(
        "figure index_slowest_append_ms {:.2} ms",
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "figure index_find_ns {:.0} ns ({} finds)",
        finding.as_secs_f64() * 1e9 / asked.len() as f64,
        asked.len()
    );
}
