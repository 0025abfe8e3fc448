//! What a turn reports, in order. Serialised as one JSON object per event with a `type` field;
//! the schema is documented in docs/runtime.md and is what `ladderc run --json` prints.

use crate::backend::TokenUsage;
use serde::{Deserialize, Serialize};

/// One thing that happened in a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A turn began with the caller's message.
    TurnStarted {
        /// The session's id.
        session: String,
        /// The turn's number, from 1.
        turn: u32,
        /// The caller's message.
        text: String,
    },
    /// An agent, script or human became the active rung.
    AgentActive {
        /// The rung.
        agent: String,
        /// `agent`, `script` or `human`.
        kind: String,
    },
    /// A piece of the reply as it streams.
    TextDelta {
        /// The rung replying.
        agent: String,
        /// The new text.
        text: String,
    },
    /// Text that streamed to the caller is not the answer after all (the model call failed
    /// after it began): surfaces take it back where they can.
    Withdrawn {
        /// The rung whose text it was.
        agent: String,
        /// The text taken back.
        text: String,
    },
    /// A tool is called.
    ToolCall {
        /// The calling agent.
        agent: String,
        /// The call's id, which its result repeats.
        call_id: String,
        /// The tool.
        tool: String,
        /// The arguments, validated.
        arguments: serde_json::Value,
    },
    /// A tool answered.
    ToolResult {
        /// The calling agent.
        agent: String,
        /// The call answered.
        call_id: String,
        /// The tool.
        tool: String,
        /// The result (or `{"error"}`).
        result: serde_json::Value,
        /// Whether the call succeeded.
        ok: bool,
    },
    /// Control moved down a `handoff` edge.
    Handoff {
        /// The rung handing over.
        from: String,
        /// The receiving rung.
        to: String,
        /// The intent carried (none for a script's handoff).
        intent: Option<String>,
        /// The intent's payload, validated.
        payload: serde_json::Value,
        /// The second hop of a fused route: the rung handing over made no model call of its
        /// own; the sender before it chose both hops (docs/runtime.md, "Fused routing").
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fused: bool,
    },
    /// Control went back up to the agent that handed it down (`return`).
    Returned {
        /// The agent returning.
        from: String,
        /// The agent it returns to.
        to: String,
        /// What it did, as the model summarised it.
        summary: String,
    },
    /// Control moved up an `escalate` edge.
    Escalation {
        /// The rung escalating.
        from: String,
        /// The rung above.
        to: String,
        /// Why, as the model said.
        reason: Option<String>,
    },
    /// An agent asked another agent a question.
    Consult {
        /// The asking agent.
        from: String,
        /// The agent asked.
        to: String,
        /// The question.
        question: String,
    },
    /// The consulted agent's answer.
    ConsultAnswer {
        /// The agent that answered.
        from: String,
        /// The agent that asked.
        to: String,
        /// The answer.
        answer: String,
    },
    /// The model asked for something the ladder does not allow; it was told so and retried.
    Correction {
        /// The agent corrected.
        agent: String,
        /// What the model was told.
        reason: String,
        /// Which correction of this step (from 1).
        attempt: u32,
        /// What was refused: `{"function", "arguments"}` (the arguments as the model wrote them)
        /// or `{"text"}`; absent when the endpoint could not say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejected: Option<serde_json::Value>,
    },
    /// A hard ceiling was reached: which one, and its value.
    CeilingHit {
        /// The rung running when it fired.
        agent: String,
        /// The ceiling (`steps_per_turn`, ...).
        ceiling: String,
        /// Its value.
        limit: f64,
    },
    /// The rung failed and control moved to its fallback.
    Fallback {
        /// The rung that failed.
        from: String,
        /// The rung taking over.
        to: String,
        /// What failed.
        reason: String,
    },
    /// A human endpoint was reached: the session is paused for a person. Also on every later
    /// user message while it waits or a person owns it: the message went to the person.
    HumanNeeded {
        /// The person.
        human: String,
        /// The rung that reached them.
        from: String,
        /// The queue the session waits in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
        /// The human's line for the user (`handover`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handover: Option<String>,
        /// How long the session may wait to be claimed (`sla`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sla_seconds: Option<f64>,
        /// The operator who claimed it, once claimed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claimed_by: Option<String>,
    },
    /// An operator claimed a waiting session.
    HumanClaimed {
        /// The human rung.
        human: String,
        /// Who claimed it.
        operator: String,
    },
    /// The person's message to the user.
    HumanMessage {
        /// The human rung.
        human: String,
        /// Who wrote it.
        operator: String,
        /// What they wrote.
        text: String,
    },
    /// The person handed the conversation to a rung, which answers the user's next message.
    HumanReleased {
        /// The human rung.
        human: String,
        /// Who released it.
        operator: String,
        /// The rung that now owns the conversation.
        to: String,
        /// The operator's note to that rung.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A tool call waits for a person's approval; the rung's turn continues once it is decided.
    /// Also on every user message while it waits.
    ApprovalRequested {
        /// The approval's id (`POST /v1/approvals/{id}`).
        id: String,
        /// The agent that called the tool.
        agent: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        arguments: serde_json::Value,
        /// The person who decides.
        human: String,
    },
    /// A person decided: an approved call runs, a rejected one is an error the model reads.
    ApprovalDecided {
        /// The approval's id.
        id: String,
        /// The tool.
        tool: String,
        /// The person (the human rung).
        human: String,
        /// Who decided.
        operator: String,
        /// Whether the call may run.
        approved: bool,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// No one claimed the session within the human's SLA: its fallback owns the conversation.
    HumanUnclaimed {
        /// The human rung.
        human: String,
        /// The fallback.
        to: String,
        /// How long the session waited.
        waited_seconds: f64,
    },
    /// A script asks the user for a value; the next message answers it.
    Collect {
        /// The script.
        script: String,
        /// The variable the answer goes to.
        var: String,
        /// What it asks, if anything.
        question: Option<String>,
    },
    /// The turn's answer to the caller.
    Reply {
        /// The rung that replied.
        agent: String,
        /// The reply.
        text: String,
    },
    /// The session ended.
    SessionEnded {
        /// The rung that ended it.
        by: String,
    },
    /// Something failed with no fallback left; the session keeps its state.
    Error {
        /// The rung that failed.
        agent: String,
        /// What failed.
        message: String,
    },
    /// The turn is over: what it used.
    TurnEnded {
        /// The turn's number.
        turn: u32,
        /// Tokens used.
        usage: TokenUsage,
        /// Model calls.
        llm_calls: u32,
        /// Tool calls.
        tool_calls: u32,
        /// Handoffs.
        handoffs: u32,
        /// Dollars.
        cost: f64,
        /// Wall time of the turn, in milliseconds.
        latency_ms: u64,
    },
}

/// The sending half of a turn's events. The queue allocates per event, not a block of slots up
/// front: an idle turn (waiting on its model) costs a few bytes, not a block of events
/// (BENCHMARKS.md, "Memory per in-flight session").
#[derive(Debug, Clone)]
pub(crate) struct Sender(futures_channel::mpsc::UnboundedSender<Event>);

impl Sender {
    /// Sends `event`; false when the receiver is gone (the turn goes on regardless).
    pub(crate) fn send(&self, event: Event) -> bool {
        self.0.unbounded_send(event).is_ok()
    }
}

/// The receiving half of a turn's events.
pub(crate) type Receiver = futures_channel::mpsc::UnboundedReceiver<Event>;

/// A turn's event queue.
pub(crate) fn channel() -> (Sender, Receiver) {
    let (tx, rx) = futures_channel::mpsc::unbounded();
    (Sender(tx), rx)
}
