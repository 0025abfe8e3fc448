//! The store implementer's API: the [`Store`] trait that persistence backends implement (the
//! `ladder-store` crate has SQLite and PostgreSQL) and the records it keeps. The turn protocol on
//! top of it is [`crate::Durable`].

use crate::event::Event;
use crate::session::SessionState;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No session has this id.
    #[error("session `{0}` does not exist")]
    NotFound(String),
    /// The id is taken.
    #[error("session `{0}` already exists")]
    Exists(String),
    /// Another worker is running a turn of the session.
    #[error("session `{id}` is busy: a turn is running on {owner}")]
    Busy {
        /// The session.
        id: String,
        /// The worker running it.
        owner: String,
    },
    /// This worker lost the session to another.
    #[error("the lease on session `{0}` expired and another worker took the session over")]
    LeaseLost(String),
    /// The session was started by another ladder (or another version of it).
    #[error("session `{id}` belongs to ladder `{stored}`, not to this {current}; continue it with the ladder it was started with, or migrate it explicitly (`--migrate`)")]
    OtherLadder {
        /// The session.
        id: String,
        /// `name` (hash) of the stored session's ladder.
        stored: String,
        /// `ladder `name` (hash)` of this runtime.
        current: String,
    },
    /// The database failed.
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
    /// The state after the last committed turn.
    pub state: SessionState,
    /// A turn begun and not committed, if any.
    pub open_turn: Option<OpenTurn>,
}

/// A turn recorded as begun and never committed: its worker died or was stopped mid-turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTurn {
    /// Its number.
    pub turn: u32,
    /// The user's message.
    pub text: String,
}

/// One line of `ladderc sessions list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session's id.
    pub id: String,
    /// The rung that owns the conversation.
    pub current: String,
    /// Turns taken.
    pub turns: u32,
    /// Whether it has ended.
    pub ended: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
    /// The number of a turn begun and not committed.
    pub open_turn: Option<u32>,
    /// The worker holding the lease, while it is valid.
    pub leased_by: Option<String>,
}

/// A completed tool call, recorded under its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub arguments: serde_json::Value,
    /// Its result (or `{"error"}`).
    pub result: serde_json::Value,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Where sessions live. Implementations must make [`Store::commit_turn`] atomic and
/// [`Store::acquire`] exclusive across processes sharing the store.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new session; [`StoreError::Exists`] if the id is taken.
    async fn create(&self, state: &SessionState) -> Result<(), StoreError>;
    /// The stored session, if it exists.
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
    /// Deletes the session with its events and recorded tool calls; [`StoreError::Busy`] while a
    /// worker holds its lease, [`StoreError::NotFound`] if there is none.
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
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
