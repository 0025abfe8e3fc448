//! Fused routing is an optimisation, never a change of meaning (docs/runtime.md, "Fused
//! routing"): for every agent of every example and of generated ladders, and every fused route
//! it is offered, a run where one call takes the route and a run with fusion off where the two
//! rungs make the same decisions one by one reach the same rung, with the same handoffs and
//! payloads, the same events the caller sees, and the same request to the final receiver. The
//! fused run makes one model call fewer.

use async_trait::async_trait;
use ladder_program::Program;
use ladder_runtime::{
    Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Event, Runtime, TokenUsage,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Answers from a script of calls, then with text; records every request.
#[derive(Default)]
struct Scripted {
    calls: Mutex<VecDeque<(String, Value)>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl Scripted {
    fn new(calls: Vec<(String, Value)>) -> Self {
        Scripted {
            calls: Mutex::new(calls.into()),
            requests: Mutex::default(),
        }
    }
}

#[async_trait]
impl Backend for Scripted {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        self.requests.lock().unwrap().push(request.clone());
        let usage = TokenUsage::default();
        Ok(match self.calls.lock().unwrap().pop_front() {
            Some((name, args)) => {
                ChatResponse::call(format!("call_{name}"), name, args.to_string(), usage)
            }
            None => {
                on_text.text("All sorted.");
                ChatResponse::text("All sorted.", usage)
            }
        })
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

/// Arguments that satisfy `schema`, different per field so that a payload sent down the wrong
/// edge shows.
fn sample(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (key, p) in props {
            let value = if let Some(first) = p["enum"].as_array().and_then(|e| e.first()) {
                first.clone()
            } else {
                match p["type"].as_str() {
                    Some("integer" | "number") => json!(key.len()),
                    Some("boolean") => json!(true),
                    Some("array") => json!([]),
                    _ => json!(format!("{key} value")),
                }
            };
            out.insert(key.clone(), value);
        }
    }
    Value::Object(out)
}

/// What the caller and the session's log see, without what depends on the number of model calls.
fn visible(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Handoff { .. }
                    | Event::Reply { .. }
                    | Event::HumanNeeded { .. }
                    | Event::SessionEnded { .. }
                    | Event::Returned { .. }
                    | Event::Error { .. }
            )
        })
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("fused");
            v
        })
        .collect()
}

struct Run {
    events: Vec<Event>,
    requests: Vec<ChatRequest>,
}

async fn run(program: &Program, entry: &str, calls: Vec<(String, Value)>) -> Run {
    let mut program = program.clone();
    program.entry = entry.to_string();
    let backend = std::sync::Arc::new(Scripted::new(calls));
    let runtime = Runtime::new(program).backend(ArcBackend(backend.clone()));
    let session = runtime.session();
    let events = session
        .send("I need help with this, please.")
        .collect()
        .await;
    let requests = backend.requests.lock().unwrap().clone();
    Run { events, requests }
}

struct ArcBackend(std::sync::Arc<Scripted>);

