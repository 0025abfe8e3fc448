//! `ladderc serve` end to end: the real binary, a real OpenAI-protocol server (the fake one), a
//! real counting HTTP tool server, and real stores (a SQLite file; PostgreSQL when
//! `LADDER_TEST_POSTGRES` names a server, as `.ci/run` does).

mod common;

use common::Server;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_store::testing::{fresh_sqlite_path, fresh_store_urls};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A refund tool over HTTP, and a ladder whose clerk can call it.
fn ladder(tool_url: &str) -> PathBuf {
    ladder_with(tool_url, "", "")
}

/// The same, with extra statements in the refund tool and extra items.
fn ladder_with(tool_url: &str, tool_extra: &str, items: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ladder-serve-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shop.ladder");
    std::fs::write(
        &path,
        format!(
            r#"ladder 1
ladder shop {{ entry clerk }}
model m {{ provider: openai, name: "fake-model" }}
tool refund(invoice: string) -> json {{
  "Refund an invoice."
  http POST "{tool_url}/refund"
{tool_extra}
}}
agent clerk {{
  model m
  prompt "Help with refunds."
  tools [refund]
}}
{items}
"#
        ),
    )
    .unwrap();
    path
}

/// Counts the refunds it is asked for and the idempotency keys they carry.
#[derive(Clone, Default)]
struct ToolServer {
    keys: Arc<Mutex<Vec<String>>>,
}

impl ToolServer {
    async fn start() -> (Self, String) {
        let server = ToolServer::default();
        let app =
            Router::new()
                .route(
                    "/refund",
                    post(
                        |State(s): State<ToolServer>,
                         headers: HeaderMap,
                         Json(body): Json<Value>| async move {
                            let key = headers
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let mut keys = s.keys.lock().unwrap();
                            keys.push(key);
                            Json(json!({"refunded": body["invoice"], "refund_no": keys.len()}))
                        },
                    ),
                )
                .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (server, url)
    }

