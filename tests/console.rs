//! The operator console in a real browser: the real `ladderc serve` (with a token) on the
//! after-hours example, the fake OpenAI-protocol model, and Debian's Chromium driven by
//! Playwright (`tests/console/console.mjs`). A caller reaches the on-call nurse; in the console
//! the nurse sees the session waiting, claims it, replies (the caller's live stream gets the
//! reply), and hands it back to the primary agent, which answers the caller's next message; she
//! also approves a prescription refill another caller's nurse line asked for. Screenshots go to
//! `target/console/`.
//!
//! Needs `node`, `playwright-core` (`LADDER_PLAYWRIGHT`: its directory) and Chromium
//! (`LADDER_CHROMIUM`, default `/usr/bin/chromium`); skipped without them, unless
//! `LADDER_REQUIRE_BROWSER` is set (as `.ci/run` does).

mod common;

use common::{repo_root, Server};
use futures_util::StreamExt;
use ladder_fake_openai::{FakeOpenAi, Reply};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "console-test-token";

/// The browser's tools, or why the test cannot run.
fn browser() -> Result<(String, String), String> {
    let playwright =
        std::env::var("LADDER_PLAYWRIGHT").map_err(|_| "LADDER_PLAYWRIGHT is not set")?;
    let chromium = std::env::var("LADDER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Err(format!("no Chromium at {chromium}"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node".into());
    }
    Ok((playwright, chromium))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post(server: &Server, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("{}{path}", server.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_operator_claims_replies_and_releases_in_the_console() {
    let (playwright, chromium) = match browser() {
        Ok(tools) => tools,
        Err(why) if std::env::var_os("LADDER_REQUIRE_BROWSER").is_some() => {
            panic!("LADDER_REQUIRE_BROWSER is set, but {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let fake = FakeOpenAi::start().await;
    let store = format!(
        "sqlite:{}",
        ladder_store::testing::fresh_sqlite_path().display()
    );
    let example = repo_root().join("examples/after_hours.ladder");
    let server = Server::start(&example, &fake.base_url(), &store, &["--token", TOKEN]);
    let to_nurse_line = || {
        Reply::tool(
            "transfer_to_nurse_line",
            json!({"severity": "high", "symptoms": "fever", "summary": "Child with a high fever."}),
        )
    };

    // The primary agent hands the caller to the nurse line, which is unsure and escalates.
    fake.push(to_nurse_line());
    fake.push(Reply::tool(
        "escalate_to_on_call_rn",
        json!({"reason": "not sure it can wait", "confidence": 0.4}),
    ));
    post(&server, "/v1/sessions", json!({"id": "caller-1"})).await;
    let events = post(
        &server,
        "/v1/sessions/caller-1/messages?stream=false",
        json!({"text": "My child has a high fever"}),
    )
    .await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "human_needed"),
        "{events}"
    );

    // Another caller's prescription refill waits for the nurse's approval.
    fake.push(to_nurse_line());
    fake.push(Reply::tool(
        "refill_prescription",
        json!({"medication": "paracetamol syrup", "patient_name": "Ada Lovelace"}),
    ));
    post(&server, "/v1/sessions", json!({"id": "caller-2"})).await;
    post(
        &server,
        "/v1/sessions/caller-2/messages?stream=false",
        json!({"text": "I need a refill of my child's fever syrup"}),
    )
    .await;
    // What the nurse line says once the console approves it.
    fake.push(Reply::text("The refill is on its way to your pharmacy."));

    // The caller's screen follows the session live.
    let live = client()
        .get(format!("{}/v1/sessions/caller-1/events", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(live.status().is_success());
    let watcher = tokio::spawn(async move {
        let mut seen = String::new();
        let mut body = live.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("human_released") {
                break;
            }
        }
        seen
    });

    let reply = "Hello, I am Ana, the nurse on call. Drink water and rest.";
    let shots = repo_root().join("target/console");
    std::fs::create_dir_all(&shots).unwrap();
    let script = repo_root().join("tests/console/console.mjs");
    let url = server.url.clone();
    let shots_arg = shots.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([
                url.as_str(),
                TOKEN,
                "caller-1",
                reply,
                "primary",
                shots_arg.as_str(),
                "caller-2-1-1",
            ])
            .env("LADDER_PLAYWRIGHT", &playwright)
            .env("LADDER_CHROMIUM", &chromium)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the console script failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    for shot in [
        "console-queue.png",
        "console-session.png",
        "console-released.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot}");
    }

    // The caller saw the nurse's words as they were sent, then the hand-back.
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the caller's stream saw the release")
        .unwrap();
    assert!(
        seen.contains("event: human_message") && seen.contains("Drink water"),
        "{seen}"
    );

    // The approved refill ran and the nurse line's turn went on.
    let second: Value = client()
        .get(format!("{}/v1/sessions/caller-2?events=true", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = second["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["type"] == "approval_decided"
            && e["approved"] == true
            && e["operator"] == "ana"),
        "{second}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "reply"
                && e["text"] == "The refill is on its way to your pharmacy."),
        "{second}"
    );

    // The primary agent answers the next message, told what the person did.
    fake.push(Reply::text("Glad the nurse could help. Anything else?"));
    let events = post(
        &server,
        "/v1/sessions/caller-1/messages?stream=false",
        json!({"text": "Thank you"}),
    )
    .await;
    let reply = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "reply")
        .unwrap_or_else(|| panic!("no reply: {events}"));
    assert_eq!(reply["agent"], "primary");
    let system = fake.requests().pop().unwrap()["messages"][0]["content"].to_string();
    assert!(system.contains("advised rest"), "{system}");
}
