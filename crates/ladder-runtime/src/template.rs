//! Filling `{{variable}}` templates in prompts and script lines.

use serde_json::Value;

/// Values a template can refer to.
pub(crate) struct Scope<'a> {
    pub ladder: &'a str,
    pub agent: &'a str,
    pub turn: u32,
    pub transcript: &'a dyn Fn() -> String,
    pub summary: Option<&'a str>,
    pub intent: Option<&'a str>,
    pub payload: &'a Value,
    pub vars: &'a serde_json::Map<String, Value>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Replaces every `{{path}}`; unknown names become empty (the checker rejects undeclared ones).
pub(crate) fn fill(template: &str, scope: &Scope<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let path = rest[open + 2..open + 2 + close].trim();
        let mut parts = path.split('.').map(str::trim);
        let head = parts.next().unwrap_or("");
        let field = parts.next();
        let value = match (head, field) {
            ("ladder", None) => scope.ladder.to_string(),
            ("agent", None) => scope.agent.to_string(),
            ("turn", None) => scope.turn.to_string(),
            ("transcript", None) => (scope.transcript)(),
            ("summary", None) => scope.summary.unwrap_or("").to_string(),
            ("intent", None) => scope.intent.unwrap_or("").to_string(),
            ("intent", Some(f)) => scope.payload.get(f).map(text).unwrap_or_default(),
            (var, None) => scope.vars.get(var).map(text).unwrap_or_default(),
            (var, Some(f)) => scope
                .vars
                .get(var)
                .and_then(|v| v.get(f))
                .map(text)
                .unwrap_or_default(),
        };
        out.push_str(&value);
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    out
}
