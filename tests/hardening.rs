//! Regressions from the attack on the gateway (issue 12) that have no better home: each over a
//! real socket.

mod support;

use std::time::Duration;

use support::{ApiKey, Gateway, gauge, metadata_line, payload, read_response, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A generous bound for what the gateway should do promptly.
const BOUND: Duration = Duration::from_secs(10);

const PLAIN: &str = r#"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
protocols = ["http1", "h2c"]
"#;

/// An HTTP/1.1 client that sends its whole request and then shuts down its side of the
/// connection (as `curl --data … ` behind some proxies, or `printf … | nc -N` do) gets its
/// answer: APM Server's Go server answers such a request, and the events are accepted.
#[tokio::test]
async fn issue_12_a_half_closed_http1_request_is_answered() {
    // A declared API key: its Argon2 verification takes long enough for the server to read the
    // client's end of stream while the request is still being handled.
    let key = ApiKey::new("half-close-key");
    let policy = format!(
        "{PLAIN}\n[role.writer]\nprivileges = [\"event:write\"]\n\n[auth.api_key.writer]\nid = \"{}\"\nhash = \"{}\"\nroles = [\"writer\"]\n",
        key.id, key.hash
    );
    let gw = Gateway::start(&policy).await;
    let body = payload("python", "half-close", 3);
    let mut stream = TcpStream::connect(gw.addr("plain")).await.unwrap();
    let head = format!(
        "POST /intake/v2/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        key.header,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_response(&mut stream)
        .await
        .expect("the gateway answers a request whose client half-closed");
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    gw.stop().await;
}

/// Requests being decoded hold at most `max_intake_memory` between them, however many stall in
/// the middle of large lines: those that would pass it are answered 503 with `Retry-After` at
/// once, and the bytes come back when the others end (issue 12, item 5).
#[tokio::test]
async fn issue_12_stalled_streams_hold_no_more_than_the_intake_memory_budget() {
    const BUDGET: i64 = 1 << 20;
    let policy = format!("[gateway]\nmax_intake_memory = \"1MiB\"\n{PLAIN}");
    let gw = Gateway::start(&policy).await;
    assert_eq!(gauge(&gw, "apmgate_intake_memory_capacity_bytes"), BUDGET);
    // Each stream: the metadata, then 100,000 bytes of an event whose line never ends (its
    // buffer: 128 KiB). Eight of them would need more than 1 MiB.
    let mut partial = br#"{"transaction":{"name":""#.to_vec();
    partial.resize(100_000, b'x');
    let mut stalled = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(gw.addr("plain")).await.unwrap();
        let head = "POST /intake/v2/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: 10000000\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
            .write_all(metadata_line("python", "stalled").as_bytes())
            .await
            .unwrap();
        stream.write_all(&partial).await.unwrap();
        // Either the gateway holds this stream's bytes, or it answers at once.
        let before = gauge(&gw, "apmgate_intake_memory_bytes");
        let mut answer = Box::pin(read_response(&mut stream));
        let held = wait_for_growth(&gw, before, &mut answer).await;
        drop(answer);
        match held {
            Ok(()) => stalled.push(stream),
            Err(r) => refused.push(r),
        }
    }
    let used = gauge(&gw, "apmgate_intake_memory_bytes");
    assert!(
        used <= BUDGET,
        "{used} bytes held of a {BUDGET}-byte budget"
    );
    assert!(
        (5..=8).contains(&stalled.len()),
        "{} streams held ({used} bytes)",
        stalled.len()
    );
    assert!(!refused.is_empty(), "the budget refused no stream");
    for r in &refused {
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("retry-after"), Some("1"));
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("max_intake_memory"), "{message}");
    }
    // The stalled streams go; their bytes come back, and a large event is taken again.
    drop(stalled);
    wait_until(BOUND, "the budget is free again", || {
        gauge(&gw, "apmgate_intake_memory_bytes") == 0
    })
    .await;
    let mut big = metadata_line("python", "after").into_bytes();
    big.extend_from_slice(
        format!(
            "{{\"transaction\":{{\"id\":\"0123456789abcdef\",\"trace_id\":\"0123456789abcdef0123456789abcdef\",\"type\":\"request\",\"duration\":1,\"span_count\":{{\"started\":0}},\"context\":{{\"custom\":{{\"big\":\"{}\"}}}}}}}}\n",
            "y".repeat(200_000)
        )
        .as_bytes(),
    );
    let mut stream = TcpStream::connect(gw.addr("plain")).await.unwrap();
    let head = format!(
        "POST /intake/v2/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&big).await.unwrap();
    let r = read_response(&mut stream).await.unwrap();
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 202, "{}", &body[body.len().saturating_sub(300)..]);
    gw.stop().await;
}

/// Waits until the intake holds more than `before` bytes (the stream was taken), or the
/// stream is answered (refused).
async fn wait_for_growth(
    gw: &Gateway,
    before: i64,
    answer: &mut std::pin::Pin<
        Box<impl std::future::Future<Output = std::io::Result<support::RawResponse>>>,
    >,
) -> Result<(), support::RawResponse> {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        tokio::select! {
            r = answer.as_mut() => return Err(r.expect("an answer")),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        if gauge(gw, "apmgate_intake_memory_bytes") > before + 100_000 {
            return Ok(());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was neither held nor answered"
        );
    }
}
