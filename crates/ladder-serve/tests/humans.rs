//! People in the loop, through the HTTP service in-process: a session escalates to a human, waits
//! in its queue, an operator claims it, writes to the user (live on the user's event stream and
//! in the chat facade's next answer), and releases it to a rung that answers the next message; a
//! session no one claims within the human's `sla` goes to its fallback. The user's messages while
//! a person owns the session never reach a model.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Runtime, ToolCall,
};
use ladder_serve::{app, AppOptions, Metrics, TimedBackend};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_service::Service;

const LADDER: &str = r#"ladder 1
ladder desk { entry triage }
model mini { provider: openai, name: "gpt-4o-mini" }

agent triage {
  model mini
  prompt "Help the caller; escalate to a nurse when asked."
  escalate -> on_call
}

human on_call "On-call nurse" {
  queue: "nurses",
  sla: 300ms,
  notify: env(LADDER_TEST_NURSE_PAGER),
  notify_secret: env(LADDER_TEST_NURSE_PAGER_SECRET),
  handover: "A nurse will be with you shortly.",
  release: [triage],
  fallback: callback,
}

script callback {
  say "Sorry, no nurse is free. We will call you back."
  end
}
"#;

/// Escalates when the caller asks for a nurse; otherwise answers, saying whether a person
/// handed the conversation over (the note the runtime adds to the system prompt). Counts calls.
struct Triage(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Backend for Triage {
    async fn complete(
        &self,
        request: &ChatRequest,
        _: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let system = request.messages[0].content.clone().unwrap_or_default();
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ladder_runtime::Role::User)
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        let offered = |name: &str| request.tools.iter().any(|t| t.name == name);
        // A person already handled the conversation: no escalation back to them.
        let after_person = system.contains("handled this conversation");
        if last.contains("nurse") && offered("escalate_to_on_call") && !after_person {
            return Ok(ChatResponse {
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "escalate_to_on_call".into(),
                    arguments: json!({"reason": "the caller asks for a nurse"}).to_string(),
                }],
                ..Default::default()
            });
        }
        let text = if system.contains("advised rest") {
            "Triage again: the nurse advised rest."
        } else {
            "Triage here."
        };
        Ok(ChatResponse {
            content: Some(text.into()),
            ..Default::default()
        })
    }

    fn name(&self) -> &str {
        "triage"
    }
}

async fn service(store: &Path, sweep: Option<Duration>, calls: Arc<AtomicUsize>) -> axum::Router {
    let program = ladder_check::compile(LADDER).expect("checks clean");
    let metrics = Arc::new(Metrics::default());
    let backend = Arc::new(TimedBackend {
        inner: Arc::new(Triage(calls)),
        metrics: metrics.clone(),
    });
    let store = ladder_store::open(&format!("sqlite:{}", store.display()))
        .await
        .expect("a SQLite store");
    let durable = Runtime::new(program)
        .backend_arc(backend)
        .durable(store, "test");
    app(
        durable,
        metrics,
        AppOptions {
            token: None,
            hosts: None,
            max_body: 64 * 1024,
            sweep_every: sweep,
        },
    )
}

fn request(method: &str, path: &str, body: Option<Value>, session: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost");
    if let Some(id) = session {
        request = request.header("x-ladder-session", id);
    }
    match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap()
}

