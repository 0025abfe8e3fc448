//! The checked program: what the runtime executes. No spans, no AST; maps are ordered so that two
//! equal ladders lower to equal (and identically serialised) programs.
//!
//! Its JSON form is what `ladderc check --emit-program FILE` writes, for a runtime embedded
//! without the compiler (docs/runtime.md). Names are the ladder's own; every JSON Schema here is
//! the one the runtime validates model arguments and payloads against.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole ladder, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// The language version (`ladder 1`).
    pub version: u32,
    /// The ladder's name (`ladder NAME { .. }`).
    pub name: String,
    /// The rung every new session starts at.
    pub entry: String,
    /// The hard ceilings of a turn.
    pub limits: Limits,
    /// The targets `check` proved and `ladderc test` gates on.
    pub budget: Budget,
    /// Session variables, by name.
    pub vars: BTreeMap<String, Var>,
    /// Models, by the name the ladder gives them.
    pub models: BTreeMap<String, Model>,
    /// Intents, by name.
    pub intents: BTreeMap<String, Intent>,
    /// Record types as JSON Schema.
    pub types: BTreeMap<String, serde_json::Value>,
    /// Tools, by name.
    pub tools: BTreeMap<String, Tool>,
    /// Agents (model rungs), by name.
    pub agents: BTreeMap<String, Agent>,
    /// People (the last rungs), by name.
    pub humans: BTreeMap<String, Human>,
    /// Model-free scripts, by name.
    pub scripts: BTreeMap<String, Script>,
    /// MCP servers whose tools the ladder uses, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, McpServer>,
    /// `meta { .. }` blocks, verbatim.
    pub meta: Vec<String>,
    /// Scenario tests, in source order.
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

/// Hard ceilings per turn. Defaults apply to keys a ladder does not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Model calls a rung may make in one turn (a fallback starts a fresh allowance).
    pub steps_per_turn: u32,
    /// Tool calls and consults a rung may make in one turn.
    pub tool_calls_per_turn: u32,
    /// Handoffs by agents in one turn.
    pub handoffs_per_turn: u32,
    /// How deep the escalation stack may grow.
    pub escalation_depth: u32,
    /// Corrective retries after an undeclared tool or target, or arguments that fail the schema.
    pub corrections_per_step: u32,
    /// Turns a session may take (none: unlimited).
    pub turns_per_session: Option<u32>,
    /// How deep consults may nest: a consulted agent may consult in turn while the depth is
    /// below this (1: consulted agents do not consult). Every consult is also a tool call.
    #[serde(default = "default_consult_depth")]
    pub consult_depth: u32,
    /// The whole turn's deadline in seconds (default 120): past it the turn ends with
    /// `ceiling_hit` `turn_deadline` and an error, whatever was streaming.
    #[serde(default = "default_turn_deadline")]
    pub turn_deadline_seconds: f64,
}

fn default_turn_deadline() -> f64 {
    120.0
}

fn default_consult_depth() -> u32 {
    3
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            steps_per_turn: 12,
            tool_calls_per_turn: 8,
            handoffs_per_turn: 4,
            escalation_depth: 4,
            corrections_per_step: 2,
            turns_per_session: None,
            consult_depth: default_consult_depth(),
            turn_deadline_seconds: default_turn_deadline(),
        }
    }
}

/// Targets: `check` compares the worst case with them, `ladderc test` gates runs on them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Budget {
    /// The 95th percentile of turn latency, in seconds.
    pub latency_p95_seconds: Option<f64>,
    /// The most a turn may cost, in dollars.
    pub cost_per_turn: Option<f64>,
    /// The most a session may cost, in dollars.
    pub cost_per_session: Option<f64>,
    /// The share of scenario runs that must pass (0 to 1).
    pub min_pass_rate: Option<f64>,
}

/// A session variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Var {
    /// Its type, as JSON Schema.
    pub schema: serde_json::Value,
    /// Its value when a session starts, if declared.
    pub default: Option<serde_json::Value>,
}

/// A model as the ladder declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `openai`, `azure`, `vllm`, `ollama`, `llamacpp` or `sim`.
    pub provider: String,
    /// The provider's model name (`gpt-4o-mini`).
    pub name: String,
    /// Dollars per million prompt tokens.
    pub input_per_mtok: Option<f64>,
    /// Dollars per million completion tokens.
    pub output_per_mtok: Option<f64>,
    /// Price of prompt tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// Price of prompt tokens written to the provider's cache (Anthropic charges more than for
    /// input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    /// The context the runtime trims history to.
    pub max_input_tokens: Option<u64>,
    /// Sent as `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// The sampling temperature (else 0 for routers, 0.2 for other agents).
    pub temperature: Option<f64>,
    /// The endpoint, if not the backend's default.
    pub base_url: Option<String>,
    /// The environment variable that holds the API key.
    pub api_key_env: Option<String>,
    /// How long one model call may take, in seconds.
    pub timeout_seconds: Option<f64>,
    /// `tool_schemas: strict`: function parameters are sent with `additionalProperties: false`
    /// and every `required` list (default `lean`: only what constrains).
    #[serde(default)]
    pub strict_tool_schemas: bool,
}

