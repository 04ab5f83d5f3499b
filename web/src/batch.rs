//! The front end's batchers for the calls it makes per client request (orders to the leader,
//! order reads from the leader, lookups the cache cannot answer from the catalog): one HTTP
//! call carries every item that was waiting when the previous call left, instead of one call
//! per item.
//!
//! Batches form under load and only then: with a call slot free, an item leaves after one turn
//! of the worker's event loop (no timer), with the items that reached the worker in that turn.
//! At most [`MAX_CALLS`] calls are out to one service; items that arrive meanwhile wait and
//! leave together, at most `Kind::MAX_ITEMS` items and [`MAX_BATCH_BYTES`] bytes a call. An
//! item never leaves before it arrived, so its answer is as fresh as a call of its own would
//! have been. Each item gets its own answer; a call that fails fails each of its items, which
//! the caller handles as it would a failed call of its own (the order path's failover loop
//! retries each order under its request id).

use crate::error::{ApiError, ApiResult};
use crate::http;
use actix::prelude::*;
use futures::future::LocalBoxFuture;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;
use tradenet_actors::orderlog::Order;
use tradenet_actors::wire;
use tradenet_actors::wire::catalog::{LookupBatch, StockResult, StockResults, MAX_LOOKUP_BATCH};
use tradenet_actors::wire::frontend::{PlaceOrder, Stock};
use tradenet_actors::wire::replica::{
    OrderResult, OrderResults, PlaceBatch, ReadBatch, MAX_PLACE_BATCH,
};

/// Calls out to one service at a time; the next batch forms while they are out.
pub const MAX_CALLS: usize = 2;
/// Largest batch body, in (estimated) bytes of JSON: well below the 64 KiB body limit.
pub const MAX_BATCH_BYTES: usize = 48 * 1024;

/// One kind of batched call: what an item is, what it is answered with, and the call.
pub trait Kind: Unpin + 'static {
    /// What a request hands in.
    type Item: Unpin + Send + 'static;
    /// What it gets back.
    type Answer: Unpin + Send + 'static;
    /// Most items a call carries (the receiver refuses more).
    const MAX_ITEMS: usize;
    /// An item's JSON size, over-estimated.
    fn bytes(item: &Self::Item) -> usize;
    /// Calls the service at `base` (its base URL) with `items`: one answer per item, in order.
    fn call(
        client: awc::Client,
        base: String,
        items: Vec<Self::Item>,
    ) -> LocalBoxFuture<'static, Vec<ApiResult<Self::Answer>>>;
}

/// Spreads a whole call's outcome over its `n` items: the answers when there is one per item,
/// else the call's error (or a count mismatch) for each.
pub fn per_item<R, A>(
    n: usize,
    answer: ApiResult<Vec<R>>,
    each: impl Fn(R) -> ApiResult<A>,
) -> Vec<ApiResult<A>> {
    match answer {
        Ok(results) if results.len() == n => results.into_iter().map(each).collect(),
        Ok(results) => {
            let e = ApiError::unavailable(format!(
                "the service answered {} results for {n} items",
                results.len()
            ));
            (0..n).map(|_| Err(e.clone())).collect()
        }
        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
    }
}

type Reply<K> = oneshot::Sender<ApiResult<<K as Kind>::Answer>>;

/// Items waiting for one service, and how many calls to it are out.
struct Queue<K: Kind> {
    waiting: VecDeque<(K::Item, Reply<K>)>,
    out: usize,
    /// A pump is due once the event loop has taken what the network delivered meanwhile.
    due: bool,
}

/// See the module docs.
pub struct Batcher<K: Kind> {
    timeout: Duration,
    client: Option<awc::Client>,
    /// By the service's base URL: a new leader gets its own queue, and calls still out to the
    /// old one answer (or fail) on their own.
    queues: HashMap<String, Queue<K>>,
    /// Calls made and items they carried, for `/metrics`.
    calls: u64,
    items: u64,
}

