//! OpenTelemetry traces: `ladderc run --otlp URL` against a receiver built on the official
//! `opentelemetry-proto` Python package (`tests/otel/receiver.py`, decoding the protobuf as a
//! collector does). A three-rung session (triage hands off to billing, billing looks a refund up
//! and escalates to a person) must arrive as one trace: a turn span, a span per rung visit under
//! it, model calls and the tool call under their rung, GenAI attributes and usage, and the
//! transfers as span events. No prompt, argument or secret may be exported.
//!
//! Needs `LADDER_ORACLE_PYTHON` (the venv with `opentelemetry-proto`); skipped without it unless
//! `LADDER_REQUIRE_ORACLE` is set (as in CI).

mod common;

use common::repo_root;
use ladder_fake_openai::{FakeOpenAi, Reply};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "sk-otel-secret-5d1c";

const LADDER: &str = r#"ladder 1
ladder desk { entry triage }
model m { provider: openai, name: "fake-model" }
intent billing "Invoices and refunds" { invoice: string }
tool refund_status(invoice: string) -> string {
  "Where a refund stands."
  mock "stuck"
}
agent triage {
  router
  model m
  prompt "Route the caller."
  handoff billing -> billing
}
agent billing {
  model m
  accepts billing
  prompt "You handle refunds."
  tools [refund_status]
  escalate -> supervisor
}
human supervisor "Billing supervisor" { queue: "billing" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_three_rung_session_arrives_as_one_trace() {
    let Some(python) = std::env::var_os("LADDER_ORACLE_PYTHON") else {
        assert!(
            std::env::var_os("LADDER_REQUIRE_ORACLE").is_none(),
            "LADDER_REQUIRE_ORACLE is set but LADDER_ORACLE_PYTHON is not"
        );
        eprintln!("skipped: set LADDER_ORACLE_PYTHON to a python with opentelemetry-proto");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ladder-otel-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let spans_file = dir.join("spans.jsonl");
    let ladder = dir.join("desk.ladder");
    std::fs::write(&ladder, LADDER).unwrap();
    let mut receiver = Command::new(python)
        .arg(repo_root().join("tests/otel/receiver.py"))
        .arg(&spans_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver starts");
    let mut port = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", port.trim());

    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice": "INV-7"}),
    ));
    fake.push(Reply::tool("refund_status", json!({"invoice": "INV-7"})));
    fake.push(Reply::tool(
        "escalate_to_supervisor",
        json!({"reason": "the refund is stuck"}),
    ));
    let base = fake.base_url();
    let path = ladder.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ladderc"))
            .args(["run", &path, "--base-url", &base, "--otlp", &endpoint])
            .args(["-m", "Where is my refund for INV-7?"])
            .env("OPENAI_API_KEY", SECRET)
            .env("OTEL_SERVICE_NAME", "desk-test")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .expect("ladderc runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The exporter flushed before the process exited; the receiver may still be writing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: Vec<Value> = loop {
        let text = std::fs::read_to_string(&spans_file).unwrap_or_default();
        let spans: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if spans.iter().any(|s| s["name"] == "turn 1") || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = receiver.kill();
    let _ = receiver.wait();
    let raw = std::fs::read_to_string(&spans_file).unwrap_or_default();
    assert!(!raw.contains(SECRET), "a secret was exported");
    assert!(!raw.contains("Route the caller"), "a prompt was exported");
    assert!(
        !raw.contains("INV-7"),
        "a message or an argument was exported"
    );

    let named = |name: &str| -> &Value {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span `{name}` in {spans:#?}"))
    };
    let turn = named("turn 1");
    assert_eq!(turn["service"], "desk-test");
    assert_eq!(turn["parent_span_id"], "");
    assert_eq!(turn["attributes"]["ladder.name"], "desk");
    assert_eq!(turn["attributes"]["ladder.turn"], 1);
    assert!(
        spans.iter().all(|s| s["trace_id"] == turn["trace_id"]),
        "one trace"
    );
    let session = turn["attributes"]["ladder.session"].as_str().unwrap();
    assert!(!session.is_empty());

    // Three rung visits under the turn, in order.
    let rungs: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == turn["span_id"])
        .collect();
    let mut visits: Vec<(&str, u64)> = rungs
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["start"].as_u64().unwrap()))
        .collect();
    visits.sort_by_key(|(_, start)| *start);
    let visits: Vec<&str> = visits.into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        visits,
        ["agent triage", "agent billing", "human supervisor"]
    );
    let triage = named("agent triage");
    let billing = named("agent billing");

    // Model calls under their rung, with the GenAI conventions.
    let calls: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "chat fake-model")
        .collect();
    assert_eq!(calls.len(), 3, "{spans:#?}");
    let call = calls
        .iter()
        .find(|c| c["parent_span_id"] == triage["span_id"])
        .expect("triage's call under its rung");
    assert_eq!(call["attributes"]["gen_ai.operation.name"], "chat");
    assert_eq!(call["attributes"]["gen_ai.request.model"], "fake-model");
    assert_eq!(call["attributes"]["gen_ai.usage.input_tokens"], 100);
    assert_eq!(call["attributes"]["gen_ai.usage.output_tokens"], 20);
    assert_eq!(call["kind"], 3, "a client span");
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["parent_span_id"] == billing["span_id"])
            .count(),
        2
    );
    let tool = named("execute_tool refund_status");
    assert_eq!(tool["parent_span_id"], billing["span_id"]);
    assert_eq!(tool["attributes"]["gen_ai.tool.name"], "refund_status");

    // Transfers are span events with their fields.
    let events: Vec<(&str, &Value)> = spans
        .iter()
        .flat_map(|s| {
            s["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |e| (s["name"].as_str().unwrap(), e))
        })
        .collect();
    let event = |name: &str| {
        events
            .iter()
            .find(|(_, e)| e["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` event in {events:#?}"))
    };
    let (on, handoff) = event("handoff");
    assert_eq!(*on, "agent triage");
    assert_eq!(handoff["attributes"]["ladder.to"], "billing");
    assert_eq!(handoff["attributes"]["ladder.intent"], "billing");
    let (on, escalation) = event("escalation");
    assert_eq!(*on, "agent billing");
    assert_eq!(escalation["attributes"]["ladder.to"], "supervisor");
    let (on, _) = event("human_needed");
    assert_eq!(*on, "human supervisor");
}
