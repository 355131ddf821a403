//! Regressions from the attack on the gateway (issue 12) that have no better home: each over a
//! real socket.

mod support;

use support::{ApiKey, Gateway, payload, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
