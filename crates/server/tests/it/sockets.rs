//! Idle and slow sockets cannot starve the others (real sockets against `keyway_server::serve`,
//! the listener `keyway serve` runs): more idle connections than the bound get a 503 and are
//! closed, the idle ones within the bound are closed after the header timeout and another
//! client is served; header trickling and a stalled body are cut off.

use keyway_server::http::ConnectionLimits;
use keyway_testkit::scratch::TempDir;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LIMIT: usize = 20;

async fn start(dir: &TempDir) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let profiles = dir.path().join("profiles");
    keyway_testkit::profiles::write_profiles(&profiles, "127.0.0.1:9").expect("profiles");
    let keys = dir.path().join("keyway.keys");
    keyway_server::create_key_file(&keys).expect("keys");
    let options = keyway_server::ServeOptions {
        profiles,
        db: format!("sqlite://{}", dir.path().join("hub.db").display()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        public_url: None,
        keys_file: Some(keys),
        dev: false,
        refresh_every: None,
        webhook: None,
        provider_timeout: Duration::from_secs(2),
        give_up_after: keyway_server::hub::GIVE_UP_AFTER,
        cache: Default::default(),
        limits: ConnectionLimits {
            max_connections: LIMIT,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
        },
        allow_private_network: false,
        audit_retention: None,
        audit_reads: true,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = keyway_server::serve(options, move |addr| {
            let _ = tx.send(addr);
        })
        .await;
    });
    (rx.await.expect("listening"), task)
}

/// The whole answer on a socket (until the server closes it), at most `limit` long.
async fn answer(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn get_healthz(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: hub\r\nconnection: close\r\n\r\n").await.ok()?;
    answer(&mut stream, Duration::from_secs(5)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_past_the_bound_are_answered_and_the_others_served_after_the_header_timeout() {
    let dir = TempDir::new("sockets");
    let (addr, server) = start(&dir).await;
    let mut idle = Vec::new();
    for _ in 0..LIMIT + 10 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // A new client now: a clear 503, never a hang.
    let busy = get_healthz(addr).await.expect("an answer, not a hang");
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains("too_many_connections"), "{busy}");
    // Every idle socket is closed: past the bound at once (after the 503), within it by the
    // header timeout; none is left open.
    for (i, socket) in idle.iter_mut().enumerate() {
        let text = answer(socket, Duration::from_secs(10)).await.unwrap_or_else(|| panic!("idle socket {i} left open"));
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 503") || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // And the hub serves again.
    let mut served = None;
    for _ in 0..100 {
        served = get_healthz(addr).await.filter(|a| a.starts_with("HTTP/1.1 200"));
        if served.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served = served.expect("served again within 10 s");
    assert!(served.contains("\"ok\""), "{served}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_headers_and_a_stalled_body_are_cut_off() {
    let dir = TempDir::new("sockets");
    let (addr, server) = start(&dir).await;
    // Headers a byte at a time, never finished: closed after the header timeout.
    let mut trickle = TcpStream::connect(addr).await.expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nhost: hub\r\nx-slow: ";
    let mut closed = false;
    for byte in request.iter().chain(std::iter::repeat(&b'a')).take(200) {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), trickle.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a trickling client was never cut off (20 s of headers)");
    // A body announced and never finished: 408 after the body timeout.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"POST /connect/intg_x HTTP/1.1\r\nhost: hub\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nparam.a=b")
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .expect("an answer within the bound")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    server.abort();
}
