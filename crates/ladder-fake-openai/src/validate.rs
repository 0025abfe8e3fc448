//! The request rules of the chat-completions API, as OpenAI documents and enforces them (and
//! llama.cpp's `llama-server` where it is stricter). A violation is answered with HTTP 400 and
//! OpenAI's error shape, so that a test against the fake fails where the real API would.

use serde_json::{Map, Value};
use std::collections::HashSet;

/// A rejected request: the offending parameter (`messages[3].tool_call_id`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where in the request, in OpenAI's notation (`messages[3].tool_call_id`).
    pub param: String,
    /// What is wrong, as the API would say it.
    pub message: String,
}

impl Violation {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            param: param.into(),
            message: message.into(),
        }
    }

    /// The body OpenAI answers with, status 400.
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {
            "message": self.message,
            "type": "invalid_request_error",
            "param": self.param,
            "code": null,
        }})
    }
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "metadata",
    "store",
    "service_tier",
    "reasoning_effort",
    "modalities",
    "prediction",
];

/// Checks one request body; `Ok` when the real API would accept it.
pub fn request(body: &Value) -> Result<(), Violation> {
    let Some(body) = body.as_object() else {
        return Err(Violation::new("", "the request body must be a JSON object"));
    };
    for key in body.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return Err(Violation::new(
                key.as_str(),
                format!("Unrecognized request argument supplied: {key}"),
            ));
        }
    }
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => {
            return Err(Violation::new(
                "model",
                "you must provide a model parameter",
            ))
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Violation::new("stream", "'stream' must be a boolean")),
    };
    if let Some(options) = body.get("stream_options").filter(|v| !v.is_null()) {
        if !stream {
            return Err(Violation::new(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        let ok = options.as_object().is_some_and(|o| {
            o.iter()
                .all(|(k, v)| k == "include_usage" && v.is_boolean())
        });
        if !ok {
            return Err(Violation::new(
                "stream_options",
                "'stream_options' accepts only 'include_usage' (a boolean)",
            ));
        }
    }
    number_in(body, "temperature", 0.0, 2.0)?;
    number_in(body, "top_p", 0.0, 1.0)?;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            if v.as_u64().is_none_or(|n| n < 1) {
                return Err(Violation::new(
                    key,
                    format!("'{key}' must be an integer >= 1"),
                ));
            }
        }
    }
    let offered = tools(body.get("tools"))?;
    tool_choice(body.get("tool_choice"), offered.as_ref())?;
    messages(body.get("messages"))
}

fn number_in(body: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<(), Violation> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_f64().is_some_and(|n| (min..=max).contains(&n)) => Ok(()),
        Some(v) => Err(Violation::new(
            key,
            format!("Invalid '{key}': {v} is not a number between {min} and {max}"),
        )),
    }
}

