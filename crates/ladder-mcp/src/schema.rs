//! JSON Schema and ladder types: lowering a server's input schema to a ladder signature (for
//! `ladderc mcp pull`), and deciding whether a pinned signature still fits the live one (drift).

use serde_json::{Map, Value};

/// One parameter of a lowered tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name (a ladder identifier).
    pub name: String,
    /// Its ladder type, `?` included when it is optional.
    pub ty: String,
    /// The schema's description, if any.
    pub description: Option<String>,
}

/// A tool's input schema lowered to ladder parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature {
    /// The parameters: the required ones first, each group by name.
    pub params: Vec<Param>,
    /// What could not be lowered exactly, one sentence each.
    pub notes: Vec<String>,
    /// Why the tool cannot be declared at all (a required parameter whose name is not a ladder
    /// identifier), if so.
    pub unusable: Option<String>,
}

/// Whether `s` is a ladder identifier.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

/// Words a ladder name cannot be.
const KEYWORDS: &[&str] = &["true", "false", "null", "enum"];

/// A ladder name for a server's tool name: `get-sum` becomes `get_sum`.
pub fn ladder_name(remote: &str) -> String {
    let mut name: String = remote
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert_str(0, "t_");
    }
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// Lowers a tool's input schema (an object schema) to ladder parameters.
pub fn lower(input: &Map<String, Value>) -> Signature {
    let mut sig = Signature::default();
    let required = required_of(input);
    let Some(props) = input.get("properties").and_then(Value::as_object) else {
        return sig;
    };
    for (name, schema) in props {
        let is_required = required.contains(&name.as_str());
        if !is_ident(name) {
            if is_required {
                sig.unusable = Some(format!(
                    "its required parameter `{name}` is not a ladder name"
                ));
            } else {
                sig.notes.push(format!(
                    "optional parameter `{name}` is left out: it is not a ladder name"
                ));
            }
            continue;
        }
        let (ty, note) = type_of(schema);
        if let Some(note) = note {
            sig.notes.push(format!("`{name}`: {note}"));
        }
        let optional = !is_required || nullable(schema);
        sig.params.push(Param {
            name: name.clone(),
            ty: if optional && !ty.ends_with('?') {
                format!("{ty}?")
            } else {
                ty
            },
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    sig.params.sort_by_key(|p| p.ty.ends_with('?'));
    sig
}

fn required_of(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The schema's `type`, with `null` removed from a list of types.
fn base_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(types)) => {
            let mut rest = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null");
            match (rest.next(), rest.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        }
        _ => None,
    }
}

fn nullable(schema: &Value) -> bool {
    matches!(schema.get("type"), Some(Value::Array(types)) if types.iter().any(|t| t == "null"))
}

/// The ladder type of a schema, and a note when it is only an approximation.
fn type_of(schema: &Value) -> (String, Option<String>) {
    if let Some(variants) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = variants.iter().filter_map(Value::as_str).collect();
        if names.len() == variants.len() && !names.is_empty() {
            if names.iter().all(|n| is_ident(n)) {
                return (format!("enum({})", names.join(", ")), None);
            }
            return (
                "string".into(),
                Some(format!(
                    "its values ({}) are not all ladder names: lowered to `string`",
                    names.join(", ")
                )),
            );
        }
        return (
            "json".into(),
            Some("an enum of non-strings: lowered to `json`".into()),
        );
    }
    match base_type(schema) {
        Some("string") => (
            match schema.get("format").and_then(Value::as_str) {
                Some("date") => "date",
                Some("date-time") => "datetime",
                Some("email") => "email",
                Some("uri") => "url",
                _ => "string",
            }
            .into(),
            None,
        ),
        Some("integer") => ("int".into(), None),
        Some("number") => ("number".into(), None),
        Some("boolean") => ("bool".into(), None),
        Some("array") => match schema.get("items") {
            Some(items) => {
                let (inner, note) = type_of(items);
                let inner = inner.trim_end_matches('?').to_string();
                (
                    format!("[{inner}]"),
                    note.map(|n| format!("its items: {n}")),
                )
            }
            None => ("[json]".into(), None),
        },
        Some("object") => (
            "json".into(),
            Some("an object: lowered to `json` (its fields are not checked)".into()),
        ),
        _ => (
            "json".into(),
            Some("a schema with no single type: lowered to `json`".into()),
        ),
    }
}

/// Why a value the pinned schema allows may be refused by the live one, if it may.
fn narrower(pinned: &Value, live: &Value) -> Option<String> {
    let live_type = base_type(live);
    let pinned_type = base_type(pinned);
    let Some(live_type) = live_type else {
        // Anything goes on the server's side (no single type): nothing to refuse.
        return None;
    };
    let Some(pinned_type) = pinned_type else {
        // `json` in the ladder: what pull writes for schemas it cannot lower; the server checks.
        return None;
    };
    let fits = match (pinned_type, live_type) {
        (p, l) if p == l => true,
        ("integer", "number") => true,
        _ => false,
    };
    if !fits {
        return Some(format!(
            "the server now takes {live_type}, the ladder sends {pinned_type}"
        ));
    }
    if let Some(live_enum) = live.get("enum").and_then(Value::as_array) {
        match pinned.get("enum").and_then(Value::as_array) {
            Some(pinned_enum) => {
                let missing: Vec<String> = pinned_enum
                    .iter()
                    .filter(|v| !live_enum.contains(v))
                    .map(|v| v.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Some(format!(
                        "the server no longer accepts {}",
                        missing.join(", ")
                    ));
                }
            }
            // The ladder cannot say this enum (its values are not names): pull wrote the base
            // type and reported it; the server checks the value.
            None if !live_enum.iter().all(|v| v.as_str().is_some_and(is_ident)) => {}
            None => {
                return Some("the server now takes only some values (an enum)".into());
            }
        }
    }
    if live_type == "array" {
        if let (Some(p), Some(l)) = (pinned.get("items"), live.get("items")) {
            return narrower(p, l).map(|why| format!("its items: {why}"));
        }
    }
    None
}

/// How the pinned tool differs from the live one, one sentence each; empty if it still fits.
/// `pinned` is the JSON Schema of the parameters the model fills, `bound` the names of the
/// parameters the runtime fills.
pub fn drift(pinned: &Value, bound: &[&str], live: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Map::new();
    let pinned_props = pinned
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let pinned_required: Vec<&str> = pinned.as_object().map(required_of).unwrap_or_default();
    let live_required = required_of(live);
    let live_props = live.get("properties").and_then(Value::as_object);
    for name in &live_required {
        if !pinned_props.contains_key(*name) && !bound.contains(name) {
            out.push(format!(
                "the server requires `{name}`, which the ladder does not declare"
            ));
        }
    }
    let Some(live_props) = live_props else {
        return out;
    };
    for (name, schema) in pinned_props {
        let Some(live_schema) = live_props.get(name) else {
            out.push(format!(
                "the ladder declares `{name}`, which the server's tool no longer takes"
            ));
            continue;
        };
        if live_required.contains(&name.as_str())
            && !nullable(live_schema)
            && !pinned_required.contains(&name.as_str())
            && !bound.contains(&name.as_str())
        {
            out.push(format!(
                "`{name}` is optional in the ladder, but the server requires it"
            ));
        }
        if let Some(why) = narrower(schema, live_schema) {
            out.push(format!("`{name}`: {why}"));
        }
    }
    for name in bound {
        if !live_props.contains_key(*name) {
            out.push(format!(
                "the ladder binds `{name}`, which the server's tool no longer takes"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lowers_scalars_enums_arrays_and_optionals() {
        let sig = lower(&obj(json!({
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "n": {"type": "integer"},
                "when": {"type": "string", "format": "date-time"},
                "kind": {"type": "string", "enum": ["error", "success"]},
                "city": {"type": "string", "enum": ["New York", "Chicago"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "opts": {"type": "object"},
                "maybe": {"type": ["string", "null"]},
                "my-flag": {"type": "boolean"}
            },
            "required": ["a", "n", "when", "kind", "city", "tags", "opts", "maybe"]
        })));
        let text: Vec<String> = sig
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        assert_eq!(
            text,
            [
                "a: number",
                "city: string",
                "kind: enum(error, success)",
                "n: int",
                "opts: json",
                "tags: [string]",
                "when: datetime",
                "maybe: string?"
            ]
        );
        assert_eq!(sig.notes.len(), 3, "{:?}", sig.notes);
        assert!(sig.unusable.is_none());
    }

    #[test]
    fn a_required_parameter_without_a_ladder_name_makes_the_tool_unusable() {
        let sig = lower(&obj(json!({
            "properties": {"my-arg": {"type": "string"}},
            "required": ["my-arg"]
        })));
        assert!(sig.unusable.unwrap().contains("my-arg"));
    }

    #[test]
    fn names_of_tools() {
        assert_eq!(ladder_name("get-sum"), "get_sum");
        assert_eq!(ladder_name("2fa"), "t_2fa");
        assert_eq!(ladder_name("true"), "true_");
    }

    #[test]
    fn drift_names_each_difference() {
        let live = obj(json!({
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "string"},
                "c": {"type": "number"},
                "mode": {"type": "string", "enum": ["x"]}
            },
            "required": ["a", "b", "c"]
        }));
        let pinned = json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer"},
                "b": {"type": "number"},
                "gone": {"type": "string"},
                "mode": {"type": "string", "enum": ["x", "y"]}
            },
            "required": ["a", "b"]
        });
        let found = drift(&pinned, &[], &live);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].contains("requires `c`"));
        assert!(found.iter().any(|f| f.starts_with("`b`")));
        assert!(found.iter().any(|f| f.contains("`gone`")));
        assert!(found.iter().any(|f| f.contains("\"y\"")));
        // What pull writes from the live schema always fits it.
        let same = json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "string"}, "c": {"type": "number"}},
            "required": ["a", "b", "c"]
        });
        assert!(drift(&same, &[], &live).is_empty());
        // A bound parameter counts as declared.
        let bound = json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "string"}},
            "required": ["a", "b"]
        });
        assert!(drift(&bound, &["c"], &live).is_empty());
    }
}
