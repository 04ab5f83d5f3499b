//! The launcher's control API (`[launcher] control_addr`): an actix-web server on its own
//! thread that turns each request into a [`Command`] for the launcher's main thread, which
//! owns the children, and answers with what comes back. It lists the services, SIGKILLs and
//! starts them (chaos experiments), restarts the front end with another cache size, resets
//! the whole exchange to a fresh state, and digests the replicas' order files. Its paths and answer shapes are
//! `tradenet_actors::wire`'s (`CONTROL_*`, `wire::control`), which the client tool reads too;
//! `docs/internal-api.md` lists them.
//!
//! Why a thread and channels rather than actors: the main thread blocks for seconds at a time
//! (starting a child, waiting for its `/ready`), and it must be the one that spawns children
//! because their parent-death signal is tied to the spawning thread. So the server has its own
//! `System`, and a request waits on a oneshot reply without blocking its worker.

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::wire::{self, control as shapes, ErrorKind};

use super::console::ConsoleConfig;
use crate::error::ApiError;
use crate::http::{self, ok, Metrics};

/// How long a request waits for the main thread before it is answered 503.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The configuration-layer variable the front end reads its cache size from.
pub const FRONTEND_CACHE_SIZE_VAR: &str = "TRADENET__FRONTEND__CACHE_SIZE";

/// What a control request asks of the launcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// List every service.
    List,
    /// SIGKILL the named service.
    Kill(String),
    /// Start the named service (again) with `env` on top of the usual environment; a running
    /// service is stopped first when `env` is not empty.
    Start {
        /// `catalog`, `order-N` or `frontend`.
        name: String,
        /// Extra environment, e.g. another cache size.
        env: Vec<(String, String)>,
    },
    /// Size and SHA-256 of every replica's order file.
    Digests,
    /// Stop every service, remove their data folders and start them all again: a fresh
    /// exchange.
    Reset,
}

/// The launcher's answer: the `data` of a 200, or an error object.
pub type Answer = Result<Reply, ApiError>;

/// The `data` of a successful answer.
#[derive(Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `processes`, `reset`: every service.
    Processes(Vec<shapes::Process>),
    /// `kill`, `start`, `restart/frontend`: the service killed or started.
    Pid(shapes::ProcessPid),
    /// `digests`: every replica's order file.
    Digests(Vec<shapes::Digest>),
}

/// A command on its way to the main thread, with where its answer goes.
#[derive(Debug)]
pub struct Request {
    /// What is asked.
    pub command: Command,
    reply: oneshot::Sender<Answer>,
}

impl Request {
    /// Sends the answer back to the waiting HTTP request (gone if it timed out).
    pub fn answer(self, answer: Answer) {
        let _ = self.reply.send(answer);
    }
}

/// 409: the service is not in a state the command can act on (killing a stopped one,
/// starting a running one). There is no `conflict` kind: `bad_request` says "final, do not
/// retry", which is what the caller should do.
pub fn conflict(message: impl Into<String>) -> ApiError {
    ApiError {
        code: 409,
        message: message.into(),
        kind: ErrorKind::BadRequest,
    }
}

/// 503: the launcher is stopping and takes no more commands.
fn stopping() -> ApiError {
    ApiError::unavailable("the launcher is stopping")
}

/// Where handlers send commands: app data of the control routes.
#[derive(Clone)]
pub struct Commands(pub mpsc::Sender<Request>);

/// The control routes; they need [`Commands`] as app data.
///
/// Each route is its own resource guarded by its method, so a wrong method falls through to
/// the 404 of unknown paths, as the API has always answered.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(wire::CONTROL_PROCESSES, web::get().to(processes))
        .route(wire::CONTROL_DIGESTS, web::get().to(digests))
        .route(wire::CONTROL_RESET, web::post().to(reset))
        .route(wire::CONTROL_KILL, web::post().to(kill))
        .route(wire::CONTROL_START, web::post().to(start))
        .route(
            wire::CONTROL_RESTART_FRONTEND,
            web::post().to(restart_frontend),
        );
}

async fn processes(commands: web::Data<Commands>) -> Result<HttpResponse, ApiError> {
    ask(&commands, Command::List).await
}

async fn digests(commands: web::Data<Commands>) -> Result<HttpResponse, ApiError> {
    ask(&commands, Command::Digests).await
}

