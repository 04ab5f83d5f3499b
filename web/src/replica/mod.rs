//! An order replica process: its files are loaded (stopping with a clear message if they are
//! damaged), the replication machine is handed to its driver actor (`driver`), and the routes
//! (`routes`) turn HTTP requests into the machine's requests. The protocol itself lives in
//! `tradenet_actors::replication`; see `docs/design.md`.

pub mod driver;
pub mod routes;

use crate::config::Config;
use crate::http::{self, Metrics};
use actix_web::web;
use driver::{DriverConfig, ReplicaDriver};
use futures::TryFutureExt;
use std::time::Duration;
use tradenet_actors::replication::files::ReplicaFiles;
use tradenet_actors::replication::Config as MachineConfig;
use tradenet_actors::replication::{Request, Response};
use tradenet_actors::wire::MAX_BODY_BYTES;

pub use routes::configure;

/// The replica's probes: live when its driver answers; ready when the machine says so (in
/// step with its leader, or no leader to follow).
fn probes(driver: &actix::Addr<ReplicaDriver>) -> http::Probes {
    let state = |driver: actix::Addr<ReplicaDriver>| async move {
        match driver.send(driver::Ask(Request::State)).await {
            Ok(Ok(Response::State(s))) => Ok(s),
            Ok(other) => Err(format!("the replica answered {other:?}")),
            Err(e) => Err(format!("the replica's actor does not answer: {e}")),
        }
    };
    let (a, b) = (driver.clone(), driver.clone());
    http::Probes {
        live: std::sync::Arc::new(move || Box::pin(state(a.clone()).map_ok(|_| ()))),
        ready: std::sync::Arc::new(move || {
            Box::pin(state(b.clone()).and_then(|s| async move {
                if s.ready {
                    Ok(())
                } else {
                    Err(format!(
                        "replica {} is {} and not yet in step with a leader",
                        s.id, s.role
                    ))
                }
            }))
        }),
    }
}

/// Loads replica `id`'s files from `config` and serves on `listener` until the process is
/// stopped; `/ready` answers 200 once the replica has recovered (in step with its leader, or
/// no leader to follow).
///
/// The driver actor starts on the first HTTP worker's thread (`http::serve`).
pub async fn run(config: Config, id: u64, listener: std::net::TcpListener) -> anyhow::Result<()> {
    config.replica(id)?;
    let files = ReplicaFiles::load(&config.service_dir(&format!("order-{id}")))
        .map_err(|e| anyhow::anyhow!("order replica {id} cannot start: {e}"))?;
    if !config.fsync {
        log::warn!("order replica {id}: fsync is OFF: acknowledged orders can be lost in a power failure (benchmarks only)");
    }
    let timeout = config.request_timeout();
    let workers = http::workers(config.order.workers);
    log::info!(
        "order replica {id} listening on {} ({workers} HTTP workers)",
        listener.local_addr()?
    );
    let heartbeat = config.heartbeat().as_millis() as u64;
    let mut machine = MachineConfig::new(
        id,
        config
            .replicas
            .iter()
            .filter(|r| r.id != id)
            .map(|r| r.id)
            .collect(),
    );
    machine.replicate_timeout = config.order.replicate_timeout_ms;
    machine.retry = heartbeat;
    machine.recovery_wait = heartbeat * 5;
    machine.max_batch_orders = config.order.batch_limit.max(1);
    // Half the receiver's body limit: the JSON around the orders never needs the other half.
    machine.max_batch_bytes = MAX_BODY_BYTES / 2;
    machine.catalog_group = config.catalog_group();
    let metrics = Metrics::new(&format!("order-{id}"));
    let driver_cfg = DriverConfig {
        machine,
        peers: config
            .replicas
            .iter()
            .filter(|r| r.id != id)
            .map(|r| (r.id, crate::config::url(&r.addr)))
            .collect(),
        catalogs: config
            .catalog_members()
            .iter()
            .map(|c| (c.id, crate::config::url(&c.addr)))
            .collect(),
        call_timeout: timeout.max(Duration::from_millis(config.order.replicate_timeout_ms)),
        fsync: config.fsync,
        on_sync: Some(crate::metrics::fsync_observer(&metrics.registry)),
    };
    let domain = crate::metrics::ReplicaMetrics::register(&metrics.registry);
    let scrape = metrics.clone();
    let start = move || {
        use actix::Actor;
        let driver = ReplicaDriver::new(files, driver_cfg).start();
        scrape.on_scrape(domain.refresh(driver.clone()));
        driver
    };
    http::serve(
        "order",
        metrics,
        listener,
        workers,
        start,
        move |driver, cfg| {
            cfg.app_data(web::Data::new(probes(&driver)))
                .app_data(web::Data::new(driver));
            configure(cfg);
        },
    )
    .await
}
