//! `tradenet status` and `tradenet check-config` as a user runs them: against a live cluster,
//! one with a dead replica, the default configuration and broken ones.

use crate::harness::*;
use std::process::{Command, Output};

fn tradenet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradenet"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn status_prints_every_process_and_fails_while_one_is_not_ready() {
    let mut c = Cluster::up(Opts::default());
    let config = c.config.display().to_string();
    let out = tradenet(&["--config", &config, "status"], &[]);
    let table = text(&out.stdout);
    assert!(
        out.status.success(),
        "all ready: {table}{}",
        text(&out.stderr)
    );
    for name in ["catalog", "order-1", "order-2", "order-3", "frontend"] {
        assert!(table.contains(&format!("| {name} ")), "{name} in {table}");
    }
    let leader_line = table.lines().find(|l| l.contains("| order-3 ")).unwrap();
    assert!(leader_line.contains("| leader "), "{table}");

    let out = tradenet(&["--config", &config, "status", "--json"], &[]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(5), "{rows}");
    assert_eq!(rows[3]["role"], "leader", "{rows}");

    // A second front end on the same address says who holds it.
    let out = tradenet(&["--config", &config, "frontend"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another Trade-Net process (frontend) already listens there"),
        "{err}"
    );

    c.kill("order-1");
    let out = tradenet(&["--config", &config, "status"], &[]);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a dead replica: {table}");
    let dead = table.lines().find(|l| l.contains("| order-1 ")).unwrap();
    assert!(dead.contains("no answer"), "{table}");
}

#[test]
fn check_config_prints_the_effective_configuration_or_says_what_is_wrong() {
    let out = tradenet(
        &["check-config"],
        &[("TRADENET__FRONTEND__CACHE_SIZE", "3")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let effective = text(&out.stdout);
    assert!(
        effective.contains("cache_size = 3"),
        "the environment layer: {effective}"
    );
    assert!(text(&out.stderr).contains("configuration OK"));

    let out = tradenet(
        &["check-config"],
        &[("TRADENET__CLUSTER__SECRET", "hunter2")],
    );
    assert!(out.status.success());
    assert!(
        !text(&out.stdout).contains("hunter2"),
        "the secret is masked"
    );

    for (key, value, says) in [
        ("TRADENET__FRONTEND__HEARTBEAT_MS", "0", "heartbeat_ms"),
        ("TRADENET__CATALOG__ADDR", "nowhere", "catalog.addr"),
        ("TRADENET__TLS__CERT", "/x.pem", "tls.key"),
        (
            "TRADENET__CLUSTER__SECRET_FILE",
            "/nonexistent/secret",
            "/nonexistent/secret",
        ),
    ] {
        let out = tradenet(&["check-config"], &[(key, value)]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}={value}: {err}");
        assert!(
            err.contains(says),
            "{key}={value} should name {says}: {err}"
        );
    }
}
