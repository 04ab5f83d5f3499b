//! `tradenet-client`: parses flags and runs one experiment against a Trade-Net front end.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tradenet_client::control::Control;
use tradenet_client::experiments::{self, BenchKind, ChaosOpts};
use tradenet_client::run::{self, RunOpts, DEFAULT_STOCKS};

/// Load, verification and the course's experiments for Trade-Net.
///
/// Start the exchange first (`tradenet up`), then run one of the subcommands. `sweep` and
/// `chaos` also use the launcher's control API (default http://127.0.0.1:8079) to reset the
/// exchange, restart the front end and kill and restart replicas.
///
/// Exit status: 0 when every request was answered (409, not enough to buy, is a normal
/// answer) and every order read back as placed; 2 when requests failed or orders read back
/// wrong (the first failure is printed); 1 on a usage or setup error.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// The CA to trust for `https://` addresses (the cluster's `[tls] ca`, PEM); nothing else
    /// is trusted.
    #[arg(long, global = true, env = "TRADENET__TLS__CA")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Load {
    /// Front end base URL; several (comma-separated or repeated) make each session move to the
    /// next when its front end stops answering, sending the same request again (a trade with
    /// the same Idempotency-Key), so a front end's death costs latency, not errors.
    #[arg(long, default_value = "http://127.0.0.1:8081", value_delimiter = ',', num_args = 1..)]
    frontend: Vec<String>,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Lookups per session.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Probability of trading after a lookup that shows quantity above zero.
    #[arg(long, default_value_t = 0.6)]
    p: f64,
    /// Seed for the random choices (same seed, same choices).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// OS threads for the sessions (one actix System each).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timeout of one request, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    timeout_ms: u64,
}

