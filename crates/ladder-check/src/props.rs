//! `key: value` blocks: the ladder header, `limits`, `budget`, models and humans. Unknown keys get
//! "did you mean" (L0007), values of the wrong kind L0008, zero or absurd numbers L0018.

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
use crate::index::Index;
use crate::program::{Limits, McpServer, McpTransport, Model};
use crate::suggest::did_you_mean;
use crate::vocabulary::{Expect, BUDGET, HUMAN, LIMITS, MCP, MODEL, ROUTING};
use ladder_syntax::ast::{HumanDecl, McpDecl, ModelDecl, Prop, ValueKind};
use ladder_syntax::Span;
use std::collections::BTreeMap;

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Checked {
    Number(f64),
    Text(String),
    List(Vec<String>),
}

impl Checked {
    fn number(&self) -> Option<f64> {
        match self {
            Checked::Number(n) => Some(*n),
            Checked::Text(_) | Checked::List(_) => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Checked::Text(t) => Some(t.clone()),
            Checked::Number(_) | Checked::List(_) => None,
        }
    }
}

/// Checks every prop of a block against `schema`; returns the valid values by key.
fn check_block(
    block: &str,
    props: &[Prop],
    schema: &[(&'static str, Expect)],
    out: &mut Diagnostics,
) -> BTreeMap<&'static str, (Checked, Span)> {
    let mut values: BTreeMap<&'static str, (Checked, Span)> = BTreeMap::new();
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for prop in props {
        let key = prop.key.name.as_str();
        if let Some(first) = seen.insert(key, prop.key.span) {
            out.report(Finding::Repeated {
                first,
                again: prop.key.span,
                what: format!("`{key}` in {block}"),
                keep: "keep one of them",
            });
            continue;
        }
        let Some((name, expect)) = schema.iter().find(|(k, _)| *k == key) else {
            out.report(Finding::UnknownKey {
                key: &prop.key,
                block,
                known: schema.iter().map(|(k, _)| *k).collect(),
                suggestion: did_you_mean(key, schema.iter().map(|(k, _)| *k)),
            });
            continue;
        };
        if let Some(v) = check_value(block, key, &prop.value.kind, prop.value.span, *expect, out) {
            values.insert(name, (v, prop.value.span));
        }
    }
    values
}

fn check_value(
    block: &str,
    key: &str,
    kind: &ValueKind,
    span: Span,
    expect: Expect,
    out: &mut Diagnostics,
) -> Option<Checked> {
    let wrong = |out: &mut Diagnostics| {
        out.report(Finding::WrongValue {
            at: span,
            block,
            key,
            expect,
            found: kind,
        });
        None
    };
    let range =
        |n: f64, min: f64, max: f64, unit: &str, out: &mut Diagnostics| -> Option<Checked> {
            if n.is_nan() || n < min || (n <= 0.0 && min > 0.0) {
                out.report(Finding::NotPositive {
                    at: span,
                    block,
                    key,
                    value: n,
                    min,
                    unit,
                });
                return None;
            }
            if n > max {
                out.report(Finding::TooLarge {
                    at: span,
                    block,
                    key,
                    value: n,
                    max,
                    unit,
                });
                return None;
            }
            Some(Checked::Number(n))
        };
    match (expect, kind) {
        (Expect::Count { min, max }, ValueKind::Number(n)) => {
            if n.fract() != 0.0 {
                return wrong(out);
            }
            range(*n, min, max, "", out)
        }
        (Expect::Duration { max }, ValueKind::Duration(s)) => {
            range(*s, f64::MIN_POSITIVE, max, "s", out)
        }
        (Expect::Money { max }, ValueKind::Money(m)) => {
            range(*m, f64::MIN_POSITIVE, max, " dollars", out)
        }
        (Expect::Price { max }, ValueKind::Price(p)) => range(*p, 0.0, max, " $/Mtok", out),
        (Expect::Number { min, max }, ValueKind::Number(n)) => range(*n, min, max, "", out),
        (Expect::String, ValueKind::String(s)) => Some(Checked::Text(s.clone())),
        (Expect::Env, ValueKind::Env(e)) => Some(Checked::Text(e.clone())),
        (Expect::Rung, ValueKind::Ident(s)) => Some(Checked::Text(s.clone())),
        (Expect::Rungs, ValueKind::List(items))
            if items.iter().all(|i| matches!(i.kind, ValueKind::Ident(_))) =>
        {
            let names: Vec<&str> = items
                .iter()
                .filter_map(|i| match &i.kind {
                    ValueKind::Ident(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            Some(Checked::Text(names.join(",")))
        }
        (Expect::Strings, ValueKind::List(items)) => list_of(items, |k| match k {
            ValueKind::String(s) => Some(s),
            _ => None,
        })
        .or_else(|| wrong(out)),
        (Expect::Envs, ValueKind::List(items)) => list_of(items, |k| match k {
            ValueKind::Env(s) => Some(s),
            _ => None,
        })
        .or_else(|| wrong(out)),
        (Expect::Choice(names), ValueKind::Ident(s) | ValueKind::String(s)) => {
            if names.contains(&s.as_str()) {
                Some(Checked::Text(s.clone()))
            } else {
                out.report(Finding::UnknownChoice {
                    at: span,
                    key,
                    value: s,
                    expect,
                    suggestion: did_you_mean(s, names.iter().copied()),
                });
                None
            }
        }
        _ => wrong(out),
    }
}

/// The texts of a list whose every element `text` accepts; `None` if one is of another kind.
fn list_of(
    items: &[ladder_syntax::ast::Value],
    text: impl Fn(&ValueKind) -> Option<&String>,
) -> Option<Checked> {
    items
        .iter()
        .map(|i| text(&i.kind).cloned())
        .collect::<Option<Vec<_>>>()
        .map(Checked::List)
}

/// Checks the `limits` and `budget` blocks (and unknown header blocks); returns them with defaults.
/// The header's budget, with where each value was written (for diagnostics; the program keeps
/// only the values). Reads as the program's budget.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    pub values: crate::program::Budget,
    pub spans: BudgetSpans,
}

impl std::ops::Deref for Budget {
    type Target = crate::program::Budget;

    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BudgetSpans {
    pub latency_p95: Option<Span>,
    pub cost_per_turn: Option<Span>,
    pub cost_per_session: Option<Span>,
}

/// The ladder header's blocks: `limits`, `budget` and `routing`.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub limits: Limits,
    pub budget: Budget,
    /// `routing { fuse: auto }` (the default): senders may route through pure routers and
    /// through receivers whose edge says `fuse`; `off`: never.
    pub fuse: bool,
}

pub(crate) fn header(index: &Index, out: &mut Diagnostics) -> Header {
    let mut limits = Limits::default();
    let mut budget = Budget::default();
    let mut fuse = true;
    let Some(ladder) = index.ladder else {
        return Header {
            limits,
            budget,
            fuse,
        };
    };
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for block in &ladder.blocks {
        let name = block.name.name.as_str();
        if let Some(first) = seen.insert(name, block.name.span) {
            out.report(Finding::Repeated {
                first,
                again: block.name.span,
                what: format!("`{name}`"),
                keep: "merge the two blocks into one",
            });
            continue;
        }
        match name {
            "limits" => {
                let v = check_block("limits", &block.props, LIMITS, out);
                let get = |k: &str, d: u32| {
                    v.get(k)
                        .and_then(|(c, _)| c.number())
                        .map(|n| n as u32)
                        .unwrap_or(d)
                };
                limits = Limits {
                    steps_per_turn: get("steps_per_turn", limits.steps_per_turn),
                    tool_calls_per_turn: get("tool_calls_per_turn", limits.tool_calls_per_turn),
                    handoffs_per_turn: get("handoffs_per_turn", limits.handoffs_per_turn),
                    escalation_depth: get("escalation_depth", limits.escalation_depth),
                    corrections_per_step: get("corrections_per_step", limits.corrections_per_step),
                    consult_depth: get("consult_depth", limits.consult_depth),
                    turns_per_session: v
                        .get("turns_per_session")
                        .and_then(|(c, _)| c.number())
                        .map(|n| n as u32),
                    turn_deadline_seconds: v
                        .get("turn_deadline")
                        .and_then(|(c, _)| c.number())
                        .unwrap_or(limits.turn_deadline_seconds),
                };
            }
            "budget" => {
                let v = check_block("budget", &block.props, BUDGET, out);
                let get = |k: &str| v.get(k).and_then(|(c, _)| c.number());
                let span = |k: &str| v.get(k).map(|(_, s)| *s);
                budget = Budget {
                    values: crate::program::Budget {
                        latency_p95_seconds: get("latency_p95"),
                        cost_per_turn: get("cost_per_turn"),
                        cost_per_session: get("cost_per_session"),
                        min_pass_rate: get("min_pass_rate"),
                    },
                    spans: BudgetSpans {
                        latency_p95: span("latency_p95"),
                        cost_per_turn: span("cost_per_turn"),
                        cost_per_session: span("cost_per_session"),
                    },
                };
            }
            "routing" => {
                let v = check_block("routing", &block.props, ROUTING, out);
                fuse = v.get("fuse").and_then(|(c, _)| c.text()).as_deref() != Some("off");
            }
            other => {
                out.report(Finding::UnknownHeaderBlock {
                    name: &block.name,
                    suggestion: did_you_mean(
                        other,
                        ["limits", "budget", "routing", "vars", "meta"],
                    ),
                });
            }
        }
    }
    Header {
        limits,
        budget,
        fuse,
    }
}

pub(crate) fn model(decl: &ModelDecl, out: &mut Diagnostics) -> Model {
    let v = check_block(
        &format!("model `{}`", decl.name.name),
        &decl.props,
        MODEL,
        out,
    );
    let text = |k: &str| v.get(k).and_then(|(c, _)| c.text());
    let number = |k: &str| v.get(k).and_then(|(c, _)| c.number());
    let present = |k: &str| decl.props.iter().any(|p| p.key.name == k);
    for required in ["provider", "name"] {
        if !present(required) {
            out.report(Finding::ModelLacks {
                model: &decl.name,
                required,
            });
        }
    }
    Model {
        provider: text("provider").unwrap_or_else(|| "openai".into()),
        name: text("name").unwrap_or_default(),
        input_per_mtok: number("input"),
        output_per_mtok: number("output"),
        cached_input_per_mtok: number("cached_input"),
        cache_write_per_mtok: number("cache_write"),
        max_input_tokens: number("max_input_tokens").map(|n| n as u64),
        max_output_tokens: number("max_output_tokens").map(|n| n as u64),
        temperature: number("temperature"),
        base_url: text("base_url"),
        api_key_env: text("api_key"),
        timeout_seconds: number("timeout"),
        strict_tool_schemas: text("tool_schemas").as_deref() == Some("strict"),
    }
}

pub(crate) fn human(decl: &HumanDecl, out: &mut Diagnostics) -> BTreeMap<String, String> {
    let v = check_block(
        &format!("human `{}`", decl.name.name),
        &decl.props,
        HUMAN,
        out,
    );
    v.into_iter()
        .map(|(k, (c, _))| {
            let text = match c {
                Checked::Number(n) => format!("{n}s"),
                Checked::Text(t) => t,
                Checked::List(l) => l.join(","),
            };
            (k.to_string(), text)
        })
        .collect()
}

/// Checks an `mcp` item: one transport, with the keys that belong to it.
pub(crate) fn mcp(decl: &McpDecl, out: &mut Diagnostics) -> Option<McpServer> {
    let server = decl.name.name.as_str();
    let v = check_block(&format!("MCP server `{server}`"), &decl.props, MCP, out);
    let span_of = |k: &str| {
        decl.props
            .iter()
            .find(|p| p.key.name == k)
            .map(|p| p.value.span)
    };
    let list = |k: &str| match v.get(k) {
        Some((Checked::List(l), _)) => Some(l.clone()),
        _ => None,
    };
    let bad = |k: &str, why: &'static str, out: &mut Diagnostics| {
        if let Some(at) = span_of(k) {
            out.report(Finding::McpBadValue { at, server, why });
        }
    };
    let transport = match (span_of("command"), span_of("url")) {
        (None, None) => {
            out.report(Finding::McpWithoutTransport { server: &decl.name });
            return None;
        }
        (Some(command), Some(url)) => {
            out.report(Finding::McpTwoTransports { command, url });
            return None;
        }
        (Some(_), None) => {
            if v.contains_key("auth") {
                bad(
                    "auth",
                    "`auth` is for a server at a `url`; a local process gets secrets through `env`",
                    out,
                );
            }
            let mut command = list("command")?;
            if command.is_empty() || command[0].trim().is_empty() {
                bad(
                    "command",
                    "the command is empty: name the program first, then its arguments",
                    out,
                );
                return None;
            }
            let program = command.remove(0);
            McpTransport::Stdio {
                program,
                args: command,
                env: list("env").unwrap_or_default(),
            }
        }
        (None, Some(_)) => {
            if v.contains_key("env") {
                bad("env", "`env` is passed to a local process; a server at a `url` takes `auth: env(NAME)`", out);
            }
            let url = v.get("url").and_then(|(c, _)| c.text())?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bad(
                    "url",
                    "the url must start with `http://` or `https://` (streamable HTTP)",
                    out,
                );
                return None;
            }
            McpTransport::Http {
                url,
                bearer_env: v.get("auth").and_then(|(c, _)| c.text()),
            }
        }
    };
    Some(McpServer {
        description: decl.description.as_ref().map(|d| d.value.clone()),
        transport,
        timeout_seconds: v.get("timeout").and_then(|(c, _)| c.number()),
    })
}

/// A duration as written in a ladder: `800ms`, `2s`.
pub(crate) fn seconds_text(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round())
    } else {
        format!("{s}s")
    }
}
