//! An order replica's network side: the leader path (catalog trade, record, replicate to every
//! live follower, answer), the follower path (apply a leader's batch), start-up recovery and a
//! new leader's takeover. The log itself lives in the `OrderStore` actor.
//!
//! Internal API (see `docs/internal-api.md`):
//! - `GET  /internal/v1/state` -> role, readiness, last entry, term (the supervisor's heartbeat);
//! - `POST /internal/v1/term` `{epoch, leader}` -> accept a new term (older is 409 fenced);
//! - `POST /internal/v1/orders` `{rid, name, type, quantity}` -> the order (leader only);
//! - `GET  /internal/v1/orders/{n}` -> one order;
//! - `POST /internal/v1/replicate` `{term, prev, orders}` -> applied or mismatch;
//! - `GET  /internal/v1/log?after_number=&after_epoch=&limit=` -> orders after an entry.

use crate::config::{Config, ReplicaConfig};
use crate::error::{ApiError, ApiResult};
use crate::frontend::PlaceOrder;
use crate::http::{self, ok, resource, Metrics};
use actix::Addr;
use actix_web::{web, HttpResponse};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tradenet_actors::catalog::{TradeOutcome, TradeRequest};
use tradenet_actors::catalog_actor::TradesPage;
use tradenet_actors::order_store::{
    Applied, Apply, FindRequest, GetOrder, GetSince, GetState, IdAt, LoadedStore, OrderStore,
    Record, Since, Term, TruncateAfter,
};
use tradenet_actors::orderlog::{EntryId, Order};
use tradenet_actors::types::Epoch;

/// A replica's answer to the supervisor's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Replica id.
    pub id: u64,
    /// recovering, follower, taking_over or leader.
    pub role: String,
    /// Recovered and able to take part (false while catching up at start).
    pub ready: bool,
    /// Last entry held.
    pub last: Option<EntryId>,
    /// Accepted term.
    pub term: Term,
    /// Leader only: followers it does not wait for (failed, too slow, or catching up). The
    /// supervisor counts them as not live until they are in step again.
    #[serde(default)]
    pub lagging: Vec<u64>,
}

/// A batch from the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateBody {
    /// The leader's term.
    pub term: Term,
    /// The entry before the batch.
    pub prev: Option<EntryId>,
    /// The orders.
    pub orders: Vec<Order>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    after_number: Option<u64>,
    after_epoch: Option<Epoch>,
    limit: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Recovering,
    Follower,
    TakingOver(Epoch),
    Leader(Epoch),
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Recovering => "recovering",
            Phase::Follower => "follower",
            Phase::TakingOver(_) => "taking_over",
            Phase::Leader(_) => "leader",
        }
    }
}

/// What a leader knows of one follower's replication stream.
#[derive(Clone, Copy, Debug, Default)]
struct StreamState {
    up: bool,
    matched: Option<u64>,
}

struct Inner {
    phase: Phase,
    streams: HashMap<u64, (watch::Receiver<StreamState>, Arc<Notify>)>,
    catching_up: bool,
}

/// One order replica; shared by its HTTP workers and background tasks.
pub struct Replica {
    id: u64,
    peers: Vec<ReplicaConfig>,
    store: Addr<OrderStore>,
    catalog_url: String,
    timeout: Duration,
    replicate_timeout: Duration,
    retry: Duration,
    batch_limit: usize,
    inner: Mutex<Inner>,
    appended: watch::Sender<u64>,
    ready: http::Readiness,
}

type Shared = Arc<Replica>;

/// How long an order may wait behind a missing earlier one before the leader fetches it.
const GAP_WAIT: Duration = Duration::from_millis(250);
/// Fetches before an order waiting behind a gap gives up.
const MAX_GAP_FILLS: u32 = 8;

impl Replica {
    fn phase(&self) -> Phase {
        self.inner.lock().expect("replica lock").phase
    }

    fn set_phase(&self, phase: Phase) {
        self.inner.lock().expect("replica lock").phase = phase;
    }

    fn leading(&self, epoch: Epoch) -> bool {
        matches!(self.phase(), Phase::Leader(e) | Phase::TakingOver(e) if e == epoch)
    }

    fn peer(&self, id: u64) -> Option<&ReplicaConfig> {
        self.peers.iter().find(|p| p.id == id)
    }

