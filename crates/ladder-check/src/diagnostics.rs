//! Every diagnostic the checker can emit: stable codes, default severities, and the sink that
//! applies `#[allow(..)]` / `#![deny(..)]` / `--deny warnings`.
//!
//! Codes are documented one by one in `docs/diagnostics.md`. Adding a diagnostic means a code
//! here (if it is a new one), a variant of [`crate::findings::Finding`] that the pass reports,
//! its words in [`crate::words`], a section there, and a fixture under `tests/fixtures/check/`.

use crate::findings::Finding;
use ladder_syntax::ast::{Attr, AttrLevel};
use ladder_syntax::Span;
use serde::Serialize;

/// How bad a diagnostic is; `--deny` and `#[deny(..)]` turn warnings into errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; the ladder still runs.
    Warning,
    /// The ladder does not run until it is fixed.
    Error,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $slug:literal, $severity:ident, $summary:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $(#[doc = $summary] $variant,)* }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// `L0001`, ...
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The lint name, usable in `#[allow(..)]` instead of the code.
            pub fn slug(self) -> &'static str {
                match self { $(Code::$variant => $slug,)* }
            }

            /// The severity before lint options and attributes.
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One line saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    Syntax = "L0001", "syntax-error", Error, "the file does not follow the grammar";
    Version = "L0002", "version", Error, "missing or unsupported language version line";
    Duplicate = "L0003", "duplicate-definition", Error, "a name is defined twice";
    Undefined = "L0004", "undefined-name", Error, "a reference to a name that is not defined";
    WrongKind = "L0005", "wrong-kind", Error, "a name refers to the wrong kind of thing";
    Entry = "L0006", "entry", Error, "missing ladder header or entry rung";
    UnknownKey = "L0007", "unknown-key", Error, "an unknown key, statement or option";
    InvalidValue = "L0008", "invalid-value", Error, "a value of the wrong kind for its key";
    MissingProperty = "L0009", "missing-property", Error, "a required statement or key is missing";
    HandoffCycle = "L0010", "handoff-cycle", Error, "delegation and fallback edges form a cycle";
    Unreachable = "L0011", "unreachable-rung", Warning, "no path from the entry reaches this rung";
    EscalationDirection = "L0012", "escalation-direction", Error, "an escalation that does not go up";
    RouterWithoutExit = "L0013", "router-without-exit", Error, "a router agent that can neither reply nor hand off";
    DuplicateIntentEdge = "L0014", "duplicate-intent-edge", Error, "two handoffs from one agent carry the same intent";
    UndeclaredTemplate = "L0015", "undeclared-template-variable", Error, "a `{{variable}}` that is not declared";
    UnknownType = "L0016", "unknown-type", Error, "a type that does not exist";
    Unused = "L0017", "unused", Warning, "a tool, intent, model or type that nothing uses";
    AbsurdLimit = "L0018", "absurd-limit", Error, "a limit or budget that is zero, negative or absurd";
    UseCycle = "L0019", "use-cycle", Error, "files that `use` each other in a cycle";
    MissingFile = "L0020", "missing-file", Error, "a `use`d file that cannot be read";
    BudgetExceeded = "L0021", "budget-exceeded", Error, "the worst case per turn or session exceeds the budget";
    IntentNotAccepted = "L0022", "intent-not-accepted", Error, "a handoff carries an intent the receiver does not accept";
    ContextMismatch = "L0023", "context-mismatch", Error, "a prompt uses history its incoming handoffs do not carry";
    DeadEnd = "L0024", "dead-end-rung", Error, "a rung with no path to a reply or a human";
    BadBinding = "L0025", "bad-binding", Error, "a bound tool parameter whose source does not exist";
    BadLint = "L0026", "bad-lint", Warning, "an unknown lint in `allow`/`deny`, or an error that cannot be allowed";
    MockMismatch = "L0027", "mock-type-mismatch", Error, "a mock result that does not match the tool's return type";
    UnreachableStatement = "L0028", "unreachable-statement", Warning, "a script statement after `end` or `handoff`";
    UrlTemplate = "L0029", "url-template", Error, "an http URL placeholder that is not a parameter";
    SlaOverBudget = "L0030", "sla-over-budget", Warning, "a rung's SLA is longer than the ladder's latency budget";
    UnknownSignal = "L0031", "unknown-signal", Error, "an escalation condition on an unknown signal";
    RepeatedStatement = "L0032", "repeated-statement", Error, "a statement or key given twice where one is allowed";
    DuplicateField = "L0033", "duplicate-field", Error, "a field, parameter or variant declared twice";
    ImpossibleExpectation = "L0034", "impossible-expectation", Error, "a test expects something the ladder cannot do";
    TooManyItems = "L0035", "too-many-items", Error, "a ladder declares more items than `--max-items` allows";
    UnprovedBudget = "L0036", "unproved-budget", Warning, "a budget that nothing bounds, so `check` cannot prove it";
    UnofferedCall = "L0037", "unoffered-call", Warning, "a scripted model answer calls a function that agent is never offered";
    ReturnWithoutDelegator = "L0039", "return-without-delegator", Error, "`return` on an agent that no agent hands off to";
    UncacheablePrompt = "L0038", "uncacheable-prompt", Warning, "a prompt puts per-turn data before static text, so its cacheable prefix is short";
}

impl Code {
    /// Looks a code up by `L0017` or by its lint name `unused`.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(name) || c.slug() == name)
    }
}

/// A labelled span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    /// What the label points at.
    pub span: Span,
    /// The text shown under it.
    pub message: String,
}

impl Label {
    /// A label on `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Label {
            span,
            message: message.into(),
        }
    }
}

