//! A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.
//! It speaks the real protocol over real HTTP: `POST /v1/chat/completions`, streamed as SSE
//! (text deltas, tool-call deltas split across chunks, a usage chunk, `[DONE]`) or as one JSON
//! answer. Replies are taken from a queue in order; when it is empty the default reply is used.
//!
//! It is strict: every request is checked against the API's rules ([`validate`]) and a violation
//! is answered with HTTP 400 in OpenAI's error shape, as the real API would, and recorded
//! ([`FakeOpenAi::rejections`]). Its answers are checked by the official `openai` Python SDK in
//! the oracle test (`tests/oracle.rs`).
//!
//! The same server speaks Anthropic's Messages API at `POST /v1/messages` ([`anthropic`]), from
//! the same queue, as strictly; the official `anthropic` SDK checks those answers.

#![warn(missing_docs)]

pub mod anthropic;
pub mod validate;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A text answer, streamed word by word.
    Text(String),
    /// Tool calls: (function name, arguments).
    ToolCalls(Vec<(String, Value)>),
    /// An error status, with an optional `Retry-After` in seconds.
    Status {
        /// The HTTP status (429, 500, 503, ...).
        status: u16,
        /// The `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// Streams this text, then cuts the connection without finishing.
    Drop {
        /// The text streamed before the cut.
        partial: String,
    },
    /// A chunk that is not JSON.
    Malformed,
    /// An `error` object inside a 200 stream (or body) before any text, as OpenAI and llama.cpp
    /// send when generation fails after the headers went out.
    StreamError {
        /// The error's message.
        message: String,
    },
    /// Text, then an `error` object in the same stream (llama.cpp's answer when the model's
    /// output turns into a call it cannot parse after some text).
    TextThenError {
        /// The text streamed first.
        text: String,
        /// The error's message.
        message: String,
    },
    /// `[DONE]` before any chunk.
    DoneFirst,
    /// `content` that is not a string (`5`).
    NumberContent,
    /// `choices: []` and nothing else.
    EmptyChoices,
    /// `message: null` (`delta: null` when streamed).
    NullMessage,
    /// A text answer streamed one word every `gap` (a slow model).
    SlowText {
        /// The whole answer.
        text: String,
        /// The pause before each word.
        gap: Duration,
    },
    /// One tool call whose arguments are this exact text (which need not be JSON).
    RawToolCall {
        /// The function's name.
        name: String,
        /// The arguments, sent as they are.
        arguments: String,
    },
    /// A tool call cut by `max_tokens`: partial arguments, `finish_reason: "length"`.
    Truncated {
        /// The function's name.
        name: String,
        /// The arguments as far as they got.
        partial_arguments: String,
    },
}

impl Reply {
    /// A text answer.
    pub fn text(t: impl Into<String>) -> Self {
        Reply::Text(t.into())
    }

    /// One tool call.
    pub fn tool(name: impl Into<String>, arguments: Value) -> Self {
        Reply::ToolCalls(vec![(name.into(), arguments)])
    }
}

#[derive(Debug, Clone)]
struct Step {
    reply: Reply,
    delay: Duration,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Step>>,
    default: Mutex<Option<Step>>,
    requests: Mutex<Vec<Value>>,
    headers: Mutex<Vec<HeaderMap>>,
    rejections: Mutex<Vec<(Value, validate::Violation)>>,
    /// (prompt, completion, cached prompt) tokens reported per answer.
    usage: Mutex<Option<(u64, u64, u64)>>,
    /// Prompt tokens written to the cache per answer (the Messages API reports them).
    cache_writes: Mutex<u64>,
}

impl Shared {
    /// Records a request; its number (from 1) and the scripted reply it gets, if any.
    fn take(&self, body: Value, headers: HeaderMap) -> (usize, Option<Step>) {
        let call_number = {
            let mut requests = self.requests.lock().expect("lock");
            requests.push(body);
            self.headers.lock().expect("lock").push(headers);
            requests.len()
        };
        let step = self
            .queue
            .lock()
            .expect("lock")
            .pop_front()
            .or_else(|| self.default.lock().expect("lock").clone());
        (call_number, step)
    }
}

/// A scripted error answer: `status` with `body`, and `Retry-After` when scripted.
fn status_response(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, Json(body)).into_response();
    if let Some(s) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            s.to_string().parse().expect("header value"),
        );
    }
    response
}

/// A running fake server; it stops when dropped.
pub struct FakeOpenAi {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeOpenAi {
    /// Starts on a free port of 127.0.0.1. Must be called inside a tokio runtime.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/messages", post(anthropic::messages))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        FakeOpenAi {
            addr,
            shared,
            _shutdown: tx,
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a reply.
    pub fn push(&self, reply: Reply) -> &Self {
        self.push_delayed(reply, Duration::ZERO)
    }

