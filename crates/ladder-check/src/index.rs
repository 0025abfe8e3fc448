//! The index of every definition across the files of one ladder, built in one pass. Reports
//! duplicate definitions (L0003), unknown statements (L0007) and repeated statements (L0032).

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
use crate::suggest::did_you_mean;
use crate::symbols::SymbolNamespace;
use ladder_syntax::ast::*;
use ladder_syntax::Span;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// A rung of the ladder: something that can own the conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rung<'a> {
    Agent(&'a AgentInfo<'a>),
    Human(&'a HumanDecl),
    Script(&'a ScriptDecl),
}

impl Rung<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Rung::Agent(_) => "agent",
            Rung::Human(_) => "human",
            Rung::Script(_) => "script",
        }
    }
}

/// An agent with its statements sorted by kind.
#[derive(Debug)]
pub(crate) struct AgentInfo<'a> {
    pub decl: &'a AgentDecl,
    pub docs: &'a [String],
    pub model: Option<&'a Ident>,
    pub prompt: Option<&'a Prompt>,
    pub tools: Vec<&'a Ident>,
    pub accepts: Option<Vec<&'a Ident>>,
    pub handoffs: Vec<&'a Handoff>,
    pub escalations: Vec<&'a Escalate>,
    pub consults: Vec<&'a Ident>,
    pub sla: Option<(f64, Span, Option<&'a Ident>)>,
    pub fallback: Option<&'a Ident>,
    pub router: bool,
    /// `return`, where written.
    pub returns: Option<Span>,
    /// `owns turn` / `owns conversation`.
    pub owns: Option<&'a Ident>,
}

/// Definitions by name, per namespace. Rungs (agents, humans, scripts) share one namespace; tools,
/// intents, models and types each have their own, so `handoff billing -> billing` is fine.
#[derive(Debug, Default)]
pub(crate) struct Index<'a> {
    pub ladder: Option<&'a LadderDecl>,
    pub agents: HashMap<&'a str, AgentInfo<'a>>,
    pub humans: HashMap<&'a str, &'a HumanDecl>,
    pub scripts: HashMap<&'a str, &'a ScriptDecl>,
    pub tools: HashMap<&'a str, (&'a ToolDecl, &'a [String])>,
    pub intents: HashMap<&'a str, &'a IntentDecl>,
    pub models: HashMap<&'a str, &'a ModelDecl>,
    pub types: HashMap<&'a str, &'a TypeDecl>,
    pub mcps: HashMap<&'a str, &'a McpDecl>,
    pub meta: Vec<&'a MetaBlock>,
    pub tests: Vec<&'a TestDecl>,
    /// Every item with its span, for lint scopes.
    pub items: Vec<&'a Item>,
    /// Every agent statement with attributes, for lint scopes.
    pub stmt_attrs: Vec<(&'a [Attr], Span)>,
    /// The declared type of every session variable: the header's `vars` first, else its first
    /// `collect` in source order.
    pub var_types: HashMap<&'a str, &'a ladder_syntax::ast::TypeExpr>,
    /// Names of items with syntax errors: references to them are neither undefined nor of the
    /// wrong kind, only unknown.
    pub broken: rustc_hash::FxHashSet<&'a str>,
    /// Whether a `ladder` header item has a syntax error.
    pub broken_header: bool,
    /// Every reference the checker looked up, as it looked it up: the table the editor
    /// navigates (definition, references, rename).
    pub refs: std::cell::RefCell<Vec<crate::symbols::Reference>>,
}

