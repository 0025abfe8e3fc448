//! The `.ladder` checker: name resolution, types, templates, the agent graph and every static
//! analysis, then lowering to a [`Program`]. Pure and synchronous: files come through a [`Loader`].
//!
//! ```
//! use ladder_check::{check_source, CheckOptions};
//! let src = r#"ladder 1
//! ladder demo { entry greeter }
//! model fast { provider: openai, name: "gpt-4o-mini" }
//! agent greeter { model fast  prompt "Say hello." }
//! "#;
//! let checked = check_source("demo.ladder", src, &CheckOptions::default());
//! assert!(checked.diagnostics.is_empty());
//! assert_eq!(checked.program.unwrap().entry, "greeter");
//! ```

#![warn(missing_docs)]

pub mod access;
mod bounds;
pub mod diagnostics;
mod findings;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod generate;
mod graph;
mod index;
mod load;
mod lower;
mod miette_adapter;
pub mod vocabulary;
/// The checked program (the IR), from its own crate so that the runtime needs no compiler.
pub use ladder_program as program;
mod props;
mod scenarios;
mod suggest;
pub mod symbols;
mod syntax;
mod templates;
mod types;
mod walk;
mod words;

pub use access::{FilePolicy, DEFAULT_MAX_FILE_BYTES};
pub use bounds::WorstCase;
pub use diagnostics::{Code, Diagnostic, Edit, Fix, Label, LintOptions, Severity};
pub use graph::{EdgeKind, GraphEdge, GraphNode, GraphView, RungKind};
pub use load::{Loader, MemoryLoader};
pub use miette_adapter::MietteReport;
pub use program::Program;
pub use syntax::LANGUAGE_VERSION;

use diagnostics::Diagnostics;
use findings::{Finding, Unused};
use index::Namespace;
use ladder_syntax::ast::{File, ScriptStmtKind};
use ladder_syntax::SourceMap;
use std::collections::BTreeSet;
use std::path::Path;

/// How to check: lint levels and input limits.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// `--deny` / `--allow` from the command line.
    pub lints: LintOptions,
    /// The most items (agents, tools, intents, ...) a ladder may declare over all its files;
    /// past it the check stops with L0035 before any analysis, so that memory stays bounded.
    pub max_items: usize,
    /// Lower a clean ladder to its [`Program`] (the default). `ladderc check` without
    /// `--emit-program` does not: the program's tool schemas are most of a large check's memory.
    pub lower: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            lints: LintOptions::default(),
            max_items: DEFAULT_MAX_ITEMS,
            lower: true,
        }
    }
}

/// The default item limit: far above any real ladder (the examples declare a few dozen items),
/// and what a file at the default size cap (8 MiB) of the smallest agents holds.
pub const DEFAULT_MAX_ITEMS: usize = 200_000;

/// Everything the checker learnt about a ladder.
#[derive(Debug)]
pub struct Checked {
    /// Every file read: the root and what it `use`s.
    pub sources: SourceMap,
    /// Sorted by file and position; warnings and errors.
    pub diagnostics: Vec<Diagnostic>,
    /// The lowered program, when there is no error.
    pub program: Option<Program>,
    /// The agent graph, when the files parsed.
    pub graph: Option<GraphView>,
    /// Worst-case bounds, when the graph is acyclic and has an entry.
    pub worst_case: Option<WorstCase>,
    /// Every name the checker looked up, with where: sorted by file and position, each once.
    pub references: Vec<symbols::Reference>,
    /// The syntax tree of each file, indexed like `sources`: what parsed, with the items that
    /// did not listed in [`File::broken`]. The editor navigates these (no second parse).
    pub files: Vec<File>,
}

impl Checked {
    /// How many diagnostics are errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// The name of the ladder (its `ladder NAME { .. }` header), if one parsed.
    pub fn ladder_name(&self) -> Option<&str> {
        self.files
            .iter()
            .flat_map(|f| &f.items)
            .find_map(|i| match &i.kind {
                ladder_syntax::ast::ItemKind::Ladder(l) => Some(l.name.name.as_str()),
                _ => None,
            })
    }

