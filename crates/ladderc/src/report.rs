//! Rendering check results: miette for people, a documented JSON document for tools.

use ladder_check::{Checked, Diagnostic, MietteReport, Severity, WorstCase};
use ladder_syntax::SourceMap;
use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::{json, Value};
use std::fmt::Write;

/// The JSON schema version of `ladderc check --format json`.
const JSON_SCHEMA_VERSION: u32 = 1;

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub(crate) fn money(dollars: f64) -> String {
    if dollars >= 1.0 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.4}")
    }
}

pub(crate) fn worst_case_line(w: &WorstCase) -> String {
    let mut s = format!(
        "worst case per turn: {}, {}, {} (longest chain: {})",
        plural(w.llm_calls as usize, "LLM call"),
        plural(w.tool_calls as usize, "tool call"),
        plural(w.handoffs as usize, "handoff"),
        w.longest_chain.join(" -> ")
    );
    match (w.cost_per_turn, &w.cost_unknown) {
        (Some(turn), _) => {
            let _ = write!(s, "; cost <= {} per turn", money(turn));
            if let Some(session) = w.cost_per_session {
                let _ = write!(s, ", <= {} per session", money(session));
            }
        }
        (None, Some(why)) => {
            let _ = write!(s, "; cost unbounded ({why})");
        }
        (None, None) => {}
    }
    if let Some(latency) = w.latency_seconds {
        if latency > 0.0 {
            let _ = write!(s, "; time to a reply <= {latency}s (SLAs)");
        }
    }
    s
}

pub(crate) fn human(results: &[Checked], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    let (mut errors, mut warnings, mut files) = (0, 0, 0);
    for checked in results {
        for d in &checked.diagnostics {
            let report = MietteReport::new(d, &checked.sources);
            let _ = handler.render_report(&mut out, &report);
            out.push('\n');
        }
        errors += checked.error_count();
        warnings += checked.warning_count();
        files += checked.sources.len();
        if let (0, Some(worst), Some(name)) = (
            checked.error_count(),
            &checked.worst_case,
            checked.ladder_name(),
        ) {
            let path = checked.sources.get(ladder_syntax::FileId(0)).path.display();
            let _ = writeln!(
                out,
                "{path}: ladder `{name}` ok; {}",
                worst_case_line(worst)
            );
        }
    }
    let status = if errors > 0 { "failed" } else { "ok" };
    let _ = writeln!(
        out,
        "check {status}: {} checked, {}, {}",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    out
}

fn position(sources: &SourceMap, span: &ladder_syntax::Span) -> Value {
    let file = sources.get(span.file);
    let (line, column) = file.line_col(span.start);
    let (end_line, end_column) = file.line_col(span.end);
    json!({
        "file": file.path.display().to_string(),
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "start": span.start,
        "end": span.end,
    })
}

fn diagnostic(d: &Diagnostic, sources: &SourceMap) -> Value {
    let mut primary = position(sources, &d.primary.span);
    primary["message"] = json!(d.primary.message);
    json!({
        "code": d.code.as_str(),
        "name": d.code.slug(),
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
        "primary": primary,
        "labels": d.secondary.iter().map(|l| {
            let mut v = position(sources, &l.span);
            v["message"] = json!(l.message);
            v
        }).collect::<Vec<_>>(),
        "help": d.help,
        "notes": d.notes,
        "fixes": d.fixes.iter().map(|f| json!({
            "title": f.title,
            "edits": f.edits.iter().map(|e| {
                let mut v = position(sources, &e.span);
                v["text"] = json!(e.text);
                v
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The program of a checked ladder, or `None` after printing its diagnostics on stderr (for the
/// commands that run ladders).
pub(crate) fn program_or_report(checked: &Checked) -> Option<ladder_check::program::Program> {
    if checked.program.is_none() {
        use std::io::IsTerminal;
        eprint!(
            "{}",
            human(
                std::slice::from_ref(checked),
                std::io::stderr().is_terminal()
            )
        );
    }
    checked.program.clone()
}

pub(crate) fn json(results: &[Checked]) -> String {
    let ladders: Vec<Value> = results
        .iter()
        .map(|c| {
            json!({
                "file": c.sources.get(ladder_syntax::FileId(0)).path.display().to_string(),
                "files": c.sources.iter().map(|(_, f)| f.path.display().to_string()).collect::<Vec<_>>(),
                "ok": c.error_count() == 0,
                "errors": c.error_count(),
                "warnings": c.warning_count(),
                "diagnostics": c.diagnostics.iter().map(|d| diagnostic(d, &c.sources)).collect::<Vec<_>>(),
                "worst_case": c.worst_case,
            })
        })
        .collect();
    let doc = json!({
        "schema": JSON_SCHEMA_VERSION,
        "ok": results.iter().all(|c| c.error_count() == 0),
        "errors": results.iter().map(|c| c.error_count()).sum::<usize>(),
        "warnings": results.iter().map(|c| c.warning_count()).sum::<usize>(),
        "ladders": ladders,
    });
    serde_json::to_string_pretty(&doc).expect("the report serialises")
}
