//! MCP tools for ladders (Model Context Protocol, through the official Rust SDK `rmcp`).
//!
//! A ladder declares its servers (`mcp NAME { command: [..] }` or `{ url: .. }`) and each tool it
//! uses as an ordinary typed tool with `mcp NAME ["remote name"]`, so the checker types every
//! call. [`Servers`] owns the connections of one runtime:
//! - [`Servers::start`] starts each server once, lists its tools and compares them with the pinned
//!   declarations: a missing tool or a changed signature is a [`StartError::Drift`] naming the tool;
//! - calls carry the runtime's idempotency key in `_meta` ([`IDEMPOTENCY_META`]); protocol errors
//!   and results marked `isError` come back as tool errors the model reads;
//! - a server that exits or drops its connection is started again on the next call, with
//!   exponential backoff (0.5 s doubling to 30 s) between attempts, and its tools are checked
//!   for drift again;
//! - [`Servers::shutdown`] stops them (dropping the value does too: child processes are killed).
//!
//! [`pull`] lists a server's tools and writes their ladder declarations (`ladderc mcp pull`).

pub mod schema;

use async_trait::async_trait;
use ladder_program::{McpServer, McpTransport, Program, ToolImpl};
use ladder_runtime::McpTools;
use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The `_meta` key that carries a call's idempotency key: the same call re-run (a retry, a
/// decision replayed after a crash) carries the same key.
pub const IDEMPOTENCY_META: &str = "dev.ladderc/idempotency-key";

/// How long starting a server and listing its tools may take unless it says (`timeout`).
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The first wait before starting a failed server again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Lines of a server's stderr kept to explain why it failed.
const STDERR_LINES: usize = 20;

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A server could not be started or reached.
    #[error("MCP server `{server}`: {message}")]
    Server {
        /// The `mcp` item.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// Pinned tools no longer match the live ones.
    #[error("{}", drift_text(.0))]
    Drift(Vec<Drift>),
}

/// One pinned tool that no longer matches the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// The ladder's tool.
    pub tool: String,
    /// The `mcp` item.
    pub server: String,
    /// The tool's name on the server.
    pub remote: String,
    /// What changed, one sentence each.
    pub changes: Vec<String>,
}

fn drift_text(drifts: &[Drift]) -> String {
    let mut s = String::from(
        "the ladder's MCP tools no longer match their servers (run `ladderc mcp pull` and review the change):",
    );
    for d in drifts {
        for c in &d.changes {
            s.push_str(&format!(
                "\n  tool `{}` (`{}` on `{}`): {c}",
                d.tool, d.remote, d.server
            ));
        }
    }
    s
}

/// A tool as a server lists it.
#[derive(Debug, Clone)]
pub struct RemoteTool {
    /// Its name on the server.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its input schema.
    pub input_schema: Map<String, Value>,
    /// Whether the server says it only reads (`readOnlyHint`).
    pub read_only: bool,
}

type Connection = RunningService<RoleClient, ()>;

/// A server's connection and what is known of its health.
struct Slot {
    name: String,
    spec: McpServer,
    /// The ladder's tools on this server: (ladder name, remote name, schema, bound names).
    pinned: Vec<Pinned>,
    state: Mutex<SlotState>,
    stderr: Arc<StdMutex<VecDeque<String>>>,
}

#[derive(Clone)]
struct Pinned {
    tool: String,
    remote: String,
    parameters: Value,
    bound: Vec<String>,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Arc<Connection>>,
    /// Consecutive failed starts, and when the next may be tried.
    failures: u32,
    retry_at: Option<Instant>,
    /// Remote tools that drifted at the last start: calls to them are refused.
    drifted: BTreeMap<String, Vec<String>>,
    starts: u32,
}

/// The MCP servers of one runtime (see the crate docs).
pub struct Servers {
    slots: BTreeMap<String, Slot>,
}