    /// The MCP server declared as `name` in these files, if its declaration is valid (even when
    /// other parts of the ladder have errors: `ladderc mcp pull` needs only the server).
    pub fn mcp_server(&self, name: &str) -> Option<program::McpServer> {
        self.files
            .iter()
            .flat_map(|f| &f.items)
            .find_map(|item| match &item.kind {
                ladder_syntax::ast::ItemKind::Mcp(m) if m.name.name == name => {
                    props::mcp(m, &mut Diagnostics::default())
                }
                _ => None,
            })
    }

    /// The names of the MCP servers these files declare.
    pub fn mcp_server_names(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|f| &f.items)
            .filter_map(|item| match &item.kind {
                ladder_syntax::ast::ItemKind::Mcp(m) => Some(m.name.name.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many diagnostics are warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
}

/// Checks the ladder rooted at `path`, reading it and every `use`d file through `loader`.
/// Fails only if the root file itself cannot be read.
pub fn check_path(
    path: &Path,
    loader: &dyn Loader,
    options: &CheckOptions,
) -> std::io::Result<Checked> {
    let mut out = Diagnostics::default();
    let loaded = load::load_all(path, None, loader, &mut out)?;
    Ok(analyse(loaded, out, options))
}

/// Checks one source text; `use`s are resolved against an empty file system (and so fail).
pub fn check_source(name: &str, text: &str, options: &CheckOptions) -> Checked {
    check_source_with(name, text, &MemoryLoader::new(), options)
}

/// Checks one source text, resolving its `use`s through `loader`.
pub fn check_source_with(
    name: &str,
    text: &str,
    loader: &dyn Loader,
    options: &CheckOptions,
) -> Checked {
    let mut out = Diagnostics::default();
    let loaded = load::load_all(Path::new(name), Some(text.to_string()), loader, &mut out)
        .expect("the root text is given, so loading it cannot fail");
    analyse(loaded, out, options)
}

/// Compiles a source text into a program, or returns its diagnostics (errors and warnings).
pub fn compile(text: &str) -> Result<Program, Vec<Diagnostic>> {
    let checked = check_source("main.ladder", text, &CheckOptions::default());
    checked.program.ok_or(checked.diagnostics)
}

fn analyse(loaded: load::Loaded, mut out: Diagnostics, options: &CheckOptions) -> Checked {
    let load::Loaded {
        sources,
        files,
        broken,
    } = loaded;
    let parsed: Vec<&File> = files.iter().collect();
    // After a syntax error the checks still run on the items that parsed. Names of broken items
    // are known (references to them are not undefined), but what the broken items say is not:
    // the analyses of the whole graph (reachability, dead ends, unused items, the worst case)
    // would report follow-on errors, so they wait until the file parses.
    let incomplete = broken.iter().any(|b| *b);
    let items: usize = parsed.iter().map(|f| f.items.len()).sum();
    if items > options.max_items {
        let over = parsed
            .iter()
            .flat_map(|f| &f.items)
            .nth(options.max_items)
            .expect("there are more items than the limit");
        out.report(Finding::TooManyItems {
            at: over.span,
            items,
            limit: options.max_items,
        });
        return stopped(sources, files, out, options);
    }
    let mut scopes = Vec::new();
    for (file, broken) in parsed.iter().zip(&broken) {
        if !(*broken && file.version.is_none()) {
            syntax::check_version(file, &mut out);
        }
        scopes.extend(diagnostics::lint_scopes(&file.attrs, file.span, &mut out));
    }

    let index = index::build(&parsed, &mut out);
    for item in &index.items {
        scopes.extend(diagnostics::lint_scopes(&item.attrs, item.span, &mut out));
    }
    for (attrs, span) in &index.stmt_attrs {
        scopes.extend(diagnostics::lint_scopes(attrs, *span, &mut out));
    }

    let props::Header {
        limits,
        budget,
        fuse,
    } = props::header(&index, &mut out);
    let models: std::collections::BTreeMap<String, program::Model> = index
        .models
        .iter()
        .map(|(n, m)| (n.to_string(), props::model(m, &mut out)))
        .collect();
    for human in index.humans.values() {
        props::human(human, &mut out);
    }
    for server in index.mcps.values() {
        props::mcp(server, &mut out);
    }

    let session_vars = session_vars(&index, &mut out);
    let mut used_types = BTreeSet::new();
    check_declarations(&index, &session_vars, &mut used_types, &mut out);
    templates::check(&index, &session_vars, &mut out);
    scenarios::check(&index, &session_vars, &mut out);

    let graph = graph::build(&index, &mut out);
    graph::handoff_rules(&index, &mut out);
    let cyclic = graph::cycles(&graph, &mut out);
    graph::escalations(&index, &graph, &session_vars, &mut out);
    graph::script_order(&index, &mut out);
    bounds::sla_over_budget(&index, &budget, &mut out);
    let worst_case = if incomplete {
        None
    } else {
        graph::unreachable(&index, &graph, &mut out);
        graph::dead_ends(&index, &graph, &mut out);
        unused(&index, &used_types, &mut out);
        bounds::unusable_limits(&index, &graph, &limits, &mut out);
        if cyclic {
            None
        } else {
            bounds::worst_case(&index, &graph, &models, &limits, &budget, &mut out)
        }
    };

    let diagnostics =
        diagnostics::finish(without_follow_ons(out.into_vec()), &scopes, &options.lints);
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    let program =
        (!has_errors).then(|| lower::lower(&index, &parsed, limits, budget.values, models, fuse));
    let graph = graph.view();
    let mut references = index.refs.take();
    references.sort_by_key(|r| (r.span.file, r.span.start, r.span.end));
    references.dedup_by(|a, b| a.span == b.span && a.namespace == b.namespace);
    drop((index, parsed, session_vars));
    Checked {
        sources,
        diagnostics,
        program: program.flatten(),
        graph: Some(graph),
        worst_case,
        references,
        files,
    }
}

/// When a `use`d file could not be loaded (L0020), every name it defines is unknown: references
/// to undefined names (L0004) would be follow-on errors of that one problem. They are dropped,
/// and the L0020 says how many.
fn without_follow_ons(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if !diagnostics.iter().any(|d| d.code == Code::MissingFile) {
        return diagnostics;
    }
    // The header may be in the unread file too.
    diagnostics.retain(|d| !(d.code == Code::Entry && d.message == words::NO_HEADER));
    let before_undefined = diagnostics.len();
    diagnostics.retain(|d| d.code != Code::Undefined);
    let dropped = before_undefined - diagnostics.len();
    if dropped > 0 {
        if let Some(missing) = diagnostics.iter_mut().find(|d| d.code == Code::MissingFile) {
            missing.notes.push(format!(
                "{dropped} reference{} to undefined names {} not reported: the names may be defined in the file that could not be read",
                if dropped == 1 { "" } else { "s" },
                if dropped == 1 { "is" } else { "are" }
            ));
        }
    }
    diagnostics
}

/// The result of a check that stopped before the analyses (a syntax error, too many items).
fn stopped(
    sources: SourceMap,
    files: Vec<File>,
    out: Diagnostics,
    options: &CheckOptions,
) -> Checked {
    Checked {
        references: Vec::new(),
        files,
        sources,
        diagnostics: diagnostics::finish(out.into_vec(), &[], &options.lints),
        program: None,
        graph: None,
        worst_case: None,
    }
}

/// Session variables: the header's `vars` and every script's `collect`.
fn session_vars<'a>(index: &index::Index<'a>, out: &mut Diagnostics) -> BTreeSet<&'a str> {
    let mut vars = BTreeSet::new();
    if let Some(ladder) = index.ladder {
        types::duplicate_names(ladder.vars.iter().map(|v| &v.name), "session variable", out);
        vars.extend(ladder.vars.iter().map(|v| v.name.name.as_str()));
    }
    for script in index.scripts.values() {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Collect { name, ty, .. } = &stmt.kind {
                vars.insert(name.name.as_str());
                if let Some(declared) = index.var_type(&name.name) {
                    if !std::ptr::eq(declared, ty) && !types::same_type(declared, ty) {
                        out.report(Finding::CollectRetyped { name, declared, ty });
                    }
                }
            }
        }
    }
    vars
}

