//! Lag (DESIGN.md rules 1, 4 and 9, and "a follower of any lag catches up"): a follower paused
//! with SIGSTOP while thousands of orders are acknowledged rejoins and converges once it runs
//! again, however far behind it is; and while such a lagging replica takes over from a
//! SIGKILLed leader, every acknowledged order reads back through the front end (or 503 while no
//! leader can serve), never 404.
//!
//! SIGSTOP rather than SIGKILL: a paused process keeps its sockets and its place in the
//! cluster, so when it runs again it is the same follower, only behind, and nothing but the
//! protocol can bring it back in step.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Orders acknowledged while the follower of the first test is paused: far more than fit in
/// one request body (64 KiB is a few hundred orders), so a leader that resends the whole gap
/// in one batch cannot bring it back.
const PAUSED_ORDERS: usize = 20_000;
/// Orders acknowledged while the lagging replica of the takeover test is paused.
const TAKEOVER_ORDERS: usize = 3_000;
/// Client threads of the load, each with its own keep-alive connection. Many, so that the
/// services' group commit has company to share each fsync with (600 to 1,300 orders/s in a
/// debug build on two shared cores, about half that with 8 threads).
const LOAD_THREADS: usize = 64;
/// The load stops here even if it has not placed every order (a slow machine).
const LOAD_LIMIT: Duration = Duration::from_secs(40);
/// How long a resumed follower may take to be in step with the leader. Generous: a follower
/// that catches up at all does so in a few seconds even in a debug build.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// The heartbeat of the catch-up test (the others use the harness's 100 ms).
const CATCH_UP_HEARTBEAT_MS: u64 = 500;
/// How long the readers keep reading after the leader is killed (at least; they also wait
/// for a new leader to serve). An observation window, not a wait for anything to settle.
const READ_WINDOW: Duration = Duration::from_secs(4);
/// The longest the in-step follower is held while the lagging replica takes over.
const HOLD_LIMIT: Duration = Duration::from_secs(3);
/// Reads through the newly named leader before the in-step follower is released.
const HOLD_READS: usize = 50;
/// Deadline for a new leader to serve after a kill.
const FAILOVER_LIMIT: Duration = Duration::from_secs(20);

/// An acknowledged order as the client placed it: number -> (name, type, quantity).
type Acked = BTreeMap<u64, (String, String, u64)>;