impl Servers {
    /// Starts every server the program's tools use, lists their tools and checks the pinned
    /// declarations against them. Servers no tool uses are not started.
    pub async fn start(program: &Program) -> Result<Arc<Servers>, StartError> {
        let mut slots = BTreeMap::new();
        for (tool, t) in &program.tools {
            let ToolImpl::Mcp {
                server,
                tool: remote,
            } = &t.implementation
            else {
                continue;
            };
            let Some(spec) = program.mcp_servers.get(server) else {
                return Err(StartError::Server {
                    server: server.clone(),
                    message: "is not declared".into(),
                });
            };
            let slot = slots.entry(server.clone()).or_insert_with(|| Slot {
                name: server.clone(),
                spec: spec.clone(),
                pinned: Vec::new(),
                state: Mutex::new(SlotState::default()),
                stderr: Arc::default(),
            });
            slot.pinned.push(Pinned {
                tool: tool.clone(),
                remote: remote.clone(),
                parameters: t.parameters.clone(),
                bound: t.bound.keys().cloned().collect(),
            });
        }
        let servers = Servers { slots };
        // All at once: a start is mostly waiting for a process or a network round trip.
        let started = futures_util::future::join_all(servers.slots.values().map(|slot| async {
            let mut state = slot.state.lock().await;
            slot.connect(&mut state).await
        }))
        .await;
        let mut drifts = Vec::new();
        for found in started {
            match found {
                Ok(found) => drifts.extend(found),
                Err(e) => {
                    servers.shutdown().await;
                    return Err(e);
                }
            }
        }
        if !drifts.is_empty() {
            servers.shutdown().await;
            return Err(StartError::Drift(drifts));
        }
        Ok(Arc::new(servers))
    }

    /// How many times `server` has been started (1 after [`Servers::start`]; more after restarts).
    pub async fn starts(&self, server: &str) -> u32 {
        match self.slots.get(server) {
            Some(slot) => slot.state.lock().await.starts,
            None => 0,
        }
    }

    /// Stops every server: the sessions are closed and child processes end.
    pub async fn shutdown(&self) {
        for slot in self.slots.values() {
            let connection = slot.state.lock().await.connection.take();
            if let Some(c) = connection {
                match Arc::try_unwrap(c) {
                    Ok(mut c) => {
                        let _ = c.close_with_timeout(Duration::from_secs(2)).await;
                    }
                    Err(shared) => shared.cancellation_token().cancel(),
                }
            }
        }
    }
}

