//! The interpreter end to end against a real HTTP server speaking the OpenAI protocol
//! (`ladder-fake-openai`), through the real `OpenAi` backend.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::{OpenAi, Retry};
use ladder_runtime::{Event, Runtime, Session};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "sk-test-secret-5f2a9c";

/// A three-level ladder: root routes to lead, lead to specialist; the specialist has tools and
/// escalates back up; every rung falls back to a script that hands over to a nurse.
fn ladder(limits: &str, tool_url: &str) -> String {
    format!(
        r#"ladder 1
ladder engine {{
  entry root
  limits {{ {limits} }}
  budget {{ cost_per_session: $1.00 }}
  vars {{ clinic: string = "Test Clinic" }}
}}
model m {{ provider: openai, name: "fake-model", input: $1/Mtok, output: $2/Mtok }}
intent care "Health questions"
intent booking "Book an appointment" {{ day: date }}
tool lookup(id: string, token: string = env(LADDER_TEST_TOKEN)) -> json {{
  "Look a record up."
  http GET "{tool_url}/lookup?id={{id}}" auth bearer env(LADDER_TEST_TOKEN)
  retries 1
}}
tool echo(text: string) -> json {{
  "Echo through a local program."
  exec "sh" "-c" "cat"
}}
agent root {{
  router
  model m
  prompt "Route callers of {{{{clinic}}}}."
  // Hop by hop: these tests are about each rung's own decisions (fused routes: tests/fused.rs).
  handoff care -> lead no_fuse
  fallback -> sorry
}}
agent lead {{
  router
  model m
  accepts care
  prompt "Route care questions."
  handoff booking -> specialist
  escalate -> nurse
  fallback -> sorry
}}
agent specialist {{
  model m
  accepts booking
  prompt "Book for {{{{intent.day}}}}."
  tools [lookup, echo]
  escalate -> lead when confidence < 0.5
  sla 1s else -> sorry
  fallback -> sorry
}}
human nurse "Nurse on call"
script sorry {{
  say "Sorry, a nurse will call you back."
  handoff nurse
}}
"#
    )
}

const LIMITS: &str = "steps_per_turn: 8, tool_calls_per_turn: 2, handoffs_per_turn: 2, escalation_depth: 2, corrections_per_step: 1";

fn backend(fake: &FakeOpenAi) -> OpenAi {
    OpenAi::new(fake.base_url(), Some("test-key".into())).with_retry(Retry {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    })
}

fn session(fake: &FakeOpenAi, limits: &str, tool_url: &str) -> Session {
    let program = compile(&ladder(limits, tool_url)).unwrap_or_else(|d| panic!("{d:#?}"));
    Runtime::new(program)
        .backend(backend(fake))
        .allow_exec(true)
        .session_with_id("s-test")
}

/// A compact route: handoffs, escalations, fallbacks, ceilings, corrections, replies.
fn route(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Handoff { from, to, .. } => Some(format!("handoff {from}->{to}")),
            Event::Escalation { from, to, .. } => Some(format!("escalate {from}->{to}")),
            Event::Fallback { from, to, .. } => Some(format!("fallback {from}->{to}")),
            Event::CeilingHit { ceiling, .. } => Some(format!("ceiling {ceiling}")),
            Event::Correction { agent, .. } => Some(format!("correction {agent}")),
            Event::Reply { agent, text } => Some(format!("reply {agent}: {text}")),
            Event::HumanNeeded { human, .. } => Some(format!("human {human}")),
            Event::ToolResult { tool, ok, .. } => Some(format!("tool {tool} ok={ok}")),
            Event::Error { agent, message } => Some(format!("error {agent}: {message}")),
            _ => None,
        })
        .collect()
}

fn to_specialist(fake: &FakeOpenAi) {
    fake.push(Reply::tool("transfer_to_lead", json!({})));
    fake.push(Reply::tool(
        "transfer_to_specialist",
        json!({"day": "2026-12-01"}),
    ));
}

