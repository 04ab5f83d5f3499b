//! Calls to the launcher's control API (`tradenet up` owns the processes): kill and start a
//! service, restart the front end with another cache size, and compare the replicas' files.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

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

    async fn call(&self, method: &str, path: &str) -> anyhow::Result<Value> {
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
        let body: Value = res.json().limit(1 << 20).await.context("launcher answer")?;
        anyhow::ensure!(res.status().is_success(), "launcher: {url}: {body}");
        Ok(body["data"].clone())
    }

    /// SIGKILLs a service (`order-2`, `frontend`, ...).
    pub async fn kill(&self, name: &str) -> anyhow::Result<()> {
        self.call("POST", &format!("/control/v1/kill/{name}"))
            .await
            .map(|_| ())
    }

    /// Starts a service again and waits until it is healthy.
    pub async fn start(&self, name: &str) -> anyhow::Result<()> {
        self.call("POST", &format!("/control/v1/start/{name}"))
            .await
            .map(|_| ())
    }

    /// Restarts the front end with another cache size (0 = off) and waits until it is healthy.
    pub async fn restart_frontend(&self, cache_size: usize) -> anyhow::Result<()> {
        self.call(
            "POST",
            &format!("/control/v1/restart/frontend?cache_size={cache_size}"),
        )
        .await
        .map(|_| ())
    }

    /// SHA-256 of each replica's order file: `[{name, bytes, sha256}]`.
    pub async fn digests(&self) -> anyhow::Result<Vec<(String, u64, String)>> {
        let v = self.call("GET", "/control/v1/digests").await?;
        Ok(v.as_array()
            .context("digest list")?
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_string(),
                    d["bytes"].as_u64().unwrap_or_default(),
                    d["sha256"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}