impl Slot {
    /// Starts the server (once the backoff allows), lists its tools and records drift.
    async fn connect(&self, state: &mut SlotState) -> Result<Vec<Drift>, StartError> {
        let fail = |message: String| StartError::Server {
            server: self.name.clone(),
            message,
        };
        if let Some(at) = state.retry_at {
            let now = Instant::now();
            if at > now {
                return Err(fail(format!(
                    "is down and will be started again in {:.1}s{}",
                    (at - now).as_secs_f64(),
                    last_words(&self.stderr)
                )));
            }
        }
        let started = start_and_list(&self.spec, &self.stderr).await;
        let (connection, tools) = match started {
            Ok(ok) => ok,
            Err(message) => {
                state.failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << state.failures.min(8).saturating_sub(1))
                    .min(MAX_BACKOFF);
                state.retry_at = Some(Instant::now() + backoff);
                return Err(fail(message));
            }
        };
        state.failures = 0;
        state.retry_at = None;
        state.starts += 1;
        state.drifted.clear();
        let by_name: BTreeMap<&str, &RemoteTool> =
            tools.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut drifts = Vec::new();
        for p in &self.pinned {
            let changes = match by_name.get(p.remote.as_str()) {
                None => vec![format!(
                    "the server has no tool `{}` (it has {})",
                    p.remote,
                    tools
                        .iter()
                        .map(|t| format!("`{}`", t.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
                Some(live) => {
                    let bound: Vec<&str> = p.bound.iter().map(String::as_str).collect();
                    schema::drift(&p.parameters, &bound, &live.input_schema)
                }
            };
            if !changes.is_empty() {
                state.drifted.insert(p.remote.clone(), changes.clone());
                drifts.push(Drift {
                    tool: p.tool.clone(),
                    server: self.name.clone(),
                    remote: p.remote.clone(),
                    changes,
                });
            }
        }
        state.connection = Some(Arc::new(connection));
        Ok(drifts)
    }

    /// The live connection, started again if the server is gone; refused for a tool that
    /// drifted at the last start.
    async fn connection(&self, remote: &str) -> Result<Arc<Connection>, String> {
        let mut state = self.state.lock().await;
        if state.connection.as_ref().is_some_and(|c| c.is_closed()) {
            state.connection = None;
        }
        if state.connection.is_none() {
            self.connect(&mut state).await.map_err(|e| e.to_string())?;
        }
        if let Some(changes) = state.drifted.get(remote) {
            return Err(format!(
                "MCP tool `{remote}` on `{}` changed since the ladder pinned it: {}",
                self.name,
                changes.join("; ")
            ));
        }
        state
            .connection
            .clone()
            .ok_or_else(|| format!("MCP server `{}` has no connection", self.name))
    }

    async fn call(
        &self,
        remote: &str,
        arguments: Map<String, Value>,
        key: &str,
    ) -> Result<Value, String> {
        let mut meta = RequestMetaObject::new();
        meta.0
             .0
            .insert(IDEMPOTENCY_META.into(), Value::String(key.into()));
        let mut params = CallToolRequestParams::new(remote.to_string()).with_arguments(arguments);
        params.meta = Some(meta);
        // A server that died is noticed when a call cannot be sent: it is started again and
        // the call sent once more (it never reached the old process; the key is the same).
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let connection = self.connection(remote).await?;
            match connection.peer().call_tool(params.clone()).await {
                Ok(result) => break result,
                Err(rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_))
                    if attempts == 1 =>
                {
                    tracing::warn!(server = %self.name, "MCP server connection lost; starting it again");
                    let mut state = self.state.lock().await;
                    if state
                        .connection
                        .as_ref()
                        .is_some_and(|c| Arc::ptr_eq(c, &connection))
                    {
                        state.connection = None;
                    }
                }
                Err(e) => {
                    return Err(format!("MCP server `{}` failed the call: {e}", self.name));
                }
            }
        };
        let result = serde_json::to_value(&result).map_err(|e| {
            format!(
                "MCP server `{}` sent a result that cannot be read: {e}",
                self.name
            )
        })?;
        let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
        let value = result_value(&result);
        if is_error {
            Err(match value {
                Value::String(s) => s,
                other => other.to_string(),
            })
        } else {
            Ok(value)
        }
    }
}

/// What the model reads of a result: the structured content if there is any, else the text
/// (one text block as a string; several blocks as a list, with non-text blocks described).
fn result_value(result: &Value) -> Value {
    if let Some(structured) = result.get("structuredContent") {
        if !structured.is_null() {
            return structured.clone();
        }
    }
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts: Vec<Value> = blocks
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => b.get("text").cloned().unwrap_or(Value::Null),
            Some("resource_link") => serde_json::json!({
                "resource_link": b.get("uri"),
                "name": b.get("name"),
            }),
            Some("resource") => match b.pointer("/resource/text") {
                Some(text) => text.clone(),
                None => serde_json::json!({ "resource": b.pointer("/resource/uri") }),
            },
            Some(kind) => serde_json::json!({
                "content": kind,
                "mimeType": b.get("mimeType"),
                "note": "binary content is not shown to the model",
            }),
            None => b.clone(),
        })
        .collect();
    match parts.as_slice() {
        [] => Value::Null,
        [one] => one.clone(),
        _ => Value::Array(parts),
    }
}

