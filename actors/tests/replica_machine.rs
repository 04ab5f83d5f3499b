//! Scripted scenarios for the replica machine, each a rule of DESIGN.md driven step by step
//! with no network, no disk and no clock: the test plays the peers, the catalog and the disk.

use tradenet_actors::orderlog::{EntryId, Order, OrderLog};
use tradenet_actors::replication::replica::order_bytes;
use tradenet_actors::replication::{
    Append, Appended, CatalogAnswer, CatalogCall, Config, Counters, Effect, Envelope, Event,
    PlaceOrder, Replica, ReplicaState, Request, Response, Role, StreamState, Term, Write,
};
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::catalog::{TradeOutcome, TradeRecord};
use tradenet_actors::Error;

const CLIENT: Envelope = Envelope { from: 0, id: 1 };

fn order(number: u64, epoch: u64) -> Order {
    Order {
        number,
        epoch,
        rid: RequestId(1000 + u128::from(number)),
        name: "GameStart".into(),
        kind: TradeKind::Buy,
        quantity: 1,
        cseq: number + 1,
    }
}

fn log_of(epochs: &[u64]) -> OrderLog {
    let mut log = OrderLog::default();
    for (n, e) in epochs.iter().enumerate() {
        log.append(order(n as u64, *e));
    }
    log
}

fn term(epoch: u64, leader: u64) -> Term {
    Term {
        epoch,
        leader: Some(leader),
    }
}

fn config(id: u64, peers: &[u64]) -> Config {
    let mut c = Config::new(id, peers.to_vec());
    c.max_batch_bytes = 1000;
    c
}

/// Feeds `event`, then completes every write the machine asks for at once; returns every
/// effect that is not a write.
fn step(r: &mut Replica, now: u64, event: Event) -> Vec<Effect> {
    let mut out = Vec::new();
    let mut pending = r.step(now, event);
    while !pending.is_empty() {
        let mut last = None;
        for e in pending.drain(..) {
            match e {
                Effect::Write(w) => last = Some(w.ticket()),
                other => out.push(other),
            }
        }
        if let Some(t) = last {
            pending = r.step(now, Event::Durable(t));
        }
    }
    out
}

fn answer(effects: &[Effect], to: Envelope) -> Option<Result<Response, Error>> {
    effects.iter().find_map(|e| match e {
        Effect::Respond { to: t, result } if *t == to => Some(result.clone()),
        _ => None,
    })
}

/// The id of the first catalog call among `effects` that `is` accepts.
fn catalog_call(effects: &[Effect], is: impl Fn(&CatalogCall) -> bool) -> Option<u64> {
    effects.iter().find_map(|e| match e {
        Effect::Catalog { id, call, .. } if is(call) => Some(*id),
        _ => None,
    })
}

fn state(id: u64, last: Option<EntryId>, t: Term) -> Response {
    Response::State(ReplicaState {
        id,
        role: Role::Follower,
        ready: true,
        last,
        term: t,
        lagging: Vec::new(),
        leader_silence_ms: None,
        catalog_silence_ms: Some(120),
        catalog_epoch: None,
        catalog_term: Default::default(),
    })
}

/// Makes `r` (with no peers answering anything fresher) the serving leader of `epoch`.
fn lead(r: &mut Replica, epoch: u64) -> Vec<Effect> {
    let id = r.id();
    let mut fx = step(r, 0, Event::Request(CLIENT, Request::Term(term(epoch, id))));
    // Every peer says it holds nothing newer.
    let asks: Vec<(u64, u64)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                id,
                request: Request::State,
            } => Some((*to, *id)),
            _ => None,
        })
        .collect();
    for (to, rid) in asks {
        let reply = Event::Reply {
            from: to,
            id: rid,
            result: Ok(state(to, None, term(epoch, id))),
        };
        fx.extend(step(r, 1, reply));
    }
    let call = catalog_call(&fx, |c| matches!(c, CatalogCall::TradesSince { .. }))
        .expect("the new leader asks the catalog for trades after its log");
    let done = Event::CatalogReply {
        id: call,
        result: Ok(CatalogAnswer::Trades {
            trades: Vec::new(),
            complete: true,
        }),
    };
    let fx = step(r, 2, done);
    assert_eq!(r.role(), Role::Leader);
    fx
}