    /// Queues a reply sent after `delay`.
    pub fn push_delayed(&self, reply: Reply, delay: Duration) -> &Self {
        self.shared
            .queue
            .lock()
            .expect("lock")
            .push_back(Step { reply, delay });
        self
    }

    /// The reply when the queue is empty (by default: status 500, so a missing script is loud).
    pub fn set_default(&self, reply: Reply, delay: Duration) {
        *self.shared.default.lock().expect("lock") = Some(Step { reply, delay });
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// The headers of every request received, in order.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.shared.headers.lock().expect("lock").clone()
    }

    /// Requests answered with 400 because they broke the API's rules, with the reason.
    pub fn rejections(&self) -> Vec<(Value, validate::Violation)> {
        self.shared.rejections.lock().expect("lock").clone()
    }

    /// Panics, naming the violation, if any request was rejected: the check every test that
    /// drives the runtime against the fake ends with.
    pub fn assert_no_rejections(&self) {
        if let Some((body, v)) = self.rejections().first() {
            panic!(
                "the fake rejected a request ({}: {}):\n{}",
                v.param,
                v.message,
                serde_json::to_string_pretty(body).unwrap_or_default()
            );
        }
    }

    /// The usage every answer reports: prompt, completion and cached prompt tokens
    /// (default 100, 20, 0).
    pub fn set_usage(&self, prompt: u64, completion: u64, cached: u64) {
        *self.shared.usage.lock().expect("lock") = Some((prompt, completion, cached));
    }

    /// Prompt tokens each Messages answer reports as written to the cache (default 0); part of
    /// the prompt of [`FakeOpenAi::set_usage`].
    pub fn set_cache_writes(&self, tokens: u64) {
        *self.shared.cache_writes.lock().expect("lock") = tokens;
    }

