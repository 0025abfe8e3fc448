//! One turn: run the current rung until it replies, pauses for a human or the session ends,
//! following handoffs, escalations and fallbacks, and enforcing every ceiling.

use crate::backend::{ChatMessage, ChatRequest, Role, TokenUsage, ToolCall, ToolSpec};
use crate::event::Event;
use crate::schema;
use crate::session::{Awaiting, Entry, Inbound, SessionState};
use crate::store::{Journal, RecordedCall, StoreError};
use crate::tools::{self, ToolContext};
use crate::Inner;
use ladder_check::program::{Agent, Condition, ContextPolicy, Program, ScriptStep};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How a rung's work ended.
enum Outcome {
    /// The rung answered the user; the turn is over.
    Replied,
    /// Control moved to another rung, which runs next in the same turn.
    Moved,
    /// A human endpoint was reached or a script waits for input.
    Paused,
    Ended,
    /// The rung failed; its fallback runs.
    Failed {
        reason: String,
        sla: bool,
    },
}

/// Consulted agents may consult others, to this depth.
const MAX_CONSULT_DEPTH: u32 = 3;

pub(crate) struct Turn<'a> {
    rt: &'a Inner,
    state: &'a mut SessionState,
    tx: &'a UnboundedSender<Event>,
    steps: u32,
    tool_calls: u32,
    handoffs: u32,
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

