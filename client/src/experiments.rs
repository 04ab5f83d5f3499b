//! The course's experiments, one command each: `sweep` (latency against p, cache on and off),
//! `lru-trace` (replacement in action), `chaos` (replicas killed during a run) and `bench`
//! (closed-loop throughput for one request type).

use crate::control::Control;
use crate::plot;
use crate::run::{self, RunOpts, RunReport};
use crate::stats::{self, histogram, Kind, Summary};
use anyhow::Context;
use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::catalog::CatalogStatus;
use tradenet_actors::wire::frontend::{FrontendStatus, OrderRequest, Stock};
use tradenet_actors::wire::replica::{EntryId, Fetch, Fetched};
use tradenet_actors::wire::{self, DataBody};

/// Prints the run's table and verification line; returns the summaries.
pub fn report(r: &RunReport) -> Vec<Summary> {
    let summaries = stats::summarize_all(&r.samples);
    print!("{}", stats::table(&summaries));
    println!(
        "{} orders placed in {:.2}s, {} mismatches",
        r.orders.len(),
        r.elapsed.as_secs_f64(),
        r.mismatches.len()
    );
    for m in r.mismatches.iter().take(20) {
        println!("  mismatch: {m}");
    }
    if r.moves > 0 {
        println!(
            "{} requests moved to another front end (and were sent again there)",
            r.moves
        );
    }
    summaries
}

