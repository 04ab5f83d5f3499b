//! The client tool against fake front ends: verification catches a front end that lies about
//! an order, and the CSV and SVG files it writes exist and parse.

use actix_web::{web, App, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tradenet_actors::wire::frontend::{OrderPlaced, OrderRequest, OrderView, Stock};
use tradenet_actors::wire::{self, DataBody, ErrorBody, ErrorKind, ErrorObject};
use tradenet_client::run::{self, RunOpts};
use tradenet_client::stats::Kind;
use tradenet_client::{plot, stats};

/// A front end in memory, answering the public API's shapes: every stock has quantity 100,
/// orders are numbered from 0 and kept; with `lie_about` set, that order is read back with a
/// different quantity.
fn fake_front_end(lie_about: Option<u64>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let next = Arc::new(AtomicU64::new(0));
        let orders: Arc<Mutex<Vec<OrderView>>> = Arc::default();
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let (next, orders, orders2) = (next.clone(), orders.clone(), orders.clone());
                App::new()
                    .route(
                        wire::STOCK,
                        web::get().to(|name: web::Path<String>| async move {
                            HttpResponse::Ok().json(DataBody {
                                data: Stock {
                                    name: name.into_inner(),
                                    price: 1.0,
                                    quantity: 100,
                                    volume: 0,
                                    version: 0,
                                },
                            })
                        }),
                    )
                    .route(
                        wire::ORDERS,
                        web::post().to(move |body: web::Json<OrderRequest>| {
                            let (next, orders) = (next.clone(), orders.clone());
                            async move {
                                let n = next.fetch_add(1, Ordering::SeqCst);
                                let o = body.into_inner();
                                orders.lock().unwrap().push(OrderView {
                                    name: o.name,
                                    number: n,
                                    quantity: o.quantity,
                                    kind: o.kind,
                                });
                                HttpResponse::Ok().json(DataBody {
                                    data: OrderPlaced {
                                        transaction_number: n,
                                    },
                                })
                            }
                        }),
                    )
                    .route(
                        wire::ORDER,
                        web::get().to(move |n: web::Path<u64>| {
                            let orders = orders2.clone();
                            async move {
                                let n = n.into_inner();
                                let Some(mut o) = orders.lock().unwrap().get(n as usize).cloned()
                                else {
                                    return HttpResponse::NotFound().json(ErrorBody {
                                        error: ErrorObject::new(ErrorKind::NotFound, "no"),
                                    });
                                };
                                if Some(n) == lie_about {
                                    o.quantity += 1;
                                }
                                HttpResponse::Ok().json(DataBody { data: o })
                            }
                        }),
                    )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap()
        })
    });
    format!("http://{addr}")
}

fn opts(frontend: String) -> RunOpts {
    RunOpts {
        frontend,
        others: vec![],
        clients: 2,
        iterations: 10,
        p: 1.0,
        seed: 7,
        stocks: vec!["GameStart".into(), "FishCo".into()],
        threads: 2,
        progress: false,
        time_limit: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn an_honest_front_end_gives_zero_mismatches() {
    let r = run::run(&opts(fake_front_end(None)), Arc::default()).unwrap();
    assert_eq!(r.orders.len(), 20, "p = 1 trades after every lookup");
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    let s = stats::summarize_all(&r.samples);
    let counts: Vec<(Kind, u64)> = s.iter().map(|s| (s.kind, s.count)).collect();
    assert_eq!(
        counts,
        [(Kind::Lookup, 20), (Kind::Trade, 20), (Kind::Query, 20)]
    );
}

#[test]
fn a_front_end_that_lies_about_an_order_is_reported() {
    let r = run::run(&opts(fake_front_end(Some(3))), Arc::default()).unwrap();
    assert_eq!(r.mismatches.len(), 1, "{:?}", r.mismatches);
    assert!(
        r.mismatches[0].starts_with("order 3:"),
        "{}",
        r.mismatches[0]
    );
}

#[test]
fn csv_and_svg_files_exist_and_parse() {
    let dir = tempfile::tempdir().unwrap();
    let r = run::run(&opts(fake_front_end(None)), Arc::default()).unwrap();
    let csv_path = dir.path().join("run.csv");
    run::write_csv(&csv_path, &r.samples).unwrap();
    let mut rd = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(
        rd.headers().unwrap().iter().collect::<Vec<_>>(),
        ["session", "kind", "start_us", "latency_us", "status"]
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), r.samples.len());
    assert!(rows.iter().all(|r| r[4].parse::<u16>().unwrap() == 200));

    let svg = dir.path().join("lines.svg");
    let series = vec![(
        "cache on".to_string(),
        vec![(0.0, 1.0), (0.4, 1.5), (0.8, 2.0)],
    )];
    plot::lines(&svg, "latency", "p", "ms", &series).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("cache on"), "legend present");

    let timeline = dir.path().join("timeline.svg");
    let windows = tradenet_client::experiments::windows(&r.samples, 1000);
    assert!(!windows.is_empty());
    let total: u64 = windows.iter().map(|w| w.errors).sum();
    assert_eq!(total, 0);
    plot::timeline(&timeline, "t", &windows, &[(0.001, "kill order-3".into())]).unwrap();
    roxmltree::Document::parse(&std::fs::read_to_string(&timeline).unwrap()).unwrap();

    let lru = dir.path().join("lru.svg");
    plot::lru_steps(
        &lru,
        "lru",
        2,
        &[("A".into(), vec!["A".into()], "miss".into())],
    )
    .unwrap();
    roxmltree::Document::parse(&std::fs::read_to_string(&lru).unwrap()).unwrap();
}
