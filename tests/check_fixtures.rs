//! Every `tests/fixtures/check/*.ladder` is checked by the real binary; the rendered diagnostics
//! and the exit code are snapshotted. Adding a test is adding a file. A fixture whose first line
//! is `// ladderc-args: ARGS` is checked with those arguments too (a limit set low, say).

mod common;

use common::{ladderc, repo_root, transcript};

#[test]
fn fixtures_render_their_diagnostics() {
    insta::glob!("fixtures/check/*.ladder", |path| {
        let relative = path
            .strip_prefix(repo_root())
            .expect("fixture is inside the repo");
        let relative = relative.to_str().expect("utf-8 path");
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let extra: Vec<&str> = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// ladderc-args:"))
            .map(|a| a.split_whitespace().collect())
            .unwrap_or_default();
        let mut args = vec!["check", "--color", "never"];
        args.extend(extra);
        args.push(relative);
        let output = ladderc(&args);
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{relative}: unexpected exit {code:?}"
        );
        insta::assert_snapshot!(transcript(&output));
    });
}

#[test]
fn every_code_has_a_fixture_and_documentation() {
    let root = repo_root();
    let docs =
        std::fs::read_to_string(root.join("docs/diagnostics.md")).expect("docs/diagnostics.md");
    let mut fixtures = String::new();
    for entry in std::fs::read_dir(root.join("tests/snapshots")).expect("snapshots") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("check_fixtures__") {
            fixtures.push_str(&std::fs::read_to_string(path).expect("snapshot"));
        }
    }
    for code in ladder_check::Code::ALL.iter().map(|c| c.as_str()) {
        assert!(
            docs.contains(&format!("## {code}")),
            "{code} is not documented in docs/diagnostics.md"
        );
        assert!(fixtures.contains(code), "no fixture produces {code}");
    }
}
