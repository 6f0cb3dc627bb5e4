//! The audit trail: who read which credential, and who changed what, when.
//!
//! A change's record is written by the store in the change's own transaction (the hub hands
//! it over with the change). A read's record (a credential handed out, a request refused for
//! its scope) changes nothing else: it is queued here and written in batches, one multi-row
//! `INSERT` for everything queued, and the answer waits for its batch to commit, so no
//! credential leaves unrecorded and a thousand concurrent reads cost a few statements.
//!
//! Refreshes happen inside the runtime's token manager, which knows nothing of callers: the
//! hub runs each call in a [`Context`] (task-local), and the token store reads it when it saves
//! refreshed tokens.

use super::*;
use crate::domain::{Actor, AuditAction, Outcome};
use crate::store::{AuditFilter, AuditRecord};
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

/// The most records one statement writes.
const MAX_BATCH: usize = 500;
/// The most records one page of `GET /v1/audit` lists.
pub const MAX_AUDIT_PAGE: u32 = 1000;
/// Records pruned per statement; the pruner pauses between statements.
const PRUNE_BATCH: u32 = 1000;

/// Who a hub call acts for, and what a token save in it means.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) caller: Caller,
    /// What storing tokens outside a refresh means here: a link, a reconnect, an import.
    pub(super) save: AuditAction,
    /// Why a refresh in this call happens: `on read`, `forced`, `background`.
    pub(super) trigger: &'static str,
}

tokio::task_local! {
    static CONTEXT: Context;
}

impl Context {
    pub(super) fn new(caller: &Caller, save: AuditAction, trigger: &'static str) -> Context {
        Context { caller: caller.clone(), save, trigger }
    }

    /// Runs `f` in this context.
    pub(super) async fn run<F: std::future::Future>(self, f: F) -> F::Output {
        CONTEXT.scope(self, f).await
    }

    /// The context of the running hub call, if any.
    pub(super) fn current() -> Option<Context> {
        CONTEXT.try_with(Clone::clone).ok()
    }
}

impl Caller {
    /// A record of `action` by this caller at `now`, `ok`, about nothing yet.
    pub fn record(&self, action: AuditAction, now: i64) -> AuditRecord {
        AuditRecord {
            id: ids::new_id(ids::AUDIT),
            seq: crate::store::next_event_seq(),
            at: now,
            actor: self.actor.clone(),
            instance: self.instance.clone(),
            action,
            connection_id: None,
            integration_id: None,
            target_id: None,
            outcome: Outcome::Ok,
            problem_code: None,
            request_id: Some(self.request_id.clone()),
            detail: None,
        }
    }
}

/// Builders of a record's other fields.
pub(super) trait RecordExt {
    fn connection(self, id: &str) -> Self;
    fn integration(self, id: &str) -> Self;
    fn target(self, id: &str) -> Self;
    fn detail(self, text: impl Into<String>) -> Self;
    fn ended(self, outcome: Outcome, code: ProblemCode) -> Self;
}

impl RecordExt for AuditRecord {
    fn connection(mut self, id: &str) -> Self {
        self.connection_id = Some(id.to_owned());
        self
    }
    fn integration(mut self, id: &str) -> Self {
        self.integration_id = Some(id.to_owned());
        self
    }
    fn target(mut self, id: &str) -> Self {
        self.target_id = Some(id.to_owned());
        self
    }
    fn detail(mut self, text: impl Into<String>) -> Self {
        self.detail = Some(text.into());
        self
    }
    fn ended(mut self, outcome: Outcome, code: ProblemCode) -> Self {
        self.outcome = outcome;
        self.problem_code = Some(code.as_str().to_owned());
        self
    }
}

type Ack = oneshot::Sender<Result<(), DbError>>;

/// The batched writer of reads' records.
pub(super) struct AuditWriter {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    queue: OnceLock<mpsc::UnboundedSender<(AuditRecord, Ack)>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    pub(super) fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> AuditWriter {
        AuditWriter { store, metrics, queue: OnceLock::new() }
    }

