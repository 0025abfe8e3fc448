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
                Some(s) => d.help(format!("did you mean `{s}`?")),
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

pub(crate) fn check(index: &Index, session_vars: &BTreeSet<&str>, out: &mut Diagnostics) {
    let incoming = incoming(index);
    for agent in index.agents.values() {
        for h in &agent.handoffs {
            policy(h.context.as_ref(), out);
        }
    }
    let entry = index
        .ladder
        .and_then(|l| l.entries.first())
        .map(|e| e.name.as_str());
    for (name, agent) in &index.agents {
        let Some(prompt) = agent.prompt else { continue };
        let edges = incoming.get(name).map(Vec::as_slice).unwrap_or(&[]);
        check_prompt(
            index,
            prompt,
            Some((name, edges, entry == Some(name))),
            session_vars,
            out,
        );
    }
    for script in index.scripts.values() {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Say(p) = &stmt.kind {
                check_prompt(index, p, None, session_vars, out);
            }
        }
    }
}

type Receiver<'e, 'a> = (&'e str, &'e [(&'a str, &'a Handoff)], bool);

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
                Some((name, edges, is_entry)) => history(r, head, name, edges, is_entry, out),
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
                if let (Some(field), Some((name, edges, _))) = (r.path.get(1), receiver) {
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
                out.push(d);
            }
        }
    }
}

fn history(
    r: &TemplateRef,
    var: &str,
    name: &str,
    edges: &[(&str, &Handoff)],
    is_entry: bool,
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
    if needs_summary && (edges.is_empty() || is_entry) {
        out.push(
            Diagnostic::new(Code::ContextMismatch, r.span, format!("`{name}` uses `{{{{summary}}}}`, but {}", if is_entry { "it starts sessions, where no handoff summary exists" } else { "no handoff reaches it" }))
                .label("there is no summary to fill in here")
                .help("use `{{transcript}}`, or only reference `{{summary}}` in agents that receive `context summary` handoffs"),
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
