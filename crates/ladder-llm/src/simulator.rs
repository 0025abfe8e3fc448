//! A deterministic offline model, so that every ladder runs end to end with no endpoint and no
//! key. It routes by matching the user's words against the descriptions (intent names,
//! descriptions and examples) of the `transfer_to_*` functions it is offered, calls the agent's
//! tools once with arguments made from their schemas, and replies with a labelled canned answer.

use async_trait::async_trait;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Role, TokenUsage, ToolCall,
};
use serde_json::{json, Map, Value};

/// The deterministic offline model described above (`--backend sim`).
#[derive(Debug, Clone, Default)]
pub struct Simulator;

const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "you",
    "your",
    "with",
    "that",
    "this",
    "have",
    "has",
    "can",
    "are",
    "was",
    "not",
    "but",
    "about",
    "hand",
    "over",
    "conversation",
    "intent",
    "examples",
    "want",
    "need",
    "please",
    "would",
    "like",
    "what",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// Shared words, with a prefix match for inflections (`booking` ~ `book`).
fn score(user: &[String], description: &str) -> usize {
    let target = words(description);
    user.iter()
        .filter(|u| {
            target.iter().any(|t| {
                t == *u
                    || (t.len() >= 4
                        && u.len() >= 4
                        && (t.starts_with(u.as_str()) || u.starts_with(t.as_str())))
            })
        })
        .count()
}

/// A plausible value for a JSON Schema.
fn sample(schema: &Value, user_text: &str) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut out = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (name, s) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if required.contains(&name.as_str()) {
                    out.insert(name.clone(), sample(s, user_text));
                }
            }
            Value::Object(out)
        }
        Some("array") => json!([]),
        Some("integer") => json!(1),
        Some("number") => json!(0.5),
        Some("boolean") => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("phone") => json!("+1 555 0100"),
            Some("email") => json!("caller@example.com"),
            Some("date") => json!("2026-12-01"),
            Some("date-time") => json!("2026-12-01T09:00:00Z"),
            Some("uri") => json!("https://example.com"),
            _ => json!(user_text),
        },
    }
}

fn is_edge(name: &str) -> bool {
    name.starts_with("transfer_to_")
        || name.starts_with("escalate_to_")
        || name.starts_with("consult_")
}

#[async_trait]
impl Backend for Simulator {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let last_user = request.messages.iter().rposition(|m| m.role == Role::User);
        let user_text = last_user
            .and_then(|i| request.messages[i].content.clone())
            .unwrap_or_default();
        let since_user = &request.messages[last_user.map_or(0, |i| i + 1)..];
        let tool_results: Vec<&str> = since_user
            .iter()
            .filter(|m| m.role == Role::Tool)
            .filter_map(|m| m.content.as_deref())
            .filter(|c| !c.starts_with("done: control transferred") && !c.starts_with("skipped:"))
            .collect();
        let prompt_tokens = request
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| c.len() as u64 / 4 + 1)
            .sum();
        let call = |name: &str, arguments: Value| ChatResponse {
            content: None,
            tool_calls: vec![ToolCall {
                id: format!("sim_{}_{}", request.agent, request.messages.len()),
                name: name.to_string(),
                arguments: arguments.to_string(),
            }],
            usage: TokenUsage {
                prompt_tokens,
                completion_tokens: 12,
                ..Default::default()
            },
            truncated: false,
        };
        if tool_results.is_empty() {
            let corrected = user_text.starts_with("(ladder)");
            let user_words = words(&user_text);
            let best = request
                .tools
                .iter()
                .filter(|t| t.name.starts_with("transfer_to_"))
                .map(|t| {
                    (
                        score(
                            &user_words,
                            &format!("{} {}", t.name.replace('_', " "), t.description),
                        ),
                        t,
                    )
                })
                .filter(|(s, _)| *s > 0 || corrected)
                .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.name.cmp(&a.1.name)));
            if let Some((_, tool)) = best {
                let mut args = sample(&tool.parameters, &user_text);
                if let Some(summary) = args.get_mut("summary") {
                    *summary = json!(format!("The caller said: {user_text}"));
                }
                return Ok(call(&tool.name, args));
            }
            if let Some(tool) = request.tools.iter().find(|t| !is_edge(&t.name)) {
                return Ok(call(&tool.name, sample(&tool.parameters, &user_text)));
            }
        }
        let mut text = format!("(simulated {}) ", request.agent);
        match tool_results.first() {
            Some(result) => text.push_str(&format!("Here is what I found: {result}")),
            None => text.push_str(&format!("I can help with that: \"{user_text}\".")),
        }
        for piece in text.split_inclusive(' ') {
            on_text.text(piece);
        }
        Ok(ChatResponse {
            content: Some(text.clone()),
            tool_calls: Vec::new(),
            usage: TokenUsage {
                prompt_tokens,
                completion_tokens: text.len() as u64 / 4 + 1,
                ..Default::default()
            },
            truncated: false,
        })
    }

    fn name(&self) -> &str {
        "sim"
    }
}
