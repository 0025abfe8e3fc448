//! Requests real providers accept, and answers real providers give: each test drives the runtime
//! through the real `OpenAi` backend against the strict fake, which answers 400 wherever the
//! OpenAI API would. Every defect of the "requests real providers accept" issue has a test here.

use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::{OpenAi, Retry};
use ladder_runtime::{Event, Prices, Runtime, Session, TokenUsage};
use serde_json::{json, Value};
use std::time::Duration;

/// triage (router) -> billing (tool, escalation, SLA) or support; billing falls back to `backup`,
/// which falls back to the `sorry` script.
fn ladder(context: &str, billing_prompt: &str, models: &str) -> String {
    format!(
        r#"ladder 1
ladder desk {{
  entry triage
  limits {{ steps_per_turn: 8, tool_calls_per_turn: 3, handoffs_per_turn: 2, corrections_per_step: 2 }}
}}
{models}
intent billing "Invoices and refunds" {{ invoice_id: string }}
intent support "Product problems"
tool refund_status(invoice_id: string) -> string {{
  "Where a refund stands."
  mock "refund issued"
}}
agent triage {{
  router
  model m
  prompt "Route the caller."
  handoff billing -> billing context {context}
  handoff support -> support
}}
agent billing {{
  model m
  accepts billing
  prompt "{billing_prompt}"
  tools [refund_status]
  escalate -> manager
  sla 2s else -> sorry
  fallback -> backup
}}
agent backup {{
  model m
  prompt "Help with refunds."
  tools [refund_status]
  fallback -> sorry
}}
agent support {{
  model m
  accepts support
  prompt "Solve product problems."
}}
human manager "Account manager"
script sorry {{
  say "Sorry, someone will call you back."
  handoff manager
}}
"#
    )
}

const MODEL: &str =
    r#"model m { provider: openai, name: "fake-model", input: $1/Mtok, output: $2/Mtok }"#;

fn backend(fake: &FakeOpenAi) -> OpenAi {
    OpenAi::new(fake.base_url(), Some("k".into())).with_retry(Retry {
        attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    })
}

fn runtime(fake: &FakeOpenAi, source: &str) -> Runtime {
    let program = compile(source).unwrap_or_else(|d| panic!("{d:#?}"));
    Runtime::new(program).backend(backend(fake))
}

fn session(fake: &FakeOpenAi) -> Session {
    runtime(fake, &ladder("full", "Handle refunds.", MODEL)).session()
}

fn to_billing(fake: &FakeOpenAi) {
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice_id": "INV-9"}),
    ));
}

fn messages(request: &Value) -> &Vec<Value> {
    request["messages"].as_array().expect("messages")
}

fn turn_ended(events: &[Event]) -> (TokenUsage, u32, f64) {
    events
        .iter()
        .find_map(|e| match e {
            Event::TurnEnded {
                usage,
                tool_calls,
                cost,
                ..
            } => Some((*usage, *tool_calls, *cost)),
            _ => None,
        })
        .expect("turn_ended")
}

fn replies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply { agent, text } => Some(format!("{agent}: {text}")),
            _ => None,
        })
        .collect()
}

