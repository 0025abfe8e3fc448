//! The typed AST of one `.ladder` file. Every node that a diagnostic can point at carries a [`Span`].

use crate::source::Span;

/// A name as written in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal with escapes resolved; `span` covers the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct StringLit {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub span: Span,
    pub version: Option<Version>,
    /// `#![allow(..)]` / `#![deny(..)]` at the top of the file.
    pub attrs: Vec<Attr>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub number: u32,
    /// The digits as written (may not fit in `u32`).
    pub raw: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrLevel {
    Allow,
    Warn,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub level: AttrLevel,
    pub lints: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub docs: Vec<String>,
    pub attrs: Vec<Attr>,
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    Use(StringLit),
    Ladder(Box<LadderDecl>),
    Model(ModelDecl),
    Intent(Box<IntentDecl>),
    Type(TypeDecl),
    Tool(Box<ToolDecl>),
    Agent(AgentDecl),
    Human(Box<HumanDecl>),
    Script(ScriptDecl),
    Meta(MetaBlock),
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
            ItemKind::Use(_) | ItemKind::Meta(_) | ItemKind::Test(_) => None,
        }
    }
}

/// `meta { ... }`: passed through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaBlock {
    pub raw: String,
    pub span: Span,
}

// ------------------------------------------------------------------ ladder header

#[derive(Debug, Clone, PartialEq)]
pub struct LadderDecl {
    pub name: Ident,
    pub entries: Vec<Ident>,
    pub blocks: Vec<PropBlock>,
    pub vars: Vec<VarDecl>,
    pub meta: Vec<MetaBlock>,
    pub unknown: Vec<UnknownStmt>,
}

/// A named `key: value` block such as `limits { .. }` or `budget { .. }`.
#[derive(Debug, Clone, PartialEq)]
pub struct PropBlock {
    pub name: Ident,
    pub props: Vec<Prop>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    pub key: Ident,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VarDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Literal>,
}

/// A statement the grammar does not know; the checker reports it with a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownStmt {
    pub keyword: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `$2.50/Mtok`: dollars per million tokens (normalised).
    Price(f64),
    /// `$0.04`
    Money(f64),
    /// `1.2s`, `300ms`: seconds.
    Duration(f64),
    Number(f64),
    String(String),
    Bool(bool),
    Env(String),
    Ident(String),
    List(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    String(String),
    Number(f64),
    Bool(bool),
    Duration(f64),
    Money(f64),
}

// ------------------------------------------------------------------ models, intents, types

#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecl {
    pub name: Ident,
    pub props: Vec<Prop>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
    pub examples: Vec<StringLit>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeDecl {
    pub name: Ident,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub docs: Vec<String>,
    pub name: Ident,
    pub ty: TypeExpr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub optional: bool,
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

#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// A builtin (`string`, `int`, ...) or a record type; resolved by the checker.
    Named(Ident),
    List(Box<TypeExpr>),
    Enum(Vec<Ident>),
}

// ------------------------------------------------------------------ tools

