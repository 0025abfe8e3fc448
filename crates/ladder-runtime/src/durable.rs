//! Durable sessions: [`Durable`], the turn protocol on top of a [`Store`](crate::store::Store).
//!
//! A turn against a store goes: take the session's lease, finish a turn that a dead worker left
//! open, record the new turn as open, run it (recording each completed tool call under its
//! idempotency key before going on), then commit its events and the new state in one transaction
//! that also releases the lease. A crash at any point leaves either the committed state of the last
//! turn or an open turn whose completed tool calls are on record; the next worker re-runs that turn
//! and reuses the recorded results, so no tool side effect happens twice.

use crate::event::Event;
use crate::session::SessionState;
use crate::store::{Claim, Journal, Store, StoreError};
use crate::{human, turn, EventStream, Runtime};

/// What a turn does.
enum Work {
    /// The user's message.
    Message(String),
    /// The current rung speaks without a user message.
    Resume,
    /// A person's decision on a pending tool approval.
    Decide {
        approval: String,
        approved: bool,
        operator: String,
        note: Option<String>,
    },
}

/// How an operator's action is told apart from a user's message in the store's record of an open
/// turn: user text never starts with U+0001 ([`Durable::send`] removes it). Not NUL:
/// PostgreSQL's text cannot hold it.
const OPERATOR: &str = "\u{1}ladder-operator\u{1}";
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Stops a background task when dropped (the lease heartbeat must not outlive its turn).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A runtime bound to a store: sessions are created, loaded and advanced through it, one turn at
/// a time per session across every worker sharing the store.
#[derive(Clone)]
pub struct Durable {
    runtime: Runtime,
    store: Arc<dyn Store>,
    worker: String,
    lease: Duration,
}

impl Runtime {
    /// Binds this runtime to a store. `worker` names this process in leases (e.g. host and pid).
    pub fn durable(&self, store: Arc<dyn Store>, worker: impl Into<String>) -> Durable {
        Durable {
            runtime: self.clone(),
            store,
            worker: worker.into(),
            lease: Duration::from_secs(30),
        }
    }
}

