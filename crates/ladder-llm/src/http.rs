//! What every HTTP model backend shares: one streamed POST per attempt (status errors,
//! timeouts, server-sent events fed to a [`Wire`] assembler, a plain JSON answer accepted too),
//! and the retry policy around the attempts.

use futures_util::StreamExt;
use ladder_runtime::{BackendError, ChatResponse, DeltaSink};
use serde_json::{json, Value};
use std::time::Duration;

/// Retry policy. Retried, while no text has reached the caller: connect errors and timeouts,
/// 429, 502, 503, 504 and 529 answers, streams dropped, and malformed answers (empty, `content`
/// that is not text, no message), up to `attempts`. An HTTP 500 is retried once only: a server
/// that failed on this very request usually fails on it again, so it is retried once, at a
/// temperature raised by 0.4 (at most 1): never resent unchanged. An `error` inside the stream is
/// retried the same way, then reported as [`BackendError::Generation`], which the runtime answers
/// with a correction. 4xx answers other than 429 are not retried. A `Retry-After` header is
/// obeyed (up to `max_delay`).
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

impl Retry {
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(1 << attempt.min(16));
        let jitter = backoff.mul_f64(fastrand::f64() * 0.5);
        retry_after.unwrap_or(backoff + jitter).min(self.max_delay)
    }
}

/// The HTTP client of a backend: connections kept for many concurrent sessions.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap_or_default()
}

/// How much a retry after a server-side failure raises the temperature.
const RESAMPLE_STEP: f64 = 0.4;

/// Whether a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Again {
    No,
    /// Retried once, at a raised temperature: an HTTP 500, or an `error` inside the stream
    /// (the server failed on what the model generated, e.g. llama.cpp on a call of a function
    /// it was not offered).
    Once,
    Yes,
}

/// One protocol's answer, assembled from its stream.
pub(crate) trait Wire: Default {
    /// One `data:` payload of the stream; the text it adds for the caller, if any.
    fn add(&mut self, data: &Value) -> Result<Option<String>, BackendError>;
    /// Whether the stream said the answer is complete (it may end here).
    fn finished(&self) -> bool;
    /// The answer.
    fn finish(self) -> Result<ChatResponse, BackendError>;
    /// An answer that came as one JSON document instead of a stream.
    fn whole(value: &Value) -> Result<ChatResponse, BackendError>;
}

/// One request: where, with which headers, and for how long.
pub(crate) struct Post<'a> {
    pub client: &'a reqwest::Client,
    /// The endpoint, also named in errors (a 401 key, a 404 model, a refused connection).
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub timeout: Duration,
}

