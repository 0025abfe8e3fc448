//! Model backends for `ladder-runtime`: [`OpenAi`] for any OpenAI-compatible endpoint (OpenAI,
//! vLLM, Ollama, llama.cpp) and [`Anthropic`] for Anthropic's Messages API, both streamed over
//! SSE with retries; [`Providers`], which speaks each model's protocol; and the deterministic
//! offline [`Simulator`].

#![warn(missing_docs)]

mod anthropic;
mod http;
mod openai;
mod simulator;

pub use anthropic::{Anthropic, Providers, ANTHROPIC_VERSION};
pub use http::Retry;
pub use openai::OpenAi;
pub use simulator::Simulator;
