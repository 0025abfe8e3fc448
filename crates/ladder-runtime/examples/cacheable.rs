//! `cargo run --release -p ladder-runtime --example cacheable`: how much of each request a
//! provider's prompt cache can serve, for the examples. Each example gets three user messages
//! (the offline simulator answers); every request is laid out as the Anthropic backend sends it,
//! and the cacheable part of a request is its longest common prefix with the previous request of
//! the same agent (what a provider's prefix cache matches). Printed per example and agent: the
//! share of request characters that were cacheable, over the requests that had a predecessor.
//! Figures are in BENCHMARKS.md.

use async_trait::async_trait;
use ladder_llm::{Anthropic, Simulator};
use ladder_runtime::{Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Runtime};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Answers with the simulator and keeps every request.
struct Recording {
    requests: Mutex<Vec<ChatRequest>>,
}

#[async_trait]
impl Backend for Recording {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        self.requests.lock().unwrap().push(request.clone());
        Simulator.complete(request, on_text).await
    }

    fn name(&self) -> &str {
        "recording"
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[tokio::main]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let messages = [
        "Hello, I have a question about my account.",
        "It is about the last invoice and an appointment.",
        "Thanks, and one more thing please.",
    ];
    println!("| example | agent | requests | cacheable share (chars) |");
    println!("|---|---|---|---|");
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "ladder")
                && !p.to_string_lossy().ends_with(".test.ladder")
        })
        .collect();
    entries.sort();
    for path in entries {
        let source = std::fs::read_to_string(&path).expect("readable");
        let program = ladder_runtime::compile(&source).expect("the example checks clean");
        let recording = Arc::new(Recording {
            requests: Mutex::new(Vec::new()),
        });
        let runtime = Runtime::new(program).backend_arc(recording.clone());
        let session = runtime.session();
        for m in messages {
            session.send(m).collect().await;
        }
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        let mut shares: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for request in recording.requests.lock().unwrap().iter() {
            let body = Anthropic::body(request);
            // The order a provider sees: tools, system, messages.
            let text = format!("{}{}{}", body["tools"], body["system"], body["messages"]);
            let entry = shares.entry(request.agent.clone()).or_default();
            entry.0 += 1;
            if let Some(previous) = last.get(&request.agent) {
                entry.1 += common_prefix(previous, &text);
                entry.2 += text.len();
            }
            last.insert(request.agent.clone(), text);
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (agent, (requests, cacheable, total)) in shares {
            let share = if total == 0 {
                "(one request)".to_string()
            } else {
                format!("{:.0}%", 100.0 * cacheable as f64 / total as f64)
            };
            println!("| {name} | {agent} | {requests} | {share} |");
        }
    }
}
