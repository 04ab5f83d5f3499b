//! The front end's batcher for orders on their way to the leader: one HTTP call carries every
//! order that was waiting when the previous call left, instead of one call per order.
//!
//! Batches form under load and only then: with a call slot free, an order leaves at once,
//! alone. At most [`MAX_CALLS`] calls are out to one leader; orders that arrive meanwhile wait
//! and leave together, at most [`MAX_PLACE_BATCH`] orders and [`MAX_BATCH_BYTES`] bytes a call.
//! Each order keeps its own request id and gets its own answer (the leader places each as if it
//! came alone); a call that fails fails each of its orders, which the front end's failover loop
//! (`frontend::with_leader`) retries one by one under the same request id.

use crate::error::{ApiError, ApiResult};
use crate::http;
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::orderlog::Order;
use tradenet_actors::wire;
use tradenet_actors::wire::frontend::PlaceOrder;
use tradenet_actors::wire::replica::{PlaceBatch, PlaceResult, PlaceResults, MAX_PLACE_BATCH};

/// Calls out to one leader at a time; the next batch forms while they are out.
pub const MAX_CALLS: usize = 2;
/// Largest batch body, in (estimated) bytes of JSON: well below the 64 KiB body limit.
pub const MAX_BATCH_BYTES: usize = 48 * 1024;

/// An order's JSON size, over-estimated (`{"rid":"<32 hex>","name":…,"quantity":…,"type":"sell"}`).
fn order_bytes(o: &PlaceOrder) -> usize {
    96 + o.name.len()
}

type Reply = oneshot::Sender<ApiResult<Order>>;

/// Orders waiting for one leader, and how many calls to it are out.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<(PlaceOrder, Reply)>,
    out: usize,
}

/// See the module docs.
pub struct OrderBatcher {
    timeout: Duration,
    client: Option<awc::Client>,
    /// By the leader's base URL: a new leader gets its own queue, and calls still out to the
    /// old one answer (or fail) on their own.
    queues: HashMap<String, Queue>,
    /// Calls sent and orders they carried, for `/status` and the logs of a benchmark.
    calls: u64,
    orders: u64,
}

impl OrderBatcher {
    /// A batcher whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> OrderBatcher {
        OrderBatcher {
            timeout,
            client: None,
            queues: HashMap::new(),
            calls: 0,
            orders: 0,
        }
    }

    /// Sends what waits for `url` while a call slot is free.
    fn pump(&mut self, url: &str, ctx: &mut Context<Self>) {
        loop {
            let Some(q) = self.queues.get_mut(url) else {
                return;
            };
            if q.waiting.is_empty() || q.out >= MAX_CALLS {
                if q.waiting.is_empty() && q.out == 0 {
                    self.queues.remove(url);
                }
                return;
            }
            let mut bytes = 0;
            let mut orders = Vec::new();
            let mut replies = Vec::new();
            while let Some((o, _)) = q.waiting.front() {
                let size = order_bytes(o);
                if !orders.is_empty()
                    && (orders.len() == MAX_PLACE_BATCH || bytes + size > MAX_BATCH_BYTES)
                {
                    break;
                }
                bytes += size;
                let (o, reply) = q.waiting.pop_front().expect("checked front");
                orders.push(o);
                replies.push(reply);
            }
            q.out += 1;
            self.calls += 1;
            self.orders += orders.len() as u64;
            let client = self
                .client
                .get_or_insert_with(|| http::client(self.timeout))
                .clone();
            let call_url = format!("{url}{}", wire::REPLICA_ORDER_BATCH);
            let key = url.to_string();
            let n = orders.len();
            ctx.spawn(
                async move {
                    let answer: ApiResult<PlaceResults> =
                        http::post(&client, &call_url, &PlaceBatch { orders }).await;
                    let results: Vec<ApiResult<Order>> = match answer {
                        Ok(r) if r.results.len() == n => r
                            .results
                            .into_iter()
                            .map(|r| match r {
                                PlaceResult::Ok(o) => Ok(o),
                                PlaceResult::Error(e) => Err(ApiError::from(e)),
                            })
                            .collect(),
                        Ok(r) => vec![
                            Err(ApiError::unavailable(format!(
                                "the leader answered {} results for {n} orders",
                                r.results.len()
                            )));
                            n
                        ],
                        Err(e) => vec![Err(e); n],
                    };
                    for (reply, result) in replies.into_iter().zip(results) {
                        // The asker may have given up (its client went away): nothing to do.
                        let _ = reply.send(result);
                    }
                }
                .into_actor(self)
                .map(move |_, act, ctx| {
                    if let Some(q) = act.queues.get_mut(&key) {
                        q.out -= 1;
                    }
                    act.pump(&key, ctx);
                }),
            );
        }
    }
}

impl Actor for OrderBatcher {
    type Context = Context<Self>;
}

/// Places one order at the leader at `url` (its base URL), batched with whatever else waits.
#[derive(Message)]
#[rtype(result = "ApiResult<Order>")]
pub struct Place {
    /// The leader's base URL.
    pub url: String,
    /// The order.
    pub order: PlaceOrder,
}

impl Handler<Place> for OrderBatcher {
    type Result = ResponseFuture<ApiResult<Order>>;
    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queues
            .entry(msg.url.clone())
            .or_default()
            .waiting
            .push_back((msg.order, tx));
        self.pump(&msg.url, ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::unavailable("the order batcher stopped")))
        })
    }
}

/// How many calls the batcher made and how many orders they carried.
#[derive(Message)]
#[rtype(result = "(u64, u64)")]
pub struct Counts;

impl Handler<Counts> for OrderBatcher {
    type Result = MessageResult<Counts>;
    fn handle(&mut self, _: Counts, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.calls, self.orders))
    }
}