/// `sweep`: `run` at each p with the cache on, then off (the front end is restarted through
/// the launcher's control API); writes `sweep.csv` and one SVG per request type. With
/// `reset`, the launcher first resets the exchange to empty data before each half, so both
/// halves start from the same stock quantities (buys empty stocks, which are then no longer
/// traded, so a half that starts with more stocks at zero places fewer trades).
pub fn sweep(
    base: &RunOpts,
    control: &Control,
    cache_size: usize,
    ps: &[f64],
    out: &Path,
    reset: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut rows: Vec<(String, f64, Summary)> = Vec::new();
    for (label, size) in [("cache on", cache_size), ("cache off", 0)] {
        if reset {
            actix_rt::System::new().block_on(control.reset())?;
            println!("== fresh exchange (every service restarted on empty data)");
        }
        actix_rt::System::new().block_on(control.restart_frontend(size))?;
        println!("== {label} (cache_size = {size})");
        for &p in ps {
            let r = run::run(&RunOpts { p, ..base.clone() }, Arc::default())?;
            println!("-- p = {p}");
            for s in report(&r) {
                rows.push((label.to_string(), p, s));
            }
            anyhow::ensure!(
                r.mismatches.is_empty(),
                "verification failed at p = {p} ({label})"
            );
        }
    }
    // Leave the exchange as it was.
    actix_rt::System::new().block_on(control.restart_frontend(cache_size))?;
    let csv_path = out.join("sweep.csv");
    let mut w = csv::Writer::from_path(&csv_path)?;
    w.write_record([
        "cache", "p", "type", "count", "errors", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms",
    ])?;
    for (label, p, s) in &rows {
        w.write_record([
            label.clone(),
            p.to_string(),
            s.kind.name().to_string(),
            s.count.to_string(),
            s.errors.to_string(),
            format!("{:.3}", s.mean_us / 1000.0),
            format!("{:.3}", s.p50_us as f64 / 1000.0),
            format!("{:.3}", s.p90_us as f64 / 1000.0),
            format!("{:.3}", s.p99_us as f64 / 1000.0),
            format!("{:.3}", s.max_us as f64 / 1000.0),
        ])?;
    }
    w.flush()?;
    println!("wrote {}", csv_path.display());
    for kind in Kind::ALL {
        let mut series = Vec::new();
        for label in ["cache on", "cache off"] {
            for (stat, pick) in [("mean", 0), ("p99", 1)] {
                let points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|(l, _, s)| l == label && s.kind == kind)
                    .map(|(_, p, s)| {
                        (
                            *p,
                            if pick == 0 {
                                s.mean_us
                            } else {
                                s.p99_us as f64
                            } / 1000.0,
                        )
                    })
                    .collect();
                if !points.is_empty() {
                    series.push((format!("{label}, {stat}"), points));
                }
            }
        }
        if series.is_empty() {
            continue;
        }
        let path = out.join(format!("latency-{}.svg", kind.name()));
        plot::lines(
            &path,
            &format!("{} latency against trade probability p", kind.name()),
            "p (probability of trading after a lookup)",
            "latency ms",
            &series,
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// One row of a `sweep.csv`, the columns `sweep_compare` reads.
#[derive(serde::Deserialize)]
struct SweepRow {
    cache: String,
    p: f64,
    #[serde(rename = "type")]
    kind: String,
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Compares the `sweep.csv` of several runs (e.g. loopback and an emulated network), given as
/// `(label, path)`: prints, per run and p, the lookup latency with the cache on and off and
/// the cache's gain, and draws `sweep-compare.svg` in `out` (lookup mean with the cache on as
/// a percentage of the mean with it off, and the same for the median: below 100 the cache
/// helps; the p99, in the table only, is too noisy on loopback to plot).
pub fn sweep_compare(runs: &[(String, std::path::PathBuf)], out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    println!("| network | p | lookup mean, on | off | gain | lookup p99, on | off | gain |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut series = Vec::new();
    for (label, path) in runs {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("read {}", path.display()))?;
        let rows: Vec<SweepRow> = reader
            .deserialize()
            .collect::<Result<_, _>>()
            .with_context(|| format!("parse {}", path.display()))?;
        let lookup = |cache: &str, p: f64| {
            rows.iter()
                .find(|r| r.kind == "lookup" && r.cache == cache && r.p == p)
        };
        let (mut mean, mut p50) = (Vec::new(), Vec::new());
        for on in rows
            .iter()
            .filter(|r| r.kind == "lookup" && r.cache == "cache on")
        {
            let Some(off) = lookup("cache off", on.p) else {
                continue;
            };
            let gain = |a: f64, b: f64| 100.0 * (1.0 - a / b);
            println!(
                "| {label} | {} | {:.3} | {:.3} | {:.0}% | {:.3} | {:.3} | {:.0}% |",
                on.p,
                on.mean_ms,
                off.mean_ms,
                gain(on.mean_ms, off.mean_ms),
                on.p99_ms,
                off.p99_ms,
                gain(on.p99_ms, off.p99_ms)
            );
            mean.push((on.p, 100.0 * on.mean_ms / off.mean_ms));
            p50.push((on.p, 100.0 * on.p50_ms / off.p50_ms));
        }
        series.push((format!("{label}, mean"), mean));
        series.push((format!("{label}, p50"), p50));
    }
    let path = out.join("sweep-compare.svg");
    plot::lines(
        &path,
        "lookup latency with the cache on, % of cache off",
        "p (probability of trading after a lookup)",
        "% of cache-off latency (below 100: the cache helps)",
        &series,
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

/// GET `url` and parse the answer as a `T`, naming the URL and the answer when it is not one.
async fn json_get<T: DeserializeOwned>(client: &awc::Client, url: &str) -> anyhow::Result<T> {
    let mut res = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    let body = res.body().limit(256 << 20).await?;
    serde_json::from_slice(&body).with_context(|| {
        format!(
            "GET {url}: unexpected answer {} {}",
            res.status(),
            String::from_utf8_lossy(&body[..body.len().min(500)])
        )
    })
}

/// A front end's `/status`.
async fn frontend_status(client: &awc::Client, frontend: &str) -> anyhow::Result<FrontendStatus> {
    json_get::<wire::DataBody<FrontendStatus>>(client, &format!("{frontend}{}", wire::STATUS))
        .await
        .map(|b| b.data)
}

/// `lru-trace`: a lookup sequence that forces evictions, printing after each step the cache's
/// entries in LRU order from `/status`; writes `lru-trace.csv` and `lru-trace.svg`.
pub fn lru_trace(frontend: &str, stocks: &[String], out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    actix_rt::System::new().block_on(async {
        let client = run::client(Duration::from_secs(5), 1);
        let status = frontend_status(&client, frontend).await?;
        let capacity = status.cache.capacity;
        anyhow::ensure!(
            capacity > 0,
            "the cache is off (cache_size = 0): nothing to trace"
        );
        anyhow::ensure!(
            stocks.len() > capacity,
            "need more stocks ({}) than cache entries ({capacity})",
            stocks.len()
        );
        // Fill, touch the oldest (it survives), overflow by two (the next oldest go), come
        // back to an evicted one (a miss that evicts again), and touch a survivor (a hit).
        let mut seq: Vec<&String> = stocks[..capacity].iter().collect();
        seq.push(&stocks[0]);
        seq.push(&stocks[capacity]);
        seq.push(&stocks[(capacity + 1).min(stocks.len() - 1)]);
        seq.push(&stocks[1]);
        seq.push(&stocks[0]);
        let mut prev = status.cache.entries;
        let mut hits = status.cache.hits;
        let mut steps = Vec::new();
        let mut table = String::new();
        writeln!(
            table,
            "{:>4}  {:<14} {:<5} {:<14} entries (most recent first)",
            "step", "lookup", "hit?", "evicted"
        )?;
        for (i, name) in seq.iter().enumerate() {
            let url = format!("{frontend}{}", wire::stock_path(name));
            json_get::<DataBody<Stock>>(&client, &url).await?;
            let s = frontend_status(&client, frontend).await?;
            let entries = s.cache.entries;
            let now_hits = s.cache.hits;
            let outcome = if now_hits > hits { "hit" } else { "miss" };
            hits = now_hits;
            let evicted: Vec<&String> = prev.iter().filter(|p| !entries.contains(p)).collect();
            let evicted = evicted.first().map_or("-".to_string(), |e| e.to_string());
            writeln!(
                table,
                "{:>4}  {:<14} {:<5} {:<14} {}",
                i + 1,
                name,
                outcome,
                evicted,
                entries.join(" ")
            )?;
            steps.push((
                name.to_string(),
                entries.clone(),
                outcome.to_string(),
                evicted,
            ));
            prev = entries;
        }
        print!("{table}");
        let csv_path = out.join("lru-trace.csv");
        let mut w = csv::Writer::from_path(&csv_path)?;
        w.write_record(["step", "lookup", "outcome", "evicted", "entries_mru_first"])?;
        for (i, (name, entries, outcome, evicted)) in steps.iter().enumerate() {
            w.write_record([
                (i + 1).to_string(),
                name.clone(),
                outcome.clone(),
                evicted.clone(),
                entries.join(" "),
            ])?;
        }
        w.flush()?;
        let fig: Vec<(String, Vec<String>, String)> = steps
            .iter()
            .map(|(n, e, o, ev)| {
                (
                    n.clone(),
                    e.clone(),
                    if ev == "-" {
                        o.clone()
                    } else {
                        format!("{o}, evicts {ev}")
                    },
                )
            })
            .collect();
        let svg = out.join("lru-trace.svg");
        plot::lru_steps(
            &svg,
            &format!("LRU cache of {capacity} entries"),
            capacity,
            &fig,
        )?;
        println!("wrote {} and {}", csv_path.display(), svg.display());
        Ok(())
    })
}

/// What `chaos` does besides the run.
#[derive(Clone, Debug)]
pub struct ChaosOpts {
    /// Kill a replica this often.
    pub every: Duration,
    /// Restart it after this long.
    pub down: Duration,
    /// Total run time.
    pub duration: Duration,
    /// Which kinds of process are killed: `replicas`, `catalogs`, `frontend`.
    pub kill: Vec<String>,
}

/// The processes of the kinds `kill` names, by launcher name (`order-N`, `catalog`,
/// `catalog-N`, `frontend`).
fn victims(processes: &[tradenet_actors::wire::control::Process], kill: &[String]) -> Vec<String> {
    processes
        .iter()
        .map(|p| p.name.clone())
        .filter(|name| {
            kill.iter().any(|k| match k.as_str() {
                "replicas" => name.starts_with("order-"),
                "catalogs" => name.starts_with("catalog"),
                "frontend" => name == "frontend",
                _ => false,
            })
        })
        .collect()
}

/// `chaos`: a run during which a process of the kinds asked for (replicas by default: the
/// leader first; catalogs: the primary first, the highest id) is SIGKILLed every `every` and
/// restarted after `down`; reports what clients noticed and checks that the replica files and
/// the catalogs' tables end identical. Writes `chaos.csv` and `chaos-timeline.svg`.
pub fn chaos(
    base: &RunOpts,
    control: &Control,
    opts: &ChaosOpts,
    out: &Path,
) -> anyhow::Result<bool> {
    std::fs::create_dir_all(out)?;
    let run_opts = RunOpts {
        iterations: usize::MAX / 2,
        time_limit: Some(opts.duration),
        ..base.clone()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || run::run(&run_opts, stop))
    };
    let frontend = base.frontend.clone();
    let control2 = control.clone();
    let chaos_opts = opts.clone();
    let seed = base.seed;
    let marks: Vec<(f64, String)> = actix_rt::System::new().block_on(async move {
        let client = run::client(Duration::from_secs(5), 1);
        let mut rng = StdRng::seed_from_u64(seed ^ 0xc4a05);
        let mut marks = Vec::new();
        let mut round = 0;
        while t0.elapsed() + chaos_opts.every + chaos_opts.down < chaos_opts.duration {
            tokio::time::sleep(chaos_opts.every).await;
            let status = frontend_status(&client, &frontend).await?;
            // The kinds take turns; the first turn of each kills the one that matters most
            // (the leader; a catalog group's primary, the highest id), later turns any one.
            let kind = &chaos_opts.kill[round % chaos_opts.kill.len()];
            let names = victims(&control2.processes().await?, std::slice::from_ref(kind));
            anyhow::ensure!(
                !names.is_empty(),
                "the launcher runs no process of the kind {kind:?}"
            );
            let leader = status.leader.map(|l| format!("order-{l}"));
            let first = leader
                .clone()
                .filter(|l| names.contains(l))
                .or_else(|| names.iter().max().cloned());
            let name = match (round < chaos_opts.kill.len(), first) {
                (true, Some(f)) => f,
                _ => names[rng.gen_range(0..names.len())].clone(),
            };
            let role = if Some(&name) == leader.as_ref() {
                " (leader)"
            } else if name.starts_with("catalog") {
                " (catalog)"
            } else {
                ""
            };
            control2.kill(&name).await?;
            let label = format!("kill {name}{role}");
            println!("{:7.2}s  {label}", t0.elapsed().as_secs_f64());
            marks.push((t0.elapsed().as_secs_f64(), label));
            tokio::time::sleep(chaos_opts.down).await;
            control2.start(&name).await?;
            println!("{:7.2}s  {name} back", t0.elapsed().as_secs_f64());
            marks.push((t0.elapsed().as_secs_f64(), format!("start {name}")));
            round += 1;
        }
        Ok::<_, anyhow::Error>(marks)
    })?;
    let report_ = load
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    println!("== what the clients noticed");
    let summaries = report(&report_);
    for (t, label) in marks.iter().filter(|m| m.1.starts_with("kill")) {
        let from = (*t * 1e6) as u64;
        let window: Vec<&stats::Sample> = report_
            .samples
            .iter()
            .filter(|s| s.start_us >= from.saturating_sub(100_000) && s.start_us < from + 2_000_000)
            .collect();
        let max = window.iter().map(|s| s.latency_us).max().unwrap_or(0);
        let errors = window.iter().filter(|s| s.is_error()).count();
        println!(
            "  {label} at {t:.2}s: {} requests in the next 2 s, slowest {:.1} ms, {errors} errors",
            window.len(),
            max as f64 / 1000.0
        );
    }
    run::write_csv(&out.join("chaos.csv"), &report_.samples)?;
    let svg = out.join("chaos-timeline.svg");
    plot::timeline(
        &svg,
        "Latency during chaos, per 100 ms (red crosses: client-visible errors)",
        &windows(&report_.samples, 100_000),
        &marks,
    )?;
    // At rest, the replicas' order files must converge.
    let control3 = control.clone();
    let digests = actix_rt::System::new().block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = control3.digests().await?;
            let same = d
                .windows(2)
                .all(|w| (w[0].bytes, &w[0].sha256) == (w[1].bytes, &w[1].sha256));
            if same || Instant::now() > deadline {
                return Ok::<_, anyhow::Error>((same, d));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    for d in &digests.1 {
        println!("  {}: {} bytes, sha256 {}", d.name, d.bytes, d.sha256);
    }
    // At rest, every catalog (a group's standbys follow the order log) holds the same table.
    let control4 = control.clone();
    let scheme = if base.frontend.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let tables = actix_rt::System::new().block_on(async move {
        let client = crate::control::cluster_client(Duration::from_secs(5));
        let catalogs: Vec<(String, String)> = control4
            .processes()
            .await?
            .into_iter()
            .filter(|p| p.name.starts_with("catalog"))
            .map(|p| (p.name, format!("{scheme}://{}", p.addr)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for (name, url) in &catalogs {
                let s = json_get::<wire::DataBody<CatalogStatus>>(
                    &client,
                    &format!("{url}{}", wire::STATUS),
                )
                .await
                .map(|b| b.data);
                seen.push((name.clone(), s.ok().map(|s| table_of(&s))));
            }
            let same = seen.iter().all(|(_, t)| t.is_some() && *t == seen[0].1);
            if same || Instant::now() > deadline {
                return Ok::<_, anyhow::Error>((same, seen));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    for (name, t) in &tables.1 {
        match t {
            Some((last, _)) => println!("  {name}: {last} trades"),
            None => println!("  {name}: no answer"),
        }
    }
    let errors: u64 = summaries.iter().map(|s| s.errors).sum();
    println!(
        "replica files {}; catalog tables {}; {errors} client-visible errors; {} mismatches; wrote {} and {}",
        if digests.0 { "identical" } else { "DIFFER" },
        if tables.0 { "identical" } else { "DIFFER" },
        report_.mismatches.len(),
        out.join("chaos.csv").display(),
        svg.display()
    );
    Ok(digests.0 && tables.0 && report_.mismatches.is_empty())
}

/// A catalog's table as `chaos` compares it: its last trade and every stock's quantity and
/// volume.
fn table_of(s: &CatalogStatus) -> (u64, Vec<(String, u64, u64)>) {
    (
        s.last_trade,
        s.stocks
            .iter()
            .map(|x| (x.name.clone(), x.quantity, x.volume))
            .collect(),
    )
}

/// Groups samples into windows of `width_us` by start time.
pub fn windows(samples: &[stats::Sample], width_us: u64) -> Vec<plot::Window> {
    let mut by: std::collections::BTreeMap<u64, (hdrhistogram::Histogram<u64>, u64)> =
        Default::default();
    for s in samples {
        let e = by
            .entry(s.start_us / width_us)
            .or_insert_with(|| (histogram(), 0));
        e.0.saturating_record(s.latency_us.max(1));
        e.1 += s.is_error() as u64;
    }
    by.into_iter()
        .map(|(k, (h, errors))| plot::Window {
            t: (k * width_us) as f64 / 1e6,
            p50: h.value_at_quantile(0.5) as f64 / 1000.0,
            max: h.max() as f64 / 1000.0,
            errors,
        })
        .collect()
}

/// What `bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKind {
    /// `GET /stocks/GameStart` (a cache hit when the cache is on).
    Lookup,
    /// `POST /orders`, alternating buy and sell of random stocks.
    Trade,
    /// `GET /orders/{n}` for n below `--orders`.
    Query,
    /// etcd's `POST /v3/kv/put` through its JSON gateway, a fresh key each time: a durable,
    /// replicated write to compare a trade with (`--url` is an etcd member's client URL).
    EtcdPut,
}

/// Closed-loop result.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Requests answered (any status).
    pub requests: u64,
    /// Failed requests (no answer or a status other than 2xx/409).
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency summary.
    pub summary: Summary,
}

/// `bench`: `connections` closed loops for `duration` against `base`.
pub fn bench(
    base: &str,
    kind: BenchKind,
    connections: usize,
    duration: Duration,
    orders: u64,
    threads: usize,
) -> anyhow::Result<BenchResult> {
    anyhow::ensure!(connections > 0, "--connections must be at least 1");
    let threads = threads.clamp(1, connections);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let base = base.to_string();
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let loops: Vec<usize> = (t..connections).step_by(threads).collect();
                    let client = run::client(Duration::from_secs(10), loops.len());
                    let tasks = loops.into_iter().map(|i| {
                        let client = client.clone();
                        let base = base.clone();
                        async move {
                            let mut h = histogram();
                            let mut errors = 0u64;
                            let mut n = 0u64;
                            let mut rng = StdRng::seed_from_u64(i as u64);
                            while start.elapsed() < duration {
                                let t = Instant::now();
                                let res = match kind {
                                    BenchKind::Lookup => {
                                        let path = wire::stock_path("GameStart");
                                        client.get(format!("{base}{path}")).send().await
                                    }
                                    BenchKind::Query => {
                                        let k = rng.gen_range(0..orders.max(1));
                                        let path = wire::order_path(k);
                                        client.get(format!("{base}{path}")).send().await
                                    }
                                    BenchKind::EtcdPut => {
                                        use base64::Engine;
                                        let b64 = base64::engine::general_purpose::STANDARD;
                                        let put = serde_json::json!({
                                            "key": b64.encode(format!("bench/{i}/{n}")),
                                            "value": b64.encode("GameStart buy 1"),
                                        });
                                        client
                                            .post(format!("{base}/v3/kv/put"))
                                            .send_json(&put)
                                            .await
                                    }
                                    BenchKind::Trade => {
                                        let name = run::DEFAULT_STOCKS
                                            [rng.gen_range(0..run::DEFAULT_STOCKS.len())];
                                        let kind = if n.is_multiple_of(2) {
                                            TradeKind::Sell
                                        } else {
                                            TradeKind::Buy
                                        };
                                        let order = OrderRequest {
                                            name: name.to_string(),
                                            quantity: 1,
                                            kind,
                                        };
                                        client
                                            .post(format!("{base}{}", wire::ORDERS))
                                            .send_json(&order)
                                            .await
                                    }
                                };
                                let ok = match res {
                                    Ok(mut r) => {
                                        let _ = r.body().await;
                                        r.status().is_success() || r.status().as_u16() == 409
                                    }
                                    Err(_) => false,
                                };
                                h.saturating_record(t.elapsed().as_micros().max(1) as u64);
                                errors += !ok as u64;
                                n += 1;
                            }
                            (h, errors)
                        }
                    });
                    join_all(tasks).await
                })
            })
        })
        .collect();
    let mut total = histogram();
    let mut errors = 0;
    for h in handles {
        for (hist, e) in h
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))?
        {
            total.add(&hist).map_err(|e| anyhow::anyhow!("{e}"))?;
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = total.len();
    Ok(BenchResult {
        requests,
        errors,
        rps: requests as f64 / elapsed,
        summary: Summary {
            kind: match kind {
                BenchKind::Lookup => Kind::Lookup,
                BenchKind::Trade | BenchKind::EtcdPut => Kind::Trade,
                BenchKind::Query => Kind::Query,
            },
            count: requests,
            errors,
            rejected: 0,
            mean_us: total.mean(),
            p50_us: total.value_at_quantile(0.5),
            p90_us: total.value_at_quantile(0.9),
            p99_us: total.value_at_quantile(0.99),
            max_us: total.max(),
        },
    })
}

/// A plain actix-web server answering a fixed stock JSON on `/stocks/{name}`: the machine's
/// limit, measured in the same run as the exchange.
pub fn plain_server(addr: &str, workers: usize) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let body =
        r#"{"data":{"name":"GameStart","price":15.99,"quantity":100,"volume":0,"version":0}}"#;
    actix_rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new().route(
                wire::STOCK,
                web::get().to(move || async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }),
            )
        })
        .workers(workers)
        .bind(addr)?
        .run()
        .await
    })?;
    Ok(())
}

