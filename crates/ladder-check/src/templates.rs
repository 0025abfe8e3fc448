//! `{{variable}}` references in prompts and `say` (L0015), and the history an agent's prompt
//! needs against what its incoming handoffs carry (L0023). Also validates context policies.

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::index::Index;
use crate::program::ContextPolicy;
use crate::suggest::did_you_mean;
use ladder_syntax::ast::{ContextClause, Handoff, Prompt, ScriptStmtKind, TemplateRef};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;

/// Template variables every prompt may use.
pub(crate) const BUILTIN_VARS: &[(&str, &str)] = &[
    ("ladder", "the ladder's name"),
    ("agent", "the current agent's name"),
    ("turn", "the turn number, from 1"),
    (
        "transcript",
        "the conversation so far, as carried by the incoming handoff",
    ),
    (
        "summary",
        "the handoff summary written by the sending agent (needs `context summary`)",
    ),
    (
        "intent",
        "the intent of the incoming handoff; `intent.FIELD` for its payload",
    ),
];

pub(crate) const POLICIES: &[&str] = &["full", "no_tools", "last", "summary", "none"];

/// The context policy of a handoff edge (default: full transcript).
pub(crate) fn policy(clause: Option<&ContextClause>, out: &mut Diagnostics) -> ContextPolicy {
    let Some(clause) = clause else {
        return ContextPolicy::Full;
    };
    let name = clause.policy.name.as_str();
    match (name, clause.argument) {
        ("full", None) => ContextPolicy::Full,
        ("no_tools", None) => ContextPolicy::NoTools,
        ("summary", None) => ContextPolicy::Summary,
        ("none", None) => ContextPolicy::None,
        ("last", Some((n, span))) => {
            if n < 1.0 || n.fract() != 0.0 || n > 1000.0 {
                out.push(
                    Diagnostic::new(Code::AbsurdLimit, span, format!("`last({n})` must keep between 1 and 1000 turns"))
                        .label("not a usable number of turns")
                        .help("use `context none` to pass no history, or a whole number such as `last(5)`"),
                );
                return ContextPolicy::Full;
            }
            ContextPolicy::LastTurns { turns: n as u32 }
        }
        ("last", None) => {
            out.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    clause.policy.span,
                    "`last` needs a number of turns",
                )
                .label("how many turns?")
                .help("write `context last(5)`"),
            );
            ContextPolicy::Full
        }
        (known, Some((_, span))) if POLICIES.contains(&known) => {
            out.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    span,
                    format!("`{known}` takes no argument"),
                )
                .label("remove this")
                .help("only `last(N)` takes a number"),
            );
            ContextPolicy::Full
        }
        (other, _) => {
            let mut d = Diagnostic::new(
                Code::UnknownKey,
                clause.policy.span,
                format!("unknown context policy `{other}`"),
            )
            .label("not a context policy");
            d = match did_you_mean(other, POLICIES.iter().copied()) {
                Some(s) => d.suggest(s),
                None => d.help("policies are `full`, `no_tools`, `last(N)`, `summary` and `none`"),
            };
            out.push(d);
            ContextPolicy::Full
        }
    }
}

/// Incoming handoff edges by receiving rung: (sender, edge).
pub(crate) fn incoming<'a>(index: &Index<'a>) -> HashMap<&'a str, Vec<(&'a str, &'a Handoff)>> {
    let mut map: HashMap<&str, Vec<(&str, &Handoff)>> = HashMap::default();
    for (name, agent) in &index.agents {
        for h in &agent.handoffs {
            map.entry(h.target.name.as_str())
                .or_default()
                .push((name, h));
        }
    }
    map
}

/// How control can arrive at a rung other than by an agent's handoff: none of these carries an
/// intent, and only an escalation carries a summary (its reason). The runtime gives each the
/// full transcript.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arrival {
    /// The rung starts sessions.
    Entry,
    /// `fallback -> X` or `sla .. else -> X` of the sender.
    Fallback,
    /// A script's `handoff X`.
    Script,
    Escalation,
}

