//! Every input the fuzzer ever crashed on (fuzz/regressions/<target>/), replayed through the
//! same properties the fuzz targets assert (`ladder_check::fuzzing`).

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    // A target that never crashed has no folder in a fresh clone (git keeps no empty folders).
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            let text = String::from_utf8(bytes).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), text))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn parse_check_regressions() {
    for target in ["parse_check", "mutate_ladders", "fmt"] {
        for (name, text) in inputs(target) {
            eprintln!("{target}/{name}");
            ladder_check::fuzzing::check_and_render(&text, |report| {
                let _ =
                    miette::GraphicalReportHandler::new().render_report(&mut String::new(), report);
            });
        }
    }
}

#[test]
fn fmt_regressions() {
    let found = inputs("fmt");
    assert!(found.len() >= 2, "the issue 12 inputs are there");
    for target in ["fmt", "mutate_ladders"] {
        for (name, text) in inputs(target) {
            eprintln!("{target}/{name}");
            ladder_check::fuzzing::format_properties(&text);
        }
    }
}
