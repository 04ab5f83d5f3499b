//! The `run` experiment: N client sessions, each looking up a random stock and, when its
//! quantity is above zero, trading it with probability p; every order placed is recorded and
//! read back at the end. Sessions are spread over OS threads, one actix System and one awc
//! client per thread (awc clients are not `Send`).

use crate::stats::{Kind, Sample};
use anyhow::Context;
use futures::future::join_all;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::frontend::{OrderPlaced, OrderRequest, OrderView, Stock};
use tradenet_actors::wire::{self, DataBody};

/// The default course stocks, used when the tool is not told otherwise.
pub const DEFAULT_STOCKS: [&str; 16] = [
    "GameStart",
    "FishCo",
    "BoarCo",
    "MenhirCo",
    "RottenFishCo",
    "CaesarTech",
    "Reneium",
    "Goscinnyium",
    "PiloteCo",
    "DogmatixCo",
    "LutetiaTech",
    "ObelixCo",
    "GetafixLabs",
    "VitalstatixCo",
    "CacofonixCo",
    "UnhygienixCo",
];

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// Front end base URL, e.g. `http://127.0.0.1:8081`.
    pub frontend: String,
    /// More front ends of the same exchange: a session whose front end stops answering (no
    /// answer, or 503) moves to the next one and sends the same request again, a trade with
    /// the same Idempotency-Key, until `timeout` has passed. Empty: no moving.
    pub others: Vec<String>,
    /// Concurrent client sessions.
    pub clients: usize,
    /// Lookups per session.
    pub iterations: usize,
    /// Probability of trading after a lookup that shows quantity above zero.
    pub p: f64,
    /// Seed for the random choices (each session derives its own).
    pub seed: u64,
    /// Stocks to choose from.
    pub stocks: Vec<String>,
    /// OS threads to spread sessions over.
    pub threads: usize,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Stop early once this much time has passed (chaos runs).
    pub time_limit: Option<Duration>,
    /// Timeout for one request.
    pub timeout: Duration,
}

/// The pause before a request is sent again to the next front end.
const MOVE_PAUSE: Duration = Duration::from_millis(20);

/// What a run measured and found.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Every request.
    pub samples: Vec<Sample>,
    /// Every order placed, as `GET /orders/{number}` should read it back.
    pub orders: Vec<OrderView>,
    /// One line per order that read back differently (or not at all).
    pub mismatches: Vec<String>,
    /// Wall time of the load phase.
    pub elapsed: Duration,
    /// What the first failed request (no answer, or a status but 2xx and 409) came to.
    pub first_error: Option<String>,
    /// Times a session moved to another front end.
    pub moves: u64,
}

struct Session<'a> {
    id: usize,
    client: &'a awc::Client,
    /// The front ends, the one in use at `current`.
    bases: Vec<&'a str>,
    current: usize,
    /// How long a request may go on moving between front ends.
    failover: Duration,
    /// Unique to this run, so that keys never meet an earlier run's in the catalog's window.
    run_nonce: u64,
    trades: u64,
    moves: u64,
    t0: Instant,
    samples: Vec<Sample>,
    first_error: Option<String>,
}

impl Session<'_> {
    /// Sends a GET of `path`, or a POST of `body` as JSON with `key` as its Idempotency-Key,
    /// to the front end in use; with more than one front end, moves to the next and sends it
    /// again while the answer is none or 503, up to the failover window. Records one sample
    /// (the whole time, the last status) and returns the status and the answer's bytes (None
    /// when there was no answer).
    async fn call(
        &mut self,
        kind: Kind,
        path: &str,
        body: Option<(&OrderRequest, &str)>,
    ) -> (u16, Option<Vec<u8>>) {
        let start = Instant::now();
        let (status, value, error) = loop {
            let url = format!("{}{path}", self.bases[self.current]);
            let res = match body {
                Some((order, key)) => {
                    self.client
                        .post(url)
                        .insert_header(("Idempotency-Key", key))
                        .send_json(order)
                        .await
                }
                None => self.client.get(url).send().await,
            };
            let (status, value, error) = match res {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let bytes = r.body().limit(1 << 20).await.ok().map(|b| b.to_vec());
                    let text = bytes.as_deref().map_or(String::new(), |b| {
                        String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()
                    });
                    (status, bytes, format!("answered {status}: {text}"))
                }
                Err(e) => (0, None, format!("no answer: {e}")),
            };
            let unanswered = status == 0 || status == 503;
            if !unanswered || self.bases.len() < 2 || start.elapsed() >= self.failover {
                break (status, value, error);
            }
            self.current = (self.current + 1) % self.bases.len();
            self.moves += 1;
            actix_rt::time::sleep(MOVE_PAUSE).await;
        };
        let sample = Sample {
            session: self.id,
            kind,
            start_us: start.duration_since(self.t0).as_micros() as u64,
            latency_us: start.elapsed().as_micros() as u64,
            status,
        };
        if sample.is_error() && self.first_error.is_none() {
            let at = self.bases[self.current];
            self.first_error = Some(format!("{} at {at}: {error}", kind.name()));
        }
        self.samples.push(sample);
        (status, value)
    }

    async fn lookup(&mut self, name: &str) -> Option<u64> {
        match self.call(Kind::Lookup, &wire::stock_path(name), None).await {
            (200, Some(b)) => data::<Stock>(&b).map(|s| s.quantity),
            _ => None,
        }
    }

    async fn trade(&mut self, order: &OrderRequest) -> Option<u64> {
        self.trades += 1;
        let key = format!("{:016x}-{}-{}", self.run_nonce, self.id, self.trades);
        match self
            .call(Kind::Trade, wire::ORDERS, Some((order, &key)))
            .await
        {
            (200, Some(b)) => data::<OrderPlaced>(&b).map(|p| p.transaction_number),
            _ => None,
        }
    }

    async fn query(&mut self, n: u64) -> (u16, Option<Vec<u8>>) {
        self.call(Kind::Query, &wire::order_path(n), None).await
    }
}

