//! The checked program: what the runtime executes. No spans, no AST; maps are ordered so that two
//! equal ladders lower to equal (and identically serialised) programs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub version: u32,
    pub name: String,
    pub entry: String,
    pub limits: Limits,
    pub budget: Budget,
    pub vars: BTreeMap<String, Var>,
    pub models: BTreeMap<String, Model>,
    pub intents: BTreeMap<String, Intent>,
    /// Record types as JSON Schema.
    pub types: BTreeMap<String, serde_json::Value>,
    pub tools: BTreeMap<String, Tool>,
    pub agents: BTreeMap<String, Agent>,
    pub humans: BTreeMap<String, Human>,
    pub scripts: BTreeMap<String, Script>,
    /// `meta { .. }` blocks, verbatim.
    pub meta: Vec<String>,
    /// Scenario tests, in source order.
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

/// Hard ceilings per turn. Defaults apply to keys a ladder does not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub steps_per_turn: u32,
    pub tool_calls_per_turn: u32,
    pub handoffs_per_turn: u32,
    pub escalation_depth: u32,
    /// Corrective retries after an undeclared tool or target, or arguments that fail the schema.
    pub corrections_per_step: u32,
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

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Budget {
    pub latency_p95_seconds: Option<f64>,
    pub cost_per_turn: Option<f64>,
    pub cost_per_session: Option<f64>,
    pub min_pass_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Var {
    pub schema: serde_json::Value,
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub provider: String,
    pub name: String,
    pub input_per_mtok: Option<f64>,
    pub output_per_mtok: Option<f64>,
    /// Price of prompt tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_seconds: Option<f64>,
    /// `tool_schemas: strict`: function parameters are sent with `additionalProperties: false`
    /// and every `required` list (default `lean`: only what constrains).
    #[serde(default)]
    pub strict_tool_schemas: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub description: Option<String>,
    pub examples: Vec<String>,
    /// JSON Schema of the payload (an object; empty when the intent carries none).
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub description: Option<String>,
    /// JSON Schema of the parameters the model fills (bound parameters excluded).
    pub parameters: serde_json::Value,
    pub bound: BTreeMap<String, BoundParam>,
    pub returns: Option<serde_json::Value>,
    pub implementation: ToolImpl,
    pub timeout_seconds: Option<f64>,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum BoundParam {
    Env { name: String },
    Session { var: String },
    Literal { value: serde_json::Value },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolImpl {
    Http {
        method: String,
        url: String,
        bearer_env: Option<String>,
        headers: Vec<(String, HeaderValue)>,
        body: Option<serde_json::Value>,
    },
    Exec {
        program: String,
        args: Vec<String>,
    },
    Mock {
        result: serde_json::Value,
    },
    Host {
        name: String,
    },
    /// Always fails with `message` (a scenario test's `tool T fails ".."`, or a live tool a test
    /// did not stub).
    Fail {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum HeaderValue {
    Env { name: String },
    Literal { value: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub description: Option<String>,
    pub model: String,
    pub prompt: String,
    pub router: bool,
    pub tools: Vec<String>,
    /// Intents this agent accepts from handoffs; `None` means any.
    pub accepts: Option<Vec<String>>,
    pub handoffs: Vec<HandoffEdge>,
    pub escalations: Vec<EscalationEdge>,
    pub consults: Vec<String>,
    pub sla: Option<Sla>,
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffEdge {
    pub intent: String,
    pub target: String,
    pub context: ContextPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ContextPolicy {
    Full,
    NoTools,
    LastTurns { turns: u32 },
    Summary,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationEdge {
    pub target: String,
    pub condition: Option<Condition>,
}

/// `a < 0.7 and b == "x"`: comparisons joined left to right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub first: Comparison,
    pub rest: Vec<(Logic, Comparison)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logic {
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub signal: String,
    pub op: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    pub seconds: f64,
    pub otherwise: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Human {
    pub description: Option<String>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    pub steps: Vec<ScriptStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ScriptStep {
    Say {
        text: String,
    },
    Collect {
        var: String,
        schema: serde_json::Value,
        question: Option<String>,
    },
    Handoff {
        target: String,
    },
    End,
}

/// A scenario test: user turns, optional scripted model answers, and expectations on each turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: String,
    pub steps: Vec<TestStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum TestStep {
    User {
        text: String,
    },
    /// The scripted model answer of `agent`: a text reply.
    Says {
        agent: String,
        text: String,
    },
    /// The scripted model answer of `agent`: a function call.
    Calls {
        agent: String,
        function: String,
        arguments: serde_json::Value,
    },
    /// The test's answer for a tool, from this step on: a result, or an error the model sees.
    Stub {
        tool: String,
        result: Option<serde_json::Value>,
        error: Option<String>,
    },
    Expect {
        expectation: Expectation,
    },
}

/// What must have happened in the latest turn (or, for `var` and `ended`, in the session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expectation {
    Handoff {
        from: String,
        to: String,
        intent: Option<String>,
    },
    Agent {
        name: String,
    },
    Escalation {
        from: Option<String>,
        to: String,
    },
    Human {
        name: Option<String>,
    },
    Reply {
        negated: bool,
        regex: bool,
        text: String,
    },
    Tool {
        tool: String,
        arguments: Option<serde_json::Value>,
    },
    Ceiling {
        name: String,
    },
    Fallback {
        from: String,
        to: String,
    },
    Var {
        name: String,
        op: String,
        value: serde_json::Value,
    },
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
