//! The one configuration every process reads, loaded in layers: the embedded
//! `config/default.toml`, then the `--config` file, then `TRADENET__SECTION__KEY` environment
//! variables, then command-line flags. Unknown keys, wrong types, duplicate replica ids and
//! unreadable files stop the process with a message naming the key or the file.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tradenet_actors::types::StockSeed;

/// The embedded default configuration (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "TRADENET";

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Every service keeps its files below this folder, one subfolder each.
    pub data_dir: PathBuf,
    /// Sync durable writes before answering (false: benchmarks only).
    pub fsync: bool,
    /// Log filter used when `RUST_LOG` is not set.
    pub log: String,
    /// The catalog service.
    pub catalog: CatalogConfig,
    /// The front end.
    pub frontend: FrontendConfig,
    /// Settings shared by the order replicas.
    pub order: OrderConfig,
    /// The launcher (`tradenet up`).
    pub launcher: LauncherConfig,
    /// Who may call the internal and control APIs.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// TLS on every listener and call.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The order replicas.
    pub replicas: Vec<ReplicaConfig>,
    /// A catalog group (`[[catalogs]]`): one primary, the others standbys following the order
    /// log (`docs/catalog-failover.md`). Empty: one catalog at `[catalog] addr`.
    #[serde(default)]
    pub catalogs: Vec<CatalogMember>,
}

/// One `[[catalogs]]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CatalogMember {
    /// Unique positive id; the highest live id is primary.
    pub id: u64,
    /// Listen and contact address, `host:port`.
    pub addr: String,
}

/// `[cluster]`: the secret every internal and control call carries as
/// `Authorization: Bearer <secret>`. Neither key set: no secret (internal calls are open, which
/// only a cluster on loopback may run with).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The secret itself (or `TRADENET__CLUSTER__SECRET`).
    pub secret: String,
    /// A file holding the secret (surrounding white space ignored).
    pub secret_file: String,
}

/// `[tls]`: PEM files; all three or none (plain HTTP).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This process's certificate chain, its own first.
    pub cert: String,
    /// Its private key.
    pub key: String,
    /// The CA every caller trusts, and nothing else.
    pub ca: String,
}

/// `[launcher]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LauncherConfig {
    /// Where `tradenet up` serves its control API (kill/start a service, restart the front end
    /// with another cache size, digests of the order files); empty turns it off.
    pub control_addr: String,
    /// A command every service is started under, e.g. `ip netns exec tn-{name}` to run each in
    /// its own network namespace (`{name}`: `catalog`, `order-N`, `frontend`). It must exec the
    /// service in its own process (as `ip netns exec` does), so that the launcher's kill and
    /// stop reach it. Empty: the services are started directly.
    #[serde(default)]
    pub wrap: String,
}

/// `[catalog]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Listen and contact address, `host:port`.
    pub addr: String,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Recent trades kept by request id.
    pub trade_window: usize,
    /// Snapshot after this many trades.
    pub snapshot_every: u64,
    /// Initial stocks.
    pub stocks: Vec<StockSeed>,
}

/// `[frontend]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// Listen address for clients, `host:port`.
    pub addr: String,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// LRU capacity; 0 turns the cache off.
    pub cache_size: usize,
    /// Heartbeat interval for replicas and the catalog link (the catalog pings its
    /// subscribers at this pace too).
    pub heartbeat_ms: u64,
    /// Cache hits are served only while a push or ping from the catalog arrived within this
    /// lease (at least two heartbeats); past it, lookups go to the catalog.
    pub cache_lease_ms: u64,
    /// Timeout of one call to another service.
    pub request_timeout_ms: u64,
    /// How long an order may wait for a leader before a 503.
    pub failover_timeout_ms: u64,
    /// Test only: delay before a cache fill.
    pub fill_delay_ms: u64,
}

/// `[order]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfig {
    /// HTTP worker threads per replica (0: one per core).
    pub workers: usize,
    /// How long the leader waits for a follower's acknowledgement.
    pub replicate_timeout_ms: u64,
    /// Orders per replication or catch-up batch.
    pub batch_limit: usize,
}

