//! Definitions and references of one file, for editors: go to definition, find references,
//! hover, document symbols and completion.

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
        }
    }
}

/// A definition: the name's span, the whole item's span, and a Markdown description for hover.
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
    /// Markdown for hover: the signature and the doc comments.
    pub hover: String,
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

fn type_refs(t: &TypeExpr, out: &mut Vec<Reference>) {
    match &t.kind {
        TypeKind::Named(n) => out.push(Reference {
            name: n.name.clone(),
            namespace: SymbolNamespace::Type,
            span: n.span,
        }),
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
/// `consult_X`, `return_to_X` name the rung `X` (the span covers only `X`); any other name is a tool's.
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

/// The references in one item: for an item the checker does not analyse (a second definition
/// of a name), so that the editor still finds and renames what it names.
pub(crate) fn item_references(item: &Item) -> Vec<Reference> {
    let file = File {
        span: item.span,
        version: None,
        attrs: Vec::new(),
        items: vec![item.clone()],
        broken: Vec::new(),
    };
    symbols(&file).references
}

/// Every definition and reference in a parsed file.
pub fn symbols(file: &File) -> Symbols {
    let mut s = Symbols::default();
    let refs = &mut s.references;
    let mut defs = Vec::new();
    for item in &file.items {
        let mut def = |name: &Ident, kind: SymbolKind, hover: String| {
            defs.push(Definition {
                name: name.name.clone(),
                kind,
                name_span: name.span,
                item_span: item.span,
                hover,
            });
        };
        match &item.kind {
            ItemKind::Ladder(l) => {
                for e in &l.entries {
                    r(refs, e, SymbolNamespace::Rung);
                }
                for v in &l.vars {
                    type_refs(&v.ty, refs);
                }
            }
            ItemKind::Model(m) => {
                let props: Vec<String> = m
                    .props
                    .iter()
                    .map(|p| format!("- {}: {}", p.key.name, value_text(&p.value.kind)))
                    .collect();
                def(
                    &m.name,
                    SymbolKind::Model,
                    format!(
                        "```ladder\nmodel {}\n```\n{}{}",
                        m.name.name,
                        props.join("\n"),
                        docs(&item.docs)
                    ),
                );
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
                def(&i.name, SymbolKind::Intent, hover + &docs(&item.docs));
                for f in &i.fields {
                    type_refs(&f.ty, refs);
                }
            }
            ItemKind::Type(t) => {
                let fields: Vec<String> = t
                    .fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name.name, type_text(&f.ty)))
                    .collect();
                def(
                    &t.name,
                    SymbolKind::Type,
                    format!(
                        "```ladder\ntype {} {{ {} }}\n```{}",
                        t.name.name,
                        fields.join(", "),
                        docs(&item.docs)
                    ),
                );
                for f in &t.fields {
                    type_refs(&f.ty, refs);
                }
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
                    None => "no implementation".into(),
                };
                let description = t
                    .description
                    .as_ref()
                    .map(|d| d.value.clone())
                    .unwrap_or_default();
                def(
                    &t.name,
                    SymbolKind::Tool,
                    format!(
                        "```ladder\ntool {}({}){ret}\n```\n{description}\n\n*{how}*{}",
                        t.name.name,
                        params.join(", "),
                        docs(&item.docs)
                    ),
                );
                for p in &t.params {
                    type_refs(&p.ty, refs);
                }
                if let Some(ret) = &t.returns {
                    type_refs(ret, refs);
                }
            }
            ItemKind::Agent(a) => {
                let mut lines = Vec::new();
                for st in &a.stmts {
                    match &st.kind {
                        AgentStmtKind::Model(m) => {
                            lines.push(format!("- model `{}`", m.name));
                            r(refs, m, SymbolNamespace::Model);
                        }
                        AgentStmtKind::Tools(t) => {
                            lines.push(format!(
                                "- tools: {}",
                                t.iter()
                                    .map(|i| format!("`{}`", i.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            for i in t {
                                r(refs, i, SymbolNamespace::Tool);
                            }
                        }
                        AgentStmtKind::Accepts(t) => {
                            lines.push(format!(
                                "- accepts: {}",
                                t.iter()
                                    .map(|i| format!("`{}`", i.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            for i in t {
                                r(refs, i, SymbolNamespace::Intent);
                            }
                        }
                        AgentStmtKind::Handoff(h) => {
                            lines.push(format!(
                                "- handoff `{}` -> `{}`",
                                h.intent.name, h.target.name
                            ));
                            r(refs, &h.intent, SymbolNamespace::Intent);
                            r(refs, &h.target, SymbolNamespace::Rung);
                        }
                        AgentStmtKind::Escalate(e) => {
                            lines.push(format!(
                                "- escalate -> `{}`{}",
                                e.target.name,
                                if e.condition.is_some() {
                                    " (guarded)"
                                } else {
                                    ""
                                }
                            ));
                            r(refs, &e.target, SymbolNamespace::Rung);
                        }
                        AgentStmtKind::Consult(c) => {
                            lines.push(format!("- consult `{}`", c.name));
                            r(refs, c, SymbolNamespace::Rung);
                        }
                        AgentStmtKind::Sla {
                            otherwise, seconds, ..
                        } => {
                            lines.push(format!(
                                "- sla {seconds}s{}",
                                otherwise
                                    .as_ref()
                                    .map(|o| format!(" else -> `{}`", o.name))
                                    .unwrap_or_default()
                            ));
                            if let Some(o) = otherwise {
                                r(refs, o, SymbolNamespace::Rung);
                            }
                        }
                        AgentStmtKind::Fallback(f) => {
                            lines.push(format!("- fallback -> `{}`", f.name));
                            r(refs, f, SymbolNamespace::Rung);
                        }
                        AgentStmtKind::Router => {
                            lines.push("- router (never replies itself)".into())
                        }
                        AgentStmtKind::Owns(o) => lines.push(format!("- owns {}", o.name)),
                        AgentStmtKind::Return => lines
                            .push("- may return the conversation to whoever handed it over".into()),
                        AgentStmtKind::Prompt(_) | AgentStmtKind::Unknown(_) => {}
                    }
                }
                def(
                    &a.name,
                    SymbolKind::Agent,
                    format!(
                        "```ladder\nagent {}\n```\n{}{}",
                        a.name.name,
                        lines.join("\n"),
                        docs(&item.docs)
                    ),
                );
            }
            ItemKind::Human(h) => {
                def(
                    &h.name,
                    SymbolKind::Human,
                    format!(
                        "```ladder\nhuman {}\n```\n{}{}",
                        h.name.name,
                        h.description
                            .as_ref()
                            .map(|d| d.value.as_str())
                            .unwrap_or(""),
                        docs(&item.docs)
                    ),
                );
            }
            ItemKind::Script(sc) => {
                let mut steps = Vec::new();
                for st in &sc.stmts {
                    match &st.kind {
                        ScriptStmtKind::Say(p) => steps.push(format!("- say \"{}\"", p.text)),
                        ScriptStmtKind::Collect { name, ty, .. } => {
                            steps.push(format!("- collect `{}: {}`", name.name, type_text(ty)));
                            type_refs(ty, refs);
                        }
                        ScriptStmtKind::Handoff(t) => {
                            steps.push(format!("- handoff `{}`", t.name));
                            r(refs, t, SymbolNamespace::Rung);
                        }
                        ScriptStmtKind::End => steps.push("- end".into()),
                        ScriptStmtKind::Unknown(_) => {}
                    }
                }
                def(
                    &sc.name,
                    SymbolKind::Script,
                    format!(
                        "```ladder\nscript {}\n```\n{}{}",
                        sc.name.name,
                        steps.join("\n"),
                        docs(&item.docs)
                    ),
                );
            }
            ItemKind::Test(t) => {
                for st in &t.steps {
                    match &st.kind {
                        TestStepKind::Says { agent, .. } => r(refs, agent, SymbolNamespace::Rung),
                        TestStepKind::Calls {
                            agent, function, ..
                        } => {
                            r(refs, agent, SymbolNamespace::Rung);
                            // `transfer_to_billing` names the rung `billing` (or calls a tool),
                            // so that a rename of the rung or tool renames the call.
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
            ItemKind::Use(_) | ItemKind::Meta(_) => {}
        }
    }
    // Items with a syntax error define their names all the same (completion, navigation to
    // them), from what their first line says.
    for b in &file.broken {
        let kind = match b.keyword.as_str() {
            "agent" => SymbolKind::Agent,
            "human" => SymbolKind::Human,
            "script" => SymbolKind::Script,
            "tool" => SymbolKind::Tool,
            "intent" => SymbolKind::Intent,
            "model" => SymbolKind::Model,
            "type" => SymbolKind::Type,
            _ => continue,
        };
        if let Some(name) = &b.name {
            defs.push(Definition {
                name: name.name.clone(),
                kind,
                name_span: name.span,
                item_span: b.span,
                hover: format!(
                    "```ladder\n{} {}\n```\n(this {} has a syntax error)",
                    b.keyword, name.name, b.keyword
                ),
            });
        }
    }
    defs.sort_by_key(|d| d.item_span.start);
    s.definitions = defs;
    s
}
