//! Anthropic's Messages API (`POST {base}/messages`), streamed over SSE, for models with
//! `provider: anthropic`.
//!
//! The runtime's chat is in the OpenAI shape; here it becomes the Messages shape: the system
//! prompt goes in `system`, tools are offered with `input_schema`, an assistant's calls are
//! `tool_use` blocks and their results `tool_result` blocks in the next user message, and
//! consecutive messages of one role are merged (the API wants the roles to alternate). Requests
//! are laid out for the prompt cache: tools first, then the system prompt, each ending with a
//! `cache_control` breakpoint, then the history. Usage reads `cache_read_input_tokens` as cached
//! prompt tokens and `cache_creation_input_tokens` as tokens written to the cache.

use crate::http::{self, answer, Post, Retry, Wire};
use async_trait::async_trait;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Role, TokenUsage, ToolCall,
    ToolChoice,
};
use serde_json::{json, Value};
use std::time::Duration;

/// The API version sent in `anthropic-version`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// What a request asks for when the model declares no `max_output_tokens` (the API requires a
/// number).
const DEFAULT_MAX_TOKENS: u64 = 1024;

/// A backend for Anthropic's Messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    retry: Retry,
    timeout: Duration,
}

impl Anthropic {
    /// `base_url` up to the version, e.g. `https://api.anthropic.com/v1`.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Anthropic {
            client: http::client(),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key,
            retry: Retry::default(),
            timeout: Duration::from_secs(60),
        }
    }

    /// From `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com/v1`) and
    /// `ANTHROPIC_API_KEY`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
        Anthropic::new(
            var("ANTHROPIC_BASE_URL").unwrap_or_else(|| "https://api.anthropic.com/v1".into()),
            var("ANTHROPIC_API_KEY"),
        )
    }

    /// Retries with this policy instead of the default (429 and 529 are retried, obeying
    /// `retry-after`).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Timeout of one request, from sending it to the end of the stream.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Messages request for a chat.
    pub fn body(request: &ChatRequest) -> Value {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .filter_map(|m| m.content.as_deref())
            .collect();
        let mut messages: Vec<Value> = Vec::new();
        let mut push = |role: &str, blocks: Vec<Value>| {
            if blocks.is_empty() {
                return;
            }
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(content) = last["content"].as_array_mut() {
                        content.extend(blocks);
                    }
                }
                _ => messages.push(json!({"role": role, "content": blocks})),
            }
        };
        for m in &request.messages {
            let text = m
                .content
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(|t| json!({"type": "text", "text": t}));
            match m.role {
                Role::System => {}
                Role::User => push("user", text.into_iter().collect()),
                Role::Assistant => {
                    let mut blocks: Vec<Value> = text.into_iter().collect();
                    blocks.extend(m.tool_calls.iter().map(|c| {
                        let input: Value = serde_json::from_str(&c.arguments)
                            .ok()
                            .filter(Value::is_object)
                            .unwrap_or_else(|| json!({}));
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                    }));
                    push("assistant", blocks);
                }
                Role::Tool => push(
                    "user",
                    vec![json!({
                        "type": "tool_result",
                        "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                        "content": m.content.clone().unwrap_or_default(),
                        "is_error": m.content.as_deref().is_some_and(|c| c.starts_with("error:") || c.starts_with("{\"error\"")),
                    })],
                ),
            }
        }
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if !system.is_empty() {
            // The stable prefix ends here: everything after it changes from turn to turn.
            body["system"] = json!([{
                "type": "text",
                "text": system.join("\n\n"),
                "cache_control": {"type": "ephemeral"},
            }]);
        }
        if !request.tools.is_empty() {
            let mut tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            if let Some(last) = tools.last_mut() {
                last["cache_control"] = json!({"type": "ephemeral"});
            }
            body["tools"] = Value::Array(tools);
            body["tool_choice"] = match request.tool_choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                // A call that must be made is one call: a router hands off once.
                ToolChoice::Required => json!({"type": "any", "disable_parallel_tool_use": true}),
            };
        }
        if let Some(t) = request.temperature {
            // Anthropic's range is 0 to 1.
            body["temperature"] = json!(t.clamp(0.0, 1.0));
        }
        body
    }
}

#[async_trait]
impl Backend for Anthropic {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let mut post = Post::of(
            &self.client,
            request,
            (&self.base_url, "messages"),
            self.api_key.as_ref(),
            |k| vec![("x-api-key", k)],
            self.timeout,
        );
        post.headers
            .push(("anthropic-version", ANTHROPIC_VERSION.to_string()));
        http::complete::<Messages>(&self.retry, &post, Self::body(request), on_text).await
    }

    fn name(&self) -> &str {
        "anthropic"
    }
}

/// A Messages answer assembled from its events: text and `tool_use` blocks by index, usage from
/// `message_start` and `message_delta`.
#[derive(Default)]
struct Messages {
    /// (kind, id, name, text or partial JSON) per content block.
    blocks: Vec<(String, String, String, String)>,
    usage: TokenUsage,
    stopped: bool,
    truncated: bool,
}