/// One `[[replicas]]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Unique positive id; the highest live id leads.
    pub id: u64,
    /// Listen and contact address, `host:port`.
    pub addr: String,
}

impl Config {
    /// Loads the layers: embedded default, `file`, environment, then `overrides`
    /// (`("frontend.cache_size", "0")`, from flags).
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> anyhow::Result<Config> {
        let mut merged: toml::Table = DEFAULT_TOML.parse().context("embedded default config")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            // A file that names the one catalog's address and lists no catalog group means
            // one catalog, whatever group the embedded default lists.
            let names_one = table
                .get("catalog")
                .and_then(|c| c.as_table())
                .is_some_and(|c| c.contains_key("addr"));
            if names_one && !table.contains_key("catalogs") {
                merged.remove("catalogs");
            }
            merge(&mut merged, table);
        }
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            &toml::to_string(&merged)?,
            config::FileFormat::Toml,
        ));
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        for (key, value) in overrides {
            builder = builder.set_override(*key, value.as_str())?;
        }
        let source = file.map_or("the embedded default".to_string(), |p| {
            p.display().to_string()
        });
        let config: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| {
                anyhow::anyhow!("configuration ({source} + TRADENET__* environment): {e}")
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_addr("catalog.addr", &self.catalog.addr)?;
        check_addr("frontend.addr", &self.frontend.addr)?;
        if !self.launcher.control_addr.is_empty() {
            check_addr("launcher.control_addr", &self.launcher.control_addr)?;
        }
        if !self.launcher.wrap.is_empty() && self.launcher.wrap.split_whitespace().next().is_none()
        {
            bail!("launcher.wrap: a command is needed (or \"\" for none)");
        }
        let mut ids = std::collections::HashSet::new();
        for r in &self.replicas {
            if r.id == 0 {
                bail!("replicas: id must be a positive integer, got 0");
            }
            if !ids.insert(r.id) {
                bail!("replicas: id {} is listed twice; ids must be unique", r.id);
            }
            check_addr(&format!("replicas (id {}).addr", r.id), &r.addr)?;
        }
        let mut catalog_ids = std::collections::HashSet::new();
        for c in &self.catalogs {
            if c.id == 0 {
                bail!("catalogs: id must be a positive integer, got 0");
            }
            if !catalog_ids.insert(c.id) {
                bail!("catalogs: id {} is listed twice; ids must be unique", c.id);
            }
            check_addr(&format!("catalogs (id {}).addr", c.id), &c.addr)?;
        }
        if self.frontend.heartbeat_ms == 0 {
            bail!("frontend.heartbeat_ms must be at least 1");
        }
        if self.frontend.cache_lease_ms < 2 * self.frontend.heartbeat_ms {
            bail!(
                "frontend.cache_lease_ms ({}) must be at least two heartbeats ({} ms): the catalog pings once a heartbeat",
                self.frontend.cache_lease_ms,
                2 * self.frontend.heartbeat_ms
            );
        }
        if self.catalog.stocks.is_empty() {
            bail!("catalog.stocks: at least one stock is needed");
        }
        Ok(())
    }

    /// The replica with this id.
    pub fn replica(&self, id: u64) -> anyhow::Result<&ReplicaConfig> {
        self.replicas.iter().find(|r| r.id == id).with_context(|| {
            let ids: Vec<_> = self.replicas.iter().map(|r| r.id).collect();
            format!("no replica with id {id} in the configuration (ids: {ids:?})")
        })
    }

    /// The catalogs: `[[catalogs]]`, or the one at `[catalog] addr` (id 1).
    pub fn catalog_members(&self) -> Vec<CatalogMember> {
        if self.catalogs.is_empty() {
            vec![CatalogMember {
                id: 1,
                addr: self.catalog.addr.clone(),
            }]
        } else {
            self.catalogs.clone()
        }
    }

    /// More than one catalog: a primary and standbys, chosen by the front ends' supervisors.
    pub fn catalog_group(&self) -> bool {
        self.catalogs.len() > 1
    }

    /// The catalog with this id.
    pub fn catalog_member(&self, id: u64) -> anyhow::Result<CatalogMember> {
        let all = self.catalog_members();
        all.iter().find(|c| c.id == id).cloned().with_context(|| {
            let ids: Vec<_> = all.iter().map(|c| c.id).collect();
            format!("no catalog with id {id} in the configuration (ids: {ids:?})")
        })
    }

    /// The name a catalog goes by in logs, the launcher and its data folder: `catalog` for
    /// one catalog, `catalog-N` in a group.
    pub fn catalog_name(&self, id: u64) -> String {
        if self.catalog_group() {
            format!("catalog-{id}")
        } else {
            "catalog".to_string()
        }
    }

    /// The cluster secret, from `[cluster] secret` or the file `secret_file` names; `None`
    /// when neither is set. An unreadable or empty secret file is an error naming it.
    pub fn secret(&self) -> anyhow::Result<Option<String>> {
        if !self.cluster.secret.is_empty() {
            return Ok(Some(self.cluster.secret.clone()));
        }
        if self.cluster.secret_file.is_empty() {
            return Ok(None);
        }
        let path = &self.cluster.secret_file;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cluster.secret_file: cannot read {path}"))?;
        let secret = text.trim();
        if secret.is_empty() {
            bail!("cluster.secret_file: {path} is empty");
        }
        Ok(Some(secret.to_string()))
    }

    /// The TLS configurations of `[tls]`; `None` when it is not set. Some keys set but not
    /// all, or a file that is missing or not what it should be, is an error naming it.
    pub fn tls(&self) -> anyhow::Result<Option<crate::http::Tls>> {
        let t = &self.tls;
        let keys = [("cert", &t.cert), ("key", &t.key), ("ca", &t.ca)];
        let missing: Vec<&str> = keys
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| *k)
            .collect();
        if missing.len() == keys.len() {
            return Ok(None);
        }
        if !missing.is_empty() {
            bail!(
                "[tls] needs cert, key and ca together; missing: tls.{}",
                missing.join(", tls.")
            );
        }
        use tradenet_actors::tls;
        Ok(Some(crate::http::Tls {
            server: tls::server_config(Path::new(&t.cert), Path::new(&t.key))
                .context("tls.cert/tls.key")?,
            client: tls::client_config(Path::new(&t.ca)).context("tls.ca")?,
        }))
    }

    /// Like Redis's protected mode: a service that listens beyond loopback must have a cluster
    /// secret, or anyone who reaches the port could call its internal API. `what` names the
    /// listener in the message.
    pub fn require_secret_beyond_loopback(&self, what: &str, addr: &str) -> anyhow::Result<()> {
        if is_loopback(addr) || self.secret()?.is_some() {
            return Ok(());
        }
        bail!(
            "{what} would listen on {addr}, beyond loopback, with no cluster secret: anyone who \
             reaches it could call its internal API. Set [cluster] secret or secret_file (or \
             TRADENET__CLUSTER__SECRET), the same for every process of the cluster, or listen \
             on 127.0.0.1"
        )
    }

    /// The folder of one service below `data_dir`.
    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.data_dir.join(service)
    }

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.frontend.heartbeat_ms)
    }

    /// Timeout for one call between services.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.frontend.request_timeout_ms)
    }
}