fn deltas(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_context_policy_gives_the_receiver_a_valid_request_and_a_note() {
    for policy in ["full", "no_tools", "summary", "none", "last(1)"] {
        let fake = FakeOpenAi::start().await;
        let mut args = json!({"invoice_id": "INV-9"});
        if policy == "summary" {
            args["summary"] = json!("Caller wants a refund.");
        }
        fake.push(Reply::tool("transfer_to_billing", args));
        fake.push(Reply::text("Your refund is on its way."));
        let s = runtime(&fake, &ladder(policy, "Handle refunds.", MODEL)).session();
        let events = s.send("Where is my refund for INV-9?").collect().await;
        fake.assert_no_rejections();
        assert_eq!(
            replies(&events),
            ["billing: Your refund is on its way."],
            "{policy}"
        );
        let receiver = &fake.requests()[1];
        let text = receiver.to_string();
        assert!(!text.contains("transfer_to_billing\""), "{policy}: {text}");
        assert!(!text.contains("control transferred"), "{policy}: {text}");
        assert!(
            messages(receiver).iter().all(|m| m["role"] != "tool"),
            "{policy}: {text}"
        );
        let system = messages(receiver)[0]["content"].as_str().unwrap();
        assert!(
            system.contains(
                "(ladder) `triage` handed this conversation over to you for intent `billing` with {\"invoice_id\":\"INV-9\"}"
            ),
            "{policy}: {system}"
        );
        assert_eq!(
            messages(receiver).last().unwrap()["role"],
            "user",
            "{policy}"
        );
    }
}

#[tokio::test]
async fn routers_must_call_at_temperature_zero_with_lean_schemas() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("Try restarting."));
    let events = session(&fake).send("the app crashes").collect().await;
    fake.assert_no_rejections();
    assert_eq!(replies(&events), ["support: Try restarting."]);
    let requests = fake.requests();
    let router = &requests[0];
    assert_eq!(router["tool_choice"], "required");
    assert_eq!(router["temperature"], 0.0);
    let tools = router["tools"].as_array().unwrap();
    let support = tools
        .iter()
        .find(|t| t["function"]["name"] == "transfer_to_support")
        .unwrap();
    // No `additionalProperties: false, required: []` for the model to copy into its arguments,
    // and a function that takes nothing has no `parameters` at all (the API's empty list).
    assert!(support["function"].get("parameters").is_none(), "{support}");
    let billing = tools
        .iter()
        .find(|t| t["function"]["name"] == "transfer_to_billing")
        .unwrap();
    assert_eq!(
        billing["function"]["parameters"]["required"],
        json!(["invoice_id"])
    );
    assert!(billing["function"]["parameters"]
        .get("additionalProperties")
        .is_none());
    let specialist = &requests[1];
    assert!(
        specialist.get("tools").is_none(),
        "support has no functions"
    );
    assert_eq!(specialist["temperature"], 0.2);

    // `tool_schemas: strict` sends the full schema; a declared temperature wins.
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("ok"));
    let strict =
        r#"model m { provider: openai, name: "x", temperature: 0.7, tool_schemas: strict }"#;
    let s = runtime(&fake, &ladder("full", "Handle refunds.", strict)).session();
    s.send("crash").collect().await;
    fake.assert_no_rejections();
    let router = &fake.requests()[0];
    assert_eq!(router["temperature"], 0.7);
    assert_eq!(
        router["tools"][1]["function"]["parameters"]["additionalProperties"],
        false
    );

    // The command-line override wins over both.
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("ok"));
    let s = runtime(&fake, &ladder("full", "x", MODEL))
        .temperature_override(Some(0.4))
        .session();
    s.send("crash").collect().await;
    assert!(fake.requests().iter().all(|r| r["temperature"] == 0.4));
}

