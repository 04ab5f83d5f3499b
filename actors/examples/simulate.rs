//! Runs the deterministic simulator over many seeds and prints what it found.
//!
//! ```text
//! cargo run --release -p tradenet-actors --example simulate -- --seeds 100000
//! cargo run --release -p tradenet-actors --example simulate -- --seed 42 --trace
//! ```
//!
//! A failing seed prints its violations and a readable trace of the replay (the same seed
//! always replays the same schedule). The last line is `schedules: N, violations: V`.

use std::time::Instant;
use tradenet_actors::replication::Flaw;
use tradenet_actors::sim::{run, SimConfig};

const HELP: &str = "\
simulate: drive the replication protocol through seeded schedules of crashes, pauses,
partitions, drops, duplicates and reorders, checking DESIGN.md's rules after every step.

USAGE: simulate [--seeds N] [--seed S] [--trace] [--flaw NAME] [--catalogs N]

  --seeds N    run seeds 0..N (default 1000)
  --seed S     run only seed S (replays it exactly)
  --first S    with --seeds: start at seed S (default 0)
  --trace      print the trace of every failing seed (always on with --seed)
  --calm       no faults: only load (a baseline for the figures)
  --flaw NAME  run a deliberately broken machine: ack-before-followers, skip-epoch-check,
               forget-request-ids, unbounded-batches, catalog-serves-unsynced,
               ack-without-catalog-copy (the checks must catch each; the last two need
               --catalogs 2)
  --catalogs N 1 (default): the catalog model; 2 or more: a catalog group of real catalog
               nodes that crash and restart, the front ends electing the primary
  --no-replica-faults  replicas neither crash nor pause (catalogs, links and messages still
               fail): catalog failover on its own
";

fn main() {
    let mut seeds = 1000u64;
    let mut first = 0u64;
    let mut only = None;
    let mut trace = false;
    let mut flaw = None;
    let mut calm = false;
    let mut catalogs = 1u64;
    let mut no_replica_faults = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--seeds" => seeds = number(&value("--seeds")),
            "--first" => first = number(&value("--first")),
            "--seed" => only = Some(number(&value("--seed"))),
            "--trace" => trace = true,
            "--calm" => calm = true,
            "--no-replica-faults" => no_replica_faults = true,
            "--catalogs" => catalogs = number(&value("--catalogs")),
            "--flaw" => {
                flaw = Some(match value("--flaw").as_str() {
                    "ack-before-followers" => Flaw::AckBeforeFollowers,
                    "skip-epoch-check" => Flaw::SkipEpochCheck,
                    "forget-request-ids" => Flaw::ForgetRequestIds,
                    "unbounded-batches" => Flaw::UnboundedBatches,
                    "catalog-serves-unsynced" => Flaw::CatalogServesUnsynced,
                    "ack-without-catalog-copy" => Flaw::AckWithoutCatalogCopy,
                    other => fail(&format!("unknown flaw {other:?}")),
                })
            }
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let range = match only {
        Some(s) => s..s + 1,
        None => first..first + seeds,
    };
    let started = Instant::now();
    let (mut schedules, mut violations, mut acked, mut epochs) = (0u64, 0u64, 0u64, 0u64);
    for seed in range {
        let mut cfg = SimConfig::new(seed);
        cfg.flaw = flaw;
        cfg.faults = !calm;
        cfg.catalogs = catalogs;
        cfg.replica_faults = !no_replica_faults;
        let report = run(cfg.clone());
        schedules += 1;
        acked += report.acked;
        epochs += report.epochs;
        if std::env::var_os("SIM_DUMP").is_some() {
            cfg.trace = true;
            for line in run(cfg.clone()).trace {
                println!("{line}");
            }
            println!("acked {} ended {}", report.acked, report.ended_at);
        }
        if !report.violations.is_empty() {
            violations += 1;
            println!("seed {seed}: {} violations", report.violations.len());
            for v in report.violations.iter().take(5) {
                println!("  {v}");
            }
            if trace || only.is_some() {
                cfg.trace = true;
                let replay = run(cfg);
                println!("  trace of seed {seed} (replayed):");
                for line in &replay.trace {
                    println!("    {line}");
                }
            }
        }
    }
    println!(
        "{acked} orders acknowledged, {epochs} elections, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("schedules: {schedules}, violations: {violations}");
    if violations > 0 {
        std::process::exit(1);
    }
}

fn number(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| fail(&format!("expected a whole number, got {s:?}")))
}

fn fail(msg: &str) -> ! {
    eprintln!("simulate: {msg}\n\n{HELP}");
    std::process::exit(2)
}