#[derive(Debug, Clone, PartialEq)]
pub struct ToolDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub returns: Option<TypeExpr>,
    pub description: Option<StringLit>,
    pub implementations: Vec<ToolImpl>,
    pub timeout: Option<(f64, Span)>,
    pub retries: Option<(f64, Span)>,
    pub unknown: Vec<UnknownStmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    /// `= env(X)`, `= session.x` or a literal: hidden from the model.
    pub binding: Option<Binding>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    Env(Ident),
    Session(Ident),
    Literal(Literal),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolImpl {
    pub kind: ToolImplKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolImplKind {
    Http {
        method: String,
        url: StringLit,
        bearer_env: Option<Ident>,
        headers: Vec<(StringLit, HeaderValue)>,
        body: Option<Json>,
    },
    Exec {
        program: StringLit,
        args: Vec<StringLit>,
    },
    Mock(Json),
    Host(Option<StringLit>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    Env(Ident),
    Literal(StringLit),
}

/// A JSON literal written in the source (mock results, http bodies).
#[derive(Debug, Clone, PartialEq)]
pub struct Json {
    pub kind: JsonKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonKind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(Ident, Json)>),
}

impl Json {
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

#[derive(Debug, Clone, PartialEq)]
pub struct AgentDecl {
    pub name: Ident,
    pub stmts: Vec<AgentStmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentStmt {
    pub docs: Vec<String>,
    pub attrs: Vec<Attr>,
    pub kind: AgentStmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentStmtKind {
    Model(Ident),
    Prompt(Prompt),
    Tools(Vec<Ident>),
    Accepts(Vec<Ident>),
    Handoff(Box<Handoff>),
    Escalate(Box<Escalate>),
    Consult(Ident),
    Sla {
        seconds: f64,
        duration_span: Span,
        otherwise: Option<Ident>,
    },
    Fallback(Ident),
    Router,
    Unknown(UnknownStmt),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The prompt text; triple-quoted prompts are de-indented (common leading whitespace removed).
    pub text: String,
    /// Byte offset in the source of `text[0]`, for spans of `{{var}}` references. For de-indented
    /// prompts the offsets of each template reference are recorded separately in `templates`.
    pub templates: Vec<TemplateRef>,
    pub span: Span,
}

/// A `{{name}}` or `{{intent.field}}` reference inside a prompt or `say`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRef {
    /// The dotted path, e.g. `["intent", "summary"]`.
    pub path: Vec<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub intent: Ident,
    pub target: Ident,
    pub context: Option<ContextClause>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContextClause {
    pub policy: Ident,
    pub argument: Option<(f64, Span)>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Escalate {
    pub target: Ident,
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub first: Comparison,
    pub rest: Vec<(LogicOp, Comparison)>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub signal: Ident,
    pub op: CompareOp,
    pub operand: Operand,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
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

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    String(String),
    Bool(bool),
    Ident(String),
}

// ------------------------------------------------------------------ humans and scripts

#[derive(Debug, Clone, PartialEq)]
pub struct HumanDecl {
    pub name: Ident,
    pub description: Option<StringLit>,
    pub props: Vec<Prop>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptDecl {
    pub name: Ident,
    pub stmts: Vec<ScriptStmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStmt {
    pub kind: ScriptStmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStmtKind {
    Say(Prompt),
    Collect {
        name: Ident,
        ty: TypeExpr,
        question: Option<StringLit>,
    },
    Handoff(Ident),
    End,
    Unknown(UnknownStmt),
}

// ------------------------------------------------------------------ scenario tests

/// `test "name" { user ".." model a says ".." expect .. }`
#[derive(Debug, Clone, PartialEq)]
pub struct TestDecl {
    pub name: StringLit,
    pub steps: Vec<TestStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestStep {
    pub kind: TestStepKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestStepKind {
    /// A user turn.
    User(StringLit),
    /// A scripted model answer for an agent: a text reply.
    Says {
        agent: Ident,
        text: StringLit,
    },
    /// A scripted model answer for an agent: a function call.
    Calls {
        agent: Ident,
        function: Ident,
        arguments: Option<Json>,
    },
    /// `tool T returns {..}` / `tool T fails ".."`: the test's answer for a tool.
    Stub {
        tool: Ident,
        outcome: StubOutcome,
    },
    Expect(Expectation),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StubOutcome {
    Returns(Json),
    Fails(StringLit),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    Handoff {
        from: Ident,
        to: Ident,
        intent: Option<Ident>,
    },
    Agent(Ident),
    Escalation {
        from: Option<Ident>,
        to: Ident,
    },
    Human(Option<Ident>),
    Reply {
        negated: bool,
        regex: bool,
        text: StringLit,
    },
    Tool {
        tool: Ident,
        arguments: Option<Json>,
    },
    Ceiling(Ident),
    Fallback {
        from: Ident,
        to: Ident,
    },
    Var {
        name: Ident,
        op: CompareOp,
        value: Operand,
        value_span: Span,
    },
    Ended,
}