/// A change to the source that fixes a diagnostic: the editor's quick fix, `fixes` in the JSON
/// report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// What the fix does, e.g. "replace with `billing`".
    pub title: String,
    /// Replacements, applied together; an empty span inserts.
    pub edits: Vec<Edit>,
}

/// Replace the text under `span` with `text`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edit {
    /// What to replace (empty: where to insert).
    pub span: Span,
    /// The new text.
    pub text: String,
}

/// One problem found in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The stable code (`L0004`).
    pub code: Code,
    /// Error or warning, after lint options and attributes.
    pub severity: Severity,
    /// One line saying what is wrong.
    pub message: String,
    /// Where: the span the diagnostic is about, with its label.
    pub primary: Label,
    /// Other places that explain it (the first definition of a duplicate, ...).
    pub secondary: Vec<Label>,
    /// How to fix it, in words.
    pub help: Option<String>,
    /// More context (`note:` lines).
    pub notes: Vec<String>,
    /// Machine-applicable fixes (a did-you-mean, a missing `accepts`, a missing variable).
    pub fixes: Vec<Fix>,
}

impl Diagnostic {
    /// A diagnostic of `code` at `span`, with the code's default severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            primary: Label::new(span, String::new()),
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
            fixes: Vec::new(),
        }
    }

    /// "did you mean `suggestion`?", with the fix that replaces the primary span (the misspelt
    /// name) by it.
    pub fn suggest(self, suggestion: &str) -> Self {
        let span = self.primary.span;
        self.help(format!("did you mean `{suggestion}`?")).fix(
            format!("replace with `{suggestion}`"),
            span,
            suggestion,
        )
    }

    /// A fix that replaces (or, with an empty span, inserts at) one span.
    pub fn fix(mut self, title: impl Into<String>, span: Span, text: impl Into<String>) -> Self {
        self.fixes.push(Fix {
            title: title.into(),
            edits: vec![Edit {
                span,
                text: text.into(),
            }],
        });
        self
    }

    /// Text under the primary span.
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    /// Another place that explains the diagnostic.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label::new(span, message));
        self
    }

    /// How to fix it, in words.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A `note:` line.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// How the command line wants lints treated, before in-file attributes.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// `--deny warnings`
    pub deny_warnings: bool,
    /// `--deny L0017` / `--deny unused`
    pub deny: Vec<Code>,
    /// `--allow L0011`
    pub allow: Vec<Code>,
}

/// The sink every pass writes to. It never stops a pass: all problems are collected.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Adds what a pass found, in the words of [`crate::words`].
    pub(crate) fn report(&mut self, finding: crate::findings::Finding) {
        self.items.push(crate::words::diagnostic(finding));
    }

    /// Whether an error was added.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Every diagnostic added, in order.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

/// A lint attribute and the region of source it governs.
#[derive(Debug, Clone)]
pub(crate) struct LintScope {
    pub span: Span,
    pub level: AttrLevel,
    pub code: Code,
}

/// Validates lint attributes, reporting unknown names; returns the scopes they open.
pub(crate) fn lint_scopes(attrs: &[Attr], region: Span, out: &mut Diagnostics) -> Vec<LintScope> {
    let mut scopes = Vec::new();
    for attr in attrs {
        for lint in &attr.lints {
            let codes: Vec<Code> = if lint.name == "warnings" {
                Code::ALL
                    .iter()
                    .copied()
                    .filter(|c| c.default_severity() == Severity::Warning)
                    .collect()
            } else if let Some(code) = Code::parse(&lint.name) {
                vec![code]
            } else {
                let names = Code::ALL
                    .iter()
                    .flat_map(|c| [c.as_str(), c.slug()])
                    .chain(["warnings"]);
                out.report(Finding::UnknownLint {
                    at: lint.span,
                    name: &lint.name,
                    suggestion: crate::suggest::did_you_mean(&lint.name, names),
                });
                continue;
            };
            for code in codes {
                if attr.level == AttrLevel::Allow && code.default_severity() == Severity::Error {
                    out.report(Finding::AllowedError {
                        at: lint.span,
                        code,
                    });
                    continue;
                }
                scopes.push(LintScope {
                    span: region,
                    level: attr.level,
                    code,
                });
            }
        }
    }
    scopes
}

/// Applies command-line options, then in-file scopes (innermost wins), and sorts by position.
pub(crate) fn finish(
    mut items: Vec<Diagnostic>,
    scopes: &[LintScope],
    options: &LintOptions,
) -> Vec<Diagnostic> {
    items.retain_mut(|d| {
        if d.code.default_severity() == Severity::Error {
            return true;
        }
        let mut level = if options.allow.contains(&d.code) {
            AttrLevel::Allow
        } else if options.deny_warnings || options.deny.contains(&d.code) {
            AttrLevel::Deny
        } else {
            AttrLevel::Warn
        };
        let covering = scopes
            .iter()
            .filter(|s| {
                s.code == d.code
                    && s.span.file == d.primary.span.file
                    && s.span.start <= d.primary.span.start
                    && d.primary.span.end <= s.span.end
            })
            .min_by_key(|s| s.span.len());
        if let Some(scope) = covering {
            level = scope.level;
        }
        // `--deny warnings` on the command line is the CI switch: it overrides in-file `warn`.
        if options.deny_warnings && level == AttrLevel::Warn {
            level = AttrLevel::Deny;
        }
        match level {
            AttrLevel::Allow => false,
            AttrLevel::Warn => true,
            AttrLevel::Deny => {
                d.severity = Severity::Error;
                true
            }
        }
    });
    items.sort_by(|a, b| {
        (a.primary.span.file, a.primary.span.start, a.code).cmp(&(
            b.primary.span.file,
            b.primary.span.start,
            b.code,
        ))
    });
    items.dedup();
    items
}
