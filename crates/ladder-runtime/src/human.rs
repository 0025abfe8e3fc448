//! People in the loop. A session that reaches a `human` rung waits in that human's queue; an
//! operator claims it, writes to the user, and releases the conversation to one of the rungs the
//! human's `release` names, which answers the user's next message. A session no one claims within
//! the human's `sla` goes to its `fallback`. While a person owns a session, the user's messages
//! go to the person (the transcript they read) and never to a model.
//!
//! [`apply`] is the whole state change of an operator's action, as a pure function of the
//! session state; [`crate::Durable::operate`] runs it under the session's lease and commits it
//! with its events, like a turn.

use crate::event::Event;
use crate::session::{Entry, Hold, Inbound, SessionState};
use crate::{backend::ChatMessage, Inner};
use ladder_program::ContextPolicy;
use serde::{Deserialize, Serialize};

/// What an operator does to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Take a waiting session: from now on the operator answers it.
    Claim {
        /// Who claims it.
        operator: String,
    },
    /// Write to the user.
    Message {
        /// Who writes (the operator who claimed the session).
        operator: String,
        /// What they write.
        text: String,
    },
    /// Hand the conversation to a rung the human may release to.
    Release {
        /// Who releases it (the operator who claimed the session).
        operator: String,
        /// The rung, one of the human's `release` list.
        to: String,
        /// A note for that rung, added to what it is told about how control arrived.
        #[serde(default)]
        note: Option<String>,
    },
    /// The claim SLA passed with no claim: the human's fallback takes the session.
    Expire,
}

/// Why an operator's action was refused; the session is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// The session is not waiting for, or owned by, a person.
    #[error("session `{0}` is not with a person")]
    NotWithPerson(String),
    /// Someone else claimed it.
    #[error("session `{id}` is claimed by `{by}`")]
    ClaimedByOther {
        /// The session.
        id: String,
        /// Who claimed it.
        by: String,
    },
    /// A message or release before a claim.
    #[error("session `{0}` is not claimed: claim it first")]
    NotClaimed(String),
    /// A release to a rung the human's `release` does not list.
    #[error("`{human}` may release only to {allowed}; not to `{to}`")]
    NotReleasable {
        /// The human rung.
        human: String,
        /// The rung asked for.
        to: String,
        /// The rungs it may release to, for the message.
        allowed: String,
    },
    /// An empty message or operator name.
    #[error("{0}")]
    Invalid(String),
    /// No pending tool approval has this id in the session.
    #[error("no tool call waits for approval `{0}`")]
    NoSuchApproval(String),
    /// An expiry before the deadline, or for a claimed session, or a human with no fallback.
    #[error("session `{0}` is not due for its fallback")]
    NotDue(String),
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The hold of a session that just reached `human`.
pub(crate) fn hold(rt: &Inner, human: &str) -> Hold {
    let since_ms = now_ms();
    let def = rt.program.humans.get(human);
    Hold {
        human: human.to_string(),
        queue: def
            .map(|h| h.queue.clone())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| human.to_string()),
        since_ms,
        deadline_ms: def
            .and_then(|h| h.sla_seconds.filter(|_| h.fallback.is_some()))
            .map(|s| since_ms.saturating_add((s * 1000.0) as i64)),
        claimed_by: None,
    }
}

/// The `human_needed` event for a session waiting for (or owned by) `human`.
pub(crate) fn needed(rt: &Inner, state: &SessionState, human: &str, from: String) -> Event {
    let def = rt.program.humans.get(human);
    let hold = state.hold.as_ref().filter(|h| h.human == human);
    Event::HumanNeeded {
        human: human.to_string(),
        from,
        queue: hold.map(|h| h.queue.clone()),
        handover: def.and_then(|h| h.handover.clone()),
        sla_seconds: def.and_then(|h| h.sla_seconds),
        claimed_by: hold.and_then(|h| h.claimed_by.clone()),
    }
}

