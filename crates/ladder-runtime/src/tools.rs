//! Running tools: `mock`, `host` (registered by the embedder), `http` and `exec`.

use async_trait::async_trait;
use ladder_program::{BoundParam, HeaderValue, Tool, ToolImpl};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A tool implemented by the program embedding the runtime (`host` in a ladder).
#[async_trait]
pub trait HostTool: Send + Sync {
    /// Runs the tool with the validated arguments (bound parameters included).
    async fn call(&self, arguments: Value) -> Result<Value, String>;
}

/// Runs the tools of the ladder's MCP servers (`mcp SERVER` in a tool). Implemented by the
/// `ladder-mcp` crate, which owns the server processes and connections; the runtime applies the
/// tool's timeout and retries around each call.
#[async_trait]
pub trait McpTools: Send + Sync {
    /// Calls `tool` on `server` with the arguments (bound parameters included). The idempotency key
    /// is the same when the same call is run again. An error (a protocol error, or a result the
    /// server marked `isError`) is the text the model reads.
    async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Map<String, Value>,
        idempotency_key: &str,
    ) -> Result<Value, String>;
}

/// Adapts an async closure into a [`HostTool`].
pub(crate) struct FnTool<F>(pub F);

#[async_trait]
impl<F, Fut> HostTool for FnTool<F>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, String>> + Send,
{
    async fn call(&self, arguments: Value) -> Result<Value, String> {
        (self.0)(arguments).await
    }
}

/// What a tool call needs from its surroundings.
pub(crate) struct ToolContext<'a> {
    pub http: &'a reqwest::Client,
    pub host_tools: &'a HashMap<String, Arc<dyn HostTool>>,
    pub mcp: Option<&'a dyn McpTools>,
    pub allow_exec: bool,
    pub vars: &'a Map<String, Value>,
    /// Derived from session, turn and call index: the same call re-run sends the same key.
    pub idempotency_key: String,
}

const DEFAULT_TIMEOUT: f64 = 10.0;

/// Adds bound parameters (hidden from the model) to the model's arguments.
pub(crate) fn bind(
    tool: &Tool,
    mut arguments: Map<String, Value>,
    vars: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    for (name, bound) in &tool.bound {
        let value = match bound {
            BoundParam::Literal { value } => value.clone(),
            BoundParam::Session { var } => vars.get(var).cloned().unwrap_or(Value::Null),
            BoundParam::Env { name: env } => Value::String(
                std::env::var(env).map_err(|_| format!("environment variable {env} is not set"))?,
            ),
        };
        arguments.insert(name.clone(), value);
    }
    Ok(arguments)
}

pub(crate) async fn run(
    name: &str,
    tool: &Tool,
    arguments: Map<String, Value>,
    cx: &ToolContext<'_>,
) -> Result<Value, String> {
    let timeout = Duration::from_secs_f64(tool.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT));
    let arguments = bind(tool, arguments, cx.vars)?;
    match &tool.implementation {
        ToolImpl::Mock { result } => Ok(result.clone()),
        ToolImpl::Host { name: host } => {
            let f = cx
                .host_tools
                .get(host)
                .ok_or_else(|| format!("host tool `{host}` is not registered by this program"))?;
            within(name, timeout, f.call(Value::Object(arguments))).await
        }
        ToolImpl::Http {
            method,
            url,
            bearer_env,
            headers,
            body,
        } => {
            http(
                name,
                tool,
                method,
                url,
                bearer_env.as_deref(),
                headers,
                body.as_ref(),
                &arguments,
                timeout,
                cx,
            )
            .await
        }
        ToolImpl::Fail { message } => Err(message.clone()),
        ToolImpl::Mcp {
            server,
            tool: remote,
        } => {
            let mcp = cx.mcp.ok_or_else(|| {
                format!("tool `{name}` is served by MCP server `{server}`, which this program does not connect to")
            })?;
            within(
                name,
                timeout,
                mcp.call(server, remote, arguments, &cx.idempotency_key),
            )
            .await
        }
        ToolImpl::Exec { program, args } => {
            if !cx.allow_exec {
                return Err(format!("tool `{name}` runs a local program, which this run does not allow (use --allow-exec)"));
            }
            exec(name, program, args, &arguments, timeout).await
        }
    }
}