/// What a load achieved.
struct Load {
    acked: Acked,
    /// Answers other than 200 (at most a few kept), and how many there were.
    errors: Vec<String>,
    error_count: usize,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.acked.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Places up to `count` orders through `frontend` from `threads` threads, each with a
/// keep-alive client, stopping at `LOAD_LIMIT`. Each thread trades its own stock, a sell then
/// a buy of one unit, so no buy ever runs out of stock.
fn load(frontend: &str, stocks: &[String], count: usize, threads: usize) -> Load {
    let issued = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Acked::new()));
    let errors = Arc::new(Mutex::new((Vec::<String>::new(), 0usize)));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (issued, acked, errors) = (issued.clone(), acked.clone(), errors.clone());
            let frontend = frontend.to_string();
            let name = stocks[t % stocks.len()].clone();
            std::thread::spawn(move || {
                let agent = keep_alive_agent();
                let name = name.as_str();
                let mut i = 0u64;
                while issued.fetch_add(1, Ordering::Relaxed) < count
                    && started.elapsed() < LOAD_LIMIT
                {
                    let kind = if i.is_multiple_of(2) { "sell" } else { "buy" };
                    i += 1;
                    let body = json!({"name": name, "type": kind, "quantity": 1});
                    let answer = try_post_with(&agent, &frontend, "/orders", &body);
                    let problem = match answer {
                        Some((200, b)) => match b["data"]["transaction_number"].as_u64() {
                            Some(n) => acked
                                .lock()
                                .unwrap()
                                .insert(n, (name.to_string(), kind.to_string(), 1))
                                .map(|old| format!("number {n} given twice: {old:?} and {b}")),
                            None => Some(format!("200 without a number: {b}")),
                        },
                        Some((status, b)) => Some(format!("{kind} 1 {name}: {status} {b}")),
                        None => Some(format!("{kind} 1 {name}: no answer")),
                    };
                    if let Some(p) = problem {
                        let mut e = errors.lock().unwrap();
                        e.1 += 1;
                        if e.0.len() < 5 {
                            e.0.push(p);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let (errors, error_count) = std::mem::take(&mut *errors.lock().unwrap());
    Load {
        acked,
        errors,
        error_count,
        elapsed,
    }
}

/// A replica's `/internal/v1/state` (the `data` object), None if it does not answer.
fn replica_state(c: &Cluster, id: u64) -> Option<Value> {
    match try_get(&c.replicas[&id], "/internal/v1/state") {
        Some((200, body)) => Some(body["data"].clone()),
        _ => None,
    }
}

/// The number of the last order a replica holds, None if it holds none or does not answer.
fn last_number(c: &Cluster, id: u64) -> Option<u64> {
    replica_state(c, id)?["last"]["number"].as_u64()
}

/// The front end's current epoch.
fn epoch(c: &Cluster) -> u64 {
    let (status, body) = get(&c.frontend, "/status");
    assert_eq!(status, 200, "front end /status: {body}");
    body["data"]["epoch"]
        .as_u64()
        .unwrap_or_else(|| panic!("no epoch in /status: {body}"))
}

/// The last line of a process's log that mentions `what`, for failure messages.
fn last_log_line(c: &Cluster, name: &str, what: &str) -> String {
    c.log(name)
        .lines()
        .rev()
        .find(|l| l.contains(what))
        .unwrap_or("(none)")
        .to_string()
}

/// The lines of an order file.
fn parse_log(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("order log is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad order line {l:?}: {e}")))
        .collect()
}

/// Rule 1 over a converged log: numbered 0..N-1 in file order, and every acknowledged order
/// under its number with what the client asked for.
fn assert_log_holds(log: &[Value], acked: &Acked) {
    for (i, o) in log.iter().enumerate() {
        assert_eq!(
            o["number"].as_u64(),
            Some(i as u64),
            "line {} of the log: {o}",
            i + 1
        );
    }
    for (n, (name, kind, q)) in acked {
        let o = log
            .get(*n as usize)
            .unwrap_or_else(|| panic!("acknowledged order {n} is not in the log"));
        assert_eq!(
            (
                o["name"].as_str(),
                o["type"].as_str(),
                o["quantity"].as_u64()
            ),
            (Some(name.as_str()), Some(kind.as_str()), Some(*q)),
            "acknowledged order {n} in the log"
        );
    }
}

/// A follower paused while 20,000 orders are acknowledged comes back in step and converges.
#[test]
fn a_paused_follower_of_any_lag_rejoins() {
    // Slow heartbeats: a busy debug build can miss a 100 ms one, and a leadership change while
    // the follower is behind could bring it in step by a takeover instead of by replication.
    let c = Cluster::up(Opts {
        heartbeat_ms: CATCH_UP_HEARTBEAT_MS,
        ..Opts::default()
    });
    let leader = c.wait_leader();
    let follower = *c.replicas.keys().find(|id| **id != leader).unwrap();
    let name = format!("order-{follower}");
    let epoch_before = epoch(&c);

    c.signal(&name, libc::SIGSTOP);
    let stocks: Vec<String> = catalog_stocks(&c.catalog).into_keys().collect();
    let load = load(&c.frontend, &stocks, PAUSED_ORDERS, LOAD_THREADS);
    eprintln!(
        "lag: {} orders acknowledged in {:.1?} with replica {follower} paused: {:.0} orders/s \
         ({LOAD_THREADS} client threads, debug build); epoch {epoch_before} before, {} after",
        load.acked.len(),
        load.elapsed,
        load.per_second(),
        epoch(&c)
    );
    assert!(
        load.error_count == 0,
        "{} orders were not acknowledged while a follower was paused; first: {:?}",
        load.error_count,
        load.errors
    );
    assert!(
        load.acked.len() > 1_000,
        "the load acknowledged only {} orders in {LOAD_LIMIT:?}: too few for a lag that \
         exceeds one request body",
        load.acked.len()
    );

    let epoch_resumed = epoch(&c);
    c.signal(&name, libc::SIGCONT);
    let resumed = Instant::now();
    // Compared with whoever leads now, so that the failure names the right leader even if
    // leadership moved.
    let mut seen = Value::Null;
    let mut leading = (leader, None);
    loop {
        let current = serving_leader(&c.frontend).map(|(l, _)| l);
        let target = current.and_then(|l| last_number(&c, l));
        let ours = replica_state(&c, follower);
        let ours_last = ours.as_ref().and_then(|s| s["last"]["number"].as_u64());
        if target.is_some() && ours_last == target {
            break;
        }
        if let Some(s) = ours {
            seen = s;
        }
        if let (Some(l), Some(_)) = (current, target) {
            leading = (l, target);
        }
        assert!(
            resumed.elapsed() < CATCH_UP_LIMIT,
            "replica {follower}, resumed after {} orders, is not in step with leader {} \
             {CATCH_UP_LIMIT:?} later: its last entry is {} (state {seen}), the leader's is order \
             {:?}.\nThe leader's last word on it: {}",
            load.acked.len(),
            leading.0,
            seen["last"],
            leading.1,
            last_log_line(
                &c,
                &format!("order-{}", leading.0),
                &format!("follower {follower}")
            )
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let in_step = resumed.elapsed();
    let epoch_in_step = epoch(&c);
    assert_eq!(
        epoch_in_step, epoch_resumed,
        "replica {follower} is in step {in_step:.1?} after SIGCONT, but leadership changed \
         meanwhile (epoch {epoch_resumed} -> {epoch_in_step}): a takeover, not replication, may \
         have brought it in step, so this run shows nothing about catching up"
    );
    let log = c.wait_converged();
    eprintln!(
        "lag: replica {follower} in step {in_step:.1?} after SIGCONT ({} orders acknowledged while \
         it was paused), files identical {:.1?} after SIGCONT",
        load.acked.len(),
        resumed.elapsed()
    );
    assert_log_holds(&parse_log(&log), &load.acked);
}

/// The fields of a `GET /orders/{n}` answer's data that the client placed (others are
/// allowed).
fn order_view(data: &Value) -> Value {
    json!({
        "number": data["number"],
        "name": data["name"],
        "type": data["type"],
        "quantity": data["quantity"],
    })
}

/// What the readers saw during the takeover.
#[derive(Default)]
struct Reads {
    /// Answers by status.
    by_status: BTreeMap<u16, usize>,
    /// 404s: (order, milliseconds after the kill), the first few.
    not_found: Vec<(u64, i128)>,
    not_found_count: usize,
    /// Anything else wrong: a wrong order, an unexpected status, no answer.
    wrong: Vec<String>,
}

/// Reads `GET /orders/{n}` in a tight loop until `stop`: the newest acknowledged order on
/// even rounds, a sample of older ones on odd rounds.
fn reader(
    frontend: String,
    acked: Arc<Acked>,
    seed: u64,
    stop: Arc<AtomicBool>,
    killed: Arc<Mutex<Option<Instant>>>,
    reads: Arc<Mutex<Reads>>,
) {
    let agent = keep_alive_agent();
    let numbers: Vec<u64> = acked.keys().copied().collect();
    let newest = *numbers.last().unwrap();
    let mut x = seed | 1;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let n = if round.is_multiple_of(2) {
            newest
        } else {
            // xorshift64: a reproducible sample of the older orders.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            numbers[(x % numbers.len() as u64) as usize]
        };
        let answer = try_get_with(&agent, &frontend, &format!("/orders/{n}"));
        let since_kill = || {
            killed
                .lock()
                .unwrap()
                .map_or(-1, |k| k.elapsed().as_millis() as i128)
        };
        let mut r = reads.lock().unwrap();
        match answer {
            Some((status, body)) => {
                *r.by_status.entry(status).or_default() += 1;
                match status {
                    200 => {
                        let (name, kind, q) = &acked[&n];
                        let d = &body["data"];
                        let want = json!({"number": n, "name": name, "type": kind, "quantity": q});
                        if order_view(d) != want && r.wrong.len() < 5 {
                            r.wrong.push(format!("order {n}: {d}, placed as {want}"));
                        }
                    }
                    503 => {}
                    404 => {
                        r.not_found_count += 1;
                        if r.not_found.len() < 5 {
                            r.not_found.push((n, since_kill()));
                        }
                    }
                    _ if r.wrong.len() < 5 => r.wrong.push(format!("order {n}: {status} {body}")),
                    _ => {}
                }
            }
            None if r.wrong.len() < 5 => r.wrong.push(format!("order {n}: no answer")),
            None => {}
        }
    }
}

/// Rule 9: while a replica that is alive but behind takes over from a SIGKILLed leader, every
/// acknowledged order reads back (or 503), never 404. Four readers read through the front end
/// from before the kill until a new leader serves and at least `READ_WINDOW` has passed.
#[test]
fn acknowledged_orders_stay_readable_while_a_lagging_replica_takes_over() {
    let mut c = Cluster::up(Opts::default());
    let leader = c.wait_leader();
    // The follower the supervisor picks when the leader dies: the next-highest id.
    let lagging = *c.replicas.keys().rev().find(|id| **id != leader).unwrap();
    let lagging_name = format!("order-{lagging}");
    let epoch_before = epoch(&c);

    c.signal(&lagging_name, libc::SIGSTOP);
    let stocks: Vec<String> = catalog_stocks(&c.catalog).into_keys().collect();
    let load = load(&c.frontend, &stocks, TAKEOVER_ORDERS, LOAD_THREADS);
    eprintln!(
        "takeover: {} orders acknowledged in {:.1?} with replica {lagging} paused ({:.0} \
         orders/s); epoch {epoch_before} before, {} after",
        load.acked.len(),
        load.elapsed,
        load.per_second(),
        epoch(&c)
    );
    assert!(
        load.error_count == 0 && !load.acked.is_empty(),
        "{} orders were not acknowledged while a follower was paused; first: {:?}",
        load.error_count,
        load.errors
    );
    let acked = Arc::new(load.acked);
    let newest = *acked.keys().last().unwrap();
    // Under the load a heartbeat can miss and leadership move; the highest id takes it back.
    wait_for(
        &format!("replica {leader} to serve as leader after the load"),
        FAILOVER_LIMIT,
        || serving_leader(&c.frontend).filter(|(l, _)| *l == leader),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let killed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let reads: Arc<Mutex<Reads>> = Arc::default();
    let readers: Vec<_> = (0..4u64)
        .map(|seed| {
            let (frontend, acked, stop, killed, reads) = (
                c.frontend.clone(),
                acked.clone(),
                stop.clone(),
                killed.clone(),
                reads.clone(),
            );
            std::thread::spawn(move || reader(frontend, acked, seed + 7, stop, killed, reads))
        })
        .collect();
    // The readers are running: every read so far went to the old leader.
    wait_for("the readers to start", FAILOVER_LIMIT, || {
        (reads.lock().unwrap().by_status.values().sum::<usize>() >= 10).then_some(())
    });

    // Alive but behind, and at once the leader dies: the supervisor may pick it. The follower
    // that is in step is held (paused) meanwhile, until the front end names a new leader and
    // the readers have read through it for a while: the lagging replica's takeover cannot
    // finish before they reach it. Without the hold it finishes within tens of milliseconds,
    // and a takeover that serves too early is caught only most of the time.
    let in_step = *c
        .replicas
        .keys()
        .find(|id| **id != leader && **id != lagging)
        .unwrap();
    let in_step_name = format!("order-{in_step}");
    c.signal(&in_step_name, libc::SIGSTOP);
    c.signal(&lagging_name, libc::SIGCONT);
    c.kill(&format!("order-{leader}"));
    let killed_at = Instant::now();
    *killed.lock().unwrap() = Some(killed_at);
    let behind = last_number(&c, lagging);
    let total_reads = || reads.lock().unwrap().by_status.values().sum::<usize>();
    let mut named: Option<(u64, usize)> = None;
    while killed_at.elapsed() < HOLD_LIMIT {
        if named.is_none() {
            named = try_get(&c.frontend, "/status")
                .and_then(|(_, s)| s["data"]["leader"].as_u64())
                .filter(|l| *l != leader)
                .map(|l| (l, total_reads()));
        }
        if named.is_some_and(|(_, at)| total_reads() >= at + HOLD_READS) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    c.signal(&in_step_name, libc::SIGCONT);
    eprintln!(
        "takeover: leader {leader} killed; replica {lagging} held up to order {behind:?} of \
         {newest}; replica {in_step} held for {:.0?}, while the front end named leader {:?}",
        killed_at.elapsed(),
        named.map(|(l, _)| l)
    );

    let new_leader = wait_for("a new serving leader", FAILOVER_LIMIT, || {
        serving_leader(&c.frontend).filter(|(l, _)| *l != leader)
    });
    let serving_after = killed_at.elapsed();
    wait_for("the read window to pass", FAILOVER_LIMIT, || {
        (killed_at.elapsed() >= READ_WINDOW).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let reads = std::mem::take(&mut *reads.lock().unwrap());
    eprintln!(
        "takeover: replica {} (epoch {}) serves {serving_after:.1?} after the kill; reads by status: {:?}",
        new_leader.0, new_leader.1, reads.by_status
    );
    assert!(
        reads.not_found_count == 0,
        "{} reads of acknowledged orders answered 404 while replica {} took over (rule 9 allows \
         200 or 503 only); first (order, ms after the kill): {:?}; replica {lagging} held up to \
         {behind:?} of {newest} when the leader died, replica {in_step} held meanwhile",
        reads.not_found_count,
        new_leader.0,
        reads.not_found
    );
    assert!(reads.wrong.is_empty(), "wrong answers: {:?}", reads.wrong);

    // At rest every acknowledged order reads back, with what was placed.
    let agent = keep_alive_agent();
    for (n, (name, kind, q)) in acked.iter() {
        let want = json!({"number": n, "name": name, "type": kind, "quantity": q});
        let got = wait_for(
            &format!("order {n} to read back"),
            FAILOVER_LIMIT,
            || match try_get_with(&agent, &c.frontend, &format!("/orders/{n}")) {
                Some((503, _)) | None => None,
                Some(other) => Some(other),
            },
        );
        assert_eq!(
            (got.0, order_view(&got.1["data"])),
            (200, want),
            "order {n} after the takeover: {}",
            got.1
        );
    }
}