#[test]
fn an_older_term_is_fenced_and_a_newer_one_answered_only_once_durable() {
    let (mut r, _) = Replica::new(config(1, &[2, 3]), OrderLog::default(), Term::default(), 0);
    let fx = r.step(0, Event::Request(CLIENT, Request::Term(term(5, 3))));
    assert!(
        answer(&fx, CLIENT).is_none(),
        "answered before the term was durable"
    );
    let ticket = fx
        .iter()
        .find_map(|e| match e {
            Effect::Write(w @ Write::SaveTerm { .. }) => Some(w.ticket()),
            _ => None,
        })
        .expect("the term is written");
    let fx = r.step(1, Event::Durable(ticket));
    assert_eq!(answer(&fx, CLIENT), Some(Ok(Response::TermAccepted)));

    let older = Envelope { from: 0, id: 2 };
    let fx = r.step(2, Event::Request(older, Request::Term(term(4, 2))));
    assert!(matches!(
        answer(&fx, older),
        Some(Err(Error::Fenced { got: 4, known: 5 }))
    ));
    let rival = Envelope { from: 0, id: 3 };
    let fx = r.step(3, Event::Request(rival, Request::Term(term(5, 2))));
    assert!(
        matches!(answer(&fx, rival), Some(Err(Error::Fenced { .. }))),
        "a second leader in the same epoch is refused"
    );
    assert_eq!(r.term(), term(5, 3));
}

#[test]
fn a_follower_of_any_lag_catches_up_in_batches_below_the_byte_bound() {
    let epochs = vec![1; 500];
    let (mut leader, _) = Replica::new(config(1, &[2]), log_of(&epochs), Term::default(), 0);
    let (mut follower, _) = Replica::new(config(2, &[1]), OrderLog::default(), Term::default(), 0);
    let mut fx = lead(&mut leader, 1);
    let mut batches = 0;
    for round in 0..1000 {
        let Some((id, append)) = fx.iter().find_map(|e| match e {
            Effect::Send {
                to: 2,
                id,
                request: Request::Append(a),
            } => Some((*id, a.clone())),
            _ => None,
        }) else {
            break;
        };
        let bytes: usize = append.orders.iter().map(order_bytes).sum();
        assert!(bytes <= 1000, "batch {round} carries {bytes} bytes");
        batches += 1;
        let env = Envelope { from: 1, id };
        let reply = step(
            &mut follower,
            round,
            Event::Request(env, Request::Append(append)),
        );
        let result = answer(&reply, env).expect("the follower answers");
        fx = step(
            &mut leader,
            round,
            Event::Reply {
                from: 2,
                id,
                result,
            },
        );
    }
    assert_eq!(follower.durable_len(), 500, "after {batches} batches");
    assert!(
        batches > 10,
        "500 orders of ~100 bytes in 1000-byte batches"
    );
    assert_eq!(leader.waited_followers(), Some(vec![2]), "back in step");
    assert_eq!(follower.role(), Role::Follower, "ready once in step");
}

