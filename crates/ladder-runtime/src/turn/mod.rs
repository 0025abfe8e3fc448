//! One turn: run the current rung until it replies, pauses for a human or the session ends,
//! following handoffs, escalations and fallbacks, and enforcing every ceiling.

mod fused;
mod request;

use crate::backend::{
    BackendError, ChatMessage, ChatRequest, Role, TokenUsage, ToolCall, ToolChoice, ToolSpec,
};
use crate::event::Event;
use crate::schema;
use crate::session::{Awaiting, Entry, Inbound, PendingApproval, SessionState};
use crate::store::{Journal, RecordedCall, StoreError};
use crate::tools::{self, ToolContext};
use crate::Inner;
use crate::Prices;
use ladder_program::{
    Agent, Condition, ContextPolicy, EscalationEdge, HandoffEdge, Program, ScriptStep, Tool,
};
use request::estimate_tokens;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How a rung's work ended.
enum Outcome {
    /// The rung answered the user; the turn is over.
    Replied,
    /// Control moved to another rung, which runs next in the same turn.
    Moved,
    /// A human endpoint was reached or a script waits for input.
    Paused,
    /// A tool call waits for a person's approval: the turn ends here and continues once it is
    /// decided ([`Turn::decide`]).
    AwaitingApproval,
    Ended,
    /// The rung failed; its fallback runs.
    Failed {
        reason: String,
        sla: bool,
    },
}

/// After the turn deadline, the time a model-free fallback (a script, a person) gets.
const DEADLINE_GRACE_SECONDS: u64 = 5;

/// The temperature of an agent's requests when neither the model nor the command line sets one
/// (routing requests default to 0).
const DEFAULT_TEMPERATURE: f64 = 0.2;

pub(crate) struct Turn<'a> {
    rt: &'a Inner,
    state: &'a mut SessionState,
    tx: &'a crate::event::Sender,
    /// Counters of the whole turn, as `turn_ended` reports them.
    steps: u32,
    tool_calls: u32,
    handoffs: u32,
    /// Where the current rung's allowance of steps and tool calls started: a fallback rung gets
    /// a fresh allowance without the turn's counters forgetting what came before.
    steps_base: u32,
    tool_calls_base: u32,
    /// The model call in flight, accounted by estimate if it never reports usage.
    pending: Option<Pending>,
    /// The model repeated a call it has the result of: its next request offers no function.
    answer_now: bool,
    /// Guarded functions refused in this turn, no longer offered.
    refused: Vec<String>,
    /// Set when the current rung's reply starts reaching the caller (its SLA is then met).
    committed: Arc<AtomicBool>,
    llm_calls: u32,
    usage: TokenUsage,
    cost: f64,
    /// Counts tool calls of this turn, for idempotency keys.
    call_index: u32,
    /// Where completed tool calls are recorded and, on a re-run, found again.
    journal: Option<&'a Journal>,
}

fn program(rt: &Inner) -> &Program {
    &rt.program
}

