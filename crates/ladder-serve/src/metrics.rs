//! What `ladderc serve` counts, rendered in the Prometheus text format (version 0.0.4).

use async_trait::async_trait;
use ladder_runtime::{Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Event};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(self.buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Counts {
    turns: u64,
    turn_errors: u64,
    busy: u64,
    handoffs: u64,
    escalations: u64,
    fallbacks: u64,
    humans: u64,
    tool_calls: u64,
    tool_failures: u64,
    llm_calls: u64,
    llm_errors: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: f64,
    ceilings: BTreeMap<String, u64>,
    turn_latency: Histogram,
    llm_latency: Histogram,
}

/// Counters and histograms of one server process.
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counts)) {
        // A panic elsewhere while the lock was held leaves plain numbers: still usable.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut counts);
    }

    /// A turn refused because another held the session.
    pub fn busy(&self) {
        self.with(|c| c.busy += 1);
    }

    /// Counts what an event of a turn says (turns, tokens, ceilings, latencies).
    pub fn observe(&self, event: &Event) {
        self.with(|c| match event {
            Event::Handoff { .. } => c.handoffs += 1,
            Event::Escalation { .. } => c.escalations += 1,
            Event::Fallback { .. } => c.fallbacks += 1,
            Event::HumanNeeded { .. } => c.humans += 1,
            Event::ToolResult { ok, .. } => {
                c.tool_calls += 1;
                if !ok {
                    c.tool_failures += 1;
                }
            }
            Event::CeilingHit { ceiling, .. } => {
                *c.ceilings.entry(ceiling.clone()).or_default() += 1;
            }
            Event::Error { .. } => c.turn_errors += 1,
            Event::TurnEnded {
                usage,
                cost,
                latency_ms,
                ..
            } => {
                c.turns += 1;
                c.prompt_tokens += usage.prompt_tokens;
                c.completion_tokens += usage.completion_tokens;
                c.cost += cost;
                c.turn_latency.observe(*latency_ms as f64 / 1000.0);
            }
            _ => {}
        });
    }

    fn llm_call(&self, seconds: f64, ok: bool) {
        self.with(|c| {
            c.llm_calls += 1;
            if !ok {
                c.llm_errors += 1;
            }
            c.llm_latency.observe(seconds);
        });
    }

    /// The Prometheus text exposition of everything counted so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|c| {
            let counters = [
                ("ladder_turns_total", "Turns run.", c.turns.to_string()),
                (
                    "ladder_turn_errors_total",
                    "Errors that ended a rung with no fallback left.",
                    c.turn_errors.to_string(),
                ),
                (
                    "ladder_busy_rejections_total",
                    "Messages refused (409) because a turn of the session was running.",
                    c.busy.to_string(),
                ),
                ("ladder_handoffs_total", "Handoffs.", c.handoffs.to_string()),
                ("ladder_escalations_total", "Escalations.", c.escalations.to_string()),
                (
                    "ladder_fallbacks_total",
                    "Rungs that failed over to their fallback.",
                    c.fallbacks.to_string(),
                ),
                (
                    "ladder_human_handoffs_total",
                    "Times a human endpoint was reached.",
                    c.humans.to_string(),
                ),
                ("ladder_tool_calls_total", "Tool calls.", c.tool_calls.to_string()),
                (
                    "ladder_tool_failures_total",
                    "Tool calls that failed.",
                    c.tool_failures.to_string(),
                ),
                ("ladder_llm_calls_total", "Model calls.", c.llm_calls.to_string()),
                (
                    "ladder_llm_errors_total",
                    "Model calls that failed after retries.",
                    c.llm_errors.to_string(),
                ),
                (
                    "ladder_cost_dollars_total",
                    "Model cost in dollars, at the ladder's declared prices.",
                    c.cost.to_string(),
                ),
            ];
            for (name, help, value) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
            }
            let _ = writeln!(
                out,
                "# HELP ladder_tokens_total Model tokens.\n# TYPE ladder_tokens_total counter"
            );
            let _ = writeln!(
                out,
                "ladder_tokens_total{{kind=\"prompt\"}} {}",
                c.prompt_tokens
            );
            let _ = writeln!(
                out,
                "ladder_tokens_total{{kind=\"completion\"}} {}",
                c.completion_tokens
            );
            let _ = writeln!(
                out,
                "# HELP ladder_ceilings_hit_total Hard ceilings reached, by ceiling.\n# TYPE ladder_ceilings_hit_total counter"
            );
            for (ceiling, n) in &c.ceilings {
                let _ = writeln!(
                    out,
                    "ladder_ceilings_hit_total{{ceiling=\"{ceiling}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP ladder_turn_latency_seconds Turn latency.\n# TYPE ladder_turn_latency_seconds histogram"
            );
            c.turn_latency
                .render(&mut out, "ladder_turn_latency_seconds", "");
            let _ = writeln!(
                out,
                "# HELP ladder_llm_latency_seconds Model call latency (streaming included).\n# TYPE ladder_llm_latency_seconds histogram"
            );
            c.llm_latency
                .render(&mut out, "ladder_llm_latency_seconds", "");
        });
        out
    }
}

/// Times every model call of the backend it wraps.
pub struct TimedBackend {
    /// The backend whose calls are timed.
    pub inner: Arc<dyn Backend>,
    /// Where the times go.
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Backend for TimedBackend {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        let started = Instant::now();
        let result = self.inner.complete(request, on_text).await;
        self.metrics
            .llm_call(started.elapsed().as_secs_f64(), result.is_ok());
        result
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}
