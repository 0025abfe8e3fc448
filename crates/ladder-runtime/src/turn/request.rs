//! Prompt and request assembly: the system prompt with its templates filled, the history a
//! rung is shown (by its context policy), and the functions it is offered at this point of the
//! turn.

use super::*;

impl Turn<'_> {
    pub(super) fn fill(
        &self,
        template: &str,
        agent: &str,
        transcript: &dyn Fn() -> String,
    ) -> String {
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
    pub(super) fn history(&self, consulted: bool) -> Vec<ChatMessage> {
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

    pub(super) fn request(&self, name: &str, agent: &Agent, consult_depth: u32) -> ChatRequest {
        let consulted = consult_depth > 0;
        let prog = program(self.rt);
        let history = self.history(consulted);
        let transcript_text = || {
            history
                .iter()
                .filter_map(|m| {
                    let role = match m.role {
                        Role::System => "system",
                        Role::User => "user",
                        Role::Assistant => "assistant",
                        Role::Tool => "tool",
                    };
                    m.content.as_ref().map(|c| format!("{role}: {c}"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut system = self.fill(&agent.prompt, name, &transcript_text);
        if let Some(note) = self.state.inbound.note.as_ref().filter(|_| !consulted) {
            system.push_str("\n\n(ladder) ");
            system.push_str(note);
        }
        let model = prog.models.get(&agent.model);
        // After a repeated call the model gets no functions: it has what it needs to answer.
        let tools = if self.answer_now {
            Vec::new()
        } else {
            self.tool_specs(agent, consult_depth)
        };
        let routing = agent.router && !consulted && !tools.is_empty();
        let mut messages = Vec::with_capacity(history.len() + 1);
        messages.push(ChatMessage::system(system));
        if self.answer_now {
            let (rest, results) = without_calls(history);
            if let Some(ChatMessage {
                content: Some(system),
                ..
            }) = messages.first_mut()
            {
                if results.is_empty() {
                    system.push_str(
                        "\n\n(ladder) Answer the caller's last message now, in plain text.",
                    );
                } else {
                    system.push_str("\n\n(ladder) You already called functions in this conversation; their results:\n");
                    system.push_str(&results);
                    system.push_str(
                        "Answer the caller's last message now, in plain text, using these results.",
                    );
                }
            }
            messages.extend(rest);
        } else {
            messages.extend(history);
        }
        ChatRequest {
            model: self
                .rt
                .model_override
                .clone()
                .or_else(|| model.map(|m| m.name.clone()))
                .unwrap_or_default(),
            agent: name.to_string(),
            messages,
            tool_choice: if routing {
                ToolChoice::Required
            } else {
                ToolChoice::Auto
            },
            tools,
            max_tokens: model.and_then(|m| m.max_output_tokens),
            temperature: Some(
                self.rt
                    .temperature_override
                    .or(model.and_then(|m| m.temperature))
                    .unwrap_or(if routing { 0.0 } else { DEFAULT_TEMPERATURE }),
            ),
            base_url: model.and_then(|m| m.base_url.clone()),
            api_key_env: model.and_then(|m| m.api_key_env.clone()),
            provider: model.map(|m| m.provider.clone()).unwrap_or_default(),
            timeout_seconds: model.and_then(|m| m.timeout_seconds),
        }
    }

    /// The functions offered to the model: its tools, then one per declared edge.
    /// The functions offered to `agent`, called at `consult_depth` (0: not consulted). Consults
    /// are offered only while the depth allows another one, so that the model is never offered
    /// a function the runtime would refuse.
    pub(super) fn tool_specs(&self, agent: &Agent, consult_depth: u32) -> Vec<ToolSpec> {
        let consulted = consult_depth > 0;
        let prog = program(self.rt);
        let strict = prog
            .models
            .get(&agent.model)
            .is_some_and(|m| m.strict_tool_schemas);
        // Parameter schemas depend only on the program and the model's strictness: each is
        // built once per runtime and shared by every request that offers it (BENCHMARKS.md,
        // "Memory per in-flight session").
        let shared = |key: String, build: &dyn Fn() -> Value| -> Arc<Value> {
            let mut cache = self
                .rt
                .schemas
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache
                .entry(format!("{strict}|{key}"))
                .or_insert_with(|| {
                    let mut schema = build();
                    if !strict {
                        lean_schema(&mut schema);
                    }
                    Arc::new(schema)
                })
                .clone()
        };
        let mut specs = Vec::new();
        for name in &agent.tools {
            if let Some(tool) = prog.tools.get(name) {
                specs.push(ToolSpec {
                    name: name.clone(),
                    description: tool.description.clone().unwrap_or_default(),
                    parameters: shared(format!("tool:{name}"), &|| tool.parameters.clone()),
                });
            }
        }
        let consults = if consult_depth < prog.limits.consult_depth {
            agent.consults.as_slice()
        } else {
            &[]
        };
        for target in consults {
            specs.push(ToolSpec {
                name: format!("consult_{target}"),
                description: format!("Ask `{target}` a question; its answer comes back to you, the caller does not see it."),
                parameters: shared("consult".into(), &|| json!({"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"], "additionalProperties": false})),
            });
        }
        if consulted {
            return specs;
        }
        let summary = |edge: &HandoffEdge| edge.context == ContextPolicy::Summary;
        // Fused routes: the handoffs of a rung this agent may route through, offered here so
        // that one call decides both hops; in place of the handoff to that rung when they are
        // all it could do.
        let left = prog.limits.handoffs_per_turn.saturating_sub(self.handoffs);
        let routes = fused::routes(prog, agent, left);
        for edge in &agent.handoffs {
            if fused::replaced(prog, edge, &routes) {
                continue;
            }
            let key = format!("handoff:{}:{}", edge.intent, summary(edge));
            specs.push(ToolSpec {
                name: format!("transfer_to_{}", edge.target),
                description: handoff_description(prog, edge),
                parameters: shared(key, &|| fused::edge_schema(prog, edge)),
            });
        }
        for route in routes {
            let (first, second) = (route.first, route.second);
            let key = format!(
                "route:{}:{}:{}:{}",
                first.intent,
                summary(first),
                second.intent,
                summary(second)
            );
            specs.push(ToolSpec {
                name: route.function(),
                description: handoff_description(prog, second),
                parameters: shared(key, &|| fused::route_schema(prog, route)),
            });
        }
        for edge in &agent.escalations {
            let name = format!("escalate_to_{}", edge.target);
            // An escalation whose guard cannot hold now is not offered: a small model calls
            // whatever it is shown. Guards on the model's own `confidence`/`sentiment` are
            // offered until refused once in the turn.
            if let Some(c) = &edge.condition {
                let self_reported = ["confidence", "sentiment"]
                    .iter()
                    .any(|s| condition_uses(c, s));
                if self.refused.contains(&name) || (!self_reported && !self.holds(c, &Value::Null))
                {
                    continue;
                }
            }
            let mut description = format!("Escalate the conversation to `{}`", edge.target);
            let mut signals: Vec<&str> = Vec::new();
            if let Some(c) = &edge.condition {
                description.push_str(&format!(" (allowed only when {})", condition_text(c)));
                signals.extend(
                    ["confidence", "sentiment"]
                        .into_iter()
                        .filter(|s| condition_uses(c, s)),
                );
            }
            let parameters = shared(format!("escalate:{}", signals.join(",")), &|| {
                let mut parameters = json!({"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"], "additionalProperties": false});
                for signal in &signals {
                    add_param(&mut parameters, signal, json!({"type": "number"}), true);
                }
                parameters
            });
            specs.push(ToolSpec {
                name,
                description,
                parameters,
            });
        }
        // `return`: back to the agent that handed the conversation down, while there is one.
        if let Some(delegator) = self.returnable(agent).filter(|_| consult_depth == 0) {
            specs.push(ToolSpec {
                name: format!("return_to_{delegator}"),
                description: format!(
                    "Hand the conversation back to `{delegator}`, which handed it to you, once your part is done."
                ),
                parameters: shared("return".into(), &|| json!({
                    "type": "object",
                    "properties": {"summary": {"type": "string", "description": "What you did, for the agent you return to."}},
                    "required": ["summary"],
                    "additionalProperties": false,
                })),
            });
        }
        specs
    }
}

/// What a handoff function is for: the intent's own words and examples (the function's name
/// already says where the conversation goes), else the intent's name.
fn handoff_description(prog: &Program, edge: &HandoffEdge) -> String {
    let intent = prog.intents.get(&edge.intent);
    let mut description = match intent.and_then(|i| i.description.as_ref()) {
        Some(d) => d.clone(),
        None => format!("Hand the conversation over for intent `{}`", edge.intent),
    };
    if let Some(i) = intent.filter(|i| !i.examples.is_empty()) {
        description.push_str(&format!(". Examples: {}", i.examples.join("; ")));
    }
    description
}

pub(super) fn add_param(schema: &mut Value, name: &str, param: Value, required: bool) {
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

/// Keeps only what constrains a model's answer: no `additionalProperties: false` and no empty
/// `required` (small models copy such keywords into their arguments). The runtime still
/// validates arguments against the full schema. A model declared with `tool_schemas: strict`
/// gets the full schema.
pub(super) fn lean_schema(schema: &mut Value) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    if o.get("additionalProperties") == Some(&Value::Bool(false)) {
        o.remove("additionalProperties");
    }
    if o.get("required")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        o.remove("required");
    }
    if let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(lean_schema);
    }
    if let Some(items) = o.get_mut("items") {
        lean_schema(items);
    }
}

/// The history without function calls and their results, and the results as lines of text, for
/// a request that offers no functions: a small model shown call syntax writes more calls
/// instead of answering.
pub(super) fn without_calls(history: Vec<ChatMessage>) -> (Vec<ChatMessage>, String) {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut rest = Vec::with_capacity(history.len());
    let mut results = String::new();
    for m in history {
        match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                names.extend(
                    m.tool_calls
                        .iter()
                        .map(|c| (c.id.clone(), format!("{}({})", c.name, c.arguments))),
                );
                if m.content.as_deref().is_some_and(|c| !c.trim().is_empty()) {
                    rest.push(ChatMessage::assistant(m.content, Vec::new()));
                }
            }
            Role::Tool => {
                let call = m
                    .tool_call_id
                    .as_ref()
                    .and_then(|id| names.iter().find(|(i, _)| i == id))
                    .map_or("a function", |(_, c)| c.as_str());
                results.push_str(&format!(
                    "- {call} returned: {}\n",
                    m.content.unwrap_or_default()
                ));
            }
            _ => rest.push(m),
        }
    }
    (rest, results)
}

/// A rough token count of a request (four characters a token), for calls that report none.
pub(super) fn estimate_tokens(request: &ChatRequest) -> u64 {
    let messages: usize = request
        .messages
        .iter()
        .map(|m| {
            m.content.as_deref().map_or(0, str::len)
                + m.tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len())
                    .sum::<usize>()
                + 4
        })
        .sum();
    let tools: usize = request
        .tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
        .sum();
    (messages + tools).div_ceil(4) as u64
}