#[async_trait]
impl McpTools for Servers {
    async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Value, String> {
        let slot = self
            .slots
            .get(server)
            .ok_or_else(|| format!("MCP server `{server}` is not started by this runtime"))?;
        slot.call(tool, arguments, idempotency_key).await
    }
}

/// Starts (stdio) or reaches (HTTP) a server and completes the MCP handshake.
async fn connect(
    spec: &McpServer,
    stderr_lines: Arc<StdMutex<VecDeque<String>>>,
) -> Result<Connection, String> {
    match &spec.transport {
        McpTransport::Stdio { program, args, env } => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).env_clear().kill_on_drop(true);
            // A clean environment: the basics a program needs to run, and what the ladder lists.
            for basic in ["PATH", "HOME", "LANG", "TMPDIR", "USER"] {
                if let Ok(v) = std::env::var(basic) {
                    cmd.env(basic, v);
                }
            }
            for name in env {
                let value = std::env::var(name)
                    .map_err(|_| format!("environment variable {name} is not set"))?;
                cmd.env(name, value);
            }
            let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start `{program}`: {e}"))?;
            if let Some(stderr) = stderr {
                tokio::spawn(keep_stderr(stderr, stderr_lines));
            }
            ().serve(transport)
                .await
                .map_err(|e| format!("the MCP handshake failed: {e}"))
        }
        McpTransport::Http { url, bearer_env } => {
            // reqwest's rustls takes the process's crypto provider (ring, as everywhere here).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut config =
                rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                    url.as_str(),
                );
            if let Some(env) = bearer_env {
                let token = std::env::var(env)
                    .map_err(|_| format!("environment variable {env} is not set"))?;
                config = config.auth_header(token);
            }
            let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
            ().serve(transport)
                .await
                .map_err(|e| format!("the MCP handshake failed: {e}"))
        }
    }
}

async fn keep_stderr(stderr: tokio::process::ChildStderr, lines: Arc<StdMutex<VecDeque<String>>>) {
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if let Ok(mut l) = lines.lock() {
            if l.len() == STDERR_LINES {
                l.pop_front();
            }
            l.push_back(line.chars().take(500).collect());
        }
    }
}

async fn list(connection: &Connection) -> Result<Vec<RemoteTool>, String> {
    let tools = connection
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| format!("listing its tools failed: {e}"))?;
    Ok(tools
        .into_iter()
        .map(|t| RemoteTool {
            name: t.name.to_string(),
            description: t.description.map(|d| d.to_string()),
            input_schema: (*t.input_schema).clone(),
            read_only: t.annotations.and_then(|a| a.read_only_hint) == Some(true),
        })
        .collect())
}

/// Connects to one declared server and lists its tools (for `ladderc mcp pull`).
pub async fn pull(server: &McpServer) -> Result<Vec<RemoteTool>, String> {
    let (mut connection, tools) = start_and_list(server, &Arc::default()).await?;
    let _ = connection.close_with_timeout(Duration::from_secs(2)).await;
    Ok(tools)
}

/// Starts or reaches a server and lists its tools within its `timeout`; a failure quotes the end
/// of a local server's stderr.
async fn start_and_list(
    spec: &McpServer,
    stderr: &Arc<StdMutex<VecDeque<String>>>,
) -> Result<(Connection, Vec<RemoteTool>), String> {
    let timeout = spec
        .timeout_seconds
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_START_TIMEOUT);
    let started = tokio::time::timeout(timeout, async {
        let connection = connect(spec, stderr.clone()).await?;
        let tools = list(&connection).await?;
        Ok::<_, String>((connection, tools))
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "did not start and list its tools within {:.0}s",
            timeout.as_secs_f64()
        ))
    });
    started.map_err(|message| format!("{message}{}", last_words(stderr)))
}

