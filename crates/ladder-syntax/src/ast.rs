//! The typed AST of one `.ladder` file. Every node that a diagnostic can point at carries a [`Span`].

use crate::source::Span;

/// A name as written in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is in the source.
    pub span: Span,
}

/// A string literal with escapes resolved; `span` covers the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct StringLit {
    /// The text, escapes resolved.
    pub value: String,
    /// Where it is in the source.
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Where it is in the source.
    pub span: Span,
    /// The version line, if present.
    pub version: Option<Version>,
    /// `#![allow(..)]` / `#![deny(..)]` at the top of the file.
    pub attrs: Vec<Attr>,
    /// The items that parsed, in order.
    pub items: Vec<Item>,
    /// Items that did not parse (see [`crate::parse_recovering`]), named as far as their first
    /// line tells: references to them are not reported as undefined.
    pub broken: Vec<BrokenItem>,
}

/// An item with a syntax error, skipped by error recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenItem {
    /// The item keyword: `agent`, `tool`, ...
    pub keyword: String,
    /// The name after the keyword, if there is one.
    pub name: Option<Ident>,
    /// The whole item, up to the next item.
    pub span: Span,
}

/// The version line `ladder 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The version.
    pub number: u32,
    /// The digits as written (may not fit in `u32`).
    pub raw: String,
    /// Where it is in the source.
    pub span: Span,
}

/// The level of a lint attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrLevel {
    /// `allow`: silence.
    Allow,
    /// `warn`: report as a warning.
    Warn,
    /// `deny`: report as an error.
    Deny,
}

/// `#[allow(L0017)]`, `#![deny(warnings)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// Allow, warn or deny.
    pub level: AttrLevel,
    /// The codes or lint names.
    pub lints: Vec<Ident>,
    /// Where it is in the source.
    pub span: Span,
}

/// A top-level item with its doc comments and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its `///` doc comment lines.
    pub docs: Vec<String>,
    /// Its `#[..]` attributes.
    pub attrs: Vec<Attr>,
    /// What it is.
    pub kind: ItemKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What an item is.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `use "file.ladder"`
    Use(StringLit),
    /// The header.
    Ladder(Box<LadderDecl>),
    /// A model.
    Model(ModelDecl),
    /// An intent.
    Intent(Box<IntentDecl>),
    /// A record type.
    Type(TypeDecl),
    /// A tool.
    Tool(Box<ToolDecl>),
    /// An agent.
    Agent(AgentDecl),
    /// A person.
    Human(Box<HumanDecl>),
    /// A script.
    Script(ScriptDecl),
    /// An MCP server whose tools the ladder uses.
    Mcp(Box<McpDecl>),
    /// Free-form metadata.
    Meta(MetaBlock),
    /// A scenario test.
    Test(TestDecl),
}

impl ItemKind {
    /// The declared name, for items that declare one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            ItemKind::Ladder(d) => Some(&d.name),
            ItemKind::Model(d) => Some(&d.name),
            ItemKind::Intent(d) => Some(&d.name),
            ItemKind::Type(d) => Some(&d.name),
            ItemKind::Tool(d) => Some(&d.name),
            ItemKind::Agent(d) => Some(&d.name),
            ItemKind::Human(d) => Some(&d.name),
            ItemKind::Script(d) => Some(&d.name),
            ItemKind::Mcp(d) => Some(&d.name),
            ItemKind::Use(_) | ItemKind::Meta(_) | ItemKind::Test(_) => None,
        }
    }
}

/// `meta { ... }`: passed through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaBlock {
    /// The text between the braces.
    pub raw: String,
    /// Where it is in the source.
    pub span: Span,
}

// ------------------------------------------------------------------ ladder header

/// `ladder NAME { .. }`: the header.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderDecl {
    /// The declared name.
    pub name: Ident,
    /// `entry` statements (one is allowed).
    pub entries: Vec<Ident>,
    /// `limits { .. }`, `budget { .. }` and unknown blocks.
    pub blocks: Vec<PropBlock>,
    /// Session variables.
    pub vars: Vec<VarDecl>,
    /// `meta` blocks.
    pub meta: Vec<MetaBlock>,
    /// Statements the grammar does not know.
    pub unknown: Vec<UnknownStmt>,
}

/// A named `key: value` block such as `limits { .. }` or `budget { .. }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PropBlock {
    /// `limits`, `budget`, ...
    pub name: Ident,
    /// Its entries.
    pub props: Vec<Prop>,
}

/// `key: value`
#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Value,
}

/// `name: type = default` in the header's `vars`.
#[derive(Debug, Clone, PartialEq)]
pub struct VarDecl {
    /// The declared name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
    /// Its default, if any.
    pub default: Option<Literal>,
}

