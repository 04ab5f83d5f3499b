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
                    call: CatalogCall::Trades { log_end, trades },
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