impl Arrival {
    fn words(self, from: &str) -> String {
        match self {
            Arrival::Entry => "at the start of a session".into(),
            Arrival::Fallback => format!("by the fallback of `{from}`"),
            Arrival::Script => format!("by the handoff of script `{from}`"),
            Arrival::Escalation => format!("by the escalation of `{from}`"),
        }
    }
}

/// Every arrival other than an agent's handoff, by receiving rung: (sender, how, where).
fn other_arrivals<'a>(
    index: &Index<'a>,
) -> HashMap<&'a str, Vec<(&'a str, Arrival, ladder_syntax::Span)>> {
    let mut map: HashMap<&str, Vec<(&str, Arrival, ladder_syntax::Span)>> = HashMap::default();
    if let Some(entry) = index.ladder.and_then(|l| l.entries.first()) {
        map.entry(entry.name.as_str())
            .or_default()
            .push(("", Arrival::Entry, entry.span));
    }
    for (name, agent) in &index.agents {
        let fallbacks = agent
            .fallback
            .into_iter()
            .chain(agent.sla.and_then(|(_, _, otherwise)| otherwise));
        for target in fallbacks {
            map.entry(target.name.as_str()).or_default().push((
                name,
                Arrival::Fallback,
                target.span,
            ));
        }
        for e in &agent.escalations {
            map.entry(e.target.name.as_str()).or_default().push((
                name,
                Arrival::Escalation,
                e.target.span,
            ));
        }
    }
    for (name, script) in &index.scripts {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Handoff(target) = &stmt.kind {
                map.entry(target.name.as_str()).or_default().push((
                    name,
                    Arrival::Script,
                    target.span,
                ));
            }
        }
    }
    map
}

/// L0023 / L0015 for `{{summary}}` and `{{intent..}}` in the prompt of a rung that control can
/// reach without a handoff that carries them (one diagnostic per reference, naming the first such
/// arrival and how many there are).
fn check_arrivals(
    prompt: &Prompt,
    name: &str,
    arrivals: &[(&str, Arrival, ladder_syntax::Span)],
    out: &mut Diagnostics,
) {
    for r in &prompt.templates {
        let head = r.path.first().map(String::as_str).unwrap_or("");
        let (lacking, code, what): (Vec<_>, Code, &str) = match head {
            "summary" if r.path.len() == 1 => (
                arrivals
                    .iter()
                    .filter(|(_, how, _)| *how != Arrival::Escalation)
                    .collect(),
                Code::ContextMismatch,
                "no summary",
            ),
            "intent" => (
                arrivals.iter().collect(),
                Code::UndeclaredTemplate,
                "no intent",
            ),
            _ => continue,
        };
        let Some((from, how, at)) = lacking.first() else {
            continue;
        };
        let more = match lacking.len() {
            1 => String::new(),
            n => format!(
                " (and {} more arrival{})",
                n - 1,
                if n == 2 { "" } else { "s" }
            ),
        };
        let shown = r.path.join(".");
        let mut d = Diagnostic::new(
            code,
            r.span,
            format!("the prompt of `{name}` uses `{{{{{shown}}}}}`, but control arrives {}{more} with {what}", how.words(from)),
        )
        .label("empty when control arrives that way");
        if *how != Arrival::Entry {
            d = d.secondary(*at, "control arrives here without it");
        }
        out.push(d.help(if head == "summary" {
            "use `{{transcript}}`, which every arrival carries, or keep `{{summary}}` to rungs reached only by `context summary` handoffs"
        } else {
            "reach this rung only by handoffs with the intent, or move the intent's details into the transcript"
        }));
    }
}

pub(crate) fn check(index: &Index, session_vars: &BTreeSet<&str>, out: &mut Diagnostics) {
    let incoming = incoming(index);
    let arrivals = other_arrivals(index);
    for agent in index.agents.values() {
        for h in &agent.handoffs {
            policy(h.context.as_ref(), out);
        }
    }
    for (name, agent) in &index.agents {
        let Some(prompt) = agent.prompt else { continue };
        let edges = incoming.get(name).map(Vec::as_slice).unwrap_or(&[]);
        check_prompt(index, prompt, Some((name, edges)), session_vars, out);
        cache_order(prompt, out);
        if let Some(other) = arrivals.get(name) {
            check_arrivals(prompt, name, other, out);
        }
    }
    for script in index.scripts.values() {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Say(p) = &stmt.kind {
                check_prompt(index, p, None, session_vars, out);
            }
        }
    }
}

