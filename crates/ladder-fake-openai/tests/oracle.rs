//! The oracle test: the official `openai` Python SDK (installed by `.ci/run` into a venv, named
//! by `LADDER_ORACLE_PYTHON`) talks to the fake and checks that every kind of answer it produces
//! is real-shaped, and that its rejections look like OpenAI's. Without the variable the test is
//! skipped with a notice, unless `LADDER_REQUIRE_ORACLE` is set (as in CI), where it fails.

use ladder_fake_openai::{FakeOpenAi, Reply};
use serde_json::json;
use std::path::Path;

/// The venv's python with `openai` and `anthropic`, or `None` (the test is skipped, unless
/// `LADDER_REQUIRE_ORACLE` says it must run).
fn oracle_python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("LADDER_ORACLE_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("LADDER_REQUIRE_ORACLE").is_none(),
            "LADDER_REQUIRE_ORACLE is set but LADDER_ORACLE_PYTHON is not"
        );
        eprintln!(
            "skipped: set LADDER_ORACLE_PYTHON to a python with `openai` and `anthropic` installed"
        );
    }
    python
}

/// Runs `tests/SCRIPT` against the fake at `base`; every case must pass and every scripted
/// answer must have been used.
async fn run_oracle(python: &std::ffi::OsStr, script: &str, base: &str, fake: &FakeOpenAi) {
    let output = tokio::process::Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .arg(base)
        .output()
        .await
        .expect("start python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(fake.remaining(), 0, "every scripted answer was checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_accepts_every_answer_of_the_fake() {
    let Some(python) = oracle_python() else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    let text = || Reply::text("Hello there, caller.");
    let calls = || {
        Reply::ToolCalls(vec![
            ("lookup".into(), json!({"id": "a-1"})),
            ("transfer_to_billing".into(), json!({})),
        ])
    };
    let status = |status| Reply::Status {
        status,
        retry_after: None,
    };
    let truncated = || Reply::Truncated {
        name: "lookup".into(),
        partial_arguments: r#"{"id": "a-"#.into(),
    };
    // In the order the cases of oracle.py consume them.
    for reply in [
        text(),
        text(),
        text(),
        calls(),
        calls(),
        calls(),
        Reply::text("ok"),
        status(429),
        status(500),
        status(503),
        Reply::StreamError {
            message: "The model produced output that does not match the expected format".into(),
        },
        truncated(),
        truncated(),
        Reply::NumberContent,
        Reply::NullMessage,
        Reply::EmptyChoices,
        Reply::DoneFirst,
    ] {
        fake.push(reply);
    }
    run_oracle(&python, "oracle.py", &fake.base_url(), &fake).await;
    // The rejections the oracle provoked, and no other.
    assert_eq!(fake.rejections().len(), 4, "{:#?}", fake.rejections());
}

/// The same for the Messages side: the official `anthropic` SDK (same venv).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_accepts_every_answer_of_the_fake() {
    let Some(python) = oracle_python() else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    fake.set_usage(100, 20, 40);
    let calls = || {
        Reply::ToolCalls(vec![
            ("lookup".into(), json!({"id": "a-1"})),
            ("transfer_to_billing".into(), json!({})),
        ])
    };
    let status = |status| Reply::Status {
        status,
        retry_after: None,
    };
    // In the order the cases of oracle_anthropic.py consume them.
    for reply in [
        Reply::text("Hello there, caller."),
        Reply::text("Hello there, caller."),
        calls(),
        calls(),
        Reply::text("ok"),
        status(429),
        status(529),
    ] {
        fake.push(reply);
    }
    // The SDK appends /v1/messages itself.
    let base = fake.base_url();
    run_oracle(
        &python,
        "oracle_anthropic.py",
        base.trim_end_matches("/v1"),
        &fake,
    )
    .await;
    // The three bad requests of the oracle, and no other.
    assert_eq!(fake.rejections().len(), 3, "{:#?}", fake.rejections());
}