/// Types, tools, intents, agents' references to models and tools, header vars, collects.
fn check_declarations(
    index: &index::Index,
    session_vars: &BTreeSet<&str>,
    used_types: &mut BTreeSet<String>,
    out: &mut Diagnostics,
) {
    for decl in index.types.values() {
        types::duplicate_names(decl.fields.iter().map(|f| &f.name), "field", out);
        for f in &decl.fields {
            types::check_type(index, &f.ty, &mut BTreeSet::new(), out);
        }
    }
    // A type used only by another unused type still counts as used: simpler, and never wrong
    // about a type that matters.
    for decl in index.types.values() {
        for f in &decl.fields {
            collect_named(&f.ty, used_types);
        }
    }
    for decl in index.intents.values() {
        types::duplicate_names(decl.fields.iter().map(|f| &f.name), "payload field", out);
        for f in &decl.fields {
            types::check_type(index, &f.ty, used_types, out);
        }
    }
    for (tool, _) in index.tools.values() {
        types::check_tool(index, tool, session_vars, used_types, out);
    }
    if let Some(ladder) = index.ladder {
        for v in &ladder.vars {
            types::check_type(index, &v.ty, used_types, out);
            if let Some(default) = &v.default {
                if let Err(expected) = types::literal_fits(index, default, &v.ty) {
                    out.report(Finding::DefaultMisfit {
                        at: default.span,
                        name: &v.name,
                        ty: &v.ty,
                        expected,
                    });
                }
            }
        }
    }
    for script in index.scripts.values() {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Collect { ty, .. } = &stmt.kind {
                types::check_type(index, ty, used_types, out);
            }
        }
    }
    for (name, agent) in &index.agents {
        if let Some(prompt) = agent.prompt.filter(|p| p.text.trim().is_empty()) {
            out.report(Finding::EmptyPrompt {
                at: prompt.span,
                agent: name,
            });
        }
        match agent.model {
            Some(m) => {
                index.resolve(Namespace::Model, m, "an agent's model", out);
            }
            None => out.report(Finding::NoModel {
                at: agent.decl.name.span,
                agent: name,
                example: index.models.keys().min().copied(),
            }),
        }
        if agent.prompt.is_none() {
            out.report(Finding::NoPrompt {
                at: agent.decl.name.span,
                agent: name,
            });
        }
        types::duplicate_names(agent.tools.iter().copied(), "tool", out);
        for t in &agent.tools {
            index.resolve(Namespace::Tool, t, "an entry of `tools`", out);
        }
        if let Some(accepts) = &agent.accepts {
            types::duplicate_names(accepts.iter().copied(), "accepted intent", out);
            for i in accepts {
                index.resolve(Namespace::Intent, i, "an accepted intent", out);
            }
        }
    }
}

