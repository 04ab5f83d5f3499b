//! `tradenet up`: the launcher that runs the whole exchange on one machine.
//!
//! It owns the child processes (catalog, one order replica per `[[replicas]]` entry, front end)
//! for their whole life: it starts each as `tradenet <service>`, forwards their output to its
//! own stderr with a `[name]` prefix, waits until every one answers `/ready`, prints the URLs,
//! and on Ctrl-C / SIGTERM stops them all (SIGTERM, then SIGKILL after 5 s) and reaps them.
//! Children are tied to the launcher with `PR_SET_PDEATHSIG`, so even a SIGKILLed launcher
//! leaves no service behind holding a port. A child that exits on its own after start-up is
//! only logged: chaos testing kills replicas on purpose and the rest of the exchange is meant
//! to keep running.
//!
//! With `[launcher] wrap` set (e.g. `ip netns exec tn-{name}`), each child is started under
//! that command, which must exec it (so the pid the launcher holds is the service's): this is
//! how `bench/evaluate.sh --netns` runs every service in a network namespace of its own.
//!
//! Settings reach the children through the environment: they inherit the launcher's, plus the
//! variables `main` names for the flags given to `up` (`TRADENET_CONFIG`,
//! `TRADENET__SECTION__KEY`), which their own flags and configuration layer read back.
//!
//! The main thread runs the supervising loop below and is the only one that spawns children
//! (their parent-death signal is tied to it). [`process`] owns the processes themselves and
//! [`control`] the HTTP control API, which sends this loop commands over a channel.

pub mod console;
pub mod control;
pub mod process;

use anyhow::{bail, Context};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::OnceLock;

use crate::config::{url, Config};
use crate::error::ApiError;
use control::{conflict, Answer, Command, ControlServer, Reply};
use process::{describe, stop_all, wait_ready, Service, POLL};
use tradenet_actors::wire::control::{Digest, Process, ProcessPid};
use tradenet_actors::wire::ErrorKind;

/// Set by the Ctrl-C / SIGTERM handler.
static STOP: AtomicBool = AtomicBool::new(false);
/// The handler can be installed once per process; remembers how that went.
static HANDLER: OnceLock<Result<(), String>> = OnceLock::new();

/// Starts every process the config names, waits for each to answer /ready, prints URLs,
/// serves the control API, and stops them all on Ctrl-C / SIGTERM. Blocks until then.
///
/// `child_env` pairs (e.g. `TRADENET_CONFIG=exchange.toml`,
/// `TRADENET__FRONTEND__CACHE_SIZE=0`, from flags) are set on every child on top of the
/// launcher's own environment. Must be called from the thread that lives as long as the
/// launcher (the main thread): the children's parent-death signal is tied to the thread that
/// spawns them.
pub fn run(config: &Config, child_env: &[(OsString, OsString)]) -> anyhow::Result<()> {
    install_signal_handler()?;
    STOP.store(false, Ordering::SeqCst);

    let exe = std::env::current_exe().context("cannot find the tradenet executable")?;
    // Dropping the launcher stops every child, on the error paths too.
    let mut launcher = Launcher::start(config, exe, child_env)?;
    if !launcher.wait_ready()? {
        log::info!("stop requested during start-up; stopping everything");
        return Ok(());
    }
    print_urls(config);

    let mut control = match config.launcher.control_addr.as_str() {
        "" => None,
        addr => {
            let listener = crate::http::bind(addr).context("launcher control API")?;
            let console = console::ConsoleConfig {
                stocks: config
                    .catalog
                    .stocks
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
            };
            Some(ControlServer::start(listener, console)?)
        }
    };
    while !STOP.load(Ordering::SeqCst) {
        launcher.reap_exited();
        let Some(server) = &control else {
            std::thread::sleep(POLL);
            continue;
        };
        match server.next(POLL) {
            Ok(request) => {
                let answer = launcher.handle(&request.command);
                request.answer(answer);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                log::error!("the control API stopped; the services keep running");
                control = None;
            }
        }
    }
    log::info!("stop requested; stopping everything");
    // The control API first, so that no command arrives while the children stop.
    drop(control);
    drop(launcher);
    Ok(())
}

/// The services and what starting one again needs.
struct Launcher<'a> {
    config: &'a Config,
    /// Set on every child.
    child_env: Vec<(OsString, OsString)>,
    services: Vec<Service>,
}

