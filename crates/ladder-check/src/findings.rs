//! What the checker's passes find, as data.
//!
//! A pass reports a [`Finding`]: which situation, and the names, spans and numbers that
//! describe it. It says nothing about wording. [`crate::words`] is the one module that turns a
//! finding into a [`crate::Diagnostic`] with its code, message, labels, help and fixes, so the
//! wording of every code exists once, and a pass can be read (and changed) without its prose.

use crate::bounds::WorstCase;
use crate::graph::EdgeKind;
use crate::index::Namespace;
use crate::program::ContextPolicy;
use crate::templates::Arrival;
use crate::vocabulary::Expect;
use ladder_syntax::ast::{Ident, StringLit, TemplateRef, TypeExpr, ValueKind};
use ladder_syntax::{ParseError, Span};

/// One problem a pass found. Variants are grouped by the pass that reports them.
#[derive(Debug)]
pub(crate) enum Finding<'a> {
    // ---- front end: syntax, version, files, lint attributes
    /// L0001 from the parser.
    Syntax(ParseError),
    /// L0002: the file does not start with `ladder 1`.
    NoVersion { at: Span },
    /// L0002: `ladder 7`.
    UnsupportedVersion { at: Span, raw: &'a str },
    /// L0020: `use "x.txt"`.
    UseNotLadder { at: Span, target: &'a str },
    /// L0019: a `use` leads back to a file still being loaded; `via` are the `use`s on the way.
    UseCycle {
        at: Span,
        target: &'a str,
        via: Vec<Span>,
    },
    /// L0020: a `use`d file that cannot be read.
    UnreadableUse {
        at: Span,
        path: String,
        error: String,
    },
    /// L0035: more items than `--max-items`.
    TooManyItems {
        at: Span,
        items: usize,
        limit: usize,
    },
    /// L0026: `#[allow(nonsense)]`.
    UnknownLint {
        at: Span,
        name: &'a str,
        suggestion: Option<&'a str>,
    },
    /// L0026: `#[allow(L0004)]`: errors cannot be allowed.
    AllowedError { at: Span, code: crate::Code },

    // ---- names (index)
    /// L0032: a statement, key or block given twice; `what` names it, `keep` says what to do.
    Repeated {
        first: Span,
        again: Span,
        what: String,
        keep: &'static str,
    },
    /// L0003: a name defined twice; `kind` is what the second one is.
    Duplicate {
        name: &'a Ident,
        first: Span,
        kind: &'static str,
        shared_rung_namespace: bool,
    },
    /// L0006: a second `ladder` header.
    SecondHeader { at: Span, first: Span },
    /// L0007: a statement a block does not have.
    UnknownStatement {
        keyword: &'a Ident,
        block: &'static str,
        known: &'static [&'static str],
        suggestion: Option<&'static str>,
    },
    /// L0005: a name of another kind (`found`) where `role` needs a name in `ns`.
    WrongKind {
        name: &'a Ident,
        found: &'static str,
        role: &'a str,
        ns: Namespace,
        example: Option<&'a str>,
    },
    /// L0004: a name nothing in `ns` defines; `known` are the names that are.
    Undefined {
        name: &'a Ident,
        ns: Namespace,
        suggestion: Option<&'a str>,
        known: Vec<&'a str>,
    },

    // ---- the agent graph
    /// L0008: `owns` with a policy other than `turn` or `conversation`.
    BadOwnership {
        policy: &'a Ident,
        suggestion: Option<&'static str>,
    },
    /// L0039: `return` (or `owns turn`, when `returns` is false) on an agent no agent hands
    /// off to.
    ReturnWithoutDelegator {
        at: Span,
        agent: &'a str,
        returns: bool,
    },
    /// L0009: a human's `fallback` without the `sla` that would run it.
    FallbackWithoutSla { fallback: &'a Ident, human: &'a str },
    /// L0006: no `ladder` header in any file.
    NoHeader { at: Span },
    /// L0006: a header without `entry`.
    NoEntry {
        ladder: &'a Ident,
        example: Option<&'a str>,
    },
    /// L0005: the entry is a human.
    HumanEntry { entry: &'a Ident },
    /// L0010: a cycle of downward edges, in order.
    HandoffCycle { steps: Vec<CycleStep<'a>> },
    /// L0011: a rung no path from the entry reaches.
    Unreachable {
        at: Span,
        kind: &'static str,
        name: &'a str,
        entry: &'a str,
    },
    /// L0012: an escalation to a rung that is not above the agent (or to itself).
    EscalationDirection {
        target: &'a Ident,
        agent: &'a str,
        itself: bool,
    },
    /// L0008: a session variable compared with a value of another type.
    ConditionType {
        at: Span,
        name: &'a str,
        ty: &'a TypeExpr,
    },
    /// L0008: a signal compared with a number outside its range.
    ConstantCondition {
        at: Span,
        name: &'a str,
        min: f64,
        max: Option<f64>,
        always: bool,
    },
    /// L0008: a numeric signal compared with something that is not a number.
    SignalNotNumber {
        at: Span,
        name: &'a str,
        min: f64,
        max: Option<f64>,
    },
    /// L0008: `tool_errors` on an agent without tools.
    ToolErrorsWithoutTools { at: Span },
    /// L0031: a condition on a signal the runtime does not compute.
    UnknownSignal {
        signal: &'a Ident,
        suggestion: Option<&'a str>,
    },
    /// L0014: two handoffs of one agent with one intent.
    DuplicateIntentEdge {
        agent: &'a str,
        intent: &'a Ident,
        first: Span,
    },
    /// L0022: a handoff whose receiver does not accept its intent.
    NotAccepted {
        sender: &'a str,
        intent: &'a Ident,
        receiver: &'a str,
        accepts: &'a [&'a Ident],
    },
    /// L0013: a router without handoffs.
    RouterWithoutHandoff { at: Span, agent: &'a str },
    /// L0008: `fuse` on a handoff whose receiver hands off nowhere (a person, a script, an
    /// agent without handoffs): there is nothing to route through to.
    FuseThroughNothing { at: Span, receiver: &'a str },
    /// L0024: a script with neither `end` nor `handoff`.
    ScriptWithoutEnd { at: Span, script: &'a str },
    /// L0024: a script whose handoffs all lead to rungs that cannot answer.
    ScriptDeadEnd { at: Span, script: &'a str },
    /// L0024: a router whose handoffs all lead to rungs that cannot answer.
    RouterDeadEnd { at: Span, agent: &'a str },
    /// L0028: a statement after a script's `end` or `handoff`.
    StatementAfterEnd { at: Span, stop: Span },

    // ---- templates and context policies
    /// L0018: `last(N)` outside 1..=1000.
    LastTurns { at: Span, turns: f64 },
    /// L0008: `last` without a number.
    LastWithoutTurns { at: Span },
    /// L0008: `summary(3)`.
    PolicyArgument { at: Span, policy: &'a str },
    /// L0007: a context policy that does not exist.
    UnknownPolicy {
        policy: &'a Ident,
        suggestion: Option<&'static str>,
    },
    /// L0023 (`{{summary}}`) or L0015 (`{{intent.x}}`): a prompt value that an arrival other
    /// than a handoff (`how`, from `from`, at `arrived_at`; `more` others) leaves empty.
    ArrivalWithout {
        at: Span,
        prompt_of: &'a str,
        reference: &'a TemplateRef,
        from: &'a str,
        how: Arrival,
        arrived_at: Span,
        more: usize,
    },
    /// L0038: per-turn data before static text in a prompt.
    UncacheablePrompt { at: Span, value: &'a str },
    /// L0023: `{{transcript}}` or `{{summary}}` in a script.
    HistoryInScript { reference: &'a TemplateRef },
    /// L0015: a `{{name}}` that is no builtin or session variable; `declaration` is where and
    /// what to insert to declare it.
    UndeclaredTemplate {
        reference: &'a TemplateRef,
        name: &'a str,
        suggestion: Option<&'a str>,
        declaration: Option<(Span, String)>,
    },
    /// L0023: a prompt needs history (`needs_summary`: a summary; else the transcript) that a
    /// handoff's context policy does not carry.
    HistoryMismatch {
        reference: &'a TemplateRef,
        prompt_of: &'a str,
        needs_summary: bool,
        from: &'a str,
        policy: ContextPolicy,
        context_at: Span,
    },
    /// L0015: `{{intent.x}}` and an incoming intent without field `x`.
    NoIntentField {
        reference: &'a TemplateRef,
        field: &'a str,
        intent: &'a str,
        declared: Span,
        receiver: &'a str,
        from: &'a str,
        suggestion: Option<&'a str>,
    },

    // ---- bounds and budgets
    /// L0021: the worst-case cost per turn (or session) exceeds the budget.
    CostOverBudget {
        at: Span,
        per_session: bool,
        cost: f64,
        limit: f64,
        worst: &'a WorstCase,
    },
    /// L0021: the slowest chain of SLAs exceeds the latency budget.
    LatencyOverBudget {
        at: Span,
        bound: f64,
        limit: f64,
        slowest: Vec<String>,
    },
    /// L0036: agents without an SLA leave only the turn deadline, which is over the budget.
    LatencyUnproved {
        at: Span,
        limit: f64,
        without_sla: &'a [&'a str],
        deadline: f64,
    },
    /// L0036: a cost budget per `per` ("turn", "session") that nothing bounds.
    CostUnproved {
        at: Span,
        limit: f64,
        per: &'static str,
        why: CostUnknown<'a>,
    },
    /// L0018: fewer handoffs per turn than the shortest path to an answer needs.
    HandoffsTooFew {
        at: Span,
        limit: u32,
        needed: u32,
        path: Vec<&'a str>,
    },
    /// L0018: `escalation_depth: 0` and `agent` escalates.
    EscalationForbidden { at: Span, agent: &'a str },
    /// L0018: the escalation depth is below the escalations `path` needs to reach a person.
    EscalationTooShallow {
        at: Span,
        depth: u32,
        needed: usize,
        path: Vec<&'a str>,
    },
    /// L0030: an agent's SLA alone is longer than the latency budget.
    SlaOverBudget {
        at: Span,
        agent: &'a str,
        seconds: f64,
        limit: f64,
        budget_at: Span,
    },

    // ---- scenario tests
    /// L0003: two tests with one name.
    DuplicateTest { name: &'a StringLit, first: Span },
    /// L0034: `expect` before any `user` line.
    ExpectationBeforeUser { at: Span },
    /// L0034: a test without a `user` line.
    NoUserTurn { name: &'a StringLit },
    /// L0037: `model X calls F` where `X` is never offered `F`; `by_intent` is the handoff
    /// function meant when `F` names an intent, `offered` what `X` is offered.
    UnofferedCall {
        agent: &'a Ident,
        function: &'a Ident,
        by_intent: Option<String>,
        suggestion: Option<&'a str>,
        offered: &'a [String],
    },
    /// L0027: a stub result that does not fit the tool's return type.
    StubMisfit {
        at: Span,
        tool: &'a Ident,
        returns: &'a TypeExpr,
        expected: String,
    },
    /// L0034: `called with` something that is not an object.
    ArgumentsNotObject { at: Span, tool: &'a Ident },
    /// L0034: `called with { x: .. }` and the tool has no parameter `x`.
    NoSuchArgument {
        key: &'a Ident,
        tool: &'a Ident,
        suggestion: Option<&'a str>,
        params: Vec<&'a str>,
    },
    /// L0034: an expected argument of another type than its parameter.
    ArgumentMisfit {
        at: Span,
        param: &'a Ident,
        tool: &'a Ident,
        ty: &'a TypeExpr,
        expected: String,
    },
    /// L0034: an expected handoff the ladder does not declare; `edges` are the sender's
    /// (receiver, intent).
    NoSuchHandoff {
        from: &'a Ident,
        to: &'a Ident,
        intent: Option<&'a Ident>,
        edges: &'a [(String, Option<String>)],
    },
    /// L0034: an expected escalation nothing declares.
    NoSuchEscalation {
        from: Option<&'a Ident>,
        to: &'a Ident,
    },
    /// L0034: `expect human X` and `X` is no human.
    NotAHuman { name: &'a Ident },
    /// L0008: `matches` with a regular expression that does not compile.
    BadRegex { at: Span, error: String },
    /// L0007: `expect ceiling x` for a ceiling the runtime does not have.
    UnknownCeiling {
        name: &'a Ident,
        suggestion: Option<&'static str>,
    },
    /// L0034: an expected fallback the agent does not declare.
    NoSuchFallback { from: &'a Ident, to: &'a Ident },
    /// L0034: `expect var x` and `x` is no session variable.
    NotASessionVariable {
        name: &'a Ident,
        suggestion: Option<&'a str>,
    },

    // ---- types and tools
    /// L0016: a type name nothing declares.
    UnknownType {
        name: &'a Ident,
        suggestion: Option<&'a str>,
    },
    /// L0033: `what` (a field, parameter, variant..) declared twice in one list.
    DuplicateField {
        name: &'a Ident,
        first: Span,
        what: &'a str,
    },
    /// L0025: `session.x` bound to a parameter, and `x` is no session variable.
    UnknownBinding {
        var: &'a Ident,
        suggestion: Option<&'a str>,
    },
    /// L0025: a bound variable of another type than its parameter.
    BindingType {
        var: &'a Ident,
        var_ty: &'a TypeExpr,
        param: &'a Ident,
        param_ty: &'a TypeExpr,
    },
    /// L0005: `approval X` where `X` is not a human.
    ApproverNotHuman { name: &'a Ident, kind: &'static str },
    /// L0009: a tool with no `http`, `exec`, `mock`, `host` or `mcp`.
    NoImplementation { tool: &'a Ident },
    /// L0009: an MCP server with neither `command` nor `url`.
    McpWithoutTransport { server: &'a Ident },
    /// L0032: an MCP server with both `command` and `url`.
    McpTwoTransports { command: Span, url: Span },
    /// L0008: an MCP server's value that cannot work: `why` says what is wrong.
    McpBadValue {
        at: Span,
        server: &'a str,
        why: &'static str,
    },
    /// L0029: `{name}` in a URL that is not a parameter.
    UrlPlaceholder {
        at: Span,
        tool: &'a str,
        name: String,
        suggestion: Option<&'a str>,
    },
    /// L0027: a mock result that does not fit the return type.
    MockMisfit {
        at: Span,
        tool: &'a str,
        returns: Span,
        expected: String,
    },
    /// L0018: a tool timeout that is not positive or over 10 minutes.
    ToolTimeout { at: Span, seconds: f64 },
    /// L0018: retries that are not a whole number from 0 to 10.
    ToolRetries { at: Span, retries: f64 },

    // ---- key: value blocks (props)
    /// L0007: a key the block does not take.
    UnknownKey {
        key: &'a Ident,
        block: &'a str,
        known: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    /// L0008: a value of the wrong kind for its key.
    WrongValue {
        at: Span,
        block: &'a str,
        key: &'a str,
        expect: Expect,
        found: &'a ValueKind,
    },
    /// L0018: zero, negative or below `min`.
    NotPositive {
        at: Span,
        block: &'a str,
        key: &'a str,
        value: f64,
        min: f64,
        unit: &'a str,
    },
    /// L0018: over `max`.
    TooLarge {
        at: Span,
        block: &'a str,
        key: &'a str,
        value: f64,
        max: f64,
        unit: &'a str,
    },
    /// L0008: a value outside a key's choices.
    UnknownChoice {
        at: Span,
        key: &'a str,
        value: &'a str,
        expect: Expect,
        suggestion: Option<&'static str>,
    },
    /// L0007: a header block other than limits, budget, vars, meta.
    UnknownHeaderBlock {
        name: &'a Ident,
        suggestion: Option<&'static str>,
    },
    /// L0009: a model without `provider` or `name`.
    ModelLacks {
        model: &'a Ident,
        required: &'static str,
    },

    // ---- declarations (lib)
    /// L0008: a `collect` that gives a header variable another type.
    CollectRetyped {
        name: &'a Ident,
        declared: &'a TypeExpr,
        ty: &'a TypeExpr,
    },
    /// L0008: `vip: bool = "no"`.
    DefaultMisfit {
        at: Span,
        name: &'a Ident,
        ty: &'a TypeExpr,
        expected: String,
    },
    /// L0008: `prompt ""`.
    EmptyPrompt { at: Span, agent: &'a str },
    /// L0009: an agent without `model`; `example` is a declared model to suggest.
    NoModel {
        at: Span,
        agent: &'a str,
        example: Option<&'a str>,
    },
    /// L0009: an agent without `prompt`.
    NoPrompt { at: Span, agent: &'a str },
    /// L0017: a tool, intent, model or type nothing refers to.
    Unused {
        at: Span,
        kind: Unused,
        name: &'a str,
    },
}

/// One edge of a reported cycle.
#[derive(Debug)]
pub(crate) struct CycleStep<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub kind: EdgeKind,
    /// The intent of a handoff, the condition of a fallback.
    pub label: Option<&'a str>,
    pub span: Span,
}

/// Why a cost budget cannot be proved.
#[derive(Debug)]
pub(crate) enum CostUnknown<'a> {
    /// What the worst case could not price (a model without prices or token limits).
    Model(&'a str),
    /// A session budget and no `turns_per_session`.
    NoTurnsPerSession,
}

/// What an unused item is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unused {
    Tool,
    Intent,
    Model,
    Type,
    Mcp,
}
