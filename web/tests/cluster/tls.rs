//! TLS on every listener and call (`[tls] cert, key, ca`), with a CA and a certificate made
//! here (rcgen): `tradenet up` starts the cluster over TLS (its readiness probes too), the
//! processes elect, trade and replicate with one another over TLS, a client that trusts the
//! CA trades, and plain HTTP or a client that does not trust the CA gets nothing.

use crate::harness::*;
use crate::launcher::start_up;
use serde_json::Value;
use std::time::Duration;
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire::{self, frontend::FrontendStatus};

/// Writes a CA, and a certificate for 127.0.0.1 and localhost that it signed, into `dir`;
/// returns the paths (cert, key, ca).
fn make_certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Trade-Net test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = ["cert.pem", "key.pem", "ca.pem"].map(|f| dir.join(f));
    std::fs::write(&paths[0], cert.pem()).unwrap();
    std::fs::write(&paths[1], key.serialize_pem()).unwrap();
    std::fs::write(&paths[2], ca.pem()).unwrap();
    paths
}

fn agent(trust: Option<&std::path::Path>) -> ureq::Agent {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10));
    match trust {
        Some(ca) => agent.tls_config(tradenet_actors::tls::client_config(ca).unwrap()),
        None => agent,
    }
    .build()
}

fn call(req: ureq::Request, body: Option<Value>) -> Result<(u16, Value), String> {
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => Ok((r.status(), r.into_json().unwrap_or(Value::Null))),
        Err(ureq::Error::Status(s, r)) => Ok((s, r.into_json().unwrap_or(Value::Null))),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn a_cluster_runs_over_tls_and_answers_only_callers_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, ca] = make_certificates(dir.path());
    let c = Cluster::new(Opts {
        extra: format!("[tls]\ncert = {cert:?}\nkey = {key:?}\nca = {ca:?}\n"),
        ..Opts::default()
    });
    // `up` waits for every process's /ready over TLS, with the CA.
    let (up, control) = start_up(&c);
    let tls = agent(Some(&ca));
    let https = |addr: &str, path: &str| format!("https://{addr}{path}");

    // The front end reaches a leader and the catalog over TLS: it is ready and trades.
    let f = &c.frontend;
    let status = wait_for("a leader over TLS", READY, || {
        let (code, body) = call(tls.get(&https(f, wire::STATUS)), None).ok()?;
        let s: FrontendStatus = serde_json::from_value(body["data"].clone())
            .unwrap_or_else(|e| panic!("front end /status ({e}): {body}"));
        (code == 200 && s.serving_leader().is_some()).then_some(s)
    });
    let order = serde_json::to_value(order_body("GameStart", TradeKind::Buy, 2)).unwrap();
    let (code, body) = call(tls.post(&https(f, wire::ORDERS)), Some(order)).unwrap();
    assert_eq!(code, 200, "an order over TLS: {body}");
    let number = transaction_number(&body);
    // Replicated to every replica over TLS before the answer: each one has it.
    let secret = std::fs::read_to_string(c.dir.path().join("data/cluster.secret")).unwrap();
    let bearer = format!("Bearer {}", secret.trim());
    for addr in c.replicas.values() {
        let req = tls
            .get(&https(addr, &wire::replica_order_path(number)))
            .set("Authorization", &bearer);
        let (code, body) = call(req, None).unwrap();
        assert_eq!(code, 200, "order {number} on {addr}: {body}");
    }
    let (code, body) = call(tls.get(&https(f, &wire::stock_path("GameStart"))), None).unwrap();
    assert_eq!(code, 200, "a lookup over TLS: {body}");
    eprintln!(
        "tls: leader {:?} in epoch {}, order {number} on every replica",
        status.leader, status.epoch
    );

    // The control API is TLS too, and still wants the secret.
    let (code, body) = call(tls.get(&https(&control, wire::CONTROL_PROCESSES)), None).unwrap();
    assert_eq!(code, 401, "control API over TLS without the secret: {body}");
    let req = tls
        .get(&https(&control, wire::CONTROL_PROCESSES))
        .set("Authorization", &bearer);
    let (code, body) = call(req, None).unwrap();
    assert_eq!(code, 200, "control API over TLS with the secret: {body}");

    // Plain HTTP gets no answer from any listener; a client that trusts only the public
    // roots (not this CA) is refused at the handshake.
    let addrs: Vec<&String> = [&c.catalog, f, &control]
        .into_iter()
        .chain(c.replicas.values())
        .collect();
    for addr in addrs {
        assert!(
            !matches!(try_get(addr, wire::HEALTH), Some((200, _))),
            "{addr} answered plain HTTP"
        );
        let e = call(agent(None).get(&https(addr, wire::HEALTH)), None)
            .expect_err("a client that does not trust the CA must be refused");
        assert!(
            e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
            "{addr}: {e}"
        );
        eprintln!("tls: {addr} refuses plain HTTP and a client without the CA ({e})");
    }
    drop(up);
}
