//! Tests of `launcher::process`, kept apart so the module reads on one screen.

use super::*;
use std::io::Write;
use std::net::TcpListener;

/// Serves one `GET /ready` with `response`, then closes; returns the address.
fn serve_once(response: &'static str) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut lines = BufReader::new(&conn).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "GET /ready HTTP/1.1");
        while !lines.next().unwrap().unwrap().is_empty() {}
        (&conn).write_all(response.as_bytes()).unwrap();
    });
    (addr, handle)
}

#[test]
fn readiness_probe_wants_a_200() {
    let (addr, server) =
        serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    assert!(is_ready(&probe_agent(), &addr));
    server.join().unwrap();

    let (addr, server) = serve_once(
        "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
         4\r\nnot \r\n5\r\nready\r\n0\r\n\r\n",
    );
    assert!(!is_ready(&probe_agent(), &addr));
    server.join().unwrap();

    // Nothing listens on a port just released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(!is_ready(&probe_agent(), &addr.to_string()));
}

/// A service running `sh -c script`. Scripts `exec` their last command: a grandchild
/// would keep the output pipes open after `sh` is gone.
fn shell(script: &str) -> Service {
    Service::start(
        "sh",
        "127.0.0.1:1",
        "/bin/sh".into(),
        vec!["-c".into(), script.into()],
        &[("GREETING".into(), "hello".into())],
        2,
    )
    .unwrap()
}

#[test]
fn stop_all_terminates_and_reaps() {
    let mut services = [shell("exec sleep 30"), shell("exit 3")];
    let deadline = Instant::now() + Duration::from_secs(10);
    while services[1].reap().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sh -c 'exit 3' did not exit");
        std::thread::sleep(POLL);
    }
    assert!(!services[1].is_running());
    stop_all(&mut services);
    assert_eq!(
        describe(services[0].status.unwrap()),
        format!("signal {}", Signal::SIGTERM as i32)
    );
    assert_eq!(describe(services[1].status.unwrap()), "status 3");
}

#[test]
fn kill_and_restart_with_other_env() {
    let mut s = shell("test \"$GREETING\" = bye && exit 7; exec sleep 30");
    let first = s.pid();
    assert_eq!(describe(s.kill().unwrap()), "signal 9");
    assert!(s.kill().is_err(), "a reaped child cannot be killed");
    s.restart(&[("GREETING".into(), "bye".into())]).unwrap();
    assert_ne!(s.pid(), first);
    let status = s.child.wait().unwrap();
    assert_eq!(describe(status), "status 7");
}

#[test]
fn exit_statuses_are_described_briefly() {
    assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "status 1");
    assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9");
}