/// A statement the grammar does not know; the checker reports it with a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownStmt {
    /// Its first word.
    pub keyword: Ident,
    /// Where it is in the source.
    pub span: Span,
}

/// A property value.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What it is.
    pub kind: ValueKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What a property value is.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `$2.50/Mtok`: dollars per million tokens (normalised).
    Price(f64),
    /// `$0.04`
    Money(f64),
    /// `1.2s`, `300ms`: seconds.
    Duration(f64),
    /// A plain number.
    Number(f64),
    /// A string.
    String(String),
    /// `true` / `false`
    Bool(bool),
    /// `env(NAME)`
    Env(String),
    /// A bare word (`openai`).
    Ident(String),
    /// `[a, b]`
    List(Vec<Value>),
}

/// A literal value (defaults, bound parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// What it is.
    pub kind: LiteralKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What a literal is.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    /// A string.
    String(String),
    /// A number.
    Number(f64),
    /// `true` / `false`
    Bool(bool),
    /// A duration, in seconds.
    Duration(f64),
    /// An amount, in dollars.
    Money(f64),
}

// ------------------------------------------------------------------ models, intents, types

/// `model NAME { .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecl {
    /// The declared name.
    pub name: Ident,
    /// Its properties.
    pub props: Vec<Prop>,
}

/// `intent NAME "description" { examples [..] field: type }`
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDecl {
    /// The declared name.
    pub name: Ident,
    /// What it means.
    pub description: Option<StringLit>,
    /// Example user messages.
    pub examples: Vec<StringLit>,
    /// The payload's fields.
    pub fields: Vec<Field>,
}

/// `type NAME { field: type }`: a record type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDecl {
    /// The declared name.
    pub name: Ident,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// `name: type` in an intent or a record type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its `///` doc comment lines.
    pub docs: Vec<String>,
    /// The declared name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
}

/// A type as written: `string`, `[Slot]?`, `enum(a, b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// What it is.
    pub kind: TypeKind,
    /// `?`: the value may be absent.
    pub optional: bool,
    /// Where it is in the source.
    pub span: Span,
}

impl std::fmt::Display for TypeExpr {
    /// The type as written in canonical form: `[Slot]?`, `enum(a, b)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            TypeKind::Named(n) => f.write_str(&n.name)?,
            TypeKind::List(inner) => write!(f, "[{inner}]")?,
            TypeKind::Enum(v) => write!(
                f,
                "enum({})",
                v.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
        }
        if self.optional {
            f.write_str("?")?;
        }
        Ok(())
    }
}

/// What a type expression is.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// A builtin (`string`, `int`, ...) or a record type; resolved by the checker.
    Named(Ident),
    /// `[T]`
    List(Box<TypeExpr>),
    /// `enum(a, b)`
    Enum(Vec<Ident>),
}

// ------------------------------------------------------------------ tools

/// `tool NAME(params) -> type { .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDecl {
    /// The declared name.
    pub name: Ident,
    /// Its parameters.
    pub params: Vec<Param>,
    /// `-> type`, if declared.
    pub returns: Option<TypeExpr>,
    /// The description string.
    pub description: Option<StringLit>,
    /// `http`, `exec`, `mock` or `host` (one is allowed).
    pub implementations: Vec<ToolImpl>,
    /// `timeout DURATION`: seconds, and where.
    pub timeout: Option<(f64, Span)>,
    /// `retries N`, and where.
    pub retries: Option<(f64, Span)>,
    /// `approval HUMAN`: every call waits for that person to approve it.
    pub approval: Option<Ident>,
    /// Statements the grammar does not know.
    pub unknown: Vec<UnknownStmt>,
}

/// A tool parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The declared name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
    /// `= env(X)`, `= session.x` or a literal: hidden from the model.
    pub binding: Option<Binding>,
}

/// Where a bound parameter's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// `= env(NAME)`
    Env(Ident),
    /// `= session.var`
    Session(Ident),
    /// A literal.
    Literal(Literal),
}

/// How a tool runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolImpl {
    /// What it is.
    pub kind: ToolImplKind,
    /// Where it is in the source.
    pub span: Span,
}

/// The kinds of tool implementation.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolImplKind {
    /// `http METHOD "url" auth bearer env(X) header "h" = .. body {..}`
    Http {
        /// `GET`, `POST`, ...
        method: String,
        /// The URL template.
        url: StringLit,
        /// `auth bearer env(NAME)`
        bearer_env: Option<Ident>,
        /// `header "name" = value`
        headers: Vec<(StringLit, HeaderValue)>,
        /// `body JSON`
        body: Option<Json>,
    },
    /// `exec "program" "arg" ..`
    Exec {
        /// The program.
        program: StringLit,
        /// Its arguments.
        args: Vec<StringLit>,
    },
    /// `mock JSON`
    Mock(Json),
    /// `host ["name"]`: a function of the embedding program.
    Host(Option<StringLit>),
    /// `mcp SERVER ["remote name"]`: a tool of a declared MCP server (by default the tool's own
    /// name).
    Mcp {
        /// The `mcp` item.
        server: Ident,
        /// The tool's name on the server, when it differs.
        remote: Option<StringLit>,
    },
}

