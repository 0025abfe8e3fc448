//! Validation of tool and handoff arguments against the JSON Schema subset the checker emits
//! (type, properties, required, additionalProperties, items, enum).

use serde_json::Value;

/// Checks `value` against `schema`; the error names the offending path, for the corrective
/// message sent back to the model.
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "arguments")
}

fn check(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let listed: Vec<String> = options.iter().map(Value::to_string).collect();
            return Err(format!("{path} must be one of {}", listed.join(", ")));
        }
    }
    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{path} must be of type {ty}, got {}", kind(value)));
    }
    if let (Some(object), "object") = (value.as_object(), ty) {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if object.get(name).is_none_or(Value::is_null) {
                return Err(format!("{path}.{name} is required"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(_) if v.is_null() => {}
                Some(s) => check(v, s, &format!("{path}.{key}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}.{key} is not a known parameter"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, schema, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// Removes the object keys `schema` does not declare (at every level that lists its
/// properties). Models often add a parameter of another function to a call; the call is still
/// good, and the tool only ever receives what it declared. Returns the removed paths.
pub(crate) fn drop_unknown(value: &mut Value, schema: &Value) -> Vec<String> {
    let mut dropped = Vec::new();
    drop_at(value, schema, "arguments", &mut dropped);
    dropped
}

fn drop_at(value: &mut Value, schema: &Value, path: &str, dropped: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        if let (Some(items), Some(list)) = (schema.get("items"), value.as_array_mut()) {
            for (i, item) in list.iter_mut().enumerate() {
                drop_at(item, items, &format!("{path}[{i}]"), dropped);
            }
        }
        return;
    };
    let Some(object) = value.as_object_mut() else {
        return;
    };
    object.retain(|key, _| {
        let known = properties.contains_key(key);
        if !known {
            dropped.push(format!("{path}.{key}"));
        }
        known
    });
    for (key, v) in object.iter_mut() {
        if let Some(s) = properties.get(key) {
            drop_at(v, s, &format!("{path}.{key}"), dropped);
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::{drop_unknown, validate};
    use serde_json::json;

    #[test]
    fn reports_the_path_of_the_problem() {
        let schema = json!({"type": "object", "properties": {"day": {"type": "string"}, "n": {"type": "integer"}},
                            "required": ["day"], "additionalProperties": false});
        assert!(validate(&json!({"day": "mon", "n": 2}), &schema).is_ok());
        assert_eq!(
            validate(&json!({"n": 2}), &schema).unwrap_err(),
            "arguments.day is required"
        );
        assert_eq!(
            validate(&json!({"day": 1}), &schema).unwrap_err(),
            "arguments.day must be of type string, got number"
        );
        assert_eq!(
            validate(&json!({"day": "x", "z": 1}), &schema).unwrap_err(),
            "arguments.z is not a known parameter"
        );
    }

    #[test]
    fn unknown_keys_are_dropped_at_every_level() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}});
        let mut v = json!({"a": {"b": "x", "c": 1}, "sentiment": -1});
        assert_eq!(
            drop_unknown(&mut v, &schema),
            ["arguments.sentiment", "arguments.a.c"]
        );
        assert_eq!(v, json!({"a": {"b": "x"}}));
    }
}
