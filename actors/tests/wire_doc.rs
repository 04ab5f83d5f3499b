//! Keeps `docs/internal-api.md` (and the README's public API table) from drifting away from
//! `tradenet_actors::wire`.
//!
//! `ROWS` is a table of documented calls: the doc and section a call is in, its method and path
//! constant, and an example of every body it takes or answers (nested objects included). For
//! each row, the doc must have a table row for the call, and that row must name every field of
//! every example. The table must also be complete: every path constant and every type declared
//! under `actors/src/wire/` has to appear in it (the envelopes are checked against the doc's
//! introduction instead). A failure lists everything missing at once.
//!
//! Adding a route or a body type therefore means adding a row here and a line in the doc. Rows
//! without examples only check that the call is documented (most replica rows, for now).

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tradenet_actors::cache::CacheStatus;
use tradenet_actors::types::{RequestId, TradeKind};
use tradenet_actors::wire::catalog::*;
use tradenet_actors::wire::control::*;
use tradenet_actors::wire::frontend::*;
use tradenet_actors::wire::{self, replica, ErrorBody, ErrorKind, ErrorObject, Health};

/// Which document a call is described in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Doc {
    /// `docs/internal-api.md`.
    InternalApi,
    /// The README's public API table.
    Readme,
}

impl Doc {
    fn path(self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        match self {
            Doc::InternalApi => root.join("docs/internal-api.md"),
            Doc::Readme => root.join("README.md"),
        }
    }
}