#[tokio::test]
async fn nested_handoffs_then_the_specialist_owns_the_next_turn() {
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::text("Booked for Monday."));
    fake.push(Reply::text("Anything else?"));
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let first = s.send("I need an appointment").collect().await;
    assert_eq!(
        route(&first),
        [
            "handoff root->lead",
            "handoff lead->specialist",
            "reply specialist: Booked for Monday."
        ]
    );
    let deltas: String = first
        .iter()
        .filter_map(|e| {
            if let Event::TextDelta { text, .. } = e {
                Some(text.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(deltas, "Booked for Monday.");
    let second = s.send("thanks").collect().await;
    assert_eq!(route(&second), ["reply specialist: Anything else?"]);

    let requests = fake.requests();
    assert_eq!(
        requests.len(),
        4,
        "one model call per rung, and one for the second turn"
    );
    let tools = |i: usize| {
        requests[i]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(tools(0), ["transfer_to_lead"]);
    assert_eq!(tools(1), ["transfer_to_specialist", "escalate_to_nurse"]);
    assert_eq!(tools(2), ["lookup", "echo", "escalate_to_lead"]);
    // Bound parameters are hidden from the model.
    assert!(
        requests[2]["tools"][0]["function"]["parameters"]["properties"]
            .get("token")
            .is_none()
    );
    // The receiver is told who handed over and why, in its system message; the sender's
    // transfer call is not replayed to it.
    assert_eq!(
        requests[2]["messages"][0]["content"],
        "Book for 2026-12-01.\n\n(ladder) `lead` handed this conversation over to you for intent `booking` with {\"day\":\"2026-12-01\"}. You now answer the caller."
    );
    assert!(!requests[2]
        .to_string()
        .contains("transfer_to_specialist\"}"));
    fake.assert_no_rejections();
    assert_eq!(
        requests[0]["messages"][0]["content"],
        "Route callers of Test Clinic."
    );
    let state = s.state().await;
    assert_eq!(state.current, "specialist");
    assert_eq!(state.counters.handoffs, 2);
    assert_eq!(state.counters.llm_calls, 4);
    assert!((state.counters.cost - 4.0 * (100.0 * 1.0 + 20.0 * 2.0) / 1e6).abs() < 1e-12);
}

#[tokio::test]
async fn escalation_is_guarded_goes_up_and_reaches_a_human() {
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::text("Booked."));
    // Too confident for the guard: corrected; then a valid escalation.
    fake.push(Reply::tool(
        "escalate_to_lead",
        json!({"reason": "unsure", "confidence": 0.9}),
    ));
    fake.push(Reply::tool(
        "escalate_to_lead",
        json!({"reason": "unsure", "confidence": 0.2}),
    ));
    fake.push(Reply::tool(
        "escalate_to_nurse",
        json!({"reason": "needs a person"}),
    ));
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    s.send("book please").collect().await;
    let events = s.send("actually I feel dizzy").collect().await;
    assert_eq!(
        route(&events),
        [
            "correction specialist",
            "escalate specialist->lead",
            "escalate lead->nurse",
            "human nurse"
        ]
    );
    let state = s.state().await;
    assert_eq!(state.escalation_stack, ["specialist"]);
    assert_eq!(state.paused_for.as_deref(), Some("nurse"));
    // A paused session calls no model.
    let before = fake.requests().len();
    let paused = s.send("hello?").collect().await;
    assert_eq!(route(&paused), ["human nurse"]);
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn undeclared_targets_and_bad_arguments_are_corrected_then_fall_back() {
    let fake = FakeOpenAi::start().await;
    // Root may not hand to the specialist directly: corrected once.
    fake.push(Reply::tool(
        "transfer_to_specialist",
        json!({"day": "2026-12-01"}),
    ));
    fake.push(Reply::tool("transfer_to_lead", json!({})));
    // Bad payload (missing `day`), then an unknown tool: the second correction exceeds the limit.
    fake.push(Reply::tool(
        "transfer_to_specialist",
        json!({"when": "monday"}),
    ));
    fake.push(Reply::tool("delete_everything", json!({})));
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let events = s.send("book").collect().await;
    assert_eq!(
        route(&events),
        [
            "correction root",
            "handoff root->lead",
            "correction lead",
            "correction lead",
            "ceiling corrections_per_step",
            "fallback lead->sorry",
            "reply sorry: Sorry, a nurse will call you back.",
            "handoff sorry->nurse",
            "human nurse",
        ]
    );
    let requests = fake.requests();
    let correction = requests[1]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        correction.contains("`transfer_to_specialist` is not a tool you can call here"),
        "{correction}"
    );
    let bad_args = requests[3]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(bad_args.contains("arguments.day is required"), "{bad_args}");
}

#[tokio::test]
async fn every_ceiling_fires_with_its_fallback() {
    // tool_calls_per_turn
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    for text in ["x", "y", "z"] {
        fake.push(Reply::tool("echo", json!({ "text": text })));
    }
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let events = s.send("book").collect().await;
    let r = route(&events);
    assert!(
        r.contains(&"ceiling tool_calls_per_turn".to_string())
            && r.contains(&"fallback specialist->sorry".to_string()),
        "{r:?}"
    );

    // handoffs_per_turn
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    let s = session(
        &fake,
        &LIMITS.replace("handoffs_per_turn: 2", "handoffs_per_turn: 1"),
        "http://127.0.0.1:9",
    );
    let r = route(&s.send("book").collect().await);
    assert_eq!(
        r[..3],
        [
            "handoff root->lead",
            "ceiling handoffs_per_turn",
            "fallback lead->sorry"
        ]
    );

    // steps_per_turn
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::tool("echo", json!({"text": "x"})));
    let s = session(
        &fake,
        &LIMITS.replace("steps_per_turn: 8", "steps_per_turn: 3"),
        "http://127.0.0.1:9",
    );
    let r = route(&s.send("book").collect().await);
    assert!(
        r.contains(&"ceiling steps_per_turn".to_string())
            && r.contains(&"fallback specialist->sorry".to_string()),
        "{r:?}"
    );

    // escalation_depth
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::tool(
        "escalate_to_lead",
        json!({"reason": "r", "confidence": 0.1}),
    ));
    // `check` refuses `escalation_depth: 0` with escalations declared (L0018); the runtime still
    // enforces the ceiling for a program built by hand.
    let mut program = compile(&ladder(LIMITS, "http://127.0.0.1:9")).unwrap();
    program.limits.escalation_depth = 0;
    let s = Runtime::new(program)
        .backend(backend(&fake))
        .allow_exec(true)
        .session_with_id("s-test");
    let r = route(&s.send("book").collect().await);
    assert!(
        r.contains(&"ceiling escalation_depth".to_string())
            && r.contains(&"fallback specialist->sorry".to_string()),
        "{r:?}"
    );

    // cost_per_session: the budget is $1; a huge usage is not scripted, so lower the budget instead.
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("hi"), Duration::ZERO);
    let source = ladder(LIMITS, "http://127.0.0.1:9")
        .replace("cost_per_session: $1.00", "cost_per_session: $0.0001");
    let program = compile(&source).unwrap_or_else(|d| panic!("{d:#?}"));
    let s = Runtime::new(program).backend(backend(&fake)).session();
    fake.push(Reply::tool("transfer_to_lead", json!({})));
    let r = route(&s.send("book").collect().await);
    assert!(r.contains(&"ceiling cost_per_session".to_string()), "{r:?}");
}