/// `audit`: checks conservation at rest: for every stock, the catalog's quantity is its
/// initial quantity minus the buys plus the sells in the order log, and its volume the sum of
/// all quantities traded. Reads the log from a replica page by page. Returns the problems.
pub fn audit(catalog: &str, replica: &str, initial: u64) -> anyhow::Result<(usize, Vec<String>)> {
    actix_rt::System::new().block_on(async {
        let client = crate::control::cluster_client(Duration::from_secs(30));
        let status: CatalogStatus = json_get::<wire::DataBody<CatalogStatus>>(
            &client,
            &format!("{catalog}{}", wire::STATUS),
        )
        .await?
        .data;
        let mut sums: std::collections::HashMap<String, (i64, u64)> =
            std::collections::HashMap::new();
        let mut after: Option<EntryId> = None;
        let mut count = 0;
        let url = format!("{replica}{}", wire::FETCH);
        loop {
            let fetch = Fetch {
                after,
                limit: 10_000,
                max_bytes: wire::MAX_BODY_BYTES * 16,
            };
            let mut res = client
                .post(&url)
                .send_json(&fetch)
                .await
                .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
            let body = res.body().limit(256 << 20).await?;
            let page: DataBody<Fetched> = serde_json::from_slice(&body)
                .with_context(|| format!("POST {url}: unexpected answer {}", res.status()))?;
            let orders = page
                .data
                .orders
                .context("the replica's log changed while reading it")?;
            if orders.is_empty() {
                break;
            }
            for o in orders {
                let e = sums.entry(o.name.clone()).or_default();
                e.0 += match o.kind {
                    TradeKind::Buy => -(o.quantity as i64),
                    TradeKind::Sell => o.quantity as i64,
                };
                e.1 += o.quantity;
                after = Some(EntryId {
                    number: o.number,
                    epoch: o.epoch,
                });
                count += 1;
            }
        }
        let mut problems = Vec::new();
        for s in &status.stocks {
            let name = s.name.as_str();
            let (delta, volume) = sums.get(name).copied().unwrap_or_default();
            let want = initial as i64 + delta;
            let (q, v) = (s.quantity as i64, s.volume);
            if q != want || v != volume {
                problems.push(format!(
                    "{name}: catalog quantity {q} volume {v}, log says {want} and {volume}"
                ));
            }
        }
        Ok((count, problems))
    })
}