/// Template values that change every turn. Providers cache the stable prefix of a request (the
/// tools, then the system prompt up to its first changing value), so one of these before static
/// text makes the rest of the prompt uncacheable (L0038).
const PER_TURN: &[&str] = &["transcript", "summary", "turn"];

/// L0038: the first per-turn value of an agent's prompt comes before static text.
fn cache_order(prompt: &Prompt, out: &mut Diagnostics) {
    let Some(first) = prompt
        .templates
        .iter()
        .filter(|r| r.path.len() == 1 && PER_TURN.contains(&r.path[0].as_str()))
        .min_by_key(|r| r.span.start)
    else {
        return;
    };
    // Static text after it: the prompt's text after that reference, without other references.
    let needle = &first.path[0];
    let Some(at) = template_positions(&prompt.text)
        .into_iter()
        .find(|(_, _, name)| name == needle)
        .map(|(_, end, _)| end)
    else {
        return;
    };
    let rest = &prompt.text[at..];
    let static_after: String =
        template_positions(rest)
            .into_iter()
            .rev()
            .fold(rest.to_string(), |mut text, (s, e, _)| {
                text.replace_range(s..e, "");
                text
            });
    // Punctuation that closes the sentence of the value is not instructions.
    if static_after
        .chars()
        .all(|c| c.is_whitespace() || c.is_ascii_punctuation())
    {
        return;
    }
    out.push(
        Diagnostic::new(
            Code::UncacheablePrompt,
            first.span,
            format!("`{{{{{needle}}}}}` comes before static text in this prompt"),
        )
        .label("it differs between requests, so the prompt's cacheable prefix ends here")
        .help(format!(
            "move the instructions after `{{{{{needle}}}}}` above it; providers cache the stable prefix of a request (tools, then the system prompt up to its first value that changes)"
        )),
    );
}

/// `(start, end, name)` of each one-word `{{name}}` in `text`.
fn template_positions(text: &str) -> Vec<(usize, usize, String)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        let Some(close) = text[open + 2..].find("}}").map(|i| open + 2 + i) else {
            break;
        };
        found.push((open, close + 2, text[open + 2..close].trim().to_string()));
        from = close + 2;
    }
    found
}

type Receiver<'e, 'a> = (&'e str, &'e [(&'a str, &'a Handoff)]);

fn check_prompt(
    index: &Index,
    prompt: &Prompt,
    receiver: Option<Receiver<'_, '_>>,
    session_vars: &BTreeSet<&str>,
    out: &mut Diagnostics,
) {
    for r in &prompt.templates {
        let head = r.path.first().map(String::as_str).unwrap_or("");
        match head {
            "ladder" | "agent" | "turn" if r.path.len() == 1 => {}
            "transcript" | "summary" if r.path.len() == 1 => match receiver {
                Some((name, edges)) => history(r, head, name, edges, out),
                None => out.push(
                    Diagnostic::new(
                        Code::ContextMismatch,
                        r.span,
                        format!("`{{{{{head}}}}}` is only available in agent prompts"),
                    )
                    .label("scripts receive no handoff history")
                    .help("scripts may use session variables and `ladder`, `agent`, `turn`"),
                ),
            },
            "intent" => {
                if let (Some(field), Some((name, edges))) = (r.path.get(1), receiver) {
                    intent_field(index, r, field, name, edges, out);
                }
            }
            var if session_vars.contains(var) => {}
            other => {
                let candidates = BUILTIN_VARS
                    .iter()
                    .map(|(v, _)| *v)
                    .chain(session_vars.iter().copied());
                let shown = r.path.join(".");
                let mut d = Diagnostic::new(
                    Code::UndeclaredTemplate,
                    r.span,
                    format!("undeclared template variable `{shown}`"),
                )
                .label("not a session variable or a builtin");
                d = match did_you_mean(other, candidates) {
                    Some(s) => d.help(format!("did you mean `{{{{{s}}}}}`?")),
                    None => d.help(format!(
                        "declare it in the ladder header: `vars {{ {other}: string }}`"
                    )),
                };
                if let Some((at, text)) = declaration_site(index, other) {
                    d = d.fix(
                        format!("declare `{other}: string` in the ladder's `vars`"),
                        at,
                        text,
                    );
                }
                out.push(d);
            }
        }
    }
}