impl<'a> Launcher<'a> {
    /// Starts the catalog (or every catalog of the group), every replica and the front end,
    /// in that order.
    fn start(
        config: &'a Config,
        exe: PathBuf,
        child_env: &[(OsString, OsString)],
    ) -> anyhow::Result<Launcher<'a>> {
        let mut plan: Vec<(String, String, Vec<String>)> = config
            .catalog_members()
            .into_iter()
            .map(|c| {
                let args = vec!["catalog".to_string(), "--id".to_string(), c.id.to_string()];
                (config.catalog_name(c.id), c.addr, args)
            })
            .collect();
        for r in &config.replicas {
            let args = vec!["order".to_string(), "--id".to_string(), r.id.to_string()];
            plan.push((format!("order-{}", r.id), r.addr.clone(), args));
        }
        plan.push((
            "frontend".to_string(),
            config.frontend.addr.clone(),
            vec!["frontend".to_string()],
        ));
        let width = plan.iter().map(|(name, ..)| name.len()).max().unwrap_or(0);

        let mut launcher = Launcher {
            config,
            child_env: child_env.to_vec(),
            services: Vec::with_capacity(plan.len()),
        };
        for (name, addr, args) in plan {
            let (program, args) = wrapped(&config.launcher.wrap, &name, &exe, args);
            let service = Service::start(&name, &addr, program, args, child_env, width)
                .with_context(|| format!("cannot start {name}"))?;
            log::info!("started {name} (pid {}) on {addr}", service.pid());
            launcher.services.push(service);
        }
        Ok(launcher)
    }

    /// Waits until every service is ready; `Ok(false)`: a stop was requested meanwhile.
    fn wait_ready(&mut self) -> anyhow::Result<bool> {
        wait_ready(&mut self.services, &STOP).inspect_err(|_| {
            log::warn!("start-up failed; stopping everything");
        })
    }

    /// Logs the services that exited since the last look.
    fn reap_exited(&mut self) {
        for s in &mut self.services {
            match s.reap() {
                Ok(Some(status)) if STOP.load(Ordering::SeqCst) => {
                    log::info!("{} exited ({})", s.name, describe(status));
                }
                Ok(Some(status)) => log::warn!(
                    "{} exited ({}); the others keep running",
                    s.name,
                    describe(status)
                ),
                Ok(None) => {}
                Err(e) => log::error!("cannot check {}: {e}", s.name),
            }
        }
    }

    /// Carries out one control command.
    fn handle(&mut self, command: &Command) -> Answer {
        match command {
            Command::List => Ok(Reply::Processes(self.processes())),
            Command::Kill(name) => {
                let s = self.find(name)?;
                if !s.is_running() {
                    return Err(conflict(format!("{name} is not running")));
                }
                let pid = s.pid();
                if let Err(e) = s.kill() {
                    log::error!("control: {e:#}");
                }
                log::info!("control: killed {name} (pid {pid}) with SIGKILL");
                Ok(Reply::Pid(ProcessPid {
                    name: name.clone(),
                    pid,
                }))
            }
            Command::Start { name, env } => self.start_again(name, env),
            Command::Digests => Ok(Reply::Digests(digests(self.config))),
            Command::Reset => self.reset(),
        }
    }

    /// Every service as `processes` lists it.
    fn processes(&self) -> Vec<Process> {
        self.services
            .iter()
            .map(|s| Process {
                addr: s.addr.clone(),
                name: s.name.clone(),
                pid: s.pid(),
                running: s.is_running(),
            })
            .collect()
    }

    /// Stops every service, removes their data folders (the cluster secret, beside them,
    /// stays), starts them all again with the launcher's own settings (a cache size changed
    /// through the control API is forgotten) and waits until every one is ready.
    fn reset(&mut self) -> Answer {
        stop_all(&mut self.services);
        for s in &self.services {
            let dir = self.config.service_dir(&s.name);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ApiError::with_kind(
                        ErrorKind::Internal,
                        format!("cannot remove {}: {e}", dir.display()),
                    ))
                }
            }
        }
        let started = (|| {
            for s in &mut self.services {
                s.restart(&self.child_env)?;
                log::info!("control: reset: started {} (pid {})", s.name, s.pid());
            }
            if !wait_ready(&mut self.services, &STOP)? {
                bail!("stop requested");
            }
            Ok(())
        })();
        started.map_err(|e| ApiError::unavailable(format!("{e:#}")))?;
        log::info!("control: reset: every service started again on empty data");
        Ok(Reply::Processes(self.processes()))
    }

    fn find(&mut self, name: &str) -> Result<&mut Service, ApiError> {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no service named {name}")))
    }

    /// Starts a stopped service, or restarts a running one when `extra_env` changes its
    /// settings, and waits until it is ready.
    fn start_again(&mut self, name: &str, extra_env: &[(String, String)]) -> Answer {
        let mut env = self.child_env.clone();
        env.extend(extra_env.iter().map(|(k, v)| (k.into(), v.into())));
        let s = self.find(name)?;
        if s.is_running() && !extra_env.is_empty() {
            stop_all(std::slice::from_mut(s));
        }
        if s.is_running() {
            return Err(conflict(format!("{name} is already running")));
        }
        let started = s.restart(&env).and_then(|()| {
            log::info!("control: started {} (pid {})", s.name, s.pid());
            if !wait_ready(std::slice::from_mut(s), &STOP)? {
                bail!("stop requested");
            }
            Ok(Reply::Pid(ProcessPid {
                name: s.name.clone(),
                pid: s.pid(),
            }))
        });
        started.map_err(|e| ApiError::unavailable(format!("{e:#}")))
    }
}

