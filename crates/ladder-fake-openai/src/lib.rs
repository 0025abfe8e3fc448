//! A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.
//! It speaks the real protocol over real HTTP: `POST /v1/chat/completions`, streamed as SSE
//! (text deltas, tool-call deltas split across chunks, a usage chunk, `[DONE]`) or as one JSON
//! answer. Replies are taken from a queue in order; when it is empty the default reply is used.

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
        status: u16,
        retry_after: Option<u64>,
    },
    /// Streams this text, then cuts the connection without finishing.
    Drop { partial: String },
    /// A chunk that is not JSON.
    Malformed,
}

impl Reply {
    pub fn text(t: impl Into<String>) -> Self {
        Reply::Text(t.into())
    }

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

fn usage_chunk() -> Value {
    json!({"id": "fake", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
}

fn delta(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "fake", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let call_number = {
        let mut requests = shared.requests.lock().expect("lock");
        requests.push(body);
        shared.headers.lock().expect("lock").push(headers);
        requests.len()
    };
    let step = shared
        .queue
        .lock()
        .expect("lock")
        .pop_front()
        .or_else(|| shared.default.lock().expect("lock").clone());
    let Some(step) = step else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the fake server has no scripted reply left",
        )
            .into_response();
    };
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let event_stream = |body: String| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(body))
            .expect("response")
    };
    match step.reply {
        Reply::Status { status, retry_after } => {
            let mut response = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(json!({"error": {"message": "scripted error"}}))).into_response();
            if let Some(s) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, s.to_string().parse().expect("header value"));
            }
            response
        }
        Reply::Malformed => event_stream("data: {not json\n\n".into()),
        Reply::Drop { partial } => {
            let first = format!("data: {}\n\n", delta(json!({"role": "assistant", "content": partial}), None));
            let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(first), Err(std::io::Error::other("connection cut by the fake server"))];
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .expect("response")
        }
        Reply::Text(text) if stream => {
            let mut chunks = vec![delta(json!({"role": "assistant", "content": ""}), None)];
            for word in text.split_inclusive(' ') {
                chunks.push(delta(json!({"content": word}), None));
            }
            chunks.push(delta(json!({}), Some("stop")));
            chunks.push(usage_chunk());
            event_stream(sse(chunks, true))
        }
        Reply::ToolCalls(calls) if stream => {
            let mut chunks = vec![delta(json!({"role": "assistant", "content": null}), None)];
            for (i, (name, args)) in calls.iter().enumerate() {
                // Split the arguments over two chunks, as real servers do.
                let args = args.to_string();
                let mid = args.len() / 2;
                let (a, b) = args.split_at(args.char_indices().map(|(i, _)| i).find(|i| *i >= mid).unwrap_or(0));
                chunks.push(delta(json!({"tool_calls": [{"index": i, "id": format!("call_{call_number}_{i}"), "type": "function", "function": {"name": name, "arguments": a}}]}), None));
                chunks.push(delta(json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}), None));
            }
            chunks.push(delta(json!({}), Some("tool_calls")));
            chunks.push(usage_chunk());
            event_stream(sse(chunks, true))
        }
        Reply::Text(text) => Json(json!({
            "id": "fake", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        }))
        .into_response(),
        Reply::ToolCalls(calls) => Json(json!({
            "id": "fake", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls.iter().enumerate().map(|(i, (n, a))| json!({"id": format!("call_{call_number}_{i}"), "type": "function", "function": {"name": n, "arguments": a.to_string()}})).collect::<Vec<_>>()}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        }))
        .into_response(),
    }
}