/// `failover`: SIGKILLs the leader through the launcher, then times one trade from the kill
/// to its answer (the front end retries it on the new leader), and restarts the replica.
/// Repeats `rounds` times; returns the times in milliseconds.
pub fn failover(frontend: &str, control: &Control, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let frontend = frontend.to_string();
    let control = control.clone();
    actix_rt::System::new().block_on(async move {
        let client = run::client(Duration::from_secs(30), 1);
        let mut times = Vec::new();
        for round in 0..rounds {
            let status = frontend_status(&client, &frontend).await?;
            let leader = status.leader.context("no leader to kill")?;
            let name = format!("order-{leader}");
            // Warm the connection to the front end so the figure is the failover alone.
            let _ = client
                .get(format!("{frontend}{}", wire::stock_path("GameStart")))
                .send()
                .await;
            control.kill(&name).await?;
            let t = Instant::now();
            let order = OrderRequest {
                name: "GameStart".into(),
                quantity: 1,
                kind: if round % 2 == 0 {
                    TradeKind::Sell
                } else {
                    TradeKind::Buy
                },
            };
            let mut res = client
                .post(format!("{frontend}{}", wire::ORDERS))
                .send_json(&order)
                .await
                .map_err(|e| anyhow::anyhow!("trade after killing the leader: {e}"))?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let body = res.body().await.unwrap_or_default();
            anyhow::ensure!(
                res.status().is_success(),
                "trade after killing {name}: {}",
                String::from_utf8_lossy(&body)
            );
            println!(
                "round {}: killed {name} (leader); next trade answered after {ms:.1} ms",
                round + 1
            );
            times.push(ms);
            control.start(&name).await?;
            // Wait until the returning replica leads again, so every round starts alike.
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let s = frontend_status(&client, &frontend).await?;
                if s.serving_leader() == Some(leader) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(times)
    })
}
