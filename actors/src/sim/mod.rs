//! A deterministic simulator for the replication protocol: the real replica machines
//! (`replication::Replica`) and the real supervision rule, with a catalog model, front ends
//! that route clients' orders and reads with failover retries, disks that lose what was not
//! synced (and may tear the last record), and a network that delays, drops, duplicates,
//! reorders and partitions (one way too). Replicas crash, restart and pause (lag). Everything
//! comes from one seed, so a failing seed replays exactly, with a trace.
//!
//! It checks the rules of `DESIGN.md` after every step and at rest (`check`). The simulator
//! proves it can fail by running deliberately broken variants of the machine (`Flaw`).
//!
//! Run it with `cargo run --release -p tradenet-actors --example simulate -- --seeds N`.

mod catalog;
mod check;
mod world;

pub use world::{run, Report, SimConfig};
