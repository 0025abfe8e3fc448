//! `ladderc run` through the real binary: the examples on the offline simulator, and a real
//! OpenAI-compatible HTTP server (the fake one) for `--base-url`, `--json`, `--trace`, `--model`.

mod common;

use common::repo_root;
use ladder_fake_openai::{FakeOpenAi, Reply};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ladderc(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ladderc"));
    cmd.args(args)
        .current_dir(repo_root())
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ladderc starts");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("ladderc runs")
}

/// [`ladderc`] on a blocking task, for the tests whose fake model server runs on the test's own
/// runtime.
async fn ladderc_beside(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin = stdin.map(String::from);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ladderc(&args, &env, stdin.as_deref())
    })
    .await
    .expect("ladderc runs")
}

/// Events as JSON values, with what changes from run to run (ids, timings) replaced.
fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let mut v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
            if v.get("session").is_some() {
                v["session"] = json!("[session]");
            }
            if v.get("latency_ms").is_some() {
                v["latency_ms"] = json!("[ms]");
            }
            v
        })
        .collect()
}

const CONVERSATIONS: &[(&str, &[&str])] = &[
    (
        "after_hours",
        &[
            "I need to book an appointment for Friday",
            "can I move my appointment to Monday instead",
        ],
    ),
    (
        "clinic",
        &["I feel sick and have a fever", "it started yesterday"],
    ),
    (
        "triage",
        &["I was charged twice on my invoice", "and I want a refund"],
    ),
];

#[test]
fn examples_run_end_to_end_on_the_simulator() {
    for (name, messages) in CONVERSATIONS {
        let file = format!("examples/{name}.ladder");
        let mut args = vec!["run", file.as_str(), "--backend", "sim"];
        for m in *messages {
            args.extend(["--message", m]);
        }
        let human = ladderc(&args, &[], None);
        assert_eq!(
            human.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&human.stderr)
        );
        insta::assert_snapshot!(
            format!("run_{name}"),
            String::from_utf8_lossy(&human.stdout)
        );
        let stderr = String::from_utf8_lossy(&human.stderr);
        assert!(
            stderr.contains(&format!("summary: {} turns", messages.len())),
            "{stderr}"
        );

        args.push("--json");
        let json = ladderc(&args, &[], None);
        assert_eq!(json.status.code(), Some(0));
        insta::assert_json_snapshot!(format!("run_{name}_events"), events(&json.stdout));
    }
}