impl<'a> Index<'a> {
    pub fn rung(&self, name: &str) -> Option<Rung<'_>> {
        if let Some(a) = self.agents.get(name) {
            return Some(Rung::Agent(a));
        }
        if let Some(h) = self.humans.get(name) {
            return Some(Rung::Human(h));
        }
        self.scripts.get(name).map(|s| Rung::Script(s))
    }

    pub fn rung_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.agents
            .keys()
            .chain(self.humans.keys())
            .chain(self.scripts.keys())
            .copied()
    }

    /// The span of a rung's name.
    pub fn rung_span(&self, name: &str) -> Option<Span> {
        self.rung(name).map(|r| match r {
            Rung::Agent(a) => a.decl.name.span,
            Rung::Human(h) => h.name.span,
            Rung::Script(s) => s.name.span,
        })
    }

    /// What other kind of thing `name` is, for "`x` is a tool, not an agent".
    pub fn kind_of(&self, name: &str) -> Option<&'static str> {
        if let Some(r) = self.rung(name) {
            return Some(r.kind());
        }
        if self.tools.contains_key(name) {
            Some("tool")
        } else if self.intents.contains_key(name) {
            Some("intent")
        } else if self.models.contains_key(name) {
            Some("model")
        } else if self.types.contains_key(name) {
            Some("type")
        } else if self.mcps.contains_key(name) {
            Some("MCP server")
        } else {
            None
        }
    }
}

/// Which namespace a reference looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    Rung,
    Agent,
    Tool,
    Intent,
    Model,
    Mcp,
}

/// `a tool`, `an agent`: the noun with its indefinite article.
impl<'a> Index<'a> {
    /// Records a reference for the editor (see [`Index::refs`]).
    pub fn record(&self, name: &Ident, namespace: SymbolNamespace) {
        self.refs.borrow_mut().push(crate::symbols::Reference {
            name: name.name.clone(),
            namespace,
            span: name.span,
        });
    }

    /// The declared type of a session variable (see [`Index::var_types`]).
    pub(crate) fn var_type(&self, name: &str) -> Option<&'a ladder_syntax::ast::TypeExpr> {
        self.var_types.get(name).copied()
    }

    /// Names in a namespace, sorted (for stable suggestions).
    fn names_in(&self, ns: Namespace) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = match ns {
            Namespace::Rung => self.rung_names().collect(),
            Namespace::Agent => self.agents.keys().copied().collect(),
            Namespace::Tool => self.tools.keys().copied().collect(),
            Namespace::Intent => self.intents.keys().copied().collect(),
            Namespace::Model => self.models.keys().copied().collect(),
            Namespace::Mcp => self.mcps.keys().copied().collect(),
        };
        names.sort_unstable();
        names
    }

    fn defines(&self, ns: Namespace, name: &str) -> bool {
        match ns {
            Namespace::Rung => self.rung(name).is_some(),
            Namespace::Agent => self.agents.contains_key(name),
            Namespace::Tool => self.tools.contains_key(name),
            Namespace::Intent => self.intents.contains_key(name),
            Namespace::Model => self.models.contains_key(name),
            Namespace::Mcp => self.mcps.contains_key(name),
        }
    }

    /// Resolves a reference; reports L0004 (with a suggestion) or L0005 and returns `false` if
    /// the name is not a `ns`.
    pub fn resolve(&self, ns: Namespace, name: &Ident, role: &str, out: &mut Diagnostics) -> bool {
        self.record(
            name,
            match ns {
                Namespace::Rung | Namespace::Agent => SymbolNamespace::Rung,
                Namespace::Tool => SymbolNamespace::Tool,
                Namespace::Intent => SymbolNamespace::Intent,
                Namespace::Model => SymbolNamespace::Model,
                Namespace::Mcp => SymbolNamespace::Mcp,
            },
        );
        if self.defines(ns, &name.name) {
            return true;
        }
        if self.broken.contains(name.name.as_str()) {
            // Its item did not parse; that syntax error is the one to fix.
            return false;
        }
        if let Some(kind) = self.kind_of(&name.name) {
            // A rung of the wrong sort (e.g. consulting a human) or another namespace entirely.
            out.report(Finding::WrongKind {
                name,
                found: kind,
                role,
                ns,
                example: self.names_in(ns).first().copied(),
            });
            return false;
        }
        let names = self.names_in(ns);
        out.report(Finding::Undefined {
            name,
            ns,
            suggestion: did_you_mean(&name.name, names.iter().copied()),
            known: names,
        });
        false
    }
}