impl<'a> Turn<'a> {
    pub(crate) fn new(
        rt: &'a Inner,
        state: &'a mut SessionState,
        tx: &'a UnboundedSender<Event>,
    ) -> Self {
        Turn {
            rt,
            state,
            tx,
            steps: 0,
            tool_calls: 0,
            handoffs: 0,
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
        });
    }

    pub(crate) async fn run(mut self, text: String) {
        let started = Instant::now();
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
        } else if let Some(human) = self.state.paused_for.clone() {
            let from = self.state.current.clone();
            self.emit(Event::HumanNeeded { human, from });
        } else {
            self.state.rung_turns += 1;
            let resume = self.state.awaiting.take();
            if let Some(a) = &resume {
                self.state
                    .vars
                    .insert(a.var.clone(), Value::String(text.clone()));
            }
            self.run_rungs(resume).await;
        }
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
            self.emit(Event::AgentActive {
                agent: current.clone(),
                kind: kind.into(),
            });
            let outcome = match kind {
                "agent" => self.run_agent_with_sla(&current).await,
                "script" => {
                    let start = match resume.take() {
                        Some(a) if a.script == current => a.step + 1,
                        _ => 0,
                    };
                    self.run_script(&current, start)
                }
                _ => {
                    self.state.paused_for = Some(current.clone());
                    let from = self
                        .state
                        .inbound
                        .from
                        .clone()
                        .unwrap_or_else(|| current.clone());
                    self.emit(Event::HumanNeeded {
                        human: current.clone(),
                        from,
                    });
                    Outcome::Paused
                }
            };
            match outcome {
                Outcome::Replied | Outcome::Paused | Outcome::Ended => return,
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
                    self.transfer(&current, &to, None, Value::Null, None, ContextPolicy::Full);
                    // A fallback rung gets a fresh allowance of steps and tool calls: the ceiling
                    // that stopped the failed rung is reported, and the fallback can still answer.
                    self.steps = 0;
                    self.tool_calls = 0;
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
        };
    }

    async fn run_agent_with_sla(&mut self, name: &str) -> Outcome {
        let sla = program(self.rt).agents[name]
            .sla
            .as_ref()
            .map(|s| s.seconds);
        match sla {
            Some(seconds) => match tokio::time::timeout(
                Duration::from_secs_f64(seconds),
                self.run_agent(name, 0),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    self.emit(Event::CeilingHit {
                        agent: name.into(),
                        ceiling: "sla".into(),
                        limit: seconds,
                    });
                    Outcome::Failed {
                        reason: format!("`{name}` missed its SLA of {seconds}s"),
                        sla: true,
                    }
                }
            },
            None => self.run_agent(name, 0).await,
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
            if self.steps >= limits.steps_per_turn {
                return self.ceiling(name, "steps_per_turn", limits.steps_per_turn.into());
            }
            if let Some(budget) = prog.budget.cost_per_session {
                if self.state.counters.cost >= budget {
                    return self.ceiling(name, "cost_per_session", budget);
                }
            }
            let request = self.request(name, agent, consult_depth > 0);
            self.steps += 1;
            self.llm_calls += 1;
            self.state.counters.llm_calls += 1;
            let response = {
                let Some(backend) = rt.backend.as_ref() else {
                    return Outcome::Failed {
                        reason: "no model backend is configured".into(),
                        sla: false,
                    };
                };
                let tx = self.tx.clone();
                let agent_name = name.to_string();
                let quiet = consult_depth > 0;
                let sink = move |text: &str| {
                    if !quiet {
                        let _ = tx.send(Event::TextDelta {
                            agent: agent_name.clone(),
                            text: text.to_string(),
                        });
                    }
                };
                backend.complete(&request, &sink).await
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    return Outcome::Failed {
                        reason: e.to_string(),
                        sla: false,
                    }
                }
            };
            self.account(&agent.model, response.usage);
            if response.tool_calls.is_empty() {
                let text = response.content.unwrap_or_default();
                if agent.router && consult_depth == 0 {
                    corrections += 1;
                    let reason =
                        "a router must hand off with a transfer_to_* tool, not reply".to_string();
                    self.emit(Event::Correction {
                        agent: name.into(),
                        reason: reason.clone(),
                        attempt: corrections,
                    });
                    if corrections > limits.corrections_per_step {
                        return self.ceiling(
                            name,
                            "corrections_per_step",
                            limits.corrections_per_step.into(),
                        );
                    }
                    self.push(name, ChatMessage::assistant(Some(text), Vec::new()));
                    self.push("ladder", ChatMessage::user(format!("(ladder) {reason}.")));
                    continue;
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
            self.push(
                name,
                ChatMessage::assistant(response.content.clone(), response.tool_calls.clone()),
            );
            let mut corrected = false;
            let calls = response.tool_calls;
            for (i, call) in calls.iter().enumerate() {
                match self.act(name, agent, call, consult_depth).await {
                    Act::Done(result) => self.push(name, ChatMessage::tool(&call.id, result)),
                    Act::Correct(reason) => {
                        corrected = true;
                        corrections += 1;
                        self.emit(Event::Correction {
                            agent: name.into(),
                            reason: reason.clone(),
                            attempt: corrections,
                        });
                        self.push(
                            name,
                            ChatMessage::tool(&call.id, format!("error: {reason}")),
                        );
                    }
                    Act::Leave(outcome) => {
                        // Every call gets an answer, so that the transcript stays a valid chat.
                        for rest in &calls[i..] {
                            let note = if rest.id == call.id {
                                "done: control transferred"
                            } else {
                                "skipped: control was transferred"
                            };
                            self.push(name, ChatMessage::tool(&rest.id, note));
                        }
                        return outcome;
                    }
                }
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

    fn account(&mut self, model: &str, usage: TokenUsage) {
        self.usage.prompt_tokens += usage.prompt_tokens;
        self.usage.completion_tokens += usage.completion_tokens;
        self.state.counters.prompt_tokens += usage.prompt_tokens;
        self.state.counters.completion_tokens += usage.completion_tokens;
        if let Some(m) = program(self.rt).models.get(model) {
            let cost = (usage.prompt_tokens as f64 * m.input_per_mtok.unwrap_or(0.0)
                + usage.completion_tokens as f64 * m.output_per_mtok.unwrap_or(0.0))
                / 1e6;
            self.cost += cost;
            self.state.counters.cost += cost;
        }
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
        if let Some(target) = call.name.strip_prefix("transfer_to_") {
            if consult_depth == 0 {
                if let Some(edge) = agent.handoffs.iter().find(|h| h.target == target) {
                    let mut schema = prog
                        .intents
                        .get(&edge.intent)
                        .map(|i| i.payload.clone())
                        .unwrap_or_else(|| json!({"type": "object"}));
                    if edge.context == ContextPolicy::Summary {
                        add_param(&mut schema, "summary", json!({"type": "string"}), true);
                    }
                    if let Err(e) = schema::validate(&arguments, &schema) {
                        return Act::Correct(e);
                    }
                    if self.handoffs >= prog.limits.handoffs_per_turn {
                        return Act::Leave(self.ceiling(
                            name,
                            "handoffs_per_turn",
                            prog.limits.handoffs_per_turn.into(),
                        ));
                    }
                    self.handoffs += 1;
                    self.state.counters.handoffs += 1;
                    let mut payload = arguments;
                    let summary = payload
                        .as_object_mut()
                        .and_then(|m| m.remove("summary"))
                        .and_then(|s| s.as_str().map(String::from));
                    self.emit(Event::Handoff {
                        from: name.into(),
                        to: target.into(),
                        intent: Some(edge.intent.clone()),
                        payload: payload.clone(),
                    });
                    self.transfer(
                        name,
                        target,
                        Some(edge.intent.clone()),
                        payload,
                        summary,
                        edge.context.clone(),
                    );
                    return Act::Leave(Outcome::Moved);
                }
            }
        }
        if let Some(target) = call.name.strip_prefix("escalate_to_") {
            if consult_depth == 0 {
                if let Some(edge) = agent.escalations.iter().find(|e| e.target == target) {
                    if let Some(condition) = &edge.condition {
                        if !self.holds(condition, &arguments) {
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
                    self.transfer(name, target, None, arguments, reason, ContextPolicy::Full);
                    return Act::Leave(Outcome::Moved);
                }
            }
        }
        if let Some(target) = call.name.strip_prefix("consult_") {
            if agent.consults.iter().any(|c| c == target)
                && prog.agents.contains_key(target)
                && consult_depth < MAX_CONSULT_DEPTH
            {
                let Some(question) = arguments
                    .get("question")
                    .and_then(Value::as_str)
                    .map(String::from)
                else {
                    return Act::Correct("arguments.question is required".into());
                };
                return self.consult(name, target, question, consult_depth).await;
            }
        }
        // A checked program declares every listed tool; a hand-built one may not.
        if let Some(tool) = agent
            .tools
            .iter()
            .any(|t| t == &call.name)
            .then(|| prog.tools.get(&call.name))
            .flatten()
        {
            if let Err(e) = schema::validate(&arguments, &tool.parameters) {
                return Act::Correct(e);
            }
            if self.tool_calls >= prog.limits.tool_calls_per_turn {
                return Act::Leave(self.ceiling(
                    name,
                    "tool_calls_per_turn",
                    prog.limits.tool_calls_per_turn.into(),
                ));
            }
            self.tool_calls += 1;
            self.state.counters.tool_calls += 1;
            self.call_index += 1;
            self.emit(Event::ToolCall {
                agent: name.into(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                arguments: arguments.clone(),
            });
            let key = format!("{}-{}-{}", self.state.id, self.state.turn, self.call_index);
            let (result, ok) = match self.recall(&key, &call.name).await {
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
                        allow_exec: self.rt.allow_exec,
                        vars: &self.state.vars,
                        idempotency_key: key.clone(),
                    };
                    let map = arguments.as_object().cloned().unwrap_or_default();
                    let (result, ok) = match tools::run(&call.name, tool, map, &cx).await {
                        Ok(v) => (v, true),
                        Err(e) => (json!({"error": e}), false),
                    };
                    if let Some(j) = self.journal {
                        let recorded = RecordedCall {
                            tool: call.name.clone(),
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
            };
            self.emit(Event::ToolResult {
                agent: name.into(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                result: result.clone(),
                ok,
            });
            return Act::Done(result.to_string());
        }
        let mut allowed: Vec<String> = self
            .tool_specs(agent, consult_depth > 0)
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

    /// The recorded result of this call from an earlier attempt at the turn, if any.
    async fn recall(&self, key: &str, tool: &str) -> Result<Option<RecordedCall>, StoreError> {
        let Some(j) = self.journal else {
            return Ok(None);
        };
        Ok(j.store.recall(&j.id, key).await?.filter(|r| r.tool == tool))
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
        let eval =
            |c: &ladder_check::program::Comparison| compare(&signal(&c.signal), &c.op, &c.value);
        let mut result = eval(&condition.first);
        for (logic, c) in &condition.rest {
            result = match logic {
                ladder_check::program::Logic::And => result && eval(c),
                ladder_check::program::Logic::Or => result || eval(c),
            };
        }
        result
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
                    self.handoffs += 1;
                    self.state.counters.handoffs += 1;
                    self.emit(Event::Handoff {
                        from: name.into(),
                        to: target.clone(),
                        intent: None,
                        payload: Value::Null,
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

    fn fill(&self, template: &str, agent: &str, transcript: &dyn Fn() -> String) -> String {
        let scope = crate::template::Scope {
            ladder: &program(self.rt).name,
            agent,
            turn: self.state.turn,
            transcript,
            summary: self.state.inbound.summary.as_deref(),
            intent: self.state.inbound.intent.as_deref(),
            payload: &self.state.inbound.payload,
            vars: &self.state.vars,
        };
        crate::template::fill(template, &scope)
    }

    /// The messages an agent sees: its inbound context policy applied to the history before it
    /// received control, then everything since.
    fn history(&self, consulted: bool) -> Vec<ChatMessage> {
        let entries = &self.state.transcript;
        if consulted {
            return entries.iter().map(|e| e.message.clone()).collect();
        }
        let since = self.state.inbound.since.min(entries.len());
        let (before, after) = entries.split_at(since);
        let last_user = |slice: &[Entry]| {
            slice
                .iter()
                .rposition(|e| e.message.role == Role::User && e.by == "user")
        };
        let mut kept: Vec<ChatMessage> = match &self.state.inbound.context {
            ContextPolicy::Full => before.iter().map(|e| e.message.clone()).collect(),
            ContextPolicy::NoTools => before
                .iter()
                .filter(|e| e.message.role != Role::Tool)
                .filter_map(|e| {
                    let mut m = e.message.clone();
                    m.tool_calls.clear();
                    (m.content.as_deref().is_some_and(|c| !c.is_empty())
                        || m.role != Role::Assistant)
                        .then_some(m)
                })
                .collect(),
            ContextPolicy::LastTurns { turns } => {
                let users: Vec<usize> = before
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.by == "user")
                    .map(|(i, _)| i)
                    .collect();
                let from = users
                    .len()
                    .checked_sub(*turns as usize)
                    .map(|k| users[k])
                    .unwrap_or(0);
                before[from..].iter().map(|e| e.message.clone()).collect()
            }
            ContextPolicy::Summary | ContextPolicy::None => {
                let from = last_user(before).unwrap_or(before.len());
                before[from..]
                    .iter()
                    .filter(|e| e.by == "user")
                    .map(|e| e.message.clone())
                    .collect()
            }
        };
        kept.extend(after.iter().map(|e| e.message.clone()));
        kept
    }

    fn request(&self, name: &str, agent: &Agent, consulted: bool) -> ChatRequest {
        let prog = program(self.rt);
        let history = self.history(consulted);
        let transcript_text = || {
            history
                .iter()
                .filter_map(|m| {
                    m.content
                        .as_ref()
                        .map(|c| format!("{:?}: {c}", m.role).to_lowercase())
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let system = self.fill(&agent.prompt, name, &transcript_text);
        let model = prog.models.get(&agent.model);
        let mut messages = Vec::with_capacity(history.len() + 1);
        messages.push(ChatMessage::system(system));
        messages.extend(history.iter().cloned());
        ChatRequest {
            model: self
                .rt
                .model_override
                .clone()
                .or_else(|| model.map(|m| m.name.clone()))
                .unwrap_or_default(),
            agent: name.to_string(),
            messages,
            tools: self.tool_specs(agent, consulted),
            max_tokens: model.and_then(|m| m.max_output_tokens),
            temperature: model.and_then(|m| m.temperature),
            base_url: model.and_then(|m| m.base_url.clone()),
            api_key_env: model.and_then(|m| m.api_key_env.clone()),
            timeout_seconds: model.and_then(|m| m.timeout_seconds),
        }
    }

    /// The functions offered to the model: its tools, then one per declared edge.
    fn tool_specs(&self, agent: &Agent, consulted: bool) -> Vec<ToolSpec> {
        let prog = program(self.rt);
        let mut specs = Vec::new();
        for name in &agent.tools {
            if let Some(tool) = prog.tools.get(name) {
                specs.push(ToolSpec {
                    name: name.clone(),
                    description: tool.description.clone().unwrap_or_default(),
                    parameters: tool.parameters.clone(),
                });
            }
        }
        for target in &agent.consults {
            specs.push(ToolSpec {
                name: format!("consult_{target}"),
                description: format!("Ask `{target}` a question; its answer comes back to you, the caller does not see it."),
                parameters: json!({"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"], "additionalProperties": false}),
            });
        }
        if consulted {
            return specs;
        }
        for edge in &agent.handoffs {
            let intent = prog.intents.get(&edge.intent);
            let mut parameters = intent
                .map(|i| i.payload.clone())
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            if edge.context == ContextPolicy::Summary {
                add_param(
                    &mut parameters,
                    "summary",
                    json!({"type": "string", "description": "A short summary of the conversation for the receiver."}),
                    true,
                );
            }
            let mut description = format!(
                "Hand the conversation over to `{}` for intent `{}`",
                edge.target, edge.intent
            );
            if let Some(d) = intent.and_then(|i| i.description.as_ref()) {
                description.push_str(&format!(": {d}"));
            }
            if let Some(i) = intent.filter(|i| !i.examples.is_empty()) {
                description.push_str(&format!(". Examples: {}", i.examples.join("; ")));
            }
            specs.push(ToolSpec {
                name: format!("transfer_to_{}", edge.target),
                description,
                parameters,
            });
        }
        for edge in &agent.escalations {
            let mut parameters = json!({"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"], "additionalProperties": false});
            let mut description = format!("Escalate the conversation to `{}`", edge.target);
            if let Some(c) = &edge.condition {
                description.push_str(&format!(" (allowed only when {})", condition_text(c)));
                for signal in ["confidence", "sentiment"] {
                    if condition_uses(c, signal) {
                        add_param(&mut parameters, signal, json!({"type": "number"}), true);
                    }
                }
            }
            specs.push(ToolSpec {
                name: format!("escalate_to_{}", edge.target),
                description,
                parameters,
            });
        }
        specs
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

fn add_param(schema: &mut Value, name: &str, param: Value, required: bool) {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("type").or_insert(json!("object"));
        if let Some(props) = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            props.insert(name.to_string(), param);
        }
        if required {
            if let Some(req) = obj
                .entry("required")
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                req.push(json!(name));
            }
        }
    }
}

fn condition_uses(c: &Condition, signal: &str) -> bool {
    c.first.signal == signal || c.rest.iter().any(|(_, x)| x.signal == signal)
}

fn condition_text(c: &Condition) -> String {
    let one = |x: &ladder_check::program::Comparison| format!("{} {} {}", x.signal, x.op, x.value);
    let mut s = one(&c.first);
    for (logic, x) in &c.rest {
        s.push_str(match logic {
            ladder_check::program::Logic::And => " and ",
            ladder_check::program::Logic::Or => " or ",
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