#[test]
fn without_an_endpoint_the_simulator_is_used_with_a_notice() {
    let out = ladderc(
        &["run", "examples/triage.ladder", "-m", "the app crashes"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("using the offline simulator") && stderr.contains("OPENAI_BASE_URL"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("handoff triage -> support (intent support)")
    );
}

#[test]
fn interactive_mode_reads_lines_until_end_of_input() {
    let out = ladderc(
        &["run", "examples/triage.ladder", "--backend", "sim"],
        &[],
        Some("I was charged twice\n\nthanks\n/quit\nnever sent\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary: 2 turns"));
}

#[test]
fn a_ladder_with_errors_does_not_run() {
    let out = ladderc(
        &[
            "run",
            "tests/fixtures/check/handoff_cycle.ladder",
            "-m",
            "hi",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("L0010"));
    assert_eq!(
        ladderc(&["run", "no/such.ladder", "-m", "hi"], &[], None)
            .status
            .code(),
        Some(2)
    );
}

const SECRET: &str = "sk-ladder-run-secret-81f3";

#[tokio::test(flavor = "multi_thread")]
async fn a_real_endpoint_with_json_trace_and_model_override() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice_id": "inv-9"}),
    ));
    fake.push(Reply::tool("refund_status", json!({"invoice_id": "inv-9"})));
    fake.push(Reply::text("Your refund was issued."));
    fake.push(Reply::tool(
        "escalate_to_account_manager",
        json!({"reason": "angry", "sentiment": -0.9}),
    ));
    let dir = std::env::temp_dir().join(format!("ladderc-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.jsonl");
    let base = fake.base_url();
    let trace_arg = trace.to_string_lossy().to_string();
    let out = ladderc_beside(
        &[
            "run",
            "examples/triage.ladder",
            "--base-url",
            &base,
            "--model",
            "local-llama",
            "--json",
            "--trace",
            &trace_arg,
            "-m",
            "refund for inv-9?",
            "-m",
            "this is outrageous",
        ],
        &[("OPENAI_API_KEY", SECRET)],
        None,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = events(&out.stdout);
    let kinds: Vec<&str> = printed
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.starts_with(&[
            "turn_started",
            "agent_active",
            "handoff",
            "agent_active",
            "tool_call",
            "tool_result",
            "text_delta"
        ]),
        "{kinds:?}"
    );
    assert!(printed
        .iter()
        .any(|e| e["type"] == "escalation" && e["to"] == "account_manager"));
    assert!(printed.iter().any(|e| e["type"] == "human_needed"));
    let traced = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(
        traced.lines().count(),
        printed.len(),
        "the trace has every event"
    );
    assert!(!traced.contains(SECRET) && !String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let requests = fake.requests();
    assert!(requests
        .iter()
        .all(|r| r["model"] == "local-llama" && r["stream"] == true));
    let auth = fake.request_headers()[0]
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(auth, format!("Bearer {SECRET}"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn temp_ladder(name: &str, source: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ladder-run-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    path.display().to_string()
}

#[test]
fn a_turn_that_ends_in_an_error_exits_1_and_names_the_endpoint() {
    let out = ladderc(
        &[
            "run",
            "--backend",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "-m",
            "hi",
            "examples/triage.ladder",
        ],
        &[],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("http://127.0.0.1:9/v1"), "{stdout}");
    assert!(stderr.contains("ended in an error"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_before_anything_runs() {
    for args in [
        &["run", "-m", "", "examples/triage.ladder"][..],
        &[
            "run",
            "--prices",
            "0/0",
            "-m",
            "hi",
            "examples/triage.ladder",
        ][..],
        &[
            "run",
            "--model",
            "x",
            "--prices",
            "cheap",
            "-m",
            "hi",
            "examples/triage.ladder",
        ][..],
        &[
            "run",
            "--temperature",
            "3",
            "-m",
            "hi",
            "examples/triage.ladder",
        ][..],
    ] {
        let out = ladderc(args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_collect_question_is_shown_to_the_caller() {
    let path = temp_ladder(
        "ask.ladder",
        r#"ladder 1
ladder ask { entry intake }
script intake {
  collect phone: phone "Which number should we call?"
  say "Thanks, we will call {{phone}}."
  end
}
"#,
    );
    let out = ladderc(
        &[
            "run",
            "--backend",
            "sim",
            "-m",
            "hi",
            "-m",
            "call me later",
            "-m",
            "sure, it's +1 555 0100, thanks",
            &path,
        ],
        &[],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[intake] Which number should we call?"),
        "{stdout}"
    );
    // A sentence is not a phone number: asked again, nothing stored.
    assert!(
        stdout.contains("[intake] Sorry, I need a phone number. Which number should we call?"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Thanks, we will call +1 555 0100."),
        "{stdout}"
    );
}

#[test]
fn a_stored_session_continues_only_with_its_own_ladder() {
    let db = std::env::temp_dir().join(format!("ladder-run-{:016x}.db", fastrand::u64(..)));
    let store = format!("sqlite:{}", db.display());
    let run = |ladder: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--backend",
            "sim",
            "--store",
            &store,
            "--session",
            "call-1",
        ];
        args.extend_from_slice(extra);
        args.extend(["-m", "I need an appointment", ladder]);
        ladderc(&args, &[], None)
    };
    assert_eq!(
        run("examples/after_hours.ladder", &[]).status.code(),
        Some(0)
    );
    let other = run("examples/triage.ladder", &[]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("belongs to ladder `after_hours"),
        "{stderr}"
    );
    // Asked for explicitly, it continues (and takes the new ladder's stamp).
    let migrated = run("examples/triage.ladder", &["--migrate"]);
    assert_ne!(
        migrated.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert_eq!(
        run("examples/triage.ladder", &[])
            .status
            .code()
            .map(|c| c != 2),
        Some(true)
    );
}

/// Interactive `run` on a real terminal (a pseudo-terminal): a banner naming the ladder and its
/// entry, `/help`, line editing (a line recalled with the Up key and edited), `/quit`.
#[cfg(unix)]
#[test]
fn interactive_run_on_a_terminal_has_a_banner_help_history_and_quit() {
    let command = format!(
        "{} run --backend sim examples/triage.ladder",
        env!("CARGO_BIN_EXE_ladderc")
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(&command).current_dir(repo_root());
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    p.exp_string("ladder `help_desk`, entry `triage`").unwrap();
    p.exp_string("> ").unwrap();
    p.send_line("/help").unwrap();
    p.exp_string("/quit").unwrap();
    p.exp_string("> ").unwrap();
    p.send_line("my app crashes").unwrap();
    p.exp_string("[support]").unwrap();
    p.exp_string("> ").unwrap();
    // Ctrl-P (previous line, like Up) recalls "my app crashes"; edit it and send it: the
    // simulated agent quotes what it got.
    p.send("\x10").unwrap();
    p.flush().unwrap();
    p.send(" again\r").unwrap();
    p.flush().unwrap();
    p.exp_string("\"my app crashes again\"").unwrap();
    p.exp_string("> ").unwrap();
    p.send_line("/quit").unwrap();
    p.exp_eof().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_return_shows_in_the_conversation() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("transfer_to_billing", json!({})));
    fake.push(Reply::tool(
        "return_to_triage",
        json!({"summary": "Refund of INV-9 issued."}),
    ));
    fake.push(Reply::text("Your refund is on its way."));
    let ladder = temp_ladder(
        "returns.ladder",
        "ladder 1\nladder desk { entry triage }\nmodel m { provider: openai, name: \"fake\" }\n\
         intent billing \"Refunds\"\n\
         agent triage { model m prompt \"Route, and answer what is left.\" handoff billing -> billing }\n\
         agent billing { model m accepts billing prompt \"Handle refunds.\" return }\n",
    );
    let base = fake.base_url();
    let out = ladderc_beside(
        &["run", &ladder, "--base-url", &base, "-m", "Refund INV-9"],
        &[("OPENAI_API_KEY", "k")],
        None,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("<- billing returns to triage: Refund of INV-9 issued."),
        "{stdout}"
    );
    assert!(stdout.contains("Your refund is on its way."), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_plays_the_person_with_operator() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool(
        "escalate_to_on_call",
        json!({"reason": "the caller asks for a nurse"}),
    ));
    fake.push(Reply::text("Glad the nurse could help."));
    let path = temp_ladder(
        "nurse.ladder",
        r#"ladder 1
ladder desk { entry triage }
model m { provider: openai, name: "fake-model" }

agent triage {
  model m
  prompt "Help the caller; escalate to a nurse when asked."
  escalate -> on_call
}

human on_call "On-call nurse" {
  queue: "nurses",
  handover: "A nurse will be with you shortly.",
  release: [triage],
}
"#,
    );
    let base = fake.base_url();
    // The caller's line, then the person's two (a message, a release), then the caller's.
    let stdin =
        "I need a nurse\nHello, I am Ana. Drink water.\n/release triage advised rest\nthanks\n";
    let out = ladderc_beside(
        &["run", &path, "--base-url", &base, "--operator", "ana"],
        &[],
        Some(stdin),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "[on_call] A nurse will be with you shortly.",
        "* ana (on_call) took the conversation",
        "[on_call: ana] Hello, I am Ana. Drink water.",
        "-> ana (on_call) handed the conversation to triage",
        "[triage] Glad the nurse could help.",
    ] {
        assert!(text.contains(line), "`{line}` missing from\n{text}");
    }
    // Two model calls: the escalation, and triage's answer told what the person did.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].to_string().contains("advised rest"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_with_provider_anthropic_speaks_the_messages_api() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Hello from Claude."));
    let path = temp_ladder(
        "claude.ladder",
        r#"ladder 1
ladder desk { entry front }
model claude { provider: anthropic, name: "claude-haiku-4-5", max_output_tokens: 300 }
agent front { model claude prompt "Greet the caller." }
"#,
    );
    let base = fake.base_url();
    let out = ladderc_beside(
        &["run", &path, "-m", "hi"],
        &[
            ("ANTHROPIC_BASE_URL", base.as_str()),
            ("ANTHROPIC_API_KEY", SECRET),
        ],
        None,
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[front] Hello from Claude."), "{text}");
    fake.assert_no_rejections();
    let headers = fake.request_headers();
    assert_eq!(headers[0]["x-api-key"], SECRET);
    assert_eq!(fake.requests()[0]["max_tokens"], 300);
    // The key never reaches the output.
    assert!(!text.contains(SECRET) && !String::from_utf8_lossy(&out.stderr).contains(SECRET));
}

/// Fused routing through the binary, against the strict fake: the clinic's front router is
/// offered the routes through its two leads (beside `clinical_lead`, which may also escalate; in
/// place of `ops_lead`, which only routes), one call takes a route, and both handoffs are
/// reported, the second marked `fused`, with one model call fewer.
#[tokio::test(flavor = "multi_thread")]
async fn one_call_routes_through_a_pure_router() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool(
        "transfer_to_billing",
        json!({"invoice_id": "INV-9"}),
    ));
    fake.push(Reply::text("Invoice INV-9 is paid."));
    let base = fake.base_url();
    let out = ladderc_beside(
        &[
            "run",
            "examples/clinic.ladder",
            "--base-url",
            &base,
            "--json",
            "-m",
            "Was I charged twice for INV-9?",
        ],
        &[("OPENAI_API_KEY", "k")],
        None,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fake.assert_no_rejections();
    let events = events(&out.stdout);
    let hops: Vec<&Value> = events.iter().filter(|e| e["type"] == "handoff").collect();
    assert_eq!(hops.len(), 2, "{events:#?}");
    assert_eq!(
        (&hops[0]["from"], &hops[0]["to"], &hops[0]["intent"]),
        (
            &json!("root_triage"),
            &json!("ops_lead"),
            &json!("operations")
        )
    );
    assert_eq!(hops[0].get("fused"), None);
    assert_eq!(
        (&hops[1]["from"], &hops[1]["to"], &hops[1]["payload"]),
        (
            &json!("ops_lead"),
            &json!("billing"),
            &json!({"invoice_id": "INV-9"})
        )
    );
    assert_eq!(hops[1]["fused"], true);
    let ended = events.iter().find(|e| e["type"] == "turn_ended").unwrap();
    assert_eq!(
        (&ended["llm_calls"], &ended["handoffs"]),
        (&json!(2), &json!(2))
    );

    let requests = fake.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        offered,
        [
            "transfer_to_clinical_lead",
            "transfer_to_scheduler",
            "transfer_to_nurse_triage",
            "transfer_to_billing",
            "transfer_to_insurance"
        ]
    );
}