/// An http header's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// `env(NAME)`
    Env(Ident),
    /// A string.
    Literal(StringLit),
}

/// A JSON literal written in the source (mock results, http bodies).
#[derive(Debug, Clone, PartialEq)]
pub struct Json {
    /// What it is.
    pub kind: JsonKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What a JSON literal is.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// `[..]`
    Array(Vec<Json>),
    /// `{ key: value }` (keys bare or quoted).
    Object(Vec<(Ident, Json)>),
}

impl Json {
    /// The value as `serde_json` holds it.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value as V;
        match &self.kind {
            JsonKind::Null => V::Null,
            JsonKind::Bool(b) => V::Bool(*b),
            JsonKind::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    V::from(*n as i64)
                } else {
                    serde_json::Number::from_f64(*n)
                        .map(V::Number)
                        .unwrap_or(V::Null)
                }
            }
            JsonKind::String(s) => V::String(s.clone()),
            JsonKind::Array(items) => V::Array(items.iter().map(Json::to_value).collect()),
            JsonKind::Object(pairs) => V::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

// ------------------------------------------------------------------ agents

/// `agent NAME { .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDecl {
    /// The declared name.
    pub name: Ident,
    /// Its statements, in order.
    pub stmts: Vec<AgentStmt>,
}

/// A statement of an agent, with its doc comments and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStmt {
    /// Its `///` doc comment lines.
    pub docs: Vec<String>,
    /// Its `#[..]` attributes.
    pub attrs: Vec<Attr>,
    /// What it is.
    pub kind: AgentStmtKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What an agent statement is.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentStmtKind {
    /// `model NAME`
    Model(Ident),
    /// `prompt "..."`
    Prompt(Prompt),
    /// `tools [a, b]`
    Tools(Vec<Ident>),
    /// `accepts a, b`
    Accepts(Vec<Ident>),
    /// `handoff INTENT -> TARGET`
    Handoff(Box<Handoff>),
    /// `escalate -> TARGET when ..`
    Escalate(Box<Escalate>),
    /// `consult AGENT`
    Consult(Ident),
    /// `sla DURATION else -> RUNG`
    Sla {
        /// The duration, in seconds.
        seconds: f64,
        /// Where the duration is written.
        duration_span: Span,
        /// The rung that takes over when it is late.
        otherwise: Option<Ident>,
    },
    /// `fallback -> RUNG`
    Fallback(Ident),
    /// `router`
    Router,
    /// `return`: may hand the conversation back to the rung that handed it over.
    Return,
    /// `owns turn` / `owns conversation`: how long the agent keeps the conversation.
    Owns(Ident),
    /// A statement the grammar does not know.
    Unknown(UnknownStmt),
}

/// The text of a `prompt` or `say`: a string or a `"""` text.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt text; triple-quoted prompts are de-indented (common leading whitespace removed).
    pub text: String,
    /// The `{{..}}` references in the text, each with its span in the source (de-indenting
    /// moves the text, so the spans are recorded here rather than computed from `text`).
    pub templates: Vec<TemplateRef>,
    /// Where it is in the source.
    pub span: Span,
}

/// A `{{name}}` or `{{intent.field}}` reference inside a prompt or `say`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRef {
    /// The dotted path, e.g. `["intent", "summary"]`.
    pub path: Vec<String>,
    /// Where it is in the source.
    pub span: Span,
}

/// `handoff INTENT -> TARGET context POLICY`
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    /// The intent.
    pub intent: Ident,
    /// The receiving rung.
    pub target: Ident,
    /// The context policy, if given.
    pub context: Option<ContextClause>,
    /// `fuse` (true) or `no_fuse` (false), if given, and where.
    pub fuse: Option<(bool, Span)>,
}

/// `context POLICY` or `context last(N)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextClause {
    /// `full`, `no_tools`, `last`, `summary` or `none`.
    pub policy: Ident,
    /// `last(N)`: N, and where.
    pub argument: Option<(f64, Span)>,
    /// Where it is in the source.
    pub span: Span,
}

/// `escalate -> TARGET when CONDITION`
#[derive(Debug, Clone, PartialEq)]
pub struct Escalate {
    /// The rung above.
    pub target: Ident,
    /// `when ..`, if given.
    pub condition: Option<Condition>,
}

/// Comparisons joined by `and` / `or`, left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The first comparison.
    pub first: Comparison,
    /// The others, each with the operator before it.
    pub rest: Vec<(LogicOp, Comparison)>,
    /// Where it is in the source.
    pub span: Span,
}