/// A function the model called, decoded once against what the agent is offered at this depth.
/// A checked program declares every listed tool; a hand-built one may not (then `Unknown`).
enum Call<'p> {
    Transfer(&'p HandoffEdge),
    /// A fused route: two handoffs decided by one call.
    Route(fused::Route<'p>),
    /// `return_to_X`, where `X` is the agent that handed the conversation down.
    Return(String),
    Escalate(&'p EscalationEdge),
    Consult(&'p str),
    Tool(&'p Tool),
    Unknown,
}

fn decode<'p>(
    prog: &'p Program,
    agent: &'p Agent,
    delegator: Option<&str>,
    function: &str,
    consult_depth: u32,
    handoffs_left: u32,
) -> Call<'p> {
    let top = consult_depth == 0;
    if let (Some(target), Some(delegator)) = (function.strip_prefix("return_to_"), delegator) {
        if top && agent.returns && target == delegator {
            return Call::Return(target.to_string());
        }
    }
    if let Some(target) = function.strip_prefix("transfer_to_").filter(|_| top) {
        if let Some(edge) = agent.handoffs.iter().find(|h| h.target == target) {
            return Call::Transfer(edge);
        }
        if let Some(route) = fused::routes(prog, agent, handoffs_left)
            .into_iter()
            .find(|r| r.second.target == target)
        {
            return Call::Route(route);
        }
    }
    if let Some(target) = function.strip_prefix("escalate_to_").filter(|_| top) {
        if let Some(edge) = agent.escalations.iter().find(|e| e.target == target) {
            return Call::Escalate(edge);
        }
    }
    if let Some(target) = function.strip_prefix("consult_") {
        if let Some(target) = agent.consults.iter().find(|c| *c == target) {
            if prog.agents.contains_key(target) && consult_depth < prog.limits.consult_depth {
                return Call::Consult(target);
            }
        }
    }
    match agent
        .tools
        .iter()
        .any(|t| t == function)
        .then(|| prog.tools.get(function))
    {
        Some(Some(tool)) => Call::Tool(tool),
        _ => Call::Unknown,
    }
}

impl<'a> Turn<'a> {
    pub(crate) fn new(
        rt: &'a Inner,
        state: &'a mut SessionState,
        tx: &'a crate::event::Sender,
    ) -> Self {
        Turn {
            rt,
            state,
            tx,
            steps: 0,
            tool_calls: 0,
            handoffs: 0,
            steps_base: 0,
            tool_calls_base: 0,
            pending: None,
            answer_now: false,
            refused: Vec::new(),
            committed: Arc::new(AtomicBool::new(false)),
            llm_calls: 0,
            usage: TokenUsage::default(),
            cost: 0.0,
            call_index: 0,
            journal: None,
        }
    }

    pub(crate) fn journal(mut self, journal: &'a Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    fn emit(&mut self, event: Event) {
        trace_event(&event);
        // A receiver that went away (the caller stopped listening) must not stop the turn: the
        // event is still logged with the session.
        let _ = self.tx.send(event.clone());
        self.state.events.push(event);
    }

    fn push(&mut self, by: &str, message: ChatMessage) {
        self.state.transcript.push(Entry {
            turn: self.state.turn,
            by: by.to_string(),
            message,
            rejected: false,
        });
    }

    /// Runs a turn for the user's `text`, in a `ladder.turn` trace span.
    pub(crate) async fn run(mut self, text: String) {
        let span = self.turn_span(self.state.turn + 1);
        self.run_untraced(text).instrument(span).await
    }

    /// The span of turn `turn`: its session and ladder (docs/runtime.md, "Traces").
    fn turn_span(&self, turn: u32) -> tracing::Span {
        if tracing_on() {
            tracing::info_span!(
                "ladder.turn",
                otel.name = %format!("turn {turn}"),
                ladder.name = %self.rt.program.name,
                ladder.session = %self.state.id,
                // Signed: OpenTelemetry's integers are i64 (u64 arrive as text).
                ladder.turn = i64::from(turn),
                ladder.rung = %self.state.current,
            )
        } else {
            tracing::Span::none()
        }
    }

    async fn run_untraced(&mut self, text: String) {
        // An empty message is not a turn: nothing is sent to a model and nothing changes.
        if text.trim().is_empty() {
            self.emit(Event::Error {
                agent: self.state.current.clone(),
                message: "the message is empty; nothing was sent".into(),
            });
            let turn = self.state.turn;
            self.emit(Event::TurnEnded {
                turn,
                usage: TokenUsage::default(),
                llm_calls: 0,
                tool_calls: 0,
                handoffs: 0,
                cost: 0.0,
                latency_ms: 0,
            });
            return;
        }
        let started = Instant::now();
        // The ladder that ran the turn (a migrated session takes the new stamp).
        self.state.ladder = Some(self.rt.stamp.clone());
        self.state.turn += 1;
        self.state.counters.turns += 1;
        let turn = self.state.turn;
        self.emit(Event::TurnStarted {
            session: self.state.id.clone(),
            turn,
            text: text.clone(),
        });
        self.push("user", ChatMessage::user(text.clone()));
        if self.state.ended {
            self.emit(Event::Error {
                agent: self.state.current.clone(),
                message: "the session has ended".into(),
            });
        } else if let Some(pending) = self.state.pending_approval.as_mut() {
            // The rung waits for a decision: the message joins the conversation after the
            // call's result, and no model is asked meanwhile.
            self.state.transcript.pop();
            pending.held.push(text.clone());
            let event = approval_requested(pending);
            self.emit(event);
        } else if let Some(human) = self.state.paused_for.clone() {
            // The message is the person's to answer (it is in the transcript they read).
            let from = self.state.current.clone();
            let event = crate::human::needed(self.rt, self.state, &human, from);
            self.emit(event);
        } else if let Some(limit) = program(self.rt)
            .limits
            .turns_per_session
            .filter(|n| self.state.counters.turns > *n)
        {
            // The declared ceiling on a session's turns: the session ends, nothing is sent.
            let agent = self.state.current.clone();
            self.emit(Event::CeilingHit {
                agent,
                ceiling: "turns_per_session".into(),
                limit: limit.into(),
            });
            self.state.ended = true;
            self.emit(Event::SessionEnded {
                by: "turns_per_session".into(),
            });
        } else {
            self.state.rung_turns += 1;
            let resume = self.state.awaiting.take();
            if let Some(a) = &resume {
                match self.collected(a, &text) {
                    Ok(value) => {
                        self.state.vars.insert(a.var.clone(), value);
                    }
                    Err(question) => {
                        // Not what was asked for: ask again, keep waiting, store nothing.
                        self.state.awaiting = resume.clone();
                        let script = a.script.clone();
                        let var = a.var.clone();
                        self.push(
                            &script,
                            ChatMessage::assistant(Some(question.clone()), Vec::new()),
                        );
                        self.emit(Event::Collect {
                            script,
                            var,
                            question: Some(question),
                        });
                        self.end_turn(turn, started);
                        return;
                    }
                }
            }
            self.run_rungs_in_time(resume).await;
        }
        self.end_turn(turn, started);
    }

    /// The current rung takes the conversation up without a new user message (a person
    /// released it and asked it to continue): a turn of its own, not counted against
    /// `turns_per_session`. Nothing happens while a person or an approval holds the session.
    pub(crate) async fn resume(mut self) {
        let span = self.turn_span(self.state.turn + 1);
        self.resume_untraced().instrument(span).await
    }

    async fn resume_untraced(&mut self) {
        if self.state.ended
            || self.state.paused_for.is_some()
            || self.state.pending_approval.is_some()
        {
            return;
        }
        let started = Instant::now();
        self.state.ladder = Some(self.rt.stamp.clone());
        self.state.turn += 1;
        let turn = self.state.turn;
        self.run_rungs_in_time(None).await;
        self.end_turn(turn, started);
    }

    /// The id of the tool approval the session waits for, if any.
    pub(crate) fn pending_approval(&self) -> Option<&str> {
        self.state.pending_approval.as_ref().map(|p| p.id.as_str())
    }

    /// Continues the turn a tool approval stopped: the decision is the call's outcome (an
    /// approved call runs, under the idempotency key it was asked with; a rejected one is an
    /// error the model reads), the user's held messages follow, and the agent goes on. A new
    /// turn number, so that its further tool calls have keys of their own; not counted against
    /// `turns_per_session` (the user did not write).
    pub(crate) async fn decide(mut self, approved: bool, operator: String, note: Option<String>) {
        let span = self.turn_span(self.state.turn + 1);
        self.decide_untraced(approved, operator, note)
            .instrument(span)
            .await
    }

    async fn decide_untraced(&mut self, approved: bool, operator: String, note: Option<String>) {
        let Some(pending) = self.state.pending_approval.take() else {
            return;
        };
        let started = Instant::now();
        self.state.ladder = Some(self.rt.stamp.clone());
        self.state.turn += 1;
        let turn = self.state.turn;
        self.emit(Event::ApprovalDecided {
            id: pending.id.clone(),
            tool: pending.tool.clone(),
            human: pending.human.clone(),
            operator: operator.clone(),
            approved,
            note: note.clone(),
        });
        let agent = pending.agent.clone();
        let tool = program(self.rt).tools.get(&pending.tool);
        let (result, ok) = match (approved, tool) {
            (true, Some(tool)) => {
                let recalled = self.recall(&pending.id, &pending.tool).await;
                self.execute(
                    &pending.id,
                    &pending.tool,
                    tool,
                    pending.arguments.clone(),
                    recalled,
                )
                .await
            }
            (true, None) => (
                json!({"error": format!("the ladder has no tool `{}` any more", pending.tool)}),
                false,
            ),
            (false, _) => (
                json!({"error": match &note {
                    Some(n) => format!("{} ({operator}) did not approve this call: {n}", pending.human),
                    None => format!("{} ({operator}) did not approve this call", pending.human),
                }}),
                false,
            ),
        };
        self.emit(Event::ToolResult {
            agent: agent.clone(),
            call_id: pending.call_id.clone(),
            tool: pending.tool.clone(),
            result: result.clone(),
            ok,
        });
        self.push(
            &agent,
            ChatMessage::tool(&pending.call_id, result.to_string()),
        );
        for text in &pending.held {
            self.push("user", ChatMessage::user(text.clone()));
        }
        self.run_rungs_in_time(None).await;
        self.end_turn(turn, started);
    }

    /// Runs the rungs (from a script's `collect` when `resume` says so) under the turn deadline.
    /// Past it, like every ceiling, the rung fails: its fallback takes over if that needs no
    /// model (a script or a person), within a short grace, else the turn ends in an error.
    async fn run_rungs_in_time(&mut self, resume: Option<Awaiting>) {
        let deadline = program(self.rt).limits.turn_deadline_seconds;
        let within =
            tokio::time::timeout(Duration::from_secs_f64(deadline), self.run_rungs(resume)).await;
        if within.is_err() {
            let cause = self.cut_pending();
            let agent = self.state.current.clone();
            self.emit(Event::CeilingHit {
                agent: agent.clone(),
                ceiling: "turn_deadline".into(),
                limit: deadline,
            });
            let reason =
                format!("the turn did not finish within its deadline of {deadline}s{cause}");
            // Like every ceiling, it fails the rung; its fallback takes over if that needs no
            // model (a script or a person), within a short grace, else the turn ends in an
            // error.
            let fallback = self
                .fallback_of(&agent, false)
                .filter(|to| !program(self.rt).agents.contains_key(to));
            match fallback {
                Some(to) => {
                    self.emit(Event::Fallback {
                        from: agent.clone(),
                        to: to.clone(),
                        reason,
                    });
                    self.transfer(&agent, &to, None, Value::Null, None, ContextPolicy::Full);
                    let grace = Duration::from_secs(DEADLINE_GRACE_SECONDS);
                    if tokio::time::timeout(grace, self.run_rungs(None))
                        .await
                        .is_err()
                    {
                        self.emit(Event::Error {
                            agent: to,
                            message: format!("the fallback did not finish within {DEADLINE_GRACE_SECONDS}s after the turn deadline"),
                        });
                    }
                }
                None => self.emit(Event::Error {
                    agent,
                    message: reason,
                }),
            }
        }
    }

    fn end_turn(&mut self, turn: u32, started: Instant) {
        self.forget_rejected();
        let latency_ms = started.elapsed().as_millis() as u64;
        self.state.counters.elapsed_ms += latency_ms;
        let event = Event::TurnEnded {
            turn,
            usage: self.usage,
            llm_calls: self.llm_calls,
            tool_calls: self.tool_calls,
            handoffs: self.handoffs,
            cost: self.cost,
            latency_ms,
        };
        self.emit(event);
    }

    /// The value a script's `collect` keeps of the caller's answer, or the question to ask again.
    fn collected(&self, awaiting: &Awaiting, text: &str) -> Result<Value, String> {
        let step = program(self.rt)
            .scripts
            .get(&awaiting.script)
            .and_then(|s| s.steps.get(awaiting.step));
        let Some(ScriptStep::Collect {
            schema, question, ..
        }) = step
        else {
            return Ok(Value::String(text.to_string()));
        };
        crate::collect::extract(text, schema).map_err(|expected| {
            let again = question
                .clone()
                .unwrap_or_else(|| format!("Please give your {}.", awaiting.var.replace('_', " ")));
            format!("Sorry, I need {expected}. {again}")
        })
    }

    /// Runs rungs until one replies, pauses or ends the session, or no fallback is left.
    async fn run_rungs(&mut self, mut resume: Option<Awaiting>) {
        // The graph of fallbacks is acyclic (checked), so this bound is never the reason to stop
        // in a checked ladder; it guards programs built by hand.
        let mut budget = program(self.rt).agents.len()
            + program(self.rt).scripts.len()
            + program(self.rt).humans.len()
            + 8;
        loop {
            if budget == 0 {
                let agent = self.state.current.clone();
                self.emit(Event::Error {
                    agent,
                    message: "too many transfers in one turn".into(),
                });
                return;
            }
            budget -= 1;
            let current = self.state.current.clone();
            let prog = program(self.rt);
            let kind = if prog.agents.contains_key(&current) {
                "agent"
            } else if prog.scripts.contains_key(&current) {
                "script"
            } else if prog.humans.contains_key(&current) {
                "human"
            } else {
                self.emit(Event::Error {
                    agent: current.clone(),
                    message: format!("`{current}` is not a rung of this ladder"),
                });
                return;
            };
            let rung_span = if tracing_on() {
                tracing::info_span!(
                    "ladder.rung",
                    otel.name = %format!("{kind} {current}"),
                    ladder.rung = %current,
                    ladder.rung_kind = kind,
                )
            } else {
                tracing::Span::none()
            };
            let entered = rung_span.clone();
            let _visit = entered.enter();
            self.emit(Event::AgentActive {
                agent: current.clone(),
                kind: kind.into(),
            });
            drop(_visit);
            let outcome = match kind {
                "agent" => {
                    self.run_agent_with_sla(&current)
                        .instrument(rung_span)
                        .await
                }
                "script" => {
                    let _visit = rung_span.enter();
                    let start = match resume.take() {
                        Some(a) if a.script == current => a.step + 1,
                        _ => 0,
                    };
                    self.run_script(&current, start)
                }
                _ => {
                    let _visit = rung_span.enter();
                    self.state.paused_for = Some(current.clone());
                    self.state.hold = Some(crate::human::hold(self.rt, &current));
                    let from = self
                        .state
                        .inbound
                        .from
                        .clone()
                        .unwrap_or_else(|| current.clone());
                    let event = crate::human::needed(self.rt, self.state, &current, from);
                    self.emit(event);
                    Outcome::Paused
                }
            };
            match outcome {
                Outcome::Replied => {
                    self.hand_back_after_reply(&current);
                    return;
                }
                Outcome::Paused | Outcome::Ended | Outcome::AwaitingApproval => return,
                Outcome::Moved => continue,
                Outcome::Failed { reason, sla } => {
                    let Some(to) = self.fallback_of(&current, sla) else {
                        self.emit(Event::Error {
                            agent: current.clone(),
                            message: format!("{reason}; `{current}` has no fallback"),
                        });
                        return;
                    };
                    self.emit(Event::Fallback {
                        from: current.clone(),
                        to: to.clone(),
                        reason,
                    });
                    let note =
                        format!("`{current}` could not continue; you take over the conversation.");
                    self.transfer(&current, &to, None, Value::Null, None, ContextPolicy::Full);
                    self.state.inbound.note = Some(note);
                    // A fallback rung gets a fresh allowance of steps and tool calls: the ceiling
                    // that stopped the failed rung is reported, and the fallback can still answer.
                    self.steps_base = self.steps;
                    self.tool_calls_base = self.tool_calls;
                }
            }
        }
    }

    fn fallback_of(&self, rung: &str, sla: bool) -> Option<String> {
        let agent = program(self.rt).agents.get(rung)?;
        let on_sla = agent.sla.as_ref().and_then(|s| s.otherwise.clone());
        if sla {
            on_sla.or_else(|| agent.fallback.clone())
        } else {
            agent.fallback.clone().or(on_sla)
        }
    }

    fn transfer(
        &mut self,
        from: &str,
        to: &str,
        intent: Option<String>,
        payload: Value,
        summary: Option<String>,
        context: ContextPolicy,
    ) {
        self.state.current = to.to_string();
        self.state.rung_turns = 0;
        self.state.inbound = Inbound {
            from: Some(from.to_string()),
            intent,
            payload,
            summary,
            context,
            since: self.state.transcript.len(),
            note: None,
        };
    }

    /// Runs an agent under its SLA. The SLA bounds the time until the rung commits: its reply
    /// starts streaming to the caller, or control leaves it. A reply already streaming is never
    /// cut by the SLA (the turn deadline bounds it).
    async fn run_agent_with_sla(&mut self, name: &str) -> Outcome {
        let sla = program(self.rt).agents[name]
            .sla
            .as_ref()
            .map(|s| s.seconds);
        let Some(seconds) = sla else {
            return self.run_agent(name, 0).await;
        };
        let committed = Arc::new(AtomicBool::new(false));
        self.committed = committed.clone();
        let finished = {
            let work = self.run_agent(name, 0);
            tokio::pin!(work);
            let deadline = tokio::time::sleep(Duration::from_secs_f64(seconds));
            tokio::pin!(deadline);
            let mut passed = false;
            loop {
                tokio::select! {
                    outcome = &mut work => break Some(outcome),
                    _ = &mut deadline, if !passed => {
                        if committed.load(Ordering::SeqCst) {
                            passed = true;
                        } else {
                            break None;
                        }
                    }
                }
            }
        };
        self.committed = Arc::new(AtomicBool::new(false));
        if let Some(outcome) = finished {
            return outcome;
        }
        let cause = self.cut_pending();
        self.emit(Event::CeilingHit {
            agent: name.into(),
            ceiling: "sla".into(),
            limit: seconds,
        });
        Outcome::Failed {
            reason: format!("`{name}` missed its SLA of {seconds}s{cause}"),
            sla: true,
        }
    }

    /// The model call in flight was cut by a deadline: its usage is estimated, not lost, and the
    /// error it was retrying after, if any, is returned as the cause to name.
    fn cut_pending(&mut self) -> String {
        let Some(p) = self.pending.take() else {
            return String::new();
        };
        let last = p
            .gate
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error
            .take();
        self.account_estimate(p);
        match last {
            Some(e) => format!(" (the model endpoint was failing: {e})"),
            None => String::new(),
        }
    }

    fn ceiling(&mut self, agent: &str, ceiling: &str, limit: f64) -> Outcome {
        self.emit(Event::CeilingHit {
            agent: agent.into(),
            ceiling: ceiling.into(),
            limit,
        });
        Outcome::Failed {
            reason: format!("ceiling {ceiling} = {limit} reached"),
            sla: false,
        }
    }

    /// The agent loop: call the model, act on its tool calls, until it replies or hands over.
    async fn run_agent(&mut self, name: &str, consult_depth: u32) -> Outcome {
        let rt = self.rt;
        let prog = program(rt);
        let agent = &prog.agents[name];
        let limits = &prog.limits;
        let mut corrections = 0u32;
        loop {
            if self.steps - self.steps_base >= limits.steps_per_turn {
                return self.ceiling(name, "steps_per_turn", limits.steps_per_turn.into());
            }
            if let Some(budget) = prog.budget.cost_per_session {
                if self.state.counters.cost >= budget {
                    return self.ceiling(name, "cost_per_session", budget);
                }
            }
            let request = self.request(name, agent, consult_depth);
            self.answer_now = false;
            self.steps += 1;
            self.llm_calls += 1;
            self.state.counters.llm_calls += 1;
            let Some(backend) = rt.backend.as_ref() else {
                return Outcome::Failed {
                    reason: "no model backend is configured".into(),
                    sla: false,
                };
            };
            // Text reaches the caller as it streams, except what the runtime may still refuse:
            // a router's text (it must hand off) and a text that may turn out to be a function
            // call written out (held back until it cannot be one).
            let gate = Arc::new(TextGate::new(agent.router || consult_depth > 0));
            self.pending = Some(Pending {
                model: agent.model.clone(),
                prompt_estimate: estimate_tokens(&request),
                gate: gate.clone(),
            });
            let sink = Stream {
                gate: gate.clone(),
                tx: self.tx.clone(),
                agent: name.to_string(),
                committed: self.committed.clone(),
            };
            let call_span = if tracing_on() {
                tracing::info_span!(
                    "gen_ai.chat",
                    otel.name = %format!("chat {}", request.model),
                    otel.kind = "client",
                    gen_ai.operation.name = "chat",
                    gen_ai.system = %if request.provider.is_empty() { "openai" } else { request.provider.as_str() },
                    gen_ai.request.model = %request.model,
                    gen_ai.request.max_tokens = request.max_tokens.map(|n| n as i64),
                    gen_ai.request.temperature = request.temperature,
                    gen_ai.usage.input_tokens = tracing::field::Empty,
                    gen_ai.usage.output_tokens = tracing::field::Empty,
                    gen_ai.usage.cached_input_tokens = tracing::field::Empty,
                    ladder.agent = %name,
                )
            } else {
                tracing::Span::none()
            };
            let response = backend
                .complete(&request, &sink)
                .instrument(call_span.clone())
                .await;
            if let Ok(r) = &response {
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                call_span.record("gen_ai.usage.input_tokens", n(r.usage.prompt_tokens));
                call_span.record("gen_ai.usage.output_tokens", n(r.usage.completion_tokens));
                call_span.record(
                    "gen_ai.usage.cached_input_tokens",
                    n(r.usage.cached_prompt_tokens),
                );
            }
            let pending = self.pending.take();
            let response = match response {
                Ok(r) => r,
                // The server could not use what the model generated: tell the model, ask again.
                Err(BackendError::Generation(message)) => {
                    self.withdraw(name, &gate);
                    if let Some(p) = pending {
                        self.account_estimate(p);
                    }
                    corrections += 1;
                    let reason =
                        format!("the endpoint could not use the model's answer ({message})");
                    self.emit(Event::Correction {
                        agent: name.into(),
                        reason,
                        attempt: corrections,
                        rejected: None,
                    });
                    if corrections > limits.corrections_per_step {
                        return self.ceiling(
                            name,
                            "corrections_per_step",
                            limits.corrections_per_step.into(),
                        );
                    }
                    // The server refused what the model wrote as a call (a function it was
                    // not offered, in practice): a router is constrained to its functions and
                    // tries again; any other agent answers in plain text this time.
                    let note = if agent.router && consult_depth == 0 {
                        let mut allowed: Vec<String> = self
                            .tool_specs(agent, 0)
                            .into_iter()
                            .map(|t| t.name)
                            .collect();
                        allowed.sort();
                        format!("(ladder) Your last answer could not be read. Call exactly one of these functions: {}.", allowed.join(", "))
                    } else {
                        self.answer_now = true;
                        "(ladder) Your last answer could not be read. Answer the caller in plain text.".to_string()
                    };
                    self.push_rejected("ladder", ChatMessage::user(note));
                    continue;
                }
                Err(e) => {
                    self.withdraw(name, &gate);
                    if let Some(p) = pending {
                        self.account_estimate(p);
                    }
                    return Outcome::Failed {
                        reason: format!("`{name}`: {e}"),
                        sla: false,
                    };
                }
            };
            self.account(&agent.model, response.usage);
            if response.tool_calls.is_empty() {
                let text = response.content.unwrap_or_default();
                // Only a text that begins like one can be a written-out call.
                let written_call = if looks_like_a_call(&text) {
                    written_call(&text, &self.tool_specs(agent, consult_depth))
                } else {
                    None
                };
                let no_functions = request.tools.is_empty();
                let refusal = match &written_call {
                    // It had no functions: it already has the result it needs.
                    Some(function) if no_functions => Some((
                        format!("wrote a call of `{function}` as text instead of answering"),
                        "(ladder) You already have the result you need. Answer the caller now in plain text; do not write function calls.".to_string(),
                    )),
                    Some(function) => Some((
                        format!("wrote a call of `{function}` as text"),
                        "(ladder) Do not write function calls as text: call functions through the tool-calling interface, or answer the caller in plain text.".to_string(),
                    )),
                    None if agent.router && consult_depth == 0 => Some((
                        "a router must hand off with a transfer_to_* tool, not reply".to_string(),
                        "(ladder) You must hand off: call one of your transfer_to_* functions.".to_string(),
                    )),
                    None => None,
                };
                if let Some((reason, note)) = refusal {
                    corrections += 1;
                    self.emit(Event::Correction {
                        agent: name.into(),
                        reason,
                        attempt: corrections,
                        rejected: Some(json!({ "text": text })),
                    });
                    if corrections > limits.corrections_per_step {
                        return self.ceiling(
                            name,
                            "corrections_per_step",
                            limits.corrections_per_step.into(),
                        );
                    }
                    // The refused text is not echoed back: the model would copy it. The note
                    // says what to do instead; it leaves the history when the turn ends.
                    self.answer_now = written_call.is_some() && no_functions;
                    self.push_rejected("ladder", ChatMessage::user(note));
                    continue;
                }
                // Whatever the gate still holds is the end of the reply.
                if let Some(rest) = gate.release() {
                    let _ = self.tx.send(Event::TextDelta {
                        agent: name.into(),
                        text: rest,
                    });
                }
                self.push(name, ChatMessage::assistant(Some(text.clone()), Vec::new()));
                if consult_depth == 0 {
                    self.emit(Event::Reply {
                        agent: name.into(),
                        text,
                    });
                }
                return Outcome::Replied;
            }
            // Arguments that do not parse are never sent back verbatim: servers that render the
            // history into a chat template fail on them, and the model would copy them.
            let calls: Vec<ToolCall> = response
                .tool_calls
                .iter()
                .map(|c| ToolCall {
                    arguments: if parses_as_object(&c.arguments) {
                        c.arguments.clone()
                    } else {
                        "{}".into()
                    },
                    ..c.clone()
                })
                .collect();
            let at = self.state.transcript.len();
            // A router's text is never shown to the caller, so no later rung may read it either.
            let content = response.content.clone().filter(|_| !agent.router);
            self.push(name, ChatMessage::assistant(content, calls));
            let mut corrected = false;
            let mut carried_out = false;
            let mut reasons: Vec<String> = Vec::new();
            for (i, call) in response.tool_calls.iter().enumerate() {
                // In an answer cut by the token limit, the call whose arguments do not parse is
                // the one that was cut; the calls before it are complete.
                let act = if response.truncated && !parses_as_object(&call.arguments) {
                    Act::Correct(format!(
                        "your call of `{}` was cut off by the output token limit; call it again with shorter arguments",
                        call.name
                    ))
                } else {
                    self.act(name, agent, call, consult_depth).await
                };
                match act {
                    Act::Done(result) => {
                        carried_out = true;
                        self.push(name, ChatMessage::tool(&call.id, result))
                    }
                    Act::Correct(reason) => {
                        corrected = true;
                        corrections += 1;
                        self.emit(Event::Correction {
                            agent: name.into(),
                            reason: reason.clone(),
                            attempt: corrections,
                            rejected: Some(
                                json!({"function": call.name, "arguments": call.arguments}),
                            ),
                        });
                        self.push(
                            name,
                            ChatMessage::tool(&call.id, format!("error: {reason}")),
                        );
                        reasons.push(reason);
                    }
                    Act::Leave(Outcome::AwaitingApproval) => {
                        // This call stays (its result comes with the decision); the calls after
                        // it leave the message.
                        self.drop_calls_from(at, i + 1);
                        return Outcome::AwaitingApproval;
                    }
                    Act::Leave(outcome) => {
                        // The calls from this one on are not answered: they leave the message,
                        // so that the transcript stays a valid chat and no receiver ever sees
                        // another rung's transfer call.
                        self.drop_calls_from(at, i);
                        if matches!(outcome, Outcome::Moved) {
                            self.state.inbound.since = self.state.transcript.len();
                        }
                        return outcome;
                    }
                }
            }
            // Nothing was carried out: the refused calls leave the history at once and a note
            // says why (a small model shown its refused call repeats it).
            if corrected && !carried_out {
                self.state.transcript.truncate(at);
                let note = format!(
                    "(ladder) Your function call was not carried out: {}. Call again correctly, or answer the caller in plain text.",
                    reasons.join("; ")
                );
                self.push_rejected("ladder", ChatMessage::user(note));
            }
            if corrected && corrections > limits.corrections_per_step {
                return self.ceiling(
                    name,
                    "corrections_per_step",
                    limits.corrections_per_step.into(),
                );
            }
            if !corrected {
                corrections = 0;
            }
        }
    }

    /// Removes the calls from index `from` on of the assistant message at `at` (and the message,
    /// if nothing is left of it).
    fn drop_calls_from(&mut self, at: usize, from: usize) {
        let Some(entry) = self.state.transcript.get_mut(at) else {
            return;
        };
        entry.message.tool_calls.truncate(from);
        let empty = entry.message.tool_calls.is_empty()
            && entry
                .message
                .content
                .as_deref()
                .is_none_or(|c| c.trim().is_empty());
        if empty {
            self.state.transcript.remove(at);
        }
    }

    /// A model call failed after some of its text reached the caller: that text is not the
    /// answer, and the event stream says so (`withdrawn`), so that surfaces can take it back.
    fn withdraw(&mut self, agent: &str, gate: &TextGate) {
        let shown = gate.shown();
        if !shown.is_empty() {
            self.emit(Event::Withdrawn {
                agent: agent.into(),
                text: shown,
            });
        }
    }

    fn push_rejected(&mut self, by: &str, message: ChatMessage) {
        self.push(by, message);
        if let Some(e) = self.state.transcript.last_mut() {
            e.rejected = true;
        }
    }

    /// Drops this turn's refused attempts from the transcript once the turn is over.
    fn forget_rejected(&mut self) {
        let since = self.state.inbound.since;
        let before = self.state.transcript[..since.min(self.state.transcript.len())]
            .iter()
            .filter(|e| e.rejected)
            .count();
        self.state.transcript.retain(|e| !e.rejected);
        self.state.inbound.since = since - before;
    }

    fn account(&mut self, model: &str, usage: TokenUsage) {
        self.usage.add(usage);
        let c = &mut self.state.counters;
        c.prompt_tokens += usage.prompt_tokens;
        c.completion_tokens += usage.completion_tokens;
        c.cached_prompt_tokens += usage.cached_prompt_tokens;
        c.estimated_calls += usage.estimated_calls;
        let prices = match &self.rt.model_override {
            // Another model answers: the ladder's prices are not its prices.
            Some(_) => self.rt.prices_override.unwrap_or_default(),
            None => program(self.rt)
                .models
                .get(model)
                .map(Prices::of)
                .unwrap_or_default(),
        };
        let cost = prices.cost(usage);
        self.cost += cost;
        self.state.counters.cost += cost;
    }

    /// Accounts a call that reported no usage (failed, or cut by an SLA): the prompt estimated
    /// from the request, the completion from the text streamed so far.
    fn account_estimate(&mut self, pending: Pending) {
        let usage = TokenUsage {
            prompt_tokens: pending.prompt_estimate,
            completion_tokens: pending.gate.streamed_chars().div_ceil(4) as u64,
            cached_prompt_tokens: 0,
            estimated_calls: 1,
            cache_write_prompt_tokens: 0,
        };
        self.account(&pending.model, usage);
    }

    async fn act(&mut self, name: &str, agent: &Agent, call: &ToolCall, consult_depth: u32) -> Act {
        let prog = program(self.rt);
        let arguments: Value = match serde_json::from_str(if call.arguments.trim().is_empty() {
            "{}"
        } else {
            &call.arguments
        }) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return Act::Correct(format!(
                    "the arguments of `{}` must be a JSON object",
                    call.name
                ))
            }
            Err(e) => {
                return Act::Correct(format!(
                    "the arguments of `{}` are not valid JSON: {e}",
                    call.name
                ))
            }
        };
        let delegator = self.returnable(agent);
        let handoffs_left = prog.limits.handoffs_per_turn.saturating_sub(self.handoffs);
        match decode(prog, agent, delegator, &call.name, consult_depth, handoffs_left) {
            Call::Transfer(edge) => self.hand_off(name, call, edge, arguments),
            Call::Route(route) => self.route(name, call, route, arguments),
            Call::Return(target) => self.give_back(name, &target, arguments),
            Call::Escalate(edge) => self.escalate(name, call, edge, arguments),
            Call::Consult(target) => self.ask(name, target, arguments, consult_depth).await,
            // The approval's wait ends the turn, which a consult cannot do.
            Call::Tool(tool) if tool.approval.is_some() && consult_depth > 0 => Act::Correct(format!(
                "`{}` needs a person's approval, and a consulted agent cannot wait for it; answer without it",
                call.name
            )),
            Call::Tool(tool) => self.run_tool(name, call, tool, arguments).await,
            Call::Unknown => {
                let mut allowed: Vec<String> = self
                    .tool_specs(agent, consult_depth)
                    .into_iter()
                    .map(|t| t.name)
                    .collect();
                allowed.sort();
                Act::Correct(format!(
                    "`{}` is not a tool you can call here; you can call: {}",
                    call.name,
                    allowed.join(", ")
                ))
            }
        }
    }

    /// A `transfer_to_X` call: validate the intent's payload, count the handoff, move.
    fn hand_off(
        &mut self,
        name: &str,
        call: &ToolCall,
        edge: &HandoffEdge,
        arguments: Value,
    ) -> Act {
        let schema = fused::edge_schema(program(self.rt), edge);
        let arguments = match conforming(call, arguments, &schema) {
            Ok(a) => a,
            Err(act) => return act,
        };
        if let Some(over) = self.over_handoffs(name, 1) {
            return over;
        }
        self.move_down(name, edge, arguments, false);
        Act::Leave(Outcome::Moved)
    }

    /// A fused route's call: both edges' payloads validated, two handoffs counted, and control
    /// moved down both edges as if the rung routed through had made the second call itself.
    fn route(
        &mut self,
        name: &str,
        call: &ToolCall,
        route: fused::Route<'_>,
        arguments: Value,
    ) -> Act {
        let prog = program(self.rt);
        let schema = fused::route_schema(prog, route);
        let arguments = match conforming(call, arguments, &schema) {
            Ok(a) => a,
            Err(act) => return act,
        };
        let (first, second) = fused::split(prog, route, arguments);
        for (edge, payload) in [(route.first, &first), (route.second, &second)] {
            if let Err(e) = schema::validate(payload, &fused::edge_schema(prog, edge)) {
                return Act::Correct(with_example(e, &call.name, &schema));
            }
        }
        // Offered only with two handoffs left; a model that calls it anyway hits the ceiling.
        if let Some(over) = self.over_handoffs(name, 2) {
            return over;
        }
        self.move_down(name, route.first, first, false);
        self.move_down(route.via(), route.second, second, true);
        Act::Leave(Outcome::Moved)
    }

    /// The rung fails on `handoffs_per_turn` when fewer than `needed` handoffs are left in the
    /// turn.
    fn over_handoffs(&mut self, name: &str, needed: u32) -> Option<Act> {
        let limit = program(self.rt).limits.handoffs_per_turn;
        if self.handoffs + needed <= limit {
            return None;
        }
        Some(Act::Leave(self.ceiling(
            name,
            "handoffs_per_turn",
            limit.into(),
        )))
    }

    /// Control moves from `name` down `edge` with a validated `payload` (its `summary`, if any,
    /// taken out): the handoff is counted and reported, the delegation stack grows, and the
    /// receiver is told who handed over, for which intent, with what.
    fn move_down(&mut self, name: &str, edge: &HandoffEdge, mut payload: Value, fused: bool) {
        let target = edge.target.as_str();
        self.handoffs += 1;
        self.state.counters.handoffs += 1;
        let summary = payload
            .as_object_mut()
            .and_then(|m| m.remove("summary"))
            .and_then(|s| s.as_str().map(String::from));
        self.emit(Event::Handoff {
            from: name.into(),
            to: target.into(),
            intent: Some(edge.intent.clone()),
            payload: payload.clone(),
            fused,
        });
        let mut note = format!(
            "`{name}` handed this conversation over to you for intent `{}`",
            edge.intent
        );
        if payload.as_object().is_some_and(|m| !m.is_empty()) {
            note.push_str(&format!(" with {payload}"));
        }
        if let Some(s) = &summary {
            note.push_str(&format!(". Summary: {s}"));
        }
        note.push_str(". You now answer the caller.");
        // Where a `return` of the receiver (or of a rung below it) comes back to.
        self.state.delegators.push(name.to_string());
        self.transfer(
            name,
            target,
            Some(edge.intent.clone()),
            payload,
            summary,
            edge.context.clone(),
        );
        self.state.inbound.note = Some(note);
    }

    /// The innermost delegator, if it hands off to the current rung itself: where control goes
    /// back to. A rung reached by fallback or escalation does not return past the agent that
    /// handed off to it, so returns follow exactly the edges `check` knows.
    fn delegator(&self) -> Option<&'a str> {
        let prog = program(self.rt);
        let current = self.state.current.as_str();
        let (name, agent) = prog
            .agents
            .get_key_value(self.state.delegators.last()?.as_str())?;
        agent
            .handoffs
            .iter()
            .any(|h| h.target == current)
            .then_some(name.as_str())
    }

    /// The agent the current rung may `return` to.
    fn returnable(&self, agent: &Agent) -> Option<&'a str> {
        self.delegator().filter(|_| agent.returns)
    }

    /// Control goes back up to the innermost delegator `to`: the stack pops, `returned` is
    /// reported, and `to` is told `note`.
    fn hand_back(&mut self, from: &str, to: &str, summary: String, note: String) {
        self.state.delegators.pop();
        self.emit(Event::Returned {
            from: from.into(),
            to: to.into(),
            summary: summary.clone(),
        });
        self.transfer(
            from,
            to,
            None,
            json!({ "summary": summary }),
            Some(summary),
            ContextPolicy::Full,
        );
        self.state.inbound.note = Some(note);
    }

    /// `owns turn`: after the agent's reply, control goes back to the agent that handed it the
    /// conversation, for the next turn. It happens after the turn's work, so it is not counted
    /// against `handoffs_per_turn`.
    fn hand_back_after_reply(&mut self, current: &str) {
        if !program(self.rt)
            .agents
            .get(current)
            .is_some_and(|a| a.owns_turn)
        {
            return;
        }
        let Some(to) = self.delegator() else {
            return;
        };
        let reply = self
            .turn_events()
            .filter_map(|e| match e {
                Event::Reply { agent, text } if agent == current => Some(text.clone()),
                _ => None,
            })
            .last()
            .unwrap_or_default();
        let note = format!(
            "`{current}` answered the caller and handed the conversation back to you (it owns one turn at a time): {reply}"
        );
        self.hand_back(current, to, reply, note);
    }

    /// A `return_to_X` call: control goes back to the agent that handed it down, counted like a
    /// handoff (so `check`'s worst case covers it).
    fn give_back(&mut self, name: &str, target: &str, arguments: Value) -> Act {
        let Some(summary) = arguments
            .get("summary")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Act::Correct("arguments.summary is required".into());
        };
        if let Some(over) = self.over_handoffs(name, 1) {
            return over;
        }
        self.handoffs += 1;
        self.state.counters.handoffs += 1;
        let note = format!(
            "`{name}` handed the conversation back to you: {summary}. You now answer the caller."
        );
        self.hand_back(name, target, summary, note);
        Act::Leave(Outcome::Moved)
    }

    /// An `escalate_to_X` call: its guard must hold, and the escalation stack has a depth.
    fn escalate(
        &mut self,
        name: &str,
        call: &ToolCall,
        edge: &EscalationEdge,
        arguments: Value,
    ) -> Act {
        let prog = program(self.rt);
        let target = edge.target.as_str();
        if let Some(condition) = &edge.condition {
            if !self.holds(condition, &arguments) {
                self.refused.push(call.name.clone());
                return Act::Correct(format!(
                    "escalating to `{target}` is only allowed when {}",
                    condition_text(condition)
                ));
            }
        }
        let depth = self.state.escalation_stack.len() as u32;
        if depth >= prog.limits.escalation_depth {
            return Act::Leave(self.ceiling(
                name,
                "escalation_depth",
                prog.limits.escalation_depth.into(),
            ));
        }
        let reason = arguments
            .get("reason")
            .and_then(Value::as_str)
            .map(String::from);
        self.state.counters.escalations += 1;
        self.emit(Event::Escalation {
            from: name.into(),
            to: target.into(),
            reason: reason.clone(),
        });
        if !prog.humans.contains_key(target) {
            self.state.escalation_stack.push(name.to_string());
        }
        let note = match &reason {
            Some(r) => format!(
                "`{name}` escalated this conversation to you: {r}. You now answer the caller."
            ),
            None => {
                format!("`{name}` escalated this conversation to you. You now answer the caller.")
            }
        };
        self.transfer(name, target, None, arguments, reason, ContextPolicy::Full);
        self.state.inbound.note = Some(note);
        Act::Leave(Outcome::Moved)
    }

    /// A `consult_X` call: a question to another agent, counted as a tool call.
    async fn ask(&mut self, name: &str, target: &str, arguments: Value, consult_depth: u32) -> Act {
        let Some(question) = arguments
            .get("question")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Act::Correct("arguments.question is required".into());
        };
        // A consult is a tool call: it counts against `tool_calls_per_turn`, so that
        // the worst case `check` prints covers it (docs/language.md, "What check proves").
        if let Some(ceiling) = self.take_tool_call(name) {
            return Act::Leave(ceiling);
        }
        self.consult(name, target, question, consult_depth).await
    }

    /// A call of one of the agent's tools: validate, de-duplicate, count, run (or recall from
    /// the journal), report.
    async fn run_tool(
        &mut self,
        name: &str,
        call: &ToolCall,
        tool: &Tool,
        arguments: Value,
    ) -> Act {
        let mut arguments = arguments;
        schema::drop_unknown(&mut arguments, &tool.parameters);
        if let Err(e) = schema::validate(&arguments, &tool.parameters) {
            return Act::Correct(with_example(e, &call.name, &tool.parameters));
        }
        // Small models often repeat a call once they have its result: the same call in the
        // same turn is not run again (nor counted); the model is told to use the result.
        if let Some(result) = self.earlier_result(name, &call.name, &arguments) {
            self.answer_now = true;
            return Act::Done(result.to_string());
        }
        if let Some(ceiling) = self.take_tool_call(name) {
            return Act::Leave(ceiling);
        }
        self.call_index += 1;
        self.emit(Event::ToolCall {
            agent: name.into(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: arguments.clone(),
        });
        let key = format!("{}-{}-{}", self.state.id, self.state.turn, self.call_index);
        let recalled = self.recall(&key, &call.name).await;
        if let (Some(human), Ok(None)) = (&tool.approval, &recalled) {
            // Not decided yet (a decided call that ran is on record and is not asked again).
            let pending = PendingApproval {
                id: key.clone(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                arguments: arguments.clone(),
                agent: name.to_string(),
                human: human.clone(),
                requested_ms: crate::human::now_ms(),
                held: Vec::new(),
            };
            self.emit(approval_requested(&pending));
            self.state.pending_approval = Some(pending);
            return Act::Leave(Outcome::AwaitingApproval);
        }
        let (result, ok) = self
            .execute(&key, &call.name, tool, arguments.clone(), recalled)
            .await;
        self.emit(Event::ToolResult {
            agent: name.into(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            result: result.clone(),
            ok,
        });
        Act::Done(result.to_string())
    }

    /// Runs a tool call under its idempotency key, or takes its result from the journal.
    async fn execute(
        &mut self,
        key: &str,
        name: &str,
        tool: &Tool,
        arguments: Value,
        recalled: Result<Option<RecordedCall>, StoreError>,
    ) -> (Value, bool) {
        let key = key.to_string();
        match recalled {
            Ok(Some(recorded)) => (recorded.result, recorded.ok),
            // Without the record we cannot tell whether the call already happened: running
            // it again could repeat a side effect, so the call fails instead.
            Err(e) => (
                json!({"error": format!("the session store is unavailable: {e}")}),
                false,
            ),
            Ok(None) => {
                let cx = ToolContext {
                    http: &self.rt.http,
                    host_tools: &self.rt.host_tools,
                    mcp: self.rt.mcp.as_deref(),
                    allow_exec: self.rt.allow_exec,
                    vars: &self.state.vars,
                    idempotency_key: key.clone(),
                };
                let map = arguments.as_object().cloned().unwrap_or_default();
                let tool_span = if tracing_on() {
                    tracing::info_span!(
                        "gen_ai.execute_tool",
                        otel.name = %format!("execute_tool {name}"),
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = %name,
                        ladder.tool.ok = tracing::field::Empty,
                    )
                } else {
                    tracing::Span::none()
                };
                let ran = tools::run(name, tool, map, &cx)
                    .instrument(tool_span.clone())
                    .await;
                tool_span.record("ladder.tool.ok", ran.is_ok());
                let (result, ok) = match ran {
                    Ok(v) => (v, true),
                    Err(e) => (json!({"error": e}), false),
                };
                if let Some(j) = self.journal {
                    let recorded = RecordedCall {
                        tool: name.to_string(),
                        arguments: arguments.clone(),
                        result: result.clone(),
                        ok,
                    };
                    // The call happened; failing to record it only loses the protection
                    // against a repeat if this worker dies before the turn commits.
                    let _ = j.store.record(&j.id, &key, &recorded).await;
                }
                (result, ok)
            }
        }
    }

    /// The recorded result of this call from an earlier attempt at the turn, if any.
    async fn recall(&self, key: &str, tool: &str) -> Result<Option<RecordedCall>, StoreError> {
        let Some(j) = self.journal else {
            return Ok(None);
        };
        Ok(j.store.recall(&j.id, key).await?.filter(|r| r.tool == tool))
    }

    /// Takes one call of the rung's allowance of `tool_calls_per_turn` (a tool call or a
    /// consult), or returns the ceiling that stops the rung when none is left.
    fn take_tool_call(&mut self, agent: &str) -> Option<Outcome> {
        let limit = program(self.rt).limits.tool_calls_per_turn;
        if self.tool_calls - self.tool_calls_base >= limit {
            return Some(self.ceiling(agent, "tool_calls_per_turn", limit.into()));
        }
        self.tool_calls += 1;
        self.state.counters.tool_calls += 1;
        None
    }

    async fn consult(&mut self, from: &str, to: &str, question: String, depth: u32) -> Act {
        self.emit(Event::Consult {
            from: from.into(),
            to: to.into(),
            question: question.clone(),
        });
        // The consulted agent works on a scratch transcript: the question in, its answer out.
        let saved_transcript = std::mem::take(&mut self.state.transcript);
        let saved_inbound = std::mem::take(&mut self.state.inbound);
        self.push(from, ChatMessage::user(question));
        let outcome = Box::pin(self.run_agent(to, depth + 1)).await;
        let answer = self
            .state
            .transcript
            .iter()
            .rev()
            .find(|e| e.message.role == Role::Assistant && e.message.content.is_some())
            .and_then(|e| e.message.content.clone())
            .unwrap_or_default();
        self.state.transcript = saved_transcript;
        self.state.inbound = saved_inbound;
        match outcome {
            Outcome::Replied => {
                self.emit(Event::ConsultAnswer {
                    from: from.into(),
                    to: to.into(),
                    answer: answer.clone(),
                });
                Act::Done(answer)
            }
            Outcome::Failed { reason, .. } => Act::Done(
                json!({"error": format!("`{to}` could not answer: {reason}")}).to_string(),
            ),
            _ => Act::Done(json!({"error": format!("`{to}` did not answer")}).to_string()),
        }
    }

    /// Evaluates an escalation guard on runtime signals, session variables and the model's
    /// self-reported `confidence`/`sentiment` arguments.
    fn holds(&self, condition: &Condition, arguments: &Value) -> bool {
        let signal = |name: &str| -> Value {
            match name {
                "turns" => json!(self.state.rung_turns),
                "tool_errors" => json!(self.tool_errors_in_turn()),
                "corrections" => json!(self.corrections_in_turn()),
                "confidence" | "sentiment" => arguments.get(name).cloned().unwrap_or(Value::Null),
                var => self.state.vars.get(var).cloned().unwrap_or(Value::Null),
            }
        };
        let eval = |c: &ladder_program::Comparison| compare(&signal(&c.signal), &c.op, &c.value);
        let mut result = eval(&condition.first);
        for (logic, c) in &condition.rest {
            result = match logic {
                ladder_program::Logic::And => result && eval(c),
                ladder_program::Logic::Or => result || eval(c),
            };
        }
        result
    }

    /// The result of the same successful call by `agent` earlier in this turn.
    fn earlier_result(&self, agent: &str, tool: &str, arguments: &Value) -> Option<Value> {
        let mut call_id = None;
        for event in self.turn_events() {
            match event {
                Event::ToolCall {
                    agent: a,
                    tool: t,
                    arguments: args,
                    call_id: id,
                } if a == agent && t == tool && args == arguments => call_id = Some(id),
                Event::ToolResult {
                    call_id: id,
                    result,
                    ok: true,
                    ..
                } if Some(id) == call_id => return Some(result.clone()),
                _ => {}
            }
        }
        None
    }

    fn tool_errors_in_turn(&self) -> u32 {
        self.turn_events()
            .filter(|e| matches!(e, Event::ToolResult { ok: false, .. }))
            .count() as u32
    }

    fn corrections_in_turn(&self) -> u32 {
        self.turn_events()
            .filter(|e| matches!(e, Event::Correction { .. }))
            .count() as u32
    }

    fn turn_events(&self) -> impl Iterator<Item = &Event> {
        let start = self
            .state
            .events
            .iter()
            .rposition(|e| matches!(e, Event::TurnStarted { .. }))
            .unwrap_or(0);
        self.state.events[start..].iter()
    }

    fn run_script(&mut self, name: &str, start: usize) -> Outcome {
        let prog = program(self.rt);
        let steps = &prog.scripts[name].steps;
        for (i, step) in steps.iter().enumerate().skip(start) {
            match step {
                ScriptStep::Say { text } => {
                    let text = self.fill(text, name, &|| String::new());
                    self.push(name, ChatMessage::assistant(Some(text.clone()), Vec::new()));
                    self.emit(Event::Reply {
                        agent: name.into(),
                        text,
                    });
                }
                ScriptStep::Collect { var, question, .. } => {
                    if let Some(q) = question {
                        self.push(name, ChatMessage::assistant(Some(q.clone()), Vec::new()));
                    }
                    self.emit(Event::Collect {
                        script: name.into(),
                        var: var.clone(),
                        question: question.clone(),
                    });
                    self.state.awaiting = Some(Awaiting {
                        script: name.into(),
                        step: i,
                        var: var.clone(),
                    });
                    return Outcome::Paused;
                }
                ScriptStep::Handoff { target } => {
                    // Not limited by `handoffs_per_turn`: a script is the model-free safety net
                    // (its hand-over to a person must not fail), and the graph bounds its
                    // handoffs (docs/language.md, "What check proves").
                    self.handoffs += 1;
                    self.state.counters.handoffs += 1;
                    self.emit(Event::Handoff {
                        from: name.into(),
                        to: target.clone(),
                        intent: None,
                        payload: Value::Null,
                        fused: false,
                    });
                    self.transfer(name, target, None, Value::Null, None, ContextPolicy::Full);
                    return Outcome::Moved;
                }
                ScriptStep::End => break,
            }
        }
        self.state.ended = true;
        self.emit(Event::SessionEnded { by: name.into() });
        Outcome::Ended
    }
}

enum Act {
    /// The call was carried out; its result goes back to the model.
    Done(String),
    /// The call was not allowed; the reason goes back to the model, which may retry.
    Correct(String),
    /// Control leaves this rung.
    Leave(Outcome),
}

fn condition_uses(c: &Condition, signal: &str) -> bool {
    c.first.signal == signal || c.rest.iter().any(|(_, x)| x.signal == signal)
}

fn condition_text(c: &Condition) -> String {
    let one = |x: &ladder_program::Comparison| format!("{} {} {}", x.signal, x.op, x.value);
    let mut s = one(&c.first);
    for (logic, x) in &c.rest {
        s.push_str(match logic {
            ladder_program::Logic::And => " and ",
            ladder_program::Logic::Or => " or ",
        });
        s.push_str(&one(x));
    }
    s
}

/// `left op right`: numerically when both are numbers, else only `==`/`!=` hold.
pub(crate) fn compare(left: &Value, op: &str, right: &Value) -> bool {
    if let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) {
        return match op {
            "<" => a < b,
            "<=" => a <= b,
            ">" => a > b,
            ">=" => a >= b,
            "==" => a == b,
            _ => a != b,
        };
    }
    match op {
        "==" => left == right,
        "!=" => left != right,
        _ => false,
    }
}

/// A schema error with the shape of a good call: `arguments.day is required (expected
/// arguments like {"day": "<date>"})`.
/// A call's arguments without keys the schema does not declare, if they conform; else the
/// correction to send.
fn conforming(call: &ToolCall, mut arguments: Value, schema: &Value) -> Result<Value, Act> {
    schema::drop_unknown(&mut arguments, schema);
    match schema::validate(&arguments, schema) {
        Ok(()) => Ok(arguments),
        Err(e) => Err(Act::Correct(with_example(e, &call.name, schema))),
    }
}

fn with_example(error: String, _function: &str, schema: &Value) -> String {
    format!("{error} (expected arguments like {})", example(schema))
}

fn example(schema: &Value) -> Value {
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return options.first().cloned().unwrap_or(Value::Null);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut out = serde_json::Map::new();
            for (k, v) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if required.contains(&k.as_str()) {
                    out.insert(k.clone(), example(v));
                }
            }
            Value::Object(out)
        }
        Some("array") => json!([example(schema.get("items").unwrap_or(&Value::Null))]),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some(f) => json!(format!("<{f}>")),
            None => json!("<text>"),
        },
    }
}

