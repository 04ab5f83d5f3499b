//! `tradenet`: one binary for every Trade-Net process. It parses flags, loads the layered
//! configuration and hands a bound listener to the service's `run`.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tradenet::config::Config;
use tradenet::dirlock::DirLock;

/// The package version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TRADENET_COMMIT"),
    ")"
);

/// Trade-Net: a fault-tolerant stock exchange (catalog, replicated orders, cached front end).
///
/// Every process reads the same TOML configuration: the embedded default (everything on
/// loopback) unless --config names a file. Any key can be overridden from the environment as
/// TRADENET__SECTION__KEY (e.g. TRADENET__FRONTEND__CACHE_SIZE=0); a flag that sets a key
/// shows its variable, and the flag wins over it. Log detail: RUST_LOG.
#[derive(Parser, Debug)]
#[command(version = VERSION, about, long_about)]
struct Cli {
    /// TOML configuration file, layered over the embedded default.
    #[arg(
        long,
        short,
        global = true,
        value_name = "PATH",
        env = "TRADENET_CONFIG"
    )]
    config: Option<PathBuf>,
    /// Folder for every service's files (overrides data_dir).
    #[arg(long, global = true, value_name = "DIR", env = "TRADENET__DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the catalog service (the stock table, durable, pushing invalidations), or one
    /// catalog of a catalog group (`[[catalogs]]`: the front ends make the highest-id live one
    /// primary; the others follow the order log as standbys and serve nothing).
    Catalog {
        /// Listen address (overrides catalog.addr; one catalog only).
        #[arg(long, value_name = "HOST:PORT", env = "TRADENET__CATALOG__ADDR")]
        addr: Option<String>,
        /// Which of the [[catalogs]] to run (needed when the configuration lists several).
        #[arg(long)]
        id: Option<u64>,
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
        #[arg(long, value_name = "HOST:PORT", env = "TRADENET__FRONTEND__ADDR")]
        addr: Option<String>,
        /// LRU cache entries; 0 turns the cache off (overrides frontend.cache_size).
        #[arg(long, env = "TRADENET__FRONTEND__CACHE_SIZE")]
        cache_size: Option<usize>,
    },
    /// Start every process of the configuration, wait until each is healthy, print the URLs;
    /// Ctrl-C or SIGTERM stops them all.
    ///
    /// The processes inherit the environment, and the flags given here reach them as the
    /// variables they show (--config as TRADENET_CONFIG, ...).
    Up {
        /// LRU cache entries for the front end; 0 turns the cache off.
        #[arg(long, env = "TRADENET__FRONTEND__CACHE_SIZE")]
        cache_size: Option<usize>,
    },
    /// Ask every process of the configuration for its readiness and status and print them as
    /// a table (process, address, up, ready, role, epoch, last order, how far behind, why not
    /// ready). Exits 0 when every process is ready, 1 when one is not or the configuration
    /// is bad.
    Status {
        /// Print JSON (each row with the process's own /status) instead of the table.
        #[arg(long)]
        json: bool,
        /// How long to wait for each process, in milliseconds.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Load the configuration (embedded default, then --config, then TRADENET__* variables),
    /// check it (addresses, ids, durations, the secret file, TLS files) and print the
    /// effective result as TOML, the secret masked. Exits non-zero on any error, saying which.
    CheckConfig,
    /// Print a completion script for a shell (e.g. `tradenet completions bash >
    /// /etc/bash_completion.d/tradenet`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() {
    // A panic anywhere (an actor's handler, a writer thread) takes the whole process down with
    // a non-zero status, so that its supervisor (systemd, the launcher, Kubernetes) restarts it
    // and it recovers from its files; a process whose actor died but whose HTTP workers still
    // answer would be a zombie.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("tradenet: a thread panicked; stopping the process so that it is restarted");
        std::process::exit(101);
    }));
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|e| e.format(&mut Cli::command()))
        .unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli, &matches) {
        eprintln!("tradenet: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    let mut overrides: Vec<(&str, String)> = Vec::new();
    if let Some(dir) = &cli.data_dir {
        overrides.push(("data_dir", dir.display().to_string()));
    }
    match &cli.command {
        Command::Catalog { addr: Some(a), .. } => overrides.push(("catalog.addr", a.clone())),
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
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "tradenet",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    match &cli.command {
        Command::CheckConfig => return check_config(&config, cli.config.as_deref()),
        Command::Status { json, timeout_ms } => {
            tradenet::http::set_tls(config.tls()?);
            let rows = tradenet::status::collect(&config, Duration::from_millis(*timeout_ms));
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", tradenet::status::table(&rows));
            }
            if rows.iter().any(|r| !r.ready) {
                std::process::exit(1);
            }
            return Ok(());
        }
        _ => {}
    }
    // actix's own start-up lines (workers, services) are noise beside ours: warn and above,
    // unless the configured filter (or RUST_LOG) says otherwise.
    let filter = if config.log.contains("actix") {
        config.log.clone()
    } else {
        format!(
            "{},actix_server=warn,actix_web=warn,actix_http=warn",
            config.log
        )
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&filter))
        .format_timestamp_millis()
        .init();
    let mut secret = config.secret()?;
    if matches!(cli.command, Command::Up { .. }) && secret.is_none() {
        secret = Some(cluster_secret(&config)?);
    }
    tradenet::http::set_secret(secret.clone());
    tradenet::http::set_tls(config.tls()?);
    match cli.command {
        Command::Up { .. } => {
            let mut env = flags_as_env(matches);
            if let Some(secret) = secret {
                env.push(("TRADENET__CLUSTER__SECRET".into(), secret.into()));
            }
            tradenet::launcher::run(&config, &env)
        }
        Command::Catalog { id, .. } => {
            let id = match id {
                Some(id) => id,
                None if config.catalog_group() => anyhow::bail!(
                    "this configuration lists {} catalogs ([[catalogs]]): say which to run with --id",
                    config.catalogs.len()
                ),
                None => config.catalog_members()[0].id,
            };
            let member = config.catalog_member(id)?;
            let name = config.catalog_name(id);
            config.require_secret_beyond_loopback(&name, &member.addr)?;
            let _lock = DirLock::acquire(&config.service_dir(&name), &name)?;
            let listener = tradenet::http::bind(&member.addr)?;
            actix_web::rt::System::new().block_on(tradenet::catalog::run(config, id, listener))
        }
        Command::Order { id } => {
            let name = format!("order-{id}");
            config.require_secret_beyond_loopback(&name, &config.replica(id)?.addr)?;
            let _lock = DirLock::acquire(&config.service_dir(&name), &name)?;
            let listener = tradenet::http::bind(&config.replica(id)?.addr)?;
            actix_web::rt::System::new().block_on(tradenet::replica::run(config, id, listener))
        }
        Command::Status { .. } | Command::CheckConfig | Command::Completions { .. } => {
            unreachable!("answered above")
        }
        Command::Frontend { .. } => {
            config.require_secret_beyond_loopback("frontend", &config.frontend.addr)?;
            let listener = tradenet::http::bind(&config.frontend.addr)?;
            actix_web::rt::System::new().block_on(tradenet::frontend::run(config, listener))
        }
    }
}

