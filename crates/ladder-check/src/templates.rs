//! `{{variable}}` references in prompts and `say` (L0015), and the history an agent's prompt
//! needs against what its incoming handoffs carry (L0023). Also validates context policies.

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
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
                out.report(Finding::LastTurns { at: span, turns: n });
                return ContextPolicy::Full;
            }
            ContextPolicy::LastTurns { turns: n as u32 }
        }
        ("last", None) => {
            out.report(Finding::LastWithoutTurns {
                at: clause.policy.span,
            });
            ContextPolicy::Full
        }
        (known, Some((_, span))) if POLICIES.contains(&known) => {
            out.report(Finding::PolicyArgument {
                at: span,
                policy: known,
            });
            ContextPolicy::Full
        }
        (other, _) => {
            out.report(Finding::UnknownPolicy {
                policy: &clause.policy,
                suggestion: did_you_mean(other, POLICIES.iter().copied()),
            });
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
pub(crate) enum Arrival {
    /// The rung starts sessions.
    Entry,
    /// `fallback -> X` or `sla .. else -> X` of the sender.
    Fallback,
    /// A script's `handoff X`.
    Script,
    Escalation,
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
        let lacking: Vec<_> = match head {
            "summary" if r.path.len() == 1 => arrivals
                .iter()
                .filter(|(_, how, _)| *how != Arrival::Escalation)
                .collect(),
            "intent" => arrivals.iter().collect(),
            _ => continue,
        };
        let Some((from, how, at)) = lacking.first() else {
            continue;
        };
        out.report(Finding::ArrivalWithout {
            at: r.span,
            prompt_of: name,
            reference: r,
            from,
            how: *how,
            arrived_at: *at,
            more: lacking.len() - 1,
        });
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
    out.report(Finding::UncacheablePrompt {
        at: first.span,
        value: needle,
    });
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
                None => out.report(Finding::HistoryInScript { reference: r }),
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
                out.report(Finding::UndeclaredTemplate {
                    reference: r,
                    name: other,
                    suggestion: did_you_mean(other, candidates),
                    declaration: declaration_site(index, other),
                });
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
        out.report(Finding::HistoryMismatch {
            reference: r,
            prompt_of: name,
            needs_summary,
            from,
            policy,
            context_at: h.context.as_ref().map(|c| c.span).unwrap_or(h.target.span),
        });
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
        out.report(Finding::NoIntentField {
            reference: r,
            field,
            intent: &h.intent.name,
            declared: intent.name.span,
            receiver: name,
            from,
            suggestion: did_you_mean(field, intent.fields.iter().map(|f| f.name.name.as_str())),
        });
    }
}