impl<K: Kind> Batcher<K> {
    /// A batcher whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Batcher<K> {
        Batcher {
            timeout,
            client: None,
            queues: HashMap::new(),
            calls: 0,
            items: 0,
        }
    }

    /// Sends what waits for `base` while a call slot is free.
    fn pump(&mut self, base: &str, ctx: &mut Context<Self>) {
        loop {
            let Some(q) = self.queues.get_mut(base) else {
                return;
            };
            if q.waiting.is_empty() || q.out >= MAX_CALLS {
                if q.waiting.is_empty() && q.out == 0 {
                    self.queues.remove(base);
                }
                return;
            }
            let (mut bytes, mut items, mut replies) = (0, Vec::new(), Vec::new());
            while let Some((item, _)) = q.waiting.front() {
                let size = K::bytes(item);
                let full = items.len() == K::MAX_ITEMS || bytes + size > MAX_BATCH_BYTES;
                if !items.is_empty() && full {
                    break;
                }
                bytes += size;
                let (item, reply) = q.waiting.pop_front().expect("checked front");
                items.push(item);
                replies.push(reply);
            }
            q.out += 1;
            self.calls += 1;
            self.items += items.len() as u64;
            let client = self
                .client
                .get_or_insert_with(|| http::client(self.timeout))
                .clone();
            let key = base.to_string();
            let call = K::call(client, key.clone(), items);
            ctx.spawn(
                async move {
                    for (reply, answer) in replies.into_iter().zip(call.await) {
                        // The asker may have given up (its client went away): nothing to do.
                        let _ = reply.send(answer);
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

impl<K: Kind> Actor for Batcher<K> {
    type Context = Context<Self>;
}

/// Hands `item` to the service at `base` (its base URL), batched with whatever else waits.
pub struct Submit<K: Kind> {
    /// The service's base URL.
    pub base: String,
    /// The item.
    pub item: K::Item,
}

impl<K: Kind> Message for Submit<K> {
    type Result = ApiResult<K::Answer>;
}

impl<K: Kind> Handler<Submit<K>> for Batcher<K> {
    type Result = ResponseFuture<ApiResult<K::Answer>>;
    fn handle(&mut self, msg: Submit<K>, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let q = self
            .queues
            .entry(msg.base.clone())
            .or_insert_with(|| Queue {
                waiting: VecDeque::new(),
                out: 0,
                due: false,
            });
        q.waiting.push_back((msg.item, tx));
        // Not at once: the requests that reached this worker in the same turn of its event
        // loop (the clients a call just answered, coming back together) are handled first, so
        // they leave in one call instead of the first alone.
        if !q.due && q.out < MAX_CALLS {
            q.due = true;
            let base = msg.base;
            ctx.spawn(
                tokio::task::yield_now()
                    .into_actor(self)
                    .map(move |_, act, ctx| {
                        if let Some(q) = act.queues.get_mut(&base) {
                            q.due = false;
                        }
                        act.pump(&base, ctx);
                    }),
            );
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::unavailable("the batcher stopped")))
        })
    }
}

/// Hands `item` to `batcher` for the service at `base` and waits for its own answer (a
/// batcher that stopped answers 503, as an unreachable service would).
pub async fn submit<K: Kind>(
    batcher: &Addr<Batcher<K>>,
    base: String,
    item: K::Item,
) -> ApiResult<K::Answer> {
    batcher
        .send(Submit { base, item })
        .await
        .map_err(|e| ApiError::from(tradenet_actors::Error::from(e)))?
}

/// How many calls the batcher made and how many items they carried.
pub struct Counts;

impl Message for Counts {
    type Result = (u64, u64);
}

impl<K: Kind> Handler<Counts> for Batcher<K> {
    type Result = MessageResult<Counts>;
    fn handle(&mut self, _: Counts, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.calls, self.items))
    }
}

// ----- the three kinds the front end batches -----

fn order_answer(r: OrderResult) -> ApiResult<Order> {
    match r {
        OrderResult::Ok(o) => Ok(o),
        OrderResult::Error(e) => Err(ApiError::from(e)),
    }
}

/// Orders placed at the leader (`POST /internal/v1/orders/batch`).
pub struct Place;

impl Kind for Place {
    type Item = PlaceOrder;
    type Answer = Order;
    const MAX_ITEMS: usize = MAX_PLACE_BATCH;
    fn bytes(o: &PlaceOrder) -> usize {
        // {"rid":"<32 hex>","name":…,"quantity":…,"type":"sell"}
        96 + o.name.len()
    }
    fn call(
        client: awc::Client,
        base: String,
        orders: Vec<PlaceOrder>,
    ) -> LocalBoxFuture<'static, Vec<ApiResult<Order>>> {
        Box::pin(async move {
            let n = orders.len();
            let url = format!("{base}{}", wire::REPLICA_ORDER_BATCH);
            let answer = http::post::<_, OrderResults>(&client, &url, &PlaceBatch { orders }).await;
            per_item(n, answer.map(|r| r.results), order_answer)
        })
    }
}

