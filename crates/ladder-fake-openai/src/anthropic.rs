//! Anthropic's Messages API on the same fake server: `POST /v1/messages`, answered from the same
//! queue of scripted replies, streamed as Anthropic streams (`message_start`,
//! `content_block_start` / `_delta` / `_stop` with `text_delta` and `input_json_delta`,
//! `message_delta`, `message_stop`) or as one message.
//!
//! Strict like the OpenAI side: a request is checked against the API's rules ([`request`]) and a
//! violation is answered with Anthropic's 400 `invalid_request_error` (a missing key with 401),
//! and recorded. The official `anthropic` Python SDK parses its answers in the oracle test.

use crate::validate::Violation;
use crate::{Reply, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

fn violation(param: &str, message: impl Into<String>) -> Violation {
    Violation {
        param: param.to_string(),
        message: message.into(),
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

/// The API's rules for a Messages request, as far as a client can break them.
pub fn request(body: &Value, headers: &HeaderMap) -> Result<(), Violation> {
    if headers.get("anthropic-version").is_none() {
        return Err(violation(
            "anthropic-version",
            "anthropic-version: header is required",
        ));
    }
    let Some(object) = body.as_object() else {
        return Err(violation("", "the body must be a JSON object"));
    };
    const KNOWN: &[&str] = &[
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
    ];
    if let Some(extra) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(violation(
            extra,
            format!("{extra}: Extra inputs are not permitted"),
        ));
    }
    if body["model"].as_str().is_none_or(str::is_empty) {
        return Err(violation("model", "model: Field required"));
    }
    if body["max_tokens"].as_u64().is_none_or(|n| n < 1) {
        return Err(violation(
            "max_tokens",
            "max_tokens: Field required (an integer >= 1)",
        ));
    }
    if let Some(t) = body.get("temperature") {
        if !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)) {
            return Err(violation(
                "temperature",
                "temperature: must be between 0 and 1",
            ));
        }
    }
    let mut breakpoints = 0;
    match body.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for b in blocks {
                if b["type"] != "text" || b["text"].as_str().is_none_or(str::is_empty) {
                    return Err(violation(
                        "system",
                        "system: text content blocks must be non-empty",
                    ));
                }
                breakpoints += usize::from(b.get("cache_control").is_some());
            }
        }
        Some(_) => return Err(violation("system", "system: Input should be a valid list")),
    }
    let mut tool_names = BTreeSet::new();
    if let Some(tools) = body.get("tools") {
        let Some(tools) = tools.as_array() else {
            return Err(violation("tools", "tools: Input should be a valid list"));
        };
        for (i, t) in tools.iter().enumerate() {
            let name = t["name"].as_str().unwrap_or("");
            let valid = (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(violation(
                    &format!("tools.{i}.name"),
                    "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
                ));
            }
            if !tool_names.insert(name.to_string()) {
                return Err(violation(
                    &format!("tools.{i}"),
                    "Tool names must be unique.",
                ));
            }
            if t["input_schema"]["type"] != "object" {
                return Err(violation(
                    &format!("tools.{i}.input_schema.type"),
                    "Input should be 'object'",
                ));
            }
            breakpoints += usize::from(t.get("cache_control").is_some());
        }
    }
    if breakpoints > 4 {
        return Err(violation(
            "cache_control",
            "A maximum of 4 blocks with cache_control may be provided.",
        ));
    }
    if let Some(choice) = body.get("tool_choice") {
        match choice["type"].as_str() {
            Some("auto" | "none") => {}
            Some("any" | "tool") if tool_names.is_empty() => {
                return Err(violation(
                    "tool_choice",
                    "tool_choice may only be specified while providing tools.",
                ))
            }
            Some("any") => {}
            Some("tool") if tool_names.contains(choice["name"].as_str().unwrap_or("")) => {}
            _ => return Err(violation("tool_choice", "tool_choice: invalid")),
        }
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err(violation(
            "messages",
            "messages: at least one message is required",
        ));
    };
    let mut open_calls: BTreeSet<String> = BTreeSet::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(violation(
                &format!("messages.{i}.role"),
                "messages: roles must alternate between \"user\" and \"assistant\", starting with \"user\"",
            ));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
            Value::Array(b) if !b.is_empty() => b.clone(),
            _ => {
                return Err(violation(
                    &format!("messages.{i}.content"),
                    "messages: all messages must have non-empty content",
                ))
            }
        };
        let mut answered = BTreeSet::new();
        let mut seen_other = false;
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match (b["type"].as_str().unwrap_or(""), role) {
                ("text", _) => {
                    if b["text"].as_str().is_none_or(str::is_empty) {
                        return Err(violation(&at, "text content blocks must be non-empty"));
                    }
                    seen_other = true;
                }
                ("tool_use", "assistant") => {
                    if !b["input"].is_object() || b["id"].as_str().unwrap_or("").is_empty() {
                        return Err(violation(
                            &at,
                            "tool_use: `id` and an object `input` are required",
                        ));
                    }
                    if !tool_names.contains(b["name"].as_str().unwrap_or("")) {
                        return Err(violation(
                            &at,
                            "tool_use names a tool that is not in `tools`",
                        ));
                    }
                    open_calls.insert(b["id"].as_str().unwrap_or("").to_string());
                }
                ("tool_result", "user") => {
                    if seen_other {
                        return Err(violation(
                            &at,
                            "tool_result blocks must come first in the user message, before any other content",
                        ));
                    }
                    let id = b["tool_use_id"].as_str().unwrap_or("");
                    if !open_calls.contains(id) {
                        return Err(violation(
                            &at,
                            format!("unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."),
                        ));
                    }
                    answered.insert(id.to_string());
                }
                (kind, _) => {
                    return Err(violation(
                        &at,
                        format!("a `{kind}` block cannot be in a {role} message"),
                    ))
                }
            }
        }
        if role == "user" {
            if let Some(missing) = open_calls.iter().find(|id| !answered.contains(*id)) {
                return Err(violation(
                    &format!("messages.{i}"),
                    format!("`tool_use` ids were found without `tool_result` blocks immediately after: {missing}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
                ));
            }
            open_calls.clear();
        }
    }
    if messages.len() % 2 == 0 {
        return Err(violation(
            "messages",
            "the last message must be from the user",
        ));
    }
    Ok(())
}