#[test]
fn an_order_is_answered_once_durable_on_the_leader_and_the_followers_it_waits_for() {
    let (mut leader, _) = Replica::new(config(1, &[2]), OrderLog::default(), Term::default(), 0);
    // An empty log: the follower is waited for from the start, nothing to probe.
    lead(&mut leader, 1);
    let place = PlaceOrder {
        rid: RequestId(42),
        name: "FishCo".into(),
        quantity: 2,
        kind: TradeKind::Sell,
    };
    let fx = step(
        &mut leader,
        4,
        Event::Request(CLIENT, Request::Place(place)),
    );
    let call = fx
        .iter()
        .find_map(|e| match e {
            Effect::Catalog {
                id,
                call: CatalogCall::Trades { trades: t, .. },
                ..
            } if t.len() == 1 && t[0].rid == RequestId(42) && t[0].epoch == 1 => Some(*id),
            _ => None,
        })
        .expect("traded at the catalog under the request id and epoch, alone without load");
    let traded = Ok(CatalogAnswer::Traded(vec![Ok(TradeOutcome {
        seq: 1,
        name: "FishCo".into(),
        kind: TradeKind::Sell,
        quantity: 2,
        price: 1.0,
    })]));
    let fx = step(
        &mut leader,
        5,
        Event::CatalogReply {
            id: call,
            result: traded,
        },
    );
    assert!(
        answer(&fx, CLIENT).is_none(),
        "answered before the follower held it"
    );
    let batch = fx
        .iter()
        .find_map(|e| match e {
            Effect::Send {
                to: 2,
                id,
                request: Request::Append(a),
            } => Some((*id, a.orders.clone())),
            _ => None,
        })
        .expect("the order goes to the follower");
    assert_eq!(batch.1.len(), 1);
    assert_eq!(batch.1[0].number, 0, "number = catalog sequence - 1");
    let lag = |r: &Replica| {
        r.followers()
            .iter()
            .map(|f| (f.id, f.lag, f.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(lag(&leader), vec![(2, 1, StreamState::InStep)]);
    assert_eq!(leader.counters(), Counters::default());
    let ok = Ok(Response::Appended(Appended {
        matched: true,
        last: Some(EntryId {
            number: 0,
            epoch: 1,
        }),
    }));
    let fx = step(
        &mut leader,
        6,
        Event::Reply {
            from: 2,
            id: batch.0,
            result: ok,
        },
    );
    match answer(&fx, CLIENT) {
        Some(Ok(Response::Order(o))) => assert_eq!((o.number, o.rid), (0, RequestId(42))),
        other => panic!("expected the order, got {other:?}"),
    }
    assert_eq!(lag(&leader), vec![(2, 0, StreamState::InStep)]);
    // The same request again (a retry, or a repeated Idempotency-Key): the same order at once,
    // counted as a replay and not as a second trade.
    let again = Envelope { from: 0, id: 2 };
    let place = PlaceOrder {
        rid: RequestId(42),
        name: "FishCo".into(),
        quantity: 2,
        kind: TradeKind::Sell,
    };
    let fx = step(&mut leader, 7, Event::Request(again, Request::Place(place)));
    assert!(matches!(answer(&fx, again), Some(Ok(Response::Order(o))) if o.number == 0));
    assert_eq!(
        leader.counters(),
        Counters {
            acknowledged: 1,
            replays: 1
        }
    );
}

#[test]
fn a_read_beyond_the_log_is_unknown_only_once_the_catalog_confirms() {
    let (mut leader, _) = Replica::new(config(1, &[]), log_of(&[1, 1]), Term::default(), 0);
    lead(&mut leader, 2);
    let held = Envelope { from: 0, id: 7 };
    let fx = step(&mut leader, 3, Event::Request(held, Request::Get(1)));
    assert!(matches!(answer(&fx, held), Some(Ok(Response::Order(o))) if o.number == 1));

    let fx = step(&mut leader, 4, Event::Request(CLIENT, Request::Get(2)));
    assert!(
        answer(&fx, CLIENT).is_none(),
        "unknown before the catalog said so"
    );
    let call = catalog_call(&fx, |_| true).expect("asks the catalog");
    // The catalog holds trade 3 (order 2): it is recorded and served, not "unknown".
    let trade = TradeRecord {
        seq: 3,
        rid: RequestId(9),
        name: "BoarCo".into(),
        kind: TradeKind::Buy,
        quantity: 1,
        epoch: 1,
    };
    let page = Ok(CatalogAnswer::Trades {
        trades: vec![trade],
        complete: true,
    });
    let fx = step(
        &mut leader,
        5,
        Event::CatalogReply {
            id: call,
            result: page,
        },
    );
    assert!(matches!(answer(&fx, CLIENT), Some(Ok(Response::Order(o))) if o.rid == RequestId(9)));

    let beyond = Envelope { from: 0, id: 8 };
    let fx = step(&mut leader, 6, Event::Request(beyond, Request::Get(10)));
    let call = catalog_call(&fx, |_| true).expect("asks the catalog");
    let fenced = Err(Error::Fenced { got: 2, known: 3 });
    let fx = step(
        &mut leader,
        7,
        Event::CatalogReply {
            id: call,
            result: fenced,
        },
    );
    assert!(
        matches!(answer(&fx, beyond), Some(Err(Error::NotLeader(_)))),
        "a deposed leader says so instead of 'unknown'"
    );
    assert_eq!(leader.role(), Role::Follower);
}

#[test]
fn a_malformed_batch_is_refused_and_changes_nothing() {
    let (mut f, _) = Replica::new(config(2, &[1]), log_of(&[1]), term(1, 1), 0);
    let bad = [
        vec![order(2, 1)], // a gap after order 0
        vec![Order {
            quantity: 1 << 40,
            ..order(1, 1)
        }],
        vec![Order {
            cseq: 7,
            ..order(1, 1)
        }],
        vec![order(1, 9)], // an epoch above the sender's
    ];
    for orders in bad {
        let a = Append {
            term: term(1, 1),
            prev: Some(EntryId {
                number: 0,
                epoch: 1,
            }),
            orders,
            leader_last: None,
        };
        let fx = f.step(1, Event::Request(CLIENT, Request::Append(a)));
        assert!(
            matches!(answer(&fx, CLIENT), Some(Err(Error::BadRequest(_)))),
            "{fx:?}"
        );
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::Write(_))),
            "wrote {fx:?}"
        );
    }
    assert_eq!(f.log().next_number(), 1);
}

