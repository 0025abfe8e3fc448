//! The words of every diagnostic: the one place that turns a [`Finding`] into a
//! [`Diagnostic`] with its code, message, labels, help and fixes.
//!
//! Passes report what they found ([`crate::findings`]); how it is said lives here, so each
//! code's wording exists once and reads as one voice. The fixture snapshots under
//! `tests/fixtures/check/` pin every sentence.

use crate::diagnostics::{Code, Diagnostic};
use crate::findings::{CostUnknown, Finding, Unused};
use crate::graph::EdgeKind;
use crate::index::Namespace;
use crate::program::ContextPolicy;
use crate::props::seconds_text;
use crate::templates::Arrival;
use crate::vocabulary::Expect;
use ladder_syntax::ast::ValueKind;
use ladder_syntax::Span;

/// The message of the L0006 for a ladder with no header (dropped as a follow-on error when a
/// `use`d file could not be read).
pub(crate) const NO_HEADER: &str = "no ladder header";

/// `between 0 and 1`, `0 or more`: the range of a signal.
fn range(min: f64, max: Option<f64>) -> String {
    match max {
        Some(max) => format!("between {min} and {max}"),
        None => format!("{min} or more"),
    }
}

/// `a tool`, `an intent`.
pub(crate) fn with_article(noun: &str) -> String {
    match noun.chars().next() {
        // `MCP` is read "em-see-pee".
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'M') => format!("an {noun}"),
        _ => format!("a {noun}"),
    }
}

/// What a name in a namespace is called.
fn noun(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Rung => "rung (agent, human or script)",
        Namespace::Agent => "agent",
        Namespace::Tool => "tool",
        Namespace::Intent => "intent",
        Namespace::Model => "model",
        Namespace::Mcp => "MCP server",
    }
}

/// `` `a`, `b`, `c` ``
fn ticked<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The help of a did-you-mean with its fix, or `otherwise`.
fn suggest_or(d: Diagnostic, suggestion: Option<&str>, otherwise: impl Into<String>) -> Diagnostic {
    match suggestion {
        Some(s) => d.suggest(s),
        None => d.help(otherwise),
    }
}

/// What a key takes, e.g. "a duration like `1.5s` or `300ms`".
fn describe(expect: Expect) -> String {
    {
        match expect {
            Expect::Count { .. } => "a whole number like `4`".into(),
            Expect::Duration { .. } => "a duration like `1.5s` or `300ms`".into(),
            Expect::Money { .. } => "an amount like `$0.04`".into(),
            Expect::Price { .. } => "a price like `$2.50/Mtok`".into(),
            Expect::Number { .. } => "a number".into(),
            Expect::String => "a string".into(),
            Expect::Choice(names) => format!(
                "one of {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Expect::Env => "`env(NAME)`".into(),
            Expect::Rung => "the name of a rung, like `triage`".into(),
            Expect::Rungs => "a list of rungs, like `[triage, billing]`".into(),
            Expect::Strings => "a list of strings, like `[\"npx\", \"-y\", \"server\"]`".into(),
            Expect::Envs => "a list of `env(NAME)`, like `[env(API_KEY)]`".into(),
        }
    }
}

/// What a value is, e.g. "a string".
fn found(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Price(_) => "a price",
        ValueKind::Money(_) => "a money amount",
        ValueKind::Duration(_) => "a duration",
        ValueKind::Number(_) => "a number",
        ValueKind::String(_) => "a string",
        ValueKind::Bool(_) => "a boolean",
        ValueKind::Env(_) => "an environment reference",
        ValueKind::Ident(_) => "a name",
        ValueKind::List(_) => "a list",
    }
}