fn parses_as_object(arguments: &str) -> bool {
    serde_json::from_str::<Value>(arguments).is_ok_and(|v| v.is_object())
}

fn looks_like_a_call(text: &str) -> bool {
    matches!(
        text.trim_start().chars().next(),
        Some('{' | '[' | '<' | '`')
    )
}

/// When a text answer is a call of one of the `offered` functions written out (a bare
/// `{"name": .., "arguments": ..}`, in a code fence or in `<tool_call>` tags, as models do
/// when a server does not parse their calls), the function's name.
fn written_call(text: &str, offered: &[ToolSpec]) -> Option<String> {
    let mut t = text.trim();
    for (open, close) in [
        ("<tool_call>", "</tool_call>"),
        ("```json", "```"),
        ("```", "```"),
    ] {
        if let Some(inner) = t.strip_prefix(open) {
            t = inner.strip_suffix(close).unwrap_or(inner).trim();
        }
    }
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    let value: Value = serde_json::from_str(t).ok()?;
    let first = match &value {
        Value::Array(items) => items.first()?,
        v => v,
    };
    let name = first
        .get("name")
        .or_else(|| first.get("function").and_then(|f| f.get("name")))
        .and_then(Value::as_str)?;
    offered
        .iter()
        .any(|spec| spec.name == name)
        .then(|| name.to_string())
}

