//! Our diagnostics as `miette` reports, for rendering at the edge (`ladderc`).

use crate::diagnostics::{Diagnostic, Severity};
use ladder_syntax::SourceMap;
use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::fmt;

/// A diagnostic bundled with the file its primary span points into. Labels in other files
/// (a duplicate defined in a `use`d file) become notes with a `path:line:column`.
#[derive(Debug)]
pub struct MietteReport {
    message: String,
    code: String,
    severity: Severity,
    help: Option<String>,
    labels: Vec<LabeledSpan>,
    source: Source,
}

impl MietteReport {
    /// The report of `d`, with the text of the file its primary span is in.
    pub fn new(d: &Diagnostic, sources: &SourceMap) -> Self {
        let file = sources.get(d.primary.span.file);
        let len = file.text.len();
        let span = |s: &ladder_syntax::Span| -> SourceSpan {
            let start = s.start.min(len);
            (start, s.end.min(len).saturating_sub(start)).into()
        };
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            (!d.primary.message.is_empty()).then(|| d.primary.message.clone()),
            span(&d.primary.span),
        )];
        let mut notes = Vec::new();
        for l in &d.secondary {
            if l.span.file == d.primary.span.file {
                labels.push(LabeledSpan::new_with_span(
                    Some(l.message.clone()),
                    span(&l.span),
                ));
            } else {
                let other = sources.get(l.span.file);
                let (line, col) = other.line_col(l.span.start);
                notes.push(format!(
                    "{}: {}:{line}:{col}",
                    l.message,
                    other.path.display()
                ));
            }
        }
        notes.extend(d.notes.iter().cloned());
        let help = match (&d.help, notes.is_empty()) {
            (h, true) => h.clone(),
            (Some(h), false) => Some(format!("{h}\nnote: {}", notes.join("\nnote: "))),
            (None, false) => Some(format!("note: {}", notes.join("\nnote: "))),
        };
        MietteReport {
            message: d.message.clone(),
            code: d.code.as_str().to_string(),
            severity: d.severity,
            help,
            labels,
            source: Source {
                name: file.path.display().to_string(),
                text: file.text.clone(),
            },
        }
    }
}

impl fmt::Display for MietteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteReport {}

impl miette::Diagnostic for MietteReport {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// A named file whose reported columns count characters, as an editor does. `miette` counts
/// bytes, so `é` before an error would push the header's `line:column` to the right.
#[derive(Debug)]
struct Source {
    name: String,
    text: String,
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        // `miette` reports a non-zero column only when it reads without context: the byte
        // distance from the start of the span's line.
        let bytes = inner.column();
        let column = span
            .offset()
            .checked_sub(bytes)
            .and_then(|line_start| self.text.get(line_start..span.offset()))
            .map_or(bytes, |before| before.chars().count());
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column,
            inner.line_count(),
        )))
    }
}
