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

/// A 110,000-agent handoff chain, and the same closed into a cycle: `check` answers (exit 0,
/// exit 1 with L0010) instead of overflowing its stack in a recursive graph routine.
#[test]
fn huge_chains_and_cycles_check_without_a_crash() {
    let n = 110_000;
    let mut chain = String::from(
        "ladder 1\nladder big { entry a0 }\nmodel m { provider: openai, name: \"x\" }\nintent go \"go\"\n",
    );
    for i in 0..n - 1 {
        chain.push_str(&format!(
            "agent a{i} {{ router model m prompt \"p\" handoff go -> a{} }}\n",
            i + 1
        ));
    }
    let mut cycle = chain.clone();
    // Agents that answer: a chain of 110,000 routers would need 109,999 handoffs (L0018).
    chain = chain.replace(" router ", " ");
    chain.push_str(&format!("agent a{} {{ model m prompt \"p\" }}\n", n - 1));
    cycle.push_str(&format!(
        "agent a{} {{ router model m prompt \"p\" handoff go -> a0 }}\n",
        n - 1
    ));
    let dir = std::env::temp_dir().join(format!("ladder-big-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, code) in [("chain.ladder", &chain, 0), ("cycle.ladder", &cycle, 1)] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = common::ladderc(&[
            "check",
            "--max-file-size",
            "100000000",
            "--format",
            "json",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(!stderr.contains("overflow"), "{name}: {stderr}");
        if code == 1 {
            assert!(String::from_utf8_lossy(&out.stdout).contains("L0010"));
        }
    }
}

fn project(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ladder-proj-{:016x}", fastrand::u64(..)));
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn ladderc_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(args)
        .current_dir(dir)
        .env("LADDER_SECRET_FOR_TEST", "sekrit-4f1e")
        .output()
        .unwrap()
}

const HEAD: &str = "ladder p { entry a }\nmodel m { provider: openai, name: \"x\" }\nagent a { model m prompt \"p\" }\n";

/// `use` reads only `.ladder` files, only inside the project, only regular files: it used to read
/// `/dev/zero` until memory ran out, block on a FIFO, and print `/proc/self/environ` (secrets
/// included) in a diagnostic.
#[test]
fn use_reads_only_ladders_inside_the_project() {
    let outside = project(&[("secret.ladder", "sekrit-4f1e is not a ladder\n")]);
    let secret = outside.join("secret.ladder");
    let dir = project(&[("ladder.toml", "")]);
    for (target, why) in [
        ("/dev/zero", "does not name a `.ladder` file"),
        ("/proc/self/environ", "does not name a `.ladder` file"),
        (secret.to_str().unwrap(), "outside the project root"),
    ] {
        std::fs::write(
            dir.join("root.ladder"),
            format!("ladder 1\nuse \"{target}\"\n{HEAD}"),
        )
        .unwrap();
        let out = ladderc_in(&dir, &["check", "root.ladder"]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{target}: {all}");
        assert!(all.contains(why), "{target}: {all}");
        assert!(!all.contains("sekrit-4f1e"), "{target} leaked: {all}");
    }
    #[cfg(unix)]
    {
        let fifo = dir.join("pipe.ladder");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(
            dir.join("root.ladder"),
            format!("ladder 1\nuse \"pipe.ladder\"\n{HEAD}"),
        )
        .unwrap();
        let out = ladderc_in(&dir, &["check", "root.ladder"]);
        let all = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(all.contains("not a regular file"), "{all}");
    }
    // The size cap, with its flag.
    std::fs::write(dir.join("root.ladder"), format!("ladder 1\n{HEAD}")).unwrap();
    let out = ladderc_in(&dir, &["check", "--max-file-size", "10", "root.ladder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the limit"));
    // A `--root` that does not exist is named as such, not as an unreadable ladder.
    let out = ladderc_in(&dir, &["check", "--root", "no-such-dir", "root.ladder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the project root `no-such-dir` cannot be used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `use "../../shared.ladder"` from a root file given as a relative path used to load
/// `./shared.ladder` (each `..` pair cancelled out).
#[test]
fn parent_paths_in_use_resolve_from_the_including_file() {
    let dir = project(&[
        ("ladder.toml", ""),
        ("shared.ladder", "ladder 1\nintent go \"go\"\n"),
        ("a/b/shared.ladder", "ladder 1\n"),
        (
            "a/b/root.ladder",
            "ladder 1\nuse \"../../shared.ladder\"\nladder p { entry a }\nmodel m { provider: openai, name: \"x\" }\nagent a { router model m prompt \"p\" handoff go -> b }\nagent b { model m accepts go prompt \"p\" }\n",
        ),
    ]);
    let out = ladderc_in(&dir.join("a/b"), &["check", "root.ladder"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A ladder with errors gets its diagnostics and no drawing (exit 1); a drawing keeps the entry
/// on top by not letting escalation edges rank.
#[test]
fn graph_of_a_ladder_with_errors_draws_nothing() {
    let out = common::ladderc(&["graph", "tests/fixtures/check/undefined_target.ladder"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("L0004"));
    let dot = common::ladderc(&["graph", "--format", "dot", "examples/triage.ladder"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    for line in dot.lines().filter(|l| l.contains("style=dashed")) {
        assert!(line.contains("constraint=false"), "{line}");
    }
}

#[test]
fn an_emitted_program_is_the_program_the_runtime_would_compile() {
    let dir = std::env::temp_dir().join(format!("ladderc-emit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for example in EXAMPLES {
        let out = dir.join("program.json");
        let run = ladderc(&["check", example, "--emit-program", out.to_str().unwrap()]);
        assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
        let emitted: ladder_check::program::Program =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let source = std::fs::read_to_string(root.join(example)).unwrap();
        let compiled = ladder_check::compile(&source).unwrap();
        assert_eq!(emitted, compiled, "{example}");
    }
    // One ladder at a time; none for a ladder with errors.
    let out = dir.join("none.json");
    let two = ladderc(&[
        "check",
        EXAMPLES[0],
        EXAMPLES[1],
        "--emit-program",
        out.to_str().unwrap(),
    ]);
    assert_eq!(two.status.code(), Some(2));
    std::fs::write(dir.join("bad.ladder"), "ladder 1\nagent a {}\n").unwrap();
    let bad = ladderc(&[
        "check",
        dir.join("bad.ladder").to_str().unwrap(),
        "--emit-program",
        out.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(!out.exists());
}
