//! `tradenet up`: the launcher that runs the whole exchange on one machine.
//!
//! It owns the child processes (catalog, one order replica per `[[replicas]]` entry, front end)
//! for their whole life: it starts each as `tradenet [--config PATH] <service>`, forwards their
//! output to its own stderr with a `[name]` prefix, waits until every one answers `/health`,
//! prints the URLs, and on Ctrl-C / SIGTERM stops them all (SIGTERM, then SIGKILL after 5 s)
//! and reaps them. Children are tied to the launcher with `PR_SET_PDEATHSIG`, so even a
//! SIGKILLed launcher leaves no service behind holding a port. A child that exits on its own
//! after start-up is only logged: chaos testing kills replicas on purpose and the rest of the
//! exchange is meant to keep running.
//!
//! Plain std threads and a tiny blocking HTTP client are enough here; the async runtimes stay
//! in the services themselves.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{url, Config};

/// How long all children together may take to answer `/health`.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between readiness polls and between checks while running.
const POLL: Duration = Duration::from_millis(50);
/// Connect timeout of one readiness probe.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Read/write timeout of one readiness probe.
const PROBE_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long children get to stop after SIGTERM before they are SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Set by the Ctrl-C / SIGTERM handler.
static STOP: AtomicBool = AtomicBool::new(false);
/// The handler can be installed once per process; remembers how that went.
static HANDLER: OnceLock<Result<(), String>> = OnceLock::new();

/// One started service.
struct Service {
    /// `catalog`, `order-N` or `frontend`.
    name: String,
    /// `host:port` it answers on.
    addr: String,
    /// Its subcommand and flags, to start it again.
    args: Vec<String>,
    child: Child,
    /// Set once the child has been reaped.
    status: Option<ExitStatus>,
    /// Threads copying its stdout and stderr.
    readers: Vec<JoinHandle<()>>,
}

