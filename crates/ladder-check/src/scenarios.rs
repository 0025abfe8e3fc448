//! Scenario tests: every name a test mentions must exist, and every route it expects must be
//! possible in the graph (L0034); lowering to [`TestCase`]s.

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
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
            out.report(Finding::DuplicateTest {
                name: &test.name,
                first,
            });
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
                        out.report(Finding::ExpectationBeforeUser { at: step.span });
                    }
                    expectation(index, e, session_vars, out);
                }
            }
        }
        if !seen_user {
            out.report(Finding::NoUserTurn { name: &test.name });
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
    let suggestion = did_you_mean(&function.name, functions.iter().map(String::as_str));
    out.report(Finding::UnofferedCall {
        agent,
        function,
        by_intent,
        suggestion,
        offered: &functions,
    });
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
        out.report(Finding::StubMisfit {
            at: span,
            tool,
            returns,
            expected,
        });
    }
}

/// L0034 for `expect tool T called with {..}` naming an argument `T` does not have, or a value
/// that does not fit the parameter's type.
fn expected_arguments(index: &Index, tool: &Ident, args: &ast::Json, out: &mut Diagnostics) {
    let Some((decl, _)) = index.tools.get(tool.name.as_str()) else {
        return;
    };
    let ast::JsonKind::Object(pairs) = &args.kind else {
        out.report(Finding::ArgumentsNotObject {
            at: args.span,
            tool,
        });
        return;
    };
    for (key, value) in pairs {
        match decl.params.iter().find(|p| p.name.name == key.name) {
            None => {
                let names = decl.params.iter().map(|p| p.name.name.as_str());
                out.report(Finding::NoSuchArgument {
                    key,
                    tool,
                    suggestion: did_you_mean(&key.name, names.clone()),
                    params: names.collect(),
                });
            }
            Some(p) => {
                if let Err((span, expected)) = crate::types::fits(index, value, &p.ty, 0) {
                    out.report(Finding::ArgumentMisfit {
                        at: span,
                        param: &p.name,
                        tool,
                        ty: &p.ty,
                        expected,
                    });
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
                    out.report(Finding::NoSuchHandoff {
                        from,
                        to,
                        intent: intent.as_ref(),
                        edges: &edges,
                    });
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
                    out.report(Finding::NoSuchEscalation {
                        from: from.as_ref(),
                        to,
                    });
                }
            }
        }
        E::Human(Some(h)) => {
            if index.resolve(Namespace::Rung, h, "an expected human", out)
                && !matches!(index.rung(&h.name), Some(Rung::Human(_)))
            {
                out.report(Finding::NotAHuman { name: h });
            }
        }
        E::Human(None) | E::Ended => {}
        E::Reply {
            regex: true, text, ..
        } => {
            if let Err(e) = regex::Regex::new(&text.value) {
                out.report(Finding::BadRegex {
                    at: text.span,
                    error: e.to_string(),
                });
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
                out.report(Finding::UnknownCeiling {
                    name,
                    suggestion: did_you_mean(&name.name, CEILINGS.iter().copied()),
                });
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
                    out.report(Finding::NoSuchFallback { from, to });
                }
            }
        }
        E::Var { name, .. } => {
            if !session_vars.contains(name.name.as_str()) {
                out.report(Finding::NotASessionVariable {
                    name,
                    suggestion: did_you_mean(&name.name, session_vars.iter().copied()),
                });
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