/// `and` / `or`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    /// `and`
    And,
    /// `or`
    Or,
}

/// `signal op value`
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The signal or session variable.
    pub signal: Ident,
    /// The operator.
    pub op: CompareOp,
    /// The value compared with.
    pub operand: Operand,
    /// Where it is in the source.
    pub span: Span,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CompareOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }
}

/// The right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// `true` / `false`
    Bool(bool),
    /// A bare word (an enum variant).
    Ident(String),
}

// ------------------------------------------------------------------ humans and scripts

/// `human NAME "description" { .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct HumanDecl {
    /// The declared name.
    pub name: Ident,
    /// Who they are.
    pub description: Option<StringLit>,
    /// `queue`, `contact`, `sla`.
    pub props: Vec<Prop>,
}

/// `mcp NAME "description" { .. }`: an MCP server (`command`, `env`, or `url`, `auth`; `timeout`).
#[derive(Debug, Clone, PartialEq)]
pub struct McpDecl {
    /// The declared name.
    pub name: Ident,
    /// What it serves.
    pub description: Option<StringLit>,
    /// `command`, `env`, `url`, `auth`, `timeout`.
    pub props: Vec<Prop>,
}

/// `script NAME { .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptDecl {
    /// The declared name.
    pub name: Ident,
    /// Its statements, in order.
    pub stmts: Vec<ScriptStmt>,
}

/// A statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStmt {
    /// What it is.
    pub kind: ScriptStmtKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What a script statement is.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStmtKind {
    /// `say "..."`
    Say(Prompt),
    /// `collect NAME: type "question"`
    Collect {
        /// The session variable.
        name: Ident,
        /// Its type.
        ty: TypeExpr,
        /// What to ask, if given.
        question: Option<StringLit>,
    },
    /// `handoff RUNG`
    Handoff(Ident),
    /// `end`
    End,
    /// A statement the grammar does not know.
    Unknown(UnknownStmt),
}

// ------------------------------------------------------------------ scenario tests

/// `test "name" { user ".." model a says ".." expect .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct TestDecl {
    /// The test's name.
    pub name: StringLit,
    /// Its steps, in order.
    pub steps: Vec<TestStep>,
}

/// A step of a test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestStep {
    /// What it is.
    pub kind: TestStepKind,
    /// Where it is in the source.
    pub span: Span,
}

/// What a test step is.
#[derive(Debug, Clone, PartialEq)]
pub enum TestStepKind {
    /// A user turn.
    User(StringLit),
    /// A scripted model answer for an agent: a text reply.
    Says {
        /// The agent answering.
        agent: Ident,
        /// Its reply.
        text: StringLit,
    },
    /// A scripted model answer for an agent: a function call.
    Calls {
        /// The agent answering.
        agent: Ident,
        /// The function it calls.
        function: Ident,
        /// The arguments, if given.
        arguments: Option<Json>,
    },
    /// `tool T returns {..}` / `tool T fails ".."`: the test's answer for a tool.
    Stub {
        /// The tool.
        tool: Ident,
        /// What it does.
        outcome: StubOutcome,
    },
    /// `expect ..`
    Expect(Expectation),
}

/// What a stubbed tool does.
#[derive(Debug, Clone, PartialEq)]
pub enum StubOutcome {
    /// `returns JSON`
    Returns(Json),
    /// `fails "message"`
    Fails(StringLit),
}

/// `expect ..`
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// `expect handoff A -> B [intent I]`
    Handoff {
        /// The sender.
        from: Ident,
        /// The receiver.
        to: Ident,
        /// The intent, if named.
        intent: Option<Ident>,
    },
    /// `expect agent A`
    Agent(Ident),
    /// `expect escalation [A] -> B`
    Escalation {
        /// The rung that escalated, if named.
        from: Option<Ident>,
        /// The rung above.
        to: Ident,
    },
    /// `expect human [H]`
    Human(Option<Ident>),
    /// `expect reply [not] contains|matches "..."`
    Reply {
        /// `not`
        negated: bool,
        /// `matches` rather than `contains`.
        regex: bool,
        /// The text or pattern.
        text: StringLit,
    },
    /// `expect tool T [called with {..}]`
    Tool {
        /// The tool.
        tool: Ident,
        /// `called with {..}`, if given.
        arguments: Option<Json>,
    },
    /// `expect ceiling C`
    Ceiling(Ident),
    /// `expect fallback A -> B`
    Fallback {
        /// The rung that failed.
        from: Ident,
        /// The rung that took over.
        to: Ident,
    },
    /// `expect var V op value`
    Var {
        /// The variable.
        name: Ident,
        /// The comparison.
        op: CompareOp,
        /// The value.
        value: Operand,
        /// Where the value is written.
        value_span: Span,
    },
    /// `expect ended`
    Ended,
}
