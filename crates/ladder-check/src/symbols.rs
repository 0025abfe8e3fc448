//! The tables editors navigate: the definitions of a file (from its items) and the references
//! the checker resolved (`Checked::references`), for go to definition, find references, rename,
//! hover, document symbols and completion. Hover text is rendered on request, from the item.

use ladder_syntax::ast::*;
use ladder_syntax::Span;
use serde::Serialize;

/// What a name refers to. Agents, humans and scripts share the rung namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolNamespace {
    /// Agents, humans and scripts.
    Rung,
    /// Tools.
    Tool,
    /// Intents.
    Intent,
    /// Models.
    Model,
    /// Types.
    Type,
    /// MCP servers.
    Mcp,
}

/// What a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// `agent`
    Agent,
    /// `human`
    Human,
    /// `script`
    Script,
    /// `tool`
    Tool,
    /// `intent`
    Intent,
    /// `model`
    Model,
    /// `type`
    Type,
    /// `mcp`
    Mcp,
}

impl SymbolKind {
    /// The namespace the name lives in.
    pub fn namespace(self) -> SymbolNamespace {
        match self {
            SymbolKind::Agent | SymbolKind::Human | SymbolKind::Script => SymbolNamespace::Rung,
            SymbolKind::Tool => SymbolNamespace::Tool,
            SymbolKind::Intent => SymbolNamespace::Intent,
            SymbolKind::Model => SymbolNamespace::Model,
            SymbolKind::Type => SymbolNamespace::Type,
            SymbolKind::Mcp => SymbolNamespace::Mcp,
        }
    }
}

/// A definition: the name's span and the whole item's span; [`hover`] renders its description.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    /// The defined name.
    pub name: String,
    /// What it defines.
    pub kind: SymbolKind,
    /// The name where it is defined.
    pub name_span: Span,
    /// The whole item.
    pub item_span: Span,
}

/// A use of a name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    /// The name used.
    pub name: String,
    /// The namespace it is looked up in.
    pub namespace: SymbolNamespace,
    /// Where it is used.
    pub span: Span,
}

/// The definitions and references of one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Symbols {
    /// Every definition, in source order.
    pub definitions: Vec<Definition>,
    /// Every reference, in source order.
    pub references: Vec<Reference>,
}

impl Symbols {
    /// The definition or reference under a byte offset, as (name, namespace).
    pub fn at(&self, offset: usize) -> Option<(&str, SymbolNamespace)> {
        let inside = |s: &Span| s.start <= offset && offset <= s.end;
        if let Some(d) = self.definitions.iter().find(|d| inside(&d.name_span)) {
            return Some((&d.name, d.kind.namespace()));
        }
        self.references
            .iter()
            .find(|r| inside(&r.span))
            .map(|r| (r.name.as_str(), r.namespace))
    }

    /// The definition of `name` in `namespace`, if this file has it.
    pub fn definition(&self, name: &str, namespace: SymbolNamespace) -> Option<&Definition> {
        self.definitions
            .iter()
            .find(|d| d.name == name && d.kind.namespace() == namespace)
    }

    /// The references to `name` in `namespace`.
    pub fn references_to<'a>(
        &'a self,
        name: &'a str,
        namespace: SymbolNamespace,
    ) -> impl Iterator<Item = &'a Reference> + 'a {
        self.references
            .iter()
            .filter(move |r| r.name == name && r.namespace == namespace)
    }

    /// The definitions in `namespace` (for completion).
    pub fn names(&self, namespace: SymbolNamespace) -> impl Iterator<Item = &Definition> + '_ {
        self.definitions
            .iter()
            .filter(move |d| d.kind.namespace() == namespace)
    }
}

fn type_text(t: &TypeExpr) -> String {
    t.to_string()
}

/// `- key: value`, one per property, for hover.
fn prop_lines(props: &[Prop]) -> Vec<String> {
    props
        .iter()
        .map(|p| format!("- {}: {}", p.key.name, value_text(&p.value.kind)))
        .collect()
}

fn value_text(v: &ValueKind) -> String {
    match v {
        ValueKind::Price(p) => format!("${p}/Mtok"),
        ValueKind::Money(m) => format!("${m}"),
        ValueKind::Duration(d) => format!("{d}s"),
        ValueKind::Number(n) => n.to_string(),
        ValueKind::String(s) => format!("\"{s}\""),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Env(e) => format!("env({e})"),
        ValueKind::Ident(i) => i.clone(),
        ValueKind::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| value_text(&i.kind))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn docs(d: &[String]) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", d.join("\n"))
    }
}

