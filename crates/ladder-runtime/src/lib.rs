//! The embeddable `.ladder` interpreter.
//!
//! Compile a ladder (with `ladder_check::compile`, this crate's `compile` feature, or ahead of
//! time with `ladderc check --emit-program`), give the runtime a model backend (and any host tools), open sessions and
//! send them messages; each turn comes back as a stream of [`Event`]s.
//!
//! ```
//! use ladder_check::compile;
//! use ladder_runtime::{Event, Runtime};
//! # use ladder_runtime::{Backend, ChatRequest, ChatResponse, BackendError, DeltaSink};
//! # struct Echo;
//! # #[async_trait::async_trait]
//! # impl Backend for Echo {
//! #     async fn complete(&self, r: &ChatRequest, on_text: DeltaSink<'_>) -> Result<ChatResponse, BackendError> {
//! #         on_text.text("hello");
//! #         Ok(ChatResponse { content: Some("hello".into()), ..Default::default() })
//! #     }
//! #     fn name(&self) -> &str { "echo" }
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let program = compile(r#"ladder 1
//! ladder demo { entry greeter }
//! model fast { provider: openai, name: "gpt-4o-mini" }
//! agent greeter { model fast  prompt "Greet the caller." }
//! "#).expect("the ladder checks clean");
//! let runtime = Runtime::new(program).backend(Echo); // e.g. ladder_llm::OpenAi or ladder_llm::Simulator
//! let session = runtime.session();
//! let events = session.send("hi").collect().await;
//! assert!(events.iter().any(|e| matches!(e, Event::Reply { agent, .. } if agent == "greeter")));
//! # });
//! ```

#![warn(missing_docs)]

mod backend;
mod collect;
mod durable;
mod event;
pub mod human;
pub mod scenario;
mod schema;
mod session;
pub mod store;
mod template;
mod tools;
mod turn;

pub use backend::{
    Backend, BackendError, ChatMessage, ChatRequest, ChatResponse, DeltaSink, Role, TextSink,
    TokenUsage, ToolCall, ToolChoice, ToolSpec,
};
pub use durable::Durable;
pub use event::Event;
pub use ladder_program::Program;
pub use schema::validate;
pub use session::{
    Awaiting, Counters, Entry, Hold, Inbound, LadderStamp, PendingApproval, SessionState,
};
pub use store::{SessionSummary, StoreError};
pub use tools::{HostTool, McpTools};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Mutex;

/// Compiles a ladder's source text into a [`Program`], or returns its diagnostics (feature
/// `compile`, on by default).
#[cfg(feature = "compile")]
pub fn compile(source: &str) -> Result<Program, Vec<ladder_check::Diagnostic>> {
    ladder_check::compile(source)
}

pub(crate) struct Inner {
    pub program: Program,
    pub backend: Option<Arc<dyn Backend>>,
    pub host_tools: HashMap<String, Arc<dyn HostTool>>,
    /// The MCP servers' connections (see [`Runtime::mcp`]).
    pub mcp: Option<Arc<dyn McpTools>>,
    pub allow_exec: bool,
    pub http: reqwest::Client,
    pub model_override: Option<String>,
    /// Prices of the overriding model (none: its cost counts as 0).
    pub prices_override: Option<Prices>,
    pub temperature_override: Option<f64>,
    /// Which ladder this is, stamped on every session it runs.
    pub stamp: LadderStamp,
    /// Continue stored sessions of another ladder (or another version of this one).
    pub migrate: bool,
    /// Function parameter schemas as requests offer them, built once and shared.
    pub schemas: std::sync::Mutex<HashMap<String, Arc<serde_json::Value>>>,
}

/// Dollars per million tokens of a model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    /// Dollars per million prompt tokens.
    pub input_per_mtok: f64,
    /// Dollars per million completion tokens.
    pub output_per_mtok: f64,
    /// Input served from the provider's prompt cache (defaults to the input price).
    pub cached_input_per_mtok: Option<f64>,
    /// Input written to the provider's prompt cache (defaults to the input price).
    pub cache_write_per_mtok: Option<f64>,
}

