//! The parallel parse of large files gives exactly the AST and errors of the sequential one.

use ladder_syntax::{parse, parse_sequential, FileId, PARALLEL_THRESHOLD};

/// A large file whose strings and comments contain braces, to trip a careless cutter.
fn large_file() -> String {
    let mut s = String::from("ladder 1\n#![allow(unused)]\nladder big { entry a0 }\n");
    let mut n = 0;
    while s.len() < PARALLEL_THRESHOLD * 3 {
        s.push_str(&format!(
            "/// doc {{ with braces }}\nagent a{n} {{\n  model m // a comment }} with a brace\n  prompt \"\"\"\n    text with }} and {{ braces {{{{var}}}}\n  \"\"\"\n  /* block }} comment */\n  handoff i -> a{}\n}}\nmeta {{ note: \"a }} brace\", nested: {{ x: 1 }} }}\ntool t{n}(p: string = \"}}\") -> string {{ mock {{ k: \"}}\" }} }}\n",
            n + 1
        ));
        n += 1;
    }
    s
}

#[test]
fn parallel_and_sequential_parses_agree() {
    let text = large_file();
    let parallel = parse(FileId(0), &text).expect("valid");
    let sequential = parse_sequential(FileId(0), &text).expect("valid");
    assert_eq!(parallel, sequential);
}

#[test]
fn errors_late_in_a_large_file_are_those_of_the_sequential_parse() {
    let mut text = large_file();
    text.push_str("agent broken {\n  handoff x y\n}\n");
    let parallel = parse(FileId(0), &text).expect_err("invalid");
    let sequential = parse_sequential(FileId(0), &text).expect_err("invalid");
    assert_eq!(parallel, sequential);
    assert_eq!(parallel.expected, vec!["`->`".to_string()]);
}