fn usage_of(usage: &Value, into: &mut TokenUsage) {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    // Input the cache served, input written to the cache, and the rest are three counts; the
    // prompt is all of them.
    if let Some(input) = count("input_tokens") {
        let read = count("cache_read_input_tokens").unwrap_or(0);
        let written = count("cache_creation_input_tokens").unwrap_or(0);
        into.prompt_tokens = input + read + written;
        into.cached_prompt_tokens = read;
        into.cache_write_prompt_tokens = written;
    }
    if let Some(output) = count("output_tokens") {
        into.completion_tokens = output;
    }
}

impl Wire for Messages {
    fn add(&mut self, event: &Value) -> Result<Option<String>, BackendError> {
        let index = || event.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match event["type"].as_str().unwrap_or("") {
            "error" => Err(BackendError::Generation(
                event["error"]["message"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| event["error"].to_string()),
            )),
            "message_start" => {
                usage_of(&event["message"]["usage"], &mut self.usage);
                Ok(None)
            }
            "content_block_start" => {
                let i = index();
                if i > 128 {
                    return Err(BackendError::Protocol(format!(
                        "content block index {i} is out of range"
                    )));
                }
                while self.blocks.len() <= i {
                    self.blocks.push(Default::default());
                }
                let block = &event["content_block"];
                let kind = block["type"].as_str().unwrap_or("").to_string();
                let text = block["text"].as_str().unwrap_or("").to_string();
                let streamed = (kind == "text" && !text.is_empty()).then(|| text.clone());
                self.blocks[i] = (
                    kind,
                    block["id"].as_str().unwrap_or("").to_string(),
                    block["name"].as_str().unwrap_or("").to_string(),
                    text,
                );
                Ok(streamed)
            }
            "content_block_delta" => {
                let Some(slot) = self.blocks.get_mut(index()) else {
                    return Err(BackendError::Protocol(
                        "a content block delta before its block started".into(),
                    ));
                };
                let delta = &event["delta"];
                match delta["type"].as_str().unwrap_or("") {
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap_or("");
                        slot.3.push_str(text);
                        Ok((!text.is_empty()).then(|| text.to_string()))
                    }
                    "input_json_delta" => {
                        slot.3
                            .push_str(delta["partial_json"].as_str().unwrap_or(""));
                        Ok(None)
                    }
                    // Thinking and signatures are not the answer.
                    _ => Ok(None),
                }
            }
            "message_delta" => {
                usage_of(&event["usage"], &mut self.usage);
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.truncated |= reason == "max_tokens";
                }
                Ok(None)
            }
            "message_stop" => {
                self.stopped = true;
                Ok(None)
            }
            // `ping`, `content_block_stop`, and events a later API version adds.
            _ => Ok(None),
        }
    }

    fn finished(&self) -> bool {
        self.stopped
    }

    fn finish(self) -> Result<ChatResponse, BackendError> {
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        for (i, (kind, id, name, text)) in self.blocks.into_iter().enumerate() {
            match kind.as_str() {
                "text" => content.push_str(&text),
                "tool_use" => {
                    if name.is_empty() {
                        return Err(BackendError::Protocol(
                            "a tool_use block without a name".into(),
                        ));
                    }
                    tool_calls.push(ToolCall {
                        id: if id.is_empty() {
                            format!("toolu_{i}")
                        } else {
                            id
                        },
                        name,
                        // An empty input streams no JSON at all.
                        arguments: if text.trim().is_empty() {
                            "{}".into()
                        } else {
                            text
                        },
                    });
                }
                _ => {}
            }
        }
        answer(ChatResponse {
            content: (!content.trim().is_empty()).then_some(content),
            tool_calls,
            usage: self.usage,
            truncated: self.truncated,
        })
    }

    fn whole(value: &Value) -> Result<ChatResponse, BackendError> {
        if value["type"] == "error" {
            return Err(BackendError::Protocol(format!(
                "the endpoint reported an error: {}",
                value["error"]
            )));
        }
        let mut usage = TokenUsage::default();
        usage_of(&value["usage"], &mut usage);
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        for block in value["content"].as_array().into_iter().flatten() {
            match block["type"].as_str().unwrap_or("") {
                "text" => content.push_str(block["text"].as_str().unwrap_or("")),
                "tool_use" => tool_calls.push(ToolCall {
                    id: block["id"].as_str().unwrap_or("").to_string(),
                    name: block["name"].as_str().unwrap_or("").to_string(),
                    arguments: block["input"].to_string(),
                }),
                _ => {}
            }
        }
        answer(ChatResponse {
            content: (!content.trim().is_empty()).then_some(content),
            tool_calls,
            usage,
            truncated: value["stop_reason"] == "max_tokens",
        })
    }
}

/// Speaks each model's protocol: Anthropic's Messages for `provider: anthropic`, OpenAI's chat
/// completions for every other provider.
#[derive(Debug, Clone)]
pub struct Providers {
    /// For every provider but Anthropic.
    pub openai: crate::OpenAi,
    /// For `provider: anthropic`.
    pub anthropic: Anthropic,
}

#[async_trait]
impl Backend for Providers {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        if request.provider == "anthropic" {
            self.anthropic.complete(request, on_text).await
        } else {
            self.openai.complete(request, on_text).await
        }
    }

    fn name(&self) -> &str {
        "openai"
    }
}