    fn step_down(&self, epoch: Epoch, why: &str) {
        let mut inner = self.inner.lock().expect("replica lock");
        if matches!(inner.phase, Phase::Leader(e) | Phase::TakingOver(e) if e == epoch) {
            log::info!("replica {} steps down from epoch {epoch}: {why}", self.id);
            inner.phase = Phase::Follower;
            inner.streams.clear();
        }
    }
}

/// The replica's routes, for `main` and in-process tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/status").route(web::get().to(state)))
        .service(resource("/internal/v1/state").route(web::get().to(state)))
        .service(resource("/internal/v1/term").route(web::post().to(term)))
        .service(resource("/internal/v1/orders").route(web::post().to(place)))
        .service(resource("/internal/v1/orders/{number}").route(web::get().to(get_order)))
        .service(resource("/internal/v1/replicate").route(web::post().to(replicate)))
        .service(resource("/internal/v1/log").route(web::get().to(log_since)))
        .service(resource("/internal/v1/join").route(web::post().to(join)));
}

async fn current_state(r: &Replica) -> ApiResult<ReplicaState> {
    let s = r.store.send(GetState).await.map_err(mailbox)?;
    let (phase, mut lagging) = {
        let inner = r.inner.lock().expect("replica lock");
        let lagging: Vec<u64> = match inner.phase {
            Phase::Leader(_) => inner
                .streams
                .iter()
                .filter(|(_, (rx, _))| !rx.borrow().up)
                .map(|(id, _)| *id)
                .collect(),
            _ => Vec::new(),
        };
        (inner.phase, lagging)
    };
    lagging.sort_unstable();
    Ok(ReplicaState {
        id: r.id,
        role: phase.name().into(),
        ready: phase != Phase::Recovering,
        last: s.last,
        term: s.term,
        lagging,
    })
}

async fn state(r: web::Data<Shared>) -> ApiResult<HttpResponse> {
    Ok(ok(current_state(&r).await?))
}

async fn term(r: web::Data<Shared>, body: web::Json<Term>) -> ApiResult<HttpResponse> {
    let term = body.into_inner();
    let Some(leader) = term.leader else {
        return Err(ApiError::bad_request("a term names its leader"));
    };
    if leader != r.id && r.peer(leader).is_none() {
        return Err(ApiError::bad_request(format!("unknown leader id {leader}")));
    }
    let changed = r
        .store
        .send(tradenet_actors::order_store::Adopt(term))
        .await
        .map_err(mailbox)??;
    let phase = r.phase();
    if leader == r.id {
        if !matches!(phase, Phase::Leader(e) | Phase::TakingOver(e) if e == term.epoch)
            && phase != Phase::Recovering
        {
            log::info!(
                "replica {} is the new leader in epoch {}; taking over",
                r.id,
                term.epoch
            );
            r.set_phase(Phase::TakingOver(term.epoch));
            actix_rt::spawn(take_over(r.get_ref().clone(), term.epoch));
        }
    } else {
        if let Phase::Leader(e) | Phase::TakingOver(e) = phase {
            r.step_down(e, &format!("replica {leader} leads epoch {}", term.epoch));
        }
        if changed {
            log::info!(
                "replica {} follows replica {leader} in epoch {}",
                r.id,
                term.epoch
            );
        }
    }
    Ok(ok(serde_json::json!({ "accepted": true })))
}

/// Leader path for one order; see the module docs.
async fn place(
    r: web::Data<Shared>,
    client: web::Data<awc::Client>,
    body: web::Json<PlaceOrder>,
) -> ApiResult<HttpResponse> {
    let o = body.into_inner();
    let Phase::Leader(epoch) = r.phase() else {
        return Err(ApiError::new(
            503,
            "not_leader",
            format!("replica {} is not serving as leader", r.id),
        ));
    };
    if let Some(existing) = r.store.send(FindRequest(o.rid)).await.map_err(mailbox)? {
        // A retry (failover or Idempotency-Key): same number, no second trade.
        return Ok(ok(record_and_replicate(
            &r,
            epoch,
            existing_record(existing),
        )
        .await?));
    }
    let outcome: TradeOutcome = http::post(
        &client,
        &format!("{}/internal/v1/trade", r.catalog_url),
        &TradeRequest {
            rid: o.rid,
            name: o.name.clone(),
            kind: o.kind,
            quantity: o.quantity,
            epoch,
        },
    )
    .await?;
    let rec = Record {
        epoch,
        rid: o.rid,
        name: outcome.name,
        kind: outcome.kind,
        quantity: outcome.quantity,
        cseq: outcome.seq,
    };
    Ok(ok(record_and_replicate(&r, epoch, rec).await?))
}

