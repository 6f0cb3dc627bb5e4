//! What the database holds now, asked on every request and answered in batches.
//!
//! The database decides a connection's state and grant and an API key's validity, on every
//! instance: before a cached token is handed out (or an API key accepted), the hub asks here
//! for the row's current version and state. Asks are queued; one task answers everything
//! queued with one query per kind (`WHERE id IN (...)`), so a thousand concurrent reads cost
//! a few round trips, not a thousand. An ask is answered by a query that started after it
//! was queued, so a change committed anywhere before a request began is seen by it.

use super::*;
use crate::store::ConnectionStamp;
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

/// The most ids one query asks for.
const MAX_BATCH: usize = 512;

type Answer<T> = oneshot::Sender<Result<Option<T>, DbError>>;

enum Ask {
    Connection(String, Answer<ConnectionStamp>),
    ApiKey(String, Answer<ApiKeyRecord>),
}

/// The batched view of the database's current rows.
pub(super) struct Freshness {
    store: Arc<dyn Store>,
    queue: OnceLock<mpsc::UnboundedSender<Ask>>,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freshness").finish_non_exhaustive()
    }
}

impl Freshness {
    pub(super) fn new(store: Arc<dyn Store>) -> Freshness {
        Freshness { store, queue: OnceLock::new() }
    }

    /// A connection's current version, state and integration version; `None` when it is gone.
    pub(super) async fn connection(&self, id: &str) -> Result<Option<ConnectionStamp>, DbError> {
        let (tx, rx) = oneshot::channel();
        self.ask(Ask::Connection(id.to_owned(), tx), rx).await
    }

    /// An API key as stored now; `None` when there is none.
    pub(super) async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, DbError> {
        let (tx, rx) = oneshot::channel();
        self.ask(Ask::ApiKey(id.to_owned(), tx), rx).await
    }

    async fn ask<T>(
        &self,
        ask: Ask,
        answer: oneshot::Receiver<Result<Option<T>, DbError>>,
    ) -> Result<Option<T>, DbError> {
        // The answering task starts with the first ask (inside the runtime that serves).
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(answer_asks(Arc::clone(&self.store), rx));
            tx
        });
        let gone = || DbError::Database("the freshness check stopped".to_owned());
        queue.send(ask).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Answers every queued ask, a batch at a time, until the hub is dropped.
async fn answer_asks(store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Ask>) {
    let mut asks = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut asks, MAX_BATCH).await > 0 {
        let mut connections: Vec<String> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for ask in &asks {
            match ask {
                Ask::Connection(id, _) => connections.push(id.clone()),
                Ask::ApiKey(id, _) => keys.push(id.clone()),
            }
        }
        connections.sort_unstable();
        connections.dedup();
        keys.sort_unstable();
        keys.dedup();
        let (stamps, records) = tokio::join!(
            async { if connections.is_empty() { Ok(Vec::new()) } else { store.connection_stamps(&connections).await } },
            async { if keys.is_empty() { Ok(Vec::new()) } else { store.api_keys(&keys).await } },
        );
        // Answered by id: a batch of hundreds is one map lookup per ask, not a scan.
        let stamps = stamps.map(|all| all.into_iter().map(|s| (s.id.clone(), s)).collect::<HashMap<_, _>>());
        let records = records.map(|all| all.into_iter().map(|r| (r.id.clone(), r)).collect::<HashMap<_, _>>());
        for ask in asks.drain(..) {
            match ask {
                Ask::Connection(id, answer) => {
                    let _ = answer.send(stamps.as_ref().map_err(Clone::clone).map(|all| all.get(&id).cloned()));
                }
                Ask::ApiKey(id, answer) => {
                    let _ = answer.send(records.as_ref().map_err(Clone::clone).map(|all| all.get(&id).cloned()));
                }
            }
        }
    }
}
