//! `ladderc fmt`: canonical, idempotent, and never changes meaning.

mod common;

use common::{ladderc, repo_root};
use ladder_check::{check_source_with, CheckOptions, Code, Loader};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

struct Fs;

impl Loader for Fs {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(repo_root().join(path))
    }
}

fn format(text: &str) -> Option<String> {
    let file = ladder_syntax::parse(ladder_syntax::FileId(0), text).ok()?;
    Some(ladder_syntax::format(&file, text))
}

/// What a ladder means: its program when it checks clean, else its diagnostic codes.
fn meaning(name: &str, text: &str) -> Result<ladder_check::Program, Vec<Code>> {
    let checked = check_source_with(name, text, &Fs, &CheckOptions::default());
    checked
        .program
        .ok_or_else(|| checked.diagnostics.iter().map(|d| d.code).collect())
}

fn ladder_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "examples",
        "tests/fixtures/check",
        "tests/fixtures/check/support",
        "tests/fixtures/test",
    ] {
        for entry in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ladder") {
                files.push(path.strip_prefix(repo_root()).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find("//").map(|i| l[i..].trim().to_string()))
        .filter(|c| !c.starts_with("///"))
        .collect()
}

#[test]
fn formatting_is_idempotent_keeps_comments_and_never_changes_meaning() {
    let mut formatted_count = 0;
    for path in ladder_files() {
        let text = std::fs::read_to_string(repo_root().join(&path)).unwrap();
        let Some(formatted) = format(&text) else {
            continue;
        };
        formatted_count += 1;
        let name = path.to_string_lossy();
        assert_eq!(
            format(&formatted).as_deref(),
            Some(formatted.as_str()),
            "{name}: formatting is not idempotent"
        );
        assert_eq!(
            meaning(&name, &text),
            meaning(&name, &formatted),
            "{name}: formatting changed the meaning"
        );
        for c in comments(&text) {
            assert!(formatted.contains(&c), "{name}: lost the comment {c:?}");
        }
    }
    assert!(
        formatted_count > 60,
        "only {formatted_count} files formatted"
    );
}

#[test]
fn formatted_fixtures() {
    insta::glob!("fixtures/check/*.ladder", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        insta::assert_snapshot!(
            format(&text).unwrap_or_else(|| "(does not parse: left as it is)\n".into())
        );
    });
}

#[test]
fn examples_are_formatted_and_check_mode_reports_the_others() {
    let examples: Vec<String> = ladder_files()
        .into_iter()
        .filter(|p| p.starts_with("examples"))
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let mut args = vec!["fmt", "--check"];
    args.extend(examples.iter().map(String::as_str));
    let out = ladderc(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = ladderc(&[
        "fmt",
        "--check",
        "tests/fixtures/check/handoff_cycle.ladder",
        "tests/fixtures/check/syntax_missing_arrow.ladder",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tests/fixtures/check/handoff_cycle.ladder\n"
    );
    // fmt rewrites in place.
    let dir = std::env::temp_dir().join(format!("ladderc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x.ladder");
    std::fs::copy(
        repo_root().join("tests/fixtures/check/handoff_cycle.ladder"),
        &file,
    )
    .unwrap();
    let f = file.to_string_lossy().to_string();
    assert_eq!(ladderc(&["fmt", &f]).status.code(), Some(0));
    assert_eq!(ladderc(&["fmt", "--check", &f]).status.code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_ladders_keep_their_meaning(agents in 1usize..300, fan_out in 1usize..12) {
        let text = ladder_check::generate::ladder(agents, fan_out);
        let formatted = format(&text).expect("generated ladders parse");
        let again = format(&formatted);
        prop_assert_eq!(again.as_deref(), Some(formatted.as_str()));
        prop_assert_eq!(meaning("g.ladder", &text), meaning("g.ladder", &formatted));
    }
}

/// Inputs on which `fmt` used to grow a `//` line on every run, or write a file that no longer
/// parsed: the formatter read comments where the grammar reads raw text.
#[test]
fn raw_text_that_looks_like_a_comment_is_kept_and_formatting_is_a_fixed_point() {
    let dir = std::env::temp_dir().join(format!("ladder-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, source) in [
        "ladder o{e//}",
        "meta{/*}",
        "ladder 1\nmeta { a: \"//\" /* }",
        "ladder 1\nagent a { model m prompt \"p\" weird // thing }\n",
        "ladder 1\nscript s { sayy /* x }\n",
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(format!("case{i}.ladder"));
        std::fs::write(&path, source).unwrap();
        let p = path.to_str().unwrap();
        common::ladderc(&["fmt", p]);
        let once = std::fs::read_to_string(&path).unwrap();
        common::ladderc(&["fmt", p]);
        let twice = std::fs::read_to_string(&path).unwrap();
        assert_eq!(once, twice, "not a fixed point for {source:?}");
        let parses_before = ladder_syntax::parse(ladder_syntax::FileId(0), source).is_ok();
        let parses_after = ladder_syntax::parse(ladder_syntax::FileId(0), &once).is_ok();
        assert_eq!(parses_before, parses_after, "{source:?} became {once:?}");
    }
}