/// `` `a` -> `b` -> `c` ``: a path of rungs.
fn chain(path: &[&str]) -> String {
    path.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// L0034: a test expects something the ladder cannot do.
fn impossible(at: Span, message: String, label: &str, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(Code::ImpossibleExpectation, at, message)
        .label(label)
        .help(help)
}

/// The diagnostic for a finding.
pub(crate) fn diagnostic(finding: Finding) -> Diagnostic {
    use Finding as F;
    match finding {
        // ---- front end
        F::Syntax(error) => syntax(error),
        F::NoVersion { at } => Diagnostic::new(Code::Version, at, "missing language version line")
            .label("the file must start with `ladder 1`")
            .help("add `ladder 1` as the first line, so that future versions of the language can change safely"),
        F::UnsupportedVersion { at, raw } => Diagnostic::new(
            Code::Version,
            at,
            format!("unsupported language version `{raw}`"),
        )
        .label(format!(
            "this ladderc understands version {}",
            crate::syntax::LANGUAGE_VERSION
        ))
        .help(format!(
            "write `ladder {}`, or upgrade ladderc",
            crate::syntax::LANGUAGE_VERSION
        )),
        F::UseNotLadder { at, target } => Diagnostic::new(
            Code::MissingFile,
            at,
            format!("`use \"{target}\"` does not name a `.ladder` file"),
        )
        .label("only `.ladder` files can be used")
        .help("rename the file to end in `.ladder`, or use the ladder that defines these items"),
        F::UseCycle { at, target, via } => {
            let mut d = Diagnostic::new(
                Code::UseCycle,
                at,
                format!("`use \"{target}\"` closes a cycle of files"),
            )
            .label("this use leads back to a file that is still being loaded")
            .help("move the shared items into a third file that both sides `use`");
            for span in via {
                d = d.secondary(span, "which uses");
            }
            d
        }
        F::UnreadableUse { at, path, error } => Diagnostic::new(
            Code::MissingFile,
            at,
            format!("cannot read `{path}`: {error}"),
        )
        .label("used here")
        .help("paths in `use` are relative to the file that contains the `use`"),
        F::TooManyItems { at, items, limit } => Diagnostic::new(
            Code::TooManyItems,
            at,
            format!("this ladder declares {items} items, over the limit of {limit}"),
        )
        .label("the first item over the limit")
        .help("split the ladder, or raise the limit with `--max-items`"),
        F::UnknownLint {
            at,
            name,
            suggestion,
        } => suggest_or(
            Diagnostic::new(Code::BadLint, at, format!("unknown lint `{name}`"))
                .label("no diagnostic has this code or name"),
            suggestion,
            "lints are named by code (`L0017`) or name (`unused`); see docs/diagnostics.md",
        ),
        F::AllowedError { at, code } => Diagnostic::new(
            Code::BadLint,
            at,
            format!(
                "`{}` ({}) is an error and cannot be allowed",
                code.as_str(),
                code.slug()
            ),
        )
        .label("this allow has no effect")
        .help("fix the problem instead; only warnings can be allowed"),

        // ---- names
        F::Repeated {
            first,
            again,
            what,
            keep,
        } => Diagnostic::new(
            Code::RepeatedStatement,
            again,
            format!("{what} is given twice"),
        )
        .label("given again here")
        .secondary(first, "first given here")
        .help(keep),
        F::Duplicate {
            name,
            first,
            kind,
            shared_rung_namespace,
        } => Diagnostic::new(
            Code::Duplicate,
            name.span,
            format!("`{}` is defined twice", name.name),
        )
        .label(format!("{kind} `{}` redefined here", name.name))
        .secondary(first, "first defined here")
        .help(if shared_rung_namespace {
            "agents, humans and scripts share one namespace: rename one of them"
        } else {
            "rename one of them, or remove the copy"
        }),
        F::SecondHeader { at, first } => Diagnostic::new(Code::Entry, at, "a second ladder header")
            .label("another `ladder` header here")
            .secondary(first, "the ladder is already declared here")
            .help("a ladder has one header; files that are `use`d hold only items"),
        F::UnknownStatement {
            keyword,
            block,
            known,
            suggestion,
        } => suggest_or(
            Diagnostic::new(
                Code::UnknownKey,
                keyword.span,
                format!("unknown {block} statement `{}`", keyword.name),
            )
            .label(format!("not {} statement", with_article(block))),
            suggestion,
            format!("{block} statements are: {}", ticked(known.iter().copied())),
        ),
        F::WrongKind {
            name,
            found,
            role,
            ns,
            example,
        } => {
            let expected = with_article(noun(ns));
            Diagnostic::new(
                Code::WrongKind,
                name.span,
                format!(
                    "`{}` is {}, but {role} must be {expected}",
                    name.name,
                    with_article(found),
                ),
            )
            .label(format!("this is {}", with_article(found)))
            .help(match example {
                Some(example) => format!("name {expected} here, such as `{example}`"),
                None => format!("declare {expected} and name it here"),
            })
        }
        F::Undefined {
            name,
            ns,
            suggestion,
            known,
        } => {
            let noun = noun(ns);
            suggest_or(
                Diagnostic::new(
                    Code::Undefined,
                    name.span,
                    format!("undefined {noun} `{}`", name.name),
                )
                .label(format!("no {noun} is called `{}`", name.name)),
                suggestion,
                if known.is_empty() {
                    format!("declare it: no {noun} exists yet")
                } else {
                    format!(
                        "declare it, or use one of: {}",
                        ticked(known.iter().take(6).copied())
                    )
                },
            )
        }

        // ---- the agent graph
        F::BadOwnership { policy, suggestion } => suggest_or(
            Diagnostic::new(
                Code::InvalidValue,
                policy.span,
                format!("`owns {}` is not an ownership policy", policy.name),
            )
            .label("expected `turn` or `conversation`"),
            suggestion,
            "`owns turn`: control goes back after each reply; `owns conversation` (the default): it stays until a handoff or a return",
        ),
        F::ReturnWithoutDelegator { at, agent, returns } => Diagnostic::new(
            Code::ReturnWithoutDelegator,
            at,
            if returns {
                format!("`{agent}` returns, but no agent hands off to it")
            } else {
                format!("`{agent}` owns one turn, but no agent hands off to it")
            },
        )
        .label("there is never anyone to return to")
        .help(format!(
            "remove `{}`, or give an agent a `handoff .. -> {agent}`",
            if returns { "return" } else { "owns turn" }
        )),
        F::FallbackWithoutSla { fallback, human } => Diagnostic::new(
            Code::MissingProperty,
            fallback.span,
            format!("the fallback of `{human}` never runs: it has no `sla`"),
        )
        .label("runs when no one claims the session in time, and no time is set")
        .help("add `sla: 10m` (how long a session may wait for a person), or remove the fallback"),
        F::NoHeader { at } => Diagnostic::new(Code::Entry, at, NO_HEADER)
            .label("expected `ladder NAME { entry AGENT }` somewhere in this ladder")
            .help("add a header such as `ladder support { entry triage }` naming the first rung of every session"),
        F::NoEntry { ladder, example } => Diagnostic::new(
            Code::Entry,
            ladder.span,
            format!("ladder `{}` has no entry", ladder.name),
        )
        .label("no `entry` in this header")
        .help(match example {
            Some(a) => format!("add `entry {a}` (the rung that greets every new session)"),
            None => "add `entry AGENT` naming the rung that greets every new session".into(),
        }),
        F::HumanEntry { entry } => Diagnostic::new(
            Code::WrongKind,
            entry.span,
            format!("the entry `{}` is a human", entry.name),
        )
        .label("sessions would start paused, waiting for a person")
        .help("start with an agent or a script; hand off to the human from there"),
        F::HandoffCycle { steps } => {
            let mut ring: Vec<&str> = steps.iter().map(|s| s.from).collect();
            ring.push(steps[0].from);
            let mut d = Diagnostic::new(
                Code::HandoffCycle,
                steps[0].span,
                format!("handoff cycle: {}", ring.join(" -> ")),
            )
            .help("control must only flow down the ladder: replace one edge with `escalate -> ..` (which returns up) or remove it");
            for (i, step) in steps.iter().enumerate() {
                let (a, b) = (step.from, step.to);
                let what = match (step.kind, step.label) {
                    (EdgeKind::Handoff, Some(intent)) => {
                        format!("`{a}` hands off to `{b}` (intent `{intent}`)")
                    }
                    (EdgeKind::Handoff, None) => format!("`{a}` hands off to `{b}`"),
                    (EdgeKind::Consult, _) => format!("`{a}` consults `{b}`"),
                    (_, Some(l)) => format!("`{a}` falls back to `{b}` ({l})"),
                    (_, None) => format!("`{a}` falls back to `{b}`"),
                };
                let what = format!("{}: {what}", i + 1);
                d = if i == 0 {
                    d.label(what)
                } else {
                    d.secondary(step.span, what)
                };
            }
            d
        }
        F::Unreachable {
            at,
            kind,
            name,
            entry,
        } => Diagnostic::new(Code::Unreachable, at, format!("{kind} `{name}` is unreachable"))
            .label(format!("no path from the entry `{entry}` leads here"))
            .help(format!(
                "add a `handoff`, `escalate`, `consult` or `fallback` edge to `{name}`, or remove it"
            )),
        F::EscalationDirection {
            target,
            agent,
            itself,
        } => {
            let what = if itself {
                "itself".to_string()
            } else {
                format!("`{}`", target.name)
            };
            Diagnostic::new(
                Code::EscalationDirection,
                target.span,
                format!("`{agent}` escalates to {what}, which is not above it"),
            )
            .label(format!("`{}` never hands control down to `{agent}`", target.name))
            .help("escalate to a rung that hands off (directly or not) to this one, or to a `human`; use `handoff` to move sideways or down")
        }
        F::ConditionType { at, name, ty } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!("`{name}` has type `{ty}`; a value of another type never matches it"),
        )
        .label("a value of another type")
        .secondary(ty.span, "the variable's type")
        .help(format!("compare `{name}` with a value of type `{ty}`")),
        F::ConstantCondition {
            at,
            name,
            min,
            max,
            always,
        } => {
            let what = if always { "always" } else { "never" };
            Diagnostic::new(
                Code::InvalidValue,
                at,
                format!(
                    "`{name}` is {}, so this condition is {what} true",
                    range(min, max)
                ),
            )
            .label(format!("{what} true"))
            .help(format!("compare `{name}` with a value inside its range"))
        }
        F::SignalNotNumber { at, name, min, max } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!(
                "`{name}` is a number ({}); it cannot be compared with this value",
                range(min, max)
            ),
        )
        .label("not a number")
        .help(format!("compare `{name}` with a number")),
        F::ToolErrorsWithoutTools { at } => Diagnostic::new(
            Code::InvalidValue,
            at,
            "`tool_errors` counts failed tool calls, and this agent has no tools",
        )
        .label("always 0 here")
        .help("give the agent tools, or escalate on another signal"),
        F::UnknownSignal { signal, suggestion } => suggest_or(
            Diagnostic::new(
                Code::UnknownSignal,
                signal.span,
                format!("unknown signal `{}` in escalation condition", signal.name),
            )
            .label("the runtime does not compute this"),
            suggestion,
            format!(
                "conditions may use {} or a session variable",
                ticked(crate::graph::SIGNALS.iter().map(|(s, _)| *s))
            ),
        ),
        F::DuplicateIntentEdge {
            agent,
            intent,
            first,
        } => Diagnostic::new(
            Code::DuplicateIntentEdge,
            intent.span,
            format!("`{agent}` has two handoffs for intent `{}`", intent.name),
        )
        .label("second handoff with this intent")
        .secondary(first, "first handoff with this intent")
        .help("one intent routes to one rung; declare a second intent to tell the cases apart"),
        F::NotAccepted {
            sender,
            intent,
            receiver,
            accepts,
        } => {
            let (at, intent) = (intent.span, &intent.name);
            let mut d = Diagnostic::new(
                Code::IntentNotAccepted,
                at,
                format!("`{receiver}` does not accept intent `{intent}`"),
            )
            .label(format!("`{sender}` hands off `{intent}` here"))
            .help(format!(
                "add `{intent}` to the `accepts` of `{receiver}`, or hand this intent to another rung"
            ));
            if let Some(first) = accepts.first() {
                d = d.secondary(
                    first.span,
                    format!(
                        "`{receiver}` accepts only {}",
                        ticked(accepts.iter().map(|a| a.name.as_str()))
                    ),
                );
            }
            if let Some(last) = accepts.last() {
                d = d.fix(
                    format!("add `{intent}` to the accepts of `{receiver}`"),
                    Span::new(last.span.file, last.span.end, last.span.end),
                    format!(", {intent}"),
                );
            }
            d
        }
        F::RouterWithoutHandoff { at, agent } => Diagnostic::new(
            Code::RouterWithoutExit,
            at,
            format!("router `{agent}` has no handoff"),
        )
        .label("a router never replies, so every turn here would end with nothing said")
        .help("add `handoff INTENT -> AGENT` edges, or remove `router` so that it can reply itself"),
        F::FuseThroughNothing { at, receiver } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!("`fuse` through `{receiver}`, which hands off nowhere"),
        )
        .label("only an agent with handoffs can be routed through")
        .help("remove `fuse`: there is no later hop to decide in the same call"),
        F::ScriptWithoutEnd { at, script } => Diagnostic::new(
            Code::DeadEnd,
            at,
            format!("script `{script}` ends without `end` or `handoff`"),
        )
        .label("the caller would be left with no one on the line")
        .help("finish the script with `end` (close the session) or `handoff RUNG`"),
        F::ScriptDeadEnd { at, script } => Diagnostic::new(
            Code::DeadEnd,
            at,
            format!("script `{script}` never reaches a reply or a human"),
        )
        .label("every handoff from here leads to rungs that cannot answer")
        .help("hand off to an agent that replies, or to a `human`"),
        F::RouterDeadEnd { at, agent } => Diagnostic::new(
            Code::DeadEnd,
            at,
            format!("router `{agent}` never reaches a reply or a human"),
        )
        .label("every handoff from here leads to rungs that cannot answer")
        .help("hand off to at least one agent that replies, or to a `human`"),
        F::StatementAfterEnd { at, stop } => Diagnostic::new(
            Code::UnreachableStatement,
            at,
            "statement after the end of the script",
        )
        .label("this never runs")
        .secondary(stop, "the script stops here")
        .help("move it before the `end`/`handoff`, or remove it"),

        // ---- templates and context policies
        F::LastTurns { at, turns } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!("`last({turns})` must keep between 1 and 1000 turns"),
        )
        .label("not a usable number of turns")
        .help("use `context none` to pass no history, or a whole number such as `last(5)`"),
        F::LastWithoutTurns { at } => {
            Diagnostic::new(Code::InvalidValue, at, "`last` needs a number of turns")
                .label("how many turns?")
                .help("write `context last(5)`")
        }
        F::PolicyArgument { at, policy } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!("`{policy}` takes no argument"),
        )
        .label("remove this")
        .help("only `last(N)` takes a number"),
        F::UnknownPolicy { policy, suggestion } => suggest_or(
            Diagnostic::new(
                Code::UnknownKey,
                policy.span,
                format!("unknown context policy `{}`", policy.name),
            )
            .label("not a context policy"),
            suggestion,
            "policies are `full`, `no_tools`, `last(N)`, `summary` and `none`",
        ),
        F::ArrivalWithout {
            at,
            prompt_of,
            reference,
            from,
            how,
            arrived_at,
            more,
        } => {
            let summary = reference.path.first().is_some_and(|h| h == "summary");
            let (code, what) = if summary {
                (Code::ContextMismatch, "no summary")
            } else {
                (Code::UndeclaredTemplate, "no intent")
            };
            let more = match more {
                0 => String::new(),
                n => format!(" (and {n} more arrival{})", if n == 1 { "" } else { "s" }),
            };
            let how_text = match how {
                Arrival::Entry => "at the start of a session".into(),
                Arrival::Fallback => format!("by the fallback of `{from}`"),
                Arrival::Script => format!("by the handoff of script `{from}`"),
                Arrival::Escalation => format!("by the escalation of `{from}`"),
            };
            let mut d = Diagnostic::new(
                code,
                at,
                format!(
                    "the prompt of `{prompt_of}` uses `{{{{{}}}}}`, but control arrives {how_text}{more} with {what}",
                    reference.path.join(".")
                ),
            )
            .label("empty when control arrives that way");
            if how != Arrival::Entry {
                d = d.secondary(arrived_at, "control arrives here without it");
            }
            d.help(if summary {
                "use `{{transcript}}`, which every arrival carries, or keep `{{summary}}` to rungs reached only by `context summary` handoffs"
            } else {
                "reach this rung only by handoffs with the intent, or move the intent's details into the transcript"
            })
        }
        F::UncacheablePrompt { at, value } => Diagnostic::new(
            Code::UncacheablePrompt,
            at,
            format!("`{{{{{value}}}}}` comes before static text in this prompt"),
        )
        .label("it differs between requests, so the prompt's cacheable prefix ends here")
        .help(format!(
            "move the instructions after `{{{{{value}}}}}` above it; providers cache the stable prefix of a request (tools, then the system prompt up to its first value that changes)"
        )),
        F::HistoryInScript { reference } => Diagnostic::new(
            Code::ContextMismatch,
            reference.span,
            format!(
                "`{{{{{}}}}}` is only available in agent prompts",
                reference.path.join(".")
            ),
        )
        .label("scripts receive no handoff history")
        .help("scripts may use session variables and `ladder`, `agent`, `turn`"),
        F::UndeclaredTemplate {
            reference,
            name,
            suggestion,
            declaration,
        } => {
            let mut d = Diagnostic::new(
                Code::UndeclaredTemplate,
                reference.span,
                format!("undeclared template variable `{}`", reference.path.join(".")),
            )
            .label("not a session variable or a builtin")
            .help(match suggestion {
                Some(s) => format!("did you mean `{{{{{s}}}}}`?"),
                None => format!("declare it in the ladder header: `vars {{ {name}: string }}`"),
            });
            if let Some((at, text)) = declaration {
                d = d.fix(
                    format!("declare `{name}: string` in the ladder's `vars`"),
                    at,
                    text,
                );
            }
            d
        }
        F::HistoryMismatch {
            reference,
            prompt_of,
            needs_summary,
            from,
            policy,
            context_at,
        } => {
            let what = match policy {
                ContextPolicy::Full => "the full transcript but no summary",
                ContextPolicy::NoTools => "the transcript without tool calls, but no summary",
                ContextPolicy::Summary => "only a summary",
                ContextPolicy::LastTurns { .. } => "only the last turns",
                ContextPolicy::None => "no history",
            };
            let var = if needs_summary { "summary" } else { "transcript" };
            Diagnostic::new(
                Code::ContextMismatch,
                reference.span,
                format!("the prompt of `{prompt_of}` uses `{{{{{var}}}}}`, but the handoff from `{from}` carries {what}"),
            )
            .label(if needs_summary {
                "needs the handoff summary"
            } else {
                "needs the full transcript"
            })
            .secondary(context_at, format!("`{from}` hands off with this context"))
            .help(if needs_summary {
                "write `context summary` on the handoff, or use `{{transcript}}` in the prompt"
            } else {
                "write `context full` (or `no_tools`) on the handoff, or use `{{summary}}` with `context summary`"
            })
        }
        F::NoIntentField {
            reference,
            field,
            intent,
            declared,
            receiver,
            from,
            suggestion,
        } => Diagnostic::new(
            Code::UndeclaredTemplate,
            reference.span,
            format!("intent `{intent}` has no field `{field}`"),
        )
        .label(format!(
            "`{receiver}` can receive `{intent}` from `{from}`, whose payload lacks `{field}`"
        ))
        .secondary(declared, "intent declared here")
        .help(match suggestion {
            Some(s) => format!("did you mean `{{{{intent.{s}}}}}`?"),
            None => format!("add `{field}: string` to the payload of intent `{intent}`"),
        }),

        // ---- bounds and budgets
        F::CostOverBudget {
            at,
            per_session,
            cost,
            limit,
            worst,
        } => {
            let explain = format!(
                "worst case per turn: {} LLM calls, {} tool calls, {} handoffs along {}",
                worst.llm_calls,
                worst.tool_calls,
                worst.handoffs,
                worst.longest_chain.join(" -> ")
            );
            let per = if per_session { "session" } else { "turn" };
            Diagnostic::new(
                Code::BudgetExceeded,
                at,
                format!("worst-case cost per {per} ${cost:.4} exceeds the budget of ${limit}"),
            )
            .label("budget declared here")
            .note(explain)
            .help(if per_session {
                "lower `turns_per_session` or the per-turn limits, cap the models' token limits, or raise the budget"
            } else {
                "lower `steps_per_turn` or `tool_calls_per_turn`, cap `max_input_tokens`/`max_output_tokens`, use a cheaper model, or raise the budget"
            })
        }
        F::LatencyOverBudget {
            at,
            bound,
            limit,
            slowest,
        } => Diagnostic::new(
            Code::BudgetExceeded,
            at,
            format!(
                "the worst-case time to a reply, {}, exceeds the latency budget of {}",
                seconds_text(bound),
                seconds_text(limit)
            ),
        )
        .label("budget declared here")
        .note(format!(
            "each rung commits within its SLA or hands over; the SLAs on the walks a turn can take (from the entry, then from each escalation target) add up to {}; the slowest from the entry: {}",
            seconds_text(bound),
            slowest.join(" -> ")
        ))
        .help("tighten the SLAs on this chain, lower `handoffs_per_turn`, or raise the budget"),
        F::LatencyUnproved {
            at,
            limit,
            without_sla,
            deadline,
        } => {
            let mut names: Vec<String> = without_sla
                .iter()
                .take(3)
                .map(|n| format!("`{n}`"))
                .collect();
            if without_sla.len() > 3 {
                names.push(format!("{} more", without_sla.len() - 3));
            }
            Diagnostic::new(
                Code::UnprovedBudget,
                at,
                format!(
                    "the latency budget of {} cannot be proved: {} {} no SLA, so only the turn deadline ({}) bounds a turn",
                    seconds_text(limit),
                    names.join(", "),
                    if without_sla.len() == 1 { "has" } else { "have" },
                    seconds_text(deadline)
                ),
            )
            .label("budget declared here")
            .help("give every agent an `sla`, or set `turn_deadline` within the budget")
        }
        F::CostUnproved {
            at,
            limit,
            per,
            why,
        } => {
            let (why, help) = match why {
                CostUnknown::Model(why) => (
                    why.to_string(),
                    "give every model `input`/`output` prices and `max_input_tokens`/`max_output_tokens`",
                ),
                CostUnknown::NoTurnsPerSession => (
                    "there is no `turns_per_session`, so a session may take any number of turns"
                        .to_string(),
                    "set `turns_per_session` in `limits`",
                ),
            };
            Diagnostic::new(
                Code::UnprovedBudget,
                at,
                format!("the cost budget of ${limit} per {per} cannot be proved: {why}"),
            )
            .label("budget declared here")
            .help(help)
        }
        F::HandoffsTooFew {
            at,
            limit,
            needed,
            path,
        } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!(
                "`handoffs_per_turn: {limit}` makes the ladder unusable: the nearest rung that answers is {needed} handoffs from the entry"
            ),
        )
        .label("too few handoffs to reach an answer")
        .note(format!("the shortest path: {}", chain(&path)))
        .help(format!("raise `handoffs_per_turn` to at least {needed}")),
        F::EscalationForbidden { at, agent } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!("`escalation_depth: 0` forbids every escalation, and `{agent}` declares one"),
        )
        .label("no escalation can happen")
        .help("remove the escalations, or allow at least one"),
        F::EscalationTooShallow {
            at,
            depth,
            needed,
            path,
        } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!(
                "`escalation_depth: {depth}` is too shallow: `{}` needs {needed} escalations to reach a person",
                path[0]
            ),
        )
        .label("the escalation stack fills up before a person is reached")
        .note(format!("the shortest escalation path: {}", chain(&path)))
        .help(format!("raise `escalation_depth` to at least {needed}")),
        F::SlaOverBudget {
            at,
            agent,
            seconds,
            limit,
            budget_at,
        } => Diagnostic::new(
            Code::SlaOverBudget,
            at,
            format!(
                "the SLA of `{agent}` ({}) is longer than the latency budget ({})",
                seconds_text(seconds),
                seconds_text(limit)
            ),
        )
        .label("this rung may take longer than the whole turn is allowed")
        .secondary(budget_at, "latency budget declared here")
        .help("tighten the SLA so that its fallback can still answer within budget"),

        // ---- scenario tests
        F::DuplicateTest { name, first } => Diagnostic::new(
            Code::Duplicate,
            name.span,
            format!("test \"{}\" is defined twice", name.value),
        )
        .label("second test with this name")
        .secondary(first, "first defined here")
        .help("give every test a distinct name, so that reports can tell them apart"),
        F::ExpectationBeforeUser { at } => impossible(
            at,
            "an expectation before any user turn".into(),
            "nothing has happened yet",
            "put `user \"..\"` before the expectations of that turn",
        ),
        F::NoUserTurn { name } => impossible(
            name.span,
            format!("test \"{}\" has no user turn", name.value),
            "this test never talks to the ladder",
            "add `user \"..\"` lines: each one is a turn",
        ),
        F::UnofferedCall {
            agent,
            function,
            by_intent,
            suggestion,
            offered,
        } => {
            let help = match (by_intent, suggestion) {
                (Some(s), _) => format!(
                    "did you mean `{s}`? Handoff functions are named after the receiving rung, not the intent"
                ),
                (None, Some(s)) => format!("did you mean `{s}`?"),
                (None, None) if offered.is_empty() => {
                    format!("`{}` is offered no function at all", agent.name)
                }
                (None, None) => format!(
                    "`{}` is offered {}",
                    agent.name,
                    ticked(offered.iter().map(String::as_str))
                ),
            };
            Diagnostic::new(
                Code::UnofferedCall,
                function.span,
                format!(
                    "`{}` is never offered a function `{}`",
                    agent.name, function.name
                ),
            )
            .label("the runtime refuses this call (a correction)")
            .help(format!(
                "{help}; to test corrections on purpose, put `#[allow(unoffered-call)]` on the test"
            ))
        }
        F::StubMisfit {
            at,
            tool,
            returns,
            expected,
        } => Diagnostic::new(
            Code::MockMismatch,
            at,
            format!(
                "the stub of `{}` does not fit its return type `{returns}`",
                tool.name
            ),
        )
        .label(format!("expected {expected}"))
        .secondary(returns.span, "the declared return type")
        .help("return a value of the tool's type, so that the test sees what the tool can give"),
        F::ArgumentsNotObject { at, tool } => impossible(
            at,
            format!("the arguments of `{}` are an object", tool.name),
            "not an object",
            "write them as `{ name: value, .. }`",
        ),
        F::NoSuchArgument {
            key,
            tool,
            suggestion,
            params,
        } => impossible(
            key.span,
            format!("tool `{}` has no parameter `{}`", tool.name, key.name),
            "no call of the tool can carry this argument",
            match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("its parameters are {}", ticked(params)),
            },
        ),
        F::ArgumentMisfit {
            at,
            param,
            tool,
            ty,
            expected,
        } => impossible(
            at,
            format!(
                "parameter `{}` of `{}` has type `{ty}`",
                param.name, tool.name
            ),
            "no call of the tool carries this value",
            format!("expected {expected}"),
        ),
        F::NoSuchHandoff {
            from,
            to,
            intent,
            edges,
        } => {
            let listed: Vec<String> = edges
                .iter()
                .map(|(t, i)| match i {
                    Some(i) => format!("`{t}` (intent `{i}`)"),
                    None => format!("`{t}`"),
                })
                .collect();
            impossible(
                to.span,
                format!(
                    "`{}` has no handoff to `{}`{}",
                    from.name,
                    to.name,
                    intent
                        .map(|i| format!(" with intent `{}`", i.name))
                        .unwrap_or_default()
                ),
                "this route is impossible in the ladder",
                if listed.is_empty() {
                    format!("`{}` hands off to no one", from.name)
                } else {
                    format!("`{}` hands off to {}", from.name, listed.join(", "))
                },
            )
        }
        F::NoSuchEscalation { from, to } => impossible(
            to.span,
            format!(
                "no {}escalation to `{}` is declared",
                from.map(|f| format!("`{}` ", f.name)).unwrap_or_default(),
                to.name
            ),
            "this escalation cannot happen",
            "declare `escalate -> ..` in the agent, or expect another route",
        ),
        F::NotAHuman { name } => impossible(
            name.span,
            format!("`{}` is not a human", name.name),
            "expected a human endpoint here",
            "name a `human`, or use `expect agent NAME`",
        ),
        F::BadRegex { at, error } => {
            Diagnostic::new(Code::InvalidValue, at, "invalid regular expression")
                .label(error.lines().last().unwrap_or("invalid").to_string())
                .help("write a regular expression in Rust `regex` syntax, or use `contains`")
        }
        F::UnknownCeiling { name, suggestion } => suggest_or(
            Diagnostic::new(
                Code::UnknownKey,
                name.span,
                format!("unknown ceiling `{}`", name.name),
            )
            .label("the runtime has no such ceiling"),
            suggestion,
            format!(
                "ceilings are {}",
                crate::scenarios::CEILINGS.join(", ")
            ),
        ),
        F::NoSuchFallback { from, to } => impossible(
            to.span,
            format!("`{}` does not fall back to `{}`", from.name, to.name),
            "no such fallback is declared",
            "declare `fallback -> ..` or `sla .. else -> ..` in the agent",
        ),
        F::NotASessionVariable { name, suggestion } => impossible(
            name.span,
            format!("`{}` is not a session variable", name.name),
            "no `vars` entry or `collect` declares it",
            match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "declare it in the header's `vars {{ {}: string }}`, or `collect` it in a script",
                    name.name
                ),
            },
        ),

        // ---- types and tools
        F::UnknownType { name, suggestion } => suggest_or(
            Diagnostic::new(
                Code::UnknownType,
                name.span,
                format!("unknown type `{}`", name.name),
            )
            .label("no builtin or declared type has this name"),
            suggestion,
            format!(
                "declare it with `type {} {{ .. }}`, or use a builtin: {}",
                name.name,
                crate::types::BUILTIN_TYPES.join(", ")
            ),
        ),
        F::DuplicateField { name, first, what } => Diagnostic::new(
            Code::DuplicateField,
            name.span,
            format!("{what} `{}` is declared twice", name.name),
        )
        .label("declared again here")
        .secondary(first, "first declared here")
        .help("remove or rename one of them"),
        F::UnknownBinding { var, suggestion } => Diagnostic::new(
            Code::BadBinding,
            var.span,
            format!("`session.{}` is not a session variable", var.name),
        )
        .label("bound to a variable nobody declares")
        .help(match suggestion {
            Some(s) => format!("did you mean `session.{s}`?"),
            None => format!(
                "declare it in the ladder header: `vars {{ {}: string }}`, or `collect` it in a script",
                var.name
            ),
        }),
        F::BindingType {
            var,
            var_ty,
            param,
            param_ty,
        } => Diagnostic::new(
            Code::BadBinding,
            var.span,
            format!(
                "`session.{}` has type `{var_ty}`, but parameter `{}` has type `{param_ty}`",
                var.name, param.name
            ),
        )
        .label("bound to a variable of another type")
        .secondary(var_ty.span, "the variable's type")
        .help("bind a variable of the parameter's type, or change one of the types"),
        F::ApproverNotHuman { name, kind } => Diagnostic::new(
            Code::WrongKind,
            name.span,
            format!("`{}` is {}, but an approver must be a human", name.name, with_article(kind)),
        )
        .label(format!("this is {}", with_article(kind)))
        .help("approvals are given by people: name a `human`"),
        F::NoImplementation { tool } => Diagnostic::new(
            Code::MissingProperty,
            tool.span,
            format!("tool `{}` has no implementation", tool.name),
        )
        .label("the runtime would not know how to call it")
        .help("add one of `http GET \"url\"`, `exec \"program\"`, `mock { .. }`, `host` or `mcp SERVER`"),
        F::McpWithoutTransport { server } => Diagnostic::new(
            Code::MissingProperty,
            server.span,
            format!("MCP server `{}` says neither how to start it nor where it is", server.name),
        )
        .label("no `command` and no `url`")
        .help("add `command: [\"npx\", \"-y\", \"some-mcp-server\"]` (a local process on stdio) or `url: \"https://host/mcp\"` (streamable HTTP)"),
        F::McpTwoTransports { command, url } => Diagnostic::new(
            Code::RepeatedStatement,
            url,
            "an MCP server has one transport: `command` (stdio) or `url` (streamable HTTP), not both",
        )
        .label("a `url` here")
        .secondary(command, "and a `command` here")
        .help("keep one of them; declare a second `mcp` item for the other"),
        F::McpBadValue { at, server, why } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!("MCP server `{server}`: {why}"),
        )
        .label("this cannot work"),
        F::UrlPlaceholder {
            at,
            tool,
            name,
            suggestion,
        } => Diagnostic::new(
            Code::UrlTemplate,
            at,
            format!("URL placeholder `{{{name}}}` is not a parameter of `{tool}`"),
        )
        .label("no parameter with this name")
        .help(match suggestion {
            Some(s) => format!("did you mean `{{{s}}}`?"),
            None => format!(
                "add a parameter `{name}: string` to the tool, or remove the placeholder"
            ),
        }),
        F::MockMisfit {
            at,
            tool,
            returns,
            expected,
        } => Diagnostic::new(
            Code::MockMismatch,
            at,
            format!("mock result of `{tool}` does not match its return type"),
        )
        .label(format!("expected {expected}"))
        .secondary(returns, "return type declared here")
        .help("make the mock result a value of the declared return type"),
        F::ToolTimeout { at, seconds } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!(
                "tool timeout of {seconds}s is {}",
                if seconds <= 0.0 {
                    "not positive"
                } else {
                    "absurdly long"
                }
            ),
        )
        .label("timeout here")
        .help("use a timeout between 1ms and 10m"),
        F::ToolRetries { at, retries } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            "tool retries must be a whole number from 0 to 10",
        )
        .label(format!("{retries} retries"))
        .help("retries multiply side effects and latency; 0 to 3 is typical"),

        // ---- key: value blocks
        F::UnknownKey {
            key,
            block,
            known,
            suggestion,
        } => suggest_or(
            Diagnostic::new(
                Code::UnknownKey,
                key.span,
                format!("unknown key `{}` in {block}", key.name),
            )
            .label(format!("{block} has no `{}`", key.name)),
            suggestion,
            format!("{block} takes: {}", ticked(known)),
        ),
        F::WrongValue {
            at,
            block,
            key,
            expect,
            found: value,
        } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!(
                "`{key}` in {block} takes {}, found {}",
                describe(expect),
                found(value)
            ),
        )
        .label(format!("expected {}", describe(expect)))
        .help(format!("write `{key}: ` followed by {}", describe(expect))),
        F::NotPositive {
            at,
            block,
            key,
            value,
            min,
            unit,
        } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!("`{key}` in {block} must be positive"),
        )
        .label(format!("{key} is {value}{unit}"))
        .help(if value == 0.0 {
            "a zero limit or budget can never be met; remove the key to use the default"
                .to_string()
        } else {
            format!("use a value of at least {min}{unit}")
        }),
        F::TooLarge {
            at,
            block,
            key,
            value,
            max,
            unit,
        } => Diagnostic::new(
            Code::AbsurdLimit,
            at,
            format!("`{key}` in {block} is absurdly large"),
        )
        .label(format!("{value}{unit} is more than the maximum of {max}{unit}"))
        .help("a limit this large protects nothing; pick the largest value you would accept in production"),
        F::UnknownChoice {
            at,
            key,
            value,
            expect,
            suggestion,
        } => Diagnostic::new(Code::InvalidValue, at, format!("unknown {key} `{value}`"))
            .label(format!("expected {}", describe(expect)))
            .help(match suggestion {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("use {}", describe(expect)),
            }),
        F::UnknownHeaderBlock { name, suggestion } => suggest_or(
            Diagnostic::new(
                Code::UnknownKey,
                name.span,
                format!("unknown header block `{}`", name.name),
            )
            .label("the ladder header has no such block"),
            suggestion,
            "the header takes `entry`, `limits { .. }`, `budget { .. }`, `vars { .. }` and `meta { .. }`",
        ),
        F::ModelLacks { model, required } => Diagnostic::new(
            Code::MissingProperty,
            model.span,
            format!("model `{}` has no `{required}`", model.name),
        )
        .label(format!("`{required}` is required"))
        .help(match required {
            "provider" => "add `provider: openai` (any OpenAI-compatible endpoint)",
            _ => "add the model's name at the provider, e.g. `name: \"gpt-4o-mini\"`",
        }),

        // ---- declarations
        F::CollectRetyped { name, declared, ty } => Diagnostic::new(
            Code::InvalidValue,
            ty.span,
            format!(
                "`{}` is declared with type `{declared}`; this `collect` gives it type `{ty}`",
                name.name
            ),
        )
        .label("another type for the same session variable")
        .secondary(declared.span, "declared here")
        .help("collect it with the declared type, or use another name"),
        F::DefaultMisfit {
            at,
            name,
            ty,
            expected,
        } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!(
                "the default of `{}` does not fit its type `{ty}`",
                name.name
            ),
        )
        .label(format!("expected {expected}"))
        .secondary(ty.span, "the declared type"),
        F::EmptyPrompt { at, agent } => Diagnostic::new(
            Code::InvalidValue,
            at,
            format!("the prompt of `{agent}` is empty"),
        )
        .label("the model gets no instructions")
        .help("say what the agent is for, what it may do and when it hands over"),
        F::NoModel { at, agent, example } => Diagnostic::new(
            Code::MissingProperty,
            at,
            format!("agent `{agent}` has no model"),
        )
        .label("which model answers for this agent?")
        .help(match example {
            Some(m) => format!("add `model {m}`"),
            None => "declare a model (`model fast { provider: openai, name: \"gpt-4o-mini\" }`) and add `model fast`".into(),
        }),
        F::NoPrompt { at, agent } => Diagnostic::new(
            Code::MissingProperty,
            at,
            format!("agent `{agent}` has no prompt"),
        )
        .label("the model would get no instructions")
        .help("add `prompt \"\"\" ... \"\"\"` saying what this rung does and when it hands off"),
        F::Unused { at, kind, name } => {
            let (kind, help) = match kind {
                Unused::Tool => ("tool", "add it to an agent's `tools [..]`, or remove it"),
                Unused::Intent => ("intent", "route it with `handoff INTENT -> AGENT`, or remove it"),
                Unused::Model => ("model", "give it to an agent with `model NAME`, or remove it"),
                Unused::Type => (
                    "type",
                    "use it in a tool signature, payload or field, or remove it",
                ),
                Unused::Mcp => (
                    "MCP server",
                    "declare its tools with `mcp NAME` (`ladderc mcp pull` writes them), or remove it",
                ),
            };
            Diagnostic::new(Code::Unused, at, format!("{kind} `{name}` is never used"))
                .label(format!("declared here, but nothing refers to this {kind}"))
                .help(help)
        }
    }
}

/// L0001: what the parser expected and found, with its hint.
fn syntax(error: ladder_syntax::ParseError) -> Diagnostic {
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
    let d = Diagnostic::new(Code::Syntax, error.span, message).label(label);
    if let Some(hint) = error.hint {
        d.help(hint)
    } else if let Some(keyword) = error.suggestion {
        d.help(format!("did you mean `{keyword}`?"))
    } else if error.found == "end of file" {
        d.help("the file ends early: is a `}` or `\"\"\"` missing?")
    } else {
        d.help("see docs/language.md for the syntax of each item")
    }
}