/// What a broken item's keyword defines.
fn broken_kind(keyword: &str) -> Option<SymbolKind> {
    Some(match keyword {
        "agent" => SymbolKind::Agent,
        "human" => SymbolKind::Human,
        "script" => SymbolKind::Script,
        "tool" => SymbolKind::Tool,
        "intent" => SymbolKind::Intent,
        "model" => SymbolKind::Model,
        "type" => SymbolKind::Type,
        "mcp" => SymbolKind::Mcp,
        _ => return None,
    })
}

/// Every definition in a parsed file, in source order. Items with a syntax error define their
/// names all the same (completion, navigation to them), from what their first line says.
pub fn definitions(file: &File) -> Vec<Definition> {
    let mut defs = Vec::new();
    for item in &file.items {
        let (name, kind) = match &item.kind {
            ItemKind::Model(m) => (&m.name, SymbolKind::Model),
            ItemKind::Intent(i) => (&i.name, SymbolKind::Intent),
            ItemKind::Type(t) => (&t.name, SymbolKind::Type),
            ItemKind::Tool(t) => (&t.name, SymbolKind::Tool),
            ItemKind::Agent(a) => (&a.name, SymbolKind::Agent),
            ItemKind::Human(h) => (&h.name, SymbolKind::Human),
            ItemKind::Script(s) => (&s.name, SymbolKind::Script),
            ItemKind::Mcp(m) => (&m.name, SymbolKind::Mcp),
            ItemKind::Ladder(_) | ItemKind::Test(_) | ItemKind::Use(_) | ItemKind::Meta(_) => {
                continue
            }
        };
        defs.push(Definition {
            name: name.name.clone(),
            kind,
            name_span: name.span,
            item_span: item.span,
        });
    }
    for b in &file.broken {
        if let (Some(kind), Some(name)) = (broken_kind(&b.keyword), &b.name) {
            defs.push(Definition {
                name: name.name.clone(),
                kind,
                name_span: name.span,
                item_span: b.span,
            });
        }
    }
    defs.sort_by_key(|d| d.item_span.start);
    defs
}

