//! The deterministic simulator as a test: thousands of seeded schedules of crashes, pauses,
//! partitions and message faults keep every rule; each deliberately broken variant of the
//! replica machine is caught; a seed replays exactly.

use tradenet_actors::replication::Flaw;
use tradenet_actors::sim::{run, SimConfig};

/// Runs `seeds` and fails with the first violations and the replayed trace of the first
/// failing seed.
fn run_seeds(seeds: std::ops::Range<u64>) {
    let mut acked = 0;
    for seed in seeds.clone() {
        let report = run(SimConfig::new(seed));
        acked += report.acked;
        if !report.violations.is_empty() {
            let mut cfg = SimConfig::new(seed);
            cfg.trace = true;
            let replay = run(cfg);
            let tail: Vec<&String> = replay.trace.iter().rev().take(200).rev().collect();
            panic!(
                "seed {seed} breaks a rule:\n{}\n--- last 200 lines of its replay ---\n{}",
                report.violations.join("\n"),
                tail.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    // The schedules must actually trade, or they prove nothing.
    assert!(
        acked > (seeds.end - seeds.start) * 10,
        "only {acked} orders acknowledged over seeds {seeds:?}"
    );
}

#[test]
fn seeds_0_to_1000_keep_every_rule() {
    run_seeds(0..1000);
}

#[test]
fn seeds_1000_to_2000_keep_every_rule() {
    run_seeds(1000..2000);
}

/// The first seed below `limit` at which the checks catch `flaw`, with what they said.
fn caught(flaw: Flaw, limit: u64) -> Option<(u64, String)> {
    (0..limit).find_map(|seed| {
        let mut cfg = SimConfig::new(seed);
        cfg.flaw = Some(flaw);
        let report = run(cfg);
        report.violations.first().map(|v| (seed, v.clone()))
    })
}

#[test]
fn acknowledging_before_followers_is_caught() {
    let (seed, what) = caught(Flaw::AckBeforeFollowers, 200).expect("never caught");
    assert!(what.contains("rule 1"), "seed {seed}: {what}");
}

#[test]
fn skipping_the_epoch_check_is_caught() {
    let (seed, what) = caught(Flaw::SkipEpochCheck, 200).expect("never caught");
    assert!(what.contains("rule 5"), "seed {seed}: {what}");
}

#[test]
fn forgetting_request_ids_is_caught() {
    let (seed, what) = caught(Flaw::ForgetRequestIds, 200).expect("never caught");
    assert!(what.contains("rule 2"), "seed {seed}: {what}");
}

#[test]
fn batches_without_a_byte_bound_are_caught() {
    let (seed, what) = caught(Flaw::UnboundedBatches, 400).expect("never caught");
    assert!(what.contains("did not come to rest"), "seed {seed}: {what}");
}

#[test]
fn a_seed_replays_exactly() {
    let mut cfg = SimConfig::new(7);
    cfg.trace = true;
    let a = run(cfg.clone());
    let b = run(cfg);
    assert!(
        a.trace.len() > 500,
        "a short trace: {} lines",
        a.trace.len()
    );
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.acked, b.acked);
}

/// A catalog group (`SimConfig::catalogs`), no faults: the front ends elect a primary that
/// catches up with the order log, and at rest every catalog holds exactly the logs' trades.
#[test]
fn a_calm_catalog_group_keeps_every_rule() {
    for seed in 0..300 {
        let mut cfg = SimConfig::new(seed);
        cfg.catalogs = 2;
        cfg.faults = false;
        let report = run(cfg);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
        assert!(
            report.acked > 10,
            "seed {seed} traded {} orders",
            report.acked
        );
    }
}

#[test]
fn a_catalog_serving_before_it_caught_up_is_caught() {
    let caught = (0..300).find_map(|seed| {
        let mut cfg = SimConfig::new(seed);
        cfg.catalogs = 2;
        cfg.flaw = Some(Flaw::CatalogServesUnsynced);
        let report = run(cfg);
        report
            .violations
            .into_iter()
            .find(|v| v.contains("rules 2-3"))
            .map(|v| (seed, v))
    });
    // A primary numbering from its own stale table gives numbers the log gave other trades.
    assert!(caught.is_some(), "never caught as a rules 2-3 violation");
}

/// A catalog group under every fault (catalog crashes kept apart from replica crashes and
/// pauses, `SimConfig::catalogs`): the same rules, on every catalog.
#[test]
fn a_catalog_group_under_faults_keeps_every_rule() {
    let mut acked = 0;
    for seed in 0..300 {
        let mut cfg = SimConfig::new(seed);
        cfg.catalogs = 2;
        let report = run(cfg);
        acked += report.acked;
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
    }
    assert!(acked > 300 * 10, "only {acked} orders acknowledged");
}

/// Seed 15868 is the first of two schedules in 50,000 (the other is 37032) that the simulator
/// finds for the window `Flaw::AckWithoutCatalogCopy` opens: a leader whose followers lag
/// answers with only the primary catalog holding the order, the leadership moves, and the
/// primary crashes before the new leader reads it. If a change to the simulator's schedules moves that window, find the new
/// seed with `simulate --catalogs 2 --flaw ack-without-catalog-copy --seeds 50000`. (The cluster
/// test `orders_answered_while_every_follower_was_down_outlive_the_leader_and_the_primary_catalog`
/// shows the same window with real processes.)
#[test]
fn answering_without_a_standby_catalogs_copy_is_caught() {
    let cfg = |flaw| {
        let mut c = SimConfig::new(15868);
        c.catalogs = 2;
        c.flaw = flaw;
        c
    };
    let broken = run(cfg(Some(Flaw::AckWithoutCatalogCopy)));
    assert!(
        broken.violations.iter().any(|v| v.contains("rule")),
        "not caught: {:?}",
        broken.violations
    );
    let kept = run(cfg(None));
    assert!(kept.violations.is_empty(), "{:?}", kept.violations);
}

/// Every choice comes from the seed: a run with the trace on and one with it off end the
/// same way (a map iterated in hash order once made seed 40 differ between runs).
#[test]
fn a_run_ends_the_same_with_or_without_its_trace() {
    for catalogs in [1, 2] {
        for seed in 0..150 {
            let mut cfg = SimConfig::new(seed);
            cfg.catalogs = catalogs;
            let a = run(cfg.clone());
            cfg.trace = true;
            let b = run(cfg);
            assert_eq!(
                (a.acked, a.reads, a.ended_at, a.epochs),
                (b.acked, b.reads, b.ended_at, b.epochs),
                "seed {seed}, {catalogs} catalogs"
            );
        }
    }
}