/// `^[a-zA-Z0-9_-]{1,64}$`
pub fn valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The offered function names, or `None` when the request offers no tools.
fn tools(tools: Option<&Value>) -> Result<Option<HashSet<String>>, Violation> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Violation::new("tools", "'tools' must be an array")),
    };
    if tools.is_empty() {
        return Err(Violation::new(
            "tools",
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    let mut names = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(tool) = tool.as_object() else {
            return Err(Violation::new(at, "each tool must be an object"));
        };
        only(tool, &["type", "function"], &at)?;
        if tool.get("type") != Some(&Value::String("function".into())) {
            return Err(Violation::new(
                format!("{at}.type"),
                "Invalid value: expected 'function'",
            ));
        }
        let Some(function) = tool.get("function").and_then(Value::as_object) else {
            return Err(Violation::new(
                format!("{at}.function"),
                "Missing required parameter: 'function'",
            ));
        };
        let at = format!("{at}.function");
        only(
            function,
            &["name", "description", "parameters", "strict"],
            &at,
        )?;
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        if !valid_function_name(name) {
            return Err(Violation::new(
                format!("{at}.name"),
                format!("Invalid '{at}.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' of at most 64 characters, got {name:?}."),
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(Violation::new(
                "tools",
                format!("Duplicate function name in tools: {name}"),
            ));
        }
        if let Some(d) = function.get("description") {
            if !d.is_string() {
                return Err(Violation::new(
                    format!("{at}.description"),
                    "'description' must be a string",
                ));
            }
        }
        if let Some(p) = function.get("parameters") {
            schema(p, &format!("{at}.parameters"), true)?;
        }
    }
    Ok(Some(names))
}

/// A JSON Schema as function parameters: an object schema at the top, well-formed keywords below.
fn schema(s: &Value, at: &str, top: bool) -> Result<(), Violation> {
    let Some(o) = s.as_object() else {
        return Err(Violation::new(
            at,
            format!("Invalid schema for function: {s} is not of type 'object'"),
        ));
    };
    if top && o.get("type") != Some(&Value::String("object".into())) {
        return Err(Violation::new(
            at,
            "Invalid schema for function: schema must be a JSON Schema of 'type: \"object\"'",
        ));
    }
    if let Some(t) = o.get("type") {
        const TYPES: &[&str] = &[
            "object", "array", "string", "number", "integer", "boolean", "null",
        ];
        let ok = match t {
            Value::String(t) => TYPES.contains(&t.as_str()),
            Value::Array(ts) => ts
                .iter()
                .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))),
            _ => false,
        };
        if !ok {
            return Err(Violation::new(
                at,
                format!("Invalid schema: {t} is not a valid type"),
            ));
        }
    }
    if let Some(props) = o.get("properties") {
        let Some(props) = props.as_object() else {
            return Err(Violation::new(
                at,
                "Invalid schema: 'properties' must be an object",
            ));
        };
        for (k, v) in props {
            schema(v, &format!("{at}.properties.{k}"), false)?;
        }
    }
    if let Some(required) = o.get("required") {
        let names = required
            .as_array()
            .filter(|a| a.iter().all(Value::is_string));
        let Some(names) = names else {
            return Err(Violation::new(
                at,
                "Invalid schema: 'required' must be an array of strings",
            ));
        };
        for n in names.iter().filter_map(Value::as_str) {
            if !o
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| p.contains_key(n))
            {
                return Err(Violation::new(
                    at,
                    format!("Invalid schema: '{n}' is required but not among the properties"),
                ));
            }
        }
    }
    if let Some(items) = o.get("items") {
        schema(items, &format!("{at}.items"), false)?;
    }
    if let Some(e) = o.get("enum") {
        if e.as_array().is_none_or(|a| a.is_empty()) {
            return Err(Violation::new(
                at,
                "Invalid schema: 'enum' must be a non-empty array",
            ));
        }
    }
    if let Some(a) = o.get("additionalProperties") {
        if !a.is_boolean() && !a.is_object() {
            return Err(Violation::new(
                at,
                "Invalid schema: 'additionalProperties' must be a boolean or a schema",
            ));
        }
    }
    Ok(())
}

fn tool_choice(choice: Option<&Value>, offered: Option<&HashSet<String>>) -> Result<(), Violation> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let Some(offered) = offered else {
        return Err(Violation::new(
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        ));
    };
    match choice {
        Value::String(s) if ["none", "auto", "required"].contains(&s.as_str()) => Ok(()),
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) if offered.contains(name) => Ok(()),
                (Some("function"), Some(name)) => Err(Violation::new(
                    "tool_choice",
                    format!("Invalid value for 'tool_choice': function '{name}' is not among the tools"),
                )),
                _ => Err(Violation::new(
                    "tool_choice",
                    "Invalid value for 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": ...}}",
                )),
            }
        }
        other => Err(Violation::new(
            "tool_choice",
            format!("Invalid value for 'tool_choice': {other}. Supported values are: 'none', 'auto' and 'required'."),
        )),
    }
}

fn only(object: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), Violation> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Violation::new(
            format!("{at}.{k}"),
            format!("Unrecognized request argument supplied: {at}.{k}"),
        )),
        None => Ok(()),
    }
}

