//! Session state: everything needed to continue a conversation, serialisable so that a store can
//! persist it and a later process can resume it.

use crate::backend::ChatMessage;
use crate::event::Event;
use ladder_program::ContextPolicy;
use serde::{Deserialize, Serialize};

/// Cumulative counters of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Turns taken.
    pub turns: u32,
    /// Model calls.
    pub llm_calls: u64,
    /// Tool calls.
    pub tool_calls: u64,
    /// Handoffs.
    pub handoffs: u64,
    /// Escalations.
    pub escalations: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Dollars.
    pub cost: f64,
    /// Time spent in turns, in milliseconds.
    pub elapsed_ms: u64,
    /// Prompt tokens served from the provider's cache (part of `prompt_tokens`).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Model calls whose usage was estimated (cut by an SLA or failed).
    #[serde(default)]
    pub estimated_calls: u64,
}

/// What the current rung received when control reached it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The rung that handed over, escalated or fell back to this one.
    pub from: Option<String>,
    /// The intent of a handoff.
    pub intent: Option<String>,
    /// The handoff's payload (`null` if none).
    pub payload: serde_json::Value,
    /// The sender's summary, for the `summary` context policy.
    pub summary: Option<String>,
    /// How much history the receiver sees.
    pub context: ContextPolicy,
    /// Transcript length when control arrived: the policy applies to the history before it.
    pub since: usize,
    /// How control arrived, as the receiver is told in its system message: who handed over,
    /// the intent and its payload, or why it escalated or fell back. The sender's
    /// `transfer_to_*` call is never replayed to the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            from: None,
            intent: None,
            payload: serde_json::Value::Null,
            summary: None,
            context: ContextPolicy::Full,
            since: 0,
            note: None,
        }
    }
}

/// A session waiting for, or owned by, a person (see [`crate::human`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The human rung.
    pub human: String,
    /// Its queue.
    pub queue: String,
    /// Unix milliseconds when the session reached the queue.
    pub since_ms: i64,
    /// Unix milliseconds after which an unclaimed session goes to the human's fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    /// The operator who claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
}

/// A call of a tool with `approval HUMAN`, waiting for that person (see [`crate::human`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The approval's id: the call's idempotency key (`SESSION-TURN-N`).
    pub id: String,
    /// The model's id of the call, which the result answers.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The arguments the model gave (bound parameters excluded).
    pub arguments: serde_json::Value,
    /// The agent that called it.
    pub agent: String,
    /// The person who decides.
    pub human: String,
    /// Unix milliseconds of the request.
    pub requested_ms: i64,
    /// What the user wrote meanwhile: it joins the conversation after the call's result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

/// A script waiting for the user's answer to `collect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Awaiting {
    /// The script.
    pub script: String,
    /// The index of its `collect` step.
    pub step: usize,
    /// The variable the answer goes to.
    pub var: String,
}

/// One transcript entry: a chat message and who produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The turn it belongs to.
    pub turn: u32,
    /// The rung that produced it (`user` for the caller).
    pub by: String,
    /// The message.
    pub message: ChatMessage,
    /// An attempt the runtime refused (a correction and the answer to it): the model sees it for
    /// the rest of its turn, then it leaves the transcript (the event log keeps it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejected: bool,
}

/// The whole state of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// The session's id.
    pub id: String,
    /// The number of the last turn (0 before the first).
    pub turn: u32,
    /// The rung that owns the conversation.
    pub current: String,
    /// Rungs to return to, innermost last.
    pub escalation_stack: Vec<String>,
    /// Agents that handed the conversation down, innermost last: where a `return` goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegators: Vec<String>,
    /// Session variables.
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// The conversation so far.
    pub transcript: Vec<Entry>,
    /// What the session has used.
    pub counters: Counters,
    /// What the current rung received when control reached it.
    pub inbound: Inbound,
    /// Turns the current rung has owned (the `turns` escalation signal).
    pub rung_turns: u32,
    /// A script waiting for the caller's answer.
    pub awaiting: Option<Awaiting>,
    /// Set when a human endpoint was reached.
    pub paused_for: Option<String>,
    /// While a person owns the session: the queue it waits in, since when, and who claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// A tool call waiting for a person's approval: the rung's turn continues once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// Whether the session has ended.
    pub ended: bool,
    /// The append-only event log of every turn.
    pub events: Vec<Event>,
    /// The ladder this session runs (absent in sessions stored before stamps existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<LadderStamp>,
}

/// Which ladder a session belongs to: its name and a hash of the checked program (its scenario
/// tests excluded). A stored session is continued only by the same program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadderStamp {
    /// The ladder's name.
    pub name: String,
    /// A hash of the checked program.
    pub hash: String,
}

impl LadderStamp {
    /// The stamp of `program`.
    pub fn of(program: &ladder_program::Program) -> Self {
        let mut p = program.clone();
        p.tests.clear();
        let bytes = serde_json::to_vec(&p).unwrap_or_default();
        // FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        LadderStamp {
            name: program.name.clone(),
            hash: format!("{hash:016x}"),
        }
    }
}

impl SessionState {
    /// A new session at `entry`, with these variables.
    pub fn new(
        id: String,
        entry: String,
        vars: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        SessionState {
            id,
            turn: 0,
            current: entry,
            escalation_stack: Vec::new(),
            delegators: Vec::new(),
            vars,
            transcript: Vec::new(),
            counters: Counters::default(),
            inbound: Inbound::default(),
            rung_turns: 0,
            awaiting: None,
            paused_for: None,
            hold: None,
            pending_approval: None,
            ended: false,
            events: Vec::new(),
            ladder: None,
        }
    }
}