/// The text sink of one model call: what the gate lets through goes out as `text_delta`.
struct Stream {
    gate: Arc<TextGate>,
    tx: crate::event::Sender,
    agent: String,
    committed: Arc<AtomicBool>,
}

impl crate::backend::TextSink for Stream {
    fn text(&self, piece: &str) -> bool {
        match self.gate.push(piece) {
            Some(shown) => {
                self.committed.store(true, Ordering::SeqCst);
                let _ = self.tx.send(Event::TextDelta {
                    agent: self.agent.clone(),
                    text: shown,
                });
                true
            }
            None => false,
        }
    }

    fn restart(&self) {
        self.gate.restart();
    }

    fn retrying(&self, error: &BackendError) {
        self.gate
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = Some(error.to_string());
    }
}

/// The model call in flight.
struct Pending {
    model: String,
    prompt_estimate: u64,
    gate: Arc<TextGate>,
}

/// Decides which streamed text reaches the caller. A quiet gate (a router, whose text is always
/// refused, or a consulted agent, whose answer goes to its caller) shows nothing. Otherwise text
/// streams as it comes, unless it begins like a function call written out (`{`, `[`, `<`, a
/// code fence): then it is held until the answer is complete, and shown only if it is a reply.
struct TextGate {
    quiet: bool,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    held: String,
    open: bool,
    streamed: usize,
    /// What reached the caller.
    shown: String,
    /// The error of the last failed attempt, while the backend retries.
    last_error: Option<String>,
}

