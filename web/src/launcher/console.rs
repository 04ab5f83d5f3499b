//! The live console of `tradenet up`: a web page at the control address (`/`, plain HTML, CSS
//! and JavaScript embedded in the binary: no CDN, no build step) and the two calls it makes
//! beside the control API's kill and start:
//!
//! - `GET /control/v1/overview`: every process the launcher owns with its `/ready` and the
//!   `data` of its `/status`, asked of all of them at once, and the front end's request counts
//!   by route from its `/metrics` (the page turns two readings into a rate and a latency);
//! - `POST /control/v1/load?clients=N&seconds=S&p=P`: a short, bounded load at the front end
//!   from a thread of the launcher, so a learner can watch the cache and the leader work.
//!
//! The page itself is open; its calls carry the cluster secret, which it reads from the
//! `#token=` fragment of the URL `tradenet up` prints (a fragment never reaches a server).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tradenet_actors::wire::{self, control as shapes, DataBody};

use super::control::{ask_processes, Commands};
use crate::error::ApiError;
use crate::http;

/// The page.
const PAGE: &str = include_str!("console.html");

/// How long the overview waits for one process's `/status`, `/ready` or `/metrics`.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// What the console needs to know of the configuration: the stocks a load looks up.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Stock names, from `[catalog] stocks`.
    pub stocks: Vec<String>,
}

/// Registers the page and its two calls; they need [`Commands`] and [`ConsoleConfig`] as app
/// data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(wire::CONSOLE, web::get().to(page))
        .route(wire::CONTROL_OVERVIEW, web::get().to(overview))
        .route(wire::CONTROL_LOAD, web::post().to(load));
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(PAGE)
}

async fn overview(commands: web::Data<Commands>) -> Result<HttpResponse, ApiError> {
    let processes = ask_processes(&commands).await?;
    let running: Vec<(String, String)> = processes
        .iter()
        .filter(|p| p.running)
        .map(|p| (p.name.clone(), p.addr.clone()))
        .collect();
    let mut rows = web::block(move || crate::status::ask(running, ASK_TIMEOUT))
        .await
        .map_err(|e| ApiError::unavailable(format!("asking the processes: {e}")))?
        .into_iter();
    let processes: Vec<shapes::ProcessView> = processes
        .into_iter()
        .map(|p| {
            let row = p.running.then(|| rows.next()).flatten();
            shapes::ProcessView {
                addr: p.addr,
                name: p.name,
                pid: p.pid,
                ready: row.as_ref().is_some_and(|r| r.ready),
                running: p.running,
                status: row.and_then(|r| r.status),
            }
        })
        .collect();
    let client = http::client(ASK_TIMEOUT);
    let requests = match processes.iter().find(|p| p.name == "frontend" && p.running) {
        Some(f) => front_end_requests(&client, &f.addr).await,
        None => Vec::new(),
    };
    Ok(http::ok(shapes::Overview {
        processes,
        requests,
    }))
}

/// The front end's request counts and total latency by route, read from its `/metrics`.
async fn front_end_requests(client: &awc::Client, addr: &str) -> Vec<shapes::RouteCount> {
    let url = format!("{}{}", crate::config::url(addr), wire::METRICS);
    let Ok(mut res) = client.get(&url).send().await else {
        return Vec::new();
    };
    let Ok(body) = res.body().limit(8 << 20).await else {
        return Vec::new();
    };
    route_counts(&String::from_utf8_lossy(&body))
}

/// Sums `http_requests_total` (over statuses) and `http_request_duration_seconds_sum` by route
/// in a Prometheus text exposition.
pub fn route_counts(text: &str) -> Vec<shapes::RouteCount> {
    let mut by_route: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(route) = series
            .split("route=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let entry = by_route.entry(route.to_string()).or_default();
        if series.starts_with("tradenet_http_requests_total{") {
            entry.0 += value as u64;
        } else if series.starts_with("tradenet_http_request_duration_seconds_sum{") {
            entry.1 += value;
        }
    }
    by_route
        .into_iter()
        .filter(|(_, (count, _))| *count > 0)
        .map(|(route, (count, seconds))| shapes::RouteCount {
            count,
            route,
            seconds,
        })
        .collect()
}

/// `?clients=N&seconds=S&p=P`, each optional.
#[derive(Deserialize)]
struct LoadQuery {
    clients: Option<u32>,
    seconds: Option<u32>,
    p: Option<f64>,
}

