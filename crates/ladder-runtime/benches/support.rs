//! Shared by the runtime benchmarks: a ladder and an in-process scripted backend.

#![allow(dead_code)] // each benchmark uses part of it

use async_trait::async_trait;
use ladder_runtime::{Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, TokenUsage};

/// root -> lead -> specialist; `direct` is an entry agent that answers at once.
pub const LADDER: &str = r#"ladder 1
ladder bench { entry root  limits { handoffs_per_turn: 4 } }
model m { provider: openai, name: "bench", input: $1/Mtok, output: $2/Mtok }
intent care "Care" 
intent booking "Booking" { day: date }
agent root { router model m prompt "Route." handoff care -> lead }
agent lead { router model m accepts care prompt "Route care." handoff booking -> specialist }
agent specialist { model m accepts booking prompt "Book for {{intent.day}}." }
"#;

pub const DIRECT: &str = r#"ladder 1
ladder direct { entry specialist }
model m { provider: openai, name: "bench", input: $1/Mtok, output: $2/Mtok }
agent specialist { model m prompt "Answer." }
"#;

/// Answers by agent: routers hand off, the specialist replies; no I/O, no waiting.
pub struct Scripted;

#[async_trait]
impl Backend for Scripted {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let usage = TokenUsage {
            prompt_tokens: 50,
            completion_tokens: 10,
            ..Default::default()
        };
        let call = |name: &str, args: &str| ChatResponse::call("c1", name, args, usage);
        Ok(match request.agent.as_str() {
            "root" => call("transfer_to_lead", "{}"),
            "lead" => call("transfer_to_specialist", r#"{"day":"2026-12-01"}"#),
            _ => {
                on_text.text("Booked.");
                ChatResponse::text("Booked.", usage)
            }
        })
    }

    fn name(&self) -> &str {
        "scripted"
    }
}