async fn reset(commands: web::Data<Commands>) -> Result<HttpResponse, ApiError> {
    ask(&commands, Command::Reset).await
}

async fn kill(
    commands: web::Data<Commands>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ask(&commands, Command::Kill(name.into_inner())).await
}

async fn start(
    commands: web::Data<Commands>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let command = Command::Start {
        name: name.into_inner(),
        env: Vec::new(),
    };
    ask(&commands, command).await
}

/// `?cache_size=N` of a front end restart.
#[derive(Deserialize)]
struct CacheSize {
    cache_size: usize,
}

async fn restart_frontend(
    commands: web::Data<Commands>,
    query: web::Query<CacheSize>,
) -> Result<HttpResponse, ApiError> {
    let command = Command::Start {
        name: "frontend".to_string(),
        env: vec![(
            FRONTEND_CACHE_SIZE_VAR.to_string(),
            query.cache_size.to_string(),
        )],
    };
    ask(&commands, command).await
}

/// Hands `command` to the main thread and answers what it replies.
async fn ask(commands: &Commands, command: Command) -> Result<HttpResponse, ApiError> {
    ask_reply(commands, command).await.map(ok)
}

async fn ask_reply(commands: &Commands, command: Command) -> Answer {
    let (reply, answer) = oneshot::channel();
    commands
        .0
        .send(Request { command, reply })
        .map_err(|_| stopping())?;
    match actix_web::rt::time::timeout(REPLY_TIMEOUT, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(stopping()),
        Err(_) => Err(ApiError::unavailable("launcher busy")),
    }
}

/// Every process the launcher owns, as `processes` lists them.
pub async fn ask_processes(commands: &Commands) -> Result<Vec<shapes::Process>, ApiError> {
    match ask_reply(commands, Command::List).await? {
        Reply::Processes(list) => Ok(list),
        other => Err(ApiError::with_kind(
            ErrorKind::Internal,
            format!("the launcher answered a list with {other:?}"),
        )),
    }
}

/// The running control API; stopping it (or dropping it) stops its server and thread.
pub struct ControlServer {
    commands: mpsc::Receiver<Request>,
    server: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Serves the control API and the console on `listener`, from a thread of its own.
    pub fn start(listener: TcpListener, console: ConsoleConfig) -> anyhow::Result<ControlServer> {
        let addr = listener.local_addr()?;
        let (tx, commands) = mpsc::channel();
        let (handle_tx, handle_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                let metrics = Metrics::new("launcher");
                let served = actix_web::rt::System::new().block_on(async move {
                    let tx = Commands(tx);
                    let server = http::listen(
                        actix_web::HttpServer::new(move || {
                            let (tx, console) = (tx.clone(), console.clone());
                            http::app("launcher", metrics.clone(), move |cfg| {
                                cfg.app_data(web::Data::new(tx))
                                    .app_data(web::Data::new(console));
                                configure(cfg);
                                super::console::configure(cfg);
                            })
                        })
                        .workers(1)
                        // Ctrl-C and SIGTERM belong to the launcher, which stops this server.
                        .disable_signals(),
                        listener,
                    )?
                    .run();
                    let _ = handle_tx.send(server.handle());
                    server.await
                });
                if let Err(e) = served {
                    log::error!("launcher control API stopped: {e}");
                }
            })?;
        let server = match handle_rx.recv() {
            Ok(handle) => handle,
            Err(_) => {
                let _ = thread.join();
                anyhow::bail!("launcher control API on {addr} did not start");
            }
        };
        log::info!(
            "control API on {}://{addr}/control/v1/processes",
            http::scheme()
        );
        Ok(ControlServer {
            commands,
            server,
            thread: Some(thread),
        })
    }

    /// The next request, waiting at most `timeout`. `Err(Disconnected)`: the server has
    /// stopped on its own.
    pub fn next(&self, timeout: Duration) -> Result<Request, mpsc::RecvTimeoutError> {
        self.commands.recv_timeout(timeout)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        while let Ok(request) = self.commands.try_recv() {
            request.answer(Err(stopping()));
        }
        // `stop` sends the command at once; its future only reports completion, which the
        // join below waits for anyway.
        drop(self.server.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
