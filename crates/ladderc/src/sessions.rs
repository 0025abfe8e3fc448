//! `ladderc sessions list|show|export`: what a store holds.

use ladder_runtime::{Event, Role, SessionState, SessionSummary};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(clap::Subcommand)]
pub(crate) enum SessionsCommand {
    /// The most recently active sessions.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per session.
        #[arg(long)]
        json: bool,
    },
    /// A session's state and transcript.
    Show { id: String },
    /// A session's whole state and event log as one JSON document.
    Export { id: String },
}

pub(crate) async fn run(command: SessionsCommand, store: String) -> Result<(), String> {
    let store = ladder_store::open(&store)
        .await
        .map_err(|e| e.to_string())?;
    match command {
        SessionsCommand::List { limit, json } => {
            let sessions = store.list(limit).await.map_err(|e| e.to_string())?;
            if json {
                for s in &sessions {
                    println!("{}", serde_json::to_string(s).map_err(|e| e.to_string())?);
                }
            } else {
                print!("{}", table(&sessions, now_ms()));
            }
        }
        SessionsCommand::Show { id } => {
            let stored = store.history(&id).await.map_err(|e| e.to_string())?;
            print!("{}", show(&stored.state, stored.open_turn.map(|o| o.turn)));
        }
        SessionsCommand::Export { id } => {
            let stored = store.history(&id).await.map_err(|e| e.to_string())?;
            let doc = serde_json::json!({"state": stored.state, "open_turn": stored.open_turn});
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
            );
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ago(now: i64, then: i64) -> String {
    let s = (now - then).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn table(sessions: &[SessionSummary], now: i64) -> String {
    let mut out = String::new();
    if sessions.is_empty() {
        out.push_str("no sessions\n");
        return out;
    }
    let width = sessions
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let agent_width = sessions
        .iter()
        .map(|s| s.current.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "{:width$}  {:agent_width$}  TURNS  UPDATED   STATUS",
        "ID", "AGENT"
    );
    for s in sessions {
        let status = match (&s.leased_by, s.open_turn, s.ended) {
            (Some(w), Some(t), _) => format!("turn {t} running on {w}"),
            (None, Some(t), _) => format!("turn {t} interrupted (finished on the next message)"),
            (_, None, true) => "ended".to_string(),
            _ => "idle".to_string(),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:agent_width$}  {:>5}  {:8}  {status}",
            s.id,
            s.current,
            s.turns,
            ago(now, s.updated_at)
        );
    }
    out
}

fn show(state: &SessionState, open_turn: Option<u32>) -> String {
    let mut out = String::new();
    let c = &state.counters;
    let _ = writeln!(out, "session {}", state.id);
    let _ = writeln!(out, "  agent: {}", state.current);
    if !state.escalation_stack.is_empty() {
        let _ = writeln!(
            out,
            "  escalation stack: {}",
            state.escalation_stack.join(" > ")
        );
    }
    let _ = writeln!(out, "  turns: {}", state.turn);
    if let Some(t) = open_turn {
        let _ = writeln!(
            out,
            "  turn {t} was interrupted; the next message finishes it first"
        );
    }
    if let Some(h) = &state.paused_for {
        let _ = writeln!(out, "  waiting for: {h}");
    }
    if state.ended {
        let _ = writeln!(out, "  ended");
    }
    if !state.vars.is_empty() {
        let vars: Vec<String> = state.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  vars: {}", vars.join(", "));
    }
    let _ = writeln!(
        out,
        "  {} LLM calls, {} tool calls, {} handoffs, {} escalations, {} tokens, ${:.6}",
        c.llm_calls,
        c.tool_calls,
        c.handoffs,
        c.escalations,
        c.prompt_tokens + c.completion_tokens,
        c.cost
    );
    let _ = writeln!(out, "transcript:");
    for entry in &state.transcript {
        let m = &entry.message;
        match m.role {
            Role::Tool => {
                let _ = writeln!(
                    out,
                    "  [{}] {} <- tool: {}",
                    entry.turn,
                    entry.by,
                    m.content.as_deref().unwrap_or_default()
                );
            }
            _ => {
                for call in &m.tool_calls {
                    let _ = writeln!(
                        out,
                        "  [{}] {} -> {}({})",
                        entry.turn, entry.by, call.name, call.arguments
                    );
                }
                if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
                    let _ = writeln!(out, "  [{}] {}: {}", entry.turn, entry.by, text);
                }
            }
        }
    }
    let moves: Vec<String> = state
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Handoff { from, to, .. } => Some(format!("{from} -> {to}")),
            Event::Escalation { from, to, .. } => Some(format!("{from} ^ {to}")),
            Event::Returned { from, to, .. } => Some(format!("{to} <- {from}")),
            Event::Fallback { from, to, .. } => Some(format!("{from} ~> {to}")),
            _ => None,
        })
        .collect();
    if !moves.is_empty() {
        let _ = writeln!(out, "transfers: {}", moves.join(", "));
    }
    // What went wrong, turn by turn: errors, ceilings and corrections.
    let mut turn = 0;
    let mut problems = Vec::new();
    for e in &state.events {
        match e {
            Event::TurnStarted { turn: t, .. } => turn = *t,
            Event::Error { agent, message } => {
                problems.push(format!("  [{turn}] error in {agent}: {message}"))
            }
            Event::CeilingHit {
                agent,
                ceiling,
                limit,
            } => problems.push(format!(
                "  [{turn}] ceiling {ceiling} = {limit} hit in {agent}"
            )),
            Event::Correction { agent, reason, .. } => {
                problems.push(format!("  [{turn}] {agent} corrected: {reason}"))
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "problems:");
        for p in problems {
            let _ = writeln!(out, "{p}");
        }
    }
    out
}