impl TextGate {
    fn new(quiet: bool) -> Self {
        TextGate {
            quiet,
            state: Mutex::new(GateState::default()),
        }
    }

    /// Takes a streamed piece; returns what may be shown now.
    fn push(&self, text: &str) -> Option<String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.streamed += text.chars().count();
        if self.quiet {
            return None;
        }
        if s.open {
            s.shown.push_str(text);
            return Some(text.to_string());
        }
        s.held.push_str(text);
        let start = s.held.trim_start();
        match start.chars().next() {
            None => None,
            Some('{' | '[' | '<' | '`') => None,
            Some(_) => {
                s.open = true;
                let out = std::mem::take(&mut s.held);
                s.shown.push_str(&out);
                Some(out)
            }
        }
    }

    fn shown(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shown
            .clone()
    }

    /// The answer is a reply: what is still held may be shown.
    fn release(&self) -> Option<String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.quiet || s.held.is_empty() {
            return None;
        }
        s.open = true;
        Some(std::mem::take(&mut s.held))
    }

    /// A retry begins: what was held belonged to the failed attempt.
    fn restart(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.held.clear();
    }

    fn streamed_chars(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .streamed
    }
}

/// Whether anything collects traces (a `tracing` subscriber is installed): without one, no
/// span or span event is built at all.
fn tracing_on() -> bool {
    tracing::dispatcher::has_been_set()
}