    fn refunds(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

/// The fake model, the counting refund tool server, and a ladder that uses both.
struct World {
    fake: FakeOpenAi,
    tools: ToolServer,
    ladder: PathBuf,
}

async fn world() -> World {
    let (tools, tool_url) = ToolServer::start().await;
    World {
        fake: FakeOpenAi::start().await,
        tools,
        ladder: ladder(&tool_url),
    }
}

impl World {
    /// Starts `ladderc serve` on this world's ladder and model.
    fn serve(&self, store: &str, extra: &[&str]) -> Server {
        Server::start(&self.ladder, &self.fake.base_url(), store, extra)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn create(server: &Server, id: &str) {
    let r = client()
        .post(format!("{}/v1/sessions", server.url))
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Sends a message; the status and the SSE events (or the JSON error).
async fn send(server: &Server, id: &str, text: &str) -> (u16, Vec<Value>) {
    let r = client()
        .post(format!("{}/v1/sessions/{id}/messages", server.url))
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let is_sse = r.headers().get("content-type").is_some_and(|v| {
        v.to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    });
    let body = r.text().await.unwrap();
    if !is_sse {
        return (status, vec![serde_json::from_str(&body).unwrap()]);
    }
    let events = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (status, events)
}

fn replies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "reply")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the store shows a turn of session `id` begun (so a signal now lands mid-turn).
async fn wait_for_open_turn(store: &str, id: &str) {
    let checker = ladder_store::open(store).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = checker.load(id).await.unwrap().unwrap();
        if stored.open_turn.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "the turn never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn session(server: &Server, id: &str) -> Value {
    let r = server.get(&format!("/v1/sessions/{id}?events=true")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn user_messages(session: &Value) -> Vec<String> {
    session["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by"] == "user")
        .map(|e| e["message"]["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_streams_its_events_and_the_session_shows_it() {
    let world = world().await;
    let fake = &world.fake;
    let tools = &world.tools;
    let server = world.serve(&fresh_store_urls().await[0], &[]);
    create(&server, "c1").await;
    fake.push(Reply::tool("refund", json!({"invoice": "inv-9"})));
    fake.push(Reply::text("Refunded inv-9."));
    let (status, events) = send(&server, "c1", "refund inv-9 please").await;
    assert_eq!(status, 200);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"turn_started"));
    assert_eq!(types.last(), Some(&"turn_ended"));
    assert!(types.contains(&"tool_result"), "{types:?}");
    assert_eq!(replies(&events), ["Refunded inv-9."]);
    assert_eq!(tools.refunds(), ["c1-1-1"]);
    let s = session(&server, "c1").await;
    assert_eq!(s["turn"], 1);
    assert_eq!(s["current"], "clerk");
    assert_eq!(s["counters"]["tool_calls"], 1);
    assert_eq!(user_messages(&s), ["refund inv-9 please"]);
    // The stored log is the streamed events without the text deltas.
    let streamed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] != "text_delta")
        .collect();
    let stored: Vec<&Value> = s["events"].as_array().unwrap().iter().collect();
    assert_eq!(stored, streamed);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for line in [
        "ladder_turns_total 1",
        "ladder_tool_calls_total 1",
        "ladder_llm_calls_total 2",
        "ladder_llm_latency_seconds_count 2",
        "ladder_turn_latency_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_resumes_after_a_restart() {
    for store in fresh_store_urls().await {
        let world = world().await;
        let fake = &world.fake;
        let mut first = world.serve(&store, &[]);
        create(&first, "r1").await;
        fake.push(Reply::text("Hello, how can I help?"));
        assert_eq!(send(&first, "r1", "hi").await.0, 200);
        first.sigterm();
        assert_eq!(first.wait(), Some(0), "{}", first.log());
        let second = world.serve(&store, &[]);
        fake.push(Reply::text("Done."));
        let (status, events) = send(&second, "r1", "refund inv-1").await;
        assert_eq!(status, 200, "{store}: {events:?}");
        assert_eq!(replies(&events), ["Done."]);
        // The model saw the first turn: the transcript came back from the store.
        let last = fake.requests().pop().unwrap().to_string();
        assert!(last.contains("Hello, how can I help?"), "{last}");
        let s = session(&second, "r1").await;
        assert_eq!(s["turn"], 2);
        assert_eq!(user_messages(&s), ["hi", "refund inv-1"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_turn_loses_no_committed_event_and_repeats_no_tool_call() {
    for store in fresh_store_urls().await {
        let world = world().await;
        let fake = &world.fake;
        let tools = &world.tools;
        let lease = ["--lease", "1"];
        let mut doomed = world.serve(&store, &lease);
        create(&doomed, "k1").await;
        fake.push(Reply::text("Hello."));
        assert_eq!(send(&doomed, "k1", "hi").await.0, 200);
        let committed = session(&doomed, "k1").await["events"].clone();
        // Turn 2: the refund happens, then the model takes long to answer; the worker dies.
        fake.push(Reply::tool("refund", json!({"invoice": "inv-7"})));
        fake.push_delayed(Reply::text("too late"), Duration::from_secs(30));
        let url = doomed.url.clone();
        let pending = tokio::spawn(async move {
            client()
                .post(format!("{url}/v1/sessions/k1/messages"))
                .json(&json!({"text": "refund inv-7"}))
                .send()
                .await
        });
        let checker = ladder_store::open(&store).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while checker.recall("k1", "k1-2-1").await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "the refund was never recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        doomed.child.kill().unwrap(); // SIGKILL: no chance to clean up
        doomed.wait();
        let _ = pending.await;
        assert_eq!(tools.refunds(), ["k1-2-1"]);

        // Another worker takes over once the lease runs out: it re-runs turn 2 from the log
        // (the model asks for the refund again; the recorded result is used) and answers turn 3.
        let heir = world.serve(&store, &lease);
        fake.push(Reply::tool("refund", json!({"invoice": "inv-7"})));
        fake.push(Reply::text("Refunded inv-7."));
        fake.push(Reply::text("Anything else?"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let events = loop {
            let (status, events) = send(&heir, "k1", "are you there?").await;
            if status == 200 {
                break events;
            }
            assert_eq!(status, 409, "{events:?}");
            assert_eq!(events[0]["error"]["type"], "session_busy");
            assert!(
                Instant::now() < deadline,
                "the session was never taken over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(replies(&events), ["Anything else?"], "{store}");
        assert_eq!(
            tools.refunds(),
            ["k1-2-1"],
            "{store}: a refund was repeated"
        );
        let s = session(&heir, "k1").await;
        assert_eq!(s["turn"], 3);
        assert_eq!(user_messages(&s), ["hi", "refund inv-7", "are you there?"]);
        let all = s["events"].as_array().unwrap();
        let before = committed.as_array().unwrap();
        assert_eq!(
            &all[..before.len()],
            &before[..],
            "a committed event changed"
        );
        let turn2_results: Vec<&Value> = all
            .iter()
            .filter(|e| e["type"] == "tool_result")
            .map(|e| &e["result"])
            .collect();
        assert_eq!(
            turn2_results,
            [&json!({"refunded": "inv-7", "refund_no": 1})]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_one_database_serve_interleaved_sessions() {
    for store in fresh_store_urls().await {
        let world = world().await;
        let fake = &world.fake;
        fake.set_default(Reply::text("ok"), Duration::from_millis(5));
        let workers = [world.serve(&store, &[]), world.serve(&store, &[])];
        let ids: Vec<String> = (0..6).map(|i| format!("w{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            create(&workers[i % 2], id).await;
        }
        for round in 0..3 {
            let mut turns = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let worker = &workers[(i + round) % 2];
                let url = worker.url.clone();
                let id = id.clone();
                turns.push(async move {
                    let r = client()
                        .post(format!("{url}/v1/sessions/{id}/messages?stream=false"))
                        .json(&json!({"text": format!("{id} round {round}")}))
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                });
            }
            for status in futures_util::future::join_all(turns).await {
                assert_eq!(status, 200, "{store}");
            }
        }
        for (i, id) in ids.iter().enumerate() {
            let s = session(&workers[(i + 1) % 2], id).await;
            assert_eq!(s["turn"], 3, "{store}");
            assert_eq!(
                user_messages(&s),
                (0..3)
                    .map(|r| format!("{id} round {r}"))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_messages_to_one_session_are_never_interleaved() {
    for store in fresh_store_urls().await {
        let world = world().await;
        let fake = &world.fake;
        fake.set_default(Reply::text("slow answer"), Duration::from_millis(1500));
        let workers = [world.serve(&store, &[]), world.serve(&store, &[])];
        create(&workers[0], "busy").await;
        let (a, b, c) = tokio::join!(
            send(&workers[0], "busy", "one"),
            send(&workers[0], "busy", "two"),
            send(&workers[1], "busy", "three"),
        );
        let mut statuses = [a.0, b.0, c.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409, 409], "{store}: {a:?} {b:?} {c:?}");
        for (status, body) in [a, b, c] {
            if status == 409 {
                assert_eq!(body[0]["error"]["type"], "session_busy");
            }
        }
        let s = session(&workers[1], "busy").await;
        assert_eq!(s["turn"], 1);
        assert_eq!(user_messages(&s).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_required_when_set_and_off_loopback() {
    let world = world().await;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &["--token", "s3cret-token"]);
    let url = format!("{}/v1/sessions", server.url);
    let none = client().post(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unauthorized");
    let wrong = client()
        .post(&url)
        .bearer_auth("s3cret-tokem")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status(), 401);
    let right = client()
        .post(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);
    // Liveness probes need no token.
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);

    let refused = Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .arg("serve")
        .arg(&world.ladder)
        .args(["--addr", "0.0.0.0:0", "--store", &store, "--backend", "sim"])
        .env_remove("LADDER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_requests_get_json_errors() {
    let world = world().await;
    let fake = &world.fake;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &["--max-body", "4096"]);
    create(&server, "m1").await;
    let messages = format!("{}/v1/sessions/m1/messages", server.url);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client()
                .post(&messages)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_request",
        ),
        (
            client().post(&messages).json(&json!({"txt": "hi"})),
            400,
            "invalid_request",
        ),
        (
            client().post(&messages).json(&json!({"text": 7})),
            400,
            "invalid_request",
        ),
        (
            client().post(&messages).json(&json!({"text": "  "})),
            400,
            "invalid_request",
        ),
        (
            client()
                .post(&messages)
                .header("content-type", "application/json")
                .body("x".repeat(10_000)),
            413,
            "invalid_request",
        ),
        (
            client()
                .post(format!("{}/v1/sessions/none/messages", server.url))
                .json(&json!({"text": "hi"})),
            404,
            "not_found",
        ),
        (
            client()
                .post(format!("{}/v1/sessions", server.url))
                .json(&json!({"id": "m1"})),
            409,
            "exists",
        ),
        (
            client()
                .post(format!("{}/v1/sessions", server.url))
                .json(&json!({"id": "bad id/.."})),
            400,
            "invalid_request",
        ),
        (
            client()
                .post(format!("{}/v1/chat/completions", server.url))
                .json(&json!({"messages": []})),
            400,
            "invalid_request",
        ),
        (
            client().get(format!("{}/v2/nothing", server.url)),
            404,
            "not_found",
        ),
        (client().delete(&messages), 405, "method_not_allowed"),
    ];
    for (request, status, kind) in cases {
        let r = request.send().await.unwrap();
        let got = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON error body");
        assert_eq!(
            (got, body["error"]["type"].as_str()),
            (status, Some(kind)),
            "{body}"
        );
    }
    // Still serving, nothing lost.
    fake.push(Reply::text("fine"));
    assert_eq!(replies(&send(&server, "m1", "hi").await.1), ["fine"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_completions_facade_talks_to_a_ladder() {
    let world = world().await;
    let fake = &world.fake;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    let url = format!("{}/v1/chat/completions", server.url);
    fake.push(Reply::text("Hello from the clerk."));
    let r = client()
        .post(&url)
        .json(&json!({"model": "shop", "user": "caller-7", "messages": [
            {"role": "system", "content": "ignored: the ladder has its prompts"},
            {"role": "user", "content": "hi"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ladder-session"], "caller-7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the clerk."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().is_some());

    // Streaming, the session chosen by header; it continues the same conversation.
    fake.push(Reply::text("Refund noted."));
    let r = client()
        .post(&url)
        .header("X-Ladder-Session", "caller-7")
        .json(&json!({"stream": true, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "refund inv-2"}]},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Refund noted.");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(
        chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty()))
            .count()
            >= 2,
        "the reply streams word by word: {chunks:?}"
    );
    let s = session(&server, "caller-7").await;
    assert_eq!(user_messages(&s), ["hi", "refund inv-2"]);

    // The usage chunk when asked for, and the served ladder as the endpoint's model.
    fake.push(Reply::text("Usage follows."));
    let r = client()
        .post(&url)
        .json(
            &json!({"stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "and?"}]}),
        )
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let last: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .rfind(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let models: Value = client()
        .get(format!("{}/v1/models", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "shop");
}

/// The official `openai` SDK (with `LADDER_ORACLE_PYTHON`, as in CI) lists the models, chats,
/// and streams token by token with usage, through `ladderc serve`.
#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_sdk_talks_to_serve() {
    let Some(python) = std::env::var_os("LADDER_ORACLE_PYTHON") else {
        assert!(std::env::var_os("LADDER_REQUIRE_ORACLE").is_none());
        eprintln!("skipped: set LADDER_ORACLE_PYTHON to a python with `openai` installed");
        return;
    };
    let world = world().await;
    world.fake.push(Reply::text("Hello from the clerk."));
    world.fake.push(Reply::text("Refund noted and on its way."));
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    run_python(&python, "tests/serve_sdk.py", &server).await;
}

/// Runs one of the Python client scripts against `server` and fails with its output if it fails.
async fn run_python(python: &std::ffi::OsStr, script: &str, server: &Server) {
    let out = tokio::process::Command::new(python)
        .arg(common::repo_root().join(script))
        .arg(format!("{}/v1", server.url))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_running_turn_finish_and_commit() {
    let world = world().await;
    let fake = &world.fake;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let mut server = world.serve(&store, &[]);
    create(&server, "g1").await;
    fake.push_delayed(
        Reply::text("Finished after all."),
        Duration::from_millis(800),
    );
    let url = server.url.clone();
    let turn = tokio::spawn(async move {
        let r = client()
            .post(format!("{url}/v1/sessions/g1/messages"))
            .json(&json!({"text": "slow one"}))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    });
    wait_for_open_turn(&store, "g1").await;
    server.sigterm();
    let body = turn.await.unwrap();
    assert!(body.contains("Finished after all."), "{body}");
    assert!(body.contains("\"type\":\"turn_ended\""), "{body}");
    assert_eq!(server.wait(), Some(0));
    assert!(
        server.log().contains("stopped: every turn finished"),
        "{}",
        server.log()
    );
    // Committed: a new process sees the turn.
    let checker = ladder_store::open(&store).await.unwrap();
    let stored = checker.load("g1").await.unwrap().unwrap();
    assert_eq!(stored.state.turn, 1);
    assert_eq!(stored.open_turn, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_that_outlasts_the_grace_period_is_left_open_for_the_next_worker() {
    let world = world().await;
    let fake = &world.fake;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let mut server = world.serve(&store, &["--grace", "0.2", "--lease", "0.5"]);
    create(&server, "i1").await;
    fake.push_delayed(Reply::text("never heard"), Duration::from_secs(20));
    let url = server.url.clone();
    let turn = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/sessions/i1/messages"))
            .json(&json!({"text": "interrupted question"}))
            .send()
            .await
    });
    wait_for_open_turn(&store, "i1").await;
    server.sigterm();
    assert_eq!(server.wait(), Some(0));
    assert!(server.log().contains("stopped after"), "{}", server.log());
    let _ = turn.await;
    let checker = ladder_store::open(&store).await.unwrap();
    let stored = checker.load("i1").await.unwrap().unwrap();
    assert_eq!(stored.state.turn, 0, "nothing half-written");
    assert_eq!(stored.open_turn.unwrap().text, "interrupted question");
    assert!(checker.events("i1").await.unwrap().is_empty());
    // The next worker answers the interrupted question first, then the new one.
    let next = world.serve(&store, &[]);
    fake.push(Reply::text("Answer to the interrupted one."));
    fake.push(Reply::text("Answer to the new one."));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, events) = send(&next, "i1", "new question").await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(replies(&events), ["Answer to the new one."]);
    let s = session(&next, "i1").await;
    assert_eq!(user_messages(&s), ["interrupted question", "new question"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn random_request_bodies_never_get_a_server_error() {
    let world = world().await;
    let fake = &world.fake;
    fake.set_default(Reply::text("ok"), Duration::ZERO);
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &["--max-body", "2048"]);
    create(&server, "f1").await;
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"text\"",
        "\"messages\"",
        ":",
        ",",
        "\"user\"",
        "null",
        "1e999",
        "\"\\u0000\"",
        "\"role\"",
        "\"id\"",
        "true",
        "\"stream\"",
        "\u{1F600}",
        " ",
    ];
    let routes = [
        "/v1/sessions",
        "/v1/sessions/f1/messages",
        "/v1/chat/completions",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..300 {
        let body: Vec<u8> = if i % 3 == 0 {
            (0..rng.usize(0..3000)).map(|_| rng.u8(..)).collect()
        } else {
            (0..rng.usize(0..40))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect::<String>()
                .into_bytes()
        };
        let route = routes[i % routes.len()];
        let r = client()
            .post(format!("{}{route}", server.url))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            status < 500,
            "{route} {:?} -> {status} {text}",
            String::from_utf8_lossy(&body)
        );
    }
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_lost_mid_turn_ends_the_turn_with_an_error_not_a_crash() {
    let Some(admin) = ladder_store::testing::postgres_admin_url() else {
        return;
    };
    let store = ladder_store::testing::fresh_postgres_database(&admin).await;
    let database = store.rsplit('/').next().unwrap().to_string();
    let world = world().await;
    let fake = &world.fake;
    let server = world.serve(&store, &[]);
    create(&server, "lost").await;
    fake.push_delayed(
        Reply::text("answer nobody keeps"),
        Duration::from_millis(1500),
    );
    let url = server.url.clone();
    let turn = tokio::spawn(async move {
        let r = client()
            .post(format!("{url}/v1/sessions/lost/messages"))
            .json(&json!({"text": "hello"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    wait_for_open_turn(&store, "lost").await;
    // The database goes away under the running turn.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, body) = turn.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("the turn could not be stored"), "{body}");
    // The server is alive, says the store is down, and refuses new work clearly.
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 503);
    let (status, error) = send(&server, "lost", "again").await;
    assert_eq!(status, 503, "{error:?}");
    assert_eq!(error[0]["error"]["type"], "store_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_mid_turn_does_not_stop_or_strand_the_turn() {
    let world = world().await;
    let fake = &world.fake;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    create(&server, "h1").await;
    fake.push_delayed(Reply::text("Kept anyway."), Duration::from_millis(800));
    let hung_up = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .post(format!("{}/v1/sessions/h1/messages", server.url))
        .json(&json!({"text": "are you there"}))
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let body = match hung_up {
        Ok(r) => r.text().await,
        Err(e) => Err(e),
    };
    assert!(body.is_err(), "the client was meant to give up first");
    // The turn finishes and commits without anyone listening, and frees the session.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = session(&server, "h1").await;
        if s["turn"] == 1 && s["open_turn"].is_null() {
            let replies: Vec<&Value> = s["transcript"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["by"] == "clerk")
                .collect();
            assert_eq!(replies[0]["message"]["content"], "Kept anyway.");
            break;
        }
        assert!(Instant::now() < deadline, "the turn never committed: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.push(Reply::text("Yes."));
    let (status, events) = send(&server, "h1", "hello?").await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(replies(&events), ["Yes."]);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_to_start_with_a_clear_error() {
    let world = world().await;
    let serve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ladderc"))
            .arg("serve")
            .arg(&world.ladder)
            .args(["--addr", "127.0.0.1:0", "--backend", "sim"])
            .args(args)
            .env_remove("LADDER_TOKEN")
            .env_remove("LADDER_STORE")
            .output()
            .unwrap()
    };
    let sqlite = format!("sqlite:{}", fresh_sqlite_path().display());
    for (args, message) in [
        (
            vec!["--store", "postgres://nobody:x@127.0.0.1:1/none"],
            "error: cannot connect to PostgreSQL",
        ),
        (
            vec!["--store", sqlite.as_str(), "--lease", "0"],
            "error: --lease must be between 0 and 86400 seconds",
        ),
        (
            vec!["--store", sqlite.as_str(), "--grace", "NaN"],
            "error: --grace must be between 0 and 86400 seconds",
        ),
    ] {
        let output = serve(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
}

/// `serve 2>&1 | head`: once the reader of its stderr is gone, SIGTERM must still stop it (it
/// used to panic printing the shutdown line and keep serving).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_serve_even_when_its_stderr_is_closed() {
    use std::io::BufRead;
    let world = world().await;
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .arg("serve")
        .arg(&world.ladder)
        .args(["--addr", "127.0.0.1:0", "--store", &store])
        .args(["--backend", "openai", "--base-url", &world.fake.base_url()])
        .env_remove("LADDER_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("listening on"));
    assert!(listening.is_some(), "serve did not start");
    drop(lines); // the reading end of the pipe closes: writes to stderr now fail
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve ignored SIGTERM with its stderr closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hostile web page can post `text/plain` or a form to 127.0.0.1 without a preflight, and a
/// DNS-rebinding page reaches it under its own name: neither runs anything.
#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_cross_site_requests() {
    let world = world().await;
    world.fake.set_default(Reply::text("ok"), Duration::ZERO);
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    create(&server, "x1").await;
    let messages = format!("{}/v1/sessions/x1/messages", server.url);
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = client()
            .post(&messages)
            .header("content-type", content_type)
            .body(r#"{"text": "refund everything"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "unsupported_media_type");
    }
    let chat = format!("{}/v1/chat/completions", server.url);
    let r = client()
        .post(&chat)
        .header("content-type", "text/plain")
        .body(r#"{"messages": [{"role": "user", "content": "hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(world.fake.requests().is_empty(), "no turn ran");

    // DNS rebinding: the page's own name in `Host`.
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let r = client()
        .get(format!("{}/v1/sessions/x1", server.url))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let r = client()
        .get(format!("{}/v1/sessions/x1", server.url))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // No CORS headers unless an origin is allowed.
    let r = client()
        .get(format!("{}/v1/sessions/x1", server.url))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(server);

    let server = world.serve(
        &store,
        &[
            "--allowed-host",
            "ladder.internal",
            "--cors-origin",
            "https://console.example",
        ],
    );
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let r = client()
        .get(format!("{}/v1/sessions/x1", server.url))
        .header("host", format!("ladder.internal:{port}"))
        .header("origin", "https://console.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://console.example"
    );
}

/// LangChain's `ChatOpenAI` and the OpenAI Agents SDK (with `LADDER_ORACLE_PYTHON`, as in CI)
/// chat through `ladderc serve`, streamed and not, each pinned to a session by header.
#[tokio::test(flavor = "multi_thread")]
async fn langchain_and_the_openai_agents_sdk_talk_to_serve() {
    let Some(python) = std::env::var_os("LADDER_ORACLE_PYTHON") else {
        assert!(std::env::var_os("LADDER_REQUIRE_ORACLE").is_none());
        eprintln!("skipped: set LADDER_ORACLE_PYTHON to a python with tests/requirements.txt");
        return;
    };
    let world = world().await;
    for text in [
        "LangChain one.",
        "LangChain streams word by word.",
        "Agents one.",
        "Agents stream word by word.",
    ] {
        world.fake.push(Reply::text(text));
    }
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    run_python(&python, "tests/serve_frameworks.py", &server).await;
    let s = session(&server, "langchain-1").await;
    assert_eq!(user_messages(&s), ["hi", "and now?"]);
    let s = session(&server, "agents-1").await;
    assert_eq!(user_messages(&s), ["hi", "and now?"]);
}

/// A stored session remembers its ladder: `serve` with another ladder on the same store refuses
/// to continue it (409 `other_ladder`) instead of failing the turn and committing it.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_continued_only_by_its_own_ladder() {
    let world = world().await;
    world.fake.set_default(Reply::text("ok"), Duration::ZERO);
    let store = format!("sqlite:{}", fresh_sqlite_path().display());
    let server = world.serve(&store, &[]);
    create(&server, "mine").await;
    let (status, _) = send(&server, "mine", "hi").await;
    assert_eq!(status, 200);
    drop(server);
    // The same shop, one prompt changed: another version of the ladder.
    let other = world.ladder.with_file_name("shop2.ladder");
    let text = std::fs::read_to_string(&world.ladder)
        .unwrap()
        .replace("Help with refunds.", "Help with refunds, politely.");
    std::fs::write(&other, text).unwrap();
    let server = Server::start(&other, &world.fake.base_url(), &store, &[]);
    let r = client()
        .post(format!("{}/v1/sessions/mine/messages", server.url))
        .json(&json!({"text": "hi again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "other_ladder");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--migrate"));
    drop(server);
    let server = Server::start(&other, &world.fake.base_url(), &store, &["--migrate"]);
    let (status, _) = send(&server, "mine", "hi again").await;
    assert_eq!(status, 200);
}

/// A decision on a tool approval: the continued turn's events.
async fn decide(server: &Server, approval: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/approvals/{approval}", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_approval_survives_kill_9_and_is_decided_on_another_worker() {
    for store in fresh_store_urls().await {
        let (tools, tool_url) = ToolServer::start().await;
        let fake = FakeOpenAi::start().await;
        let shop = ladder_with(
            &tool_url,
            "  approval supervisor",
            r#"human supervisor "Billing supervisor" { queue: "billing" }"#,
        );
        let mut first = Server::start(&shop, &fake.base_url(), &store, &[]);
        create(&first, "a1").await;

        // The clerk calls the refund tool: it waits for the supervisor, and nothing is refunded.
        fake.push(Reply::tool("refund", json!({"invoice": "inv-5"})));
        let (status, events) = send(&first, "a1", "refund inv-5").await;
        assert_eq!(status, 200, "{store}: {events:?}");
        let asked: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "approval_requested")
            .collect();
        assert_eq!(asked.len(), 1, "{events:?}");
        assert_eq!(asked[0]["id"], "a1-1-1");
        assert_eq!(asked[0]["human"], "supervisor");
        assert!(tools.refunds().is_empty());
        // Meanwhile the caller writes: no model is asked, the message waits with the call.
        let asked_before = fake.requests().len();
        let (_, events) = send(&first, "a1", "any news?").await;
        assert!(
            events.iter().any(|e| e["type"] == "approval_requested"),
            "{events:?}"
        );
        assert_eq!(fake.requests().len(), asked_before);

        // The worker dies hard; another one sees the approval and decides it.
        first.child.kill().unwrap();
        first.wait();
        let second = Server::start(&shop, &fake.base_url(), &store, &[]);
        let list: Value = second.get("/v1/approvals").await.json().await.unwrap();
        assert_eq!(list["approvals"][0]["id"], "a1-1-1", "{list}");
        assert_eq!(list["approvals"][0]["arguments"]["invoice"], "inv-5");
        assert_eq!(list["approvals"][0]["held_messages"], 1);
        fake.push(Reply::text("Refunded inv-5."));
        let (status, decided) = decide(
            &second,
            "a1-1-1",
            json!({"approve": true, "operator": "sam"}),
        )
        .await;
        assert_eq!(status, 200, "{store}: {decided}");
        let types: Vec<&str> = decided["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types[0], "approval_decided", "{types:?}");
        assert!(
            types.contains(&"tool_result") && types.contains(&"reply"),
            "{types:?}"
        );
        assert_eq!(types.last(), Some(&"turn_ended"));
        // Refunded once, under the key the call was asked with; the model read the result and
        // then the caller's held message.
        assert_eq!(tools.refunds(), ["a1-1-1"]);
        let last = fake.requests().pop().unwrap().to_string();
        assert!(
            last.contains("refund_no") && last.contains("any news?"),
            "{last}"
        );
        // Decided once: the same decision again is a 404.
        let (status, _) = decide(
            &second,
            "a1-1-1",
            json!({"approve": true, "operator": "sam"}),
        )
        .await;
        assert_eq!(status, 404);

        // A rejection goes back to the model as the call's error.
        create(&second, "a2").await;
        fake.push(Reply::tool("refund", json!({"invoice": "inv-6"})));
        send(&second, "a2", "refund inv-6").await;
        fake.push(Reply::text("The supervisor did not approve the refund."));
        let (status, decided) = decide(
            &second,
            "a2-1-1",
            json!({"approve": false, "operator": "sam", "note": "already refunded"}),
        )
        .await;
        assert_eq!(status, 200, "{decided}");
        assert_eq!(tools.refunds(), ["a1-1-1"]);
        let last = fake.requests().pop().unwrap().to_string();
        assert!(
            last.contains("did not approve this call: already refunded"),
            "{last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_with_nul_and_control_characters_is_stored_on_every_store() {
    for store in fresh_store_urls().await {
        let world = world().await;
        let server = world.serve(&store, &[]);
        create(&server, "n1").await;
        world.fake.push(Reply::text("Noted."));
        // U+0001 first (the operator marker's character), NUL inside.
        let (status, events) = send(&server, "n1", "\u{1}hello\u{0}world").await;
        assert_eq!(status, 200, "{store}: {events:?}");
        assert_eq!(replies(&events), ["Noted."]);
        let s = session(&server, "n1").await;
        assert_eq!(user_messages(&s), ["hello\u{FFFD}world"], "{store}");
    }
}
