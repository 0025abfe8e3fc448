//! OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, ...), streamed over SSE.

use crate::http::{self, answer, Post, Retry, Wire};
use async_trait::async_trait;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, TokenUsage, ToolCall, ToolChoice,
};
use serde_json::{json, Value};
use std::time::Duration;

/// A backend for any endpoint speaking OpenAI chat completions.
#[derive(Debug, Clone)]
pub struct OpenAi {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    retry: Retry,
    timeout: Duration,
}

impl OpenAi {
    /// `base_url` up to the version, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        OpenAi {
            client: http::client(),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key,
            retry: Retry::default(),
            timeout: Duration::from_secs(60),
        }
    }

    /// From `OPENAI_BASE_URL` (default `https://api.openai.com/v1`) and `OPENAI_API_KEY`;
    /// `None` when neither is set, so that callers can fall back to the simulator.
    pub fn from_env() -> Option<Self> {
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        let key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|s| !s.is_empty());
        if base.is_none() && key.is_none() {
            return None;
        }
        Some(OpenAi::new(
            base.unwrap_or_else(|| "https://api.openai.com/v1".into()),
            key,
        ))
    }

    /// Retries with this policy instead of the default.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Timeout of one request, from sending it to the end of the stream.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn body(request: &ChatRequest) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !request.tools.is_empty() {
            body["tool_choice"] = json!(match request.tool_choice {
                ToolChoice::Auto => "auto",
                ToolChoice::Required => "required",
            });
            // A call that must be made is one call: a router hands off once.
            if request.tool_choice == ToolChoice::Required {
                body["parallel_tool_calls"] = json!(false);
            }
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        let mut function = json!({"name": t.name, "description": t.description});
                        // A function that takes nothing is sent without `parameters`: the
                        // API's own form of an empty parameter list (a lean handoff is often
                        // one; a strict schema says `additionalProperties` and is kept).
                        if !takes_nothing(&t.parameters) {
                            function["parameters"] = (*t.parameters).clone();
                        }
                        json!({"type": "function", "function": function})
                    })
                    .collect(),
            );
        }
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        // OpenAI's wire format wants tool call arguments under `function`.
        for m in body["messages"].as_array_mut().into_iter().flatten() {
            if let Some(calls) = m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                for c in calls.iter_mut() {
                    let (id, name, args) =
                        (c["id"].clone(), c["name"].clone(), c["arguments"].clone());
                    *c = json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}});
                }
            }
        }
        body
    }
}

#[async_trait]
impl Backend for OpenAi {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let post = Post::of(
            &self.client,
            request,
            (&self.base_url, "chat/completions"),
            self.api_key.as_ref(),
            |k| vec![("authorization", format!("Bearer {k}"))],
            self.timeout,
        );
        http::complete::<Assembler>(&self.retry, &post, Self::body(request), on_text).await
    }

    fn name(&self) -> &str {
        "openai"
    }
}

/// Builds a response from SSE chunks: text deltas and tool-call deltas by index.
#[derive(Default)]
struct Assembler {
    content: String,
    calls: Vec<(String, String, String)>,
    usage: TokenUsage,
    finished: bool,
    truncated: bool,
}

impl Wire for Assembler {
    fn add(&mut self, chunk: &Value) -> Result<Option<String>, BackendError> {
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| error.to_string());
            return Err(BackendError::Generation(message));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = usage_of(usage);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(None);
        };
        match choice.get("finish_reason") {
            None | Some(Value::Null) => {}
            Some(reason) => {
                self.finished = true;
                self.truncated |= reason == "length";
            }
        }
        let delta = &choice["delta"];
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index =
                call.get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(self.calls.len().saturating_sub(1) as u64) as usize;
            if index > 128 {
                return Err(BackendError::Protocol(format!(
                    "tool call index {index} is out of range"
                )));
            }
            while self.calls.len() <= index {
                self.calls.push(Default::default());
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.0.push_str(id);
            }
            if let Some(f) = call.get("function") {
                if let Some(name) = f.get("name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(args) = f.get("arguments").and_then(Value::as_str) {
                    slot.2.push_str(args);
                }
            }
        }
        match delta.get("content") {
            Some(Value::String(text)) if !text.is_empty() => {
                self.content.push_str(text);
                Ok(Some(text.to_string()))
            }
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(None),
            Some(other) => Err(BackendError::Protocol(format!(
                "`content` must be text, got {other}"
            ))),
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn whole(value: &Value) -> Result<ChatResponse, BackendError> {
        parse_completion(value)
    }

    fn finish(self) -> Result<ChatResponse, BackendError> {
        let tool_calls = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, arguments))| {
                if name.is_empty() {
                    return Err(BackendError::Protocol(
                        "a tool call without a function name".into(),
                    ));
                }
                Ok(ToolCall {
                    id: if id.is_empty() {
                        format!("call_{i}")
                    } else {
                        id
                    },
                    name,
                    arguments,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        answer(ChatResponse {
            content: (!self.content.trim().is_empty()).then_some(self.content),
            tool_calls,
            usage: self.usage,
            truncated: self.truncated,
        })
    }
}

fn usage_of(usage: &Value) -> TokenUsage {
    let count = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        prompt_tokens: count(usage, "prompt_tokens"),
        completion_tokens: count(usage, "completion_tokens"),
        cached_prompt_tokens: usage
            .get("prompt_tokens_details")
            .map(|d| count(d, "cached_tokens"))
            .unwrap_or(0),
        cache_write_prompt_tokens: 0,
        estimated_calls: 0,
    }
}

fn parse_completion(value: &Value) -> Result<ChatResponse, BackendError> {
    if let Some(error) = value.get("error") {
        return Err(BackendError::Protocol(format!(
            "the endpoint reported an error: {error}"
        )));
    }
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| BackendError::Protocol("the answer has no choices".into()))?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| BackendError::Protocol("the answer's message is missing or null".into()))?;
    let content = match message.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => (!s.trim().is_empty()).then(|| s.clone()),
        Some(other) => {
            return Err(BackendError::Protocol(format!(
                "`content` must be text, got {other}"
            )))
        }
    };
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let name = c["function"]["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                return Err(BackendError::Protocol(
                    "a tool call without a function name".into(),
                ));
            }
            Ok(ToolCall {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| format!("call_{i}")),
                name: name.to_string(),
                arguments: c["function"]["arguments"]
                    .as_str()
                    .unwrap_or("{}")
                    .to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    answer(ChatResponse {
        content,
        tool_calls,
        usage: value.get("usage").map(usage_of).unwrap_or_default(),
        truncated: choice.get("finish_reason").is_some_and(|f| f == "length"),
    })
}

/// `{"type": "object", "properties": {}}` (or less): a schema that says only "no parameters".
fn takes_nothing(schema: &Value) -> bool {
    schema.as_object().is_some_and(|o| {
        o.iter().all(|(k, v)| match k.as_str() {
            "type" => v == "object",
            "properties" => v.as_object().is_some_and(|p| p.is_empty()),
            _ => false,
        })
    })
}
