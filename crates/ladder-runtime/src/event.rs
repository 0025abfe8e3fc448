//! What a turn reports, in order. Serialised as one JSON object per event with a `type` field;
//! the schema is documented in docs/runtime.md and is what `ladderc run --json` prints.

use crate::backend::TokenUsage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TurnStarted {
        session: String,
        turn: u32,
        text: String,
    },
    /// An agent, script or human became the active rung.
    AgentActive {
        agent: String,
        kind: String,
    },
    TextDelta {
        agent: String,
        text: String,
    },
    /// Text that streamed to the caller is not the answer after all (the model call failed
    /// after it began): surfaces take it back where they can.
    Withdrawn {
        agent: String,
        text: String,
    },
    ToolCall {
        agent: String,
        call_id: String,
        tool: String,
        arguments: serde_json::Value,
    },
    ToolResult {
        agent: String,
        call_id: String,
        tool: String,
        result: serde_json::Value,
        ok: bool,
    },
    Handoff {
        from: String,
        to: String,
        intent: Option<String>,
        payload: serde_json::Value,
    },
    Escalation {
        from: String,
        to: String,
        reason: Option<String>,
    },
    Consult {
        from: String,
        to: String,
        question: String,
    },
    ConsultAnswer {
        from: String,
        to: String,
        answer: String,
    },
    /// The model asked for something the ladder does not allow; it was told so and retried.
    Correction {
        agent: String,
        reason: String,
        attempt: u32,
        /// What was refused: `{"function", "arguments"}` (the arguments as the model wrote them)
        /// or `{"text"}`; absent when the endpoint could not say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejected: Option<serde_json::Value>,
    },
    /// A hard ceiling was reached: which one, and its value.
    CeilingHit {
        agent: String,
        ceiling: String,
        limit: f64,
    },
    /// The rung failed and control moved to its fallback.
    Fallback {
        from: String,
        to: String,
        reason: String,
    },
    /// A human endpoint was reached: the session is paused for a person.
    HumanNeeded {
        human: String,
        from: String,
    },
    /// A script asks the user for a value; the next message answers it.
    Collect {
        script: String,
        var: String,
        question: Option<String>,
    },
    Reply {
        agent: String,
        text: String,
    },
    SessionEnded {
        by: String,
    },
    /// Something failed with no fallback left; the session keeps its state.
    Error {
        agent: String,
        message: String,
    },
    TurnEnded {
        turn: u32,
        usage: TokenUsage,
        llm_calls: u32,
        tool_calls: u32,
        handoffs: u32,
        cost: f64,
        latency_ms: u64,
    },
}
