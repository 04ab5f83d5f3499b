//! The launcher's children as processes: starting one tied to the launcher's life
//! (`PR_SET_PDEATHSIG`), forwarding its output with a `[name]` prefix, polling `/ready` until
//! it is ready, and stopping (SIGTERM, then SIGKILL) and reaping it.
//!
//! Everything here blocks: it runs on the launcher's main thread, which owns the children.

use anyhow::{bail, Context};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::url;

/// How long all children together may take to answer `/ready`.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between readiness polls and between checks while stopping.
pub const POLL: Duration = Duration::from_millis(50);
/// Connect timeout of one readiness probe.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Whole-call timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long children get to stop after SIGTERM before they are SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One service the launcher runs: how to start it and its current child.
pub struct Service {
    /// `catalog`, `order-N` or `frontend`.
    pub name: String,
    /// `host:port` it answers `/ready` on.
    pub addr: String,
    /// The program it runs.
    program: PathBuf,
    /// Its arguments (subcommand and flags), to start it again.
    args: Vec<String>,
    /// `[name]`, padded so every service's lines line up.
    prefix: String,
    child: Child,
    /// Set once the child has been reaped.
    status: Option<ExitStatus>,
    /// Threads copying its stdout and stderr.
    readers: Vec<JoinHandle<()>>,
}

impl Service {
    /// Starts `program args` with `env` added to the launcher's environment; its output lines
    /// go to the launcher's stderr prefixed with `[name]` padded to `width`.
    ///
    /// Call it from the thread that lives as long as the launcher: the child's parent-death
    /// signal is tied to the thread that spawns it.
    pub fn start(
        name: &str,
        addr: &str,
        program: PathBuf,
        args: Vec<String>,
        env: &[(OsString, OsString)],
        width: usize,
    ) -> anyhow::Result<Service> {
        let prefix = format!("[{name:<width$}]");
        let (child, readers) = spawn(&program, &args, env, &prefix)?;
        Ok(Service {
            name: name.to_string(),
            addr: addr.to_string(),
            program,
            args,
            prefix,
            child,
            status: None,
            readers,
        })
    }

    /// Starts a stopped service again with the same arguments and `env`; it must have been
    /// reaped ([`Service::is_running`] false).
    pub fn restart(&mut self, env: &[(OsString, OsString)]) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("{} is still running", self.name);
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let (child, readers) = spawn(&self.program, &self.args, env, &self.prefix)?;
        self.child = child;
        self.readers = readers;
        self.status = None;
        Ok(())
    }

    /// The current (or last) child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True until the child has been reaped.
    pub fn is_running(&self) -> bool {
        self.status.is_none()
    }

    /// Reaps the child if it has exited; answers its status the first time only.
    pub fn reap(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(None);
        }
        self.status = self.child.try_wait()?;
        Ok(self.status)
    }

    /// Sends `sig` to the running child.
    fn signal(&self, sig: Signal) -> nix::Result<()> {
        // Not reaped yet, so the pid cannot have been reused by another process.
        let pid = i32::try_from(self.pid()).map_err(|_| nix::Error::EINVAL)?;
        signal::kill(Pid::from_raw(pid), sig)
    }

    /// SIGKILLs the running child and reaps it (for chaos experiments: no chance to clean up).
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if !self.is_running() {
            bail!("{} is not running", self.name);
        }
        self.signal(Signal::SIGKILL)
            .with_context(|| format!("cannot send SIGKILL to {}", self.name))?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot reap {}", self.name))?;
        self.status = Some(status);
        Ok(status)
    }
}

/// Spawns one child with piped output and the threads that forward it.
fn spawn(
    program: &std::path::Path,
    args: &[String],
    env: &[(OsString, OsString)],
    prefix: &str,
) -> anyhow::Result<(Child, Vec<JoinHandle<()>>)> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // async-signal-safe system calls (prctl, getppid) and allocates nothing: its errors are
    // raw OS error codes.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The launcher may have died between fork and prctl; then nobody would stop us.
            // An error here makes the child exit before exec.
            if nix::unistd::getppid() != parent {
                return Err(nix::Error::ESRCH.into());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let mut readers = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        readers.push(forward(out, prefix.to_string()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(forward(err, prefix.to_string()));
    }
    Ok((child, readers))
}

/// Copies `pipe` line by line to the launcher's stderr, each line prefixed.
fn forward(pipe: impl Read + Send + 'static, prefix: String) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    eprintln!("{prefix} {}", text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}

/// A client for readiness probes: short timeouts, so a child that does not listen yet costs
/// one poll, not a hung launcher.
fn probe_agent() -> ureq::Agent {
    crate::http::blocking_agent(PROBE_CONNECT_TIMEOUT, PROBE_TIMEOUT)
}

/// True when `/ready` at `addr` answers 200 (the service can do its job).
fn is_ready(agent: &ureq::Agent, addr: &str) -> bool {
    // ureq answers 4xx and 5xx as errors; 503 means "still recovering".
    matches!(agent.get(&format!("{}/ready", url(addr))).call(), Ok(res) if res.status() == 200)
}

/// Polls `/ready` on every service until all answer 200. `Ok(false)`: `stop` was set
/// meanwhile. Errors name the child that exited early or missed the deadline.
pub fn wait_ready(services: &mut [Service], stop: &AtomicBool) -> anyhow::Result<bool> {
    let agent = probe_agent();
    let deadline = Instant::now() + READY_DEADLINE;
    let mut ready = vec![false; services.len()];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        for (s, ready) in services.iter_mut().zip(ready.iter_mut()) {
            if *ready {
                continue;
            }
            if let Some(status) = s
                .reap()
                .with_context(|| format!("cannot check {}", s.name))?
            {
                bail!(
                    "{} exited with {} before it was ready",
                    s.name,
                    describe(status)
                );
            }
            if !s.is_running() {
                bail!("{} is not running", s.name);
            }
            if is_ready(&agent, &s.addr) {
                *ready = true;
                log::info!("{} is ready at {}", s.name, url(&s.addr));
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            let s = services
                .iter()
                .zip(&ready)
                .find(|(_, r)| !**r)
                .map(|(s, _)| s)
                .expect("some service is not ready");
            bail!(
                "{} did not answer /ready at {} within {}s",
                s.name,
                s.addr,
                READY_DEADLINE.as_secs()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// SIGTERM to every running child, SIGKILL to those still alive after [`STOP_GRACE`], then
/// reaps them all and waits for their output to be forwarded.
pub fn stop_all(services: &mut [Service]) {
    for s in services.iter().filter(|s| s.is_running()) {
        if let Err(e) = s.signal(Signal::SIGTERM) {
            log::warn!("cannot send SIGTERM to {} (pid {}): {e}", s.name, s.pid());
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let mut alive = false;
        for s in services.iter_mut().filter(|s| s.is_running()) {
            match s.reap() {
                Ok(Some(status)) => log::info!("{} stopped ({})", s.name, describe(status)),
                Ok(None) => alive = true,
                Err(e) => {
                    log::error!("cannot check {}: {e}", s.name);
                    alive = true;
                }
            }
        }
        if !alive || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    for s in services.iter_mut().filter(|s| s.is_running()) {
        log::warn!(
            "{} did not stop within {}s; killing it",
            s.name,
            STOP_GRACE.as_secs()
        );
        if let Err(e) = s.kill() {
            log::error!("{e:#}");
        }
    }
    for s in services.iter_mut() {
        for reader in s.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// `status 1` or `signal 9`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