    /// How many scripted replies have not been used yet.
    pub fn remaining(&self) -> usize {
        self.shared.queue.lock().expect("lock").len()
    }
}

fn sse(chunks: Vec<Value>, done: bool) -> String {
    let mut body = String::new();
    for c in chunks {
        body.push_str(&format!("data: {c}\n\n"));
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

fn usage(shared: &Shared) -> Value {
    let (prompt, completion, cached) = shared.usage.lock().expect("lock").unwrap_or((100, 20, 0));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// The fields every chunk and completion carries.
fn envelope(object: &str, model: &str, call_number: usize) -> Value {
    json!({
        "id": format!("chatcmpl-fake{call_number}"),
        "object": object,
        "created": 1_764_000_000u64,
        "model": model,
        "system_fingerprint": "fp_fake",
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let bad_request =
        |v: &validate::Violation| (StatusCode::BAD_REQUEST, Json(v.body())).into_response();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let v = validate::Violation {
                param: String::new(),
                message: format!("We could not parse the JSON body of your request. ({e})"),
            };
            shared
                .rejections
                .lock()
                .expect("lock")
                .push((Value::Null, v.clone()));
            return bad_request(&v);
        }
    };
    if let Err(v) = validate::request(&body) {
        shared
            .rejections
            .lock()
            .expect("lock")
            .push((body, v.clone()));
        return bad_request(&v);
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let (call_number, step) = shared.take(body, headers);
    let Some(step) = step else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "the fake server has no scripted reply left", "type": "server_error", "param": null, "code": null}})),
        )
            .into_response();
    };
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let chunk_base = envelope("chat.completion.chunk", &model, call_number);
    let delta = |delta: Value, finish: Option<&str>| {
        with(
            chunk_base.clone(),
            "choices",
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        )
    };
    // A text answer as real servers stream it: the role, one chunk a word, the finish.
    let word_chunks = |text: &str| {
        let mut chunks = vec![delta(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        for word in text.split_inclusive(' ') {
            chunks.push(delta(json!({"content": word}), None));
        }
        chunks.push(delta(json!({}), Some("stop")));
        chunks
    };
    let usage_chunk = || {
        with(
            with(chunk_base.clone(), "choices", json!([])),
            "usage",
            usage(&shared),
        )
    };
    let completion = |message: Value, finish: &str| {
        let base = with(
            envelope("chat.completion", &model, call_number),
            "choices",
            json!([{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}]),
        );
        Json(with(base, "usage", usage(&shared))).into_response()
    };
    let event_stream = |body: String| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(body))
            .expect("response")
    };
    let finish_stream = |mut chunks: Vec<Value>| {
        if include_usage {
            chunks.push(usage_chunk());
        }
        event_stream(sse(chunks, true))
    };
    let call_json = |i: usize, name: &str, args: &str| json!({"id": format!("call_{call_number}_{i}"), "type": "function", "function": {"name": name, "arguments": args}});
    match step.reply {
        Reply::Status {
            status,
            retry_after,
        } => {
            let kind = match status {
                429 => "rate_limit_exceeded",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            status_response(
                status,
                json!({"error": {"message": "scripted error", "type": kind, "param": null, "code": null}}),
                retry_after,
            )
        }
        Reply::Malformed => event_stream("data: {not json\n\n".into()),
        Reply::Drop { partial } => {
            let first = format!(
                "data: {}\n\n",
                delta(json!({"role": "assistant", "content": partial}), None)
            );
            let chunks: Vec<Result<String, std::io::Error>> = vec![
                Ok(first),
                Err(std::io::Error::other("connection cut by the fake server")),
            ];
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .expect("response")
        }
        Reply::StreamError { message } => {
            let error = json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
            if stream {
                event_stream(format!("data: {error}\n\n"))
            } else {
                Json(error).into_response()
            }
        }
        Reply::TextThenError { text, message } => {
            let mut body = sse(
                vec![delta(json!({"role": "assistant", "content": text}), None)],
                false,
            );
            body.push_str(&format!(
                "data: {}\n\n",
                json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}})
            ));
            event_stream(body)
        }
        Reply::DoneFirst if stream => event_stream(sse(Vec::new(), true)),
        Reply::DoneFirst => completion(
            json!({"role": "assistant", "content": null, "refusal": null}),
            "stop",
        ),
        Reply::NumberContent if stream => finish_stream(vec![
            delta(json!({"role": "assistant", "content": 5}), None),
            delta(json!({}), Some("stop")),
        ]),
        Reply::NumberContent => completion(json!({"role": "assistant", "content": 5}), "stop"),
        Reply::EmptyChoices if stream => event_stream(sse(
            vec![with(chunk_base.clone(), "choices", json!([]))],
            true,
        )),
        Reply::EmptyChoices => Json(with(
            with(
                envelope("chat.completion", &model, call_number),
                "choices",
                json!([]),
            ),
            "usage",
            usage(&shared),
        ))
        .into_response(),
        Reply::NullMessage if stream => finish_stream(vec![
            delta(Value::Null, None),
            delta(Value::Null, Some("stop")),
        ]),
        Reply::NullMessage => completion(Value::Null, "stop"),
        Reply::SlowText { text, gap } => {
            let mut chunks = word_chunks(&text);
            if include_usage {
                chunks.push(usage_chunk());
            }
            let mut lines: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            lines.push("data: [DONE]\n\n".into());
            let body =
                futures_util::stream::unfold(lines.into_iter(), move |mut rest| async move {
                    let line = rest.next()?;
                    tokio::time::sleep(gap).await;
                    Some((Ok::<_, std::io::Error>(line), rest))
                });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(body))
                .expect("response")
        }
        Reply::RawToolCall { name, arguments } if stream => finish_stream(vec![
            delta(
                json!({"role": "assistant", "content": null, "tool_calls": [with(call_json(0, &name, &arguments), "index", json!(0))]}),
                None,
            ),
            delta(json!({}), Some("tool_calls")),
        ]),
        Reply::RawToolCall { name, arguments } => completion(
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [call_json(0, &name, &arguments)]}),
            "tool_calls",
        ),
        Reply::Truncated {
            name,
            partial_arguments,
        } if stream => finish_stream(vec![
            delta(
                json!({"role": "assistant", "content": null, "tool_calls": [with(call_json(0, &name, ""), "index", json!(0))]}),
                None,
            ),
            delta(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": partial_arguments}}]}),
                None,
            ),
            delta(json!({}), Some("length")),
        ]),
        Reply::Truncated {
            name,
            partial_arguments,
        } => completion(
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [call_json(0, &name, &partial_arguments)]}),
            "length",
        ),
        Reply::Text(text) if stream => finish_stream(word_chunks(&text)),
        Reply::ToolCalls(calls) if stream => {
            let mut chunks = vec![delta(
                json!({"role": "assistant", "content": null, "refusal": null}),
                None,
            )];
            for (i, (name, args)) in calls.iter().enumerate() {
                // Split the arguments over two chunks, as real servers do.
                let args = args.to_string();
                let mid = args.len() / 2;
                let (a, b) = args.split_at(
                    args.char_indices()
                        .map(|(i, _)| i)
                        .find(|i| *i >= mid)
                        .unwrap_or(0),
                );
                chunks.push(delta(
                    json!({"tool_calls": [with(call_json(i, name, a), "index", json!(i))]}),
                    None,
                ));
                chunks.push(delta(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}),
                    None,
                ));
            }
            chunks.push(delta(json!({}), Some("tool_calls")));
            finish_stream(chunks)
        }
        Reply::Text(text) => completion(
            json!({"role": "assistant", "content": text, "refusal": null}),
            "stop",
        ),
        Reply::ToolCalls(calls) => completion(
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": calls.iter().enumerate().map(|(i, (n, a))| call_json(i, n, &a.to_string())).collect::<Vec<_>>()}),
            "tool_calls",
        ),
    }
}
