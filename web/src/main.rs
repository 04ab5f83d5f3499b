//! `tradenet`: one binary for every Trade-Net process. It parses flags, loads the layered
//! configuration and hands a bound listener to the service's `run`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tradenet::config::Config;

/// Trade-Net: a fault-tolerant stock exchange (catalog, replicated orders, cached front end).
///
/// Every process reads the same TOML configuration: the embedded default (everything on
/// loopback) unless --config names a file. Any key can be overridden from the environment as
/// TRADENET__SECTION__KEY (e.g. TRADENET__FRONTEND__CACHE_SIZE=0). Log detail: RUST_LOG.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file, layered over the embedded default.
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Folder for every service's files (overrides data_dir).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the catalog service (the stock table, durable, pushing invalidations).
    Catalog {
        /// Listen address (overrides catalog.addr).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
    },
    /// Run one order replica.
    Order {
        /// The replica's id, one of the [[replicas]] in the configuration.
        #[arg(long)]
        id: u64,
    },
    /// Run a front end (public REST API, LRU cache, leader supervisor).
    Frontend {
        /// Listen address (overrides frontend.addr; also where the catalog pushes to).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// LRU cache entries; 0 turns the cache off (overrides frontend.cache_size).
        #[arg(long)]
        cache_size: Option<usize>,
    },
    /// Start every process of the configuration, wait until each is healthy, print the URLs;
    /// Ctrl-C or SIGTERM stops them all.
    Up {
        /// LRU cache entries for the front end; 0 turns the cache off.
        #[arg(long)]
        cache_size: Option<usize>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("tradenet: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides: Vec<(&str, String)> = Vec::new();
    if let Some(dir) = &cli.data_dir {
        overrides.push(("data_dir", dir.display().to_string()));
    }
    match &cli.command {
        Command::Catalog { addr: Some(a) } => overrides.push(("catalog.addr", a.clone())),
        Command::Frontend { addr, cache_size } => {
            if let Some(a) = addr {
                overrides.push(("frontend.addr", a.clone()));
            }
            if let Some(n) = cache_size {
                overrides.push(("frontend.cache_size", n.to_string()));
            }
        }
        Command::Up {
            cache_size: Some(n),
        } => overrides.push(("frontend.cache_size", n.to_string())),
        _ => {}
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&config.log))
        .format_timestamp_millis()
        .init();
    match cli.command {
        Command::Up { .. } => {
            // Flags reach the children as environment overrides.
            let env: Vec<(String, String)> = overrides
                .iter()
                .map(|(k, v)| {
                    (
                        format!("TRADENET__{}", k.replace('.', "__").to_uppercase()),
                        v.clone(),
                    )
                })
                .collect();
            tradenet::launcher::run(cli.config.as_deref(), &config, &env)
        }
        Command::Catalog { .. } => {
            let listener = tradenet::http::bind(&config.catalog.addr)?;
            actix_web::rt::System::new().block_on(tradenet::catalog::run(config, listener))
        }
        Command::Order { id } => {
            let listener = tradenet::http::bind(&config.replica(id)?.addr)?;
            actix_web::rt::System::new().block_on(tradenet::replica::run(config, id, listener))
        }
        Command::Frontend { .. } => {
            let listener = tradenet::http::bind(&config.frontend.addr)?;
            actix_web::rt::System::new().block_on(tradenet::frontend::run(config, listener))
        }
    }
}