fn text_content(content: Option<&Value>, at: &str, required: bool) -> Result<(), Violation> {
    match content {
        None | Some(Value::Null) if !required => Ok(()),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) if !parts.is_empty() => {
            for (i, p) in parts.iter().enumerate() {
                let ok = p.get("type").and_then(Value::as_str).is_some()
                    && (p.get("type") != Some(&Value::String("text".into()))
                        || p.get("text").is_some_and(Value::is_string));
                if !ok {
                    return Err(Violation::new(
                        format!("{at}.content[{i}]"),
                        "Invalid content part",
                    ));
                }
            }
            Ok(())
        }
        None | Some(Value::Null) => Err(Violation::new(
            format!("{at}.content"),
            format!("Invalid value for '{at}.content': expected a string, got null."),
        )),
        Some(other) => Err(Violation::new(
            format!("{at}.content"),
            format!("Invalid type for '{at}.content': expected one of a string or array of objects, but got {} instead.", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn messages(messages: Option<&Value>) -> Result<(), Violation> {
    let Some(messages) = messages.and_then(Value::as_array) else {
        return Err(Violation::new(
            "messages",
            "Missing required parameter: 'messages'.",
        ));
    };
    if messages.is_empty() {
        return Err(Violation::new(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    // The ids of the last assistant message's tool calls not answered yet.
    let mut open: Vec<String> = Vec::new();
    // Whether a tool message may come now (right after an assistant message with calls, or
    // after another tool message answering it).
    let mut in_answers = false;
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Some(m) = m.as_object() else {
            return Err(Violation::new(at, "each message must be an object"));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "tool" && !open.is_empty() {
            return Err(Violation::new(
                "messages",
                format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", open.join(", ")),
            ));
        }
        match role {
            "system" | "developer" | "user" => {
                only(m, &["role", "content", "name"], &at)?;
                text_content(m.get("content"), &at, true)?;
                in_answers = false;
            }
            "assistant" => {
                only(
                    m,
                    &["role", "content", "name", "tool_calls", "refusal", "audio"],
                    &at,
                )?;
                let calls = match m.get("tool_calls") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(c)) if !c.is_empty() => c.clone(),
                    Some(_) => {
                        return Err(Violation::new(
                            format!("{at}.tool_calls"),
                            "'tool_calls' must be a non-empty array",
                        ))
                    }
                };
                text_content(m.get("content"), &at, calls.is_empty())?;
                let mut ids = HashSet::new();
                for (j, c) in calls.iter().enumerate() {
                    let cat = format!("{at}.tool_calls[{j}]");
                    let Some(c) = c.as_object() else {
                        return Err(Violation::new(cat, "each tool call must be an object"));
                    };
                    only(c, &["id", "type", "function"], &cat)?;
                    let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                    if id.is_empty() || !ids.insert(id.to_string()) {
                        return Err(Violation::new(
                            format!("{cat}.id"),
                            "each tool call needs an 'id' of its own",
                        ));
                    }
                    if c.get("type") != Some(&Value::String("function".into())) {
                        return Err(Violation::new(
                            format!("{cat}.type"),
                            "Invalid value: expected 'function'",
                        ));
                    }
                    let f = c.get("function").and_then(Value::as_object);
                    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
                    let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str);
                    let (Some(name), Some(args)) = (name, args) else {
                        return Err(Violation::new(
                            format!("{cat}.function"),
                            "a tool call's function needs a 'name' and 'arguments' (a string)",
                        ));
                    };
                    if !valid_function_name(name) {
                        return Err(Violation::new(
                            format!("{cat}.function.name"),
                            format!("Invalid function name {name:?}"),
                        ));
                    }
                    // OpenAI stores arguments as text, but servers that render them into a
                    // chat template (llama.cpp) parse them and fail with a 500: reject here.
                    if serde_json::from_str::<Value>(args).map_or(true, |v| !v.is_object()) {
                        return Err(Violation::new(
                            format!("{cat}.function.arguments"),
                            "a tool call's 'arguments' must be a JSON object serialised as a string",
                        ));
                    }
                    open.push(id.to_string());
                }
                in_answers = !calls.is_empty();
            }
            "tool" => {
                only(m, &["role", "content", "tool_call_id"], &at)?;
                text_content(m.get("content"), &at, true)?;
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                if !in_answers {
                    return Err(Violation::new(
                        format!("{at}.role"),
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    ));
                }
                let Some(k) = open.iter().position(|o| o == id) else {
                    return Err(Violation::new(
                        format!("{at}.tool_call_id"),
                        format!("Invalid parameter: 'tool_call_id' {id:?} does not answer a call of the preceding assistant message."),
                    ));
                };
                open.remove(k);
            }
            other => {
                return Err(Violation::new(
                    format!("{at}.role"),
                    format!("Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."),
                ))
            }
        }
    }
    if !open.is_empty() {
        return Err(Violation::new(
            "messages",
            format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", open.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(messages: Value) -> Value {
        json!({"model": "m", "messages": messages})
    }

    fn call(id: &str) -> Value {
        json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}})
    }

    #[test]
    fn a_tool_message_must_answer_the_assistant_before_it() {
        // The message order the `no_tools`, `summary` and `none` policies used to send.
        let bad = body(json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "c1", "content": "done: control transferred"},
        ]));
        let v = request(&bad).unwrap_err();
        assert!(
            v.message
                .contains("must be a response to a preceeding message"),
            "{v:?}"
        );
        let ok = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [call("c1"), call("c2")]},
            {"role": "tool", "tool_call_id": "c2", "content": "x"},
            {"role": "tool", "tool_call_id": "c1", "content": "y"},
            {"role": "user", "content": "and?"},
        ]));
        assert_eq!(request(&ok), Ok(()));
    }

    #[test]
    fn every_call_is_answered_before_the_next_message() {
        let bad = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [call("c1"), call("c2")]},
            {"role": "tool", "tool_call_id": "c1", "content": "x"},
            {"role": "user", "content": "and?"},
        ]));
        assert!(request(&bad).unwrap_err().message.contains("c2"));
        let unknown = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [call("c1")]},
            {"role": "tool", "tool_call_id": "zz", "content": "x"},
        ]));
        assert_eq!(
            request(&unknown).unwrap_err().param,
            "messages[2].tool_call_id"
        );
    }

    #[test]
    fn unparseable_arguments_are_rejected() {
        let bad = body(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]},
            {"role": "tool", "tool_call_id": "c", "content": "x"},
        ]));
        assert!(request(&bad).unwrap_err().param.ends_with("arguments"));
    }

    #[test]
    fn tools_names_schemas_and_choice() {
        let with_tools = |tools: Value, choice: Value| json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice});
        let f = |name: &str, params: Value| json!({"type": "function", "function": {"name": name, "parameters": params}});
        let obj = json!({"type": "object", "properties": {}});
        assert_eq!(
            request(&with_tools(
                json!([f("ok_name-1", obj.clone())]),
                json!("required")
            )),
            Ok(())
        );
        assert!(request(&with_tools(
            json!([f("bad name", obj.clone())]),
            Value::Null
        ))
        .is_err());
        assert!(request(&with_tools(
            json!([f(&"x".repeat(65), obj.clone())]),
            Value::Null
        ))
        .is_err());
        assert!(request(&with_tools(
            json!([f("a", json!({"type": "string"}))]),
            Value::Null
        ))
        .is_err());
        assert!(request(&with_tools(
            json!([f("a", json!({"type": "object", "required": ["x"]}))]),
            Value::Null
        ))
        .is_err());
        assert!(request(&with_tools(json!([f("a", obj.clone())]), json!("always"))).is_err());
        assert!(request(&with_tools(
            json!([f("a", obj.clone())]),
            json!({"type": "function", "function": {"name": "b"}})
        ))
        .is_err());
        assert!(request(&with_tools(json!([]), Value::Null)).is_err());
        let no_tools = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"});
        assert!(request(&no_tools).is_err());
    }

    #[test]
    fn unknown_fields_and_ranges() {
        let mut b = body(json!([{"role": "user", "content": "x"}]));
        b["agent"] = json!("triage");
        assert_eq!(request(&b).unwrap_err().param, "agent");
        let mut b = body(json!([{"role": "user", "content": "x"}]));
        b["temperature"] = json!(3);
        assert!(request(&b).is_err());
        let mut b = body(json!([{"role": "user", "content": "x"}]));
        b["stream_options"] = json!({"include_usage": true});
        assert!(request(&b).is_err(), "stream_options without stream");
        let b = body(json!([{"role": "user", "content": "x", "tool_calls": []}]));
        assert!(request(&b).is_err());
        let b = body(json!([{"role": "user", "content": 5}]));
        assert!(request(&b).is_err());
    }
}
