//! Bad input on every route gets the error object with the right status, and changes nothing.

use crate::harness::*;
use serde_json::json;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

#[test]
fn bad_input_gets_the_error_object_and_changes_nothing() {
    let c = Cluster::up(Opts::default());
    let fe = c.frontend.as_str();
    let cases: Vec<(u16, (u16, serde_json::Value))> = vec![
        (
            400,
            post_raw(fe, "/orders", "application/json", b"{not json"),
        ),
        (400, post_raw(fe, "/orders", "application/json", b"")),
        // Any Content-Type is read as JSON (see openapi.rs); a form is not JSON.
        (
            400,
            post_raw(
                fe,
                "/orders",
                "application/x-www-form-urlencoded",
                b"name=GameStart&quantity=1&type=buy",
            ),
        ),
        (
            400,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "buy"}),
                &[],
            ),
        ),
        (
            400,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "buy", "quantity": "3"}),
                &[],
            ),
        ),
        (
            400,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "buy", "quantity": -1}),
                &[],
            ),
        ),
        (
            400,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "buy", "quantity": 0}),
                &[],
            ),
        ),
        (
            400,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "steal", "quantity": 1}),
                &[],
            ),
        ),
        (400, post(fe, "/orders", &json!([1, 2]), &[])),
        (
            404,
            post(
                fe,
                "/orders",
                &json!({"name": "NoSuchCo", "type": "buy", "quantity": 1}),
                &[],
            ),
        ),
        (
            409,
            post(
                fe,
                "/orders",
                &json!({"name": "GameStart", "type": "buy", "quantity": 101}),
                &[],
            ),
        ),
        (
            413,
            post_raw(fe, "/orders", "application/json", &vec![b' '; 200 * 1024]),
        ),
        (404, get(fe, "/stocks/NoSuchCo")),
        (400, get(fe, "/stocks/%20bad%20")),
        (404, get(fe, "/orders/0")),
        (400, get(fe, "/orders/abc")),
        (400, get(fe, "/orders/-1")),
        (404, get(fe, "/no/such/path")),
        (405, post(fe, "/stocks/GameStart", &json!({}), &[])),
        (405, get(fe, "/orders")),
        (
            400,
            post(
                &c.catalog,
                "/internal/v1/trade",
                &json!({"rid": "x", "name": "GameStart"}),
                &[],
            ),
        ),
        (404, get(&c.catalog, "/stocks/NoSuchCo")),
        (
            400,
            post(
                &c.replicas[&1],
                "/internal/v1/replicate",
                &json!({"term": 1}),
                &[],
            ),
        ),
    ];
    for (i, (want, (got, body))) in cases.iter().enumerate() {
        assert_eq!(got, want, "case {i}: {body}");
        assert_eq!(error_code(body), *want as u64, "case {i}: {body}");
    }
    // A 405 names the method the path answers (HTTP requires Allow on a 405).
    for (method, path, allow) in [
        ("POST", "/stocks/GameStart", "GET"),
        ("GET", "/orders", "POST"),
    ] {
        let res = ureq::request(method, &format!("http://{fe}{path}")).call();
        let Err(ureq::Error::Status(405, r)) = res else {
            panic!("{method} {path}: expected 405, got {res:?}");
        };
        assert_eq!(r.header("Allow"), Some(allow), "{method} {path}");
    }
    // Nothing traded, nothing recorded.
    assert_eq!(stock(fe, "GameStart").quantity, 100);
    assert_eq!(catalog_status(&c.catalog).last_trade, 0);
    assert_eq!(get(fe, &wire::order_path(0)).0, 404);
    // And the exchange still works.
    let (status, body) = order(fe, "GameStart", TradeKind::Buy, 1);
    assert_eq!((status, transaction_number(&body)), (200, 0));
}
