//! Lowering the checked AST to a [`Program`]. Runs only when there is no error, so every name
//! resolves; anything that still fails to resolve yields `None` rather than a panic.

use crate::index::Index;
use crate::program::*;
use crate::templates::policy;
use crate::types::{fields_schema, literal_value, schema};
use ladder_syntax::ast::{
    self, Binding, File, HeaderValue as AstHeader, Operand, ScriptStmtKind, ToolImplKind,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) fn lower(
    index: &Index,
    files: &[&File],
    limits: Limits,
    budget: Budget,
    models: BTreeMap<String, Model>,
    fuse: bool,
) -> Option<Program> {
    let ladder = index.ladder?;
    let mut sink = crate::diagnostics::Diagnostics::default();
    let vars = ladder
        .vars
        .iter()
        .map(|v| {
            let var = Var {
                schema: schema(index, &v.ty),
                default: v.default.as_ref().map(literal_value),
            };
            (v.name.name.clone(), var)
        })
        .collect();
    let intents = index
        .intents
        .iter()
        .map(|(name, i)| {
            let intent = Intent {
                description: i.description.as_ref().map(|d| d.value.clone()),
                examples: i.examples.iter().map(|e| e.value.clone()).collect(),
                payload: fields_schema(index, &i.fields),
            };
            (name.to_string(), intent)
        })
        .collect();
    let types = index
        .types
        .iter()
        .map(|(name, t)| (name.to_string(), fields_schema(index, &t.fields)))
        .collect();
    let tools = index
        .tools
        .iter()
        .map(|(name, (t, docs))| Some((name.to_string(), tool(index, t, docs)?)))
        .collect::<Option<_>>()?;
    let agents = index
        .agents
        .iter()
        .map(|(name, a)| {
            let agent = Agent {
                description: (!a.docs.is_empty()).then(|| a.docs.join("\n")),
                model: a.model?.name.clone(),
                prompt: a.prompt?.text.clone(),
                router: a.router,
                returns: a.returns.is_some(),
                owns_turn: a.owns.is_some_and(|o| o.name == "turn"),
                tools: a.tools.iter().map(|t| t.name.clone()).collect(),
                accepts: a
                    .accepts
                    .as_ref()
                    .map(|l| l.iter().map(|i| i.name.clone()).collect()),
                handoffs: a
                    .handoffs
                    .iter()
                    .map(|h| HandoffEdge {
                        intent: h.intent.name.clone(),
                        target: h.target.name.clone(),
                        context: policy(h.context.as_ref(), &mut sink),
                        fuse: if fuse { fusable(index, h) } else { Fuse::Off },
                    })
                    .collect(),
                escalations: a
                    .escalations
                    .iter()
                    .map(|e| EscalationEdge {
                        target: e.target.name.clone(),
                        condition: e.condition.as_ref().map(condition),
                    })
                    .collect(),
                consults: a.consults.iter().map(|c| c.name.clone()).collect(),
                sla: a.sla.map(|(seconds, _, otherwise)| Sla {
                    seconds,
                    otherwise: otherwise.map(|o| o.name.clone()),
                }),
                fallback: a.fallback.map(|f| f.name.clone()),
            };
            Some((name.to_string(), agent))
        })
        .collect::<Option<_>>()?;
    let humans = index
        .humans
        .iter()
        .map(|(name, h)| {
            let properties = crate::props::human(h, &mut sink);
            let get = |k: &str| properties.get(k).cloned();
            let human = Human {
                description: h.description.as_ref().map(|d| d.value.clone()),
                queue: get("queue").unwrap_or_else(|| name.to_string()),
                sla_seconds: get("sla")
                    .and_then(|s| s.strip_suffix('s').and_then(|n| n.parse().ok())),
                fallback: get("fallback"),
                handover: get("handover"),
                release: get("release")
                    .map(|r| r.split(',').map(String::from).collect())
                    .unwrap_or_default(),
                notify: get("notify"),
                notify_secret: get("notify_secret"),
                properties,
            };
            (name.to_string(), human)
        })
        .collect();
    let scripts = index
        .scripts
        .iter()
        .map(|(name, s)| {
            let steps = s
                .stmts
                .iter()
                .filter_map(|st| match &st.kind {
                    ScriptStmtKind::Say(p) => Some(ScriptStep::Say {
                        text: p.text.clone(),
                    }),
                    ScriptStmtKind::Collect { name, ty, question } => Some(ScriptStep::Collect {
                        var: name.name.clone(),
                        schema: schema(index, ty),
                        question: question.as_ref().map(|q| q.value.clone()),
                    }),
                    ScriptStmtKind::Handoff(t) => Some(ScriptStep::Handoff {
                        target: t.name.clone(),
                    }),
                    ScriptStmtKind::End => Some(ScriptStep::End),
                    ScriptStmtKind::Unknown(_) => None,
                })
                .collect();
            (name.to_string(), Script { steps })
        })
        .collect();
    let mcp_servers = index
        .mcps
        .iter()
        .map(|(name, m)| Some((name.to_string(), crate::props::mcp(m, &mut sink)?)))
        .collect::<Option<_>>()?;
    let version = files
        .first()
        .and_then(|f| f.version.as_ref())
        .map(|v| v.number)
        .unwrap_or(crate::LANGUAGE_VERSION);
    let mut meta: Vec<String> = index.meta.iter().map(|m| m.raw.clone()).collect();
    meta.extend(ladder.meta.iter().map(|m| m.raw.clone()));
    Some(Program {
        version,
        name: ladder.name.name.clone(),
        entry: ladder.entries.first()?.name.clone(),
        limits,
        budget,
        vars,
        models,
        intents,
        types,
        tools,
        agents,
        humans,
        scripts,
        mcp_servers,
        meta,
        tests: crate::scenarios::lower(index),
    })
}

