//! The properties the fuzz targets (`fuzz/`) and their regression tests assert, in one place so
//! that a crash found by `cargo fuzz` replays under `cargo test`. Not part of the stable API.

use crate::{check_source, CheckOptions, MietteReport};

/// Parse, check and render: never a panic, and every diagnostic points inside its file at
/// character boundaries. `render` draws each report (with miette's graphical handler: the
/// `fancy` renderer is a dependency of the binary, not of this library).
pub fn check_and_render(text: &str, mut render: impl FnMut(&MietteReport)) {
    let checked = check_source("fuzz.ladder", text, &CheckOptions::default());
    for d in &checked.diagnostics {
        for span in std::iter::once(&d.primary.span).chain(d.secondary.iter().map(|l| &l.span)) {
            let file = checked.sources.get(span.file);
            assert!(
                span.start <= span.end && span.end <= file.text.len(),
                "span out of bounds: {d:?}"
            );
            assert!(
                file.text.is_char_boundary(span.start) && file.text.is_char_boundary(span.end),
                "span splits a character: {d:?}"
            );
        }
        render(&MietteReport::new(d, &checked.sources));
    }
    let differences = reference_differences(&checked);
    assert!(differences.is_empty(), "{differences:#?}");
}

/// One resolver: the names the checker looked up (`Checked::references`) that an independent
/// syntactic walk of the trees does not find, and the other way round; empty when they agree on every
/// place and namespace.
pub fn reference_differences(checked: &crate::Checked) -> Vec<String> {
    use std::collections::BTreeSet;
    let key = |r: &crate::symbols::Reference| {
        (
            r.span.file.0,
            r.span.start,
            r.span.end,
            r.namespace,
            r.name.clone(),
        )
    };
    let walked: BTreeSet<_> = checked
        .files
        .iter()
        .flat_map(crate::walk::references)
        .map(|r| key(&r))
        .collect();
    let resolved: BTreeSet<_> = checked.references.iter().map(key).collect();
    let missing = walked
        .difference(&resolved)
        .map(|k| format!("not looked up: {k:?}"));
    let extra = resolved
        .difference(&walked)
        .map(|k| format!("not in the editor's walk: {k:?}"));
    missing.chain(extra).collect()
}

/// The formatter `ladderc fmt` runs, on a file that parses: the output parses, formatting it
/// again changes nothing, and the checked meaning is the same (the same program, the same
/// diagnostic codes). The formatter's own safety net (it leaves a file alone when its output
/// would not parse or not be a fixed point) guarantees the first two; the third is the
/// formatter's alone.
pub fn format_properties(text: &str) {
    let Ok(parsed) = ladder_syntax::parse(ladder_syntax::FileId(0), text) else {
        return;
    };
    let out = ladder_syntax::format(&parsed, text);
    let again = match ladder_syntax::parse(ladder_syntax::FileId(0), &out) {
        Ok(again) => again,
        Err(e) => panic!("formatted output does not parse ({e:?}):\n{out}"),
    };
    let twice = ladder_syntax::format(&again, &out);
    assert_eq!(out, twice, "formatting is not idempotent");
    let before = check_source("fuzz.ladder", text, &CheckOptions::default());
    let after = check_source("fuzz.ladder", &out, &CheckOptions::default());
    let codes = |c: &crate::Checked| {
        let mut codes: Vec<_> = c.diagnostics.iter().map(|d| d.code.as_str()).collect();
        codes.sort_unstable();
        codes
    };
    assert_eq!(
        codes(&before),
        codes(&after),
        "formatting changed the diagnostics:\n{out}"
    );
    assert_eq!(
        before.program, after.program,
        "formatting changed the program:\n{out}"
    );
}