use crate::vocabulary::{AGENT_STATEMENTS, HEADER_STATEMENTS, SCRIPT_STATEMENTS, TOOL_STATEMENTS};

pub(crate) fn unknown_statement(
    stmt: &UnknownStmt,
    block: &'static str,
    known: &'static [&'static str],
    out: &mut Diagnostics,
) {
    out.report(Finding::UnknownStatement {
        keyword: &stmt.keyword,
        block,
        known,
        suggestion: did_you_mean(&stmt.keyword.name, known.iter().copied()),
    });
}

/// A second definition of a name is reported (L0003) and not analysed; the names it uses are
/// still recorded for the editor.
fn unanalysed(index: &Index, item: &Item) {
    index
        .refs
        .borrow_mut()
        .extend(crate::walk::item_references(item));
}

pub(crate) fn build<'a>(files: &[&'a File], out: &mut Diagnostics) -> Index<'a> {
    let mut index = Index::default();
    let mut seen: HashMap<(&'static str, &'a str), Span> = HashMap::default();
    let mut check_dup =
        |ns: &'static str, name: &'a Ident, kind: &'static str, out: &mut Diagnostics| -> bool {
            if let Some(first) = seen.get(&(ns, name.name.as_str())) {
                out.report(Finding::Duplicate {
                    name,
                    first: *first,
                    kind,
                    shared_rung_namespace: ns == "rung",
                });
                false
            } else {
                seen.insert((ns, name.name.as_str()), name.span);
                true
            }
        };
    for file in files {
        for b in &file.broken {
            index.broken_header |= b.keyword == "ladder";
            if let Some(name) = &b.name {
                index.broken.insert(&name.name);
            }
        }
        for item in &file.items {
            index.items.push(item);
            match &item.kind {
                ItemKind::Ladder(l) => {
                    if let Some(first) = index.ladder {
                        out.report(Finding::SecondHeader {
                            at: l.name.span,
                            first: first.name.span,
                        });
                        unanalysed(&index, item);
                    } else {
                        index.ladder = Some(l);
                        for u in &l.unknown {
                            unknown_statement(u, "ladder header", HEADER_STATEMENTS, out);
                        }
                    }
                }
                ItemKind::Agent(a) => {
                    if check_dup("rung", &a.name, "agent", out) {
                        let info = agent_info(a, &item.docs, &mut index, out);
                        index.agents.insert(&a.name.name, info);
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Human(h) => {
                    if check_dup("rung", &h.name, "human", out) {
                        index.humans.insert(&h.name.name, h);
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Script(s) => {
                    if !check_dup("rung", &s.name, "script", out) {
                        unanalysed(&index, item);
                    } else {
                        index.scripts.insert(&s.name.name, s);
                        for stmt in &s.stmts {
                            if let ScriptStmtKind::Unknown(u) = &stmt.kind {
                                unknown_statement(u, "script", SCRIPT_STATEMENTS, out);
                            }
                        }
                    }
                }
                ItemKind::Tool(t) => {
                    if check_dup("tool", &t.name, "tool", out) {
                        index.tools.insert(&t.name.name, (t, &item.docs));
                        for u in &t.unknown {
                            unknown_statement(u, "tool", TOOL_STATEMENTS, out);
                        }
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Intent(i) => {
                    if check_dup("intent", &i.name, "intent", out) {
                        index.intents.insert(&i.name.name, i);
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Model(m) => {
                    if check_dup("model", &m.name, "model", out) {
                        index.models.insert(&m.name.name, m);
                    }
                }
                ItemKind::Type(t) => {
                    if check_dup("type", &t.name, "type", out) {
                        index.types.insert(&t.name.name, t);
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Mcp(m) => {
                    if check_dup("mcp", &m.name, "MCP server", out) {
                        index.mcps.insert(&m.name.name, m);
                    } else {
                        unanalysed(&index, item);
                    }
                }
                ItemKind::Meta(m) => index.meta.push(m),
                ItemKind::Test(t) => index.tests.push(t),
                ItemKind::Use(_) => {}
            }
        }
    }
    // Built once: conditions, bindings and collects look types up by name.
    if let Some(ladder) = index.ladder {
        for v in &ladder.vars {
            index.var_types.entry(&v.name.name).or_insert(&v.ty);
        }
    }
    for file in files {
        for item in &file.items {
            if let ItemKind::Script(script) = &item.kind {
                for stmt in &script.stmts {
                    if let ladder_syntax::ast::ScriptStmtKind::Collect { name, ty, .. } = &stmt.kind
                    {
                        index.var_types.entry(&name.name).or_insert(ty);
                    }
                }
            }
        }
    }
    index
}

fn agent_info<'a>(
    a: &'a AgentDecl,
    docs: &'a [String],
    index: &mut Index<'a>,
    out: &mut Diagnostics,
) -> AgentInfo<'a> {
    let mut info = AgentInfo {
        decl: a,
        docs,
        model: None,
        prompt: None,
        tools: Vec::new(),
        accepts: None,
        handoffs: Vec::new(),
        escalations: Vec::new(),
        consults: Vec::new(),
        sla: None,
        fallback: None,
        router: false,
        returns: None,
        owns: None,
    };
    let mut spans: BTreeMap<&'static str, Span> = BTreeMap::new();
    for stmt in &a.stmts {
        if !stmt.attrs.is_empty() {
            index.stmt_attrs.push((&stmt.attrs, stmt.span));
        }
        let single = match &stmt.kind {
            AgentStmtKind::Model(m) => {
                if info.model.is_some() {
                    // A repeated `model` (L0032) is not resolved; the editor still sees it.
                    index.record(m, SymbolNamespace::Model);
                }
                info.model.get_or_insert(m);
                Some("`model`")
            }
            AgentStmtKind::Prompt(p) => {
                info.prompt.get_or_insert(p);
                Some("`prompt`")
            }
            AgentStmtKind::Tools(t) => {
                info.tools.extend(t.iter());
                None
            }
            AgentStmtKind::Accepts(list) => {
                info.accepts
                    .get_or_insert_with(Vec::new)
                    .extend(list.iter());
                None
            }
            AgentStmtKind::Handoff(h) => {
                info.handoffs.push(h);
                None
            }
            AgentStmtKind::Escalate(e) => {
                info.escalations.push(e);
                None
            }
            AgentStmtKind::Consult(c) => {
                info.consults.push(c);
                None
            }
            AgentStmtKind::Sla {
                seconds,
                duration_span,
                otherwise,
            } => {
                if let (Some(_), Some(o)) = (info.sla, otherwise) {
                    index.record(o, SymbolNamespace::Rung);
                }
                info.sla
                    .get_or_insert((*seconds, *duration_span, otherwise.as_ref()));
                Some("`sla`")
            }
            AgentStmtKind::Fallback(f) => {
                if info.fallback.is_some() {
                    index.record(f, SymbolNamespace::Rung);
                }
                info.fallback.get_or_insert(f);
                Some("`fallback`")
            }
            AgentStmtKind::Router => {
                info.router = true;
                Some("`router`")
            }
            AgentStmtKind::Return => {
                info.returns.get_or_insert(stmt.span);
                Some("`return`")
            }
            AgentStmtKind::Owns(o) => {
                info.owns.get_or_insert(o);
                Some("`owns`")
            }
            AgentStmtKind::Unknown(u) => {
                unknown_statement(u, "agent", AGENT_STATEMENTS, out);
                None
            }
        };
        if let Some(what) = single {
            if let Some(first) = spans.get(what) {
                out.report(Finding::Repeated {
                    first: *first,
                    again: stmt.span,
                    what: what.to_string(),
                    keep: "keep one of them",
                });
            } else {
                spans.insert(what, stmt.span);
            }
        }
    }
    info
}