fn collect_named(ty: &ladder_syntax::ast::TypeExpr, used: &mut BTreeSet<String>) {
    match &ty.kind {
        ladder_syntax::ast::TypeKind::Named(n) => {
            used.insert(n.name.clone());
        }
        ladder_syntax::ast::TypeKind::List(inner) => collect_named(inner, used),
        ladder_syntax::ast::TypeKind::Enum(_) => {}
    }
}

/// L0017: tools, intents, models and types that nothing refers to.
fn unused(index: &index::Index, used_types: &BTreeSet<String>, out: &mut Diagnostics) {
    let mut tools = BTreeSet::new();
    let mut intents = BTreeSet::new();
    let mut models = BTreeSet::new();
    for agent in index.agents.values() {
        tools.extend(agent.tools.iter().map(|t| t.name.as_str()));
        intents.extend(agent.handoffs.iter().map(|h| h.intent.name.as_str()));
        intents.extend(agent.accepts.iter().flatten().map(|i| i.name.as_str()));
        models.extend(agent.model.map(|m| m.name.as_str()));
    }
    let servers: BTreeSet<&str> = index
        .tools
        .values()
        .flat_map(|(t, _)| &t.implementations)
        .filter_map(|imp| match &imp.kind {
            ladder_syntax::ast::ToolImplKind::Mcp { server, .. } => Some(server.name.as_str()),
            _ => None,
        })
        .collect();
    let mut report = |kind, name, at| out.report(Finding::Unused { at, kind, name });
    for (name, server) in &index.mcps {
        if !servers.contains(name) {
            report(Unused::Mcp, name, server.name.span);
        }
    }
    for (name, (tool, _)) in &index.tools {
        if !tools.contains(name) {
            report(Unused::Tool, name, tool.name.span);
        }
    }
    for (name, intent) in &index.intents {
        if !intents.contains(name) {
            report(Unused::Intent, name, intent.name.span);
        }
    }
    for (name, model) in &index.models {
        if !models.contains(name) {
            report(Unused::Model, name, model.name.span);
        }
    }
    for (name, ty) in &index.types {
        if !used_types.contains(*name) {
            report(Unused::Type, name, ty.name.span);
        }
    }
}
