//! The interface to language models. Backends live in `ladder-llm`; embedders may bring their own.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One message of a chat, in the OpenAI chat-completions shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// The text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Function calls (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this answers (tool messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant message: text, calls, or both.
    pub fn assistant(text: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: text,
            tool_calls,
            tool_call_id: None,
        }
    }

    /// The result of the call `call_id`.
    pub fn tool(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }
}

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system prompt.
    System,
    /// The caller.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A function call requested by the model. `arguments` is the raw JSON text the model produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its result answers.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments, as the model wrote them (JSON text).
    pub arguments: String,
}

/// A function the model may call: name, description and JSON Schema of the parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its parameters, shared by every request that offers the function.
    pub parameters: std::sync::Arc<serde_json::Value>,
}

/// One request to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model's name at the provider.
    pub model: String,
    /// The ladder agent making the call (for logs and the simulator; not sent to providers).
    pub agent: String,
    /// The conversation, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// The functions offered.
    pub tools: Vec<ToolSpec>,
    /// The most tokens the answer may take.
    pub max_tokens: Option<u64>,
    /// The sampling temperature.
    pub temperature: Option<f64>,
    /// Whether the model must call one of `tools` (`required`) or may also answer in text.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Per-model endpoint override from the ladder.
    pub base_url: Option<String>,
    /// Environment variable holding the API key for this model, from the ladder.
    pub api_key_env: Option<String>,
    /// The model's `provider` in the ladder (`openai`, `anthropic`, ...): which wire protocol a
    /// backend that speaks several uses (`ladder_llm::Providers`).
    #[serde(default)]
    pub provider: String,
    /// Request timeout from the ladder, in seconds.
    pub timeout_seconds: Option<f64>,
}

/// `tool_choice` of a request. Routers send `Required`: the server may then constrain decoding
/// to a valid call of an offered function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model may call a function or answer in text.
    #[default]
    Auto,
    /// The model must call one of the offered functions.
    Required,
}

/// Tokens a call used, as the provider reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// The part of `prompt_tokens` the provider served from its prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_prompt_tokens: u64,
    /// The part of `prompt_tokens` written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`), priced at the model's `cache_write`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_prompt_tokens: u64,
    /// Calls whose usage was estimated from the request (a call cut by an SLA or a failure
    /// reports none); 0 when every figure came from the provider.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub estimated_calls: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TokenUsage {
    /// Adds another call's usage.
    pub fn add(&mut self, other: TokenUsage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
        self.cache_write_prompt_tokens += other.cache_write_prompt_tokens;
        self.estimated_calls += other.estimated_calls;
    }
}

/// The assembled answer of a model: text, tool calls, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The text answer, if any.
    pub content: Option<String>,
    /// The function calls, if any.
    pub tool_calls: Vec<ToolCall>,
    /// What the call used.
    pub usage: TokenUsage,
    /// The answer was cut by `max_tokens` (`finish_reason: "length"`): a tool call in it may
    /// have incomplete arguments.
    #[serde(default)]
    pub truncated: bool,
}

impl ChatResponse {
    /// A text answer, with `usage`.
    pub fn text(text: impl Into<String>, usage: TokenUsage) -> Self {
        ChatResponse {
            content: Some(text.into()),
            tool_calls: Vec::new(),
            usage,
            truncated: false,
        }
    }

    /// One function call `name(arguments)` with the call id `id`, with `usage`.
    pub fn call(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
        usage: TokenUsage,
    ) -> Self {
        ChatResponse {
            content: None,
            tool_calls: vec![ToolCall {
                id: id.into(),
                name: name.into(),
                arguments: arguments.into(),
            }],
            usage,
            truncated: false,
        }
    }
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BackendError {
    /// Could not reach the endpoint, after retries.
    #[error("cannot reach the model endpoint: {0}")]
    Connect(String),
    /// The endpoint answered with an error status, after retries where they apply.
    #[error("the model endpoint answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// What the endpoint said.
        body: String,
    },
    /// The answer was cut off or could not be understood.
    #[error("malformed or interrupted model answer: {0}")]
    Protocol(String),
    /// The call took longer than the model's timeout (seconds).
    #[error("the model did not answer within {0:.1}s")]
    Timeout(f64),
    /// The endpoint failed on what the model generated (an `error` inside the stream, such as
    /// llama.cpp's answer to a call of a function it was not offered), after one retry. The
    /// runtime treats it as a correction: the model is told and asked again.
    #[error("the endpoint could not use the model's answer: {0}")]
    Generation(String),
}

/// Receives streamed text as it arrives.
pub type DeltaSink<'a> = &'a dyn TextSink;

/// Where a backend sends streamed text. Any `Fn(&str)` closure is one (it shows everything).
pub trait TextSink: Send + Sync {
    /// Takes a piece of text; returns whether it reached the caller. Text that did not (the
    /// runtime holds back what it may still refuse) does not prevent a retry.
    fn text(&self, piece: &str) -> bool;

    /// The attempt that streamed the text so far failed and is retried: forget what was held.
    fn restart(&self) {}

    /// An attempt failed with `error` and will be retried: if a deadline cuts the call before it
    /// succeeds, this is the cause to name.
    fn retrying(&self, _error: &BackendError) {}
}

impl<F: Fn(&str) + Send + Sync> TextSink for F {
    fn text(&self, piece: &str) -> bool {
        self(piece);
        true
    }
}

/// A language model endpoint.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Runs one chat completion, calling `on_text` with each piece of streamed text.
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError>;

    /// A short name for summaries and events (`openai`, `sim`, ...).
    fn name(&self) -> &str;
}