fn existing_record(o: Order) -> Record {
    Record {
        epoch: o.epoch,
        rid: o.rid,
        name: o.name,
        kind: o.kind,
        quantity: o.quantity,
        cseq: o.cseq,
    }
}

/// Records an order (or finds it, by request id), waits until it is durable here and on every
/// follower whose stream is up, and checks this replica still leads `epoch` before answering.
async fn record_and_replicate(r: &Replica, epoch: Epoch, mut rec: Record) -> ApiResult<Order> {
    rec.epoch = epoch;
    let recorded = r.store.send(rec).await.map_err(mailbox)??;
    let n = recorded.order.number;
    let streams: Vec<watch::Receiver<StreamState>> = r
        .inner
        .lock()
        .expect("replica lock")
        .streams
        .values()
        .map(|(rx, _)| rx.clone())
        .collect();
    r.appended.send_modify(|v| *v = (*v).max(n + 1));
    let waits = streams.into_iter().map(|mut rx| async move {
        if !rx.borrow().up {
            return;
        }
        let _ = rx
            .wait_for(|s| !s.up || s.matched.is_some_and(|m| m >= n))
            .await;
    });
    let replicated = tokio::time::timeout(r.replicate_timeout * 2, join_all(waits));
    let mut durable = recorded.durable;
    // An order whose catalog trade overtook an earlier one waits for that one; if the earlier
    // one never comes (its request died between the catalog and here), fetch it.
    let mut fills = 0;
    let d = loop {
        match tokio::time::timeout(GAP_WAIT, &mut durable).await {
            Ok(d) => break d,
            Err(_) if fills < MAX_GAP_FILLS && r.leading(epoch) => {
                fills += 1;
                fill_gaps(r, epoch).await?;
            }
            Err(_) => {
                return Err(ApiError::unavailable(format!(
                    "order {n} is still waiting for an earlier order"
                )))
            }
        }
    };
    d.map_err(|_| {
        ApiError::new(
            503,
            "not_leader",
            format!("order {n} was dropped: leadership moved on"),
        )
    })?;
    replicated.await.ok();
    if !r.leading(epoch) {
        return Err(ApiError::new(
            503,
            "not_leader",
            format!(
                "replica {} lost leadership of epoch {epoch} before order {n} was replicated",
                r.id
            ),
        ));
    }
    Ok(recorded.order)
}

async fn get_order(r: web::Data<Shared>, n: web::Path<u64>) -> ApiResult<HttpResponse> {
    let n = n.into_inner();
    match r.store.send(GetOrder(n)).await.map_err(mailbox)? {
        Some(o) => Ok(ok(o)),
        None => Err(tradenet_actors::Error::UnknownOrder(n).into()),
    }
}

async fn replicate(
    r: web::Data<Shared>,
    body: web::Json<ReplicateBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let leader = body.term.leader;
    let applied: Applied = r
        .store
        .send(Apply {
            term: Some(body.term),
            prev: body.prev,
            orders: body.orders,
        })
        .await
        .map_err(mailbox)??;
    if let Phase::Leader(e) | Phase::TakingOver(e) = r.phase() {
        if e < body.term.epoch {
            r.step_down(
                e,
                &format!("a batch from epoch {} arrived", body.term.epoch),
            );
        }
    }
    if !applied.matched && r.phase() != Phase::Recovering {
        if let Some(peer) = leader.and_then(|l| r.peer(l)).cloned() {
            start_catch_up(r.get_ref().clone(), peer);
        }
    }
    Ok(ok(applied))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    id: u64,
}

/// A returning follower asks the leader to bring it in step before it reports ready, so that
/// once the supervisor counts it live, the leader already waits for it (rule 1).
async fn join(r: web::Data<Shared>, body: web::Json<JoinBody>) -> ApiResult<HttpResponse> {
    let id = body.id;
    let (Phase::Leader(_) | Phase::TakingOver(_)) = r.phase() else {
        return Err(ApiError::new(
            503,
            "not_leader",
            format!("replica {} does not lead", r.id),
        ));
    };
    let stream = r
        .inner
        .lock()
        .expect("replica lock")
        .streams
        .get(&id)
        .cloned();
    let Some((mut rx, wake)) = stream else {
        return Err(ApiError::bad_request(format!(
            "replica {id} is not a follower of replica {}",
            r.id
        )));
    };
    wake.notify_one();
    let in_step = tokio::time::timeout(r.replicate_timeout * 4, rx.wait_for(|s| s.up))
        .await
        .is_ok_and(|r| r.is_ok());
    Ok(ok(serde_json::json!({ "in_step": in_step })))
}

