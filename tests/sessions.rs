//! `ladderc run --session` and `ladderc sessions` through the real binary, on a real SQLite file.

mod common;

use common::repo_root;
use ladder_store::testing::fresh_sqlite_path;
use serde_json::Value;
use std::process::{Command, Output};

fn ladderc(args: &[&str], store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(args)
        .args(["--store", store])
        .current_dir(repo_root())
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("LADDER_STORE")
        .output()
        .expect("ladderc runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn run_continues_a_stored_session_and_sessions_inspects_it() {
    let store = fresh_sqlite_path().display().to_string();
    let run = |message: &str| {
        ladderc(
            &[
                "run",
                "examples/after_hours.ladder",
                "--backend",
                "sim",
                "--json",
                "--session",
                "call-42",
                "-m",
                message,
            ],
            &store,
        )
    };
    let first = run("I need to book an appointment for Friday");
    stdout(&first);
    assert!(String::from_utf8_lossy(&first.stderr).contains("session: call-42"));
    let second = stdout(&run("can I move my appointment to Monday instead"));
    let started: Value = serde_json::from_str(second.lines().next().unwrap()).unwrap();
    assert_eq!(started["type"], "turn_started");
    assert_eq!(started["turn"], 2, "the second run continued the session");

    let list = stdout(&ladderc(&["sessions", "list", "--json"], &store));
    let rows: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], "call-42");
    assert_eq!(rows[0]["turns"], 2);
    assert_eq!(rows[0]["current"], "scheduler");
    let table = stdout(&ladderc(&["sessions", "list"], &store));
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("call-42  scheduler") && table.contains("idle"),
        "{table}"
    );

    insta::assert_snapshot!(
        "sessions_show",
        stdout(&ladderc(&["sessions", "show", "call-42"], &store))
    );

    let export: Value = serde_json::from_str(&stdout(&ladderc(
        &["sessions", "export", "call-42"],
        &store,
    )))
    .unwrap();
    assert_eq!(export["state"]["turn"], 2);
    assert_eq!(export["open_turn"], Value::Null);
    let turns: Vec<&Value> = export["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "turn_started")
        .map(|e| &e["turn"])
        .collect();
    assert_eq!(turns, [&Value::from(1), &Value::from(2)]);

    let missing = ladderc(&["sessions", "show", "nope"], &store);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: session `nope` does not exist\n"
    );
}

#[test]
fn an_unreachable_store_is_a_clear_error() {
    let output = ladderc(
        &["sessions", "list"],
        "postgres://nobody:x@127.0.0.1:1/none",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to PostgreSQL"),
        "{stderr}"
    );
}

/// `sessions show` lists what went wrong in each turn (it used to hide turn errors).
#[test]
fn sessions_show_lists_the_errors_of_each_turn() {
    let store = fresh_sqlite_path().display().to_string();
    let out = ladderc(
        &[
            "run",
            "examples/triage.ladder",
            "--backend",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--session",
            "failing-1",
            "-m",
            "hi",
        ],
        &store,
    );
    assert_eq!(out.status.code(), Some(1));
    let shown = stdout(&ladderc(&["sessions", "show", "failing-1"], &store));
    assert!(shown.contains("problems:"), "{shown}");
    assert!(shown.contains("[1] error in triage"), "{shown}");
    assert!(shown.contains("http://127.0.0.1:9/v1"), "{shown}");
}