/// One load at a time: a second request while one runs is refused.
static LOAD_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn load(
    commands: web::Data<Commands>,
    config: web::Data<ConsoleConfig>,
    query: web::Query<LoadQuery>,
) -> Result<HttpResponse, ApiError> {
    let load = shapes::Load {
        clients: query.clients.unwrap_or(4),
        p: query.p.unwrap_or(0.5),
        seconds: query.seconds.unwrap_or(5),
    };
    if !(1..=32).contains(&load.clients)
        || !(1..=60).contains(&load.seconds)
        || !(0.0..=1.0).contains(&load.p)
    {
        return Err(ApiError::bad_request(format!(
            "a load needs clients 1-32, seconds 1-60 and p 0-1; got clients {}, seconds {}, p {}",
            load.clients, load.seconds, load.p
        )));
    }
    let frontend = ask_processes(&commands)
        .await?
        .into_iter()
        .find(|p| p.name == "frontend" && p.running)
        .ok_or_else(|| ApiError::unavailable("the front end is not running"))?;
    if config.stocks.is_empty() {
        return Err(ApiError::bad_request("no stocks configured"));
    }
    if LOAD_RUNNING.swap(true, Ordering::SeqCst) {
        return Err(super::control::conflict("a load is already running"));
    }
    let base = crate::config::url(&frontend.addr);
    let (stocks, started, at) = (config.stocks.clone(), load.clone(), base.clone());
    std::thread::Builder::new()
        .name("console-load".into())
        .spawn(move || {
            run_load(&at, &stocks, &started);
            LOAD_RUNNING.store(false, Ordering::SeqCst);
        })
        .map_err(|e| {
            LOAD_RUNNING.store(false, Ordering::SeqCst);
            ApiError::unavailable(format!("cannot start the load: {e}"))
        })?;
    log::info!(
        "console: load of {} clients for {} s (p = {}) at {base}",
        load.clients,
        load.seconds,
        load.p
    );
    Ok(HttpResponse::Accepted().json(DataBody { data: load }))
}

/// Runs `load` at the front end `base` and logs what it did. Each session is bounded by the
/// deadline; a request's own time-out is 2 s.
fn run_load(base: &str, stocks: &[String], load: &shapes::Load) {
    let deadline = Instant::now() + Duration::from_secs(load.seconds.into());
    let agent = http::blocking_agent(Duration::from_secs(1), Duration::from_secs(2));
    let counts = Arc::new([(); 3].map(|_| AtomicU64::new(0)));
    let sessions: Vec<_> = (0..load.clients)
        .map(|i| {
            let (agent, counts) = (agent.clone(), counts.clone());
            let (base, stocks, p) = (base.to_string(), stocks.to_vec(), load.p);
            std::thread::spawn(move || {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(i));
                while Instant::now() < deadline {
                    let name = &stocks[rng.gen_range(0..stocks.len())];
                    let looked = agent
                        .get(&format!("{base}{}", wire::stock_path(name)))
                        .call();
                    counts[0].fetch_add(1, Ordering::Relaxed);
                    let ok = looked.is_ok();
                    if !ok {
                        counts[2].fetch_add(1, Ordering::Relaxed);
                    }
                    if ok && rng.gen_bool(p) {
                        let kind = if rng.gen_bool(0.5) { "buy" } else { "sell" };
                        let body = serde_json::json!({"name": name, "quantity": 1, "type": kind});
                        let traded = agent
                            .post(&format!("{base}{}", wire::ORDERS))
                            .send_json(body);
                        counts[1].fetch_add(1, Ordering::Relaxed);
                        // 409 (not enough to buy) is the market's answer, not an error.
                        if !matches!(traded, Ok(_) | Err(ureq::Error::Status(409, _))) {
                            counts[2].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for s in sessions {
        let _ = s.join();
    }
    log::info!(
        "console: load done: {} lookups, {} trades, {} errors",
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_counts_sum_statuses_and_keep_latency_sums() {
        let text = "# HELP x\n\
            tradenet_http_requests_total{route=\"/orders\",service=\"frontend\",status=\"200\"} 7\n\
            tradenet_http_requests_total{route=\"/orders\",service=\"frontend\",status=\"409\"} 3\n\
            tradenet_http_request_duration_seconds_sum{route=\"/orders\",service=\"frontend\"} 0.5\n\
            tradenet_http_request_duration_seconds_count{route=\"/orders\",service=\"frontend\"} 10\n\
            tradenet_http_requests_total{route=\"/stocks/{name}\",service=\"frontend\",status=\"200\"} 2\n\
            tradenet_leader_epoch{service=\"frontend\"} 3\n";
        let counts = route_counts(text);
        assert_eq!(
            counts,
            vec![
                shapes::RouteCount {
                    count: 10,
                    route: "/orders".into(),
                    seconds: 0.5
                },
                shapes::RouteCount {
                    count: 2,
                    route: "/stocks/{name}".into(),
                    seconds: 0.0
                },
            ]
        );
    }
}
