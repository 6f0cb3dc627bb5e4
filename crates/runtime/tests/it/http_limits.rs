//! Answers from a provider are bounded: a body longer than `max_response_bytes` is refused
//! with a clear error, whether its length is announced, it comes in chunks, or it ends only
//! with the connection; an answer within the limit is read whole.

use keyway_runtime::{HttpClient, HttpOptions, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers every request with `answer(size)`.
async fn server(kind: &'static str, size: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let _ = socket.read(&mut head).await;
                let body = vec![b'x'; size];
                let response = match kind {
                    "length" => {
                        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    "chunked" => {
                        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                        for part in body.chunks(16 * 1024) {
                            r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                            r.extend_from_slice(part);
                            r.extend_from_slice(b"\r\n");
                        }
                        r.extend_from_slice(b"0\r\n\r\n");
                        r
                    }
                    _ => {
                        // No length at all: the body ends when the connection closes.
                        let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                        r.extend_from_slice(&body);
                        r
                    }
                };
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/token")
}

async fn get(url: &str) -> Result<usize, TransportError> {
    let client = HttpClient::new(&HttpOptions { max_response_bytes: 64 * 1024, ..Default::default() }).expect("client");
    let request = oauth2::http::Request::builder().uri(url).body(Vec::new()).expect("request");
    client.send(request).await.map(|r| r.body().len())
}

#[tokio::test]
async fn answers_past_the_limit_are_refused_however_they_are_framed() {
    for kind in ["length", "chunked", "close"] {
        for size in [64 * 1024 + 1, 1024 * 1024, 8 * 1024 * 1024] {
            let url = server(kind, size).await;
            let error = get(&url).await.expect_err("refused");
            assert_eq!(error, TransportError::TooLarge(64 * 1024), "{kind} {size}");
            assert!(!error.is_transient(), "a provider sending too much is not retried");
            assert_eq!(error.to_string(), "the answer is larger than 65536 bytes");
        }
        let url = server(kind, 64 * 1024).await;
        assert_eq!(get(&url).await.expect("within the limit"), 64 * 1024, "{kind}");
    }
}
