//! Model backends for `ladder-runtime`: [`OpenAi`] for any OpenAI-compatible endpoint (OpenAI,
//! vLLM, Ollama, llama.cpp), streamed over SSE with retries, and the deterministic offline
//! [`Simulator`].

#![warn(missing_docs)]

mod http;
mod openai;
mod simulator;

pub use http::Retry;
pub use openai::OpenAi;
pub use simulator::Simulator;