/// True for `127.x.x.x:port`, `localhost:port` and `[::1]:port`.
pub fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Tables merge key by key; anything else (arrays included) in `top` replaces `base`.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn check_addr(key: &str, addr: &str) -> anyhow::Result<()> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        bail!("{key}: expected host:port, got {addr:?}");
    }
    Ok(())
}

/// Turns a `host:port` into a base URL: `https://` when this process runs with TLS.
pub fn url(addr: &str) -> String {
    format!("{}://{addr}", crate::http::scheme())
}

#[cfg(test)]
mod tests {

    #[test]
    fn tls_needs_all_three_files_and_names_what_is_wrong() {
        use super::*;
        let c = Config::load(None, &[]).unwrap();
        assert!(c.tls().unwrap().is_none(), "no [tls]: plain HTTP");
        let c = Config::load(None, &[("tls.cert", "/x/cert.pem".into())]).unwrap();
        let e = c.tls().unwrap_err().to_string();
        assert!(e.contains("missing: tls.key, tls.ca"), "{e}");
        let c = Config::load(
            None,
            &[
                ("tls.cert", "/nonexistent/cert.pem".into()),
                ("tls.key", "/nonexistent/key.pem".into()),
                ("tls.ca", "/nonexistent/ca.pem".into()),
            ],
        )
        .unwrap();
        let e = format!("{:#}", c.tls().unwrap_err());
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn only_loopback_listeners_may_run_without_a_secret() {
        assert!(is_loopback("127.0.0.1:8081"));
        assert!(is_loopback("127.0.0.10:8081"));
        assert!(is_loopback("localhost:8081"));
        assert!(is_loopback("[::1]:8081"));
        assert!(!is_loopback("0.0.0.0:8081"));
        assert!(!is_loopback("10.1.2.3:8081"));
        assert!(!is_loopback("catalog:8082"));
        let mut c = Config::load(None, &[]).unwrap();
        assert!(c
            .require_secret_beyond_loopback("catalog", "127.0.0.1:1")
            .is_ok());
        let err = c
            .require_secret_beyond_loopback("catalog", "0.0.0.0:8082")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no cluster secret") && err.contains("0.0.0.0:8082"),
            "{err}"
        );
        c.cluster.secret = "s".into();
        assert!(c
            .require_secret_beyond_loopback("catalog", "0.0.0.0:8082")
            .is_ok());
    }

    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("t.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn embedded_default_has_the_course_layout() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.catalog.stocks.len(), 16);
        assert_eq!(c.catalog.stocks[0].name, "GameStart");
        assert_eq!(c.catalog.stocks[0].price, 15.99);
        assert!(c.catalog.stocks.iter().all(|s| s.quantity == 100));
        assert_eq!(c.frontend.addr, "127.0.0.1:8081");
        assert_eq!(c.frontend.cache_size, 10);
        assert_eq!(c.launcher.wrap, "", "services start directly by default");
        assert_eq!(
            c.replicas.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn file_overrides_and_replaces_the_replica_list() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[frontend]\ncache_size = 3\n[[replicas]]\nid = 7\naddr = \"127.0.0.1:9\"\n",
        );
        let c = Config::load(Some(&p), &[]).unwrap();
        assert_eq!(c.frontend.cache_size, 3);
        assert_eq!(
            c.frontend.heartbeat_ms, 200,
            "untouched keys keep their default"
        );
        assert_eq!(
            c.replicas,
            vec![ReplicaConfig {
                id: 7,
                addr: "127.0.0.1:9".into()
            }]
        );
    }

    #[test]
    fn flags_override_the_file() {
        let c = Config::load(None, &[("frontend.cache_size", "0".into())]).unwrap();
        assert_eq!(c.frontend.cache_size, 0);
    }

    #[test]
    fn errors_name_the_key_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(
            Some(&write(dir.path(), "[frontend]\ncache_size = \"ten\"\n")),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cache_size"), "{err}");
        let err = Config::load(
            Some(&write(dir.path(), "[frontend]\ncache_sise = 1\n")),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cache_sise"), "{err}");
        let dup = "[[replicas]]\nid = 1\naddr = \"a:1\"\n[[replicas]]\nid = 1\naddr = \"a:2\"\n";
        let err = Config::load(Some(&write(dir.path(), dup)), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("id 1 is listed twice"), "{err}");
        let err = Config::load(Some(&write(dir.path(), "[launcher]\nwrap = \"  \"\n")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("launcher.wrap"), "{err}");
        let err = Config::load(Some(Path::new("/nonexistent/x.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }
}
