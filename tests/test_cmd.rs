//! `ladderc test` through the real binary.

mod common;

use common::{ladderc, repo_root};
use ladder_fake_openai::{FakeOpenAi, Reply};
use std::time::Duration;

/// Timings vary from run to run; snapshots show `[ms]`.
/// Latencies vary from run to run, and so does the padding of their right-aligned column.
fn redact(s: &str) -> String {
    regex::Regex::new(r" *\d+(/\d+)?ms")
        .unwrap()
        .replace_all(s, " [ms]")
        .to_string()
}

#[test]
fn every_example_ships_tests_that_pass() {
    let out = ladderc(&[
        "test",
        "--backend",
        "sim",
        "examples/after_hours.test.ladder",
        "examples/clinic.test.ladder",
        "examples/triage.test.ladder",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.ends_with("test ok: 10 passed, 0 failed; 0 budget breaches\n"),
        "{stdout}"
    );
}

#[test]
fn a_failing_expectation_shows_expected_and_actual() {
    let out = ladderc(&["test", "tests/fixtures/test/failing.ladder"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(redact(&String::from_utf8_lossy(&out.stdout)));
}

#[test]
fn junit_output_is_valid_xml_with_the_failures() {
    let path = std::env::temp_dir().join(format!("ladderc-junit-{}.xml", std::process::id()));
    let p = path.to_string_lossy().to_string();
    let out = ladderc(&[
        "test",
        "--junit",
        &p,
        "tests/fixtures/test/failing.ladder",
        "examples/triage.test.ladder",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2);
    assert_eq!(suites[0].attribute("tests"), Some("2"));
    assert_eq!(suites[0].attribute("failures"), Some("1"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(failure.attribute("message"), Some("expected agent support"));
    assert_eq!(
        failure.parent().unwrap().attribute("name"),
        Some("expects the wrong rung")
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        5
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn filter_json_and_usage_errors() {
    let out = ladderc(&[
        "test",
        "--json",
        "--filter",
        "passes",
        "tests/fixtures/test/failing.ladder",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["files"][0]["tests"].as_array().unwrap().len(), 1);
    assert_eq!(
        ladderc(&["test", "--noise", "3", "examples/triage.test.ladder"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ladderc(&["test", "no/such.ladder"]).status.code(), Some(2));
    // A test that expects an impossible route does not compile.
    assert_eq!(
        ladderc(&["test", "tests/fixtures/check/test_impossible_route.ladder"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn noise_reports_the_pass_rate_per_level_reproducibly() {
    let args = [
        "test",
        "--backend",
        "sim",
        "--noise",
        "0.6",
        "--repeat",
        "4",
        "examples/triage.test.ladder",
    ];
    let first = ladderc(&args);
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        stdout.contains("noise 0.00: 12/12 (100%)") && stdout.contains("noise 0.60: "),
        "{stdout}"
    );
    // One table for the whole run, not one per file or test.
    assert_eq!(
        stdout.matches("pass rate by noise level").count(),
        1,
        "{stdout}"
    );
    // A failed noisy run shows what was sent.
    if stdout.contains("(noise 0.60, does not fail the run)") {
        assert!(stdout.contains("turn 1 sent: "), "{stdout}");
    }
    let second = ladderc(&args);
    assert_eq!(
        redact(&stdout),
        redact(&String::from_utf8_lossy(&second.stdout)),
        "seeded noise is reproducible"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeat_statistics_and_a_latency_budget_against_a_slow_endpoint() {
    let fake = FakeOpenAi::start().await;
    fake.set_default(
        Reply::text("Booked for Monday."),
        Duration::from_millis(250),
    );
    let base = fake.base_url();
    let out = tokio::task::spawn_blocking(move || {
        ladderc(&[
            "test",
            "--json",
            "--repeat",
            "5",
            "--base-url",
            &base,
            "tests/fixtures/test/latency.ladder",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let test = &report["files"][0]["tests"][0];
    assert_eq!(test["runs"], 5);
    assert_eq!(test["pass_rate"], 1.0);
    let p50 = test["latency_ms_p50"].as_f64().unwrap();
    let p95 = test["latency_ms_p95"].as_f64().unwrap();
    assert!(
        (250.0..2000.0).contains(&p50) && p95 >= p50,
        "p50 {p50} p95 {p95}"
    );
    let breach = report["files"][0]["budget_breaches"][0].as_str().unwrap();
    assert!(
        breach.contains("exceeds the budget latency_p95 of 0.1s"),
        "{breach}"
    );
    assert_eq!(fake.requests().len(), 5);
    let _ = repo_root();
}

/// A server that counts the requests it gets (the "ticket system" of a live `http` tool).
fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = r#"{"ticket":"T-1"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count)
}

/// Tests are hermetic: a scripted test whose model calls a live `http` tool never reaches its
/// server unless the test stubs the tool (`tool T returns {..}`) or the run passes --live-tools.
/// (A `ladderc test --repeat 20` once created 41 real tickets.)
#[test]
fn tests_never_call_live_tools_unless_asked() {
    let (url, count) = counting_server();
    let ladder = |stub: &str| {
        format!(
            r#"ladder 1
ladder desk {{ entry agent_a }}
model m {{ provider: openai, name: "m" }}
tool open_ticket(title: string) -> json {{
  "Opens a ticket."
  http POST "{url}/tickets" body {{ "title": "{{title}}" }}
}}
agent agent_a {{ model m prompt "Open tickets." tools [open_ticket] }}
test "opens a ticket" {{
  {stub}
  user "my printer is on fire"
  model agent_a calls open_ticket {{ title: "fire" }}
  model agent_a says "Ticket opened."
  expect tool open_ticket
}}
"#
        )
    };
    let dir = std::env::temp_dir().join(format!("ladder-hermetic-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let unstubbed = dir.join("unstubbed.ladder");
    std::fs::write(&unstubbed, ladder("")).unwrap();
    let stubbed = dir.join("stubbed.ladder");
    std::fs::write(
        &stubbed,
        ladder(r#"tool open_ticket returns { ticket: "T-0" }"#),
    )
    .unwrap();

    let out = ladderc(&["test", unstubbed.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("live tool `open_ticket`"), "{stdout}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);

    let out = ladderc(&["test", "--repeat", "3", stubbed.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);

    let out = ladderc(&["test", "--live-tools", unstubbed.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Noisy runs measure robustness: a failed one is never a JUnit `<failure>` (CI dashboards would
/// go red for a run that passed), and its perturbed input is in `<system-out>`.
#[test]
fn noisy_failures_are_not_junit_failures() {
    let path = std::env::temp_dir().join(format!("ladderc-junit-noise-{}.xml", std::process::id()));
    let p = path.to_string_lossy().to_string();
    let out = ladderc(&[
        "test",
        "--backend",
        "sim",
        "--noise",
        "1.0",
        "--repeat",
        "3",
        "--junit",
        &p,
        "examples/triage.test.ladder",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let xml = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0,
        "{xml}"
    );
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("0"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_specialist_returns_the_conversation_through_the_binary() {
    let out = ladderc(&["test", "tests/fixtures/test/returns.ladder"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("triage -> billing, triage <- billing"),
        "{stdout}"
    );
    assert!(stdout.contains("`a <- b` b returned to a"), "{stdout}");
}
