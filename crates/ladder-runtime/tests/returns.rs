//! `return`: a specialist hands the conversation back to the agent that handed it down, against
//! the strict fake (so every request is one the OpenAI API accepts).

use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::OpenAi;
use ladder_runtime::{Event, Runtime};
use serde_json::json;

const LADDER: &str = r#"ladder 1
ladder desk {
  entry triage
  limits { steps_per_turn: 6, tool_calls_per_turn: 2, handoffs_per_turn: 2 }
}
model m { provider: openai, name: "fake-model" }
intent billing "Invoices and refunds"
agent triage {
  model m
  prompt "Route the caller, and answer what is left."
  handoff billing -> billing
}
agent billing {
  model m
  accepts billing
  prompt "Handle refunds, then return."
  return
}
"#;

fn names(request: &serde_json::Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_specialist_returns_the_conversation_to_the_agent_that_handed_it_down() {
    let fake = FakeOpenAi::start().await;
    let runtime = Runtime::new(compile(LADDER).unwrap_or_else(|d| panic!("{d:#?}")))
        .backend(OpenAi::new(fake.base_url(), Some("k".into())));
    let session = runtime.session();

    fake.push(Reply::tool("transfer_to_billing", json!({})));
    fake.push(Reply::tool(
        "return_to_triage",
        json!({"summary": "Refund of INV-9 issued."}),
    ));
    fake.push(Reply::text("Your refund is on its way. Anything else?"));
    let events = session.send("Refund INV-9 please").collect().await;

    let returned = events.iter().find_map(|e| match e {
        Event::Returned { from, to, summary } => Some((from.clone(), to.clone(), summary.clone())),
        _ => None,
    });
    assert_eq!(
        returned,
        Some((
            "billing".into(),
            "triage".into(),
            "Refund of INV-9 issued.".into()
        )),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Reply { agent, .. } if agent == "triage")));
    // The handoff and the return are both counted against `handoffs_per_turn`.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TurnEnded { handoffs: 2, .. })));

    let requests = fake.requests();
    assert!(!names(&requests[0])
        .iter()
        .any(|n| n.starts_with("return_to_")));
    assert!(names(&requests[1]).contains(&"return_to_triage".to_string()));
    // The agent returned to is told what happened, after its own prompt.
    let system = requests[2]["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("Route the caller"), "{system}");
    assert!(system.contains("handed the conversation back to you: Refund of INV-9 issued."));

    let state = session.state().await;
    assert_eq!(state.current, "triage");
    assert!(state.delegators.is_empty());
    // Back at the top, nobody is returned to: billing is offered `return_to_triage` again only
    // after triage hands it down again.
    fake.push(Reply::text("Happy to help."));
    session.send("No, thanks").collect().await;
    assert!(!names(&fake.requests()[3])
        .iter()
        .any(|n| n.starts_with("return_to_")));
}

#[tokio::test]
async fn a_return_past_the_handoff_allowance_is_a_ceiling() {
    let fake = FakeOpenAi::start().await;
    let source = LADDER.replace("handoffs_per_turn: 2", "handoffs_per_turn: 1");
    let runtime = Runtime::new(compile(&source).unwrap_or_else(|d| panic!("{d:#?}")))
        .backend(OpenAi::new(fake.base_url(), Some("k".into())));
    fake.push(Reply::tool("transfer_to_billing", json!({})));
    fake.push(Reply::tool("return_to_triage", json!({"summary": "done"})));
    let events = runtime.session().send("Refund please").collect().await;
    assert!(
        events.iter().any(
            |e| matches!(e, Event::CeilingHit { ceiling, .. } if ceiling == "handoffs_per_turn")
        ),
        "{events:#?}"
    );
}

#[tokio::test]
async fn an_agent_that_owns_one_turn_hands_back_after_its_reply() {
    let fake = FakeOpenAi::start().await;
    let source = LADDER.replace("  return\n", "  owns turn\n");
    let runtime = Runtime::new(compile(&source).unwrap_or_else(|d| panic!("{d:#?}")))
        .backend(OpenAi::new(fake.base_url(), Some("k".into())));
    let session = runtime.session();
    fake.push(Reply::tool("transfer_to_billing", json!({})));
    fake.push(Reply::text("Refund of INV-9 issued."));
    let events = session.send("Refund INV-9 please").collect().await;
    assert!(events.iter().any(
        |e| matches!(e, Event::Reply { agent, text } if agent == "billing" && text == "Refund of INV-9 issued.")
    ));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Returned { from, to, .. } if from == "billing" && to == "triage"
    )));
    // Not a handoff of the turn: the reply ended it.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::TurnEnded { handoffs: 1, .. })));
    let state = session.state().await;
    assert_eq!(state.current, "triage");

    // The next turn is triage's, told what billing answered.
    fake.push(Reply::text("Anything else I can do?"));
    let events = session.send("thanks").collect().await;
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Reply { agent, .. } if agent == "triage")));
    let system = fake.requests()[2]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("owns one turn at a time"), "{system}");
}
