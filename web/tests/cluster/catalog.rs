//! The catalog under crashes: acknowledged trades survive SIGKILL, request ids apply once,
//! a torn journal tail is cut, a corrupt middle line stops start-up naming file and line.

use crate::harness::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{
    TradeBatch, TradeOutcome, TradeRequest, TradeResult, TradeResults, TradesPage, TradesSince,
};

/// rid -> (stock, type, quantity, catalog seq) of every acknowledged trade.
type Acked = HashMap<RequestId, (String, TradeKind, u64, u64)>;

fn catalog_only() -> Cluster {
    let mut c = Cluster::new(Opts {
        replicas: 0,
        ..Opts::default()
    });
    c.start_catalog();
    c
}

fn rid(n: u64) -> RequestId {
    RequestId(0xabc0_0000_0000 + u128::from(n))
}

fn trade(
    addr: &str,
    rid: RequestId,
    name: &str,
    kind: TradeKind,
    quantity: u64,
) -> Option<(u16, Value)> {
    let trade = TradeRequest {
        rid,
        name: name.to_string(),
        kind,
        quantity,
        epoch: 0,
    };
    try_post(addr, wire::TRADE, &trade, &[])
}

/// The catalog sequence number of a 200 answer to a trade.
fn seq(body: &Value) -> u64 {
    data::<TradeOutcome>(body).seq
}

#[test]
fn sigkill_during_a_stream_of_trades_loses_nothing_acknowledged_and_applies_no_rid_twice() {
    let mut c = catalog_only();
    let addr = c.catalog.clone();
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let names = ["GameStart", "FishCo", "BoarCo"];
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                for i in 0..400u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = rid(t * 10_000 + i);
                    let name = names[(i % 3) as usize];
                    let kind = if i % 2 == 0 {
                        TradeKind::Sell
                    } else {
                        TradeKind::Buy
                    };
                    sent.push((r, name, kind));
                    if let Some((200, body)) = trade(&addr, r, name, kind, 1) {
                        acked
                            .lock()
                            .unwrap()
                            .insert(r, (name.into(), kind, 1, seq(&body)));
                    }
                }
                sent
            })
        })
        .collect();
    wait_for("some acknowledged trades", Duration::from_secs(20), || {
        (acked.lock().unwrap().len() >= 50).then_some(())
    });
    c.kill("catalog");
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    c.start_catalog();
    let acked = acked.lock().unwrap().clone();

    // Every acknowledged trade is there, with its number: the same rid answers the same seq.
    for (r, (name, kind, q, acked_seq)) in &acked {
        let (status, body) = trade(&addr, *r, name, *kind, *q).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(seq(&body), *acked_seq, "rid {r} answered a different trade");
    }
    // Retrying everything that was sent (acknowledged or not) applies each rid at most once.
    for (r, name, kind) in &sent {
        let _ = trade(&addr, *r, name, *kind, 1);
    }
    let since = TradesSince {
        after: 0,
        epoch: 0,
        limit: 100_000,
        log_end: 0,
        leader: None,
        catalog_epoch: None,
    };
    let (_, page) = post(&addr, wire::TRADES_SINCE, &since, &[]);
    let trades = data::<TradesPage>(&page).trades;
    let mut seen = std::collections::HashSet::new();
    for t in &trades {
        assert!(seen.insert(t.rid), "rid applied twice: {t:?}");
    }
    assert_eq!(
        trades.len(),
        sent.len(),
        "every sent rid applied exactly once after retries"
    );
    // Conservation over the journal.
    assert_conservation(&addr, &trades);
}

