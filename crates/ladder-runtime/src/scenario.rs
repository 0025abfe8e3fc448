//! Running scenario tests (`test` blocks): user turns, scripted model answers, expectations.

use crate::backend::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, TokenUsage, ToolCall,
};
use crate::{Event, Runtime, SessionState};
use async_trait::async_trait;
use ladder_program::{Expectation, TestCase, TestStep};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Replays the answers a test scripted, per agent, in order.
struct Scripted {
    queues: Mutex<HashMap<String, VecDeque<ChatResponse>>>,
}

#[async_trait]
impl Backend for Scripted {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let next = self
            .queues
            .lock()
            .map_err(|_| BackendError::Protocol("poisoned".into()))?
            .get_mut(&request.agent)
            .and_then(VecDeque::pop_front);
        let answer = next.ok_or_else(|| {
            BackendError::Protocol(format!(
                "the test scripted no more answers for `{}`",
                request.agent
            ))
        })?;
        if let Some(text) = &answer.content {
            on_text.text(text);
        }
        Ok(answer)
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

fn scripted(case: &TestCase) -> Option<Scripted> {
    let mut queues: HashMap<String, VecDeque<ChatResponse>> = HashMap::new();
    let mut calls = 0;
    for step in &case.steps {
        let (agent, answer) = match step {
            TestStep::Says { agent, text } => (
                agent,
                ChatResponse {
                    content: Some(text.clone()),
                    tool_calls: Vec::new(),
                    usage: TokenUsage::default(),
                    truncated: false,
                },
            ),
            TestStep::Calls {
                agent,
                function,
                arguments,
            } => {
                calls += 1;
                let call = ToolCall {
                    id: format!("scripted_{calls}"),
                    name: function.clone(),
                    arguments: arguments.to_string(),
                };
                (
                    agent,
                    ChatResponse {
                        content: None,
                        tool_calls: vec![call],
                        usage: TokenUsage::default(),
                        truncated: false,
                    },
                )
            }
            _ => continue,
        };
        queues.entry(agent.clone()).or_default().push_back(answer);
    }
    (!queues.is_empty()).then(|| Scripted {
        queues: Mutex::new(queues),
    })
}

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The turn (from 1) after which it was checked.
    pub turn: u32,
    /// The expectation, as written.
    pub expected: String,
    /// What the turn did instead: its route and replies.
    pub actual: String,
}

/// The outcome of one run of one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestRun {
    /// The test's name.
    pub name: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// The expectations that did not hold.
    pub failures: Vec<Failure>,
    /// Handoffs, escalations, fallbacks, ceilings and human hand-overs, over all turns.
    pub route: Vec<String>,
    /// Model calls over the whole test.
    pub llm_calls: u64,
    /// Tokens over the whole test.
    pub tokens: u64,
    /// Dollars over the whole test.
    pub cost: f64,
    /// Latency of each turn, in milliseconds.
    pub turn_latency_ms: Vec<u64>,
    /// Whether the model answers were scripted by the test.
    pub scripted: bool,
    /// The user turns as sent (perturbed, in a noisy run).
    pub inputs: Vec<String>,
}

/// The compact route of some events: `primary -> billing`, `^ on_call_rn`, ...
pub fn route_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Handoff { from, to, .. } => Some(format!("{from} -> {to}")),
            Event::Escalation { from, to, .. } => Some(format!("{from} ^ {to}")),
            Event::Returned { from, to, .. } => Some(format!("{to} <- {from}")),
            Event::Fallback { from, to, .. } => Some(format!("{from} => {to}")),
            Event::CeilingHit { ceiling, .. } => Some(format!("!{ceiling}")),
            Event::HumanNeeded { human, .. } => Some(format!("@{human}")),
            _ => None,
        })
        .collect()
}

