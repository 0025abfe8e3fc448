//! Durable sessions: the [`Store`] trait that persistence backends implement (the `ladder-store`
//! crate has SQLite and PostgreSQL), and [`Durable`], the turn protocol on top of it.
//!
//! A turn against a store goes: take the session's lease, finish a turn that a dead worker left
//! open, record the new turn as open, run it (recording each completed tool call under its
//! idempotency key before going on), then commit its events and the new state in one transaction
//! that also releases the lease. A crash at any point leaves either the committed state of the last
//! turn or an open turn whose completed tool calls are on record; the next worker re-runs that turn
//! and reuses the recorded results, so no tool side effect happens twice.

use crate::event::Event;
use crate::session::SessionState;
use crate::{turn, EventStream, Runtime};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("session `{0}` does not exist")]
    NotFound(String),
    #[error("session `{0}` already exists")]
    Exists(String),
    #[error("session `{id}` is busy: a turn is running on {owner}")]
    Busy { id: String, owner: String },
    #[error("the lease on session `{0}` expired and another worker took the session over")]
    LeaseLost(String),
    #[error("session `{id}` belongs to ladder `{stored}`, not to this {current}; continue it with the ladder it was started with, or migrate it explicitly (`--migrate`)")]
    OtherLadder {
        id: String,
        /// `name` (hash) of the stored session's ladder.
        stored: String,
        /// `ladder `name` (hash)` of this runtime.
        current: String,
    },
    #[error("{0}")]
    Backend(String),
}

/// What [`Store::acquire`] hands the new lease holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The state after the last committed turn (without its event log).
    pub state: SessionState,
    /// A turn that a dead or stopped worker began and never committed. When set, the new turn was
    /// not begun: re-run this one, commit it, then [`Store::begin_turn`] the new one.
    pub interrupted: Option<OpenTurn>,
}

/// A session as stored: its state after the last committed turn (without the event log, which
/// [`Store::events`] reads) and the turn that was begun but not committed, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub state: SessionState,
    pub open_turn: Option<OpenTurn>,
}

/// A turn recorded as begun and never committed: its worker died or was stopped mid-turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTurn {
    pub turn: u32,
    pub text: String,
}

/// One line of `ladderc sessions list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: String,
    pub current: String,
    pub turns: u32,
    pub ended: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub open_turn: Option<u32>,
    /// The worker holding the lease, while it is valid.
    pub leased_by: Option<String>,
}

/// A completed tool call, recorded under its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    pub tool: String,
    pub arguments: serde_json::Value,
    pub result: serde_json::Value,
    pub ok: bool,
}

/// Where sessions live. Implementations must make [`Store::commit_turn`] atomic and
/// [`Store::acquire`] exclusive across processes sharing the store.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new session; [`StoreError::Exists`] if the id is taken.
    async fn create(&self, state: &SessionState) -> Result<(), StoreError>;
    async fn load(&self, id: &str) -> Result<Option<Stored>, StoreError>;
    /// The session's committed events, in order.
    async fn events(&self, id: &str) -> Result<Vec<Event>, StoreError>;
    /// The stored session with its whole event log in `state.events`; [`StoreError::NotFound`]
    /// if there is none.
    async fn history(&self, id: &str) -> Result<Stored, StoreError> {
        let mut stored = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.into()))?;
        stored.state.events = self.events(id).await?;
        Ok(stored)
    }
    /// The most recently updated sessions first.
    async fn list(&self, limit: u32) -> Result<Vec<SessionSummary>, StoreError>;
    /// In one step: takes the session's lease for `owner` until `ttl` from now (by the store's
    /// clock), if no one holds it or the holder's lease expired (else [`StoreError::Busy`]), and,
    /// unless a turn is open, records the next turn as begun with the user's `text`.
    async fn acquire(
        &self,
        id: &str,
        owner: &str,
        ttl: Duration,
        text: &str,
    ) -> Result<Claim, StoreError>;
    /// Extends `owner`'s lease; [`StoreError::LeaseLost`] if it no longer holds it.
    async fn renew(&self, id: &str, owner: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Gives the lease up (a no-op if `owner` does not hold it).
    async fn release(&self, id: &str, owner: &str) -> Result<(), StoreError>;
    /// Records turn `turn` as begun with the user's `text`, under `owner`'s lease (after an
    /// interrupted turn was finished).
    async fn begin_turn(
        &self,
        id: &str,
        owner: &str,
        turn: u32,
        text: &str,
    ) -> Result<(), StoreError>;
    /// A tool call completed earlier under this idempotency key.
    async fn recall(&self, id: &str, key: &str) -> Result<Option<RecordedCall>, StoreError>;
    /// Records a completed tool call durably (before the turn goes on).
    async fn record(&self, id: &str, key: &str, call: &RecordedCall) -> Result<(), StoreError>;
    /// In one transaction: appends `events`, replaces the state with `state` (whose own event
    /// list is ignored), closes the open turn and, if `release`, gives the lease up. Fails with
    /// [`StoreError::LeaseLost`] (and changes nothing) if `owner` no longer holds the lease.
    async fn commit_turn(
        &self,
        id: &str,
        owner: &str,
        state: &SessionState,
        events: &[Event],
        release: bool,
    ) -> Result<(), StoreError>;
}

/// Stops a background task when dropped (the lease heartbeat must not outlive its turn).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records and reuses tool results for the turn being run.
pub(crate) struct Journal {
    pub store: Arc<dyn Store>,
    pub id: String,
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
        self.check_ladder(id).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (claimed, on_claim) = oneshot::channel();
        let this = self.clone();
        let id = id.to_string();
        let text = text.into();
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
            turn::Turn::new(&this.runtime.inner, &mut state, &tx)
                .journal(&journal)
                .run(text)
                .await;
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
        // The state is the one before the open turn: re-running it with the same turn number
        // gives its tool calls the same idempotency keys, so recorded ones are reused.
        state.turn = open.turn.saturating_sub(1);
        let (tx, _rx) = mpsc::unbounded_channel();
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
