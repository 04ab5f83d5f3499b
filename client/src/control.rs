//! Calls to the launcher's control API (`tradenet up` owns the processes): kill and start a
//! service, restart the front end with another cache size, and compare the replicas' files.
//! Paths and answers are `tradenet_actors::wire` (`wire::control`).

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tradenet_actors::wire::control::{Digest, ProcessPid};
use tradenet_actors::wire::{self, DataBody};

/// The cluster secret for control and internal calls: `TRADENET__CLUSTER__SECRET`, else the
/// file `TRADENET__CLUSTER__SECRET_FILE` names, else `./data/cluster.secret` (where `tradenet
/// up` keeps the one it made, with the default data folder); `None` when there is none.
pub fn cluster_secret() -> Option<String> {
    if let Ok(s) = std::env::var("TRADENET__CLUSTER__SECRET") {
        if !s.trim().is_empty() {
            return Some(s.trim().to_string());
        }
    }
    let file = std::env::var("TRADENET__CLUSTER__SECRET_FILE")
        .unwrap_or_else(|_| "data/cluster.secret".to_string());
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

static TRUSTED_CA: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
    std::sync::OnceLock::new();

/// Trusts the CA in the PEM file `ca` (and nothing else) for `https://` addresses from now
/// on; call once, at start. An unreadable or malformed file is an error naming it.
pub fn trust_ca(ca: &std::path::Path) -> anyhow::Result<()> {
    let config = tradenet_actors::tls::client_config(ca).context("--ca")?;
    let _ = TRUSTED_CA.set(config);
    Ok(())
}

/// An awc client with up to `connections` connections, trusting the CA given to `trust_ca`
/// (if any), and carrying the cluster secret when `with_secret` and there is one.
pub fn http_client(timeout: Duration, connections: usize, with_secret: bool) -> awc::Client {
    let mut connector = awc::Connector::new()
        .timeout(timeout)
        .limit(connections.max(1));
    if let Some(ca) = TRUSTED_CA.get() {
        connector = connector.rustls_0_23(ca.clone());
    }
    let mut builder = awc::Client::builder().timeout(timeout).connector(connector);
    if let Some(secret) = cluster_secret().filter(|_| with_secret) {
        builder = builder
            .add_default_header((awc::http::header::AUTHORIZATION, format!("Bearer {secret}")));
    }
    builder.finish()
}

/// An awc client that carries the cluster secret, when there is one.
pub fn cluster_client(timeout: Duration) -> awc::Client {
    http_client(timeout, 100, true)
}

/// A blocking-free handle on the launcher's control API.
#[derive(Clone, Debug)]
pub struct Control {
    base: String,
}

impl Control {
    /// The control API at `base` (e.g. `http://127.0.0.1:8079`).
    pub fn new(base: &str) -> Control {
        Control {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, path: &str) -> anyhow::Result<T> {
        let client = cluster_client(Duration::from_secs(30));
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => client.post(&url),
            _ => client.get(&url),
        };
        let mut res = req.send().await.map_err(|e| {
            anyhow::anyhow!("launcher control API at {url}: {e} (is `tradenet up` running?)")
        })?;
        let body = res.body().limit(1 << 20).await.context("launcher answer")?;
        // The launcher's error objects are shown as they come: the text is what helps.
        anyhow::ensure!(
            res.status().is_success(),
            "launcher: {url}: {}",
            String::from_utf8_lossy(&body)
        );
        let answer: DataBody<T> = serde_json::from_slice(&body).with_context(|| {
            format!(
                "launcher: {url}: unexpected answer {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        Ok(answer.data)
    }

    /// SIGKILLs a service (`order-2`, `frontend`, ...).
    pub async fn kill(&self, name: &str) -> anyhow::Result<()> {
        self.call::<ProcessPid>("POST", &wire::control_kill_path(name))
            .await
            .map(|_| ())
    }

    /// Starts a service again and waits until it is healthy.
    pub async fn start(&self, name: &str) -> anyhow::Result<()> {
        self.call::<ProcessPid>("POST", &wire::control_start_path(name))
            .await
            .map(|_| ())
    }

    /// Restarts the front end with another cache size (0 = off) and waits until it is healthy.
    pub async fn restart_frontend(&self, cache_size: usize) -> anyhow::Result<()> {
        self.call::<ProcessPid>("POST", &wire::control_restart_frontend_path(cache_size))
            .await
            .map(|_| ())
    }

    /// Stops every service, removes their data and starts them all again (a fresh exchange);
    /// answers once every one is healthy.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.call::<Vec<tradenet_actors::wire::control::Process>>("POST", wire::CONTROL_RESET)
            .await
            .map(|_| ())
    }

    /// Every process the launcher owns (name, address, pid, running).
    pub async fn processes(&self) -> anyhow::Result<Vec<tradenet_actors::wire::control::Process>> {
        self.call("GET", wire::CONTROL_PROCESSES).await
    }

    /// Size and SHA-256 of each replica's order file.
    pub async fn digests(&self) -> anyhow::Result<Vec<Digest>> {
        self.call("GET", wire::CONTROL_DIGESTS).await
    }
}