async fn log_since(r: web::Data<Shared>, q: web::Query<LogQuery>) -> ApiResult<HttpResponse> {
    let after = match (q.after_number, q.after_epoch) {
        (Some(number), Some(epoch)) => Some(EntryId { number, epoch }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give both after_number and after_epoch, or neither",
            ))
        }
    };
    let since = r
        .store
        .send(GetSince {
            after,
            limit: q.limit.unwrap_or(r.batch_limit).min(100_000),
        })
        .await
        .map_err(mailbox)?;
    Ok(ok(since))
}

fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::from(tradenet_actors::Error::from(e))
}

fn log_url(peer: &ReplicaConfig, after: Option<EntryId>, limit: usize) -> String {
    let base = format!(
        "{}/internal/v1/log?limit={limit}",
        crate::config::url(&peer.addr)
    );
    match after {
        Some(e) => format!("{base}&after_number={}&after_epoch={}", e.number, e.epoch),
        None => base,
    }
}

/// Pulls from `peer` whatever follows our last entry that matches its log. The match is found
/// by binary search over order numbers (matching is monotone: if entry k matches, so does
/// every entry before it), so the cost grows with the gap and the log's logarithm, not its
/// length. A suffix only we hold is dropped. Returns (pulled, dropped).
async fn catch_up(
    r: &Replica,
    client: &awc::Client,
    peer: &ReplicaConfig,
) -> ApiResult<(u64, u64)> {
    let probe = |after: Option<EntryId>| {
        let url = log_url(peer, after, 0);
        async move { http::get::<Since>(client, &url).await }
    };
    let ours = r.store.send(GetState).await.map_err(mailbox)?.last;
    let first = probe(ours).await?;
    let mut matched = ours;
    if first.orders.is_none() {
        // Largest k such that our entry k matches theirs; -1 when none does.
        let top = ours
            .map_or(0, |e| e.number)
            .min(first.last.map_or(0, |e| e.number));
        let (mut lo, mut hi) = (-1i64, top as i64 + 1);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            let id = r.store.send(IdAt(mid as u64)).await.map_err(mailbox)?;
            if id.is_some() && probe(id).await?.orders.is_some() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        matched = if lo < 0 {
            None
        } else {
            r.store.send(IdAt(lo as u64)).await.map_err(mailbox)?
        };
    }
    let mut dropped = 0;
    if matched != ours && EntryId::freshness(first.last) > EntryId::freshness(ours) {
        dropped = r
            .store
            .send(TruncateAfter {
                keep: matched,
                seen: ours,
            })
            .await
            .map_err(mailbox)??;
    }
    let mut after = matched;
    let mut pulled = 0;
    loop {
        let page: Since = http::get(client, &log_url(peer, after, r.batch_limit)).await?;
        let Some(orders) = page.orders else {
            return Err(ApiError::unavailable(format!(
                "replica {} changed its log during catch-up",
                peer.id
            )));
        };
        if orders.is_empty() {
            return Ok((pulled, dropped));
        }
        let count = orders.len() as u64;
        let applied = r
            .store
            .send(Apply {
                term: None,
                prev: after,
                orders,
            })
            .await
            .map_err(mailbox)??;
        if !applied.matched {
            return Err(ApiError::unavailable("our log changed during catch-up"));
        }
        dropped += applied.dropped;
        pulled += count;
        after = applied.last;
    }
}

fn start_catch_up(r: Shared, peer: ReplicaConfig) {
    {
        let mut inner = r.inner.lock().expect("replica lock");
        if inner.catching_up {
            return;
        }
        inner.catching_up = true;
    }
    actix_rt::spawn(async move {
        let client = http::client(r.timeout);
        match catch_up(&r, &client, &peer).await {
            Ok((pulled, dropped)) => log::info!(
                "replica {} caught up from replica {}: {pulled} orders pulled, {dropped} dropped",
                r.id,
                peer.id
            ),
            Err(e) => log::warn!(
                "replica {} could not catch up from replica {}: {e}",
                r.id,
                peer.id
            ),
        }
        r.inner.lock().expect("replica lock").catching_up = false;
    });
}

