//! Syntax errors as diagnostics (L0001), and the version line check (L0002).

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use ladder_syntax::ast::File;
use ladder_syntax::ParseError;

/// The only language version this checker knows.
pub const LANGUAGE_VERSION: u32 = 1;

pub(crate) fn syntax_diagnostic(error: ParseError) -> Diagnostic {
    let expected = match error.expected.as_slice() {
        [] => "something else".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    };
    let message = format!("expected {expected}, found {}", error.found);
    let triple = error.hint.as_deref().is_some_and(|h| h.contains("\"\"\""));
    let label = if triple {
        "the `\"\"\"` text runs on to here".to_string()
    } else if error.found == "a string that is never closed" {
        "add the closing `\"` on this line (use `\"\"\"` for multi-line text)".to_string()
    } else {
        format!("expected {expected} here")
    };
    let mut d = Diagnostic::new(Code::Syntax, error.span, message).label(label);
    if let Some(hint) = error.hint {
        d = d.help(hint);
    } else if let Some(keyword) = error.suggestion {
        d = d.help(format!("did you mean `{keyword}`?"));
    } else if error.found == "end of file" {
        d = d.help("the file ends early: is a `}` or `\"\"\"` missing?");
    } else {
        d = d.help("see docs/language.md for the syntax of each item");
    }
    d
}

pub(crate) fn check_version(file: &File, out: &mut Diagnostics) {
    match &file.version {
        None => {
            let at = ladder_syntax::Span::new(file.span.file, 0, 0);
            out.push(
                Diagnostic::new(Code::Version, at, "missing language version line")
                    .label("the file must start with `ladder 1`")
                    .help("add `ladder 1` as the first line, so that future versions of the language can change safely"),
            );
        }
        Some(v) if v.number != LANGUAGE_VERSION => out.push(
            Diagnostic::new(
                Code::Version,
                v.span,
                format!("unsupported language version `{}`", v.raw),
            )
            .label(format!(
                "this ladderc understands version {LANGUAGE_VERSION}"
            ))
            .help(format!(
                "write `ladder {LANGUAGE_VERSION}`, or upgrade ladderc"
            )),
        ),
        Some(_) => {}
    }
}