/// One documented call and the bodies its doc row must describe.
struct Row {
    doc: Doc,
    /// The heading the call's table is under (a prefix of the heading line).
    section: &'static str,
    method: &'static str,
    path: &'static str,
    /// (type name, example as JSON) of every body, nested ones included.
    bodies: Vec<(&'static str, Value)>,
}

fn row(
    doc: Doc,
    section: &'static str,
    method: &'static str,
    path: &'static str,
    bodies: Vec<(&'static str, Value)>,
) -> Row {
    Row {
        doc,
        section,
        method,
        path,
        bodies,
    }
}

/// A body example: its type's name and its JSON.
fn ex<T: Serialize>(value: T) -> (&'static str, Value) {
    let name = std::any::type_name::<T>();
    let name = name.rsplit("::").next().unwrap_or(name);
    (name, serde_json::to_value(value).unwrap())
}

fn stock() -> Stock {
    Stock {
        name: "GameStart".into(),
        price: 15.99,
        quantity: 100,
        volume: 0,
        version: 0,
    }
}

fn rid() -> RequestId {
    RequestId(0x9f72)
}

fn process_pid() -> ProcessPid {
    ProcessPid {
        name: "order-2".into(),
        pid: 4242,
    }
}

const INTERNAL: Doc = Doc::InternalApi;
const EVERY: &str = "## Every service";
const CATALOG: &str = "## Catalog";
const FRONTEND: &str = "## Front end";
const REPLICA: &str = "## Order replica";
const CONTROL: &str = "## Launcher control API";
const PUBLIC: &str = "### Public API";

/// The documented calls; see the module docs.
fn rows() -> Vec<Row> {
    let term = replica::Term {
        epoch: 2,
        leader: Some(3),
    };
    let entry = replica::EntryId {
        number: 4,
        epoch: 2,
    };
    let order = replica::Order {
        number: 4,
        epoch: 2,
        rid: rid(),
        name: "GameStart".into(),
        kind: TradeKind::Buy,
        quantity: 3,
        cseq: 5,
    };
    let state = replica::ReplicaState {
        id: 3,
        role: replica::Role::Leader,
        ready: true,
        last: Some(entry),
        term,
        lagging: vec![1],
        leader_silence_ms: None,
        catalog_silence_ms: Some(120),
        catalog_epoch: None,
        catalog_term: Default::default(),
    };
    let link = CatalogLinkStatus {
        subscriber: "5f0c".into(),
        connected: true,
        incarnation: Some(7),
    };
    let catalog_state = CatalogState {
        id: 2,
        role: tradenet_actors::catalog_node::Role::Primary,
        term: replica::CatalogTerm {
            epoch: 4,
            primary: Some(2),
        },
        last_trade: 9,
        confirmed: 9,
    };
    let catalog_view = CatalogView {
        id: 2,
        addr: "127.0.0.1:8086".into(),
        role: "primary".into(),
        last_trade: Some(9),
        epoch: Some(4),
    };
    let view = ReplicaView {
        id: 3,
        addr: "127.0.0.1:8093".into(),
        role: "leader".into(),
        live: true,
        last_order: Some(4),
        epoch: Some(2),
    };
    let record = TradeRecord {
        seq: 1,
        rid: rid(),
        name: "GameStart".into(),
        kind: TradeKind::Buy,
        quantity: 3,
        epoch: 1,
    };
    let invalidation = Invalidation {
        name: "GameStart".into(),
        version: 1,
    };
    let hello = Hello {
        incarnation: 7,
        subscribed: true,
    };
    vec![
        row(
            INTERNAL,
            EVERY,
            "GET",
            wire::HEALTH,
            vec![ex(Health {
                service: "catalog".into(),
                status: "ok".into(),
            })],
        ),
        row(
            INTERNAL,
            EVERY,
            "GET",
            wire::READY,
            vec![ex(Health {
                service: "frontend".into(),
                status: "ready".into(),
            })],
        ),
        row(INTERNAL, EVERY, "GET", wire::METRICS, vec![]),
        row(INTERNAL, CATALOG, "GET", wire::STOCK, vec![ex(stock())]),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::TRADE,
            vec![
                ex(TradeRequest {
                    rid: rid(),
                    name: "GameStart".into(),
                    kind: TradeKind::Buy,
                    quantity: 3,
                    epoch: 1,
                }),
                ex(TradeOutcome {
                    seq: 1,
                    name: "GameStart".into(),
                    kind: TradeKind::Buy,
                    quantity: 3,
                    price: 15.99,
                }),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::STOCK_BATCH,
            vec![
                ex(LookupBatch {
                    names: vec!["GameStart".into()],
                }),
                ex(StockResult::Ok(Stock {
                    name: "GameStart".into(),
                    price: 15.99,
                    quantity: 97,
                    volume: 3,
                    version: 1,
                })),
                ex(StockResults {
                    results: vec![StockResult::Error(ErrorObject::new(
                        ErrorKind::NotFound,
                        "no stock named Nope",
                    ))],
                }),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::TRADE_BATCH,
            vec![
                ex(TradeBatch {
                    trades: vec![],
                    log_end: 0,
                    leader: Some(3),
                    catalog_epoch: Some(2),
                }),
                ex(TradeResult::Ok(TradeOutcome {
                    seq: 2,
                    name: "GameStart".into(),
                    kind: TradeKind::Sell,
                    quantity: 1,
                    price: 15.99,
                })),
                ex(TradeResults {
                    results: vec![TradeResult::Error(ErrorObject::new(
                        ErrorKind::InsufficientQuantity,
                        "not enough GameStart",
                    ))],
                }),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::TRADES_SINCE,
            vec![
                ex(TradesSince {
                    after: 0,
                    epoch: 2,
                    limit: 100,
                    log_end: 3,
                    leader: Some(3),
                    catalog_epoch: Some(2),
                }),
                ex(TradesPage {
                    trades: vec![record.clone()],
                    complete: true,
                    last_seq: 1,
                }),
                ex(record.clone()),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::SUBSCRIBE,
            vec![
                ex(Subscribe {
                    id: "5f0c".into(),
                    url: "http://127.0.0.1:8081".into(),
                }),
                ex(hello.clone()),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "GET",
            wire::HELLO,
            vec![
                ex(HelloQuery {
                    subscriber: Some("5f0c".into()),
                }),
                ex(hello),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "GET",
            wire::STATUS,
            vec![ex(CatalogStatus {
                epoch: 2,
                incarnation: 7,
                last_trade: 1,
                node: Some(catalog_state),
                stocks: vec![stock()],
                subscribers: vec!["5f0c".into()],
            })],
        ),
        row(
            INTERNAL,
            CATALOG,
            "GET",
            wire::CATALOG_STATE,
            vec![ex(catalog_state)],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::CATALOG_TRADES,
            vec![
                ex(PeerTradesQuery { after: 11 }),
                ex(PeerTradesPage {
                    trades: vec![record.clone()],
                    at: Some(RequestId(7)),
                }),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::CATALOG_REFUSALS,
            vec![
                ex(RefusalsShare {
                    refusals: vec![tradenet_actors::catalog::Refusal {
                        rid: RequestId(9),
                        name: "MenhirCo".into(),
                        quantity: 150,
                        available: 100,
                    }],
                }),
                ex(RefusalsKept { kept: 1 }),
            ],
        ),
        row(
            INTERNAL,
            CATALOG,
            "POST",
            wire::CATALOG_TERM,
            vec![
                ex(replica::CatalogTerm {
                    epoch: 4,
                    primary: Some(2),
                }),
                ex(replica::Accepted { accepted: true }),
            ],
        ),
        row(
            INTERNAL,
            FRONTEND,
            "POST",
            wire::INVALIDATE,
            vec![
                ex(InvalidationBatch {
                    incarnation: 7,
                    stocks: vec![invalidation.clone()],
                }),
                ex(invalidation),
                ex(InvalidationAck { ok: true }),
            ],
        ),
        row(
            INTERNAL,
            FRONTEND,
            "GET",
            wire::STATUS,
            vec![
                ex(FrontendStatus {
                    cache: CacheStatus::default(),
                    catalog: link.clone(),
                    catalog_primary: Some(2),
                    catalogs: vec![catalog_view.clone()],
                    epoch: 2,
                    leader: Some(3),
                    replicas: vec![view.clone()],
                }),
                ex(catalog_view),
                ex(CacheStatus::default()),
                ex(link),
                ex(view),
            ],
        ),
        // The replica bodies are the replication machines' own values (`wire::replica`).
        row(
            INTERNAL,
            REPLICA,
            "GET",
            wire::REPLICA_STATE,
            vec![ex(state.clone())],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::TERM,
            vec![ex(term), ex(replica::Accepted { accepted: true })],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::SURVEY,
            vec![ex(term), ex(state.clone())],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::REPLICA_ORDERS,
            vec![ex(PlaceOrder {
                rid: rid(),
                name: "GameStart".into(),
                quantity: 3,
                kind: TradeKind::Buy,
            })],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::REPLICA_ORDER_BATCH,
            vec![
                ex(replica::PlaceBatch { orders: vec![] }),
                ex(replica::OrderResult::Ok(order.clone())),
                ex(replica::OrderResults {
                    results: vec![replica::OrderResult::Error(ErrorObject::new(
                        ErrorKind::NotLeader,
                        "replica 2 is follower, not serving as leader",
                    ))],
                }),
            ],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::CATALOG_TERM,
            vec![
                ex(replica::CatalogTerm {
                    epoch: 2,
                    primary: Some(2),
                }),
                ex(replica::Accepted { accepted: true }),
            ],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::ORDER_LOG,
            vec![
                ex(replica::ReadOrders {
                    from: 0,
                    limit: 100,
                    copy: Some(replica::CatalogCopy {
                        catalog: 1,
                        epoch: 1,
                        upto: 1,
                    }),
                }),
                ex(replica::CatalogCopy {
                    catalog: 1,
                    epoch: 1,
                    upto: 1,
                }),
                ex(replica::OrdersPage {
                    orders: vec![order.clone()],
                    log_end: 1,
                    acknowledged: 1,
                    leading: true,
                    epoch: 1,
                    copy_wanted: false,
                }),
            ],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::REPLICA_ORDER_READ,
            vec![ex(replica::ReadBatch {
                numbers: vec![0, 1],
            })],
        ),
        row(
            INTERNAL,
            REPLICA,
            "GET",
            wire::REPLICA_ORDER,
            vec![ex(order.clone())],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::REPLICATE,
            vec![
                ex(replica::Append {
                    term,
                    prev: Some(entry),
                    orders: vec![order.clone()],
                    leader_last: Some(entry),
                }),
                ex(replica::Appended {
                    matched: true,
                    last: Some(entry),
                }),
            ],
        ),
        row(
            INTERNAL,
            REPLICA,
            "POST",
            wire::FETCH,
            vec![
                ex(replica::Fetch {
                    after: Some(entry),
                    limit: 100,
                    max_bytes: 32768,
                }),
                ex(replica::Fetched {
                    orders: Some(vec![order]),
                    last: Some(entry),
                }),
            ],
        ),
        row(
            INTERNAL,
            CONTROL,
            "GET",
            wire::CONTROL_PROCESSES,
            vec![ex(Process {
                addr: "127.0.0.1:8092".into(),
                name: "order-2".into(),
                pid: 4242,
                running: true,
            })],
        ),
        row(
            INTERNAL,
            CONTROL,
            "POST",
            wire::CONTROL_KILL,
            vec![ex(process_pid())],
        ),
        row(
            INTERNAL,
            CONTROL,
            "POST",
            wire::CONTROL_START,
            vec![ex(process_pid())],
        ),
        row(
            INTERNAL,
            CONTROL,
            "POST",
            wire::CONTROL_RESTART_FRONTEND,
            vec![ex(process_pid())],
        ),
        row(
            INTERNAL,
            CONTROL,
            "POST",
            wire::CONTROL_RESET,
            vec![ex(Process {
                addr: "127.0.0.1:8082".into(),
                name: "catalog".into(),
                pid: 4243,
                running: true,
            })],
        ),
        row(
            INTERNAL,
            CONTROL,
            "GET",
            wire::CONTROL_DIGESTS,
            vec![ex(Digest {
                bytes: 0,
                name: "order-1".into(),
                sha256: "e3b0c442".into(),
            })],
        ),
        row(
            INTERNAL,
            CONTROL,
            "GET",
            wire::CONTROL_OVERVIEW,
            vec![
                ex(Overview {
                    processes: vec![],
                    requests: vec![],
                }),
                ex(ProcessView {
                    addr: "127.0.0.1:8092".into(),
                    name: "order-2".into(),
                    pid: 4242,
                    ready: true,
                    running: true,
                    status: None,
                }),
                ex(RouteCount {
                    count: 10,
                    route: "/orders".into(),
                    seconds: 0.02,
                }),
            ],
        ),
        row(
            INTERNAL,
            CONTROL,
            "POST",
            wire::CONTROL_LOAD,
            vec![ex(Load {
                clients: 4,
                p: 0.5,
                seconds: 5,
            })],
        ),
        row(INTERNAL, CONTROL, "GET", wire::CONSOLE, vec![]),
        row(Doc::Readme, PUBLIC, "GET", wire::STOCK, vec![ex(stock())]),
        row(Doc::Readme, PUBLIC, "GET", wire::OPENAPI, vec![]),
        row(
            Doc::Readme,
            PUBLIC,
            "POST",
            wire::ORDERS,
            vec![
                ex(OrderRequest {
                    name: "GameStart".into(),
                    quantity: 3,
                    kind: TradeKind::Buy,
                }),
                ex(OrderPlaced {
                    transaction_number: 0,
                }),
            ],
        ),
        row(
            Doc::Readme,
            PUBLIC,
            "GET",
            wire::ORDER,
            vec![ex(OrderView {
                name: "GameStart".into(),
                number: 0,
                quantity: 3,
                kind: TradeKind::Buy,
            })],
        ),
    ]
}

/// The envelopes: checked against the internal API's introduction rather than a row.
const ENVELOPES: [&str; 4] = ["DataBody", "ErrorBody", "ErrorObject", "ErrorKind"];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The source of every file under `actors/src/wire/`, with its path.
fn wire_sources() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wire");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

/// `pub const NAME: &str = "/...";` values: the path constants.
fn path_constants(source: &str) -> Vec<String> {
    source
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"/"))
        .filter_map(|l| l.split('"').nth(1).map(String::from))
        .collect()
}

/// Names of `pub struct` and `pub enum` items.
fn type_names(source: &str) -> Vec<String> {
    source
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("pub struct ")
                .or_else(|| l.strip_prefix("pub enum "))
        })
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// A route with each `{placeholder}` emptied: the placeholder's name is not on the wire.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push('{');
            }
            '}' => {
                inside = false;
                out.push('}');
            }
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when `text` has `word` not run into other identifier characters.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The lines of the section whose heading starts with `heading`, up to the next heading.
fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    lines.next()?;
    Some(lines.take_while(|l| !l.starts_with('#')).collect())
}

/// The table row whose first cell names `METHOD PATH` (followed by a backtick or a query).
fn find_row<'a>(lines: &[&'a str], method: &str, path: &str) -> Option<&'a str> {
    let call = format!("`{method} {}", normalize(path));
    lines.iter().copied().find(|line| {
        let Some(cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            return false;
        };
        let cell = normalize(cell);
        cell.match_indices(&call)
            .any(|(i, _)| matches!(cell[i + call.len()..].chars().next(), Some('`' | '?')))
    })
}

