//! The `ladderc` command line: examples check clean, graphs, JSON output, exit codes.

mod common;

use common::{ladderc, transcript};

const EXAMPLES: &[&str] = &[
    "examples/after_hours.ladder",
    "examples/clinic.ladder",
    "examples/triage.ladder",
];

#[test]
fn examples_check_clean_even_with_deny_warnings() {
    for example in EXAMPLES {
        let output = ladderc(&["check", "--color", "never", "--deny", "warnings", example]);
        assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
        let name = example
            .trim_start_matches("examples/")
            .trim_end_matches(".ladder");
        insta::assert_snapshot!(format!("check_{name}"), transcript(&output));
    }
}

#[test]
fn example_graphs() {
    for example in EXAMPLES {
        let name = example
            .trim_start_matches("examples/")
            .trim_end_matches(".ladder");
        for format in ["mermaid", "dot", "json"] {
            let output = ladderc(&["graph", "--format", format, example]);
            assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
            insta::assert_snapshot!(
                format!("graph_{name}_{format}"),
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
}

#[test]
fn json_format_is_a_documented_document() {
    let output = ladderc(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/check/undefined_target.ladder",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["ok"], false);
    let d = &doc["ladders"][0]["diagnostics"][0];
    assert_eq!(d["code"], "L0004");
    assert_eq!(d["name"], "undefined-name");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["primary"]["line"], 8);
    assert_eq!(d["primary"]["column"], 22);
    assert_eq!(d["help"], "did you mean `billing_agent`?");
    let (start, end) = (
        d["primary"]["start"].as_u64().unwrap(),
        d["primary"]["end"].as_u64().unwrap(),
    );
    let text = std::fs::read_to_string(
        common::repo_root().join("tests/fixtures/check/undefined_target.ladder"),
    )
    .unwrap();
    assert_eq!(&text[start as usize..end as usize], "biling_agent");
    insta::assert_json_snapshot!(doc);
}

#[test]
fn deny_warnings_turns_warnings_into_errors() {
    let fixture = "tests/fixtures/check/unreachable_rungs.ladder";
    assert_eq!(ladderc(&["check", fixture]).status.code(), Some(0));
    let denied = ladderc(&["check", "--color", "never", "--deny", "warnings", fixture]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stdout).contains("2 errors"));
    let by_code = ladderc(&["check", "--deny", "L0011", fixture]);
    assert_eq!(by_code.status.code(), Some(1));
    let allowed = ladderc(&[
        "check",
        "--color",
        "never",
        "--allow",
        "unreachable-rung",
        fixture,
    ]);
    assert_eq!(allowed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("0 warnings"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(
        ladderc(&["check", "no/such/file.ladder"]).status.code(),
        Some(2)
    );
    assert_eq!(
        ladderc(&["check", "--deny", "nonsense", "examples/triage.ladder"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(ladderc(&["check"]).status.code(), Some(2));
    assert_eq!(ladderc(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn several_files_are_summarised_together() {
    let output = ladderc(&[
        "check",
        "--color",
        "never",
        "examples/triage.ladder",
        "tests/fixtures/check/unused_items.ladder",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with("check ok: 2 files checked, 0 errors, 4 warnings\n"),
        "{stdout}"
    );
}

#[test]
fn colours_only_when_asked() {
    let plain = ladderc(&["check", "tests/fixtures/check/undefined_model.ladder"]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\u{1b}'));
    let coloured = ladderc(&[
        "check",
        "--color",
        "always",
        "tests/fixtures/check/undefined_model.ladder",
    ]);
    assert!(String::from_utf8_lossy(&coloured.stdout).contains('\u{1b}'));
}