/// Starts every process the config names, waits for each to answer /health, prints URLs,
/// and stops them all on Ctrl-C / SIGTERM. Blocks until then.
///
/// `config_path` is passed on to the children as `--config PATH`; `child_env` pairs (e.g.
/// `TRADENET__FRONTEND__CACHE_SIZE=0`, from flags) are set on every child. Must be called
/// from the thread that lives as long as the launcher (the main thread): the children's
/// parent-death signal is tied to the thread that spawns them.
pub fn run(
    config_path: Option<&Path>,
    config: &Config,
    child_env: &[(String, String)],
) -> anyhow::Result<()> {
    install_signal_handler()?;
    STOP.store(false, Ordering::SeqCst);

    let exe = std::env::current_exe().context("cannot find the tradenet executable")?;
    let mut plan: Vec<(String, String, Vec<String>)> = Vec::new();
    plan.push((
        "catalog".to_string(),
        config.catalog.addr.clone(),
        vec!["catalog".to_string()],
    ));
    for r in &config.replicas {
        plan.push((
            format!("order-{}", r.id),
            r.addr.clone(),
            vec!["order".to_string(), "--id".to_string(), r.id.to_string()],
        ));
    }
    plan.push((
        "frontend".to_string(),
        config.frontend.addr.clone(),
        vec!["frontend".to_string()],
    ));
    let width = plan
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(0);

    let mut services: Vec<Service> = Vec::with_capacity(plan.len());
    for (name, addr, args) in plan {
        match spawn(&exe, config_path, &args, child_env, &name, width) {
            Ok((child, readers)) => {
                log::info!("started {name} (pid {}) on {addr}", child.id());
                services.push(Service {
                    name,
                    addr,
                    args,
                    child,
                    status: None,
                    readers,
                });
            }
            Err(e) => {
                stop_all(&mut services);
                return Err(e.context(format!("cannot start {name}")));
            }
        }
    }

    match wait_ready(&mut services) {
        Ok(true) => {}
        Ok(false) => {
            log::info!("stop requested during start-up; stopping everything");
            stop_all(&mut services);
            return Ok(());
        }
        Err(e) => {
            log::warn!("start-up failed; stopping everything");
            stop_all(&mut services);
            return Err(e);
        }
    }

    print_urls(config);

    let commands = match control::serve(&config.launcher.control_addr) {
        Ok(rx) => rx,
        Err(e) => {
            log::error!("{e:#}; stopping everything");
            stop_all(&mut services);
            return Err(e);
        }
    };
    let launch = Launch {
        exe: &exe,
        config_path,
        child_env,
        width,
        config,
    };
    while !STOP.load(Ordering::SeqCst) {
        for s in services.iter_mut().filter(|s| s.status.is_none()) {
            match s.child.try_wait() {
                Ok(Some(status)) => {
                    s.status = Some(status);
                    if STOP.load(Ordering::SeqCst) {
                        log::info!("{} exited ({})", s.name, describe(status));
                    } else {
                        log::warn!(
                            "{} exited ({}); the others keep running",
                            s.name,
                            describe(status)
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => log::error!("cannot check {}: {e}", s.name),
            }
        }
        if let Some(commands) = &commands {
            if let Ok((cmd, reply)) = commands.recv_timeout(POLL) {
                let _ = reply.send(launch.handle(cmd, &mut services));
            }
        } else {
            std::thread::sleep(POLL);
        }
    }
    log::info!("stop requested; stopping everything");
    stop_all(&mut services);
    Ok(())
}

/// What restarting a service needs.
struct Launch<'a> {
    exe: &'a Path,
    config_path: Option<&'a Path>,
    child_env: &'a [(String, String)],
    width: usize,
    config: &'a Config,
}

impl Launch<'_> {
    /// Carries out one control command on the main thread (the children's parent-death
    /// signal is tied to it). Answers (HTTP status, JSON body).
    fn handle(&self, cmd: control::Command, services: &mut [Service]) -> (u16, serde_json::Value) {
        use control::Command;
        use serde_json::json;
        let find =
            |services: &mut [Service], name: &str| services.iter().position(|s| s.name == name);
        let result: Result<serde_json::Value, (u16, String)> = match cmd {
            Command::List => Ok(services
                .iter()
                .map(|s| json!({"name": s.name, "addr": s.addr, "pid": s.child.id(), "running": s.status.is_none()}))
                .collect()),
            Command::Kill(name) => match find(services, &name) {
                None => Err((404, format!("no service named {name}"))),
                Some(i) if services[i].status.is_some() => Err((409, format!("{name} is not running"))),
                Some(i) => {
                    let s = &mut services[i];
                    let pid = s.child.id();
                    let _ = s.child.kill();
                    s.status = s.child.wait().ok();
                    log::info!("control: killed {name} (pid {pid}) with SIGKILL");
                    Ok(json!({"name": name, "pid": pid}))
                }
            },
            Command::Start { name, env } => match find(services, &name) {
                None => Err((404, format!("no service named {name}"))),
                Some(i) => {
                    if services[i].status.is_none() && !env.is_empty() {
                        stop_all(std::slice::from_mut(&mut services[i]));
                    }
                    if services[i].status.is_none() {
                        Err((409, format!("{name} is already running")))
                    } else {
                        self.restart(&mut services[i], &env).map_err(|e| (503, format!("{e:#}")))
                    }
                }
            },
            Command::Digests => Ok(self
                .config
                .replicas
                .iter()
                .map(|r| {
                    let path = self.config.service_dir(&format!("order-{}", r.id)).join("orders.jsonl");
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    json!({
                        "name": format!("order-{}", r.id),
                        "bytes": bytes.len(),
                        "sha256": sha256_hex(&bytes),
                    })
                })
                .collect()),
        };
        match result {
            Ok(data) => (200, json!({ "data": data })),
            Err((code, message)) => (
                code,
                json!({"error": {"code": code, "message": message, "kind": "control"}}),
            ),
        }
    }

    fn restart(
        &self,
        s: &mut Service,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<serde_json::Value> {
        for r in s.readers.drain(..) {
            let _ = r.join();
        }
        let mut env = self.child_env.to_vec();
        env.extend(extra_env.iter().cloned());
        let (child, readers) = spawn(
            self.exe,
            self.config_path,
            &s.args,
            &env,
            &s.name,
            self.width,
        )?;
        s.child = child;
        s.readers = readers;
        s.status = None;
        log::info!("control: started {} (pid {})", s.name, s.child.id());
        if !wait_ready(std::slice::from_mut(s))? {
            anyhow::bail!("stop requested");
        }
        Ok(serde_json::json!({"name": s.name, "pid": s.child.id()}))
    }
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

/// Spawns one child with piped output and the threads that forward it.
fn spawn(
    exe: &Path,
    config_path: Option<&Path>,
    args: &[String],
    child_env: &[(String, String)],
    name: &str,
    width: usize,
) -> anyhow::Result<(Child, Vec<JoinHandle<()>>)> {
    let mut cmd = Command::new(exe);
    if let Some(path) = config_path {
        cmd.arg("--config").arg(path);
    }
    cmd.args(args)
        .envs(child_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // The launcher may have died between fork and prctl; then nobody would stop us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let prefix = format!("[{name:<width$}]");
    let mut readers = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        readers.push(forward(out, prefix.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(forward(err, prefix));
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

/// Polls `/health` on every service until all answer 200. `Ok(false)`: a stop was requested
/// meanwhile. Errors name the child that exited early or missed the deadline.
fn wait_ready(services: &mut [Service]) -> anyhow::Result<bool> {
    let deadline = Instant::now() + READY_DEADLINE;
    let mut ready = vec![false; services.len()];
    loop {
        if STOP.load(Ordering::SeqCst) {
            return Ok(false);
        }
        for (i, s) in services.iter_mut().enumerate() {
            if ready[i] {
                continue;
            }
            if let Some(status) = s
                .child
                .try_wait()
                .with_context(|| format!("cannot check {}", s.name))?
            {
                s.status = Some(status);
                bail!(
                    "{} exited with {} before it was ready",
                    s.name,
                    describe(status)
                );
            }
            if let Ok((200, _)) =
                http_get_with(&s.addr, "/health", PROBE_CONNECT_TIMEOUT, PROBE_IO_TIMEOUT)
            {
                ready[i] = true;
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
                "{} did not answer /health at {} within {}s",
                s.name,
                s.addr,
                READY_DEADLINE.as_secs()
            );
        }
        std::thread::sleep(POLL);
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
    text.push_str(&format!(
        "  {:<9}  {}\n",
        "catalog",
        url(&config.catalog.addr)
    ));
    for r in &config.replicas {
        text.push_str(&format!(
            "  {:<9}  {}\n",
            format!("order-{}", r.id),
            url(&r.addr)
        ));
    }
    text.push_str("Ctrl-C stops everything.\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// SIGTERM to every live child, SIGKILL to those still alive after [`STOP_GRACE`], then reaps
/// them all and waits for their output to be forwarded.
fn stop_all(services: &mut [Service]) {
    for s in services.iter_mut().filter(|s| s.status.is_none()) {
        // The child is not reaped yet, so its pid cannot have been reused.
        let pid = s.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own unreaped child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            log::warn!(
                "cannot send SIGTERM to {} (pid {pid}): {}",
                s.name,
                std::io::Error::last_os_error()
            );
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let mut alive = false;
        for s in services.iter_mut().filter(|s| s.status.is_none()) {
            match s.child.try_wait() {
                Ok(Some(status)) => {
                    log::info!("{} stopped ({})", s.name, describe(status));
                    s.status = Some(status);
                }
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
    for s in services.iter_mut().filter(|s| s.status.is_none()) {
        log::warn!(
            "{} did not stop within {}s; killing it",
            s.name,
            STOP_GRACE.as_secs()
        );
        if let Err(e) = s.child.kill() {
            log::error!("cannot kill {}: {e}", s.name);
        }
        match s.child.wait() {
            Ok(status) => s.status = Some(status),
            Err(e) => log::error!("cannot reap {}: {e}", s.name),
        }
    }
    for s in services.iter_mut() {
        for reader in s.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// `status 1` or `signal 9`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// A tiny blocking HTTP/1.1 GET: returns the status code and the body (lossily decoded as
/// UTF-8). `timeout` bounds the connect and each read or write.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    http_get_with(addr, path, timeout, timeout)
}

fn http_get_with(
    addr: &str,
    path: &str,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> std::io::Result<(u16, String)> {
    use std::io::{Error, ErrorKind};
    let mut last = Error::new(ErrorKind::InvalidInput, format!("{addr}: no address"));
    let mut stream = None;
    for sock in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sock, connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;

    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("{addr}{path}: {what}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("incomplete response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                let len: usize = value.parse().map_err(|_| bad("bad content-length"))?;
                body = &body[..len.min(body.len())];
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `response`; returns the address and the request it read.
    fn serve_once(response: &'static str) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(response.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn http_get_returns_status_and_body() {
        let (addr, server) =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        let (status, body) = http_get(&addr, "/health", Duration::from_secs(2)).unwrap();
        assert_eq!((status, body.as_str()), (200, "ok"));
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
        assert!(request.contains("Connection: close\r\n"), "{request}");
    }

    #[test]
    fn http_get_reads_chunked_bodies_and_other_statuses() {
        let (addr, server) = serve_once(
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
             4\r\nnot \r\n5\r\nready\r\n0\r\n\r\n",
        );
        let (status, body) = http_get(&addr, "/health", Duration::from_secs(2)).unwrap();
        assert_eq!((status, body.as_str()), (503, "not ready"));
        server.join().unwrap();
    }

    #[test]
    fn http_get_to_a_closed_port_is_an_error() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        assert!(http_get(&addr, "/health", Duration::from_millis(200)).is_err());
    }

    #[test]
    fn exit_statuses_are_described_briefly() {
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "status 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9");
    }
}

/// The launcher's control API: a small HTTP server on its own thread that hands each request
/// to the main thread (which owns the children) and writes back the answer.
///
/// - `GET  /control/v1/processes`: every service, its pid and whether it runs;
/// - `POST /control/v1/kill/{name}`: SIGKILL (for chaos experiments);
/// - `POST /control/v1/start/{name}`: start it again and wait until healthy;
/// - `POST /control/v1/restart/frontend?cache_size=N`: restart the front end with another
///   cache size (0 = off);
/// - `GET  /control/v1/digests`: size and SHA-256 of every replica's order file.
mod control {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::Duration;

    /// What a control request asks of the main thread.
    pub enum Command {
        List,
        Kill(String),
        Start {
            name: String,
            env: Vec<(String, String)>,
        },
        Digests,
    }

    /// A command with where to send its answer.
    pub type Request = (Command, mpsc::Sender<(u16, serde_json::Value)>);

    /// Binds `addr` and serves on a thread; None when the API is turned off (empty addr).
    pub fn serve(addr: &str) -> anyhow::Result<Option<mpsc::Receiver<Request>>> {
        if addr.is_empty() {
            return Ok(None);
        }
        let listener = TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("launcher control API cannot listen on {addr}: {e}"))?;
        log::info!("control API on http://{addr}/control/v1/processes");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || answer(stream, tx));
            }
        });
        Ok(Some(rx))
    }

    fn parse(method: &str, target: &str) -> Result<Command, (u16, String)> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["control", "v1", "processes"]) => Ok(Command::List),
            ("GET", ["control", "v1", "digests"]) => Ok(Command::Digests),
            ("POST", ["control", "v1", "kill", name]) => Ok(Command::Kill(name.to_string())),
            ("POST", ["control", "v1", "start", name]) => Ok(Command::Start {
                name: name.to_string(),
                env: Vec::new(),
            }),
            ("POST", ["control", "v1", "restart", "frontend"]) => {
                let size = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("cache_size="))
                    .ok_or((400, "give ?cache_size=N".to_string()))?;
                let size: usize = size
                    .parse()
                    .map_err(|_| (400, format!("cache_size must be a number, got {size:?}")))?;
                Ok(Command::Start {
                    name: "frontend".into(),
                    env: vec![("TRADENET__FRONTEND__CACHE_SIZE".into(), size.to_string())],
                })
            }
            _ => Err((404, format!("no control route for {method} {path}"))),
        }
    }

    fn answer(stream: TcpStream, tx: mpsc::Sender<Request>) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        // Skip the headers; the API takes no body.
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (code, body) = match parse(method, target) {
            Err((code, message)) => (
                code,
                serde_json::json!({"error": {"code": code, "message": message, "kind": "control"}}),
            ),
            Ok(cmd) => {
                let (reply, rx) = mpsc::channel();
                if tx.send((cmd, reply)).is_err() {
                    return;
                }
                rx.recv_timeout(Duration::from_secs(60)).unwrap_or((
                    503,
                    serde_json::json!({"error": {"code": 503, "message": "launcher busy", "kind": "control"}}),
                ))
            }
        };
        let body = body.to_string();
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn routes_parse() {
            assert!(matches!(
                parse("GET", "/control/v1/processes"),
                Ok(Command::List)
            ));
            assert!(
                matches!(parse("POST", "/control/v1/kill/order-2"), Ok(Command::Kill(n)) if n == "order-2")
            );
            match parse("POST", "/control/v1/restart/frontend?cache_size=0") {
                Ok(Command::Start { name, env }) => {
                    assert_eq!(name, "frontend");
                    assert_eq!(env[0].1, "0");
                }
                _ => panic!("restart did not parse"),
            }
            assert_eq!(
                parse("POST", "/control/v1/restart/frontend?cache_size=x")
                    .err()
                    .unwrap()
                    .0,
                400
            );
            assert_eq!(parse("GET", "/control/v1/kill/x").err().unwrap().0, 404);
        }
    }
}