/// Asks every peer for its state; returns the one whose log is freshest, if fresher than ours.
async fn freshest_peer(
    r: &Replica,
    client: &awc::Client,
) -> ApiResult<Option<(ReplicaConfig, Option<EntryId>)>> {
    let ours = r.store.send(GetState).await.map_err(mailbox)?.last;
    Ok(peer_states(r, client)
        .await
        .into_iter()
        .map(|(p, s)| (p, s.last))
        .filter(|(_, last)| EntryId::freshness(*last) > EntryId::freshness(ours))
        .max_by_key(|(_, last)| EntryId::freshness(*last)))
}

/// The state of every peer that answers.
async fn peer_states(r: &Replica, client: &awc::Client) -> Vec<(ReplicaConfig, ReplicaState)> {
    let states = join_all(r.peers.iter().map(|p| {
        let url = format!("{}/internal/v1/state", crate::config::url(&p.addr));
        async move { (p.clone(), http::get::<ReplicaState>(client, &url).await) }
    }))
    .await;
    states
        .into_iter()
        .filter_map(|(p, s)| s.ok().map(|s| (p, s)))
        .collect()
}

/// Asks the current leader (a peer that says it leads, in the newest epoch) to bring us in
/// step; returns whether it did.
async fn join_leader(r: &Replica, client: &awc::Client) -> Option<(u64, bool)> {
    let leader = peer_states(r, client)
        .await
        .into_iter()
        .filter(|(_, s)| s.role == "leader" || s.role == "taking_over")
        .max_by_key(|(_, s)| s.term.epoch)?
        .0;
    let url = format!("{}/internal/v1/join", crate::config::url(&leader.addr));
    let res: ApiResult<serde_json::Value> =
        http::post(client, &url, &serde_json::json!({ "id": r.id })).await;
    Some((leader.id, res.is_ok_and(|v| v["in_step"] == true)))
}

/// Start-up: pull what we missed from the freshest reachable peer, then report ready.
async fn recover(r: Shared) {
    let client = http::client(r.timeout);
    match freshest_peer(&r, &client).await {
        Ok(Some((peer, _))) => match catch_up(&r, &client, &peer).await {
            Ok((pulled, dropped)) => log::info!(
                "replica {} recovered: {pulled} orders pulled from replica {}, {dropped} dropped",
                r.id,
                peer.id
            ),
            Err(e) => log::warn!(
                "replica {} recovery from replica {} incomplete: {e}",
                r.id,
                peer.id
            ),
        },
        Ok(None) => log::info!("replica {} recovered: no reachable peer holds more", r.id),
        Err(e) => log::warn!("replica {} recovery check failed: {e}", r.id),
    }
    match join_leader(&r, &client).await {
        Some((leader, true)) => log::info!("replica {} joined leader {leader}: in step", r.id),
        Some((leader, false)) => {
            log::warn!(
                "replica {} asked leader {leader} to bring it in step; not yet",
                r.id
            )
        }
        None => {}
    }
    let s = r.store.send(GetState).await;
    if let Ok(s) = s {
        log::info!(
            "replica {} ready: last order {:?}, epoch {}",
            r.id,
            s.last.map(|e| e.number),
            s.term.epoch
        );
    }
    r.set_phase(Phase::Follower);
    r.ready.0.store(true, std::sync::atomic::Ordering::Release);
}

/// A new leader's takeover: pull from the freshest live peer, start replication streams,
/// record catalog trades no order records (a previous leader died between the catalog and its
/// log), then serve.
async fn take_over(r: Shared, epoch: Epoch) {
    let client = http::client(r.timeout);
    while r.leading(epoch) {
        match take_over_once(&r, &client, epoch).await {
            Ok((pulled, recorded)) => {
                let mut inner = r.inner.lock().expect("replica lock");
                if inner.phase == Phase::TakingOver(epoch) {
                    inner.phase = Phase::Leader(epoch);
                    log::info!(
                        "replica {} leads epoch {epoch}: pulled {pulled} orders from peers, recorded {recorded} trades from the catalog journal",
                        r.id
                    );
                }
                return;
            }
            Err(e) => {
                log::warn!(
                    "replica {} takeover of epoch {epoch} incomplete ({e}); retrying",
                    r.id
                );
                tokio::time::sleep(r.retry).await;
            }
        }
    }
}

