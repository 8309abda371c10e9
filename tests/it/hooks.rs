//! HTTP lifecycle hooks against a real HTTP server on loopback (the hook's
//! host set to 127.0.0.1), with the simulated runtime.

use std::sync::{Arc, Mutex};

use crate::common::*;
use podstart::proto::v1::{
    Handler, HttpGetAction, HttpHeader, Lifecycle, SleepAction, handler::Action,
    start_event::Payload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-route HTTP server answering every request with `status`; returns
/// its port and the request heads it saw.
async fn server(status: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

fn http_hook(port: u16, path: &str) -> Lifecycle {
    Lifecycle {
        post_start: Some(Handler {
            action: Some(Action::HttpGet(HttpGetAction {
                host: "127.0.0.1".into(),
                port: port.to_string(),
                path: path.into(),
                headers: vec![HttpHeader {
                    name: "X-Hook".into(),
                    value: "poststart".into(),
                }],
                ..Default::default()
            })),
        }),
        pre_stop: None,
    }
}

#[tokio::test]
async fn http_post_start_hook_calls_the_server() {
    let h = Harness::privileged().await;
    let (port, seen) = server(200).await;
    let mut c = container("app");
    c.lifecycle = Some(http_hook(port, "/started"));
    let events = h
        .start(request(pod("http", "uid-http", vec![c])))
        .await
        .unwrap();
    assert!(
        matches!(terminal(&events), Payload::PodStarted(_)),
        "{:#?}",
        reasons(&events)
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].starts_with("GET /started HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("x-hook: poststart"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn http_hook_error_status_kills_the_container() {
    let h = Harness::privileged().await;
    let (port, _) = server(500).await;
    let mut c = container("app");
    c.lifecycle = Some(http_hook(port, "/"));
    let events = h
        .start(request(pod("http500", "uid-http500", vec![c])))
        .await
        .unwrap();
    let Payload::PodFailed(failed) = terminal(&events) else {
        panic!("expected PodFailed: {:#?}", reasons(&events));
    };
    assert_eq!(failed.reason, "PostStartHookError");
    assert!(failed.message.contains("status 500"), "{}", failed.message);
    assert_eq!(h.sim.calls("StopContainer"), 1);
}

#[tokio::test]
async fn sleep_post_start_hook_waits() {
    let h = Harness::new().await;
    let mut c = container("app");
    c.lifecycle = Some(Lifecycle {
        post_start: Some(Handler {
            action: Some(Action::Sleep(SleepAction { seconds: 1 })),
        }),
        pre_stop: None,
    });
    let events = h
        .start(request(pod("sleepy", "uid-sleepy", vec![c])))
        .await
        .unwrap();
    let hook = events
        .iter()
        .find(|e| e.reason == "PostStartHookSucceeded")
        .expect("the hook event");
    assert!(
        hook.duration_micros >= 1_000_000,
        "{}",
        hook.duration_micros
    );
}