#[tokio::test]
async fn an_error_inside_the_stream_is_retried_at_a_raised_temperature_then_corrected() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    let err = || Reply::StreamError {
        message: "The model produced output that does not match the expected format".into(),
    };
    fake.push(err());
    fake.push(Reply::text("Your refund was issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert_eq!(replies(&events), ["billing: Your refund was issued."]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1]["temperature"], 0.2);
    assert!((requests[2]["temperature"].as_f64().unwrap() - 0.6).abs() < 1e-9);

    // Twice in a row: the model is told its answer could not be read, and asked again.
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(err());
    fake.push(err());
    fake.push(Reply::text("Issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Correction { reason, .. } if reason.contains("could not use the model's answer"))));
    assert_eq!(replies(&events), ["billing: Issued."]);
    let last = fake.requests().last().unwrap().clone();
    let note = messages(&last).last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        note.starts_with("(ladder) Your last answer could not be read"),
        "{note}"
    );
    assert!(
        last.get("tools").is_none(),
        "a specialist answers in plain text after the server refused its call"
    );
}

#[tokio::test]
async fn a_500_is_retried_once_and_never_resent_unchanged() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    for _ in 0..2 {
        fake.push(Reply::Status {
            status: 500,
            retry_after: None,
        });
    }
    fake.push(Reply::text("backup here"));
    let events = session(&fake).send("refund INV-9").collect().await;
    // billing: two attempts, then its fallback answers.
    assert_eq!(replies(&events), ["backup: backup here"]);
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    assert_ne!(requests[1], requests[2], "the retry changes the request");
    assert_eq!(requests[1]["messages"], requests[2]["messages"]);
}

#[tokio::test]
async fn arguments_that_do_not_parse_are_never_echoed() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(Reply::RawToolCall {
        name: "refund_status".into(),
        arguments: r#"{"invoice_id": "INV-9""#.into(),
    });
    fake.push(Reply::text("Issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert_eq!(replies(&events), ["billing: Issued."]);
    let retry = &fake.requests()[2];
    // The refused call is not shown again; a note says what was wrong.
    assert!(messages(retry)
        .iter()
        .all(|m| m.get("tool_calls").is_none()));
    assert!(!retry.to_string().contains(r#"\"INV-9\"\""#));
    let note = messages(retry).last().unwrap()["content"].as_str().unwrap();
    assert!(note.contains("not valid JSON"), "{note}");
}

#[tokio::test]
async fn a_call_cut_by_the_token_limit_is_corrected() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(Reply::Truncated {
        name: "refund_status".into(),
        partial_arguments: r#"{"invoice_id": "INV"#.into(),
    });
    fake.push(Reply::text("Issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Correction { reason, .. } if reason.contains("cut off"))));
    assert!(!events.iter().any(|e| matches!(e, Event::ToolCall { .. })));
    assert_eq!(replies(&events), ["billing: Issued."]);
}

#[tokio::test]
async fn refused_attempts_leave_the_history_when_the_turn_ends() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("I think you want billing."));
    to_billing(&fake);
    fake.push(Reply::text("Issued."));
    fake.push(Reply::text("Anything else?"));
    let s = session(&fake);
    let first = s.send("refund INV-9").collect().await;
    // A router's text is refused, and never streamed to the caller.
    assert_eq!(deltas(&first), "Issued.");
    assert_eq!(replies(&first), ["billing: Issued."]);
    // Within the turn the router sees its refusal...
    let retry = fake.requests()[1].to_string();
    assert!(retry.contains("(ladder) You must hand off"), "{retry}");
    assert!(
        !retry.contains("I think you want billing"),
        "refused text is not echoed"
    );
    // ...the next turn does not.
    s.send("thanks").collect().await;
    fake.assert_no_rejections();
    let next = fake.requests()[3].to_string();
    assert!(!next.contains("(ladder) You must hand off"), "{next}");
    let state = s.state().await;
    assert!(state.transcript.iter().all(|e| !e.rejected));
    // The event log keeps the correction.
    assert!(state
        .events
        .iter()
        .any(|e| matches!(e, Event::Correction { agent, .. } if agent == "triage")));
}

#[tokio::test]
async fn a_call_written_as_text_is_a_correction_not_a_reply() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(Reply::text(
        r#"{"name": "refund_status", "arguments": {"invoice_id": "INV-9"}}"#,
    ));
    fake.push(Reply::text("Issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert_eq!(replies(&events), ["billing: Issued."]);
    assert_eq!(
        deltas(&events),
        "Issued.",
        "the written call never reached the caller"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Correction { reason, .. } if reason.contains("as text"))));
}

#[tokio::test]
async fn a_repeated_call_reuses_its_result_and_the_model_is_asked_to_answer() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    let call = || Reply::tool("refund_status", json!({"invoice_id": "INV-9"}));
    fake.push(call());
    fake.push(call());
    fake.push(Reply::text("Issued."));
    let events = session(&fake).send("refund INV-9").collect().await;
    fake.assert_no_rejections();
    assert_eq!(replies(&events), ["billing: Issued."]);
    let results = events
        .iter()
        .filter(|e| matches!(e, Event::ToolResult { .. }))
        .count();
    assert_eq!(results, 1, "the tool ran once");
    let last = fake.requests().last().unwrap().clone();
    assert!(last.get("tools").is_none(), "no functions: answer now");
    assert!(messages(&last).iter().all(|m| m["role"] != "tool"));
    let system = messages(&last)[0]["content"].as_str().unwrap();
    assert!(
        system.contains("- refund_status({\"invoice_id\":\"INV-9\"}) returned: \"refund issued\""),
        "{system}"
    );
}

#[tokio::test]
async fn malformed_answers_end_in_the_fallback_never_an_empty_reply() {
    let kinds = [
        Reply::DoneFirst,
        Reply::NumberContent,
        Reply::EmptyChoices,
        Reply::NullMessage,
    ];
    for kind in kinds {
        let fake = FakeOpenAi::start().await;
        to_billing(&fake);
        for _ in 0..3 {
            fake.push(kind.clone());
        }
        fake.push(Reply::text("backup here"));
        let events = session(&fake).send("refund INV-9").collect().await;
        assert_eq!(replies(&events), ["backup: backup here"], "{kind:?}");
        let reason = events
            .iter()
            .find_map(|e| match e {
                Event::Fallback { from, reason, .. } if from == "billing" => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{kind:?}: no fallback in {events:#?}"));
        assert!(reason.contains("malformed"), "{kind:?}: {reason}");
    }
    // With no fallback left: an error event, not an empty reply.
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::DoneFirst, Duration::ZERO);
    let events = session(&fake).send("hi").collect().await;
    assert!(replies(&events).is_empty());
    assert!(events.iter().any(|e| matches!(e, Event::Error { .. })));
}

#[tokio::test]
async fn the_transcript_keeps_its_case() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(Reply::text("Issued."));
    let s = runtime(&fake, &ladder("full", "History: {{transcript}}", MODEL)).session();
    s.send("Refund for INV-9 please").collect().await;
    let system = messages(&fake.requests()[1])[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("user: Refund for INV-9 please"), "{system}");
}

#[tokio::test]
async fn cached_prompt_tokens_are_billed_at_their_price() {
    let fake = FakeOpenAi::start().await;
    fake.set_usage(1000, 100, 800);
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("ok"));
    let cached = r#"model m { provider: openai, name: "x", input: $1/Mtok, cached_input: $0.10/Mtok, output: $2/Mtok }"#;
    let s = runtime(&fake, &ladder("full", "x", cached)).session();
    let events = s.send("crash").collect().await;
    let (usage, _, cost) = turn_ended(&events);
    assert_eq!(usage.cached_prompt_tokens, 1600);
    // Per call: 200 fresh at $1, 800 cached at $0.10, 100 out at $2 = $0.00048.
    assert!((cost - 2.0 * 0.00048).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn a_call_cut_by_an_sla_or_a_failure_is_counted_as_an_estimate() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push_delayed(Reply::text("too late"), Duration::from_secs(5));
    let events = session(&fake).send("refund INV-9").collect().await;
    assert!(replies(&events)[0].starts_with("sorry:"));
    let (usage, _, cost) = turn_ended(&events);
    assert_eq!(usage.estimated_calls, 1);
    assert!(
        usage.prompt_tokens > 100,
        "the router's 100 and an estimate: {usage:?}"
    );
    assert!(cost > 0.0);
}

#[tokio::test]
async fn an_overriding_model_carries_its_own_prices() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("ok"));
    let s = runtime(&fake, &ladder("full", "x", MODEL))
        .model_override(Some("local-model".into()))
        .session();
    let (_, _, cost) = turn_ended(&s.send("crash").collect().await);
    assert_eq!(cost, 0.0, "the ladder's prices are not the local model's");
    assert!(fake.requests().iter().all(|r| r["model"] == "local-model"));

    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_support", json!({})));
    fake.push(Reply::text("ok"));
    let prices = Prices {
        input_per_mtok: 10.0,
        output_per_mtok: 0.0,
        cached_input_per_mtok: None,
        cache_write_per_mtok: None,
    };
    let s = runtime(&fake, &ladder("full", "x", MODEL))
        .model_override(Some("local-model".into()))
        .prices_override(Some(prices))
        .session();
    let (_, _, cost) = turn_ended(&s.send("crash").collect().await);
    assert!((cost - 2.0 * 100.0 * 10.0 / 1e6).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn turn_counters_cover_the_whole_turn_after_a_fallback() {
    let fake = FakeOpenAi::start().await;
    to_billing(&fake);
    fake.push(Reply::tool("refund_status", json!({"invoice_id": "A"})));
    fake.push(Reply::Status {
        status: 400,
        retry_after: None,
    });
    fake.push(Reply::tool("refund_status", json!({"invoice_id": "B"})));
    fake.push(Reply::text("backup here"));
    let events = session(&fake).send("refund").collect().await;
    assert_eq!(replies(&events), ["backup: backup here"]);
    let (_, tool_calls, _) = turn_ended(&events);
    assert_eq!(tool_calls, 2);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let program = compile(&ladder("full", "x", MODEL)).unwrap();
    let backend = OpenAi::new("http://127.0.0.1:9/v1", None).with_retry(Retry {
        attempts: 1,
        ..Retry::default()
    });
    let s = Runtime::new(program).backend(backend).session();
    let events = s.send("hi").collect().await;
    let message = events
        .iter()
        .find_map(|e| match e {
            Event::Error { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("an error");
    assert!(message.contains("http://127.0.0.1:9/v1"), "{message}");
    assert!(message.contains("onnect"), "{message}");
}

/// A consult is offered only while `consult_depth` allows one more: a consulted agent at the
/// limit is not offered `consult_*` functions the runtime would refuse (each refusal would cost
/// a correction and a step). Each consult also counts as a tool call.
#[tokio::test]
async fn consults_are_offered_only_within_consult_depth() {
    let source = format!(
        r#"ladder 1
ladder desk {{ entry front  limits {{ consult_depth: 1, tool_calls_per_turn: 4 }} }}
{MODEL}
agent front {{ model m prompt "Answer; ask the expert when unsure." consult expert }}
agent expert {{ model m prompt "Answer questions; ask the oracle when unsure." consult oracle }}
agent oracle {{ model m prompt "Know everything." }}
"#
    );
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool(
        "consult_expert",
        json!({"question": "what now?"}),
    ));
    fake.push(Reply::text("Wait and see."));
    fake.push(Reply::text("The expert says: wait and see."));
    let events = runtime(&fake, &source)
        .session()
        .send("what now?")
        .collect()
        .await;
    fake.assert_no_rejections();
    let offered = |request: &Value| -> Vec<String> {
        request["tools"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|f| f["function"]["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(offered(&requests[0]), ["consult_expert"]);
    assert!(
        offered(&requests[1]).is_empty(),
        "the expert, consulted at depth 1, is offered {:?}",
        offered(&requests[1])
    );
    let tool_calls = events.iter().find_map(|e| match e {
        Event::TurnEnded { tool_calls, .. } => Some(*tool_calls),
        _ => None,
    });
    assert_eq!(tool_calls, Some(1), "the consult counts as a tool call");
}
