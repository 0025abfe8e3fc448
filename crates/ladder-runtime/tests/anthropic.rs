//! `provider: anthropic`: the same runtime semantics over Anthropic's Messages API, against the
//! strict fake (every request must be one the API accepts: alternating roles, every
//! `tool_result` answering a `tool_use` of the turn before). A handoff, a tool call, streamed
//! text, a correction, and the prompt-cache layout and usage.

use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::{Anthropic, OpenAi, Providers};
use ladder_runtime::{Event, Runtime};
use serde_json::json;

const LADDER: &str = r#"ladder 1
ladder desk { entry triage }
model claude {
  provider: anthropic,
  name: "claude-sonnet-4-5",
  input: $3.00/Mtok,
  output: $15.00/Mtok,
  cached_input: $0.30/Mtok,
  cache_write: $3.75/Mtok,
  max_output_tokens: 500,
}
intent billing "Invoices and refunds" { invoice: string }
tool refund_status(invoice: string) -> string {
  "Where a refund stands."
  mock "issued"
}
agent triage {
  router
  model claude
  prompt "Route the caller."
  handoff billing -> billing
}
agent billing {
  model claude
  accepts billing
  prompt "You handle refunds; look them up before answering."
  tools [refund_status]
}
"#;

fn runtime(fake: &FakeOpenAi) -> Runtime {
    let program = compile(LADDER).unwrap_or_else(|d| panic!("{d:#?}"));
    Runtime::new(program).backend(Providers {
        openai: OpenAi::new(fake.base_url(), Some("k".into())),
        anthropic: Anthropic::new(fake.base_url(), Some("k".into())),
    })
}

#[tokio::test]
async fn a_turn_over_the_messages_api_hands_off_calls_a_tool_and_streams_the_answer() {
    let fake = FakeOpenAi::start().await;
    fake.set_usage(1200, 30, 1000);
    fake.set_cache_writes(150);
    let session = runtime(&fake).session();
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice": "INV-9"}),
    ));
    // A call of a tool the agent is not offered: corrected, then the right one.
    fake.push(Reply::tool("cancel_everything", json!({})));
    fake.push(Reply::tool("refund_status", json!({"invoice": "INV-9"})));
    fake.push(Reply::text("The refund of INV-9 was issued."));
    let events = session
        .send("Where is my refund for INV-9?")
        .collect()
        .await;
    fake.assert_no_rejections();

    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Handoff { to, .. } if to == "billing")));
    assert!(events.iter().any(|e| matches!(e, Event::Correction { .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ToolResult { tool, ok: true, .. } if tool == "refund_status")));
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "The refund of INV-9 was issued.");
    let Some(Event::TurnEnded { usage, cost, .. }) = events.last() else {
        panic!("{events:?}")
    };
    // Four calls, each 1,200 prompt tokens: 1,000 read from the cache, 150 written to it.
    assert_eq!(usage.prompt_tokens, 4 * 1200);
    assert_eq!(usage.cached_prompt_tokens, 4 * 1000);
    assert_eq!(usage.cache_write_prompt_tokens, 4 * 150);
    let expected = 4.0 * (50.0 * 3.0 + 1000.0 * 0.30 + 150.0 * 3.75 + 30.0 * 15.0) / 1e6;
    assert!((cost - expected).abs() < 1e-9, "{cost} != {expected}");

    // What was sent: the Messages shape, laid out for the cache.
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    let router = &requests[0];
    assert_eq!(router["max_tokens"], 500);
    assert_eq!(router["tool_choice"]["type"], "any");
    assert_eq!(router["system"][0]["cache_control"]["type"], "ephemeral");
    let tools = router["tools"].as_array().unwrap();
    assert_eq!(tools[0]["name"], "transfer_to_billing");
    assert!(tools[0]["input_schema"]["properties"]["invoice"].is_object());
    assert_eq!(tools.last().unwrap()["cache_control"]["type"], "ephemeral");
    // The last request: the tool call and its result as blocks, roles alternating.
    let last = &requests[3];
    let messages = last["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.first(), Some(&"user"));
    assert!(roles.windows(2).all(|w| w[0] != w[1]), "{roles:?}");
    let use_block = &messages[messages.len() - 2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .cloned()
        .expect("the call");
    let result = &messages[messages.len() - 1]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], use_block["id"]);
    let headers = fake.request_headers();
    assert_eq!(headers[0]["anthropic-version"], "2023-06-01");
    assert_eq!(headers[0]["x-api-key"], "k");
}

#[tokio::test]
async fn overloaded_and_rate_limited_answers_are_retried() {
    let fake = FakeOpenAi::start().await;
    let session = runtime(&fake).session();
    fake.push(Reply::Status {
        status: 529,
        retry_after: None,
    });
    fake.push(Reply::Status {
        status: 429,
        retry_after: Some(0),
    });
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice": "INV-1"}),
    ));
    fake.push(Reply::text("Looking into INV-1."));
    let events = session.send("INV-1?").collect().await;
    fake.assert_no_rejections();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Reply { text, .. } if text == "Looking into INV-1.")),
        "{events:?}"
    );
}