/// The end of a server's stderr, to explain a failure (empty if it said nothing).
fn last_words(stderr: &StdMutex<VecDeque<String>>) -> String {
    let lines = stderr.lock().map(|l| l.clone()).unwrap_or_default();
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            "; its last words on stderr:\n    {}",
            lines.into_iter().collect::<Vec<_>>().join("\n    ")
        )
    }
}

/// A string literal of the ladder language.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What `ladderc mcp pull` writes: the ladder declarations of a server's tools, and for each
/// tool what could not be lowered exactly (also returned, to be shown to the user).
pub fn declarations(
    server: &str,
    source: &str,
    tools: &[RemoteTool],
    only: &[String],
) -> (String, Vec<String>) {
    let mut text = format!(
        "ladder 1\n// The tools of MCP server `{server}`, pinned by `ladderc mcp pull` from {source}.\n\
         // `ladderc run`, `test --live-tools` and `serve` compare them with the live server at start:\n\
         // a changed signature stops the run. Pull again and review the diff when the server changes.\n\
         #![allow(unused)]\n"
    );
    let mut notes = Vec::new();
    for tool in tools {
        if !only.is_empty() && !only.iter().any(|o| o == &tool.name) {
            continue;
        }
        let name = schema::ladder_name(&tool.name);
        let sig = schema::lower(&tool.input_schema);
        text.push('\n');
        if let Some(why) = &sig.unusable {
            notes.push(format!("`{}` is left out: {why}", tool.name));
            text.push_str(&format!("// `{}` is left out: {why}.\n", tool.name));
            continue;
        }
        for n in &sig.notes {
            notes.push(format!("`{}`: {n}", tool.name));
            text.push_str(&format!("// {n}\n"));
        }
        let params: Vec<String> = sig
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        text.push_str(&format!("tool {name}({}) {{\n", params.join(", ")));
        let description = tool
            .description
            .clone()
            .unwrap_or_else(|| format!("The `{}` tool of {server}.", tool.name));
        text.push_str(&format!("  {}\n", literal(description.trim())));
        if name == tool.name {
            text.push_str(&format!("  mcp {server}\n"));
        } else {
            text.push_str(&format!("  mcp {server} {}\n", literal(&tool.name)));
        }
        text.push_str("}\n");
    }
    (text, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_read_as_the_model_needs_them() {
        assert_eq!(
            result_value(&json!({"content": [{"type": "text", "text": "5"}]})),
            json!("5")
        );
        assert_eq!(
            result_value(
                &json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"t": 1}})
            ),
            json!({"t": 1})
        );
        let mixed = result_value(&json!({"content": [
            {"type": "text", "text": "logo"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"}
        ]}));
        assert_eq!(mixed[0], json!("logo"));
        assert_eq!(mixed[1]["mimeType"], json!("image/png"));
        assert!(!mixed.to_string().contains("AAAA"));
        assert_eq!(result_value(&json!({"content": []})), Value::Null);
    }

    #[test]
    fn declarations_escape_and_name_what_they_leave_out() {
        let tools = vec![
            RemoteTool {
                name: "get-sum".into(),
                description: Some("Adds \"two\"\nnumbers".into()),
                input_schema: json!({"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]})
                    .as_object()
                    .unwrap()
                    .clone(),
                read_only: true,
            },
            RemoteTool {
                name: "odd".into(),
                description: None,
                input_schema: json!({"properties": {"x-y": {"type": "string"}}, "required": ["x-y"]})
                    .as_object()
                    .unwrap()
                    .clone(),
                read_only: false,
            },
        ];
        let (text, notes) = declarations("everything", "a test", &tools, &[]);
        assert!(text.contains("tool get_sum(a: number) {\n  \"Adds \\\"two\\\"\\nnumbers\"\n  mcp everything \"get-sum\"\n}"), "{text}");
        assert!(text.contains("// `odd` is left out"));
        assert_eq!(notes.len(), 1);
        let (only, _) = declarations("everything", "a test", &tools, &["odd".into()]);
        assert!(!only.contains("get_sum"));
    }
}