#[tokio::test]
async fn a_missed_sla_runs_the_sla_fallback() {
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push_delayed(Reply::text("too late"), Duration::from_millis(1500));
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let r = route(&s.send("book").collect().await);
    assert_eq!(
        r[2..5],
        [
            "ceiling sla",
            "fallback specialist->sorry",
            "reply sorry: Sorry, a nurse will call you back."
        ]
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::Status {
        status: 429,
        retry_after: Some(0),
    });
    fake.push(Reply::Status {
        status: 503,
        retry_after: None,
    });
    fake.push(Reply::tool("transfer_to_lead", json!({})));
    fake.push(Reply::Status {
        status: 500,
        retry_after: None,
    });
    fake.push(Reply::Status {
        status: 500,
        retry_after: None,
    });
    fake.push(Reply::Status {
        status: 500,
        retry_after: None,
    });
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let r = route(&s.send("book").collect().await);
    // Three attempts for root succeed; a 500 is retried once only (a server that failed on this
    // very request usually fails again), so lead falls back after two.
    assert_eq!(r[..2], ["handoff root->lead", "fallback lead->sorry"]);
    assert_eq!(fake.requests().len(), 5);
    // A 400 is not retried.
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::Status {
        status: 400,
        retry_after: None,
    });
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let r = route(&s.send("book").collect().await);
    assert_eq!(r[0], "fallback root->sorry");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn dropped_and_malformed_streams_end_in_a_defined_outcome() {
    // Nothing shown yet: retried transparently.
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::Drop {
        partial: String::new(),
    });
    fake.push(Reply::Malformed);
    fake.push(Reply::text("Booked."));
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let r = route(&s.send("book").collect().await);
    assert_eq!(r.last().unwrap(), "reply specialist: Booked.");
    // Text already streamed cannot be retried without repeating it: the rung falls back.
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::Drop {
        partial: "Let me ".into(),
    });
    let s = session(&fake, LIMITS, "http://127.0.0.1:9");
    let r = route(&s.send("book").collect().await);
    assert_eq!(r[2], "fallback specialist->sorry");
    // An endpoint that is not there at all.
    let program = compile(&ladder(LIMITS, "http://127.0.0.1:9")).unwrap();
    let dead = OpenAi::new("http://127.0.0.1:9/v1", None).with_retry(Retry {
        attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    });
    let s = Runtime::new(program).backend(dead).session();
    let events = s.send("hello").collect().await;
    assert_eq!(route(&events)[0], "fallback root->sorry");
    assert!(matches!(events.last(), Some(Event::TurnEnded { .. })));
}