#[test]
fn a_new_leader_pulls_from_the_freshest_peer_and_drops_a_tail_only_it_held() {
    // Replica 3 holds a dead leader's unreplicated order 2 of epoch 1; replica 2 holds the
    // newer epoch's orders 2 and 3.
    let (mut r3, _) = Replica::new(config(3, &[2]), log_of(&[1, 1, 1]), term(1, 3), 0);
    let (mut r2, _) = Replica::new(config(2, &[3]), log_of(&[1, 1, 2, 2]), term(2, 2), 0);
    let mut fx = step(
        &mut r3,
        0,
        Event::Request(CLIENT, Request::Term(term(3, 3))),
    );
    for now in 1..100 {
        let mut next = Vec::new();
        for e in fx.drain(..) {
            match e {
                Effect::Send { to: 2, id, request } => {
                    let env = Envelope { from: 3, id };
                    let reply = step(&mut r2, now, Event::Request(env, request));
                    let result = answer(&reply, env).expect("replica 2 answers");
                    next.extend(step(
                        &mut r3,
                        now,
                        Event::Reply {
                            from: 2,
                            id,
                            result,
                        },
                    ));
                }
                Effect::Catalog { id, .. } => {
                    let page = Ok(CatalogAnswer::Trades {
                        trades: Vec::new(),
                        complete: true,
                    });
                    next.extend(step(&mut r3, now, Event::CatalogReply { id, result: page }));
                }
                _ => {}
            }
        }
        fx = next;
        if r3.role() == Role::Leader {
            break;
        }
    }
    assert_eq!(r3.role(), Role::Leader);
    let epochs: Vec<u64> = (0..r3.log().next_number())
        .map(|n| r3.log().get(n).unwrap().epoch)
        .collect();
    assert_eq!(
        epochs,
        vec![1, 1, 2, 2],
        "replica 2's newer orders replace the tail"
    );
}

#[test]
fn a_replica_named_leader_again_while_taking_over_takes_over_the_newer_epoch() {
    let (mut r, _) = Replica::new(config(3, &[]), log_of(&[1]), Term::default(), 0);
    let first = step(&mut r, 0, Event::Request(CLIENT, Request::Term(term(1, 3))));
    assert!(first.iter().any(|e| matches!(
        e,
        Effect::Catalog {
            call: CatalogCall::TradesSince { epoch: 1, .. },
            ..
        }
    )));
    let again = Envelope { from: 0, id: 2 };
    let fx = step(&mut r, 1, Event::Request(again, Request::Term(term(2, 3))));
    assert!(
        fx.iter().any(|e| matches!(
            e,
            Effect::Catalog {
                call: CatalogCall::TradesSince { epoch: 2, .. },
                ..
            }
        )),
        "the takeover restarts in epoch 2: {fx:?}"
    );
    assert_eq!(r.term(), term(2, 3));
}

#[test]
fn a_takeover_fenced_by_the_catalog_steps_down_and_reports_the_catalogs_epoch() {
    let (mut r, _) = Replica::new(config(3, &[]), log_of(&[1]), Term::default(), 0);
    let fx = step(&mut r, 0, Event::Request(CLIENT, Request::Term(term(2, 3))));
    let call = catalog_call(&fx, |c| matches!(c, CatalogCall::TradesSince { .. }))
        .expect("the takeover asks the catalog");
    let fenced = Err(Error::Fenced {
        got: 2,
        known: 1000,
    });
    step(
        &mut r,
        1,
        Event::CatalogReply {
            id: call,
            result: fenced,
        },
    );
    assert_eq!(r.role(), Role::Follower, "fenced: steps down");
    assert_eq!(
        r.state().catalog_epoch,
        Some(1000),
        "and says what the catalog knows"
    );
}

