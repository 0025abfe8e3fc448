//! Scenario tests: every name a test mentions must exist, and every route it expects must be
//! possible in the graph (L0034); lowering to [`TestCase`]s.

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::index::{Index, Namespace, Rung};
use crate::program::{Expectation, TestCase, TestStep};
use crate::suggest::did_you_mean;
use ladder_syntax::ast::{self, Expectation as E, Ident, Operand, ScriptStmtKind, TestStepKind};
use std::collections::{BTreeMap, BTreeSet};

/// Ceilings a test may expect to fire (the runtime's `ceiling_hit` names).
pub(crate) const CEILINGS: &[&str] = &[
    "steps_per_turn",
    "tool_calls_per_turn",
    "handoffs_per_turn",
    "escalation_depth",
    "corrections_per_step",
    "sla",
    "cost_per_session",
    "turn_deadline",
    "turns_per_session",
];

fn impossible(span: ladder_syntax::Span, message: String, label: &str, help: String) -> Diagnostic {
    Diagnostic::new(Code::ImpossibleExpectation, span, message)
        .label(label.to_string())
        .help(help)
}

/// The targets `from` can hand off to, with intents (`None` for a script's handoff).
fn handoffs_of(index: &Index, from: &str) -> Vec<(String, Option<String>)> {
    match index.rung(from) {
        Some(Rung::Agent(a)) => a
            .handoffs
            .iter()
            .map(|h| (h.target.name.clone(), Some(h.intent.name.clone())))
            .collect(),
        Some(Rung::Script(s)) => s
            .stmts
            .iter()
            .filter_map(|st| match &st.kind {
                ScriptStmtKind::Handoff(t) => Some((t.name.clone(), None)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn check(index: &Index, session_vars: &BTreeSet<&str>, out: &mut Diagnostics) {
    let mut names: BTreeMap<&str, ladder_syntax::Span> = BTreeMap::new();
    for test in &index.tests {
        if let Some(first) = names.insert(&test.name.value, test.name.span) {
            out.push(
                Diagnostic::new(
                    Code::Duplicate,
                    test.name.span,
                    format!("test \"{}\" is defined twice", test.name.value),
                )
                .label("second test with this name")
                .secondary(first, "first defined here")
                .help("give every test a distinct name, so that reports can tell them apart"),
            );
        }
        let mut seen_user = false;
        for step in &test.steps {
            match &step.kind {
                TestStepKind::User(_) => seen_user = true,
                TestStepKind::Says { agent, .. } => {
                    index.resolve(Namespace::Agent, agent, "a scripted model answer", out);
                }
                TestStepKind::Stub { tool, outcome } => {
                    if index.resolve(Namespace::Tool, tool, "a stubbed tool", out) {
                        stub_fits(index, tool, outcome, out);
                    }
                }
                TestStepKind::Calls {
                    agent, function, ..
                } => {
                    // `transfer_to_billing` names the rung `billing`; any other name a tool.
                    let r = crate::walk::function_reference(function);
                    index.refs.borrow_mut().push(r);
                    if index.resolve(Namespace::Agent, agent, "a scripted model answer", out) {
                        offered(index, agent, function, out);
                    }
                }
                TestStepKind::Expect(e) => {
                    if !seen_user {
                        out.push(impossible(
                            step.span,
                            "an expectation before any user turn".into(),
                            "nothing has happened yet",
                            "put `user \"..\"` before the expectations of that turn".into(),
                        ));
                    }
                    expectation(index, e, session_vars, out);
                }
            }
        }
        if !seen_user {
            out.push(impossible(
                test.name.span,
                format!("test \"{}\" has no user turn", test.name.value),
                "this test never talks to the ladder",
                "add `user \"..\"` lines: each one is a turn".into(),
            ));
        }
    }
}

/// L0037 (a warning: tests of corrections do it on purpose) for `model X calls F` where `F` is not a function the runtime offers `X`: its tools,
/// `transfer_to_<receiver>` per handoff, `escalate_to_<target>` per escalation and
/// `consult_<agent>` per consult. The natural slip, naming a handoff after its intent instead of
/// its receiver, gets the receiver's function as the suggestion.
fn offered(index: &Index, agent: &Ident, function: &Ident, out: &mut Diagnostics) {
    let a = &index.agents[agent.name.as_str()];
    let mut functions: Vec<String> = a.tools.iter().map(|t| t.name.clone()).collect();
    functions.extend(
        a.handoffs
            .iter()
            .map(|h| format!("transfer_to_{}", h.target.name)),
    );
    functions.extend(
        a.escalations
            .iter()
            .map(|e| format!("escalate_to_{}", e.target.name)),
    );
    functions.extend(a.consults.iter().map(|c| format!("consult_{}", c.name)));
    if a.returns.is_some() {
        // `return_to_X` for each agent that hands off to this one.
        functions.extend(
            index
                .agents
                .iter()
                .filter(|(_, d)| d.handoffs.iter().any(|h| h.target.name == agent.name))
                .map(|(name, _)| format!("return_to_{name}")),
        );
    }
    if functions.contains(&function.name) {
        return;
    }
    let by_intent = function
        .name
        .strip_prefix("transfer_to_")
        .and_then(|intent| {
            a.handoffs
                .iter()
                .find(|h| h.intent.name == intent && h.target.name != intent)
                .map(|h| format!("transfer_to_{}", h.target.name))
        });
    let help = match (by_intent, did_you_mean(&function.name, functions.iter().map(String::as_str))) {
        (Some(s), _) => format!(
            "did you mean `{s}`? Handoff functions are named after the receiving rung, not the intent"
        ),
        (None, Some(s)) => format!("did you mean `{s}`?"),
        (None, None) if functions.is_empty() => {
            format!("`{}` is offered no function at all", agent.name)
        }
        (None, None) => format!(
            "`{}` is offered {}",
            agent.name,
            functions.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    out.push(
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
        )),
    );
}

/// L0027 for `tool T returns V` where `V` does not fit `T`'s return type (a stub is a mock).
fn stub_fits(index: &Index, tool: &Ident, outcome: &ast::StubOutcome, out: &mut Diagnostics) {
    let (Some((decl, _)), ast::StubOutcome::Returns(value)) =
        (index.tools.get(tool.name.as_str()), outcome)
    else {
        return;
    };
    let Some(returns) = &decl.returns else { return };
    if let Err((span, expected)) = crate::types::fits(index, value, returns, 0) {
        out.push(
            Diagnostic::new(
                Code::MockMismatch,
                span,
                format!(
                    "the stub of `{}` does not fit its return type `{returns}`",
                    tool.name
                ),
            )
            .label(format!("expected {expected}"))
            .secondary(returns.span, "the declared return type")
            .help(
                "return a value of the tool's type, so that the test sees what the tool can give",
            ),
        );
    }
}

/// L0034 for `expect tool T called with {..}` naming an argument `T` does not have, or a value
/// that does not fit the parameter's type.
fn expected_arguments(index: &Index, tool: &Ident, args: &ast::Json, out: &mut Diagnostics) {
    let Some((decl, _)) = index.tools.get(tool.name.as_str()) else {
        return;
    };
    let ast::JsonKind::Object(pairs) = &args.kind else {
        out.push(impossible(
            args.span,
            format!("the arguments of `{}` are an object", tool.name),
            "not an object",
            "write them as `{ name: value, .. }`".into(),
        ));
        return;
    };
    for (key, value) in pairs {
        match decl.params.iter().find(|p| p.name.name == key.name) {
            None => {
                let names = decl.params.iter().map(|p| p.name.name.as_str());
                out.push(impossible(
                    key.span,
                    format!("tool `{}` has no parameter `{}`", tool.name, key.name),
                    "no call of the tool can carry this argument",
                    match did_you_mean(&key.name, names.clone()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "its parameters are {}",
                            names
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    },
                ));
            }
            Some(p) => {
                if let Err((span, expected)) = crate::types::fits(index, value, &p.ty, 0) {
                    out.push(impossible(
                        span,
                        format!(
                            "parameter `{}` of `{}` has type `{}`",
                            p.name.name, tool.name, p.ty
                        ),
                        "no call of the tool carries this value",
                        format!("expected {expected}"),
                    ));
                }
            }
        }
    }
}

fn expectation(index: &Index, e: &E, session_vars: &BTreeSet<&str>, out: &mut Diagnostics) {
    match e {
        E::Handoff { from, to, intent } => {
            let a = index.resolve(Namespace::Rung, from, "the sender of a handoff", out);
            let b = index.resolve(Namespace::Rung, to, "the receiver of a handoff", out);
            let i = intent
                .as_ref()
                .is_none_or(|i| index.resolve(Namespace::Intent, i, "a handoff's intent", out));
            if a && b && i {
                let edges = handoffs_of(index, &from.name);
                let exists = edges.iter().any(|(t, ei)| {
                    t == &to.name
                        && intent
                            .as_ref()
                            .is_none_or(|i| ei.as_deref() == Some(i.name.as_str()))
                });
                if !exists {
                    let listed: Vec<String> = edges
                        .iter()
                        .map(|(t, i)| match i {
                            Some(i) => format!("`{t}` (intent `{i}`)"),
                            None => format!("`{t}`"),
                        })
                        .collect();
                    out.push(impossible(
                        to.span,
                        format!(
                            "`{}` has no handoff to `{}`{}",
                            from.name,
                            to.name,
                            intent
                                .as_ref()
                                .map(|i| format!(" with intent `{}`", i.name))
                                .unwrap_or_default()
                        ),
                        "this route is impossible in the ladder",
                        if listed.is_empty() {
                            format!("`{}` hands off to no one", from.name)
                        } else {
                            format!("`{}` hands off to {}", from.name, listed.join(", "))
                        },
                    ));
                }
            }
        }
        E::Agent(name) => {
            index.resolve(Namespace::Rung, name, "an expected rung", out);
        }
        E::Escalation { from, to } => {
            // Both names are looked up (and so recorded for the editor) whatever the first says.
            let target = index.resolve(Namespace::Rung, to, "an escalation target", out);
            let source = from
                .as_ref()
                .is_none_or(|f| index.resolve(Namespace::Agent, f, "the escalating agent", out));
            let ok = target && source;
            if ok {
                let escalates = |a: &crate::index::AgentInfo| {
                    a.escalations.iter().any(|e| e.target.name == to.name)
                };
                let possible = match from {
                    Some(f) => index.agents.get(f.name.as_str()).is_some_and(escalates),
                    None => index.agents.values().any(escalates),
                };
                if !possible {
                    out.push(impossible(
                        to.span,
                        format!(
                            "no {}escalation to `{}` is declared",
                            from.as_ref()
                                .map(|f| format!("`{}` ", f.name))
                                .unwrap_or_default(),
                            to.name
                        ),
                        "this escalation cannot happen",
                        "declare `escalate -> ..` in the agent, or expect another route".into(),
                    ));
                }
            }
        }
        E::Human(Some(h)) => {
            if index.resolve(Namespace::Rung, h, "an expected human", out)
                && !matches!(index.rung(&h.name), Some(Rung::Human(_)))
            {
                out.push(impossible(
                    h.span,
                    format!("`{}` is not a human", h.name),
                    "expected a human endpoint here",
                    "name a `human`, or use `expect agent NAME`".into(),
                ));
            }
        }
        E::Human(None) | E::Ended => {}
        E::Reply {
            regex: true, text, ..
        } => {
            if let Err(e) = regex::Regex::new(&text.value) {
                out.push(
                    Diagnostic::new(Code::InvalidValue, text.span, "invalid regular expression")
                        .label(
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("invalid")
                                .to_string(),
                        )
                        .help(
                            "write a regular expression in Rust `regex` syntax, or use `contains`",
                        ),
                );
            }
        }
        E::Reply { .. } => {}
        E::Tool { tool, arguments } => {
            if index.resolve(Namespace::Tool, tool, "an expected tool", out) {
                if let Some(args) = arguments {
                    expected_arguments(index, tool, args, out);
                }
            }
        }
        E::Ceiling(name) => {
            if !CEILINGS.contains(&name.name.as_str()) {
                let mut d = Diagnostic::new(
                    Code::UnknownKey,
                    name.span,
                    format!("unknown ceiling `{}`", name.name),
                )
                .label("the runtime has no such ceiling");
                d = match did_you_mean(&name.name, CEILINGS.iter().copied()) {
                    Some(s) => d.suggest(s),
                    None => d.help(format!("ceilings are {}", CEILINGS.join(", "))),
                };
                out.push(d);
            }
        }
        E::Fallback { from, to } => {
            let source = index.resolve(Namespace::Agent, from, "a rung with a fallback", out);
            let target = index.resolve(Namespace::Rung, to, "a fallback", out);
            if source && target {
                let a = &index.agents[from.name.as_str()];
                let declared = a.fallback.is_some_and(|f| f.name == to.name)
                    || a.sla
                        .is_some_and(|(_, _, o)| o.is_some_and(|o| o.name == to.name));
                if !declared {
                    out.push(impossible(
                        to.span,
                        format!("`{}` does not fall back to `{}`", from.name, to.name),
                        "no such fallback is declared",
                        "declare `fallback -> ..` or `sla .. else -> ..` in the agent".into(),
                    ));
                }
            }
        }
        E::Var { name, .. } => {
            if !session_vars.contains(name.name.as_str()) {
                let mut d = impossible(
                    name.span,
                    format!("`{}` is not a session variable", name.name),
                    "no `vars` entry or `collect` declares it",
                    String::new(),
                );
                d.help = Some(match did_you_mean(&name.name, session_vars.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("declare it in the header's `vars {{ {}: string }}`, or `collect` it in a script", name.name),
                });
                out.push(d);
            }
        }
    }
}

fn name(i: &Ident) -> String {
    i.name.clone()
}

pub(crate) fn lower(index: &Index) -> Vec<TestCase> {
    index
        .tests
        .iter()
        .map(|t| TestCase {
            name: t.name.value.clone(),
            steps: t
                .steps
                .iter()
                .map(|s| match &s.kind {
                    TestStepKind::User(text) => TestStep::User {
                        text: text.value.clone(),
                    },
                    TestStepKind::Says { agent, text } => TestStep::Says {
                        agent: name(agent),
                        text: text.value.clone(),
                    },
                    TestStepKind::Calls {
                        agent,
                        function,
                        arguments,
                    } => TestStep::Calls {
                        agent: name(agent),
                        function: name(function),
                        arguments: arguments
                            .as_ref()
                            .map(ast::Json::to_value)
                            .unwrap_or_else(|| serde_json::json!({})),
                    },
                    TestStepKind::Stub { tool, outcome } => match outcome {
                        ast::StubOutcome::Returns(j) => TestStep::Stub {
                            tool: name(tool),
                            result: Some(j.to_value()),
                            error: None,
                        },
                        ast::StubOutcome::Fails(m) => TestStep::Stub {
                            tool: name(tool),
                            result: None,
                            error: Some(m.value.clone()),
                        },
                    },
                    TestStepKind::Expect(e) => TestStep::Expect {
                        expectation: lower_expectation(e),
                    },
                })
                .collect(),
        })
        .collect()
}

fn lower_expectation(e: &E) -> Expectation {
    match e {
        E::Handoff { from, to, intent } => Expectation::Handoff {
            from: name(from),
            to: name(to),
            intent: intent.as_ref().map(name),
        },
        E::Agent(n) => Expectation::Agent { name: name(n) },
        E::Escalation { from, to } => Expectation::Escalation {
            from: from.as_ref().map(name),
            to: name(to),
        },
        E::Human(h) => Expectation::Human {
            name: h.as_ref().map(name),
        },
        E::Reply {
            negated,
            regex,
            text,
        } => Expectation::Reply {
            negated: *negated,
            regex: *regex,
            text: text.value.clone(),
        },
        E::Tool { tool, arguments } => Expectation::Tool {
            tool: name(tool),
            arguments: arguments.as_ref().map(ast::Json::to_value),
        },
        E::Ceiling(n) => Expectation::Ceiling { name: name(n) },
        E::Fallback { from, to } => Expectation::Fallback {
            from: name(from),
            to: name(to),
        },
        E::Var {
            name: n, op, value, ..
        } => Expectation::Var {
            name: name(n),
            op: op.as_str().to_string(),
            value: match value {
                Operand::Number(x) => serde_json::json!(x),
                Operand::String(s) | Operand::Ident(s) => serde_json::json!(s),
                Operand::Bool(b) => serde_json::json!(b),
            },
        },
        E::Ended => Expectation::Ended,
    }
}