impl Load {
    fn opts(&self) -> RunOpts {
        RunOpts {
            frontend: self.frontend[0].trim_end_matches('/').to_string(),
            others: self.frontend[1..]
                .iter()
                .map(|f| f.trim_end_matches('/').to_string())
                .collect(),
            clients: self.clients,
            iterations: self.iterations,
            p: self.p,
            seed: self.seed,
            stocks: DEFAULT_STOCKS.iter().map(|s| s.to_string()).collect(),
            threads: self.threads,
            progress: true,
            time_limit: None,
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Sessions that look up random stocks and trade with probability p; every order placed
    /// is read back and compared. Prints latency per request type and the mismatch count.
    Run {
        #[command(flatten)]
        load: Load,
        /// Write one CSV row per request here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// `run` for each p with the cache on, then off, each half on a fresh exchange; writes
    /// sweep.csv and SVG plots.
    Sweep {
        #[command(flatten)]
        load: Load,
        /// The launcher's control API.
        #[arg(long, default_value = "http://127.0.0.1:8079")]
        control: String,
        /// Cache size for the "cache on" half.
        #[arg(long, default_value_t = 10)]
        cache_size: usize,
        /// Trade probabilities, comma-separated.
        #[arg(long, default_value = "0,0.2,0.4,0.6,0.8", value_delimiter = ',')]
        ps: Vec<f64>,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Keep the exchange's data: do not reset it (every service restarted on empty data,
        /// through the control API) before each half. The halves then start from different
        /// stock quantities and are not comparable.
        #[arg(long)]
        keep_data: bool,
    },
    /// Compares the sweep.csv of several runs (e.g. loopback and an emulated network): the
    /// cache's gain on lookups per p, as a table and sweep-compare.svg.
    SweepCompare {
        /// LABEL=PATH of a sweep.csv, once per run.
        #[arg(required = true, value_parser = label_path)]
        runs: Vec<(String, PathBuf)>,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// A lookup sequence that forces evictions, showing the cache's LRU order after each step.
    LruTrace {
        /// Front end base URL.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        frontend: String,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// A run during which replicas (the leader first) are SIGKILLed and restarted.
    Chaos {
        #[command(flatten)]
        load: Load,
        /// The launcher's control API.
        #[arg(long, default_value = "http://127.0.0.1:8079")]
        control: String,
        /// Total run time, seconds.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Kill a replica every this many seconds.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
        /// Restart it after this many seconds.
        #[arg(long, default_value_t = 2.0)]
        down: f64,
        /// Which processes may be killed, comma-separated: replicas, catalogs (a catalog
        /// group's primary first), frontend (give the client a second front end with
        /// --frontend A,B so that its sessions move over).
        #[arg(long, value_delimiter = ',', default_value = "replicas", value_parser = ["replicas", "catalogs", "frontend"])]
        kill: Vec<String>,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Closed-loop maximum throughput for one request type; prints `figure` lines.
    Bench {
        /// Base URL (a front end, or the plain server for lookups).
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        url: String,
        /// Request type.
        #[arg(long, value_enum, default_value_t = BenchKind::Lookup)]
        kind: BenchKind,
        /// Concurrent connections (closed loops).
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// For queries: order numbers are drawn below this.
        #[arg(long, default_value_t = 1)]
        orders: u64,
        /// OS threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Name printed in the `figure` lines.
        #[arg(long, default_value = "bench")]
        name: String,
    },
    /// Checks conservation at rest: catalog quantities and volumes against a replica's log.
    Audit {
        /// Catalog base URL.
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        catalog: String,
        /// A replica's base URL (its log is read).
        #[arg(long, default_value = "http://127.0.0.1:8093")]
        replica: String,
        /// Every stock's initial quantity.
        #[arg(long, default_value_t = 100)]
        initial: u64,
    },
    /// Kills the leader through the launcher and times the next trade; prints `figure` lines.
    Failover {
        /// Front end base URL.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        frontend: String,
        /// The launcher's control API.
        #[arg(long, default_value = "http://127.0.0.1:8079")]
        control: String,
        /// How many leader kills.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Benchmark helper: writes a valid order log of N orders (epoch 1), as a replica would.
    GenLog {
        /// Number of orders.
        #[arg(long)]
        orders: u64,
        /// The file to write (an `orders.jsonl`).
        #[arg(long)]
        out: PathBuf,
    },
    /// A plain actix-web server answering a fixed stock JSON: the machine's limit.
    Plain {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run_cli(Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            eprintln!("tradenet-client: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<bool> {
    if let Some(ca) = &cli.ca {
        tradenet_client::control::trust_ca(ca)?;
    }
    match cli.command {
        Cmd::Run { load, csv } => {
            let r = run::run(&load.opts(), Arc::default())?;
            experiments::report(&r);
            if let Some(path) = csv {
                run::write_csv(&path, &r.samples)?;
                println!("wrote {}", path.display());
            }
            let failed = r.samples.iter().filter(|s| s.is_error()).count();
            if let Some(first) = &r.first_error {
                eprintln!(
                    "tradenet-client: {failed} of {} requests failed (409, not enough to buy, is the market's answer and does not count); the first: {first}",
                    r.samples.len()
                );
            }
            Ok(r.mismatches.is_empty() && failed == 0)
        }
        Cmd::Sweep {
            load,
            control,
            cache_size,
            ps,
            out,
            keep_data,
        } => {
            let mut opts = load.opts();
            opts.progress = false;
            let control = Control::new(&control);
            experiments::sweep(&opts, &control, cache_size, &ps, &out, !keep_data)?;
            Ok(true)
        }
        Cmd::SweepCompare { runs, out } => {
            experiments::sweep_compare(&runs, &out)?;
            Ok(true)
        }
        Cmd::LruTrace { frontend, out } => {
            let stocks: Vec<String> = DEFAULT_STOCKS.iter().map(|s| s.to_string()).collect();
            experiments::lru_trace(frontend.trim_end_matches('/'), &stocks, &out)?;
            Ok(true)
        }
        Cmd::Chaos {
            load,
            control,
            duration,
            every,
            down,
            kill,
            out,
        } => {
            let mut opts = load.opts();
            opts.progress = false;
            let chaos = ChaosOpts {
                every: Duration::from_secs_f64(every),
                down: Duration::from_secs_f64(down),
                duration: Duration::from_secs_f64(duration),
                kill,
            };
            experiments::chaos(&opts, &Control::new(&control), &chaos, &out)
        }
        Cmd::Bench {
            url,
            kind,
            connections,
            duration,
            orders,
            threads,
            name,
        } => {
            let r = experiments::bench(
                url.trim_end_matches('/'),
                kind,
                connections,
                Duration::from_secs_f64(duration),
                orders,
                threads,
            )?;
            let s = &r.summary;
            println!("figure {name}_rps {:.0} req/s", r.rps);
            println!("figure {name}_p50 {:.1} us", s.p50_us as f64);
            println!("figure {name}_p99 {:.1} us", s.p99_us as f64);
            println!("figure {name}_errors {} count", r.errors);
            Ok(true)
        }
        Cmd::Audit {
            catalog,
            replica,
            initial,
        } => {
            let (orders, problems) = experiments::audit(
                catalog.trim_end_matches('/'),
                replica.trim_end_matches('/'),
                initial,
            )?;
            for p in &problems {
                println!("  {p}");
            }
            println!(
                "conservation {} over {orders} orders",
                if problems.is_empty() {
                    "holds"
                } else {
                    "FAILS"
                }
            );
            Ok(problems.is_empty())
        }
        Cmd::Failover {
            frontend,
            control,
            rounds,
        } => {
            let times = experiments::failover(
                frontend.trim_end_matches('/'),
                &Control::new(&control),
                rounds,
            )?;
            let max = times.iter().copied().fold(0.0, f64::max);
            let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
            println!("figure failover_max {max:.1} ms");
            println!("figure failover_mean {mean:.1} ms");
            Ok(true)
        }
        Cmd::GenLog { orders, out } => {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
            for n in 0..orders {
                let (name, kind) = (
                    DEFAULT_STOCKS[(n % 16) as usize],
                    if n % 2 == 0 { "sell" } else { "buy" },
                );
                writeln!(
                    w,
                    "{{\"number\":{n},\"epoch\":1,\"rid\":\"{:032x}\",\"name\":\"{name}\",\"type\":\"{kind}\",\"quantity\":1,\"cseq\":{}}}",
                    0x6e6e_0000_0000_0000_0000u128 + n as u128,
                    n + 1
                )?;
            }
            w.flush()?;
            println!("wrote {orders} orders to {}", out.display());
            Ok(true)
        }
        Cmd::Plain { addr, workers } => {
            experiments::plain_server(&addr, workers)?;
            Ok(true)
        }
    }
}

/// `LABEL=PATH`, as `sweep-compare` takes its runs.
fn label_path(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((label, path)) if !label.is_empty() && !path.is_empty() => {
            Ok((label.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected LABEL=PATH, got {s:?}")),
    }
}