/// The payload of a `{"data": ...}` answer, None when the answer is not one of `T`.
pub fn data<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice::<DataBody<T>>(body)
        .ok()
        .map(|d| d.data)
}

/// Compares an order's read-back (status and answer bytes) with what was placed; None when
/// they agree.
pub fn mismatch(placed: &OrderView, status: u16, body: Option<&[u8]>) -> Option<String> {
    let read = body.and_then(data::<OrderView>);
    let agrees = status == 200 && read.as_ref() == Some(placed);
    (!agrees).then(|| {
        format!(
            "order {}: placed {} {} {}, read back {status} {}",
            placed.number,
            placed.kind,
            placed.quantity,
            placed.name,
            body.map_or("(no body)".into(), String::from_utf8_lossy)
        )
    })
}

/// A session's requests, the orders it placed, its mismatches, its first error and how many
/// times it moved to another front end.
type SessionResult = (
    Vec<Sample>,
    Vec<OrderView>,
    Vec<String>,
    Option<String>,
    u64,
);

#[allow(clippy::too_many_arguments)]
async fn session(
    id: usize,
    opts: &RunOpts,
    client: &awc::Client,
    t0: Instant,
    run_nonce: u64,
    stop: &AtomicBool,
    bar: &ProgressBar,
) -> SessionResult {
    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(id as u64 * 7919));
    let mut bases: Vec<&str> = std::iter::once(opts.frontend.as_str())
        .chain(opts.others.iter().map(String::as_str))
        .collect();
    // Sessions start spread over the front ends.
    let first = id % bases.len();
    bases.rotate_left(first);
    let mut s = Session {
        id,
        client,
        bases,
        current: 0,
        failover: opts.timeout,
        run_nonce,
        trades: 0,
        moves: 0,
        t0,
        samples: Vec::new(),
        first_error: None,
    };
    let mut placed = Vec::new();
    for _ in 0..opts.iterations {
        if stop.load(Ordering::Relaxed) || opts.time_limit.is_some_and(|l| t0.elapsed() >= l) {
            break;
        }
        let name = opts.stocks[rng.gen_range(0..opts.stocks.len())].clone();
        if let Some(quantity) = s.lookup(&name).await {
            if quantity > 0 && rng.gen_bool(opts.p.clamp(0.0, 1.0)) {
                let kind = if rng.gen_bool(0.5) {
                    TradeKind::Buy
                } else {
                    TradeKind::Sell
                };
                let order = OrderRequest {
                    name,
                    quantity: rng.gen_range(1..=quantity.min(5)),
                    kind,
                };
                if let Some(number) = s.trade(&order).await {
                    placed.push(OrderView {
                        name: order.name,
                        number,
                        quantity: order.quantity,
                        kind: order.kind,
                    });
                }
            }
        }
        bar.inc(1);
    }
    let mut mismatches = Vec::new();
    for p in &placed {
        let (status, body) = s.query(p.number).await;
        mismatches.extend(mismatch(p, status, body.as_deref()));
    }
    (s.samples, placed, mismatches, s.first_error, s.moves)
}

/// A client for one thread's sessions.
pub fn client(timeout: Duration, connections: usize) -> awc::Client {
    crate::control::http_client(timeout, connections, false)
}

/// Runs the experiment; see the module docs.
pub fn run(opts: &RunOpts, stop: Arc<AtomicBool>) -> anyhow::Result<RunReport> {
    anyhow::ensure!(opts.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.p),
        "--p must be between 0 and 1, got {}",
        opts.p
    );
    anyhow::ensure!(!opts.stocks.is_empty(), "no stocks to trade");
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new((opts.clients * opts.iterations) as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} lookups  {per_sec}  eta {eta}")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let run_nonce = rand::random::<u64>();
    let threads = opts.threads.clamp(1, opts.clients);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let opts = opts.clone();
            let stop = stop.clone();
            let bar = bar.clone();
            std::thread::Builder::new()
                .name(format!("client-{t}"))
                .spawn(move || {
                    actix_rt::System::new().block_on(async move {
                        let ids: Vec<usize> = (t..opts.clients).step_by(threads).collect();
                        let client = client(opts.timeout, ids.len());
                        let sessions = ids
                            .iter()
                            .map(|&id| session(id, &opts, &client, t0, run_nonce, &stop, &bar));
                        join_all(sessions).await
                    })
                })
                .context("spawn client thread")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut report = RunReport::default();
    for h in handles {
        let results = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        for (samples, orders, mismatches, first_error, moves) in results {
            report.first_error = report.first_error.or(first_error);
            report.moves += moves;
            report.samples.extend(samples);
            report.orders.extend(orders);
            report.mismatches.extend(mismatches);
        }
    }
    report.elapsed = t0.elapsed();
    bar.finish_and_clear();
    report.samples.sort_by_key(|s| s.start_us);
    report.orders.sort_by_key(|o| o.number);
    // Two sessions must never have been given the same number.
    for w in report.orders.windows(2) {
        if w[0].number == w[1].number {
            report.mismatches.push(format!(
                "order {} was given to two different requests",
                w[0].number
            ));
        }
    }
    Ok(report)
}

/// Writes one CSV row per request.
pub fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("create {}", path.display()))?;
    for s in samples {
        w.serialize(s)?;
    }
    w.flush()?;
    Ok(())
}
