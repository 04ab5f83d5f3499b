//! Tests of `launcher::control`, kept apart so the module reads on one screen.

use super::*;
// Not `use actix_web::test`: that would shadow the `#[test]` attribute.
use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
use serde_json::{json, Value};

/// A stand-in for the main thread: records each command and answers it with `reply`.
fn stand_in(reply: fn(&Command) -> Answer) -> (Commands, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel::<Request>();
    let (seen_tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for Request { command, reply: to } in rx {
            let answer = reply(&command);
            let _ = seen_tx.send(command);
            let _ = to.send(answer);
        }
    });
    (Commands(tx), seen)
}

/// The control routes in the shared app, as the server runs them.
macro_rules! control_app {
    ($commands:expr) => {{
        let commands = $commands;
        init_service(http::app(
            "launcher",
            Metrics::new("launcher"),
            move |cfg| {
                cfg.app_data(web::Data::new(commands))
                    .app_data(web::Data::new(ConsoleConfig {
                        stocks: vec!["GameStart".into()],
                    }));
                configure(cfg);
                crate::launcher::console::configure(cfg);
            },
        ))
        .await
    }};
}

async fn call<S, R>(app: &S, req: R) -> (u16, Value)
where
    S: actix_web::dev::Service<
        R,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let res = call_service(app, req).await;
    let status = res.status().as_u16();
    (status, read_body_json(res).await)
}

#[actix_web::test]
async fn routes_become_commands_and_answers_become_data() {
    let (commands, seen) = stand_in(|_| {
        Ok(Reply::Pid(shapes::ProcessPid {
            name: "order-2".into(),
            pid: 7,
        }))
    });
    let app = control_app!(commands);
    let cases = [
        (
            TestRequest::get().uri("/control/v1/processes"),
            Command::List,
        ),
        (
            TestRequest::get().uri("/control/v1/digests"),
            Command::Digests,
        ),
        (
            TestRequest::post().uri("/control/v1/kill/order-2"),
            Command::Kill("order-2".into()),
        ),
        (
            TestRequest::post().uri("/control/v1/start/order-2"),
            Command::Start {
                name: "order-2".into(),
                env: vec![],
            },
        ),
        (
            TestRequest::post().uri("/control/v1/restart/frontend?cache_size=0"),
            Command::Start {
                name: "frontend".into(),
                env: vec![(FRONTEND_CACHE_SIZE_VAR.into(), "0".into())],
            },
        ),
    ];
    for (req, command) in cases {
        let (status, body) = call(&app, req.to_request()).await;
        assert_eq!(status, 200, "{command:?}: {body}");
        assert_eq!(body, json!({"data": {"name": "order-2", "pid": 7}}));
        assert_eq!(seen.recv().unwrap(), command);
    }
}

#[actix_web::test]
async fn reset_is_a_post_and_answers_every_process() {
    let (commands, seen) = stand_in(|_| {
        Ok(Reply::Processes(vec![shapes::Process {
            addr: "127.0.0.1:8082".into(),
            name: "catalog".into(),
            pid: 9,
            running: true,
        }]))
    });
    let app = control_app!(commands);
    let (status, body) = call(
        &app,
        TestRequest::post().uri("/control/v1/reset").to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"data": [{"addr": "127.0.0.1:8082", "name": "catalog", "pid": 9, "running": true}]})
    );
    assert_eq!(seen.recv().unwrap(), Command::Reset);
    // Not by GET: a reset wipes data.
    let (status, _) = call(
        &app,
        TestRequest::get().uri("/control/v1/reset").to_request(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(seen.try_recv().is_err());
}

#[actix_web::test]
async fn bad_requests_never_reach_the_launcher() {
    let (commands, seen) = stand_in(|_| Ok(Reply::Digests(vec![])));
    let app = control_app!(commands);
    for (req, code) in [
        (
            TestRequest::post().uri("/control/v1/restart/frontend?cache_size=x"),
            400,
        ),
        (TestRequest::post().uri("/control/v1/restart/frontend"), 400),
        (
            TestRequest::post().uri("/control/v1/restart/order-1?cache_size=1"),
            404,
        ),
        (TestRequest::get().uri("/control/v1/kill/x"), 404),
        (TestRequest::post().uri("/control/v1/processes"), 404),
    ] {
        let (status, body) = call(&app, req.to_request()).await;
        assert_eq!(status, code, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    assert!(seen.try_recv().is_err());
}

#[actix_web::test]
async fn launcher_errors_keep_their_status_and_kind() {
    let (commands, _seen) = stand_in(|_| Err(conflict("order-1 is already running")));
    let app = control_app!(commands);
    let req = TestRequest::post().uri("/control/v1/start/order-1");
    assert_eq!(
        call(&app, req.to_request()).await,
        (
            409,
            json!({"error": {"code": 409, "message": "order-1 is already running", "kind": "bad_request"}})
        )
    );

    // A launcher that has stopped takes no more commands.
    let (tx, rx) = mpsc::channel::<Request>();
    drop(rx);
    let app = control_app!(Commands(tx));
    let req = TestRequest::get().uri("/control/v1/processes");
    let (status, body) = call(&app, req.to_request()).await;
    assert_eq!(
        (status, &body["error"]["kind"]),
        (503, &json!("unavailable"))
    );
}

#[test]
fn the_server_answers_and_stops_when_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let console = ConsoleConfig {
        stocks: vec!["GameStart".into()],
    };
    let server = ControlServer::start(listener, console).unwrap();
    let client = std::thread::spawn({
        let url = format!("http://{addr}/control/v1/processes");
        move || {
            ureq::get(&url)
                .call()
                .unwrap()
                .into_json::<Value>()
                .unwrap()
        }
    });
    let request = server.next(Duration::from_secs(10)).unwrap();
    assert_eq!(request.command, Command::List);
    request.answer(Ok(Reply::Processes(vec![])));
    assert_eq!(client.join().unwrap(), json!({"data": []}));
    drop(server);
    // A child another test is forking holds a copy of the listener until its exec
    // closes it, so the port may answer a moment longer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[actix_web::test]
async fn the_console_is_a_page_and_its_load_is_bounded() {
    let (commands, _seen) = stand_in(|_| Ok(Reply::Processes(vec![])));
    let app = control_app!(commands);
    let res = call_service(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let kind = res.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(kind.starts_with("text/html"), "{kind}");
    for query in [
        "clients=0",
        "clients=33",
        "seconds=0",
        "seconds=61",
        "p=1.5",
        "p=-1",
    ] {
        let req = TestRequest::post().uri(&format!("/control/v1/load?{query}"));
        let (status, body) = call(&app, req.to_request()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["kind"], "bad_request", "{query}: {body}");
    }
    // In range, but no front end among the processes: 503, nothing started.
    let (status, body) = call(
        &app,
        TestRequest::post().uri("/control/v1/load").to_request(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
}
