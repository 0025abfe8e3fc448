//! What a `collect` step keeps of the caller's answer: the value of its declared type, found in
//! the text ("my number is +1 555 0100, thanks" gives `+1 555 0100`), or why there is none, so
//! that the script asks again instead of storing a sentence as a phone number.

use serde_json::{json, Value};

/// The value of `schema`'s type in `text`, or a description of what was expected.
pub(crate) fn extract(text: &str, schema: &Value) -> Result<Value, String> {
    let text = text.trim();
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
            .map(str::to_lowercase)
            .collect();
        return options
            .iter()
            .find(|o| {
                o.as_str()
                    .is_some_and(|o| words.iter().any(|w| *w == o.to_lowercase()))
            })
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                format!("one of {}", names.join(", "))
            });
    }
    let format = schema.get("format").and_then(Value::as_str);
    match (schema.get("type").and_then(Value::as_str), format) {
        (Some("string"), Some("phone")) => phone(text)
            .map(Value::String)
            .ok_or("a phone number".into()),
        (Some("string"), Some("email")) => tokens(text)
            .find(|t| {
                let mut parts = t.splitn(2, '@');
                let (user, host) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                !user.is_empty()
                    && host.contains('.')
                    && !host.starts_with('.')
                    && !host.ends_with('.')
            })
            .map(|t| json!(t))
            .ok_or("an email address".into()),
        (Some("string"), Some("date")) => tokens(text)
            .find(|t| is_date(t))
            .map(|t| json!(t))
            .ok_or("a date like 2026-12-01".into()),
        (Some("string"), Some("date-time")) => tokens(text)
            .find(|t| t.len() >= 16 && is_date(&t[..10]) && t.as_bytes()[10] == b'T')
            .map(|t| json!(t))
            .ok_or("a date and time like 2026-12-01T09:30:00Z".into()),
        (Some("string"), Some("uri")) => tokens(text)
            .find(|t| t.starts_with("https://") || t.starts_with("http://"))
            .map(|t| json!(t))
            .ok_or("a web address".into()),
        (Some("integer"), _) => tokens(text)
            .find_map(|t| t.parse::<i64>().ok())
            .map(|n| json!(n))
            .ok_or("a whole number".into()),
        (Some("number"), _) => tokens(text)
            .find_map(|t| t.parse::<f64>().ok().filter(|n| n.is_finite()))
            .map(|n| json!(n))
            .ok_or("a number".into()),
        (Some("boolean"), _) => tokens(text)
            .find_map(|t| match t.to_lowercase().as_str() {
                "yes" | "y" | "true" | "ok" | "sure" => Some(true),
                "no" | "n" | "false" | "nope" => Some(false),
                _ => None,
            })
            .map(|b| json!(b))
            .ok_or("yes or no".into()),
        _ if text.is_empty() => Err("an answer".into()),
        _ => Ok(json!(text)),
    }
}

/// Words of `text` without the punctuation around them.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|t| {
            t.trim_matches(|c: char| {
                matches!(
                    c,
                    ',' | ';' | '!' | '?' | '"' | '\'' | '(' | ')' | '<' | '>'
                )
            })
        })
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| !t.is_empty())
}

fn is_date(t: &str) -> bool {
    let b = t.as_bytes();
    if t.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    matches!(
        (num(&t[..4]), num(&t[5..7]), num(&t[8..10])),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

/// The longest run of phone characters holding 7 to 15 digits.
fn phone(text: &str) -> Option<String> {
    let mut best: Option<String> = None;
    let mut run = String::new();
    let flush = |run: &mut String, best: &mut Option<String>| {
        let candidate = run.trim().trim_end_matches(['-', '.']).trim().to_string();
        let digits = candidate.chars().filter(char::is_ascii_digit).count();
        if (7..=15).contains(&digits) && best.as_ref().is_none_or(|b| b.len() < candidate.len()) {
            *best = Some(candidate);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.') {
            if c == '+' && run.chars().any(|r| r.is_ascii_digit()) {
                flush(&mut run, &mut best);
            }
            run.push(c);
        } else {
            flush(&mut run, &mut best);
        }
    }
    flush(&mut run, &mut best);
    best.map(|b| b.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::extract;
    use serde_json::json;

    #[test]
    fn typed_answers_are_found_in_sentences_or_refused() {
        let phone = json!({"type": "string", "format": "phone"});
        assert_eq!(
            extract("sure, my number is +1 555 0100, thanks", &phone),
            Ok(json!("+1 555 0100"))
        );
        assert_eq!(
            extract("(020) 7946-0000", &phone),
            Ok(json!("(020) 7946-0000"))
        );
        assert!(extract("call me back please", &phone).is_err());
        assert!(extract("I am 42", &phone).is_err());
        let email = json!({"type": "string", "format": "email"});
        assert_eq!(
            extract("it's ada@example.com.", &email),
            Ok(json!("ada@example.com"))
        );
        assert!(extract("ada at example", &email).is_err());
        let date = json!({"type": "string", "format": "date"});
        assert_eq!(
            extract("on 2026-12-01 please", &date),
            Ok(json!("2026-12-01"))
        );
        assert!(extract("next friday", &date).is_err());
        assert_eq!(
            extract("3 of them", &json!({"type": "integer"})),
            Ok(json!(3))
        );
        assert_eq!(
            extract("Yes.", &json!({"type": "boolean"})),
            Ok(json!(true))
        );
        let level = json!({"type": "string", "enum": ["low", "high"]});
        assert_eq!(extract("it is HIGH", &level), Ok(json!("high")));
        assert!(extract("medium", &level).is_err());
        assert_eq!(
            extract("  Ada  ", &json!({"type": "string"})),
            Ok(json!("Ada"))
        );
    }
}