/// Markdown for hover over a definition of `file`: the signature and the doc comments.
pub fn hover(file: &File, definition: &Definition) -> String {
    let Some(item) = file.items.iter().find(|i| i.span == definition.item_span) else {
        let keyword = file
            .broken
            .iter()
            .find(|b| b.span == definition.item_span)
            .map_or("item", |b| b.keyword.as_str());
        return format!(
            "```ladder\n{keyword} {}\n```\n(this {keyword} has a syntax error)",
            definition.name
        );
    };
    match &item.kind {
        ItemKind::Model(m) => {
            let props = prop_lines(&m.props);
            format!(
                "```ladder\nmodel {}\n```\n{}{}",
                m.name.name,
                props.join("\n"),
                docs(&item.docs)
            )
        }
        ItemKind::Intent(i) => {
            let payload: Vec<String> = i
                .fields
                .iter()
                .map(|f| format!("- `{}: {}`", f.name.name, type_text(&f.ty)))
                .collect();
            let mut hover = format!(
                "```ladder\nintent {}\n```\n{}",
                i.name.name,
                i.description
                    .as_ref()
                    .map(|d| d.value.as_str())
                    .unwrap_or("")
            );
            if !payload.is_empty() {
                hover.push_str(&format!("\n\npayload:\n{}", payload.join("\n")));
            }
            if !i.examples.is_empty() {
                hover.push_str(&format!(
                    "\n\nexamples: {}",
                    i.examples
                        .iter()
                        .map(|e| format!("\"{}\"", e.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            hover + &docs(&item.docs)
        }
        ItemKind::Type(t) => {
            let fields: Vec<String> = t
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name.name, type_text(&f.ty)))
                .collect();
            format!(
                "```ladder\ntype {} {{ {} }}\n```{}",
                t.name.name,
                fields.join(", "),
                docs(&item.docs)
            )
        }
        ItemKind::Tool(t) => {
            let params: Vec<String> = t
                .params
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}{}",
                        p.name.name,
                        type_text(&p.ty),
                        if p.binding.is_some() { " (bound)" } else { "" }
                    )
                })
                .collect();
            let ret = t
                .returns
                .as_ref()
                .map(|r| format!(" -> {}", type_text(r)))
                .unwrap_or_default();
            let how = match t.implementations.first().map(|i| &i.kind) {
                Some(ToolImplKind::Http { method, url, .. }) => {
                    format!("http {method} {}", url.value)
                }
                Some(ToolImplKind::Exec { program, .. }) => format!("exec {}", program.value),
                Some(ToolImplKind::Mock(_)) => "mock".into(),
                Some(ToolImplKind::Host(_)) => "host".into(),
                Some(ToolImplKind::Mcp { server, remote }) => match remote {
                    Some(r) => format!("`{}` on MCP server `{}`", r.value, server.name),
                    None => format!("MCP server `{}`", server.name),
                },
                None => "no implementation".into(),
            };
            let description = t
                .description
                .as_ref()
                .map(|d| d.value.clone())
                .unwrap_or_default();
            let how = match &t.approval {
                Some(who) => format!("{how}, approved by `{}`", who.name),
                None => how,
            };
            format!(
                "```ladder\ntool {}({}){ret}\n```\n{description}\n\n*{how}*{}",
                t.name.name,
                params.join(", "),
                docs(&item.docs)
            )
        }
        ItemKind::Agent(a) => {
            let list = |names: &[Ident]| {
                names
                    .iter()
                    .map(|i| format!("`{}`", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let lines: Vec<String> = a
                .stmts
                .iter()
                .filter_map(|st| {
                    Some(match &st.kind {
                        AgentStmtKind::Model(m) => format!("- model `{}`", m.name),
                        AgentStmtKind::Tools(t) => format!("- tools: {}", list(t)),
                        AgentStmtKind::Accepts(t) => format!("- accepts: {}", list(t)),
                        AgentStmtKind::Handoff(h) => {
                            format!("- handoff `{}` -> `{}`", h.intent.name, h.target.name)
                        }
                        AgentStmtKind::Escalate(e) => format!(
                            "- escalate -> `{}`{}",
                            e.target.name,
                            if e.condition.is_some() {
                                " (guarded)"
                            } else {
                                ""
                            }
                        ),
                        AgentStmtKind::Consult(c) => format!("- consult `{}`", c.name),
                        AgentStmtKind::Sla {
                            otherwise, seconds, ..
                        } => format!(
                            "- sla {seconds}s{}",
                            otherwise
                                .as_ref()
                                .map(|o| format!(" else -> `{}`", o.name))
                                .unwrap_or_default()
                        ),
                        AgentStmtKind::Fallback(f) => format!("- fallback -> `{}`", f.name),
                        AgentStmtKind::Router => "- router (never replies itself)".into(),
                        AgentStmtKind::Owns(o) => format!("- owns {}", o.name),
                        AgentStmtKind::Return => {
                            "- may return the conversation to whoever handed it over".into()
                        }
                        AgentStmtKind::Prompt(_) | AgentStmtKind::Unknown(_) => return None,
                    })
                })
                .collect();
            format!(
                "```ladder\nagent {}\n```\n{}{}",
                a.name.name,
                lines.join("\n"),
                docs(&item.docs)
            )
        }
        ItemKind::Mcp(m) => {
            let props = prop_lines(&m.props);
            format!(
                "```ladder\nmcp {}\n```\n{}\n\n{}{}",
                m.name.name,
                m.description
                    .as_ref()
                    .map(|d| d.value.as_str())
                    .unwrap_or("An MCP server."),
                props.join("\n"),
                docs(&item.docs)
            )
        }
        ItemKind::Human(h) => {
            let props = prop_lines(&h.props);
            format!(
                "```ladder\nhuman {}\n```\n{}{}{}",
                h.name.name,
                h.description
                    .as_ref()
                    .map(|d| d.value.as_str())
                    .unwrap_or(""),
                if props.is_empty() {
                    String::new()
                } else {
                    format!("\n\n{}", props.join("\n"))
                },
                docs(&item.docs)
            )
        }
        ItemKind::Script(sc) => {
            let steps: Vec<String> = sc
                .stmts
                .iter()
                .filter_map(|st| {
                    Some(match &st.kind {
                        ScriptStmtKind::Say(p) => format!("- say \"{}\"", p.text),
                        ScriptStmtKind::Collect { name, ty, .. } => {
                            format!("- collect `{}: {}`", name.name, type_text(ty))
                        }
                        ScriptStmtKind::Handoff(t) => format!("- handoff `{}`", t.name),
                        ScriptStmtKind::End => "- end".into(),
                        ScriptStmtKind::Unknown(_) => return None,
                    })
                })
                .collect();
            format!(
                "```ladder\nscript {}\n```\n{}{}",
                sc.name.name,
                steps.join("\n"),
                docs(&item.docs)
            )
        }
        ItemKind::Ladder(_) | ItemKind::Test(_) | ItemKind::Use(_) | ItemKind::Meta(_) => {
            String::new()
        }
    }
}
