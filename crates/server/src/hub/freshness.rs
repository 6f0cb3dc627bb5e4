//! What the database holds now, as every request sees it: the change log, read once per
//! batch of requests.
//!
//! The database decides a connection's state and grant and an API key's validity, on every
//! instance. Each change that retires what an instance may hold in memory (a connection
//! deleted, revoked, reconnected or changing state; an integration changed; an API key
//! revoked) appends a row to the change log in its own transaction (`store/sql.rs`,
//! migration 5). Here, before a cached token is handed out or an API key accepted, the hub
//! asks for the row's current stamp or record; asks are queued, and one task answers
//! everything queued: one statement reads the log past the last change it saw and forgets
//! what the log retired, then the rows it does not know are read in one statement per kind
//! (`WHERE id IN (...)`). A request's first ask is answered by a log read that started after
//! it was queued, so a change committed anywhere before the request began is seen by it;
//! later asks of the same request ([`Freshness::per_request`]) use what that read left.
//! When the log cannot be read, nothing is answered from memory.

use super::*;
use crate::store::{ChangeKind, ConnectionStamp};
use lru::LruCache;
use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

/// The most ids one query asks for.
const MAX_BATCH: usize = 512;

/// The most changes one log read applies one by one; past it, everything known is forgotten.
const MAX_CHANGES: u32 = 1000;

/// API keys known at once.
const KNOWN_KEYS: usize = 10_000;

tokio::task_local! {
    /// Whether this request's view of the change log was already brought up to date.
    static SYNCED: Cell<bool>;
}

type Answer<T> = oneshot::Sender<Result<Option<T>, DbError>>;

enum Ask {
    Connection(String, Answer<ConnectionStamp>),
    ApiKey(String, Answer<ApiKeyRecord>),
}

/// A connection's stamp without its id (the map's key): a hundred thousand of them are kept.
#[derive(Clone, Copy)]
struct KnownStamp {
    state: ConnectionState,
    version: i64,
    integration_version: i64,
}

impl KnownStamp {
    fn of(stamp: &ConnectionStamp) -> KnownStamp {
        KnownStamp { state: stamp.state, version: stamp.version, integration_version: stamp.integration_version }
    }

    fn stamp(self, id: &str) -> ConnectionStamp {
        ConnectionStamp {
            id: id.to_owned(),
            state: self.state,
            version: self.version,
            integration_version: self.integration_version,
        }
    }
}

/// Rows known current as of the last change-log read.
struct Known {
    /// The last change applied; `None` before the first read.
    seen: Option<i64>,
    connections: LruCache<String, KnownStamp>,
    keys: LruCache<String, ApiKeyRecord>,
}

impl Known {
    fn forget_all(&mut self) {
        self.connections.clear();
        self.keys.clear();
    }
}

/// The batched view of the database's current rows.
pub(super) struct Freshness {
    store: Arc<dyn Store>,
    queue: OnceLock<mpsc::UnboundedSender<Ask>>,
    known: Arc<Mutex<Known>>,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freshness").finish_non_exhaustive()
    }
}

impl Freshness {
    /// Knows at most `connections` connection stamps (the token manager's bound).
    pub(super) fn new(store: Arc<dyn Store>, connections: usize) -> Freshness {
        let known = Known {
            seen: None,
            connections: LruCache::new(NonZeroUsize::new(connections.max(1)).unwrap_or(NonZeroUsize::MIN)),
            keys: LruCache::new(NonZeroUsize::new(KNOWN_KEYS).unwrap_or(NonZeroUsize::MIN)),
        };
        Freshness { store, queue: OnceLock::new(), known: Arc::new(Mutex::new(known)) }
    }

    /// Runs one request: its first ask reads the change log, its later ones use what that read
    /// left (a request sees one moment of the database, no older than its start).
    pub(crate) async fn per_request<F: std::future::Future>(request: F) -> F::Output {
        SYNCED.scope(Cell::new(false), request).await
    }

    /// A connection's current version, state and integration version; `None` when it is gone.
    pub(super) async fn connection(&self, id: &str) -> Result<Option<ConnectionStamp>, DbError> {
        if synced() {
            if let Some(known) = self.lock().connections.get(id).copied() {
                return Ok(Some(known.stamp(id)));
            }
        }
        let (tx, rx) = oneshot::channel();
        self.ask(Ask::Connection(id.to_owned(), tx), rx).await
    }