/// What a handoff carries: a reason with a typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// What the intent means, offered to the routing model.
    pub description: Option<String>,
    /// Example user messages for the intent.
    pub examples: Vec<String>,
    /// JSON Schema of the payload (an object; empty when the intent carries none).
    pub payload: serde_json::Value,
}

/// A typed tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// What the tool does, offered to the model.
    pub description: Option<String>,
    /// JSON Schema of the parameters the model fills (bound parameters excluded).
    pub parameters: serde_json::Value,
    /// Parameters the runtime fills itself (hidden from the model), by name.
    pub bound: BTreeMap<String, BoundParam>,
    /// JSON Schema of the result, if declared.
    pub returns: Option<serde_json::Value>,
    /// How a call runs.
    pub implementation: ToolImpl,
    /// How long one call may take, in seconds.
    pub timeout_seconds: Option<f64>,
    /// Retries of a failed call.
    pub retries: u32,
    /// The human who approves every call before it runs (`approval HUMAN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// An MCP server (`mcp NAME { .. }`): how to reach it. Its tools are declared as ladder tools
/// with `mcp NAME`, so their signatures are pinned and checked like every other tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpServer {
    /// What it serves.
    pub description: Option<String>,
    /// How to reach it.
    pub transport: McpTransport,
    /// How long starting it and listing its tools may take, in seconds.
    pub timeout_seconds: Option<f64>,
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum McpTransport {
    /// A local process speaking JSON-RPC on stdin/stdout (`command: [..]`).
    Stdio {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Environment variables passed through to it (it starts with a clean environment).
        env: Vec<String>,
    },
    /// Streamable HTTP (`url: ".."`).
    Http {
        /// The endpoint.
        url: String,
        /// The environment variable holding a bearer token, if any.
        bearer_env: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
/// Where a bound tool parameter's value comes from.
pub enum BoundParam {
    /// `= env(NAME)`
    Env {
        /// The environment variable.
        name: String,
    },
    /// `= session.var`
    Session {
        /// The session variable.
        var: String,
    },
    /// A literal value.
    Literal {
        /// The value.
        value: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
/// How a tool call runs.
pub enum ToolImpl {
    /// An HTTP request; `{param}` in the URL is filled from the arguments.
    Http {
        /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
        method: String,
        /// The URL template.
        url: String,
        /// The environment variable of a bearer token, if any.
        bearer_env: Option<String>,
        /// Extra headers.
        headers: Vec<(String, HeaderValue)>,
        /// A body template; the arguments are sent as JSON without one.
        body: Option<serde_json::Value>,
    },
    /// A local program (only with `--allow-exec`), given the arguments as JSON on stdin.
    Exec {
        /// The program.
        program: String,
        /// Its command-line arguments.
        args: Vec<String>,
    },
    /// A fixed result.
    Mock {
        /// The result.
        result: serde_json::Value,
    },
    /// A function the embedding program registers (`Runtime::tool`).
    Host {
        /// The name it is registered under.
        name: String,
    },
    /// A tool of a declared MCP server.
    Mcp {
        /// The `mcp` item's name.
        server: String,
        /// The tool's name on the server.
        tool: String,
    },
    /// Always fails with `message` (a scenario test's `tool T fails ".."`, or a live tool a test
    /// did not stub).
    Fail {
        /// The error the model sees.
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
/// Where an HTTP header's value comes from.
pub enum HeaderValue {
    /// An environment variable.
    Env {
        /// Its name.
        name: String,
    },
    /// The text as written.
    Literal {
        /// The text.
        value: String,
    },
}

/// A model rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's doc comment, if any.
    pub description: Option<String>,
    /// The model it runs on.
    pub model: String,
    /// Its system prompt, with `{{..}}` templates filled per call.
    pub prompt: String,
    /// A router only hands off; it never replies.
    pub router: bool,
    /// `return`: it may hand the conversation back to the rung that handed it over (the top of
    /// the session's delegation stack).
    #[serde(default)]
    pub returns: bool,
    /// `owns turn`: after its reply, control goes back to the agent that handed it the
    /// conversation (default `owns conversation`: it keeps it until it hands off or returns).
    #[serde(default)]
    pub owns_turn: bool,
    /// Tools it may call.
    pub tools: Vec<String>,
    /// Intents this agent accepts from handoffs; `None` means any.
    pub accepts: Option<Vec<String>>,
    /// Where it may hand the conversation over.
    pub handoffs: Vec<HandoffEdge>,
    /// Where it may escalate.
    pub escalations: Vec<EscalationEdge>,
    /// Agents it may ask a question and get an answer from.
    pub consults: Vec<String>,
    /// How long it may take to reply.
    pub sla: Option<Sla>,
    /// The rung that takes over when it fails.
    pub fallback: Option<String>,
}

/// `handoff INTENT -> TARGET context POLICY`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffEdge {
    /// The intent carried.
    pub intent: String,
    /// The receiving rung.
    pub target: String,
    /// How much history the receiver sees.
    pub context: ContextPolicy,
    /// Whether the sender may route straight through the receiver to the receiver's own
    /// handoff targets, so that one model call decides both hops (docs/runtime.md, "Fused
    /// routing").
    #[serde(default, skip_serializing_if = "Fuse::is_off")]
    pub fuse: Fuse,
}

/// How a sender may route through the receiver of a handoff (docs/runtime.md, "Fused routing").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fuse {
    /// One hop at a time (`no_fuse`, `routing { fuse: off }`, or a receiver that is not a pure
    /// router).
    #[default]
    Off,
    /// The receiver is a pure router (`router`, no tools, no consults): the sender is offered
    /// its handoffs as routes, in place of the receiver when they are all it could do.
    Router,
    /// The edge says `fuse`: the receiver is a pass-through for this sender, which is offered
    /// its handoffs in place of it (its tools, escalations and return are not used on this path).
    Through,
}

impl Fuse {
    /// Not fused.
    pub fn is_off(&self) -> bool {
        *self == Fuse::Off
    }
}

impl Program {
    /// The same program with every handoff one hop at a time, as `routing { fuse: off }` would
    /// have it (for comparing fused and unfused runs).
    pub fn without_fused_routes(mut self) -> Self {
        for agent in self.agents.values_mut() {
            for h in &mut agent.handoffs {
                h.fuse = Fuse::Off;
            }
        }
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
/// How much of the conversation a handoff's receiver sees.
pub enum ContextPolicy {
    /// Everything.
    Full,
    /// Everything but tool calls and results.
    NoTools,
    /// The last turns only.
    LastTurns {
        /// How many.
        turns: u32,
    },
    /// A summary the sender writes.
    Summary,
    /// Nothing but the intent and its payload.
    None,
}

/// `escalate -> TARGET when CONDITION`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationEdge {
    /// The rung above.
    pub target: String,
    /// When the escalation is allowed (always, without one).
    pub condition: Option<Condition>,
}

/// `a < 0.7 and b == "x"`: comparisons joined left to right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The first comparison.
    pub first: Comparison,
    /// The others, each with the operator that joins it to what comes before.
    pub rest: Vec<(Logic, Comparison)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// How comparisons join.
pub enum Logic {
    /// Both hold.
    And,
    /// Either holds.
    Or,
}

/// `signal op value`, e.g. `sentiment < -0.5`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// A runtime signal (`sentiment`, `confidence`, `tool_errors`, ...) or a session variable.
    pub signal: String,
    /// `<`, `<=`, `>`, `>=`, `==` or `!=`.
    pub op: String,
    /// What it is compared with.
    pub value: serde_json::Value,
}

/// `sla DURATION else -> RUNG`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    /// How long the rung may take to reply.
    pub seconds: f64,
    /// The rung that takes over when it is late.
    pub otherwise: Option<String>,
}

/// A person: the last rung. While a person owns a session, the user's messages go to them and
/// never to a model; they reply through the operator API and release the session to a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Human {
    /// Who they are (`"On-call nurse"`).
    pub description: Option<String>,
    /// Every key as written (`queue`, `contact`, `sla`, ...).
    pub properties: BTreeMap<String, String>,
    /// The queue operators pick sessions from (default: the human's name).
    #[serde(default)]
    pub queue: String,
    /// How long the session may wait for a person to claim it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_seconds: Option<f64>,
    /// The rung that takes over when no one claims the session within the SLA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The line the user gets when the session reaches the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
    /// The rungs the person may hand the conversation back to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<String>,
    /// The environment variable holding the URL notified when a session reaches the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// The environment variable holding the secret that signs those notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_secret: Option<String>,
}

/// A model-free rung: fixed lines, typed questions, a handoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Its steps, in order.
    pub steps: Vec<ScriptStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
/// One step of a script.
pub enum ScriptStep {
    /// A fixed line to the caller.
    Say {
        /// The line, templates filled.
        text: String,
    },
    /// A question whose answer is stored, typed, in a session variable.
    Collect {
        /// The variable.
        var: String,
        /// Its type.
        schema: serde_json::Value,
        /// What to ask; without it nothing is asked (a `say` before it may ask).
        question: Option<String>,
    },
    /// Hands the conversation to a rung.
    Handoff {
        /// The rung.
        target: String,
    },
    /// Ends the session.
    End,
}

/// A scenario test: user turns, optional scripted model answers, and expectations on each turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    /// The test's name.
    pub name: String,
    /// Its steps, in order.
    pub steps: Vec<TestStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
/// One step of a scenario test.
pub enum TestStep {
    /// A user turn.
    User {
        /// What the user says.
        text: String,
    },
    /// The scripted model answer of `agent`: a text reply.
    Says {
        /// The agent whose next model call this answers.
        agent: String,
        /// The reply.
        text: String,
    },
    /// The scripted model answer of `agent`: a function call.
    Calls {
        /// The agent whose next model call this answers.
        agent: String,
        /// The function (`transfer_to_billing`, a tool, ...).
        function: String,
        /// Its arguments.
        arguments: serde_json::Value,
    },
    /// The test's answer for a tool, from this step on: a result, or an error the model sees.
    Stub {
        /// The tool.
        tool: String,
        /// The result it returns.
        result: Option<serde_json::Value>,
        /// The error it fails with.
        error: Option<String>,
    },
    /// An expectation on the latest turn.
    Expect {
        /// What must have happened.
        expectation: Expectation,
    },
}

/// What must have happened in the latest turn (or, for `var` and `ended`, in the session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expectation {
    /// `expect handoff A -> B [intent I]`
    Handoff {
        /// The sender.
        from: String,
        /// The receiver.
        to: String,
        /// The intent, if the test names one.
        intent: Option<String>,
    },
    /// `expect agent A`: A owns the conversation after the turn.
    Agent {
        /// The agent.
        name: String,
    },
    /// `expect escalation [A] -> B`
    Escalation {
        /// The rung that escalated, if named.
        from: Option<String>,
        /// The rung above.
        to: String,
    },
    /// `expect human [H]`: a person was asked to take over.
    Human {
        /// The person, if named.
        name: Option<String>,
    },
    /// `expect reply [not] contains|matches "text"`
    Reply {
        /// `not`
        negated: bool,
        /// `matches` (a regular expression) rather than `contains`.
        regex: bool,
        /// The text or pattern.
        text: String,
    },
    /// `expect tool T [called with {..}]`
    Tool {
        /// The tool.
        tool: String,
        /// The arguments the call must include, if given.
        arguments: Option<serde_json::Value>,
    },
    /// `expect ceiling C`: a hard ceiling fired.
    Ceiling {
        /// The ceiling (`steps_per_turn`, ...).
        name: String,
    },
    /// `expect fallback A -> B`
    Fallback {
        /// The rung that failed.
        from: String,
        /// The rung that took over.
        to: String,
    },
    /// `expect var V op value`: a session variable after the turn.
    Var {
        /// The variable.
        name: String,
        /// The comparison.
        op: String,
        /// The value compared with.
        value: serde_json::Value,
    },
    /// `expect ended`: the session has ended.
    Ended,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expectation::Handoff {
                from,
                to,
                intent: Some(i),
            } => write!(f, "handoff {from} -> {to} intent {i}"),
            Expectation::Handoff {
                from,
                to,
                intent: None,
            } => write!(f, "handoff {from} -> {to}"),
            Expectation::Agent { name } => write!(f, "agent {name}"),
            Expectation::Escalation { from: Some(a), to } => write!(f, "escalation {a} -> {to}"),
            Expectation::Escalation { from: None, to } => write!(f, "escalation -> {to}"),
            Expectation::Human { name: Some(h) } => write!(f, "human {h}"),
            Expectation::Human { name: None } => write!(f, "human"),
            Expectation::Reply {
                negated,
                regex,
                text,
            } => {
                write!(
                    f,
                    "reply {}{} {text:?}",
                    if *negated { "not " } else { "" },
                    if *regex { "matches" } else { "contains" }
                )
            }
            Expectation::Tool {
                tool,
                arguments: Some(a),
            } => write!(f, "tool {tool} called with {a}"),
            Expectation::Tool {
                tool,
                arguments: None,
            } => write!(f, "tool {tool}"),
            Expectation::Ceiling { name } => write!(f, "ceiling {name}"),
            Expectation::Fallback { from, to } => write!(f, "fallback {from} -> {to}"),
            Expectation::Var { name, op, value } => write!(f, "var {name} {op} {value}"),
            Expectation::Ended => write!(f, "ended"),
        }
    }
}