/// Applies an operator's action to a session; returns the events it adds (also pushed onto
/// `state.events`). On refusal the state is unchanged.
pub fn apply(
    program: &ladder_program::Program,
    state: &mut SessionState,
    action: &Action,
    now_ms: i64,
) -> Result<Vec<Event>, Refused> {
    let id = state.id.clone();
    let (Some(human), Some(hold)) = (state.paused_for.clone(), state.hold.clone()) else {
        return Err(Refused::NotWithPerson(id));
    };
    let def = program.humans.get(&human);
    let mine = |operator: &str| -> Result<(), Refused> {
        match &hold.claimed_by {
            None => Err(Refused::NotClaimed(id.clone())),
            Some(by) if by != operator => Err(Refused::ClaimedByOther {
                id: id.clone(),
                by: by.clone(),
            }),
            Some(_) => Ok(()),
        }
    };
    let events = match action {
        Action::Claim { operator } => {
            if operator.trim().is_empty() {
                return Err(Refused::Invalid("`operator` is empty".into()));
            }
            match &hold.claimed_by {
                Some(by) if by == operator => return Ok(Vec::new()),
                Some(by) => return Err(Refused::ClaimedByOther { id, by: by.clone() }),
                None => {}
            }
            if let Some(h) = state.hold.as_mut() {
                h.claimed_by = Some(operator.clone());
            }
            vec![Event::HumanClaimed {
                human,
                operator: operator.clone(),
            }]
        }
        Action::Message { operator, text } => {
            mine(operator)?;
            if text.trim().is_empty() {
                return Err(Refused::Invalid("`text` is empty".into()));
            }
            state.transcript.push(Entry {
                turn: state.turn,
                by: human.clone(),
                message: ChatMessage::assistant(Some(text.clone()), Vec::new()),
                rejected: false,
            });
            vec![Event::HumanMessage {
                human,
                operator: operator.clone(),
                text: text.clone(),
            }]
        }
        Action::Release { operator, to, note } => {
            mine(operator)?;
            let allowed = def.map(|h| h.release.clone()).unwrap_or_default();
            if !allowed.contains(to) {
                return Err(Refused::NotReleasable {
                    human,
                    to: to.clone(),
                    allowed: if allowed.is_empty() {
                        "no rung (it declares no `release`)".into()
                    } else {
                        allowed
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            }
            let told = match note {
                Some(n) if !n.trim().is_empty() => format!(
                    "The person `{human}` ({operator}) handled this conversation and handed it to you with this note: {n}"
                ),
                _ => format!(
                    "The person `{human}` ({operator}) handled this conversation and handed it to you."
                ),
            };
            move_to(state, &human, to, told);
            vec![Event::HumanReleased {
                human,
                operator: operator.clone(),
                to: to.clone(),
                note: note.clone(),
            }]
        }
        Action::Expire => {
            let (Some(deadline), None, Some(fallback)) = (
                hold.deadline_ms,
                &hold.claimed_by,
                def.and_then(|h| h.fallback.clone()),
            ) else {
                return Err(Refused::NotDue(id));
            };
            if now_ms < deadline {
                return Err(Refused::NotDue(id));
            }
            let waited_seconds = (now_ms - hold.since_ms) as f64 / 1000.0;
            move_to(
                state,
                &human,
                &fallback,
                format!("No person from `{human}` was free to take this conversation; you take it over."),
            );
            vec![Event::HumanUnclaimed {
                human,
                to: fallback,
                waited_seconds,
            }]
        }
    };
    state.events.extend(events.iter().cloned());
    Ok(events)
}

/// Control leaves the person for `to`, which answers the user's next message.
fn move_to(state: &mut SessionState, human: &str, to: &str, note: String) {
    state.paused_for = None;
    state.hold = None;
    state.current = to.to_string();
    state.rung_turns = 0;
    state.awaiting = None;
    state.inbound = Inbound {
        from: Some(human.to_string()),
        context: ContextPolicy::Full,
        since: state.transcript.len(),
        note: Some(note),
        ..Inbound::default()
    };
}

/// Whether a waiting session is due for its human's fallback at `now_ms`.
pub fn due(state: &SessionState, now_ms: i64) -> bool {
    state
        .hold
        .as_ref()
        .is_some_and(|h| h.claimed_by.is_none() && h.deadline_ms.is_some_and(|d| now_ms >= d))
}