    /// An API key as stored now; `None` when there is none.
    pub(super) async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, DbError> {
        if synced() {
            if let Some(record) = self.lock().keys.get(id).cloned() {
                return Ok(Some(record));
            }
        }
        let (tx, rx) = oneshot::channel();
        self.ask(Ask::ApiKey(id.to_owned(), tx), rx).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn ask<T>(
        &self,
        ask: Ask,
        answer: oneshot::Receiver<Result<Option<T>, DbError>>,
    ) -> Result<Option<T>, DbError> {
        // The answering task starts with the first ask (inside the runtime that serves).
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(answer_asks(Arc::clone(&self.store), Arc::clone(&self.known), rx));
            tx
        });
        let gone = || DbError::Database("the freshness check stopped".to_owned());
        queue.send(ask).map_err(|_| gone())?;
        let answer = answer.await.map_err(|_| gone())??;
        // Outside a request's scope (the refresher), every ask reads the log.
        let _ = SYNCED.try_with(|synced| synced.set(true));
        Ok(answer)
    }
}

fn synced() -> bool {
    SYNCED.try_with(Cell::get).unwrap_or(false)
}

/// Answers every queued ask, a batch at a time, until the hub is dropped.
async fn answer_asks(store: Arc<dyn Store>, known: Arc<Mutex<Known>>, mut queue: mpsc::UnboundedReceiver<Ask>) {
    let lock = || known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut asks = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut asks, MAX_BATCH).await > 0 {
        // 1. The log past what was seen: forget what it retired.
        let seen = lock().seen;
        let feed = match store.changes_since(seen.unwrap_or(0), MAX_CHANGES).await {
            Ok(feed) => feed,
            Err(e) => {
                for ask in asks.drain(..) {
                    match ask {
                        Ask::Connection(_, answer) => drop(answer.send(Err(e.clone()))),
                        Ask::ApiKey(_, answer) => drop(answer.send(Err(e.clone()))),
                    }
                }
                continue;
            }
        };
        {
            let mut known = lock();
            let behind = seen.is_none_or(|seen| seen < feed.pruned_through || seen > feed.head);
            if behind || feed.changes.len() >= MAX_CHANGES as usize {
                known.forget_all();
            } else {
                for change in &feed.changes {
                    match change.kind {
                        ChangeKind::Connection => drop(known.connections.pop(&change.target)),
                        ChangeKind::ApiKey => drop(known.keys.pop(&change.target)),
                        // Rare: every stamp carries its integration's version.
                        ChangeKind::Integration => known.connections.clear(),
                    }
                }
            }
            known.seen = Some(feed.head);
        }

        // 2. Asks about rows known are answered from memory; the rest are read after the
        // log, so at least as new as what it said.
        let (mut connections, mut keys): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        let mut waiting = Vec::with_capacity(asks.len());
        {
            let mut known = lock();
            for ask in asks.drain(..) {
                match ask {
                    Ask::Connection(id, answer) => match known.connections.get(&id).copied() {
                        Some(stamp) => drop(answer.send(Ok(Some(stamp.stamp(&id))))),
                        None => {
                            connections.push(id.clone());
                            waiting.push(Ask::Connection(id, answer));
                        }
                    },
                    Ask::ApiKey(id, answer) => match known.keys.get(&id) {
                        Some(record) => drop(answer.send(Ok(Some(record.clone())))),
                        None => {
                            keys.push(id.clone());
                            waiting.push(Ask::ApiKey(id, answer));
                        }
                    },
                }
            }
        }
        if waiting.is_empty() {
            continue;
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
        {
            let mut known = lock();
            for stamp in stamps.iter().flat_map(HashMap::values) {
                known.connections.put(stamp.id.clone(), KnownStamp::of(stamp));
            }
            for record in records.iter().flat_map(HashMap::values) {
                known.keys.put(record.id.clone(), record.clone());
            }
        }
        // 3. A row not found is gone (and never remembered so: a new one may come).
        for ask in waiting {
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