/// Where and what to insert to declare a session variable `name: string`: after the last
/// variable of the header's `vars`, or a new `vars` block after its `entry`.
fn declaration_site(index: &Index, name: &str) -> Option<(ladder_syntax::Span, String)> {
    use ladder_syntax::Span;
    let ladder = index.ladder?;
    if let Some(last) = ladder.vars.last() {
        let end = last
            .default
            .as_ref()
            .map_or(last.ty.span.end, |d| d.span.end);
        return Some((
            Span::new(last.name.span.file, end, end),
            format!(", {name}: string"),
        ));
    }
    let entry = ladder.entries.last()?;
    Some((
        Span::new(entry.span.file, entry.span.end, entry.span.end),
        format!("\n  vars {{ {name}: string }}"),
    ))
}

fn history(
    r: &TemplateRef,
    var: &str,
    name: &str,
    edges: &[(&str, &Handoff)],
    out: &mut Diagnostics,
) {
    let needs_summary = var == "summary";
    for (from, h) in edges {
        let mut sink = Diagnostics::default();
        let policy = policy(h.context.as_ref(), &mut sink);
        let carries = match policy {
            ContextPolicy::Full | ContextPolicy::NoTools => !needs_summary,
            ContextPolicy::Summary => needs_summary,
            ContextPolicy::LastTurns { .. } | ContextPolicy::None => false,
        };
        if carries {
            continue;
        }
        let what = match policy {
            ContextPolicy::Full => "the full transcript but no summary",
            ContextPolicy::NoTools => "the transcript without tool calls, but no summary",
            ContextPolicy::Summary => "only a summary",
            ContextPolicy::LastTurns { .. } => "only the last turns",
            ContextPolicy::None => "no history",
        };
        let at = h.context.as_ref().map(|c| c.span).unwrap_or(h.target.span);
        out.push(
            Diagnostic::new(Code::ContextMismatch, r.span, format!("the prompt of `{name}` uses `{{{{{var}}}}}`, but the handoff from `{from}` carries {what}"))
                .label(format!("needs the {}", if needs_summary { "handoff summary" } else { "full transcript" }))
                .secondary(at, format!("`{from}` hands off with this context"))
                .help(if needs_summary {
                    "write `context summary` on the handoff, or use `{{transcript}}` in the prompt"
                } else {
                    "write `context full` (or `no_tools`) on the handoff, or use `{{summary}}` with `context summary`"
                }),
        );
    }
}

fn intent_field(
    index: &Index,
    r: &TemplateRef,
    field: &str,
    name: &str,
    edges: &[(&str, &Handoff)],
    out: &mut Diagnostics,
) {
    for (from, h) in edges {
        let Some(intent) = index.intents.get(h.intent.name.as_str()) else {
            continue;
        };
        if intent.fields.iter().any(|f| f.name.name == field) {
            continue;
        }
        let mut d = Diagnostic::new(
            Code::UndeclaredTemplate,
            r.span,
            format!("intent `{}` has no field `{field}`", h.intent.name),
        )
        .label(format!(
            "`{name}` can receive `{}` from `{from}`, whose payload lacks `{field}`",
            h.intent.name
        ))
        .secondary(intent.name.span, "intent declared here");
        let fields = intent.fields.iter().map(|f| f.name.name.as_str());
        d = match did_you_mean(field, fields) {
            Some(s) => d.help(format!("did you mean `{{{{intent.{s}}}}}`?")),
            None => d.help(format!(
                "add `{field}: string` to the payload of intent `{}`",
                h.intent.name
            )),
        };
        out.push(d);
    }
}