fn tool(index: &Index, t: &ast::ToolDecl, docs: &[String]) -> Option<Tool> {
    let model_params: Vec<ast::Field> = t
        .params
        .iter()
        .filter(|p| p.binding.is_none())
        .map(|p| ast::Field {
            docs: Vec::new(),
            name: p.name.clone(),
            ty: p.ty.clone(),
        })
        .collect();
    let bound = t
        .params
        .iter()
        .filter_map(|p| {
            let b = match p.binding.as_ref()? {
                Binding::Env(e) => BoundParam::Env {
                    name: e.name.clone(),
                },
                Binding::Session(s) => BoundParam::Session {
                    var: s.name.clone(),
                },
                Binding::Literal(l) => BoundParam::Literal {
                    value: literal_value(l),
                },
            };
            Some((p.name.name.clone(), b))
        })
        .collect();
    let implementation = match &t.implementations.first()?.kind {
        ToolImplKind::Http {
            method,
            url,
            bearer_env,
            headers,
            body,
        } => ToolImpl::Http {
            method: method.clone(),
            url: url.value.clone(),
            bearer_env: bearer_env.as_ref().map(|e| e.name.clone()),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        AstHeader::Env(e) => HeaderValue::Env {
                            name: e.name.clone(),
                        },
                        AstHeader::Literal(s) => HeaderValue::Literal {
                            value: s.value.clone(),
                        },
                    };
                    (k.value.clone(), v)
                })
                .collect(),
            body: body.as_ref().map(|b| b.to_value()),
        },
        ToolImplKind::Exec { program, args } => ToolImpl::Exec {
            program: program.value.clone(),
            args: args.iter().map(|a| a.value.clone()).collect(),
        },
        ToolImplKind::Mock(v) => ToolImpl::Mock {
            result: v.to_value(),
        },
        ToolImplKind::Host(name) => ToolImpl::Host {
            name: name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_else(|| t.name.name.clone()),
        },
        ToolImplKind::Mcp { server, remote } => ToolImpl::Mcp {
            server: server.name.clone(),
            tool: remote
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_else(|| t.name.name.clone()),
        },
    };
    let mut description = t.description.as_ref().map(|d| d.value.clone());
    if description.is_none() && !docs.is_empty() {
        description = Some(docs.join("\n"));
    }
    Some(Tool {
        description,
        parameters: fields_schema(index, &model_params),
        bound,
        returns: t.returns.as_ref().map(|r| schema(index, r)),
        implementation,
        timeout_seconds: t.timeout.map(|(s, _)| s),
        retries: t.retries.map(|(r, _)| r as u32).unwrap_or(0),
        approval: t.approval.as_ref().map(|a| a.name.clone()),
    })
}

fn condition(c: &ast::Condition) -> Condition {
    let cmp = |c: &ast::Comparison| Comparison {
        signal: c.signal.name.clone(),
        op: c.op.as_str().to_string(),
        value: match &c.operand {
            Operand::Number(n) => json!(n),
            Operand::String(s) => Value::String(s.clone()),
            Operand::Bool(b) => Value::Bool(*b),
            Operand::Ident(i) => Value::String(i.clone()),
        },
    };
    Condition {
        first: cmp(&c.first),
        rest: c
            .rest
            .iter()
            .map(|(op, c)| {
                let op = match op {
                    ast::LogicOp::And => Logic::And,
                    ast::LogicOp::Or => Logic::Or,
                };
                (op, cmp(c))
            })
            .collect(),
    }
}

/// Whether a sender may route straight through the receiver of `h` to the receiver's own handoff
/// targets (docs/runtime.md, "Fused routing"): by default through a pure router (`router`, no
/// tools, no consults: its turn has no effect but its choice), through any agent that hands off
/// when the edge says `fuse`, never when it says `no_fuse`.
pub(crate) fn fusable(index: &Index, h: &ladder_syntax::ast::Handoff) -> Fuse {
    let Some(crate::index::Rung::Agent(target)) = index.rung(&h.target.name) else {
        return Fuse::Off;
    };
    let pure = target.router && target.tools.is_empty() && target.consults.is_empty();
    match h.fuse {
        _ if !hands_off_onward(index, &h.target.name) => Fuse::Off,
        Some((true, _)) => Fuse::Through,
        Some((false, _)) => Fuse::Off,
        None if pure => Fuse::Router,
        None => Fuse::Off,
    }
}

/// Whether the rung `name` is an agent with handoffs of its own: the only kind a sender can route
/// through (`fuse` to any other is L0008).
pub(crate) fn hands_off_onward(index: &Index, name: &str) -> bool {
    matches!(index.rung(name), Some(crate::index::Rung::Agent(a)) if !a.handoffs.is_empty())
}