/// `POST /v1/messages`
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let v = violation("", format!("invalid JSON body: {e}"));
            shared
                .rejections
                .lock()
                .expect("lock")
                .push((Value::Null, v.clone()));
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", &v.message);
        }
    };
    // A key in `x-api-key`, or (as the SDK sends it since its version 2) a bearer token.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if headers.get("x-api-key").is_none() && !bearer {
        let v = violation("x-api-key", "x-api-key header is required");
        shared
            .rejections
            .lock()
            .expect("lock")
            .push((body, v.clone()));
        return error(StatusCode::UNAUTHORIZED, "authentication_error", &v.message);
    }
    if let Err(v) = request(&body, &headers) {
        shared
            .rejections
            .lock()
            .expect("lock")
            .push((body, v.clone()));
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", &v.message);
    }
    let stream = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let (call_number, step) = shared.take(body, headers);
    let Some(step) = step else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the fake server has no scripted reply left",
        );
    };
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    // (input not from the cache, output, read from the cache); the prompt is their sum.
    let (prompt, completion, cached) = shared.usage.lock().expect("lock").unwrap_or((100, 20, 0));
    let written = *shared.cache_writes.lock().expect("lock");
    let usage = json!({
        "input_tokens": prompt.saturating_sub(cached).saturating_sub(written),
        "output_tokens": completion,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    });
    let id = format!("msg_fake{call_number}");
    let (blocks, stop_reason) = match step.reply {
        Reply::Text(text) | Reply::SlowText { text, .. } => {
            (vec![json!({"type": "text", "text": text})], "end_turn")
        }
        Reply::ToolCalls(calls) => (
            calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, input))| {
                    json!({"type": "tool_use", "id": format!("toolu_{call_number}_{i}"), "name": name, "input": input})
                })
                .collect(),
            "tool_use",
        ),
        Reply::Status {
            status,
            retry_after,
        } => {
            let kind = match status {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            return crate::status_response(
                status,
                json!({"type": "error", "error": {"type": kind, "message": "scripted error"}}),
                retry_after,
            );
        }
        other => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                &format!("the fake does not script {other:?} for the Messages API"),
            )
        }
    };
    if !stream {
        return Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage,
        }))
        .into_response();
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1,
                      "cache_creation_input_tokens": written, "cache_read_input_tokens": cached},
        }}),
    )];
    events.push(("ping", json!({"type": "ping"})));
    for (index, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ));
                for word in block["text"].as_str().unwrap_or("").split_inclusive(' ') {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": word}}),
                    ));
                }
            }
            _ => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
                ));
                // The input's JSON in two pieces, as the API splits it.
                let input = block["input"].to_string();
                let mut cut = input.len() / 2;
                while !input.is_char_boundary(cut) {
                    cut -= 1;
                }
                for part in [&input[..cut], &input[cut..]] {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}),
                    ));
                }
            }
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": completion}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let mut text = String::new();
    for (name, data) in events {
        text.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from(text))
        .expect("response")
}