impl Drop for Launcher<'_> {
    /// Children never outlive the launcher.
    fn drop(&mut self) {
        stop_all(&mut self.services);
    }
}

/// The program and arguments that start service `name` (`exe args`) under `wrap`
/// (`[launcher] wrap`, `{name}` replaced): `ip netns exec tn-{name}` gives
/// `ip netns exec tn-catalog exe catalog`. An empty `wrap` starts `exe` itself.
fn wrapped(wrap: &str, name: &str, exe: &Path, args: Vec<String>) -> (PathBuf, Vec<String>) {
    let mut words = wrap.split_whitespace().map(|w| w.replace("{name}", name));
    match words.next() {
        None => (exe.to_path_buf(), args),
        Some(program) => {
            let mut all: Vec<String> = words.collect();
            all.push(exe.to_string_lossy().into_owned());
            all.extend(args);
            (PathBuf::from(program), all)
        }
    }
}

/// Size and SHA-256 of every replica's `orders.jsonl` (a missing file counts as empty).
fn digests(config: &Config) -> Vec<Digest> {
    config
        .replicas
        .iter()
        .map(|r| {
            let name = format!("order-{}", r.id);
            let path = config.service_dir(&name).join("orders.jsonl");
            let bytes = std::fs::read(&path).unwrap_or_default();
            Digest {
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
                name,
            }
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Installs the Ctrl-C / SIGTERM handler once per process.
fn install_signal_handler() -> anyhow::Result<()> {
    let installed = HANDLER.get_or_init(|| {
        ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).map_err(|e| e.to_string())
    });
    match installed {
        Ok(()) => Ok(()),
        Err(e) => bail!("cannot install the Ctrl-C / SIGTERM handler: {e}"),
    }
}

/// Prints where everything answers.
fn print_urls(config: &Config) {
    let front = url(&config.frontend.addr);
    let stock = config
        .catalog
        .stocks
        .first()
        .map_or("GameStart", |s| s.name.as_str());
    let mut text = String::from("Trade-Net is up:\n");
    text.push_str(&format!(
        "  {:<9}  {front}   (try: curl {front}/stocks/{stock})\n",
        "front end"
    ));
    for c in config.catalog_members() {
        text.push_str(&format!(
            "  {:<9}  {}\n",
            config.catalog_name(c.id),
            url(&c.addr)
        ));
    }
    for r in &config.replicas {
        text.push_str(&format!(
            "  {:<9}  {}\n",
            format!("order-{}", r.id),
            url(&r.addr)
        ));
    }
    if !config.launcher.control_addr.is_empty() {
        // The secret rides in the fragment, which the browser keeps to itself.
        let token = crate::http::secret().map_or(String::new(), |s| format!("#token={s}"));
        text.push_str(&format!(
            "  {:<9}  {}/{token}   (live console: kill, restart, load)\n",
            "console",
            url(&config.launcher.control_addr)
        ));
    }
    text.push_str("Ctrl-C stops everything.\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_puts_a_command_before_each_service() {
        let exe = Path::new("/bin/tradenet");
        let args = vec!["order".to_string(), "--id".to_string(), "2".to_string()];
        assert_eq!(
            wrapped("", "order-2", exe, args.clone()),
            (exe.to_path_buf(), args.clone())
        );
        let (program, all) = wrapped("ip netns exec tn-{name}", "order-2", exe, args);
        assert_eq!(program, PathBuf::from("ip"));
        assert_eq!(
            all,
            [
                "netns",
                "exec",
                "tn-order-2",
                "/bin/tradenet",
                "order",
                "--id",
                "2"
            ]
        );
    }

    #[test]
    fn digests_hash_each_replica_order_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(None, &[]).unwrap();
        config.data_dir = dir.path().to_path_buf();
        std::fs::create_dir_all(dir.path().join("order-1")).unwrap();
        std::fs::write(dir.path().join("order-1/orders.jsonl"), b"abc").unwrap();
        let d = digests(&config);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0],
            Digest {
                bytes: 3,
                name: "order-1".into(),
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            }
        );
        // A replica without a file yet has the digest of nothing.
        assert_eq!(d[1].bytes, 0);
        assert_eq!(
            d[1].sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