/// Catalog failover, the leader's side (`docs/catalog-failover.md`): on a new catalog term the
/// leader drops every call to the old primary, including an answer it holds but has not
/// appended, and trades each order again at the new primary under the same request id; a late
/// answer from the old primary is ignored; the clients get their numbers from the new one.
#[test]
fn a_new_catalog_term_moves_every_unrecorded_trade_to_the_new_primary() {
    let (mut r, _) = Replica::new(config(3, &[]), OrderLog::default(), Term::default(), 0);
    lead(&mut r, 1);
    let client = |id| Envelope { from: 0, id };
    let place = |rid: u128| {
        Request::Place(PlaceOrder {
            rid: RequestId(rid),
            name: "FishCo".into(),
            quantity: 1,
            kind: TradeKind::Sell,
        })
    };
    let trades_call = |fx: &[Effect]| -> Vec<(Option<u64>, u64, Vec<u128>, u64)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Catalog {
                    to,
                    id,
                    call:
                        CatalogCall::Trades {
                            log_end, trades, ..
                        },
                } => Some((*to, *id, trades.iter().map(|t| t.rid.0).collect(), *log_end)),
                _ => None,
            })
            .collect()
    };
    let a = trades_call(&step(&mut r, 3, Event::Request(client(10), place(1))));
    let b = trades_call(&step(&mut r, 3, Event::Request(client(11), place(2))));
    let c = trades_call(&step(&mut r, 3, Event::Request(client(12), place(3))));
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (1, 1, 0),
        "two calls out, the third waits"
    );
    assert_eq!(a[0].0, None, "the one catalog of the default term");
    let outcome = |seq| {
        Ok(TradeOutcome {
            seq,
            name: "FishCo".into(),
            kind: TradeKind::Sell,
            quantity: 1,
            price: 1.0,
        })
    };
    // The old primary answers B as trade 2; it waits behind A's number 0.
    let fx = step(
        &mut r,
        4,
        Event::CatalogReply {
            id: b[0].1,
            result: Ok(CatalogAnswer::Traded(vec![outcome(2)])),
        },
    );
    assert!(answer(&fx, client(11)).is_none());
    // A new primary: catalog 2.
    let new_term = tradenet_actors::replication::CatalogTerm {
        epoch: 1,
        primary: Some(2),
    };
    let fx = step(
        &mut r,
        5,
        Event::Request(CLIENT, Request::CatalogTerm(new_term)),
    );
    assert_eq!(answer(&fx, CLIENT), Some(Ok(Response::TermAccepted)));
    assert_eq!(r.catalog_term(), new_term);
    let again = trades_call(&fx);
    assert_eq!(again.len(), 1, "one call to the new primary: {fx:?}");
    let (to, id, mut rids, log_end) = again[0].clone();
    rids.sort();
    assert_eq!((to, rids, log_end), (Some(2), vec![1, 2, 3], 0));
    // The old primary's late answer for A changes nothing.
    let fx = step(
        &mut r,
        6,
        Event::CatalogReply {
            id: a[0].1,
            result: Ok(CatalogAnswer::Traded(vec![outcome(1)])),
        },
    );
    assert!(
        fx.iter().all(|e| !matches!(e, Effect::Respond { .. })),
        "{fx:?}"
    );
    assert_eq!(r.log().next_number(), 0);
    // The new primary numbers them; each client gets its own.
    let order_of: Vec<u128> = again[0].2.clone();
    let answers = order_of
        .iter()
        .enumerate()
        .map(|(i, _)| outcome(i as u64 + 1))
        .collect();
    let fx = step(
        &mut r,
        7,
        Event::CatalogReply {
            id,
            result: Ok(CatalogAnswer::Traded(answers)),
        },
    );
    for (i, rid) in order_of.iter().enumerate() {
        let env = client(9 + *rid as u64);
        match answer(&fx, env) {
            Some(Ok(Response::Order(o))) => {
                assert_eq!((o.number, o.rid), (i as u64, RequestId(*rid)));
            }
            other => panic!("request {rid}: {other:?}"),
        }
    }
    assert_eq!(r.log().next_number(), 3);
    // An older catalog term, or a second primary in the same epoch, is refused.
    for t in [
        tradenet_actors::replication::CatalogTerm {
            epoch: 0,
            primary: None,
        },
        tradenet_actors::replication::CatalogTerm {
            epoch: 1,
            primary: Some(1),
        },
    ] {
        let fx = step(&mut r, 8, Event::Request(CLIENT, Request::CatalogTerm(t)));
        assert!(matches!(
            answer(&fx, CLIENT),
            Some(Err(Error::Fenced { .. }))
        ));
    }
}