    /// Writes a record with whatever else is queued; returns once its batch is committed.
    pub(super) async fn write(&self, record: AuditRecord) -> Result<(), DbError> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_batches(Arc::clone(&self.store), Arc::clone(&self.metrics), rx));
            tx
        });
        let gone = || DbError::Database("the audit writer stopped".to_owned());
        let (ack, done) = oneshot::channel();
        queue.send((record, ack)).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut queue: mpsc::UnboundedReceiver<(AuditRecord, Ack)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, acks): (Vec<AuditRecord>, Vec<Ack>) = batch.drain(..).unzip();
        let result = store.insert_audit(&records).await;
        if result.is_ok() {
            use std::sync::atomic::Ordering::Relaxed;
            metrics.audit_records_batched.fetch_add(records.len() as u64, Relaxed);
            metrics.audit_batches.fetch_add(1, Relaxed);
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// Which audit records to list, as the caller asked (`GET /v1/audit`).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// About this connection.
    pub connection: Option<String>,
    /// By this actor (an API key's id, a connect session's, an instance's).
    pub actor: Option<String>,
    /// This action's name.
    pub action: Option<String>,
    /// At or after (seconds since the epoch).
    pub since: Option<i64>,
    /// Before.
    pub until: Option<i64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

impl Hub {
    /// The context of a background refresh by this instance.
    pub(super) fn refresher(&self) -> Caller {
        Caller {
            actor: Actor::Refresher { instance: self.lease_owner.clone() },
            request_id: ids::new_id(ids::REQUEST),
            instance: Some(self.lease_owner.clone()),
        }
    }

    /// A record of `action` for the running call's caller (the refresher when the hub acts
    /// on its own).
    pub(super) fn context_record(&self, action: AuditAction) -> AuditRecord {
        let caller = Context::current().map_or_else(|| self.refresher(), |c| c.caller);
        caller.record(action, self.now())
    }

    /// Audit records, oldest first, filtered and paged (`GET /v1/audit`).
    pub async fn audit(&self, query: AuditQuery) -> Result<crate::resources::AuditList, HubError> {
        Hub::audit_in(self.store.as_ref(), query).await
    }

    /// The same over a store (`keyway audit export`).
    pub async fn audit_in(store: &dyn Store, query: AuditQuery) -> Result<crate::resources::AuditList, HubError> {
        let action = match &query.action {
            Some(name) => Some(AuditAction::parse(name).ok_or_else(|| {
                let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                HubError::invalid_field("/action", format!("the action must be one of {}", names.join(", ")))
            })?),
            None => None,
        };
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(HubError::invalid_field("/limit", format!("the limit must be 1 to {MAX_AUDIT_PAGE}")));
        }
        let after = match &query.after {
            Some(cursor) => Some(
                cursor
                    .split_once('.')
                    .and_then(|(seq, id)| Some((seq.parse::<i64>().ok()?, id.to_owned())))
                    .filter(|(_, id)| id.len() <= 64)
                    .ok_or_else(|| HubError::invalid_field("/after", "not a `next` this API gave"))?,
            ),
            None => None,
        };
        let filter = AuditFilter {
            connection: query.connection,
            actor: query.actor,
            action,
            since: query.since,
            until: query.until,
            after,
            limit: limit + 1,
        };
        let mut rows = store.audit(&filter).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|r| format!("{}.{}", r.seq, r.id)) } else { None };
        Ok(crate::resources::AuditList { data: rows.iter().map(crate::resources::AuditEntry::of).collect(), next })
    }

    /// Deletes audit records older than `retention`, in bounded batches with a pause between
    /// them (other writes go on meanwhile); how many.
    pub async fn prune_audit(&self, retention: Duration) -> Result<u64, HubError> {
        let before = self.now() - retention.as_secs() as i64;
        let mut pruned = 0;
        loop {
            let n = self.store.prune_audit(before, PRUNE_BATCH).await?;
            pruned += n;
            if n < u64::from(PRUNE_BATCH) {
                return Ok(pruned);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