async fn take_over_once(r: &Shared, client: &awc::Client, epoch: Epoch) -> ApiResult<(u64, u64)> {
    let mut pulled = 0;
    if let Some((peer, _)) = freshest_peer(r, client).await? {
        pulled = catch_up(r, client, &peer).await?.0;
    }
    start_streams(r, epoch);
    let recorded = fill_gaps_with(r, client, epoch).await?;
    Ok((pulled, recorded))
}

/// Records every catalog trade after our last order that no order records yet, under the
/// number the catalog's sequence gives it (a leader that died between the catalog and its
/// log, or a request that did). Also raises the catalog's fencing epoch. Returns how many.
async fn fill_gaps(r: &Replica, epoch: Epoch) -> ApiResult<u64> {
    let client = http::client(r.timeout);
    fill_gaps_with(r, &client, epoch).await
}

async fn fill_gaps_with(r: &Replica, client: &awc::Client, epoch: Epoch) -> ApiResult<u64> {
    let mut recorded = 0;
    let mut after = r.store.send(GetState).await.map_err(mailbox)?.next;
    loop {
        let page: TradesPage = http::post(
            client,
            &format!("{}/internal/v1/trades/since", r.catalog_url),
            &serde_json::json!({ "after": after, "epoch": epoch, "limit": r.batch_limit }),
        )
        .await?;
        if !page.complete {
            log::warn!(
                "catalog trade window no longer holds trade {}; orders cannot be completed from it",
                after + 1
            );
        }
        let count = page.trades.len();
        let mut waits = Vec::new();
        for t in page.trades {
            after = t.seq;
            let rec = Record {
                epoch,
                rid: t.rid,
                name: t.name,
                kind: t.kind,
                quantity: t.quantity,
                cseq: t.seq,
            };
            let done = r.store.send(rec).await.map_err(mailbox)??;
            if done.fresh {
                log::info!(
                    "replica {} records catalog trade {} as order {} ({} {} {}), which no replica had recorded",
                    r.id,
                    t.seq,
                    done.order.number,
                    done.order.kind,
                    done.order.quantity,
                    done.order.name
                );
                recorded += 1;
            }
            waits.push(done.durable);
        }
        r.appended.send_modify(|v| *v = (*v).max(after));
        for w in waits {
            let _ = w.await;
        }
        if count < r.batch_limit {
            return Ok(recorded);
        }
    }
}

/// Sleeps `d`, or less if someone wakes the stream (a follower joining).
async fn pause(d: Duration, wake: &Notify) {
    let _ = tokio::time::timeout(d, wake.notified()).await;
}

fn start_streams(r: &Shared, epoch: Epoch) {
    let mut inner = r.inner.lock().expect("replica lock");
    inner.streams.clear();
    for peer in &r.peers {
        let (tx, rx) = watch::channel(StreamState::default());
        let wake = Arc::new(Notify::new());
        inner.streams.insert(peer.id, (rx, wake.clone()));
        actix_rt::spawn(stream(r.clone(), peer.clone(), epoch, tx, wake));
    }
}

