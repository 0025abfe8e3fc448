//! The HTTP service in-process (no socket, no binary): sessions and turns, the OpenAI-compatible
//! facade, the token and host guards, and metrics, through the router `ladderc serve` runs.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use ladder_runtime::{Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Runtime};
use ladder_serve::{app, AppOptions, Metrics, TimedBackend};
use serde_json::{json, Value};
use std::sync::Arc;
use tower_service::Service;

const LADDER: &str = r#"ladder 1
ladder desk { entry greeter }
model mini { provider: openai, name: "gpt-4o-mini" }
agent greeter { model mini prompt "Greet the caller." }
"#;

/// Answers every request with the same text, streamed.
struct Hello;

#[async_trait::async_trait]
impl Backend for Hello {
    async fn complete(
        &self,
        _: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        on_text.text("Hello, how can I help?");
        Ok(ChatResponse {
            content: Some("Hello, how can I help?".into()),
            ..Default::default()
        })
    }

    fn name(&self) -> &str {
        "hello"
    }
}

async fn service(token: Option<&str>) -> axum::Router {
    let program = ladder_check::compile(LADDER).expect("checks clean");
    let metrics = Arc::new(Metrics::default());
    let backend = Arc::new(TimedBackend {
        inner: Arc::new(Hello),
        metrics: metrics.clone(),
    });
    let store = ladder_store::open(&format!(
        "sqlite:{}",
        ladder_store::testing::fresh_sqlite_path().display()
    ))
    .await
    .expect("a fresh SQLite store");
    let durable = Runtime::new(program)
        .backend_arc(backend)
        .durable(store, "test");
    app(
        durable,
        metrics,
        AppOptions {
            token: token.map(String::from),
            hosts: Some(vec!["localhost".into()]),
            max_body: 64 * 1024,
            sweep_every: None,
        },
    )
}

async fn call(
    router: &mut axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.call(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_session_takes_a_turn_and_streams_its_events() {
    let mut router = service(None).await;
    let (status, created) = call(&mut router, "POST", "/v1/sessions", None, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let path = format!("/v1/sessions/{id}/messages");
    let (status, sse) = call(&mut router, "POST", &path, Some(json!({"text": "hi"})), &[]).await;
    assert_eq!(status, StatusCode::OK, "{sse}");
    assert!(sse.contains("event: reply"), "{sse}");
    assert!(sse.contains("Hello, how can I help?"), "{sse}");

    // The same turn's events without streaming, and the session as stored.
    let (_, events) = call(
        &mut router,
        "POST",
        &format!("{path}?stream=false"),
        Some(json!({"text": "again"})),
        &[],
    )
    .await;
    let events: Value = serde_json::from_str(&events).unwrap();
    assert!(events
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "reply"));
    let (status, session) =
        call(&mut router, "GET", &format!("/v1/sessions/{id}"), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{session}");

    // The metrics saw both turns and both model calls.
    let (_, metrics) = call(&mut router, "GET", "/metrics", None, &[]).await;
    assert!(metrics.contains("ladder_turns_total"), "{metrics}");
    assert!(metrics.contains("ladder_turns_total 2"), "{metrics}");
    assert!(
        metrics.contains("ladder_llm_latency_seconds_count 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_chat_facade_answers_like_openai() {
    let mut router = service(None).await;
    let (status, body) = call(
        &mut router,
        "POST",
        "/v1/chat/completions",
        Some(json!({"model": "desk", "messages": [{"role": "user", "content": "hi"}]})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello, how can I help?"
    );
}

#[tokio::test]
async fn the_token_and_the_host_guard_every_route() {
    let mut router = service(Some("s3cret")).await;
    let (status, _) = call(&mut router, "POST", "/v1/sessions", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &mut router,
        "POST",
        "/v1/sessions",
        None,
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &mut router,
        "POST",
        "/v1/sessions",
        None,
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A page whose name resolves to this machine sends its own `Host`: refused.
    let request = Request::builder()
        .method("GET")
        .uri("/healthz")
        .header(header::HOST, "evil.example")
        .body(Body::empty())
        .unwrap();
    let response = router.call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn sessions_are_listed_by_page_and_deleted() {
    let mut router = service(None).await;
    for id in ["p1", "p2", "p3"] {
        let (status, _) = call(
            &mut router,
            "POST",
            "/v1/sessions",
            Some(json!({"id": id})),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, page) = call(&mut router, "GET", "/v1/sessions?limit=2", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_offset"], 2);
    let (_, rest) = call(
        &mut router,
        "GET",
        "/v1/sessions?limit=2&offset=2",
        None,
        &[],
    )
    .await;
    let rest: Value = serde_json::from_str(&rest).unwrap();
    assert_eq!(rest["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_offset"], Value::Null);
    let (_, found) = call(&mut router, "GET", "/v1/sessions?q=p2", None, &[]).await;
    let found: Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found["sessions"][0]["id"], "p2");

    let (status, _) = call(&mut router, "DELETE", "/v1/sessions/p2", None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&mut router, "GET", "/v1/sessions/p2", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&mut router, "DELETE", "/v1/sessions/p2", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