/// `check-config`: everything `Config::load` checks, plus what a process checks when it
/// starts (the secret file, the TLS files); prints the effective configuration.
fn check_config(config: &Config, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let secret = config.secret()?;
    config.tls()?;
    let mut shown = config.clone();
    if !shown.cluster.secret.is_empty() {
        shown.cluster.secret = "<set, masked>".into();
    }
    let layers = match file {
        Some(f) => format!("embedded default, {}, TRADENET__* environment", f.display()),
        None => "embedded default, TRADENET__* environment".to_string(),
    };
    println!("# effective configuration ({layers})\n");
    print!("{}", toml::to_string(&shown)?);
    let members = config.catalog_members();
    let beyond: Vec<&str> = members
        .iter()
        .map(|c| c.addr.as_str())
        .chain(std::iter::once(config.frontend.addr.as_str()))
        .chain(config.replicas.iter().map(|r| r.addr.as_str()))
        .filter(|a| !tradenet::config::is_loopback(a))
        .collect();
    eprintln!(
        "tradenet: configuration OK: {} replicas, secret {}, TLS {}{}",
        config.replicas.len(),
        if secret.is_some() {
            "set"
        } else {
            "not set (up makes one)"
        },
        if config.tls.cert.is_empty() {
            "off"
        } else {
            "on"
        },
        if beyond.is_empty() {
            String::new()
        } else {
            format!("; listening beyond loopback: {}", beyond.join(", "))
        }
    );
    Ok(())
}

/// The secret `tradenet up` hands its children when none is configured: the one in
/// `<data_dir>/cluster.secret`, made (256 random bits, readable by the owner only) on first use.
fn cluster_secret(config: &Config) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = config.data_dir.join("cluster.secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if !text.trim().is_empty() {
            return Ok(text.trim().to_string());
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", config.data_dir.display()))?;
    let secret = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{secret}")?;
    log::info!(
        "made a cluster secret in {} for the processes `up` starts (internal and control calls need it)",
        path.display()
    );
    Ok(secret)
}

/// The flags given on the command line that name an `env` variable, as those variables: `up`
/// sets them on its children, whose own flags and configuration layer read them back.
fn flags_as_env(matches: &ArgMatches) -> Vec<(OsString, OsString)> {
    let cli = Cli::command();
    let Some((name, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    // Global flags are defined on the top level and propagated into the subcommand's matches.
    let subcommand_args = cli
        .find_subcommand(name)
        .into_iter()
        .flat_map(|c| c.get_arguments());
    cli.get_arguments()
        .chain(subcommand_args)
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let given = sub.try_contains_id(id).unwrap_or(false)
                && sub.value_source(id) == Some(ValueSource::CommandLine);
            let value = sub.get_raw(id).filter(|_| given)?.next()?;
            Some((arg.get_env()?.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(args: &[&str]) -> Vec<(String, String)> {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        flags_as_env(&matches)
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect()
    }

    #[test]
    fn up_hands_its_flags_to_the_children_as_their_variables() {
        let env = env_of(&[
            "tradenet",
            "--config",
            "x.toml",
            "up",
            "--cache-size=0",
            "--data-dir",
            "d",
        ]);
        assert_eq!(
            env,
            [
                ("TRADENET_CONFIG", "x.toml"),
                ("TRADENET__DATA_DIR", "d"),
                ("TRADENET__FRONTEND__CACHE_SIZE", "0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(env_of(&["tradenet", "up"]), []);
    }

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
