//! The front end describes its public API at `GET /openapi.json`, and what it answers fits that
//! description; JSON bodies need no Content-Type. (CI fuzzes the same document against a live
//! cluster with schemathesis: `.ci/schemathesis.sh`.)

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeSet;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

/// The response statuses the document lists for one operation.
fn statuses(doc: &Value, path: &str, method: &str) -> BTreeSet<String> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not in the document"))
        .keys()
        .cloned()
        .collect()
}

/// The schema a `$ref` names, or the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Checks an answer against the document's schema for `status` (required properties, nested
/// objects, and the error kind's enum): a small stand-in for schemathesis in `cargo test`.
fn assert_fits(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: {status} not documented as JSON"
    );
    fits(
        doc,
        resolve(doc, schema),
        body,
        &format!("{method} {path} {status}"),
    );
}

fn fits(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema["enum"].as_array() {
        assert!(options.contains(value), "{at}: {value} not in {options:?}");
    }
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{at}: {value} is not an object"));
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap();
        assert!(object.contains_key(key), "{at}: `{key}` missing in {value}");
    }
    for (key, sub) in properties {
        if let Some(v) = object.get(key) {
            fits(doc, sub, v, &format!("{at}.{key}"));
        }
    }
}

#[test]
fn the_front_end_serves_a_document_its_answers_fit() {
    let c = Cluster::up(Opts::default());
    let fe = c.frontend.as_str();
    let (status, doc) = get(fe, wire::OPENAPI);
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not an OpenAPI 3 document: {doc}"
    );

    // The three public calls, with every status each can answer.
    let want = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        statuses(&doc, wire::STOCK, "get"),
        want(&["200", "400", "404", "503"])
    );
    assert_eq!(
        statuses(&doc, wire::ORDERS, "post"),
        want(&["200", "400", "404", "409", "413", "500", "503"])
    );
    assert_eq!(
        statuses(&doc, wire::ORDER, "get"),
        want(&["200", "400", "404", "500", "503"])
    );
    let params = doc["paths"][wire::ORDERS]["post"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{params:?}"
    );
    for path in [wire::HEALTH, wire::READY, wire::STATUS, wire::METRICS] {
        assert!(doc["paths"][path]["get"].is_object(), "GET {path} missing");
    }

    // What the front end answers fits the document, successes and errors alike.
    let (s, body) = get(fe, &wire::stock_path("GameStart"));
    assert_fits(&doc, wire::STOCK, "get", s, &body);
    let (s, body) = get(fe, &wire::stock_path("NoSuchCo"));
    assert_eq!(s, 404);
    assert_fits(&doc, wire::STOCK, "get", s, &body);
    let (s, body) = order(fe, "GameStart", TradeKind::Buy, 1);
    assert_eq!(s, 200, "{body}");
    assert_fits(&doc, wire::ORDERS, "post", s, &body);
    let (s, body) = order(fe, "GameStart", TradeKind::Buy, 1000);
    assert_eq!(s, 409, "{body}");
    assert_fits(&doc, wire::ORDERS, "post", s, &body);
    let (s, body) = get(fe, &wire::order_path(0));
    assert_fits(&doc, wire::ORDER, "get", s, &body);
    let (s, body) = get(fe, "/orders/abc");
    assert_eq!(s, 400);
    assert_fits(&doc, wire::ORDER, "get", s, &body);
    let (s, body) = get(fe, wire::STATUS);
    assert_fits(&doc, wire::STATUS, "get", s, &body);
    let (s, body) = get(fe, wire::READY);
    assert_fits(&doc, wire::READY, "get", s, &body);

    // A name holding `?` or `#` is looked up as it is, not cut at them on the way to the
    // catalog (schemathesis found a 503 here: the catalog URL was not encoded).
    for name in ["GameStart%3Fx", "GameStart%23x", "a%25zz", "%2C5%29%3E2"] {
        let (s, body) = get(fe, &format!("/stocks/{name}"));
        assert_eq!(s, 404, "{name}: {body}");
        assert_fits(&doc, wire::STOCK, "get", s, &body);
    }
}

/// POST raw bytes without any Content-Type header.
fn post_untyped(addr: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let res = ureq::post(&format!("http://{addr}{path}")).send_bytes(body);
    let (status, r) = match res {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(status, r)) => (status, r),
        Err(e) => panic!("POST {addr}{path}: {e}"),
    };
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "answer is not JSON"
    );
    let text = r.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_json_body_needs_no_content_type() {
    let c = Cluster::up(Opts {
        replicas: 1,
        ..Opts::default()
    });
    let fe = c.frontend.as_str();
    let (status, body) = post_untyped(
        fe,
        wire::ORDERS,
        br#"{"name":"GameStart","quantity":2,"type":"buy"}"#,
    );
    assert_eq!((status, transaction_number(&body)), (200, 0), "{body}");
    assert_eq!(stock(fe, "GameStart").quantity, 98);
    // Not JSON, with or without a type: 400 with the error object, nothing traded.
    for (status, body) in [
        post_untyped(fe, wire::ORDERS, b"name=GameStart&quantity=1&type=buy"),
        post_untyped(fe, wire::ORDERS, b""),
        post_raw(fe, wire::ORDERS, "text/plain", b"buy 1 GameStart"),
    ] {
        assert_eq!((status, error_code(&body)), (400, 400), "{body}");
    }
    assert_eq!(stock(fe, "GameStart").quantity, 98);
}