#[async_trait]
impl Backend for ArcBackend {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        self.0.complete(request, on_text).await
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

fn unfused(program: &Program) -> Program {
    program.clone().without_fused_routes()
}

/// Checks every fused route of every agent of `program`; returns how many routes it compared.
async fn equivalent(program: &Program, what: &str) -> usize {
    let plain = unfused(program);
    let mut compared = 0;
    for (name, agent) in &program.agents {
        // The functions `name` is offered at the start of a turn.
        let probe = run(program, name, Vec::new()).await;
        let Some(first) = probe.requests.first() else {
            continue;
        };
        let direct: Vec<String> = agent
            .handoffs
            .iter()
            .map(|h| format!("transfer_to_{}", h.target))
            .collect();
        for spec in &first.tools {
            let Some(receiver) = spec.name.strip_prefix("transfer_to_") else {
                continue;
            };
            if direct.contains(&spec.name) {
                continue;
            }
            let arguments = sample(&spec.parameters);
            let fused = run(program, name, vec![(spec.name.clone(), arguments.clone())]).await;
            let hops: Vec<(String, String, Value)> = fused
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Handoff {
                        from, to, payload, ..
                    } => Some((from.clone(), to.clone(), payload.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                hops.len(),
                2,
                "{what}: `{name}` -> {receiver}: {:#?}",
                fused.events
            );
            assert_eq!(hops[1].1, receiver, "{what}");
            assert!(
                fused.events.iter().any(
                    |e| matches!(e, Event::Handoff { fused: true, from, .. } if *from == hops[0].1)
                ),
                "{what}: the second hop is marked fused"
            );
            // The same decisions, one rung at a time, with fusion off.
            let with_summary = |payload: &Value| {
                let mut p = payload.clone();
                if let Some(s) = arguments.get("summary") {
                    p["summary"] = s.clone();
                }
                p
            };
            let step_by_step = vec![
                (
                    format!("transfer_to_{}", hops[0].1),
                    with_summary(&hops[0].2),
                ),
                (format!("transfer_to_{receiver}"), with_summary(&hops[1].2)),
            ];
            // Step by step on the same ladder (the model simply does not take the route), and with
            // fusion off.
            for (how, ladder) in [("step by step", program), ("fusion off", &plain)] {
                let plain_run = run(ladder, name, step_by_step.clone()).await;
                let at = format!("{what}: `{name}` -> `{}` -> `{receiver}`, {how}", hops[0].1);
                assert_eq!(visible(&fused.events), visible(&plain_run.events), "{at}");
                assert_eq!(
                    fused.requests.len() + 1,
                    plain_run.requests.len(),
                    "{at}: one model call fewer"
                );
                // The final receiver (if it is an agent) is asked exactly the same thing (with
                // fusion off it is not offered routes of its own).
                if plain_run.requests.len() > 2 {
                    let a = fused.requests.last().unwrap();
                    let b = plain_run.requests.last().unwrap();
                    assert_eq!(
                        serde_json::to_value(&a.messages).unwrap(),
                        serde_json::to_value(&b.messages).unwrap(),
                        "{at}: `{receiver}` sees the same conversation"
                    );
                    if how == "step by step" {
                        assert_eq!(
                            serde_json::to_value(&a.tools).unwrap(),
                            serde_json::to_value(&b.tools).unwrap(),
                            "{at}: `{receiver}` is offered the same functions"
                        );
                    }
                }
                let ended = |events: &[Event]| {
                    events.iter().find_map(|e| match e {
                        Event::TurnEnded { handoffs, .. } => Some(*handoffs),
                        _ => None,
                    })
                };
                assert_eq!(
                    ended(&fused.events),
                    ended(&plain_run.events),
                    "{at}: both hops counted"
                );
            }
            compared += 1;
        }
    }
    compared
}

#[tokio::test]
async fn every_example_routes_the_same_fused_and_step_by_step() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut total = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "ladder")
                && !p.to_string_lossy().ends_with(".test.ladder")
        })
        .collect();
    paths.sort();
    for path in paths {
        let policy = ladder_check::FilePolicy::for_file(&path).unwrap();
        let checked = ladder_check::check_path(&path, &policy, &Default::default()).unwrap();
        let program = checked
            .program
            .unwrap_or_else(|| panic!("{} checks", path.display()));
        total += equivalent(&program, &path.display().to_string()).await;
    }
    // The clinic and triage examples route through pure routers.
    assert!(total >= 4, "only {total} fused routes in the examples");
}