#[test]
fn torn_journal_tail_is_cut_on_restart() {
    let mut c = catalog_only();
    let addr = c.catalog.clone();
    for i in 0..3 {
        assert_eq!(
            trade(&addr, rid(i), "FishCo", TradeKind::Buy, 2).unwrap().0,
            200
        );
    }
    c.kill("catalog");
    let journal = c.data("catalog").join("journal.jsonl");
    let before = std::fs::read(&journal).unwrap();
    assert!(before.ends_with(b"\n") && !before.is_empty());
    // A crash in the middle of writing the next line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(b"{\"op\":\"trade\",\"seq\":4,\"rid\":\"00")
        .unwrap();
    c.start_catalog();
    assert!(
        c.log("catalog").contains("cut a torn last line"),
        "{}",
        c.log("catalog")
    );
    assert_eq!(catalog_stocks(&addr)["FishCo"], (94, 6));
    // The catalog keeps working and numbering after the cut.
    let (_, body) = trade(&addr, rid(9), "FishCo", TradeKind::Sell, 1).unwrap();
    assert_eq!(seq(&body), 4);
}

#[test]
fn corrupt_middle_line_stops_start_up_naming_file_and_line() {
    let mut c = catalog_only();
    let addr = c.catalog.clone();
    for i in 0..3 {
        assert_eq!(
            trade(&addr, rid(i), "BoarCo", TradeKind::Buy, 1).unwrap().0,
            200
        );
    }
    c.kill("catalog");
    let journal = c.data("catalog").join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "journal: {text}");
    lines[1] = "{\"op\":\"trade\",\"seq\":2,GARBAGE";
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let (ok, out) = c.run_to_end(&["catalog"]);
    assert!(!ok, "start-up must fail on a corrupt middle line");
    assert!(
        out.contains("journal.jsonl:2"),
        "message names file and line: {out}"
    );
}

#[test]
fn a_batch_of_trades_answers_each_as_if_alone_and_applies_each_once() {
    let c = catalog_only();
    let t = |n: u64, name: &str, kind: TradeKind, quantity: u64| TradeRequest {
        rid: rid(1000 + n),
        name: name.to_string(),
        kind,
        quantity,
        epoch: 0,
    };
    let batch = TradeBatch {
        trades: vec![
            t(1, "GameStart", TradeKind::Buy, 3),
            t(2, "Panoramix", TradeKind::Buy, 1),
            t(3, "FishCo", TradeKind::Buy, 5000),
            t(4, "FishCo", TradeKind::Sell, 2),
        ],
        log_end: 0,
        leader: None,
        catalog_epoch: None,
    };
    let (status, body) = post(&c.catalog, wire::TRADE_BATCH, &batch, &[]);
    assert_eq!(status, 200, "{body}");
    let first: TradeResults = data(&body);
    let kinds: Vec<String> = first
        .results
        .iter()
        .map(|r| match r {
            TradeResult::Ok(o) => format!("ok {} {}", o.name, o.quantity),
            TradeResult::Error(e) => format!("{} {}", e.code, e.kind),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ok GameStart 3",
            "404 not_found",
            "409 insufficient_quantity",
            "ok FishCo 2"
        ],
        "each trade answered on its own: {body}"
    );
    // The same batch again: the same answers (request ids apply once), nothing traded twice.
    let (status, body) = post(&c.catalog, wire::TRADE_BATCH, &batch, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        data::<TradeResults>(&body),
        first,
        "a retried batch: {body}"
    );
    let stocks = catalog_stocks(&c.catalog);
    assert_eq!(stocks["GameStart"], (INITIAL - 3, 3));
    assert_eq!(stocks["FishCo"], (INITIAL + 2, 2));

    for size in [0, 257] {
        let batch = TradeBatch {
            trades: (0..size)
                .map(|n| t(2000 + n, "GameStart", TradeKind::Sell, 1))
                .collect(),
            log_end: 0,
            leader: None,
            catalog_epoch: None,
        };
        let (status, body) = post(&c.catalog, wire::TRADE_BATCH, &batch, &[]);
        assert_eq!(status, 400, "a batch of {size}: {body}");
    }
    assert_eq!(catalog_stocks(&c.catalog)["GameStart"], (INITIAL - 3, 3));
}
