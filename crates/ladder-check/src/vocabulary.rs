//! The words of each block, in one place: the checker's did-you-mean for unknown statements and
//! keys, and the editor's completion at the cursor.

/// Keywords that start an item at the top level of a file.
pub const ITEMS: &[&str] = &[
    "use", "ladder", "model", "intent", "type", "tool", "agent", "human", "script", "mcp", "meta",
    "test",
];
pub(crate) const AGENT_STATEMENTS: &[&str] = &[
    "model", "prompt", "tools", "accepts", "handoff", "escalate", "consult", "sla", "fallback",
    "router", "return", "owns",
];
pub(crate) const HEADER_STATEMENTS: &[&str] =
    &["entry", "limits", "budget", "routing", "vars", "meta"];
pub(crate) const TOOL_STATEMENTS: &[&str] = &[
    "http", "exec", "mock", "host", "mcp", "timeout", "retries", "approval",
];
pub(crate) const SCRIPT_STATEMENTS: &[&str] = &["say", "collect", "handoff", "end"];
const TEST_STATEMENTS: &[&str] = &["user", "model", "tool", "expect"];

/// What may start a line inside the block whose opening line is `head` (`agent triage {`,
/// `limits {`, ...): its statements or keys. `None` at the top level (use [`ITEMS`]) and for
/// blocks of free-form entries (`vars`, intents, types).
pub fn words_in(head: &str) -> Option<Vec<&'static str>> {
    let mut words = head.split_whitespace();
    let first = words.next().unwrap_or("");
    let keys = |table: &[(&'static str, Expect)]| Some(table.iter().map(|(k, _)| *k).collect());
    match first {
        "agent" => Some(AGENT_STATEMENTS.to_vec()),
        "tool" => Some(TOOL_STATEMENTS.to_vec()),
        "script" => Some(SCRIPT_STATEMENTS.to_vec()),
        "test" => Some(TEST_STATEMENTS.to_vec()),
        "ladder" => Some(HEADER_STATEMENTS.to_vec()),
        "limits" => keys(LIMITS),
        "budget" => keys(BUDGET),
        "routing" => keys(ROUTING),
        "model" => keys(MODEL),
        "human" => keys(HUMAN),
        "mcp" => keys(MCP),
        _ => None,
    }
}

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Expect {
    /// A whole number in `[min, max]`; above `max` is absurd.
    Count {
        min: f64,
        max: f64,
    },
    /// A duration in seconds in `(0, max]`.
    Duration {
        max: f64,
    },
    /// A money amount in dollars in `(0, max]`.
    Money {
        max: f64,
    },
    /// A price per million tokens in `[0, max]`.
    Price {
        max: f64,
    },
    /// A plain number in `[min, max]`.
    Number {
        min: f64,
        max: f64,
    },
    String,
    /// One of a fixed set of names (or a string with that text).
    Choice(&'static [&'static str]),
    Env,
    /// The name of a rung.
    Rung,
    /// A list of rung names.
    Rungs,
    /// A list of strings.
    Strings,
    /// A list of `env(NAME)`.
    Envs,
}

/// The keys of each property block, with the kind of value each takes.
pub(crate) const LIMITS: &[(&str, Expect)] = &[
    (
        "steps_per_turn",
        Expect::Count {
            min: 1.0,
            max: 1000.0,
        },
    ),
    (
        "tool_calls_per_turn",
        Expect::Count {
            min: 0.0,
            max: 1000.0,
        },
    ),
    (
        "handoffs_per_turn",
        Expect::Count {
            min: 0.0,
            max: 100.0,
        },
    ),
    (
        "escalation_depth",
        Expect::Count {
            min: 0.0,
            max: 100.0,
        },
    ),
    (
        "corrections_per_step",
        Expect::Count {
            min: 0.0,
            max: 20.0,
        },
    ),
    (
        "consult_depth",
        Expect::Count {
            min: 0.0,
            max: 10.0,
        },
    ),
    ("turn_deadline", Expect::Duration { max: 3600.0 }),
    (
        "turns_per_session",
        Expect::Count {
            min: 1.0,
            max: 100_000.0,
        },
    ),
];

/// `routing { fuse: auto | off }` (docs/runtime.md, "Fused routing").
pub(crate) const ROUTING: &[(&str, Expect)] = &[("fuse", Expect::Choice(&["auto", "off"]))];

pub(crate) const BUDGET: &[(&str, Expect)] = &[
    ("latency_p95", Expect::Duration { max: 600.0 }),
    ("cost_per_turn", Expect::Money { max: 100.0 }),
    ("cost_per_session", Expect::Money { max: 1000.0 }),
    ("min_pass_rate", Expect::Number { min: 0.0, max: 1.0 }),
];

const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "azure",
    "vllm",
    "ollama",
    "llamacpp",
    "sim",
];

pub(crate) const MODEL: &[(&str, Expect)] = &[
    ("provider", Expect::Choice(PROVIDERS)),
    ("name", Expect::String),
    ("input", Expect::Price { max: 1000.0 }),
    ("output", Expect::Price { max: 1000.0 }),
    ("cached_input", Expect::Price { max: 1000.0 }),
    ("cache_write", Expect::Price { max: 1000.0 }),
    ("tool_schemas", Expect::Choice(&["lean", "strict"])),
    (
        "max_input_tokens",
        Expect::Count {
            min: 1.0,
            max: 10_000_000.0,
        },
    ),
    (
        "max_output_tokens",
        Expect::Count {
            min: 1.0,
            max: 1_000_000.0,
        },
    ),
    ("temperature", Expect::Number { min: 0.0, max: 2.0 }),
    ("base_url", Expect::String),
    ("api_key", Expect::Env),
    ("timeout", Expect::Duration { max: 600.0 }),
];

pub(crate) const MCP: &[(&str, Expect)] = &[
    ("command", Expect::Strings),
    ("env", Expect::Envs),
    ("url", Expect::String),
    ("auth", Expect::Env),
    ("timeout", Expect::Duration { max: 600.0 }),
];

pub(crate) const HUMAN: &[(&str, Expect)] = &[
    ("queue", Expect::String),
    ("contact", Expect::String),
    ("handover", Expect::String),
    ("release", Expect::Rungs),
    ("fallback", Expect::Rung),
    ("notify", Expect::Env),
    ("notify_secret", Expect::Env),
    (
        "sla",
        Expect::Duration {
            max: 7.0 * 24.0 * 3600.0,
        },
    ),
];
