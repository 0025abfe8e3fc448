//! The worst case `ladderc check` prints is an upper bound of what the runtime does: random
//! ladders (handoffs, returns, escalations, consults, fallbacks, tools, small random limits) run against
//! an adversarial scripted model that calls whatever it is offered (hand-offs, escalations with
//! their guards satisfied, consults, tools), calls functions that do not exist, and spends the
//! most tokens its model allows on every call. Every turn's LLM calls, tool calls, handoffs and
//! cost stay within what `check` printed (docs/language.md, "What check proves").

use async_trait::async_trait;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Event, Runtime, TokenUsage,
    ToolCall,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Mutex;

const MAX_IN: u64 = 1000;
const MAX_OUT: u64 = 100;

/// Per agent: handoff targets (as offsets above it), an escalation target (below it, or the
/// human), a consult target (above it), a fallback (an agent above it, or the script), whether it
/// has tools, whether it uses the pricier model, whether it is a router (when it has handoffs
/// and neither tools nor consults: then senders route through it, docs/runtime.md "Fused
/// routing").
type AgentEdges = (
    Vec<usize>,
    Option<usize>,
    Option<usize>,
    Option<usize>,
    bool,
    bool,
    bool,
);

/// A ladder from the generated choices: agents `a0..`, a human `h`, a script `s`.
#[derive(Debug, Clone)]
struct Shape {
    agents: usize,
    edges: Vec<AgentEdges>,
    limits: [u32; 5],
    /// Per agent: whether it declares `return` (written only when an agent hands off to it).
    returns: Vec<bool>,
}

fn ladder(shape: &Shape) -> String {
    let [steps, tools, handoffs, escalations, consults] = shape.limits;
    let mut s = format!(
        "ladder 1\nladder gen {{\n  entry a0\n  limits {{ steps_per_turn: {steps}, tool_calls_per_turn: {tools}, handoffs_per_turn: {handoffs}, escalation_depth: {escalations}, consult_depth: {consults} }}\n}}\n\
         model m {{ provider: openai, name: \"m\", input: $1/Mtok, output: $4/Mtok, max_input_tokens: {MAX_IN}, max_output_tokens: {MAX_OUT} }}\n\
         model big {{ provider: openai, name: \"big\", input: $3/Mtok, output: $9/Mtok, max_input_tokens: {MAX_IN}, max_output_tokens: {MAX_OUT} }}\n\
         tool look(id: string) -> string {{ \"Looks up.\" mock \"found\" }}\n\
         human h \"A person\"\n\
         script s {{ say \"Sorry.\" handoff h }}\n"
    );
    let n = shape.agents;
    for i in 0..n {
        s.push_str(&format!("intent to_a{i} \"Go to a{i}\"\n"));
    }
    let targets_of = |i: usize, hand: &[usize]| -> Vec<usize> {
        let mut targets: Vec<usize> = hand.iter().map(|o| i + 1 + o).filter(|t| *t < n).collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    };
    let mut delegated = vec![false; n];
    for (i, edges) in shape.edges.iter().enumerate().take(n) {
        for t in targets_of(i, &edges.0) {
            delegated[t] = true;
        }
    }
    for (i, (hand, esc, consult, fallback, tools, big, router)) in
        shape.edges.iter().enumerate().take(n)
    {
        s.push_str(&format!(
            "agent a{i} {{\n  model {}\n  prompt \"Agent {i}.\"\n",
            if *big { "big" } else { "m" }
        ));
        let consults = consult.map(|o| i + 1 + o).filter(|t| *t < n);
        if *router && !*tools && consults.is_none() && !targets_of(i, hand).is_empty() {
            s.push_str("  router\n");
        }
        if *tools {
            s.push_str("  tools [look]\n");
        }
        for t in targets_of(i, hand) {
            s.push_str(&format!("  handoff to_a{t} -> a{t}\n"));
        }
        if delegated[i] && shape.returns.get(i).copied().unwrap_or(false) {
            s.push_str("  return\n");
        }
        match esc {
            Some(e) if i > 0 && e % (i + 1) < i => s.push_str(&format!(
                "  escalate -> a{} when confidence < 0.5\n",
                e % (i + 1)
            )),
            Some(_) => s.push_str("  escalate -> h\n"),
            None => {}
        }
        if let Some(c) = consult.map(|o| i + 1 + o).filter(|t| *t < n) {
            s.push_str(&format!("  consult a{c}\n"));
        }
        match fallback.map(|o| i + 1 + o) {
            Some(t) if t < n => s.push_str(&format!("  fallback -> a{t}\n")),
            Some(_) => s.push_str("  fallback -> s\n"),
            None => {}
        }
        s.push_str("}\n");
    }
    s
}