#[test]
fn with_a_catalog_group_a_leader_alone_answers_only_once_a_standby_catalog_holds_the_order() {
    use tradenet_actors::replication::{CatalogCopy, CatalogTerm, OrdersPage, ReadOrders};
    for group in [false, true] {
        // No follower at all: the leader is alone, as when every follower lags.
        let mut cfg = config(3, &[]);
        cfg.catalog_group = group;
        let (mut r, _) = Replica::new(cfg, OrderLog::default(), Term::default(), 0);
        lead(&mut r, 1);
        let t = CatalogTerm {
            epoch: 1,
            primary: Some(2),
        };
        step(&mut r, 3, Event::Request(CLIENT, Request::CatalogTerm(t)));
        let client = Envelope { from: 0, id: 7 };
        let place = Request::Place(PlaceOrder {
            rid: RequestId(42),
            name: "FishCo".into(),
            quantity: 1,
            kind: TradeKind::Sell,
        });
        let fx = step(&mut r, 4, Event::Request(client, place));
        let call = catalog_call(&fx, |c| matches!(c, CatalogCall::Trades { .. })).unwrap();
        let traded = Ok(CatalogAnswer::Traded(vec![Ok(TradeOutcome {
            seq: 1,
            name: "FishCo".into(),
            kind: TradeKind::Sell,
            quantity: 1,
            price: 1.0,
        })]));
        let fx = step(
            &mut r,
            5,
            Event::CatalogReply {
                id: call,
                result: traded,
            },
        );
        if !group {
            // One catalog: its journal is the second copy; the leader answers at once.
            assert!(matches!(answer(&fx, client), Some(Ok(Response::Order(_)))));
            continue;
        }
        assert!(answer(&fx, client).is_none(), "answered with one copy");
        let read = |catalog, epoch| {
            let asker = Envelope {
                from: 100 + catalog,
                id: epoch,
            };
            let request = Request::ReadOrders(ReadOrders {
                from: 0,
                limit: 10,
                copy: Some(CatalogCopy {
                    catalog,
                    epoch,
                    upto: 1,
                }),
            });
            (asker, Event::Request(asker, request))
        };
        let page = |fx: &[Effect], asker| match answer(fx, asker) {
            Some(Ok(Response::Orders(p))) => p,
            other => panic!("{other:?}"),
        };
        // A copy of an older epoch's log is not this log: answered at once, asking for a copy.
        let (asker, ev) = read(1, 0);
        let fx = step(&mut r, 6, ev);
        assert!(answer(&fx, client).is_none());
        let p: OrdersPage = page(&fx, asker);
        assert!(p.copy_wanted && p.acknowledged == 0, "{p:?}");
        // The primary's own copy is not a second one. Its read, holding the whole log, is
        // kept until there is more, or a heartbeat (`retry`) passes.
        let (asker, ev) = read(2, 1);
        let fx = step(&mut r, 6, ev);
        assert!(answer(&fx, client).is_none() && answer(&fx, asker).is_none());
        let fx = step(&mut r, 300, Event::Tick);
        let p = page(&fx, asker);
        assert!(p.copy_wanted && p.acknowledged == 0, "{p:?}");
        assert!(answer(&fx, client).is_none());
        // Standby catalog 1 holds it: answered. Its read is kept in turn: the leader, still
        // alone, answers it with the next durable order.
        let (asker, ev) = read(1, 1);
        let fx = step(&mut r, 301, ev);
        match answer(&fx, client) {
            Some(Ok(Response::Order(o))) => assert_eq!((o.number, o.rid), (0, RequestId(42))),
            other => panic!("expected the order, got {other:?}"),
        }
        assert!(answer(&fx, asker).is_none());
        let fx = step(&mut r, 600, Event::Tick);
        let p = page(&fx, asker);
        assert!(p.copy_wanted && p.acknowledged == 1, "{p:?}");
    }
}