/// The calls (`METHOD /path`, query cut off) named in the first cell of a section's table rows.
fn documented_calls(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix('|')?.split('|').next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter_map(|span| {
            let (method, path) = span.split_once(' ')?;
            let path = path.split('?').next()?;
            (["GET", "POST", "PUT", "DELETE"].contains(&method) && path.starts_with('/'))
                .then(|| (method.to_string(), path.to_string()))
        })
        .collect()
}

/// The field names of an example: an object's keys (for a list, its first element's).
fn fields(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => items.first().map(fields).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn the_docs_describe_every_path_and_field_of_the_wire() {
    let rows = rows();
    let mut missing = Vec::new();

    // The table is complete: every path constant and every wire type is in it.
    let documented_paths: BTreeSet<&str> = rows.iter().map(|r| r.path).collect();
    let documented_types: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.bodies.iter().map(|(name, _)| *name))
        .chain(ENVELOPES)
        .collect();
    for (file, source) in wire_sources() {
        let file = file.file_name().unwrap().to_string_lossy().to_string();
        for path in path_constants(&source) {
            if !documented_paths.contains(path.as_str()) {
                missing.push(format!(
                    "path {path} (wire/{file}) has no row in wire_doc.rs"
                ));
            }
        }
        for name in type_names(&source) {
            if !documented_types.contains(name.as_str()) {
                missing.push(format!(
                    "type {name} (wire/{file}) has no example in wire_doc.rs"
                ));
            }
        }
    }

    // Each row is in its doc and names every field of its bodies.
    for r in &rows {
        let doc = r.doc.path();
        let text = read(&doc);
        let where_ = format!(
            "{} ({})",
            doc.file_name().unwrap().to_string_lossy(),
            r.section
        );
        let Some(lines) = section(&text, r.section) else {
            missing.push(format!("{where_}: no such section"));
            continue;
        };
        let Some(line) = find_row(&lines, r.method, r.path) else {
            missing.push(format!("{where_}: no row for `{} {}`", r.method, r.path));
            continue;
        };
        for (name, example) in &r.bodies {
            for field in fields(example) {
                if !mentions(line, &field) {
                    missing.push(format!(
                        "{where_}: the row for `{} {}` does not name field `{field}` of {name}",
                        r.method, r.path
                    ));
                }
            }
        }
    }

    // And every call the doc's tables name is a wire path: no row outlives its route.
    let known: BTreeSet<String> = rows.iter().map(|r| normalize(r.path)).collect();
    let sections: BTreeSet<(Doc, &str)> = rows.iter().map(|r| (r.doc, r.section)).collect();
    for (doc, heading) in sections {
        let text = read(&doc.path());
        for (method, path) in section(&text, heading)
            .map(|l| documented_calls(&l))
            .unwrap_or_default()
        {
            if !known.contains(&normalize(&path)) {
                missing.push(format!(
                    "{} ({heading}): documents `{method} {path}`, which no wire path constant names",
                    doc.path().file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }

    // The envelopes, every error kind and the body limit are in the introduction.
    let text = read(&Doc::InternalApi.path());
    let intro: String = text
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n");
    if !intro.contains("{\"data\": ...}") {
        missing.push("internal-api.md introduction: no `{\"data\": ...}` envelope".into());
    }
    let error = serde_json::to_value(ErrorBody {
        error: ErrorObject::new(ErrorKind::NotFound, "x"),
    })
    .unwrap();
    for field in fields(&error).into_iter().chain(fields(&error["error"])) {
        if !mentions(&intro, &format!("\"{field}\"")) {
            missing.push(format!(
                "internal-api.md introduction: the error object does not name \"{field}\""
            ));
        }
    }
    for kind in ErrorKind::ALL {
        if !intro.contains(&format!("`{kind}`")) {
            missing.push(format!(
                "internal-api.md introduction: error kind `{kind}` is not listed"
            ));
        }
    }
    let limit = format!("{} KiB", wire::MAX_BODY_BYTES / 1024);
    if !intro.contains(&limit) {
        missing.push(format!(
            "internal-api.md introduction: the body limit is not {limit}"
        ));
    }

    assert!(
        missing.is_empty(),
        "docs and wire types disagree:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_checks_themselves_find_what_they_look_for() {
    assert_eq!(normalize("/orders/{number}"), "/orders/{}");
    assert!(mentions("`{seq, rid, name}`", "rid"));
    assert!(!mentions("`{last_seq}`", "seq"));
    let lines = [
        "| `GET /internal/v1/hello?subscriber=ID` | | `{incarnation}` |",
        "| `GET /internal/v1/orders/{n}` | | one order |",
    ];
    assert!(find_row(&lines, "GET", wire::HELLO).is_some());
    assert!(find_row(&lines, "GET", wire::REPLICA_ORDER).is_some());
    assert!(find_row(&lines, "GET", "/internal/v1/orders").is_none());
    assert_eq!(
        documented_calls(&["| `GET /health`, `GET /status` | x |", "| --- | --- |"]),
        [
            ("GET".to_string(), "/health".to_string()),
            ("GET".to_string(), "/status".to_string())
        ]
    );
    assert_eq!(
        path_constants("pub const STOCK: &str = \"/stocks/{name}\";\npub const N: usize = 1;"),
        ["/stocks/{name}"]
    );
    assert_eq!(
        type_names("pub struct DataBody<T> {\npub enum ErrorKind {"),
        ["DataBody", "ErrorKind"]
    );
}