/// A span event for each transfer of control, ceiling and hand-over, with its fields (never what
/// a model or a user wrote: no payloads, reasons or summaries).
fn trace_event(event: &Event) {
    if !tracing_on() {
        return;
    }
    match event {
        Event::Handoff {
            from, to, intent, ..
        } => tracing::info!(
            ladder.from = %from,
            ladder.to = %to,
            ladder.intent = intent.as_deref().unwrap_or(""),
            "handoff"
        ),
        Event::Escalation { from, to, .. } => {
            tracing::info!(ladder.from = %from, ladder.to = %to, "escalation")
        }
        Event::Returned { from, to, .. } => {
            tracing::info!(ladder.from = %from, ladder.to = %to, "returned")
        }
        Event::Fallback { from, to, .. } => {
            tracing::info!(ladder.from = %from, ladder.to = %to, "fallback")
        }
        Event::CeilingHit {
            agent,
            ceiling,
            limit,
        } => tracing::info!(
            ladder.agent = %agent,
            ladder.ceiling = %ceiling,
            ladder.limit = *limit,
            "ceiling_hit"
        ),
        Event::Correction { agent, attempt, .. } => {
            tracing::info!(ladder.agent = %agent, ladder.attempt = i64::from(*attempt), "correction")
        }
        Event::HumanNeeded { human, from, .. } => {
            tracing::info!(ladder.human = %human, ladder.from = %from, "human_needed")
        }
        Event::ApprovalRequested { tool, human, .. } => {
            tracing::info!(ladder.tool = %tool, ladder.human = %human, "approval_requested")
        }
        Event::Error { agent, .. } => tracing::info!(ladder.agent = %agent, "error"),
        _ => {}
    }
}