impl Prices {
    /// A ladder model's declared prices.
    pub fn of(model: &ladder_program::Model) -> Self {
        Prices {
            input_per_mtok: model.input_per_mtok.unwrap_or(0.0),
            output_per_mtok: model.output_per_mtok.unwrap_or(0.0),
            cached_input_per_mtok: model.cached_input_per_mtok,
            cache_write_per_mtok: model.cache_write_per_mtok,
        }
    }

    /// The cost of `usage` in dollars: input read from and written to the cache at their own
    /// prices.
    pub fn cost(&self, usage: TokenUsage) -> f64 {
        let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
        let written = usage
            .cache_write_prompt_tokens
            .min(usage.prompt_tokens - cached);
        let fresh = usage.prompt_tokens - cached - written;
        (fresh as f64 * self.input_per_mtok
            + cached as f64 * self.cached_input_per_mtok.unwrap_or(self.input_per_mtok)
            + written as f64 * self.cache_write_per_mtok.unwrap_or(self.input_per_mtok)
            + usage.completion_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

/// A compiled ladder with its backend and tools; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// A runtime for `program`, with no backend yet (see [`Runtime::backend`]).
    pub fn new(program: Program) -> Self {
        let stamp = LadderStamp::of(&program);
        Runtime {
            inner: Arc::new(Inner {
                stamp,
                migrate: false,
                program,
                backend: None,
                host_tools: HashMap::new(),
                mcp: None,
                allow_exec: false,
                http: reqwest::Client::new(),
                model_override: None,
                prices_override: None,
                temperature_override: None,
                schemas: Default::default(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => {
                let old = &self.inner;
                let mut copy = Inner {
                    program: old.program.clone(),
                    backend: old.backend.clone(),
                    host_tools: old.host_tools.clone(),
                    mcp: old.mcp.clone(),
                    allow_exec: old.allow_exec,
                    http: old.http.clone(),
                    model_override: old.model_override.clone(),
                    prices_override: old.prices_override,
                    temperature_override: old.temperature_override,
                    stamp: old.stamp.clone(),
                    migrate: old.migrate,
                    // Built from the program only: a copy starts empty and fills again.
                    schemas: Default::default(),
                };
                f(&mut copy);
                self.inner = Arc::new(copy);
            }
        }
        self
    }

    /// The model backend every agent talks to.
    pub fn backend(self, backend: impl Backend + 'static) -> Self {
        self.backend_arc(Arc::new(backend))
    }

    /// [`Runtime::backend`] with a shared backend.
    pub fn backend_arc(self, backend: Arc<dyn Backend>) -> Self {
        self.with(|i| i.backend = Some(backend))
    }

    /// Registers the implementation of a `host "name"` tool.
    pub fn tool<F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, String>> + Send + 'static,
    {
        let name = name.into();
        self.with(|i| {
            i.host_tools.insert(name, Arc::new(tools::FnTool(f)));
        })
    }

    /// The connections that run `mcp SERVER` tools (the `ladder-mcp` crate provides them; without
    /// one, such a call fails with a clear error the model sees).
    pub fn mcp(self, mcp: Arc<dyn McpTools>) -> Self {
        self.with(|i| i.mcp = Some(mcp))
    }

    /// Allows `exec` tools to start local programs (off by default).
    pub fn allow_exec(self, allow: bool) -> Self {
        self.with(|i| i.allow_exec = allow)
    }

    /// Sends every agent's calls to this model name instead of the ladder's (e.g. a local model).
    pub fn model_override(self, model: Option<String>) -> Self {
        self.with(|i| i.model_override = model)
    }

    /// The prices of the model named by [`Runtime::model_override`] (without them, its calls
    /// cost 0: the ladder's prices belong to the ladder's models).
    pub fn prices_override(self, prices: Option<Prices>) -> Self {
        self.with(|i| i.prices_override = prices)
    }

    /// Lets stored sessions of another ladder, or of another version of this one, continue with
    /// this one (off by default: such a session is refused with [`StoreError::OtherLadder`]).
    pub fn migrate(self, migrate: bool) -> Self {
        self.with(|i| i.migrate = migrate)
    }

    /// Sends this temperature with every request, whatever the ladder declares.
    pub fn temperature_override(self, temperature: Option<f64>) -> Self {
        self.with(|i| i.temperature_override = temperature)
    }

    /// The program it runs.
    pub fn program(&self) -> &Program {
        &self.inner.program
    }

    /// Opens a new session at the ladder's entry, with the declared variables' defaults.
    pub fn session(&self) -> Session {
        let id = format!("s-{:016x}", fastrand::u64(..));
        self.session_with_id(id)
    }

    /// A new session with a chosen id.
    pub fn session_with_id(&self, id: impl Into<String>) -> Session {
        let vars = self
            .inner
            .program
            .vars
            .iter()
            .filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d)))
            .collect();
        let mut state = SessionState::new(id.into(), self.inner.program.entry.clone(), vars);
        state.ladder = Some(self.inner.stamp.clone());
        self.resume(state)
    }

    /// Continues a session from a saved state.
    pub fn resume(&self, state: SessionState) -> Session {
        Session {
            runtime: self.clone(),
            state: Arc::new(Mutex::new(state)),
        }
    }
}

/// One conversation. Turns of one session run one at a time; sessions run concurrently.
#[derive(Clone)]
pub struct Session {
    runtime: Runtime,
    state: Arc<Mutex<SessionState>>,
}

impl Session {
    /// Runs a turn with the user's `text`; its events arrive on the returned stream as they happen.
    /// The turn runs on its own task and completes even if the stream is dropped.
    pub fn send(&self, text: impl Into<String>) -> EventStream {
        let (tx, rx) = event::channel();
        let text = text.into();
        let runtime = self.runtime.clone();
        let state = self.state.clone();
        let handle = tokio::spawn(async move {
            let mut state = state.lock().await;
            turn::Turn::new(&runtime.inner, &mut state, &tx)
                .run(text)
                .await;
        });
        EventStream {
            rx,
            _handle: handle,
        }
    }

    /// Applies an operator's action (see [`human`]); the events it added, or why it was refused.
    pub async fn operate(&self, action: &human::Action) -> Result<Vec<Event>, human::Refused> {
        let mut state = self.state.lock().await;
        human::apply(
            &self.runtime.inner.program,
            &mut state,
            action,
            human::now_ms(),
        )
    }

    /// Decides the session's pending tool approval: the turn it stopped continues, its events
    /// on the stream. Refused when nothing waits under `approval`.
    pub async fn decide(
        &self,
        approval: &str,
        approved: bool,
        operator: String,
        note: Option<String>,
    ) -> Result<EventStream, human::Refused> {
        let pending = self.state.lock().await.pending_approval.clone();
        if pending.as_ref().map(|p| p.id.as_str()) != Some(approval) {
            return Err(human::Refused::NoSuchApproval(approval.to_string()));
        }
        Ok(self.spawn(move |turn| Box::pin(turn.decide(approved, operator, note))))
    }

    /// Lets the current rung speak without a user message (after a release).
    pub fn resume(&self) -> EventStream {
        self.spawn(|turn| Box::pin(turn.resume()))
    }

    /// Runs `work` on the session's state on a task of its own.
    fn spawn(
        &self,
        work: impl for<'t> FnOnce(turn::Turn<'t>) -> Pin<Box<dyn Future<Output = ()> + Send + 't>>
            + Send
            + 'static,
    ) -> EventStream {
        let (tx, rx) = event::channel();
        let runtime = self.runtime.clone();
        let state = self.state.clone();
        let handle = tokio::spawn(async move {
            let mut state = state.lock().await;
            work(turn::Turn::new(&runtime.inner, &mut state, &tx)).await;
        });
        EventStream {
            rx,
            _handle: handle,
        }
    }

    /// A copy of the session's current state.
    pub async fn state(&self) -> SessionState {
        self.state.lock().await.clone()
    }

    /// The session's id.
    pub async fn id(&self) -> String {
        self.state.lock().await.id.clone()
    }
}

/// The events of one turn, ending with [`Event::TurnEnded`].
pub struct EventStream {
    rx: event::Receiver,
    _handle: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// The next event, or `None` after the turn ended.
    pub async fn next(&mut self) -> Option<Event> {
        futures_util::StreamExt::next(&mut self.rx).await
    }

    /// Waits for the turn to end and returns all its events.
    pub async fn collect(mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

impl futures_util::Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}
