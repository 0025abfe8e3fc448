//! The words of each block, in one place: the checker's did-you-mean for unknown statements and
//! keys, and the editor's completion at the cursor.

/// Keywords that start an item at the top level of a file.
pub const ITEMS: &[&str] = &[
    "use", "ladder", "model", "intent", "type", "tool", "agent", "human", "script", "meta", "test",
];
pub(crate) const AGENT_STATEMENTS: &[&str] = &[
    "model", "prompt", "tools", "accepts", "handoff", "escalate", "consult", "sla", "fallback",
    "router",
];
pub(crate) const HEADER_STATEMENTS: &[&str] = &["entry", "limits", "budget", "vars", "meta"];
pub(crate) const TOOL_STATEMENTS: &[&str] = &["http", "exec", "mock", "host", "timeout", "retries"];
pub(crate) const SCRIPT_STATEMENTS: &[&str] = &["say", "collect", "handoff", "end"];
const TEST_STATEMENTS: &[&str] = &["user", "model", "tool", "expect"];

/// What may start a line inside the block whose opening line is `head` (`agent triage {`,
/// `limits {`, ...): its statements or keys. `None` at the top level (use [`ITEMS`]) and for
/// blocks of free-form entries (`vars`, intents, types).
pub fn words_in(head: &str) -> Option<Vec<&'static str>> {
    let mut words = head.split_whitespace();
    let first = words.next().unwrap_or("");
    let keys = |table: &[(&'static str, crate::props::Expect)]| {
        Some(table.iter().map(|(k, _)| *k).collect())
    };
    match first {
        "agent" => Some(AGENT_STATEMENTS.to_vec()),
        "tool" => Some(TOOL_STATEMENTS.to_vec()),
        "script" => Some(SCRIPT_STATEMENTS.to_vec()),
        "test" => Some(TEST_STATEMENTS.to_vec()),
        "ladder" => Some(HEADER_STATEMENTS.to_vec()),
        "limits" => keys(crate::props::LIMITS),
        "budget" => keys(crate::props::BUDGET),
        "model" => keys(crate::props::MODEL),
        "human" => keys(crate::props::HUMAN),
        _ => None,
    }
}
