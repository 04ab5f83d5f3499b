//! `tradenet up` end to end: it starts every process of a configuration, makes a cluster
//! secret readable by its owner only when none is configured, hands it to its children (they
//! trade with one another), and its control API refuses calls without it.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tradenet_actors::types::TradeKind;
use tradenet_actors::wire;

/// Stops `up` (SIGTERM, so it stops its children too) when the test ends, however it ends.
pub struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        send_signal(self.0.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tradenet up` on the configuration of `c`, with its control API on a port of its
/// own; returns once it says it is up, with the control address.
pub fn start_up(c: &Cluster) -> (Up, String) {
    let control = format!("127.0.0.1:{}", free_port());
    let config = std::fs::read_to_string(&c.config).unwrap().replace(
        "[order]",
        &format!("[launcher]\ncontrol_addr = {control:?}\n\n[order]"),
    );
    std::fs::write(&c.config, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradenet"))
        .arg("--config")
        .arg(&c.config)
        .arg("up")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let up = Up(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("`up` did not say it is up within 60 s");
        if line.contains("Trade-Net is up") {
            return (up, control);
        }
    }
}

#[test]
fn up_makes_a_private_secret_hands_it_to_its_children_and_guards_its_control_api() {
    let c = Cluster::new(Opts::default());
    let (up, control) = start_up(&c);

    let path = c.dir.path().join("data/cluster.secret");
    let secret = std::fs::read_to_string(&path).expect("up made a secret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the owner may read the secret");
    let auth = format!("Bearer {}", secret.trim());

    // The children got it: they elect, trade and replicate.
    c.wait_leader();
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 2);
    assert_eq!(status, 200, "{body}");

    let (status, body) = get(&control, wire::CONTROL_PROCESSES);
    assert_eq!(status, 401, "control API without the secret: {body}");
    let (status, body) = get_with(
        &control,
        wire::CONTROL_PROCESSES,
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(5), "{body}");
    drop(up);
}

#[test]
fn reset_starts_every_service_again_on_empty_data() {
    let c = Cluster::new(Opts::default());
    let (up, control) = start_up(&c);
    let secret = std::fs::read_to_string(c.dir.path().join("data/cluster.secret")).unwrap();
    let auth = format!("Bearer {}", secret.trim());
    c.wait_leader();
    let before = stock(&c.frontend, "GameStart").quantity;
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 3);
    assert_eq!(status, 200, "{body}");
    c.wait_converged();

    let (status, body) = post(
        &control,
        wire::CONTROL_RESET,
        &serde_json::Value::Null,
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{body}");
    let processes = body["data"].as_array().expect("a list of processes");
    assert_eq!(processes.len(), 5, "{body}");
    assert!(processes.iter().all(|p| p["running"] == true), "{body}");

    // The trade is gone: the catalog starts from its configured stocks, the replicas from
    // empty files, and the secret (beside the data folders) still works.
    c.wait_leader();
    assert_eq!(stock(&c.frontend, "GameStart").quantity, before);
    assert!(c.order_files().iter().all(|(_, bytes)| bytes.is_empty()));
    let (status, body) = order(&c.frontend, "GameStart", TradeKind::Buy, 1);
    assert_eq!(status, 200, "{body}");
    drop(up);
}
