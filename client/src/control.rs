//! Calls to the launcher's control API (`tradenet up` owns the processes): kill and start a
//! service, restart the front end with another cache size, and compare the replicas' files.
//! Paths and answers are `tradenet_actors::wire` (`wire::control`).

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tradenet_actors::wire::control::{Digest, ProcessPid};
use tradenet_actors::wire::{self, DataBody};

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
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
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

    /// Size and SHA-256 of each replica's order file.
    pub async fn digests(&self) -> anyhow::Result<Vec<Digest>> {
        self.call("GET", wire::CONTROL_DIGESTS).await
    }
}
