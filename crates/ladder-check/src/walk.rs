//! A syntactic walk that finds every name an item uses, without resolving anything.
//!
//! It is not the editor's resolver: the editor reads `Checked::references`, the names the
//! checker looked up. The walk serves two purposes only: items the checker reports but does not
//! analyse (a second definition of a name) still have their names recorded, and the resolver
//! test and the fuzz property hold the checker's table equal to this independent walk
//! (`fuzzing::reference_differences`).

use crate::symbols::{Reference, SymbolNamespace};
use ladder_syntax::ast::*;
use ladder_syntax::Span;

fn type_refs(t: &TypeExpr, out: &mut Vec<Reference>) {
    match &t.kind {
        TypeKind::Named(n) => r(out, n, SymbolNamespace::Type),
        TypeKind::List(inner) => type_refs(inner, out),
        TypeKind::Enum(_) => {}
    }
}

fn r(out: &mut Vec<Reference>, i: &Ident, namespace: SymbolNamespace) {
    out.push(Reference {
        name: i.name.clone(),
        namespace,
        span: i.span,
    });
}

/// The rung or tool a scripted model call names: `transfer_to_X`, `escalate_to_X`,
/// `consult_X`, `return_to_X` name the rung `X` (the span covers only `X`); any other name is a
/// tool's.
pub(crate) fn function_reference(function: &Ident) -> Reference {
    for prefix in ["transfer_to_", "escalate_to_", "consult_", "return_to_"] {
        if let Some(rung) = function.name.strip_prefix(prefix) {
            let start = function.span.start + prefix.len();
            return Reference {
                name: rung.to_string(),
                namespace: SymbolNamespace::Rung,
                span: Span::new(function.span.file, start, function.span.end),
            };
        }
    }
    Reference {
        name: function.name.clone(),
        namespace: SymbolNamespace::Tool,
        span: function.span,
    }
}

/// Every name a parsed file uses, in source order.
pub(crate) fn references(file: &File) -> Vec<Reference> {
    let mut refs = Vec::new();
    for item in &file.items {
        item_into(item, &mut refs);
    }
    refs
}

/// The names one item uses.
pub(crate) fn item_references(item: &Item) -> Vec<Reference> {
    let mut refs = Vec::new();
    item_into(item, &mut refs);
    refs
}

fn item_into(item: &Item, refs: &mut Vec<Reference>) {
    match &item.kind {
        ItemKind::Ladder(l) => {
            for e in &l.entries {
                r(refs, e, SymbolNamespace::Rung);
            }
            for v in &l.vars {
                type_refs(&v.ty, refs);
            }
        }
        ItemKind::Intent(i) => {
            for f in &i.fields {
                type_refs(&f.ty, refs);
            }
        }
        ItemKind::Type(t) => {
            for f in &t.fields {
                type_refs(&f.ty, refs);
            }
        }
        ItemKind::Tool(t) => {
            for p in &t.params {
                type_refs(&p.ty, refs);
            }
            if let Some(ret) = &t.returns {
                type_refs(ret, refs);
            }
            if let Some(who) = &t.approval {
                r(refs, who, SymbolNamespace::Rung);
            }
            for imp in &t.implementations {
                if let ToolImplKind::Mcp { server, .. } = &imp.kind {
                    r(refs, server, SymbolNamespace::Mcp);
                }
            }
        }
        ItemKind::Agent(a) => {
            for st in &a.stmts {
                match &st.kind {
                    AgentStmtKind::Model(m) => r(refs, m, SymbolNamespace::Model),
                    AgentStmtKind::Tools(t) => {
                        for i in t {
                            r(refs, i, SymbolNamespace::Tool);
                        }
                    }
                    AgentStmtKind::Accepts(t) => {
                        for i in t {
                            r(refs, i, SymbolNamespace::Intent);
                        }
                    }
                    AgentStmtKind::Handoff(h) => {
                        r(refs, &h.intent, SymbolNamespace::Intent);
                        r(refs, &h.target, SymbolNamespace::Rung);
                    }
                    AgentStmtKind::Escalate(e) => r(refs, &e.target, SymbolNamespace::Rung),
                    AgentStmtKind::Consult(c) => r(refs, c, SymbolNamespace::Rung),
                    AgentStmtKind::Sla { otherwise, .. } => {
                        if let Some(o) = otherwise {
                            r(refs, o, SymbolNamespace::Rung);
                        }
                    }
                    AgentStmtKind::Fallback(f) => r(refs, f, SymbolNamespace::Rung),
                    AgentStmtKind::Router
                    | AgentStmtKind::Owns(_)
                    | AgentStmtKind::Return
                    | AgentStmtKind::Prompt(_)
                    | AgentStmtKind::Unknown(_) => {}
                }
            }
        }
        ItemKind::Script(sc) => {
            for st in &sc.stmts {
                match &st.kind {
                    ScriptStmtKind::Collect { ty, .. } => type_refs(ty, refs),
                    ScriptStmtKind::Handoff(t) => r(refs, t, SymbolNamespace::Rung),
                    ScriptStmtKind::Say(_) | ScriptStmtKind::End | ScriptStmtKind::Unknown(_) => {}
                }
            }
        }
        ItemKind::Test(t) => {
            for st in &t.steps {
                match &st.kind {
                    TestStepKind::Says { agent, .. } => r(refs, agent, SymbolNamespace::Rung),
                    TestStepKind::Calls {
                        agent, function, ..
                    } => {
                        r(refs, agent, SymbolNamespace::Rung);
                        // `transfer_to_billing` names the rung `billing` (or calls a tool), so
                        // that a rename of the rung or tool renames the call.
                        refs.push(function_reference(function));
                    }
                    TestStepKind::Stub { tool, .. } => r(refs, tool, SymbolNamespace::Tool),
                    TestStepKind::Expect(e) => match e {
                        Expectation::Handoff { from, to, intent } => {
                            r(refs, from, SymbolNamespace::Rung);
                            r(refs, to, SymbolNamespace::Rung);
                            if let Some(i) = intent {
                                r(refs, i, SymbolNamespace::Intent);
                            }
                        }
                        Expectation::Agent(a) | Expectation::Human(Some(a)) => {
                            r(refs, a, SymbolNamespace::Rung)
                        }
                        Expectation::Escalation { from, to } => {
                            if let Some(f) = from {
                                r(refs, f, SymbolNamespace::Rung);
                            }
                            r(refs, to, SymbolNamespace::Rung);
                        }
                        Expectation::Fallback { from, to } => {
                            r(refs, from, SymbolNamespace::Rung);
                            r(refs, to, SymbolNamespace::Rung);
                        }
                        Expectation::Tool { tool, .. } => r(refs, tool, SymbolNamespace::Tool),
                        _ => {}
                    },
                    TestStepKind::User(_) => {}
                }
            }
        }
        ItemKind::Human(h) => {
            let edges = crate::graph::HumanEdges::of(h);
            for target in edges.release.iter().chain(&edges.fallback) {
                r(refs, target, SymbolNamespace::Rung);
            }
        }
        ItemKind::Model(_) | ItemKind::Mcp(_) | ItemKind::Use(_) | ItemKind::Meta(_) => {}
    }
}
