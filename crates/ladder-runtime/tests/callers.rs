//! What callers see: deadlines that never cut a reply mid-sentence, ceilings that are never
//! overrun silently, causes that are named, refusals that say what was refused.

use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::{OpenAi, Retry};
use ladder_runtime::{Event, Runtime, Session};
use serde_json::json;
use std::time::Duration;

fn ladder(limits: &str, sla: &str) -> String {
    format!(
        r#"ladder 1
ladder desk {{
  entry clerk
  limits {{ {limits} }}
}}
model m {{ provider: openai, name: "fake-model" }}
tool lookup(id: string) -> string {{
  "Look up."
  mock "found"
}}
agent clerk {{
  model m
  prompt "Help."
  tools [lookup]
  {sla}
}}
script sorry {{
  say "Sorry, we will call you back."
  end
}}
"#
    )
}

fn session(fake: &FakeOpenAi, source: &str) -> Session {
    let program = compile(source).unwrap_or_else(|d| panic!("{d:#?}"));
    let backend = OpenAi::new(fake.base_url(), None).with_retry(Retry {
        attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    });
    Runtime::new(program).backend(backend).session()
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply { agent, text } => Some(format!("reply {agent}: {text}")),
            Event::CeilingHit { ceiling, .. } => Some(format!("ceiling {ceiling}")),
            Event::Fallback { from, to, .. } => Some(format!("fallback {from}->{to}")),
            Event::SessionEnded { by } => Some(format!("ended by {by}")),
            Event::Error { .. } => Some("error".into()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_sla_never_cuts_a_reply_that_is_already_streaming() {
    let fake = FakeOpenAi::start().await;
    // Ten words, 150 ms apart: the first arrives well within the SLA, the last after it.
    fake.push(Reply::SlowText {
        text: "one two three four five six seven eight nine ten".into(),
        gap: Duration::from_millis(150),
    });
    let s = session(&fake, &ladder("steps_per_turn: 4", "sla 1s else -> sorry"));
    let events = s.send("hi").collect().await;
    assert_eq!(
        kinds(&events),
        ["reply clerk: one two three four five six seven eight nine ten"]
    );

    // Nothing streamed before the SLA: the rung did not commit, its SLA fallback answers.
    let fake = FakeOpenAi::start().await;
    fake.push_delayed(Reply::text("too late"), Duration::from_secs(3));
    let s = session(&fake, &ladder("steps_per_turn: 4", "sla 1s else -> sorry"));
    let events = s.send("hi").collect().await;
    assert_eq!(
        kinds(&events),
        [
            "ceiling sla",
            "fallback clerk->sorry",
            "reply sorry: Sorry, we will call you back.",
            "ended by sorry"
        ]
    );
}

#[tokio::test]
async fn a_turn_has_a_deadline_even_without_an_sla() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::SlowText {
        text: "a b c d e f g h i j k l m n o p".into(),
        gap: Duration::from_millis(200),
    });
    let s = session(&fake, &ladder("turn_deadline: 1s", ""));
    let events = s.send("hi").collect().await;
    assert_eq!(kinds(&events), ["ceiling turn_deadline", "error"]);
    let message = events
        .iter()
        .find_map(|e| match e {
            Event::Error { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(message.contains("deadline of 1s"), "{message}");
    assert!(matches!(
        events.last(),
        Some(Event::TurnEnded { usage, .. }) if usage.estimated_calls == 1
    ));
    // With a fallback that needs no model, the caller still gets an answer.
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::SlowText {
        text: "a b c d e f g h i j k l m n o p".into(),
        gap: Duration::from_millis(200),
    });
    let s = session(&fake, &ladder("turn_deadline: 1s", "fallback -> sorry"));
    let events = s.send("hi").collect().await;
    assert_eq!(
        kinds(&events),
        [
            "ceiling turn_deadline",
            "fallback clerk->sorry",
            "reply sorry: Sorry, we will call you back.",
            "ended by sorry"
        ]
    );
    // The default deadline is there when a ladder sets none.
    let program = compile(&ladder("steps_per_turn: 4", "")).unwrap();
    assert_eq!(program.limits.turn_deadline_seconds, 120.0);
}

#[tokio::test]
async fn turns_per_session_is_a_ceiling_not_a_hint() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("ok"), Duration::ZERO);
    let s = session(&fake, &ladder("turns_per_session: 2", ""));
    for _ in 0..2 {
        assert_eq!(kinds(&s.send("hi").collect().await), ["reply clerk: ok"]);
    }
    let third = s.send("hi").collect().await;
    assert_eq!(
        kinds(&third),
        ["ceiling turns_per_session", "ended by turns_per_session"]
    );
    assert_eq!(fake.requests().len(), 2, "the third turn called no model");
    let fourth = s.send("hi").collect().await;
    assert_eq!(kinds(&fourth), ["error"]);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_sla_that_fires_during_retries_names_the_failing_endpoint() {
    let program = compile(&ladder("steps_per_turn: 4", "sla 1s else -> sorry")).unwrap();
    let backend = OpenAi::new("http://127.0.0.1:9/v1", None).with_retry(Retry {
        attempts: 50,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(300),
    });
    let s = Runtime::new(program).backend(backend).session();
    let events = s.send("hi").collect().await;
    let reason = events
        .iter()
        .find_map(|e| match e {
            Event::Fallback { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a fallback");
    assert!(reason.contains("missed its SLA"), "{reason}");
    assert!(reason.contains("http://127.0.0.1:9/v1"), "{reason}");
}

#[tokio::test]
async fn a_correction_carries_what_was_refused() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("delete_everything", json!({"all": true})));
    fake.push(Reply::text("ok"));
    let s = session(&fake, &ladder("steps_per_turn: 4", ""));
    let events = s.send("hi").collect().await;
    let rejected = events
        .iter()
        .find_map(|e| match e {
            Event::Correction { rejected, .. } => rejected.clone(),
            _ => None,
        })
        .expect("a correction with what it refused");
    assert_eq!(
        rejected,
        json!({"function": "delete_everything", "arguments": "{\"all\":true}"})
    );
}

#[tokio::test]
async fn an_empty_message_is_not_sent() {
    let fake = FakeOpenAi::start().await;
    let s = session(&fake, &ladder("steps_per_turn: 4", ""));
    let events = s.send("   ").collect().await;
    assert_eq!(kinds(&events), ["error"]);
    assert!(fake.requests().is_empty());
    assert_eq!(s.state().await.turn, 0);
}

#[tokio::test]
async fn text_that_streamed_before_a_failure_is_withdrawn() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::TextThenError {
        text: "Your refund is".into(),
        message: "The model produced output that does not match the expected format".into(),
    });
    fake.push(Reply::text("Issued."));
    let s = session(&fake, &ladder("steps_per_turn: 4", "fallback -> sorry"));
    let events = s.send("hi").collect().await;
    let withdrawn: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Withdrawn { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, ["Your refund is"]);
    // The model is told and asked again (text was shown, so the backend did not retry).
    assert_eq!(kinds(&events), ["reply clerk: Issued."]);
}