/// Orders read from the leader (`POST /internal/v1/orders/read`).
pub struct Read;

impl Kind for Read {
    type Item = u64;
    type Answer = Order;
    const MAX_ITEMS: usize = MAX_PLACE_BATCH;
    fn bytes(_: &u64) -> usize {
        21
    }
    fn call(
        client: awc::Client,
        base: String,
        numbers: Vec<u64>,
    ) -> LocalBoxFuture<'static, Vec<ApiResult<Order>>> {
        Box::pin(async move {
            let n = numbers.len();
            let url = format!("{base}{}", wire::REPLICA_ORDER_READ);
            let answer = http::post::<_, OrderResults>(&client, &url, &ReadBatch { numbers }).await;
            per_item(n, answer.map(|r| r.results), order_answer)
        })
    }
}

/// Stocks looked up at the catalog (`POST /internal/v1/stocks`), for lookups the cache could
/// not answer. A name asked for several times in one batch is asked once: every asker arrived
/// before the call left, so the one answer is fresh enough for each.
pub struct Lookup;

impl Kind for Lookup {
    type Item = String;
    type Answer = Stock;
    const MAX_ITEMS: usize = MAX_LOOKUP_BATCH;
    fn bytes(name: &String) -> usize {
        name.len() + 3
    }
    fn call(
        client: awc::Client,
        base: String,
        names: Vec<String>,
    ) -> LocalBoxFuture<'static, Vec<ApiResult<Stock>>> {
        Box::pin(async move {
            let mut distinct: Vec<String> = Vec::new();
            let mut slot: HashMap<&str, usize> = HashMap::new();
            let at: Vec<usize> = names
                .iter()
                .map(|name| {
                    *slot.entry(name.as_str()).or_insert_with(|| {
                        distinct.push(name.clone());
                        distinct.len() - 1
                    })
                })
                .collect();
            let n = distinct.len();
            let url = format!("{base}{}", wire::STOCK_BATCH);
            let answer =
                http::post::<_, StockResults>(&client, &url, &LookupBatch { names: distinct })
                    .await;
            let answers = per_item(n, answer.map(|r| r.results), |r| match r {
                StockResult::Ok(s) => Ok(s),
                StockResult::Error(e) => Err(ApiError::from(e)),
            });
            at.into_iter().map(|i| answers[i].clone()).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpServer};
    use std::sync::{Arc, Mutex};

    /// Items handed in within one turn of the event loop (as the clients a call just answered
    /// come back) leave in one call. Sent at once, the first two would each have left alone,
    /// one per call slot, and the other three waited for one of them: calls of 1, 1 and 3.
    #[actix_rt::test]
    async fn items_handed_in_together_leave_in_one_call() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let server = HttpServer::new(move || {
            let seen = seen.clone();
            App::new().route(
                wire::STOCK_BATCH,
                web::post().to(move |batch: web::Json<LookupBatch>| {
                    seen.lock().unwrap().push(batch.names.len());
                    let results = batch
                        .names
                        .iter()
                        .map(|name| {
                            StockResult::Ok(Stock {
                                name: name.clone(),
                                price: 1.0,
                                quantity: 10,
                                volume: 0,
                                version: 0,
                            })
                        })
                        .collect();
                    async move { http::ok(StockResults { results }) }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind a free port");
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let stop = server.handle();
        actix_rt::spawn(server);

        let batcher = Batcher::<Lookup>::new(Duration::from_secs(5)).start();
        let names = ["Ant", "Bee", "Cat", "Dog", "Eel"];
        let asks = names.map(|n| submit(&batcher, base.clone(), n.to_string()));
        let answers = futures::future::join_all(asks).await;
        for (name, answer) in names.iter().zip(answers) {
            assert_eq!(answer.expect("answered").name, *name, "each its own answer");
        }
        assert_eq!(*sizes.lock().unwrap(), vec![5]);
        // The next item, alone, leaves alone: nothing waits for a batch to fill.
        submit(&batcher, base.clone(), "Fox".into())
            .await
            .expect("answered");
        assert_eq!(*sizes.lock().unwrap(), vec![5, 1]);
        stop.stop(true).await;
    }
}