#[test]
fn with_a_catalog_group_a_takeover_waits_for_a_majority_of_the_replicas() {
    for group in [false, true] {
        let mut cfg = config(3, &[1, 2]);
        cfg.catalog_group = group;
        cfg.replicate_timeout = 100;
        let (mut r, _) = Replica::new(cfg, OrderLog::default(), Term::default(), 0);
        let fx = step(&mut r, 0, Event::Request(CLIENT, Request::Term(term(4, 3))));
        // One catalog: plain state requests; a group: surveys naming the new term.
        let asked = |fx: &[Effect]| -> Vec<(u64, u64)> {
            fx.iter()
                .filter_map(|e| match e {
                    Effect::Send {
                        to,
                        id,
                        request: Request::State,
                    } if !group => Some((*to, *id)),
                    Effect::Send {
                        to,
                        id,
                        request: Request::Survey(t),
                    } if group && *t == term(4, 3) => Some((*to, *id)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(asked(&fx).len(), 2);
        // Neither peer answers in time.
        let fx = step(&mut r, 150, Event::Tick);
        let reconciles = catalog_call(&fx, |c| matches!(c, CatalogCall::TradesSince { .. }));
        if !group {
            // One catalog: it holds every acknowledged trade; the takeover goes on with it.
            assert!(reconciles.is_some(), "{fx:?}");
            continue;
        }
        assert!(reconciles.is_none(), "went on without a majority: {fx:?}");
        let again = asked(&fx);
        assert_eq!(
            again.iter().map(|a| a.0).collect::<Vec<_>>(),
            vec![1, 2],
            "the silent peers are asked again"
        );
        assert_eq!(r.role(), Role::TakingOver);
        // Replica 2 answers (holding a longer log): a majority. Replica 1 stays silent; once
        // the survey's time is up, the takeover pulls from replica 2.
        step(
            &mut r,
            160,
            Event::Reply {
                from: 2,
                id: again[1].1,
                result: Ok(state(
                    2,
                    Some(EntryId {
                        number: 4,
                        epoch: 2,
                    }),
                    term(4, 3),
                )),
            },
        );
        let fx = step(&mut r, 260, Event::Tick);
        assert!(
            fx.iter().any(|e| matches!(
                e,
                Effect::Send {
                    to: 2,
                    request: Request::Fetch(_),
                    ..
                }
            )),
            "{fx:?}"
        );
    }
}

#[test]
fn a_survey_fences_the_replaced_leader_and_answers_once_its_last_batch_is_durable() {
    use tradenet_actors::replication::Append;
    // Replica 2 follows replica 3 in epoch 3 with two orders.
    let (mut r, _) = Replica::new(config(2, &[1, 3]), log_of(&[3, 3]), term(3, 3), 0);
    // Leader 3's next batch is written but not durable yet when replica 1's survey arrives.
    let batch = Append {
        term: term(3, 3),
        prev: Some(EntryId {
            number: 1,
            epoch: 3,
        }),
        orders: vec![order(2, 3)],
        leader_last: Some(EntryId {
            number: 2,
            epoch: 3,
        }),
    };
    let from_leader = Envelope { from: 3, id: 1 };
    let fx = r.step(
        0,
        Event::Request(from_leader, Request::Append(batch.clone())),
    );
    let write = fx
        .iter()
        .find_map(|e| match e {
            Effect::Write(w) => Some(w.ticket()),
            _ => None,
        })
        .expect("the batch is written");
    let surveyor = Envelope { from: 1, id: 2 };
    let fx = r.step(1, Event::Request(surveyor, Request::Survey(term(5, 1))));
    assert!(answer(&fx, surveyor).is_none(), "answered before durable");
    let term_write = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Write(w) => Some(w.ticket()),
            _ => None,
        })
        .max()
        .expect("the term is persisted");
    assert!(term_write > write);
    // Both writes durable: the leader's batch is acknowledged to it, and the survey's answer
    // counts that order (the new leader will pull it) under the new term.
    let fx = r.step(2, Event::Durable(term_write));
    assert!(matches!(
        answer(&fx, from_leader),
        Some(Ok(Response::Appended(Appended { matched: true, .. })))
    ));
    match answer(&fx, surveyor) {
        Some(Ok(Response::State(s))) => {
            assert_eq!(s.term, term(5, 1));
            assert_eq!(s.last.map(|l| l.number), Some(2));
        }
        other => panic!("{other:?}"),
    }
    // The replaced leader's next batch is refused: it cannot acknowledge through replica 2.
    let mut next = batch;
    next.prev = Some(EntryId {
        number: 2,
        epoch: 3,
    });
    next.orders = vec![order(3, 3)];
    let again = Envelope { from: 3, id: 3 };
    let fx = step(&mut r, 3, Event::Request(again, Request::Append(next)));
    assert!(
        matches!(
            answer(&fx, again),
            Some(Err(Error::Fenced { known: 5, .. }))
        ),
        "{fx:?}"
    );
    // A survey of an older term is refused as well.
    let old = Envelope { from: 1, id: 4 };
    let fx = step(&mut r, 4, Event::Request(old, Request::Survey(term(4, 1))));
    assert!(matches!(answer(&fx, old), Some(Err(Error::Fenced { .. }))));
}

#[test]
fn after_a_change_of_primary_a_leader_alone_waits_for_the_new_primary_to_hold_its_orders() {
    use tradenet_actors::replication::{CatalogCopy, CatalogTerm, ReadOrders};
    let mut cfg = config(3, &[]);
    cfg.catalog_group = true;
    let (mut r, _) = Replica::new(cfg, OrderLog::default(), Term::default(), 0);
    lead(&mut r, 1);
    let catalog_term = |epoch, primary| {
        Request::CatalogTerm(CatalogTerm {
            epoch,
            primary: Some(primary),
        })
    };
    let place = |rid: u128| {
        Request::Place(PlaceOrder {
            rid: RequestId(rid),
            name: "FishCo".into(),
            quantity: 1,
            kind: TradeKind::Sell,
        })
    };
    let traded = |seq| {
        Ok(CatalogAnswer::Traded(vec![Ok(TradeOutcome {
            seq,
            name: "FishCo".into(),
            kind: TradeKind::Sell,
            quantity: 1,
            price: 1.0,
        })]))
    };
    step(&mut r, 1, Event::Request(CLIENT, catalog_term(1, 1)));
    // Order A is traded at catalog 1, the primary.
    let a = Envelope { from: 0, id: 10 };
    let fx = step(&mut r, 2, Event::Request(a, place(1)));
    let call = catalog_call(&fx, |c| matches!(c, CatalogCall::Trades { .. })).unwrap();
    let fx = step(
        &mut r,
        3,
        Event::CatalogReply {
            id: call,
            result: traded(1),
        },
    );
    assert!(answer(&fx, a).is_none(), "no second copy yet");
    // Catalog 2 becomes primary; catalog 1, now a standby, reports holding A.
    step(&mut r, 4, Event::Request(CLIENT, catalog_term(2, 2)));
    let read = Envelope { from: 101, id: 1 };
    let copy = Request::ReadOrders(ReadOrders {
        from: 0,
        limit: 10,
        copy: Some(CatalogCopy {
            catalog: 1,
            epoch: 1,
            upto: 1,
        }),
    });
    let fx = step(&mut r, 5, Event::Request(read, copy));
    assert!(
        answer(&fx, a).is_none(),
        "A is held by this leader and catalog 1 only: the new primary has not seen it"
    );
    // Order B goes to catalog 2, which answers once it has caught up with this log (A
    // included): now A is on both catalogs.
    let b = Envelope { from: 0, id: 11 };
    let fx = step(&mut r, 6, Event::Request(b, place(2)));
    let call = fx
        .iter()
        .find_map(|e| match e {
            Effect::Catalog {
                to: Some(2),
                id,
                call: CatalogCall::Trades { log_end: 1, .. },
            } => Some(*id),
            _ => None,
        })
        .expect("B goes to the new primary, naming the log's end");
    let fx = step(
        &mut r,
        7,
        Event::CatalogReply {
            id: call,
            result: traded(2),
        },
    );
    match answer(&fx, a) {
        Some(Ok(Response::Order(o))) => assert_eq!(o.number, 0),
        other => panic!("A: {other:?}"),
    }
    assert!(answer(&fx, b).is_none(), "B has no standby copy yet");
}

#[test]
fn orders_that_arrive_together_trade_in_one_call_and_replicate_in_one_batch() {
    let (mut leader, _) = Replica::new(config(1, &[2]), OrderLog::default(), Term::default(), 0);
    lead(&mut leader, 1);
    let place = |i: u64| PlaceOrder {
        rid: RequestId(100 + u128::from(i)),
        name: "FishCo".into(),
        quantity: 1,
        kind: TradeKind::Buy,
    };
    let env = |i: u64| Envelope {
        from: 0,
        id: 10 + i,
    };
    let together = (0..5).map(|i| (env(i), Request::Place(place(i)))).collect();
    let fx = step(&mut leader, 4, Event::Requests(together));
    let calls: Vec<(u64, Vec<RequestId>)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Catalog {
                id,
                call: CatalogCall::Trades { trades, .. },
                ..
            } => Some((*id, trades.iter().map(|t| t.rid).collect())),
            _ => None,
        })
        .collect();
    // Taken one by one, the first two orders would each have left alone (two calls out).
    assert_eq!(calls.len(), 1, "one call for the five orders: {calls:?}");
    assert_eq!(calls[0].1, (0..5).map(|i| place(i).rid).collect::<Vec<_>>());
    let traded = (0..5)
        .map(|i| {
            Ok(TradeOutcome {
                seq: i + 1,
                name: "FishCo".into(),
                kind: TradeKind::Buy,
                quantity: 1,
                price: 1.0,
            })
        })
        .collect();
    let fx = step(
        &mut leader,
        5,
        Event::CatalogReply {
            id: calls[0].0,
            result: Ok(CatalogAnswer::Traded(traded)),
        },
    );
    let batches: Vec<(u64, Vec<u64>)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to: 2,
                id,
                request: Request::Append(a),
            } => Some((*id, a.orders.iter().map(|o| o.number).collect())),
            _ => None,
        })
        .collect();
    // Released one at a time, order 0 would have left alone and the rest waited for it.
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].1, vec![0, 1, 2, 3, 4]);
    let held = Ok(Response::Appended(Appended {
        matched: true,
        last: Some(EntryId {
            number: 4,
            epoch: 1,
        }),
    }));
    let fx = step(
        &mut leader,
        6,
        Event::Reply {
            from: 2,
            id: batches[0].0,
            result: held,
        },
    );
    for i in 0..5 {
        match answer(&fx, env(i)) {
            Some(Ok(Response::Order(o))) => assert_eq!((o.number, o.rid), (i, place(i).rid)),
            other => panic!("order {i}: expected its own answer, got {other:?}"),
        }
    }
}