/// Calls whatever it is offered, chosen by a seeded generator; sometimes a function that does
/// not exist or a plain reply. Every call spends the model's whole token allowance.
struct Adversary(Mutex<u64>);

impl Adversary {
    fn next(&self) -> u64 {
        let mut state = self.0.lock().unwrap();
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }
}

fn arguments(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (key, p) in props {
            let value = match (key.as_str(), p["type"].as_str()) {
                ("confidence", _) => json!(0.1),
                ("sentiment", _) => json!(-0.9),
                (_, Some("number" | "integer")) => json!(1),
                (_, Some("boolean")) => json!(true),
                _ => json!("x"),
            };
            out.insert(key.clone(), value);
        }
    }
    Value::Object(out)
}

#[async_trait]
impl Backend for Adversary {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let usage = TokenUsage {
            prompt_tokens: MAX_IN,
            completion_tokens: MAX_OUT,
            ..Default::default()
        };
        let roll = self.next();
        let call = |name: String, args: Value| ChatResponse {
            content: None,
            tool_calls: vec![ToolCall {
                id: format!("c{roll}"),
                name,
                arguments: args.to_string(),
            }],
            usage,
            truncated: false,
        };
        Ok(match roll % 10 {
            0 => {
                on_text.text("Done.");
                ChatResponse {
                    content: Some("Done.".into()),
                    tool_calls: Vec::new(),
                    usage,
                    truncated: false,
                }
            }
            1 => call("no_such_function".into(), json!({})),
            _ if request.tools.is_empty() => call("no_such_function".into(), json!({})),
            _ => {
                let spec = &request.tools[(roll / 10) as usize % request.tools.len()];
                let mut args = arguments(&spec.parameters);
                if spec.name.starts_with("consult_") {
                    args = json!({"question": "what now?"});
                }
                call(spec.name.clone(), args)
            }
        })
    }

    fn name(&self) -> &str {
        "adversary"
    }
}

fn shapes() -> impl Strategy<Value = (Shape, u64)> {
    (2usize..6)
        .prop_flat_map(|agents| {
            let edge = (
                prop::collection::vec(0usize..4, 0..3),
                prop::option::of(0usize..6),
                prop::option::weighted(0.4, 0usize..3),
                prop::option::weighted(0.5, 0usize..4),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            );
            (
                Just(agents),
                prop::collection::vec(edge, agents),
                (1u32..7, 0u32..4, 0u32..4, 0u32..4, 0u32..4),
                any::<u64>(),
                prop::collection::vec(any::<bool>(), agents),
            )
        })
        .prop_map(|(agents, edges, (a, b, c, d, e), seed, returns)| {
            (
                Shape {
                    agents,
                    edges,
                    limits: [a, b, c, d, e],
                    returns,
                },
                seed | 1,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        max_global_rejects: 1_000_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn observed_turns_stay_within_the_printed_worst_case((shape, seed) in shapes()) {
        let text = ladder(&shape);
        let checked = ladder_check::check_source("gen.ladder", &text, &Default::default());
        // Random shapes that do not check (say, an unreachable agent with a dead end) are not
        // what this property is about.
        prop_assume!(checked.program.is_some());
        let worst = checked.worst_case.clone().expect("a clean ladder has a worst case");
        let program = checked.program.unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ended: Vec<(u32, u32, u32, f64)> = runtime.block_on(async {
            let rt = Runtime::new(program).backend(Adversary(Mutex::new(seed)));
            let session = rt.session();
            let mut ended = Vec::new();
            for message in ["hello", "and another thing", "one more"] {
                for event in session.send(message).collect().await {
                    if let Event::TurnEnded { llm_calls, tool_calls, handoffs, cost, .. } = event {
                        ended.push((llm_calls, tool_calls, handoffs, cost));
                    }
                }
            }
            ended
        });
        for (llm_calls, tool_calls, handoffs, cost) in ended {
            prop_assert!(llm_calls <= worst.llm_calls, "{llm_calls} LLM calls > {worst:?}\n{text}");
            prop_assert!(tool_calls <= worst.tool_calls, "{tool_calls} tool calls > {worst:?}\n{text}");
            prop_assert!(handoffs <= worst.handoffs, "{handoffs} handoffs > {worst:?}\n{text}");
            let bound = worst.cost_per_turn.expect("every model has prices");
            prop_assert!(cost <= bound + 1e-9, "${cost} > {worst:?}\n{text}");
        }
    }
}