impl Durable {
    /// How long a worker's claim on a session lasts without renewal (renewed while a turn runs);
    /// after it, another worker may take a session over from a dead one. Default 30 s.
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.lease = ttl.max(Duration::from_millis(100));
        self
    }

    /// The runtime this is bound to.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The store sessions live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates a session at the ladder's entry, with `id` or a fresh one; returns its id.
    pub async fn create(&self, id: Option<String>) -> Result<String, StoreError> {
        let session = match id {
            Some(id) => self.runtime.session_with_id(id),
            None => self.runtime.session(),
        };
        let state = session.state().await;
        self.store.create(&state).await?;
        Ok(state.id)
    }

    /// Session `id`, created at the ladder's entry if it does not exist yet; returns the id.
    pub async fn open(&self, id: String) -> Result<String, StoreError> {
        match self.create(Some(id)).await {
            Ok(id) | Err(StoreError::Exists(id)) => Ok(id),
            Err(e) => Err(e),
        }
    }

    /// The session's state after its last committed turn, with its whole event log.
    pub async fn state(&self, id: &str) -> Result<SessionState, StoreError> {
        Ok(self.store.history(id).await?.state)
    }

    /// Runs a turn of session `id`. Fails at once if the session does not exist or another turn
    /// holds it ([`StoreError::Busy`]); otherwise the events arrive on the stream, and the turn is
    /// committed before the stream ends (a failure to commit arrives as a final [`Event::Error`]).
    /// A turn left open by a dead worker is finished first, reusing its recorded tool results.
    ///
    /// Everything runs on a task of its own: a caller that stops waiting (a client that hangs
    /// up) neither stops the turn nor strands the lease.
    pub async fn send(&self, id: &str, text: impl Into<String>) -> Result<EventStream, StoreError> {
        let text = text.into();
        // A user message is text; a U+0001 at its start would read as an operator's action.
        let text = match text.strip_prefix('\u{1}') {
            Some(rest) => rest.trim_start_matches('\u{1}').to_string(),
            None => text,
        };
        // NUL cannot be stored in PostgreSQL's text (the open turn's record): it becomes U+FFFD.
        let text = if text.contains('\0') {
            text.replace('\0', "\u{FFFD}")
        } else {
            text
        };
        self.launch(id, text.clone(), Work::Message(text)).await
    }

    /// Decides the tool approval `approval` of session `id` (see [`human`]): the turn it stopped
    /// continues (the approved call runs, or the model reads the refusal) and its events arrive
    /// on the stream, like a turn's. Refused when the session has no such pending approval.
    pub async fn decide(
        &self,
        id: &str,
        approval: &str,
        approved: bool,
        operator: String,
        note: Option<String>,
    ) -> Result<Result<EventStream, human::Refused>, StoreError> {
        let state = self
            .store
            .load(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?
            .state;
        if state.pending_approval.as_ref().map(|p| p.id.as_str()) != Some(approval) {
            return Ok(Err(human::Refused::NoSuchApproval(approval.to_string())));
        }
        if operator.trim().is_empty() {
            return Ok(Err(human::Refused::Invalid("`operator` is empty".into())));
        }
        let record = format!(
            "{OPERATOR}{}",
            json!({"decide": approval, "approved": approved, "operator": operator})
        );
        let work = Work::Decide {
            approval: approval.to_string(),
            approved,
            operator,
            note,
        };
        Ok(Ok(self.launch(id, record, work).await?))
    }

    /// Lets the rung that owns session `id` speak now, without a user message: after a person
    /// released the conversation and asked the rung to continue. Its events arrive on the
    /// stream, like a turn's.
    pub async fn resume(&self, id: &str) -> Result<EventStream, StoreError> {
        let record = format!("{OPERATOR}{}", json!({"resume": id}));
        self.launch(id, record, Work::Resume).await
    }

    /// Runs `work` as a turn of session `id` on a task of its own; `record` is what the store
    /// keeps as the open turn's text until it commits.
    async fn launch(
        &self,
        id: &str,
        record: String,
        work: Work,
    ) -> Result<EventStream, StoreError> {
        let text = record;
        self.check_ladder(id).await?;
        let (tx, rx) = crate::event::channel();
        let (claimed, on_claim) = oneshot::channel();
        let this = self.clone();
        let id = id.to_string();
        let handle = tokio::spawn(async move {
            let owner = format!("{}/{:08x}", this.worker, fastrand::u32(..));
            let claim = match this.store.acquire(&id, &owner, this.lease, &text).await {
                Ok(claim) => claim,
                Err(e) => {
                    let _ = claimed.send(Err(e));
                    return;
                }
            };
            let heartbeat = AbortOnDrop(this.heartbeat(&id, &owner));
            let mut state = match this.recover(&id, &owner, claim, &text).await {
                Ok(state) => state,
                Err(e) => {
                    let _ = this.store.release(&id, &owner).await;
                    let _ = claimed.send(Err(e));
                    return;
                }
            };
            let _ = claimed.send(Ok(()));
            let journal = Journal {
                store: this.store.clone(),
                id: id.clone(),
            };
            let turn = turn::Turn::new(&this.runtime.inner, &mut state, &tx).journal(&journal);
            match work {
                Work::Message(text) => turn.run(text).await,
                Work::Resume => turn.resume().await,
                Work::Decide {
                    approval,
                    approved,
                    operator,
                    note,
                } => {
                    // Decided meanwhile by someone else: nothing to continue.
                    if turn.pending_approval() == Some(approval.as_str()) {
                        turn.decide(approved, operator, note).await;
                    }
                }
            }
            let events = std::mem::take(&mut state.events);
            let committed = this
                .store
                .commit_turn(&id, &owner, &state, &events, true)
                .await;
            drop(heartbeat);
            if let Err(e) = committed {
                let _ = this.store.release(&id, &owner).await;
                let _ = tx.send(Event::Error {
                    agent: state.current.clone(),
                    message: format!("the turn could not be stored: {e}"),
                });
            }
        });
        match on_claim.await {
            Ok(Ok(())) => Ok(EventStream {
                rx,
                _handle: handle,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Backend(
                "the turn stopped before it began".into(),
            )),
        }
    }

    /// Applies an operator's action ([`human::Action`]) to session `id` under its lease, and
    /// commits the new state with the action's events, like a turn: durable, and exclusive with
    /// the session's turns on every worker ([`StoreError::Busy`] while a turn runs). Returns the
    /// events, or why the action was refused (the session is then unchanged).
    pub async fn operate(
        &self,
        id: &str,
        action: &human::Action,
    ) -> Result<Result<Vec<Event>, human::Refused>, StoreError> {
        self.check_ladder(id).await?;
        let owner = format!("{}/{:08x}", self.worker, fastrand::u32(..));
        let text = format!(
            "{OPERATOR}{}",
            serde_json::to_string(action).unwrap_or_default()
        );
        let claim = self.store.acquire(id, &owner, self.lease, &text).await?;
        let mut state = match self.recover(id, &owner, claim, &text).await {
            Ok(state) => state,
            Err(e) => {
                let _ = self.store.release(id, &owner).await;
                return Err(e);
            }
        };
        let outcome = human::apply(
            &self.runtime.inner.program,
            &mut state,
            action,
            human::now_ms(),
        );
        let events = std::mem::take(&mut state.events);
        // A refusal commits the unchanged state: it closes the open record of the action.
        if let Err(e) = self
            .store
            .commit_turn(id, &owner, &state, &events, true)
            .await
        {
            let _ = self.store.release(id, &owner).await;
            return Err(e);
        }
        Ok(outcome)
    }

    /// Refuses a session stamped with another ladder (or another version of this one), unless
    /// the runtime migrates. Sessions stored before stamps existed are accepted.
    async fn check_ladder(&self, id: &str) -> Result<(), StoreError> {
        if self.runtime.inner.migrate {
            return Ok(());
        }
        let Some(stored) = self.store.load(id).await? else {
            return Err(StoreError::NotFound(id.to_string()));
        };
        match stored.state.ladder {
            Some(stamp) if stamp != self.runtime.inner.stamp => Err(StoreError::OtherLadder {
                id: id.to_string(),
                stored: format!("{} ({})", stamp.name, stamp.hash),
                current: format!(
                    "ladder `{}` ({})",
                    self.runtime.inner.stamp.name, self.runtime.inner.stamp.hash
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Finishes a turn that a dead worker left open, then records the new one as begun.
    async fn recover(
        &self,
        id: &str,
        owner: &str,
        claim: Claim,
        text: &str,
    ) -> Result<SessionState, StoreError> {
        let mut state = claim.state;
        state.events.clear();
        let Some(open) = claim.interrupted else {
            return Ok(state);
        };
        if open.text.starts_with(OPERATOR) {
            // An operator's action that was never committed: its caller got no answer and may
            // repeat it. Nothing is re-run; the record is closed.
            self.store
                .commit_turn(id, owner, &state, &[], false)
                .await?;
            self.store
                .begin_turn(id, owner, state.turn + 1, text)
                .await?;
            return Ok(state);
        }
        // The state is the one before the open turn: re-running it with the same turn number
        // gives its tool calls the same idempotency keys, so recorded ones are reused.
        state.turn = open.turn.saturating_sub(1);
        let (tx, _rx) = crate::event::channel();
        let journal = Journal {
            store: self.store.clone(),
            id: id.to_string(),
        };
        turn::Turn::new(&self.runtime.inner, &mut state, &tx)
            .journal(&journal)
            .run(open.text)
            .await;
        let events = std::mem::take(&mut state.events);
        self.store
            .commit_turn(id, owner, &state, &events, false)
            .await?;
        self.store
            .begin_turn(id, owner, state.turn + 1, text)
            .await?;
        Ok(state)
    }

    /// Renews the lease every third of its length until aborted.
    fn heartbeat(&self, id: &str, owner: &str) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let (id, owner, ttl) = (id.to_string(), owner.to_string(), self.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if store.renew(&id, &owner, ttl).await.is_err() {
                    return;
                }
            }
        })
    }
}