#[tokio::test]
async fn a_route_is_offered_only_with_two_handoffs_left_and_off_when_the_ladder_says_so() {
    let ladder_with = |limits: &str, extra: &str, edge: &str, desk: &str| {
        format!(
            r#"ladder 1
ladder desk {{
  entry front
  limits {{ {limits} }}
  {extra}
}}
model m {{ provider: openai, name: "m" }}
intent billing "Money questions" {{ account: string }}
intent refunds "Refunds" {{ invoice: string }}
intent invoices "Invoices"
agent front {{
  model m
  prompt "Route."
  tools [lookup]
  handoff billing -> billing_desk{edge}
}}
agent billing_desk {{
  model m
  accepts billing
  router
  prompt "Route billing questions."
  handoff refunds -> refunds
  handoff invoices -> invoices
  {desk}
}}
agent refunds {{
  model m
  accepts refunds
  prompt "Refunds."
}}
agent invoices {{
  model m
  accepts invoices
  prompt "Invoices."
}}
tool lookup(id: string) -> string {{ "Looks up." mock "x" }}
human person "A person"
"#
        )
    };
    let ladder = |limits: &str, extra: &str, edge: &str| ladder_with(limits, extra, edge, "");
    let offered = |text: String| async move {
        let program = ladder_check::compile(&text).unwrap_or_else(|d| panic!("{d:#?}"));
        let probe = run(&program, "front", Vec::new()).await;
        probe.requests[0]
            .tools
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    // The desk only routes: its routes take its place.
    let fused = offered(ladder("handoffs_per_turn: 2", "", "")).await;
    assert_eq!(
        fused,
        ["lookup", "transfer_to_refunds", "transfer_to_invoices"]
    );
    // A desk that may also escalate stays reachable beside its routes...
    let escalating = "escalate -> person";
    let both = offered(ladder_with("handoffs_per_turn: 2", "", "", escalating)).await;
    assert_eq!(
        both,
        [
            "lookup",
            "transfer_to_billing_desk",
            "transfer_to_refunds",
            "transfer_to_invoices"
        ]
    );
    // ...unless the edge says `fuse`: a pass-through for this sender.
    let through = offered(ladder_with("handoffs_per_turn: 2", "", " fuse", escalating)).await;
    assert_eq!(
        through,
        ["lookup", "transfer_to_refunds", "transfer_to_invoices"]
    );
    // With one handoff left, a route (two handoffs) is not offered.
    let one = offered(ladder("handoffs_per_turn: 1", "", "")).await;
    assert_eq!(one, ["lookup", "transfer_to_billing_desk"]);
    // Off for the edge, or for the whole ladder.
    let edge_off = offered(ladder("handoffs_per_turn: 2", "", " no_fuse")).await;
    assert_eq!(edge_off, ["lookup", "transfer_to_billing_desk"]);
    let all_off = offered(ladder("handoffs_per_turn: 2", "routing { fuse: off }", "")).await;
    assert_eq!(all_off, ["lookup", "transfer_to_billing_desk"]);

    // The route's parameters are both intents' payloads; each edge gets its own.
    let program = ladder_check::compile(&ladder("handoffs_per_turn: 2", "", ""))
        .unwrap_or_else(|d| panic!("{d:#?}"));
    let probe = run(&program, "front", Vec::new()).await;
    let route = probe.requests[0]
        .tools
        .iter()
        .find(|t| t.name == "transfer_to_refunds")
        .unwrap();
    assert_eq!(route.description, "Refunds");
    let mut keys: Vec<_> = route.parameters["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(keys, ["account", "invoice"]);
    // A call that lacks the first edge's field is corrected, not carried out.
    let run = run(
        &program,
        "front",
        vec![
            ("transfer_to_refunds".into(), json!({"invoice": "INV-9"})),
            (
                "transfer_to_refunds".into(),
                json!({"invoice": "INV-9", "account": "A-1"}),
            ),
        ],
    )
    .await;
    assert!(run
        .events
        .iter()
        .any(|e| matches!(e, Event::Correction { .. })));
    let payloads: Vec<Value> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Handoff { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        payloads,
        [json!({"account": "A-1"}), json!({"invoice": "INV-9"})]
    );
}

/// A generated ladder: agents `a0..` in a DAG (agent `i` is handed to by an agent before it),
/// some of them routers, some edges with payload fields, context policies and `fuse`/`no_fuse`.
#[derive(Debug, Clone)]
struct Shape {
    /// Per agent after the first: the agent that hands off to it.
    parents: Vec<usize>,
    /// Per agent: extra handoff targets (offsets above it), router, tools.
    agents: Vec<(Vec<usize>, bool, bool)>,
    /// Per agent: its intent's payload (0 none, 1 a string, 2 an integer), the policy of edges
    /// into it, and the clause of edges into it (0 none, 1 `fuse`, 2 `no_fuse`).
    into: Vec<(u8, u8, u8)>,
    handoffs_per_turn: u32,
    /// The last agent is a human instead.
    human_leaf: bool,
}

fn generated(shape: &Shape) -> String {
    let n = shape.agents.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (child, parent) in shape.parents.iter().enumerate() {
        let child = child + 1;
        edges[parent % child].push(child);
    }
    for (i, (extra, _, _)) in shape.agents.iter().enumerate() {
        for o in extra {
            let t = i + 1 + o;
            if t < n && !edges[i].contains(&t) {
                edges[i].push(t);
            }
        }
    }
    let mut s = format!(
        "ladder 1\nladder gen {{\n  entry a0\n  limits {{ handoffs_per_turn: {} }}\n}}\nmodel m {{ provider: openai, name: \"m\" }}\ntool look(id: string) -> string {{ \"Looks up.\" mock \"found\" }}\n",
        shape.handoffs_per_turn
    );
    let human = |i: usize| shape.human_leaf && i == n - 1 && edges[i].is_empty();
    for (i, (payload, _, _)) in shape.into.iter().enumerate().take(n) {
        let fields = match payload {
            1 => format!(" {{ note_{i}: string }}"),
            2 => format!(" {{ count_{i}: int }}"),
            _ => String::new(),
        };
        s.push_str(&format!("intent to_a{i} \"Go to a{i}\"{fields}\n"));
    }
    for (i, (_, router, tools)) in shape.agents.iter().enumerate() {
        if human(i) {
            s.push_str(&format!("human a{i} \"A person\"\n"));
            continue;
        }
        let router = *router && !edges[i].is_empty();
        s.push_str(&format!(
            "agent a{i} {{\n  model m\n  prompt \"Agent {i}.\"\n"
        ));
        if i > 0 {
            s.push_str(&format!("  accepts to_a{i}\n"));
        }
        if router {
            s.push_str("  router\n");
        } else if *tools {
            s.push_str("  tools [look]\n");
        }
        for &t in &edges[i] {
            let (_, policy, clause) = shape.into[t];
            let policy = [
                "",
                " context no_tools",
                " context last(1)",
                " context summary",
                " context none",
            ][policy as usize % 5];
            let clause = match clause {
                1 if !edges[t].is_empty() && !human(t) => " fuse",
                2 => " no_fuse",
                _ => "",
            };
            s.push_str(&format!("  handoff to_a{t} -> a{t}{policy}{clause}\n"));
        }
        s.push_str("}\n");
    }
    s
}

fn shapes() -> impl Strategy<Value = Shape> {
    (3usize..7).prop_flat_map(|n| {
        (
            prop::collection::vec(0usize..6, n - 1),
            prop::collection::vec(
                (
                    prop::collection::vec(0usize..3, 0..2),
                    any::<bool>(),
                    any::<bool>(),
                ),
                n,
            ),
            prop::collection::vec((0u8..3, 0u8..5, 0u8..3), n),
            1u32..5,
            any::<bool>(),
        )
            .prop_map(
                |(parents, agents, into, handoffs_per_turn, human_leaf)| Shape {
                    parents,
                    agents,
                    into,
                    handoffs_per_turn,
                    human_leaf,
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_ladders_route_the_same_fused_and_step_by_step(shape in shapes()) {
        let text = generated(&shape);
        let checked = ladder_check::check_source("gen.ladder", &text, &Default::default());
        prop_assume!(checked.program.is_some());
        let program = checked.program.unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(equivalent(&program, &text));
    }
}

/// A fused route against the strict fake: the request that offers it is one the OpenAI API
/// accepts (unique function names, valid schemas), and the route is carried out.
#[tokio::test]
async fn a_fused_route_through_the_strict_fake() {
    use ladder_fake_openai::{FakeOpenAi, Reply};
    let fake = FakeOpenAi::start().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/clinic.ladder");
    let path = std::path::Path::new(dir);
    let policy = ladder_check::FilePolicy::for_file(path).unwrap();
    let program = ladder_check::check_path(path, &policy, &Default::default())
        .unwrap()
        .program
        .expect("the clinic example checks");
    let entry = program.entry.clone();
    let routes: Vec<String> = program.agents[&entry]
        .handoffs
        .iter()
        .filter(|h| !h.fuse.is_off())
        .flat_map(|h| program.agents[&h.target].handoffs.iter())
        .map(|h| format!("transfer_to_{}", h.target))
        .collect();
    let route = routes
        .first()
        .expect("the clinic's entry routes through a router");
    let runtime = Runtime::new(program.clone())
        .backend(ladder_llm::OpenAi::new(fake.base_url(), Some("k".into())));
    let probe = run(&program, &entry, Vec::new()).await;
    let spec = probe.requests[0]
        .tools
        .iter()
        .find(|t| &t.name == route)
        .expect("offered");
    fake.push(Reply::tool(route, sample(&spec.parameters)));
    fake.push(Reply::text("Done."));
    let events = runtime.session().send("Please help").collect().await;
    let hops = events
        .iter()
        .filter(|e| matches!(e, Event::Handoff { .. }))
        .count();
    assert_eq!(hops, 2, "{events:#?}");
    assert_eq!(fake.requests().len(), 2);
    assert!(
        events.iter().any(|e| matches!(e, Event::Reply { .. })),
        "{events:#?}"
    );
}