/// A call that must finish within the tool's timeout; past it, an error the model reads.
async fn within(
    name: &str,
    timeout: Duration,
    call: impl Future<Output = Result<Value, String>>,
) -> Result<Value, String> {
    tokio::time::timeout(timeout, call).await.map_err(|_| {
        format!(
            "tool `{name}` timed out after {:.1}s",
            timeout.as_secs_f64()
        )
    })?
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Replaces each `{param}` of `template` in one pass, left to right. What a value brings in is
/// never scanned again: a model's argument `"{token}"` stays that text and cannot pull in the
/// bound secret `token`; a bound value appears only where the ladder wrote its placeholder.
fn fill_once(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let filled = after
            .find('}')
            .and_then(|close| value(&after[..close]).map(|v| (v, close)));
        match filled {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces `{param}` in a URL with the URL-encoded argument.
fn fill_url(url: &str, arguments: &Map<String, Value>) -> String {
    fill_once(url, |k| {
        arguments.get(k).map(|v| percent_encode(&as_text(v)))
    })
}

/// In a body template, a string that is exactly `"{param}"` becomes the argument (any type);
/// `{param}` inside a longer string is replaced by its text.
fn fill_body(body: &Value, arguments: &Map<String, Value>) -> Value {
    match body {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                if let Some(v) = arguments.get(name) {
                    return v.clone();
                }
            }
            Value::String(fill_once(s, |k| arguments.get(k).map(as_text)))
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| fill_body(i, arguments)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_body(v, arguments)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn http(
    name: &str,
    tool: &Tool,
    method: &str,
    url: &str,
    bearer_env: Option<&str>,
    headers: &[(String, HeaderValue)],
    body: Option<&Value>,
    arguments: &Map<String, Value>,
    timeout: Duration,
    cx: &ToolContext<'_>,
) -> Result<Value, String> {
    let url = fill_url(url, arguments);
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let idempotent = matches!(
        method,
        reqwest::Method::GET | reqwest::Method::PUT | reqwest::Method::DELETE
    ) || tool.retries > 0 && method == reqwest::Method::PATCH;
    let attempts = if idempotent { tool.retries + 1 } else { 1 };
    let mut last_error = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * (1 << attempt.min(6)))).await;
        }
        let mut request = cx
            .http
            .request(method.clone(), &url)
            .timeout(timeout)
            .header("Idempotency-Key", &cx.idempotency_key);
        if let Some(env) = bearer_env {
            let token =
                std::env::var(env).map_err(|_| format!("environment variable {env} is not set"))?;
            request = request.bearer_auth(token);
        }
        for (header, value) in headers {
            let value = match value {
                HeaderValue::Literal { value } => value.clone(),
                HeaderValue::Env { name: env } => std::env::var(env)
                    .map_err(|_| format!("environment variable {env} is not set"))?,
            };
            request = request.header(header, value);
        }
        if method != reqwest::Method::GET {
            let payload = match body {
                Some(template) => fill_body(template, arguments),
                None => Value::Object(arguments.clone()),
            };
            request = request.json(&payload);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response
                    .text()
                    .await
                    .map_err(|e| format!("tool `{name}`: reading the answer failed: {e}"))?;
                if status.is_success() {
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
                }
                last_error = format!(
                    "tool `{name}`: {} answered {status}: {}",
                    url_host(&url),
                    truncate(&text)
                );
                if !status.is_server_error() {
                    break;
                }
            }
            Err(e) if e.is_timeout() => {
                last_error = format!(
                    "tool `{name}` timed out after {:.1}s",
                    timeout.as_secs_f64()
                )
            }
            Err(e) => last_error = format!("tool `{name}`: request failed: {}", e.without_url()),
        }
    }
    Err(last_error)
}

fn url_host(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

async fn exec(
    name: &str,
    program: &str,
    args: &[String],
    arguments: &Map<String, Value>,
    timeout: Duration,
) -> Result<Value, String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("tool `{name}`: cannot start `{program}`: {e}"))?;
    let input = serde_json::to_vec(arguments).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is fine; its output decides.
        let _ = stdin.write_all(&input).await;
    }
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "tool `{name}` timed out after {:.1}s",
                timeout.as_secs_f64()
            )
        })?
        .map_err(|e| format!("tool `{name}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "tool `{name}`: `{program}` exited with {}: {}",
            output.status,
            truncate(&String::from_utf8_lossy(&output.stderr))
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .map_err(|e| format!("tool `{name}`: `{program}` did not print JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_bodies_are_filled() {
        let args: Map<String, Value> = json!({"phone": "+44 20", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            fill_url("https://x/p?phone={phone}&n={n}", &args),
            "https://x/p?phone=%2B44%2020&n=3"
        );
        assert_eq!(
            fill_body(&json!({"a": "{n}", "b": "tel {phone}"}), &args),
            json!({"a": 3, "b": "tel +44 20"})
        );
    }

    /// The exfiltration the hostile-input review found: a model argument `"{token}"` used to
    /// receive the bound `env(..)` secret, because placeholders were substituted argument by
    /// argument.
    #[test]
    fn a_model_argument_cannot_pull_in_a_bound_secret() {
        let args: Map<String, Value> = json!({"text": "{token}", "token": "s3cret"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            fill_body(&json!({"msg": "{text} (via ladder)"}), &args),
            json!({"msg": "{token} (via ladder)"})
        );
        assert_eq!(
            fill_url("https://x/n?q={text}", &args),
            "https://x/n?q=%7Btoken%7D"
        );
        // Where the ladder put the placeholder, the secret goes.
        assert_eq!(
            fill_body(&json!({"auth": "Bearer {token}"}), &args),
            json!({"auth": "Bearer s3cret"})
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// No argument value can make a bound value appear in a request, unless the template
        /// names the bound parameter itself.
        #[test]
        fn no_argument_value_brings_in_a_bound_value(
            text in "[{}a-z_ ]{0,24}",
            extra in "[{}a-z_]{0,12}",
            template in "[a-z {}]{0,10}\\{text\\}[a-z {}]{0,10}",
        ) {
            let args: Map<String, Value> = json!({"text": text, "other": extra, "token": "SECRET-XYZ"})
                .as_object()
                .unwrap()
                .clone();
            let names_token = template.contains("{token}");
            let body = fill_body(&json!({"m": template.clone(), "n": ["{other}"]}), &args).to_string();
            let url = fill_url(&format!("https://x/?q={template}"), &args);
            if !names_token {
                proptest::prop_assert!(!body.contains("SECRET-XYZ"), "{}", body);
                proptest::prop_assert!(!url.contains("SECRET-XYZ"), "{}", url);
            }
        }
    }
}
