//! OpenTelemetry traces over OTLP/HTTP (`--otlp [URL]`, or `OTEL_EXPORTER_OTLP_ENDPOINT`): off
//! by default; when off no subscriber is installed and the runtime's spans cost nothing.
//!
//! The runtime marks its work with `tracing` spans: a turn (`ladder.turn`: session, ladder, turn),
//! each rung it visits (`ladder.rung`), each model call (`gen_ai.chat`, with the GenAI semantic
//! conventions' `gen_ai.*` attributes and usage) and each tool call (`gen_ai.execute_tool`);
//! handoffs, escalations, returns, fallbacks, ceilings, corrections, hand-overs to people and
//! approvals are span events with their names and fields. No prompt, message, tool argument or
//! result is exported, and no secret.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use tracing_subscriber::layer::SubscriberExt;

/// Flushes the spans still buffered when dropped (at the end of `run`, `test` or `serve`).
pub(crate) struct Otel(opentelemetry_sdk::trace::SdkTracerProvider);

impl Drop for Otel {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// Installs the exporter when `--otlp` was given (with a URL or not) or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `Ok(None)` when traces are off. The URL is the traces
/// endpoint (`http://collector:4318/v1/traces`); without one, the SDK reads the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. The service is
/// `OTEL_SERVICE_NAME`, else `ladderc`.
pub(crate) fn init(flag: Option<Option<String>>) -> Result<Option<Otel>, String> {
    let env_endpoint = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
    let url = match flag {
        Some(url) => url,
        None if env_endpoint => None,
        None => return Ok(None),
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(url) = url {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("cannot export traces: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ladderc".into());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ladderc"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .map_err(|e| format!("cannot install the trace exporter: {e}"))?;
    Ok(Some(Otel(provider)))
}