/// Pushes this leader's log to one follower, one batch in flight at a time (so batches arrive
/// in order), carrying everything appended meanwhile. A follower that fails or is slower than
/// `replicate_timeout` is marked down (orders stop waiting for it) and probed again later.
async fn stream(
    r: Shared,
    peer: ReplicaConfig,
    epoch: Epoch,
    tx: watch::Sender<StreamState>,
    wake: Arc<Notify>,
) {
    let client = http::client(r.replicate_timeout);
    let url = crate::config::url(&peer.addr);
    let mut appended = r.appended.subscribe();
    let mut matched: Option<Option<EntryId>> = None;
    let term = Term {
        epoch,
        leader: Some(r.id),
    };
    let down = |tx: &watch::Sender<StreamState>| {
        if tx.borrow().up {
            log::warn!(
                "replica {}: follower {} is behind or unreachable; orders no longer wait for it",
                r.id,
                peer.id
            );
        }
        tx.send_replace(StreamState::default());
    };
    while r.leading(epoch) {
        let Some(mp) = matched else {
            match http::get::<ReplicaState>(&client, &format!("{url}/internal/v1/state")).await {
                // A follower still recovering is a fine target: it joins us before it reports
                // ready, so that it is in step by then.
                Ok(s) => matched = Some(s.last),
                _ => {
                    down(&tx);
                    pause(r.retry, &wake).await;
                }
            }
            continue;
        };
        let since = match r
            .store
            .send(GetSince {
                after: mp,
                limit: r.batch_limit,
            })
            .await
        {
            Ok(s) => s,
            Err(_) => return,
        };
        let Some(orders) = since.orders else {
            // The follower holds entries we do not: a batch it cannot fit makes it catch up.
            let body = ReplicateBody {
                term,
                prev: since.last,
                orders: Vec::new(),
            };
            let _ =
                http::post::<_, Applied>(&client, &format!("{url}/internal/v1/replicate"), &body)
                    .await;
            down(&tx);
            matched = None;
            pause(r.retry, &wake).await;
            continue;
        };
        if orders.is_empty() {
            if !tx.borrow().up {
                log::info!(
                    "replica {}: follower {} is in step at order {:?}",
                    r.id,
                    peer.id,
                    mp.map(|e| e.number)
                );
            }
            tx.send_replace(StreamState {
                up: true,
                matched: mp.map(|e| e.number),
            });
            let _ = tokio::time::timeout(r.retry, appended.changed()).await;
            continue;
        }
        let body = ReplicateBody {
            term,
            prev: mp,
            orders,
        };
        match http::post::<_, Applied>(&client, &format!("{url}/internal/v1/replicate"), &body)
            .await
        {
            Ok(a) if a.matched => {
                matched = Some(a.last);
                if tx.borrow().up {
                    tx.send_replace(StreamState {
                        up: true,
                        matched: a.last.map(|e| e.number),
                    });
                }
            }
            Ok(_) => {
                down(&tx);
                matched = None;
                pause(r.retry, &wake).await;
            }
            Err(e) if e.kind == "fenced" => {
                r.step_down(
                    epoch,
                    &format!("follower {} knows a newer epoch ({})", peer.id, e.message),
                );
                return;
            }
            Err(e) => {
                log::warn!(
                    "replica {}: replication to follower {} failed: {e}",
                    r.id,
                    peer.id
                );
                down(&tx);
                matched = None;
                pause(r.retry, &wake).await;
            }
        }
    }
    tx.send_replace(StreamState::default());
}

/// Loads replica `id`'s files from `config` (stopping with a clear message if they are
/// damaged) and serves on `listener` until the process is stopped; it answers `/health` once
/// it has recovered from its peers.
///
/// The order store actor and the recovery task start on the first HTTP worker's thread
/// (`http::serve`).
pub async fn run(config: Config, id: u64, listener: std::net::TcpListener) -> anyhow::Result<()> {
    config.replica(id)?;
    let loaded = LoadedStore::load(&config.service_dir(&format!("order-{id}")), config.fsync)
        .map_err(|e| anyhow::anyhow!("order replica {id} cannot start: {e}"))?;
    let timeout = config.request_timeout();
    let workers = http::workers(config.order.workers);
    log::info!(
        "order replica {id} listening on {} ({workers} HTTP workers)",
        listener.local_addr()?
    );
    let start = move || {
        let (appended, _) = watch::channel(0);
        let r: Shared = Arc::new(Replica {
            id,
            peers: config
                .replicas
                .iter()
                .filter(|r| r.id != id)
                .cloned()
                .collect(),
            store: loaded.start(),
            catalog_url: crate::config::url(&config.catalog.addr),
            timeout,
            replicate_timeout: Duration::from_millis(config.order.replicate_timeout_ms),
            retry: config.heartbeat(),
            batch_limit: config.order.batch_limit.max(1),
            inner: Mutex::new(Inner {
                phase: Phase::Recovering,
                streams: HashMap::new(),
                catching_up: false,
            }),
            appended,
            ready: http::Readiness::default(),
        });
        actix_rt::spawn(recover(r.clone()));
        r
    };
    http::serve(
        "order",
        Metrics::new(&format!("order-{id}")),
        listener,
        workers,
        start,
        move |r: Shared, cfg| {
            cfg.app_data(web::Data::new(r.ready.clone()))
                .app_data(web::Data::new(r))
                .app_data(web::Data::new(http::client(timeout)));
            configure(cfg);
        },
    )
    .await
}
