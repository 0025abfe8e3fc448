//! Formatter bugs the fuzzer found (fuzz/regressions/fmt/), checked on the formatter itself,
//! without the safety net that would hide them by leaving the file as it was.

use ladder_syntax::{format_unguarded, parse, FileId};

fn fixed_point(text: &str) -> String {
    let parsed = parse(FileId(0), text).expect("the input parses");
    let once = format_unguarded(&parsed, text);
    let again = parse(FileId(0), &once).expect("the output parses");
    assert_eq!(format_unguarded(&again, &once), once, "not idempotent");
    once
}

#[test]
fn a_comment_right_after_the_version_stays_on_its_line() {
    let out = fixed_point("ladder 1// c\n \nhuman rn \"Nurse\"\n");
    assert_eq!(out, "ladder 1  // c\n\nhuman rn \"Nurse\"\n");
}

#[test]
fn an_unknown_tool_statement_keeps_its_own_line() {
    // Joined on one line, the raw statement would swallow `timeout 2s` (one error, not two).
    let out = fixed_point("ladder 1\ntool t(id: string) -> string {id\"Look.\"\n  timeout 2s\n}\n");
    assert!(out.contains("\n  id\"Look.\"\n"), "{out}");
    assert!(out.contains("\n  timeout 2s\n"), "{out}");
}
