//! OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, ...), streamed over SSE.

use async_trait::async_trait;
use futures_util::StreamExt;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, TokenUsage, ToolCall, ToolChoice,
};
use serde_json::{json, Value};
use std::time::Duration;

/// Retry policy. Retried, while no text has reached the caller: connect errors and timeouts,
/// 429, 502, 503, 504 and 529 answers, streams dropped, and malformed answers (empty, `content` that is not text, no message), up to
/// `attempts`. An HTTP 500 is retried once only: a server that failed on this very request
/// usually fails on it again, so it is retried once, at a temperature raised by 0.4 (at most 1):
/// never resent unchanged. An `error` object inside the stream is retried the same way, then
/// reported as [`BackendError::Generation`], which the runtime answers with a correction.
/// 4xx answers other than 429 are not retried.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; doubled each time, with up to 50% random jitter added.
    pub base_delay: Duration,
    /// No single wait is longer (a larger `Retry-After` is capped to this).
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

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
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()
                .unwrap_or_default(),
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
                    .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
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

    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.retry.base_delay.saturating_mul(1 << attempt.min(16));
        let jitter = backoff.mul_f64(fastrand::f64() * 0.5);
        retry_after
            .unwrap_or(backoff + jitter)
            .min(self.retry.max_delay)
    }

    /// One attempt. `Err((error, retry, retry_after))`.
    async fn attempt(
        &self,
        request: &ChatRequest,
        body: &Value,
        on_text: DeltaSink<'_>,
        sent_text: &mut bool,
    ) -> Result<ChatResponse, (BackendError, Again, Option<Duration>)> {
        let base = request
            .base_url
            .as_deref()
            .unwrap_or(&self.base_url)
            .trim_end_matches('/');
        let key = request
            .api_key_env
            .as_ref()
            .and_then(|e| std::env::var(e).ok())
            .or_else(|| self.api_key.clone());
        let timeout = request
            .timeout_seconds
            .map(Duration::from_secs_f64)
            .unwrap_or(self.timeout);
        let mut http = self
            .client
            .post(format!("{base}/chat/completions"))
            .json(body)
            .timeout(timeout);
        if let Some(key) = key {
            http = http.bearer_auth(key);
        }
        let response = match http.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err((
                    BackendError::Timeout(timeout.as_secs_f64()),
                    Again::Yes,
                    None,
                ))
            }
            Err(e) => {
                // The URL is the first thing a user needs to see when nothing answers.
                return Err((
                    BackendError::Connect(format!("{base}: {}", error_chain(&e))),
                    Again::Yes,
                    None,
                ));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(Duration::from_secs_f64);
            let body = response.text().await.unwrap_or_default();
            let retryable = match status.as_u16() {
                500 => Again::Once,
                429 | 502 | 503 | 504 | 529 => Again::Yes,
                s if s >= 500 => Again::Yes,
                _ => Again::No,
            };
            let mut end = body.len().min(300);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            return Err((
                // The URL names which endpoint refused (a 401 key, a 404 model).
                BackendError::Status {
                    status: status.as_u16(),
                    body: format!("{base}/chat/completions: {}", &body[..end]),
                },
                retryable,
                retry_after,
            ));
        }
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("event-stream"));
        if !is_sse {
            // Some servers ignore `stream: true`; accept a plain completion too.
            let value: Value = response
                .json()
                .await
                .map_err(|e| (BackendError::Protocol(e.to_string()), Again::Yes, None))?;
            let answer = parse_completion(&value).map_err(|e| (e, Again::Yes, None))?;
            if let Some(text) = answer.content.as_deref().filter(|t| !t.is_empty()) {
                *sent_text |= on_text.text(text);
            }
            return Ok(answer);
        }
        let mut assembler = Assembler::default();
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(timeout, stream.next()).await {
                Err(_) => {
                    return Err((
                        BackendError::Timeout(timeout.as_secs_f64()),
                        Again::Yes,
                        None,
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err((
                        BackendError::Protocol(format!(
                            "the stream broke off: {}",
                            e.without_url()
                        )),
                        Again::Yes,
                        None,
                    ))
                }
                Ok(Some(Ok(c))) => c,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return assembler.finish().map_err(|e| (e, Again::Yes, None));
                }
                let value: Value = serde_json::from_str(data).map_err(|e| {
                    (
                        BackendError::Protocol(format!("bad stream chunk: {e}")),
                        Again::Yes,
                        None,
                    )
                })?;
                if let Some(text) = assembler.add(&value).map_err(|e| {
                    let again = match e {
                        BackendError::Generation(_) => Again::Once,
                        _ => Again::Yes,
                    };
                    (e, again, None)
                })? {
                    *sent_text |= on_text.text(&text);
                }
            }
        }
        // The stream ended without `[DONE]`: complete if the model said it had finished.
        if assembler.finished {
            return assembler.finish().map_err(|e| (e, Again::Yes, None));
        }
        Err((
            BackendError::Protocol("the stream ended before the answer was complete".into()),
            Again::Yes,
            None,
        ))
    }
}

#[async_trait]
impl Backend for OpenAi {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let mut body = Self::body(request);
        let mut attempt = 0;
        let mut server_errors = 0;
        loop {
            let mut sent_text = false;
            match self.attempt(request, &body, on_text, &mut sent_text).await {
                Ok(r) => return Ok(r),
                // Text already shown to the user cannot be taken back: a retry would repeat it.
                Err((error, again, retry_after)) => {
                    attempt += 1;
                    let resample = again == Again::Once;
                    let again = match again {
                        Again::No => false,
                        Again::Yes => true,
                        Again::Once => {
                            server_errors += 1;
                            server_errors < 2
                        }
                    };
                    if !again || sent_text || attempt >= self.retry.attempts {
                        return Err(error);
                    }
                    // The server failed on what the model generated: the same request at the
                    // same temperature would likely generate it again.
                    if resample {
                        let t = body["temperature"].as_f64().unwrap_or(0.0);
                        body["temperature"] = json!((t + RESAMPLE_STEP).min(1.0));
                    }
                    on_text.restart();
                    on_text.retrying(&error);
                    tokio::time::sleep(self.delay(attempt - 1, retry_after)).await;
                }
            }
        }
    }

    fn name(&self) -> &str {
        "openai"
    }
}

/// How much a retry after a server-side failure raises the temperature.
const RESAMPLE_STEP: f64 = 0.4;

/// Whether a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    No,
    /// Retried once, at a raised temperature: an HTTP 500, or an `error` inside the stream
    /// (the server failed on what the model generated, e.g. llama.cpp on a call of a function
    /// it was not offered).
    Once,
    Yes,
}

/// An error with its causes (`error sending request: ... Connection refused`), without the URL,
/// which the caller names once.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
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

impl Assembler {
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

/// An answer with neither text nor a tool call is no answer: it must not become a silent empty
/// reply.
fn answer(response: ChatResponse) -> Result<ChatResponse, BackendError> {
    if response.content.is_none() && response.tool_calls.is_empty() {
        return Err(BackendError::Protocol(
            "the model's answer was empty (no text and no tool call)".into(),
        ));
    }
    Ok(response)
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
