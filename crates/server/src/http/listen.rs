//! Accepting connections: every socket bounded in time and in number, so idle or slow
//! clients cannot starve the others.
//!
//! - A client has `header_timeout` to send a request's headers, counted from when the hub is
//!   ready to read them: on a new connection (a socket that never sends a byte) and on a
//!   kept-alive one waiting for its next request alike (hyper's header read timeout), so an
//!   idle connection is closed after it too.
//! - A request body must arrive within `body_timeout` (the body extractors; 408).
//! - At most `max_connections` are served at once; past it, a new socket gets a `503` problem
//!   document and is closed at once, never left waiting.
//! - Running out of file descriptors (`EMFILE`) is waited out, not spun on: the listener
//!   sleeps briefly and accepts again. At start the soft file limit is raised to the hard one.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections, and for how long each part of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// To send a request's headers (and, kept alive, to start the next request).
    pub header_timeout: Duration,
    /// To send a request's body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The answer past the connection bound: a complete response, then the socket is closed.
fn busy() -> Vec<u8> {
    let body = "{\"type\":\"urn:keyway:problem:too_many_connections\",\"title\":\"Too many connections\",\
\"status\":503,\"detail\":\"the hub serves its connection limit; try again\",\"code\":\"too_many_connections\"}";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\ncache-control: no-store\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Raises the soft limit on open files to the hard one (systemd's default soft limit is
/// 1,024): the connection bound, not the descriptor table, should be what refuses clients.
pub fn raise_file_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let current = getrlimit(Resource::Nofile);
        if current.current != current.maximum {
            let raised = Rlimit { current: current.maximum, maximum: current.maximum };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(limit = ?current.maximum, "open file limit raised to the hard limit"),
                Err(e) => tracing::warn!(error = %e, "the open file limit could not be raised"),
            }
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets the
/// requests in flight finish (for at most 30 seconds).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (mut stream, _) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS: no descriptor for the socket now. Accepting again at
                // once would fail again; wait for connections to close.
                tracing::warn!(error = %e, "cannot accept a connection; pausing");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy())).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after 30 seconds; stopping anyway");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_busy_answer_is_a_complete_response() {
        let busy = super::busy();
        let text = std::str::from_utf8(&busy).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(body.len(), length);
        let problem: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["code"], "too_many_connections");
    }
}
