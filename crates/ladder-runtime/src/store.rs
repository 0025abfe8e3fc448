//! The store implementer's API: the [`Store`] trait that persistence backends implement (the
//! `ladder-store` crate has SQLite and PostgreSQL) and the records it keeps. The turn protocol on
//! top of it is [`crate::Durable`].

use crate::event::Event;
use crate::session::SessionState;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

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

/// Records and reuses tool results for the turn being run.
pub(crate) struct Journal {
    pub store: Arc<dyn Store>,
    pub id: String,
}