async fn call(
    router: &mut axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let response = router
        .call(request(method, path, body, None))
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn post(router: &mut axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    call(router, "POST", path, Some(body)).await
}

/// The chat facade's answer to `text` in session `id`.
async fn chat(router: &mut axum::Router, id: &str, text: &str) -> Value {
    let body = json!({"model": "desk", "messages": [{"role": "user", "content": text}]});
    let response = router
        .call(request(
            "POST",
            "/v1/chat/completions",
            Some(body),
            Some(id),
        ))
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// A user message; the turn's events.
async fn say(router: &mut axum::Router, id: &str, text: &str) -> Vec<Value> {
    let (status, events) = call(
        router,
        "POST",
        &format!("/v1/sessions/{id}/messages?stream=false"),
        Some(json!({ "text": text })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events.as_array().unwrap().clone()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn a_nurse_claims_answers_and_releases_to_triage() {
    let store = ladder_store::testing::fresh_sqlite_path();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut router = service(&store, None, calls.clone()).await;
    let (_, created) = call(&mut router, "POST", "/v1/sessions", None).await;
    let id = created["id"].as_str().unwrap().to_string();

    // Triage escalates; the session waits in the nurses' queue, and the user is told so.
    let events = say(&mut router, &id, "I need a nurse, my son has a fever").await;
    let needed = of_type(&events, "human_needed");
    assert_eq!(needed.len(), 1, "{events:?}");
    assert_eq!(needed[0]["queue"], "nurses");
    assert_eq!(needed[0]["handover"], "A nurse will be with you shortly.");
    let (status, list) = call(&mut router, "GET", "/v1/handovers?queue=nurses", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let waiting = list["handovers"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{list}");
    assert_eq!(waiting[0]["session"], id.as_str());
    assert_eq!(waiting[0]["claimed_by"], Value::Null);
    assert_eq!(waiting[0]["release"], json!(["triage"]));
    assert_eq!(
        waiting[0]["last_user_message"],
        "I need a nurse, my son has a fever"
    );
    let (_, other) = call(&mut router, "GET", "/v1/handovers?queue=billing", None).await;
    assert_eq!(other["handovers"], json!([]));

    // The user's screen keeps the session's live stream open.
    let live = router
        .call(request(
            "GET",
            &format!("/v1/sessions/{id}/events"),
            None,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let mut live = live.into_body();
    let watcher = tokio::spawn(async move {
        let mut seen = String::new();
        while let Some(Ok(frame)) = live.frame().await {
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
            if seen.contains("human_released") {
                break;
            }
        }
        seen
    });

    // Nothing can be said or released before a claim; one operator claims, another cannot.
    let path = |what: &str| format!("/v1/sessions/{id}/human/{what}");
    let (status, refused) = post(&mut router, &path("messages"), json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["type"], "not_claimed");
    let (status, claimed) = post(&mut router, &path("claim"), json!({"operator": "ana"})).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["events"][0]["type"], "human_claimed");
    let (status, taken) = post(&mut router, &path("claim"), json!({"operator": "bo"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert_eq!(taken["error"]["type"], "claimed_by_other");

    // The claim is durable: a second server on the same store sees it.
    let mut restarted = service(&store, None, calls.clone()).await;
    let (_, list) = call(&mut restarted, "GET", "/v1/handovers", None).await;
    assert_eq!(list["handovers"][0]["claimed_by"], "ana", "{list}");

    // While the nurse has the session, the user's messages go to her and never to a model.
    let before = calls.load(Ordering::SeqCst);
    let events = say(&mut router, &id, "Are you there?").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "a model was asked: {events:?}"
    );
    assert_eq!(of_type(&events, "human_needed")[0]["claimed_by"], "ana");
    assert!(of_type(&events, "reply").is_empty(), "{events:?}");

    // The nurse writes; the chat facade's next answer carries it.
    let (status, wrote) = post(
        &mut router,
        &path("messages"),
        json!({"text": "Hi, I am Ana, the nurse. Give him water and let him rest."}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{wrote}");
    let chat = chat(&mut router, &id, "Thank you").await;
    let content = chat["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Hi, I am Ana, the nurse."), "{chat}");

    // A release names a rung the human may release to.
    let (status, wrong) = post(&mut router, &path("release"), json!({"to": "callback"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{wrong}");
    assert_eq!(wrong["error"]["type"], "not_releasable");
    let (status, released) = post(
        &mut router,
        &path("release"),
        json!({"to": "triage", "note": "advised rest"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the live stream saw the release")
        .unwrap();
    assert!(
        seen.contains("event: human_message") && seen.contains("Give him water"),
        "{seen}"
    );
    assert!(seen.contains("event: human_released"), "{seen}");

    // Triage owns the conversation again, told what the nurse did; the queue is empty.
    let events = say(&mut router, &id, "He feels better").await;
    let reply = of_type(&events, "reply");
    assert_eq!(reply[0]["agent"], "triage", "{events:?}");
    assert_eq!(reply[0]["text"], "Triage again: the nurse advised rest.");
    let (_, list) = call(&mut router, "GET", "/v1/handovers", None).await;
    assert_eq!(list["handovers"], json!([]));
}

/// A pager that refuses the first delivery of each notification (to prove the retry), checks
/// the signature of every delivery, and keeps what it accepted.
async fn pager() -> (String, Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
    use axum::http::HeaderMap;
    use axum::routing::post;
    let got: Arc<std::sync::Mutex<Vec<(String, Value)>>> = Arc::default();
    let tries = Arc::new(AtomicUsize::new(0));
    let kept = got.clone();
    let receiver = axum::Router::new().route(
        "/page",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (got, tries) = (kept.clone(), tries.clone());
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let timestamp: u64 = header("x-ladder-timestamp").parse().unwrap_or(0);
                let expected = ladder_serve::notify::signature(b"pager-secret", timestamp, &body);
                if header("x-ladder-signature") != expected {
                    return StatusCode::UNAUTHORIZED;
                }
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                got.lock().unwrap().push((
                    header("idempotency-key"),
                    serde_json::from_slice(&body).unwrap(),
                ));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/page", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn reaching_the_nurse_pages_her_signed_and_retried() {
    let (url, got) = pager().await;
    // Only this test reads these variables.
    std::env::set_var("LADDER_TEST_NURSE_PAGER", &url);
    std::env::set_var("LADDER_TEST_NURSE_PAGER_SECRET", "pager-secret");
    let store = ladder_store::testing::fresh_sqlite_path();
    let mut router = service(&store, None, Arc::new(AtomicUsize::new(0))).await;
    let (_, created) = call(&mut router, "POST", "/v1/sessions", None).await;
    let id = created["id"].as_str().unwrap().to_string();
    say(&mut router, &id, "I need a nurse").await;
    // A second message while waiting is not a second page.
    say(&mut router, &id, "Hello?").await;
    for _ in 0..100 {
        if got
            .lock()
            .unwrap()
            .iter()
            .any(|(_, p)| p["session"] == id.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other tests of this binary may page the same receiver: only this session counts.
    let got: Vec<_> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, page)| page["session"] == id.as_str())
        .cloned()
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let (key, page) = &got[0];
    assert_eq!(key, &format!("{id}:1:on_call"));
    assert_eq!(page["type"], "human_needed");
    assert_eq!(page["session"], id.as_str());
    assert_eq!(page["queue"], "nurses");
    assert_eq!(page["from"], "triage");
    assert_eq!(page["claim"], format!("/v1/sessions/{id}/human/claim"));
}

#[tokio::test]
async fn an_unclaimed_session_goes_to_the_fallback_after_the_sla() {
    let store = ladder_store::testing::fresh_sqlite_path();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut router = service(&store, Some(Duration::from_millis(50)), calls).await;
    let (_, created) = call(&mut router, "POST", "/v1/sessions", None).await;
    let id = created["id"].as_str().unwrap().to_string();
    say(&mut router, &id, "Please get me a nurse").await;

    // Bounded wait: the SLA is 300 ms and the sweeper runs every 50 ms.
    let mut current = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, session) = call(
            &mut router,
            "GET",
            &format!("/v1/sessions/{id}?events=true"),
            None,
        )
        .await;
        current = session["current"].clone();
        if current == "callback" {
            let events = session["events"].as_array().unwrap();
            let unclaimed = of_type(events, "human_unclaimed");
            assert_eq!(unclaimed.len(), 1, "{session}");
            assert_eq!(unclaimed[0]["to"], "callback");
            assert!(unclaimed[0]["waited_seconds"].as_f64().unwrap() >= 0.3);
            break;
        }
    }
    assert_eq!(current, "callback", "the sweeper never moved the session");
    let (_, list) = call(&mut router, "GET", "/v1/handovers", None).await;
    assert_eq!(list["handovers"], json!([]));
    let events = say(&mut router, &id, "Hello?").await;
    assert!(
        events.iter().any(|e| e["type"] == "reply"
            && e["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Sorry, no nurse")),
        "{events:?}"
    );
    // A claim after the fallback took over is refused: the session is no longer with a person.
    let (status, late) = post(
        &mut router,
        &format!("/v1/sessions/{id}/human/claim"),
        json!({"operator": "ana"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
}

#[tokio::test]
async fn a_release_can_let_the_rung_speak_at_once() {
    let store = ladder_store::testing::fresh_sqlite_path();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut router = service(&store, None, calls).await;
    let (_, created) = call(&mut router, "POST", "/v1/sessions", None).await;
    let id = created["id"].as_str().unwrap().to_string();
    say(&mut router, &id, "I need a nurse").await;
    let path = |what: &str| format!("/v1/sessions/{id}/human/{what}");
    post(&mut router, &path("claim"), json!({"operator": "ana"})).await;
    let (status, released) = post(
        &mut router,
        &path("release"),
        json!({"to": "triage", "note": "advised rest", "continue": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    let events = released["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "human_released");
    let reply = of_type(events, "reply");
    assert_eq!(reply.len(), 1, "{released}");
    assert_eq!(reply[0]["text"], "Triage again: the nurse advised rest.");
    assert_eq!(events.last().unwrap()["type"], "turn_ended");
    // A chat client reads it in its next answer, before what triage says to that message.
    let chat = chat(&mut router, &id, "ok").await;
    let content = chat["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Triage again: the nurse advised rest."),
        "{chat}"
    );
}