fn replies(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| {
            if let Event::Reply { text, .. } = e {
                Some(text.as_str())
            } else {
                None
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        _ => expected == actual,
    }
}

/// Whether an expectation holds for a turn's events and the session state after it.
pub fn holds(expectation: &Expectation, events: &[Event], state: &SessionState) -> bool {
    match expectation {
        Expectation::Handoff { from, to, intent } => events.iter().any(|e| {
            matches!(e, Event::Handoff { from: f, to: t, intent: i, .. } if f == from && t == to && (intent.is_none() || i == intent))
        }),
        Expectation::Agent { name } => &state.current == name,
        Expectation::Escalation { from, to } => events
            .iter()
            .any(|e| matches!(e, Event::Escalation { from: f, to: t, .. } if t == to && from.as_ref().is_none_or(|x| x == f))),
        Expectation::Human { name } => {
            events.iter().any(|e| matches!(e, Event::HumanNeeded { human, .. } if name.as_ref().is_none_or(|n| n == human)))
        }
        Expectation::Reply { negated, regex, text } => {
            let all = replies(events);
            let found = if *regex { regex::Regex::new(text).is_ok_and(|r| r.is_match(&all)) } else { all.contains(text.as_str()) };
            found != *negated
        }
        Expectation::Tool { tool, arguments } => events.iter().any(|e| {
            matches!(e, Event::ToolCall { tool: t, arguments: a, .. } if t == tool && arguments.as_ref().is_none_or(|x| subset(x, a)))
        }),
        Expectation::Ceiling { name } => events.iter().any(|e| matches!(e, Event::CeilingHit { ceiling, .. } if ceiling == name)),
        Expectation::Fallback { from, to } => events.iter().any(|e| matches!(e, Event::Fallback { from: f, to: t, .. } if f == from && t == to)),
        Expectation::Var { name, op, value } => {
            let actual = state.vars.get(name).cloned().unwrap_or(Value::Null);
            crate::turn::compare(&actual, op, value)
        }
        Expectation::Ended => state.ended,
    }
}

/// Runs one test. Scripted answers, if the test has any, replace the runtime's backend.
/// `noise` perturbs every user turn reproducibly: `(level from 0 to 1, seed)`.
/// The tools of `program` as one test sees them: a stubbed tool answers with the stub; an `http`
/// or `exec` tool the test does not stub fails (the test is hermetic) unless `live_tools`.
/// Returns the names of the live tools that were cut off.
fn hermetic(program: &mut crate::Program, case: &TestCase, live_tools: bool) -> Vec<String> {
    use ladder_program::ToolImpl;
    let mut stubbed = std::collections::BTreeSet::new();
    for step in &case.steps {
        if let TestStep::Stub {
            tool,
            result,
            error,
        } = step
        {
            if let Some(t) = program.tools.get_mut(tool) {
                t.implementation = match (result, error) {
                    (_, Some(message)) => ToolImpl::Fail {
                        message: message.clone(),
                    },
                    (result, None) => ToolImpl::Mock {
                        result: result.clone().unwrap_or(Value::Null),
                    },
                };
                stubbed.insert(tool.clone());
            }
        }
    }
    let mut cut = Vec::new();
    if !live_tools {
        for (name, tool) in program.tools.iter_mut() {
            let kind = match tool.implementation {
                ToolImpl::Http { .. } => "http",
                ToolImpl::Exec { .. } => "exec",
                ToolImpl::Mcp { .. } => "MCP",
                _ => continue,
            };
            if stubbed.contains(name) {
                continue;
            }
            tool.implementation = ToolImpl::Fail {
                message: format!("`{name}` is a live {kind} tool this test does not stub"),
            };
            cut.push(name.clone());
        }
    }
    cut
}

/// Runs one test. Tests are hermetic: `tool T returns|fails` stubs answer for their tools, and
/// an `http` or `exec` tool the test does not stub is never called; a call of one fails the test
/// naming the tool, unless `live_tools` (`ladderc test --live-tools`).
pub async fn run_test(
    runtime: &Runtime,
    case: &TestCase,
    noise: Option<(f64, u64)>,
    live_tools: bool,
) -> TestRun {
    let script = scripted(case);
    let is_scripted = script.is_some();
    let mut program = runtime.program().clone();
    let cut = hermetic(&mut program, case, live_tools);
    let runtime = runtime.clone().with(|i| {
        i.stamp = crate::LadderStamp::of(&program);
        i.program = program;
    });
    let runtime = match script {
        Some(s) => runtime.backend(s),
        None => runtime,
    };
    let session = runtime.session();
    let mut run = TestRun {
        name: case.name.clone(),
        passed: true,
        failures: Vec::new(),
        route: Vec::new(),
        llm_calls: 0,
        tokens: 0,
        cost: 0.0,
        turn_latency_ms: Vec::new(),
        scripted: is_scripted,
        inputs: Vec::new(),
    };
    let mut last: Vec<Event> = Vec::new();
    let mut turn = 0;
    for (i, step) in case.steps.iter().enumerate() {
        match step {
            TestStep::User { text } => {
                turn += 1;
                let text = match noise {
                    Some((level, seed)) if level > 0.0 => perturb(
                        text,
                        level,
                        seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                    ),
                    _ => text.clone(),
                };
                run.inputs.push(text.clone());
                last = session.send(text).collect().await;
                for e in &last {
                    if let Event::ToolCall { tool, .. } = e {
                        if cut.contains(tool) {
                            run.failures.push(Failure {
                                turn,
                                expected: format!("no call of the live tool `{tool}`"),
                                actual: format!(
                                    "`{tool}` was called; stub it with `tool {tool} returns {{..}}` (or `fails \"..\"`), or run with --live-tools"
                                ),
                            });
                        }
                    }
                }
                run.route.extend(route_of(&last));
                for e in &last {
                    if let Event::TurnEnded { latency_ms, .. } = e {
                        run.turn_latency_ms.push(*latency_ms);
                    }
                }
            }
            TestStep::Expect { expectation } => {
                let state = session.state().await;
                if !holds(expectation, &last, &state) {
                    let mut actual = route_of(&last).join(", ");
                    if actual.is_empty() {
                        actual = "no transfer".into();
                    }
                    let said = replies(&last);
                    actual = format!("{actual}; now at {}; replied {:?}", state.current, said);
                    run.failures.push(Failure {
                        turn,
                        expected: expectation.to_string(),
                        actual,
                    });
                }
            }
            _ => {}
        }
    }
    let state = session.state().await;
    run.llm_calls = state.counters.llm_calls;
    run.tokens = state.counters.prompt_tokens + state.counters.completion_tokens;
    run.cost = state.counters.cost;
    run.passed = run.failures.is_empty();
    run
}

const FILLERS: &[&str] = &["um", "uh", "like", "you know", "so"];

/// Speech-recognition confusions, both ways.
const SOUNDALIKES: &[(&str, &str)] = &[
    ("to", "two"),
    ("for", "four"),
    ("their", "there"),
    ("book", "look"),
    ("bill", "pill"),
    ("fever", "fewer"),
    ("charged", "changed"),
    ("refund", "re fund"),
    ("appointment", "a point meant"),
    ("nurse", "purse"),
];

/// Perturbs a user turn the way callers and speech recognition do: typos, dropped words,
/// sound-alike substitutions and filler words; each word is touched with probability `level`.
/// The same `(text, level, seed)` always gives the same result.
pub fn perturb(text: &str, level: f64, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if rng.f64() >= level {
            out.push(word.to_string());
            continue;
        }
        match rng.u8(0..4) {
            0 => {
                // A typo: swap two adjacent letters, or drop one.
                let mut chars: Vec<char> = word.chars().collect();
                if chars.len() >= 3 {
                    let i = rng.usize(0..chars.len() - 1);
                    if rng.bool() {
                        chars.swap(i, i + 1);
                    } else {
                        chars.remove(i);
                    }
                }
                out.push(chars.into_iter().collect());
            }
            1 => {} // dropped
            2 => {
                let lower = word.to_lowercase();
                let swapped = SOUNDALIKES.iter().find_map(|(a, b)| {
                    if lower == *a {
                        Some(*b)
                    } else if lower == *b {
                        Some(*a)
                    } else {
                        None
                    }
                });
                out.push(
                    swapped
                        .map(String::from)
                        .unwrap_or_else(|| word.to_string()),
                );
            }
            _ => {
                out.push(FILLERS[rng.usize(0..FILLERS.len())].to_string());
                out.push(word.to_string());
            }
        }
    }
    if out.is_empty() {
        text.to_string()
    } else {
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::perturb;

    #[test]
    fn noise_is_reproducible_and_grows_with_the_level() {
        let text = "I need to book an appointment for Friday about my fever";
        assert_eq!(perturb(text, 0.5, 7), perturb(text, 0.5, 7));
        assert_eq!(perturb(text, 0.0, 7), text);
        assert_ne!(perturb(text, 1.0, 7), text);
    }
}
