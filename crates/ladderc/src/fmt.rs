//! `ladderc fmt`: rewrite files in the canonical layout, or `--check` that they are.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Files under `dir` whose name ends with `suffix`, sorted, skipping build output and hidden
/// directories.
pub(crate) fn discover(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                discover(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

pub(crate) fn run(mut files: Vec<PathBuf>, check: bool) -> ExitCode {
    if files.is_empty() {
        discover(Path::new("."), ".ladder", &mut files);
    }
    let mut unformatted = Vec::new();
    let mut broken = false;
    for path in &files {
        let text = match crate::policy_for(path).and_then(|p| p.read(path)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let parsed = match ladder_syntax::parse(ladder_syntax::FileId(0), &text) {
            Ok(f) => f,
            Err(e) => {
                // A file that does not parse is left alone; `check` explains why.
                eprintln!(
                    "{}: not formatted: syntax error at byte {} (run `ladderc check` for details)",
                    path.display(),
                    e.span.start
                );
                broken = true;
                continue;
            }
        };
        let formatted = ladder_syntax::format(&parsed, &text);
        if formatted == text {
            continue;
        }
        if check {
            println!("{}", path.display());
            unformatted.push(path);
        } else if let Err(e) = std::fs::write(path, &formatted) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::from(2);
        } else {
            println!("formatted {}", path.display());
        }
    }
    if !unformatted.is_empty() {
        eprintln!(
            "{} file(s) would be reformatted; run `ladderc fmt`",
            unformatted.len()
        );
    }
    ExitCode::from(if broken || !unformatted.is_empty() {
        1
    } else {
        0
    })
}