impl<'a> Post<'a> {
    /// The POST of `request` to `path` under its model's endpoint (`base_url`, else `base`), with
    /// its key (`api_key: env(..)`, else `key`) as `auth(key)` headers, and its timeout.
    pub fn of(
        client: &'a reqwest::Client,
        request: &ladder_runtime::ChatRequest,
        (base, path): (&str, &str),
        key: Option<&String>,
        auth: impl FnOnce(String) -> Vec<(&'static str, String)>,
        timeout: Duration,
    ) -> Self {
        let base = request
            .base_url
            .as_deref()
            .unwrap_or(base)
            .trim_end_matches('/');
        let key = request
            .api_key_env
            .as_ref()
            .and_then(|e| std::env::var(e).ok())
            .or_else(|| key.cloned());
        Post {
            client,
            url: format!("{base}/{path}"),
            headers: key.map(auth).unwrap_or_default(),
            timeout: request
                .timeout_seconds
                .map(Duration::from_secs_f64)
                .unwrap_or(timeout),
        }
    }
}

type Failure = (BackendError, Again, Option<Duration>);

/// One attempt.
async fn attempt<W: Wire>(
    post: &Post<'_>,
    body: &bytes::Bytes,
    on_text: DeltaSink<'_>,
    sent_text: &mut bool,
) -> Result<ChatResponse, Failure> {
    let timeout = post.timeout;
    let mut http = post
        .client
        .post(&post.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .timeout(timeout);
    for (name, value) in &post.headers {
        http = http.header(*name, value);
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
                BackendError::Connect(format!("{}: {}", post.url, error_chain(&e))),
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
            BackendError::Status {
                status: status.as_u16(),
                body: format!("{}: {}", post.url, &body[..end]),
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
        // Some servers ignore `stream: true`; accept a whole answer too.
        let value: Value = response
            .json()
            .await
            .map_err(|e| (BackendError::Protocol(e.to_string()), Again::Yes, None))?;
        let answer = W::whole(&value).map_err(|e| (e, Again::Yes, None))?;
        if let Some(text) = answer.content.as_deref().filter(|t| !t.is_empty()) {
            *sent_text |= on_text.text(text);
        }
        return Ok(answer);
    }
    let mut wire = W::default();
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
                    BackendError::Protocol(format!("the stream broke off: {}", e.without_url())),
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
            // `event:` lines name what the `data:` line that follows says again in its JSON.
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                return wire.finish().map_err(|e| (e, Again::Yes, None));
            }
            let value: Value = serde_json::from_str(data).map_err(|e| {
                (
                    BackendError::Protocol(format!("bad stream chunk: {e}")),
                    Again::Yes,
                    None,
                )
            })?;
            if let Some(text) = wire.add(&value).map_err(|e| {
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
    // The stream ended without an end marker: complete if the model said it had finished.
    if wire.finished() {
        return wire.finish().map_err(|e| (e, Again::Yes, None));
    }
    Err((
        BackendError::Protocol("the stream ended before the answer was complete".into()),
        Again::Yes,
        None,
    ))
}

/// Attempts under the retry policy. `body["temperature"]` is raised on a resample.
pub(crate) async fn complete<W: Wire>(
    retry: &Retry,
    post: &Post<'_>,
    body: Value,
    on_text: DeltaSink<'_>,
) -> Result<ChatResponse, BackendError> {
    // The body is held as bytes while the request is in flight (and shared by retries), not as
    // a JSON tree: a tree's nodes cost several times its text (BENCHMARKS.md, "Memory per
    // in-flight session").
    let mut bytes = bytes::Bytes::from(serde_json::to_vec(&body).expect("a JSON value serialises"));
    drop(body);
    let mut tries = 0;
    let mut server_errors = 0;
    loop {
        let mut sent_text = false;
        match attempt::<W>(post, &bytes, on_text, &mut sent_text).await {
            Ok(r) => return Ok(r),
            // Text already shown to the user cannot be taken back: a retry would repeat it.
            Err((error, again, retry_after)) => {
                tries += 1;
                let resample = again == Again::Once;
                let again = match again {
                    Again::No => false,
                    Again::Yes => true,
                    Again::Once => {
                        server_errors += 1;
                        server_errors < 2
                    }
                };
                if !again || sent_text || tries >= retry.attempts {
                    return Err(error);
                }
                // The server failed on what the model generated: the same request at the
                // same temperature would likely generate it again.
                if resample {
                    let mut body: Value =
                        serde_json::from_slice(&bytes).expect("the body was serialised here");
                    let t = body["temperature"].as_f64().unwrap_or(0.0);
                    body["temperature"] = json!((t + RESAMPLE_STEP).min(1.0));
                    bytes = serde_json::to_vec(&body)
                        .expect("a JSON value serialises")
                        .into();
                }
                on_text.restart();
                on_text.retrying(&error);
                tokio::time::sleep(retry.delay(tries - 1, retry_after)).await;
            }
        }
    }
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

/// An answer with neither text nor a tool call is no answer: it must not become a silent empty
/// reply.
pub(crate) fn answer(response: ChatResponse) -> Result<ChatResponse, BackendError> {
    if response.content.is_none() && response.tool_calls.is_empty() {
        return Err(BackendError::Protocol(
            "the model's answer was empty (no text and no tool call)".into(),
        ));
    }
    Ok(response)
}