/// One request to the tool server: its idempotency key and query.
type ToolRequest = (String, HashMap<String, String>);

#[derive(Clone, Default)]
struct ToolServer {
    calls: Arc<Mutex<Vec<ToolRequest>>>,
}

async fn lookup(
    State(server): State<ToolServer>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let n = {
        let mut calls = server.calls.lock().unwrap();
        calls.push((key.clone(), q.clone()));
        calls.len()
    };
    // The first call fails with a 503, to exercise the retry of an idempotent GET.
    if n == 1 {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    Json(json!({"id": q.get("id"), "auth_ok": auth == format!("Bearer {SECRET}"), "key": key}))
        .into_response()
}

use axum::response::IntoResponse;

#[tokio::test]
async fn http_and_exec_tools_run_for_real_and_secrets_stay_out_of_events() {
    std::env::set_var("LADDER_TEST_TOKEN", SECRET);
    let server = ToolServer::default();
    let app = Router::new()
        .route("/lookup", get(lookup))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::tool("lookup", json!({"id": "p 7"})));
    fake.push(Reply::tool("echo", json!({"text": "hello"})));
    fake.push(Reply::text("Done."));
    let s = session(&fake, LIMITS, &url);
    let events = s.send("book").collect().await;
    assert_eq!(
        route(&events)[2..],
        [
            "tool lookup ok=true",
            "tool echo ok=true",
            "reply specialist: Done."
        ]
    );
    let results: Vec<&Value> = events
        .iter()
        .filter_map(|e| {
            if let Event::ToolResult { result, .. } = e {
                Some(result)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(results[0]["auth_ok"], true);
    assert_eq!(results[0]["id"], "p 7");
    // The exec tool got the arguments (bound parameter included) on stdin.
    assert_eq!(results[1], &json!({"text": "hello"}));
    let calls = server.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one 503 then one retry");
    assert_eq!(calls[0].0, "s-test-1-1");
    assert_eq!(
        calls[0].0, calls[1].0,
        "a retry carries the same idempotency key"
    );
    let log = serde_json::to_string(&s.state().await.events).unwrap();
    assert!(
        !log.contains(SECRET),
        "the secret leaked into the event log"
    );
    assert!(
        !serde_json::to_string(&fake.requests())
            .unwrap()
            .contains(SECRET),
        "the secret was sent to the model"
    );
}

#[tokio::test]
async fn exec_is_refused_unless_allowed() {
    let fake = FakeOpenAi::start().await;
    to_specialist(&fake);
    fake.push(Reply::tool("echo", json!({"text": "hello"})));
    fake.push(Reply::text("Could not."));
    let program = compile(&ladder(LIMITS, "http://127.0.0.1:9")).unwrap();
    let s = Runtime::new(program).backend(backend(&fake)).session();
    let events = s.send("book").collect().await;
    let failed = events
        .iter()
        .find_map(|e| {
            if let Event::ToolResult {
                ok: false, result, ..
            } = e
            {
                Some(result.clone())
            } else {
                None
            }
        })
        .expect("a failed tool result");
    assert!(failed["error"].as_str().unwrap().contains("--allow-exec"));
    assert_eq!(
        route(&events).last().unwrap(),
        "reply specialist: Could not."
    );
}

#[tokio::test]
async fn host_tools_and_the_rustdoc_api() {
    let fake = FakeOpenAi::start().await;
    let source = r#"ladder 1
ladder host { entry a }
model m { provider: openai, name: "x" }
tool weather(city: string) -> json { host "weather" }
agent a { model m prompt "p" tools [weather] }
"#;
    fake.push(Reply::tool("weather", json!({"city": "Oslo"})));
    fake.push(Reply::text("Cold."));
    let runtime = Runtime::new(compile(source).unwrap())
        .backend(backend(&fake))
        .tool("weather", |args: Value| async move {
            Ok(json!({"city": args["city"], "celsius": -3}))
        });
    let events = runtime.session().send("weather?").collect().await;
    let result = events
        .iter()
        .find_map(|e| {
            if let Event::ToolResult { result, .. } = e {
                Some(result.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(result, json!({"city": "Oslo", "celsius": -3}));
}