/// The `approval_requested` event of a pending approval.
fn approval_requested(p: &PendingApproval) -> Event {
    Event::ApprovalRequested {
        id: p.id.clone(),
        agent: p.agent.clone(),
        tool: p.tool.clone(),
        arguments: p.arguments.clone(),
        human: p.human.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::request::lean_schema;
    use super::*;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: Arc::new(json!({"type": "object"})),
        }
    }

    #[test]
    fn a_call_written_as_text_is_recognised() {
        let offered = [spec("transfer_to_scheduler")];
        for text in [
            r#"{"name": "transfer_to_scheduler", "arguments": {}}"#,
            "```json\n{\"name\": \"transfer_to_scheduler\", \"arguments\": {}}\n```",
            "<tool_call>\n{\"name\": \"transfer_to_scheduler\"}\n</tool_call>",
            r#"[{"name": "transfer_to_scheduler", "arguments": {}}]"#,
        ] {
            assert_eq!(
                written_call(text, &offered).as_deref(),
                Some("transfer_to_scheduler"),
                "{text}"
            );
        }
        assert_eq!(written_call(r#"{"name": "other"}"#, &offered), None);
        assert_eq!(written_call("Booked for Monday.", &offered), None);
    }

    #[test]
    fn lean_schemas_keep_what_constrains() {
        let mut s = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {}, "required": [], "additionalProperties": false}}, "required": ["a"], "additionalProperties": false});
        lean_schema(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"]})
        );
    }

    #[test]
    fn the_gate_holds_what_may_be_a_call() {
        let gate = TextGate::new(false);
        assert_eq!(gate.push("  "), None);
        assert_eq!(gate.push("Hello"), Some("  Hello".into()));
        assert_eq!(gate.push(" there"), Some(" there".into()));
        let gate = TextGate::new(false);
        assert_eq!(gate.push("{\"name\""), None);
        assert_eq!(gate.release(), Some("{\"name\"".into()));
        let quiet = TextGate::new(true);
        assert_eq!(quiet.push("text"), None);
        assert_eq!(quiet.release(), None);
        assert_eq!(quiet.streamed_chars(), 4);
    }
}
