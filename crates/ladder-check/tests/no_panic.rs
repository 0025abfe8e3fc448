//! The parser and checker never panic, on any input, and every diagnostic points inside its file
//! at character boundaries. Bounded so that CI runs it as a smoke test; raise
//! `PROPTEST_CASES` locally for a longer fuzz.

use ladder_check::{check_source, CheckOptions};
use proptest::prelude::*;

const EXAMPLES: &[&str] = &[
    include_str!("../../../examples/after_hours.ladder"),
    include_str!("../../../examples/clinic.ladder"),
    include_str!("../../../examples/triage.ladder"),
];

/// Pieces of the language, so that random sequences reach deep into the grammar and checker.
const TOKENS: &[&str] = &[
    "ladder 1\n",
    "ladder x {",
    "entry a",
    "limits {",
    "budget {",
    "steps_per_turn: 0",
    "latency_p95: 1s",
    "cost_per_turn: $0.01",
    "vars {",
    "v: string = \"d\"",
    "meta { { } }",
    "model m {",
    "provider: openai",
    "name: \"n\"",
    "input: $1/Mtok",
    "max_input_tokens: 10",
    "intent i \"d\"",
    "{ f: string? }",
    "examples [\"e\"]",
    "type T {",
    "x: [T]",
    "y: enum(a, b)",
    "tool t(p: string = session.v) -> T {",
    "mock { x: [] }",
    "http GET \"u/{p}\"",
    "exec \"p\"",
    "host",
    "timeout 2s",
    "retries 3",
    "agent a {",
    "agent b {",
    "human h \"H\"",
    "script s {",
    "say \"{{v}}\"",
    "collect c: phone",
    "end",
    "handoff h",
    "model m",
    "prompt \"\"\"\n  {{transcript}} {{summary}} {{intent.f}}\n\"\"\"",
    "tools [t]",
    "accepts i",
    "handoff i -> b",
    "handoff i -> a context last(2)",
    "escalate -> a when confidence < 0.5",
    "consult b",
    "sla 1s else -> s",
    "fallback -> h",
    "router",
    "#[allow(unused)]",
    "#![deny(warnings)]",
    "/// doc\n",
    "// c\n",
    "}",
    "}",
    "}",
    "{",
    ",",
    ":",
    "->",
    "\n",
    " ",
    "\"",
    "\"\"\"",
    "é",
    "use \"x.ladder\"",
];

fn assert_well_formed(text: &str) {
    ladder_check::fuzzing::check_and_render(text, |report| {
        let _ = miette::GraphicalReportHandler::new().render_report(&mut String::new(), report);
    });
}

fn mutate(base: &str, edits: &[(usize, u8, String)]) -> String {
    let mut text = base.to_string();
    for (at, kind, insert) in edits {
        if text.is_empty() {
            break;
        }
        let mut pos = at % text.len();
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        match kind % 3 {
            0 => {
                let mut end = (pos + 1 + (*at % 7)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(pos..end, "");
            }
            1 => text.insert_str(pos, insert),
            _ => {
                let mut end = (pos + insert.len().max(1)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(pos..end, insert);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in "\\PC{0,400}") {
        assert_well_formed(&text);
    }

    #[test]
    fn mutated_examples(example in 0..EXAMPLES.len(), edits in prop::collection::vec((any::<usize>(), any::<u8>(), "[{}\\[\\]()\"a-z:>\\-$. \n]{0,6}"), 1..8)) {
        assert_well_formed(&mutate(EXAMPLES[example], &edits));
    }

    #[test]
    fn token_soup(tokens in prop::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = tokens.iter().map(|t| format!("{} ", TOKENS[*t])).collect();
        assert_well_formed(&text);
        assert_well_formed(&format!("ladder 1\n{text}"));
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let deep = format!(
        "ladder 1\ntype T {{ x: {}string{} }}\n",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    assert_well_formed(&deep);
    let meta = format!("ladder 1\nmeta {}{}\n", "{".repeat(2000), "}".repeat(2000));
    assert_well_formed(&meta);
    let checked = check_source("deep.ladder", &deep, &CheckOptions::default());
    assert!(checked
        .diagnostics
        .iter()
        .any(|d| d.code == ladder_check::Code::Syntax && d.message.contains("nested")));
}

#[test]
fn generated_ladders_check_clean() {
    for n in [1, 10, 111, 1000] {
        let text = ladder_check::generate::ladder(n, 10);
        let checked = check_source("generated.ladder", &text, &CheckOptions::default());
        assert!(
            checked.diagnostics.is_empty(),
            "{n}: {:?}",
            checked.diagnostics.first()
        );
        assert_eq!(checked.program.expect("clean").agents.len(), n);
    }
}
