//! Structure-aware: starts from the example and fixture ladders (the seed corpus `.ci/fuzz`
//! passes) and mutates them token by token, so that inputs stay close to real ladders and reach
//! the checker's analyses instead of stopping at the first syntax error. Every input is checked
//! and formatted (the properties of `parse_check` and `fmt`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ladder_check::fuzzing::check_and_render(text, |report| {
            let _ = miette::GraphicalReportHandler::new().render_report(&mut String::new(), report);
        });
        ladder_check::fuzzing::format_properties(text);
    }
});

/// Words and punctuation of the language, inserted or swapped in for a token.
const WORDS: &[&str] = &[
    "ladder", "use", "model", "intent", "type", "tool", "agent", "human", "script", "test",
    "entry", "limits", "budget", "vars", "meta", "prompt", "tools", "accepts", "handoff",
    "escalate", "consult", "sla", "fallback", "router", "say", "collect", "end", "http", "exec",
    "mock", "host", "timeout", "retries", "context", "when", "expect", "user", "else", "calls",
    "returns", "fails", "confidence", "sentiment", "tool_errors", "turns", "string", "int",
    "number", "bool", "phone", "email", "enum", "provider", "openai", "name", "input", "output",
    "steps_per_turn", "tool_calls_per_turn", "handoffs_per_turn", "escalation_depth",
    "turns_per_session", "cost_per_turn", "cost_per_session", "latency_p95", "summary",
    "transcript", "last", "{", "}", "[", "]", "(", ")", ":", ",", "->", "<", ">", "<=", ">=",
    "==", "!=", "=", "?", "$0.01", "$1/Mtok", "2s", "10m", "0", "1", "0.5", "-1", "\"x\"",
    "\"{{summary}}\"", "\"{{intent.reason}}\"", "\"\"\"\n  {{transcript}}\n\"\"\"", "// c\n",
    "/* c */", "/// doc\n", "#[allow(unused)]", "#![deny(warnings)]", "\n", " ",
];

/// Byte ranges of the tokens of `text`: words, numbers, strings, comments, punctuation and runs
/// of white space. Approximate on purpose: the mutation needs no exact lexer.
fn tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let start = i;
        let b = text[i];
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.' {
            while i < text.len() && (text[i].is_ascii_alphanumeric() || b"_$./".contains(&text[i])) {
                i += 1;
            }
        } else if b == b'"' {
            i += 1;
            while i < text.len() && text[i] != b'"' && text[i] != b'\n' {
                i += 1;
            }
            i = (i + 1).min(text.len());
        } else if text[i..].starts_with(b"//") {
            while i < text.len() && text[i] != b'\n' {
                i += 1;
            }
        } else if b.is_ascii_whitespace() {
            while i < text.len() && text[i].is_ascii_whitespace() {
                i += 1;
            }
        } else {
            i += 1;
            if text[start..].starts_with(b"->") || text[start..].starts_with(b"<=") {
                i += 1;
            }
        }
        out.push((start, i));
    }
    out
}

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = fastrand_lite(seed);
    // Now and then libFuzzer's own byte-level mutations, for what tokens cannot reach.
    if rng() % 5 == 0 {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    let text = data[..size].to_vec();
    let toks = tokens(&text);
    if toks.is_empty() {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    let pick = |r: u32| toks[r as usize % toks.len()];
    let mut out = Vec::with_capacity(size + 64);
    let (a, b) = pick(rng());
    match rng() % 5 {
        // Delete a token.
        0 => {
            out.extend_from_slice(&text[..a]);
            out.extend_from_slice(&text[b..]);
        }
        // Duplicate a token (a repeated statement, a doubled brace).
        1 => {
            out.extend_from_slice(&text[..b]);
            out.extend_from_slice(&text[a..]);
        }
        // Replace a token with a word of the language.
        2 => {
            out.extend_from_slice(&text[..a]);
            out.extend_from_slice(WORDS[rng() as usize % WORDS.len()].as_bytes());
            out.extend_from_slice(&text[b..]);
        }
        // Replace a token with another token of the same file (a name used elsewhere).
        3 => {
            let (c, d) = pick(rng());
            out.extend_from_slice(&text[..a]);
            out.extend_from_slice(&text[c..d]);
            out.extend_from_slice(&text[b..]);
        }
        // Insert a word of the language before a token.
        _ => {
            out.extend_from_slice(&text[..a]);
            out.extend_from_slice(WORDS[rng() as usize % WORDS.len()].as_bytes());
            out.push(b' ');
            out.extend_from_slice(&text[a..]);
        }
    }
    let n = out.len().min(max_size);
    data[..n].copy_from_slice(&out[..n]);
    n
});

/// A small xorshift generator seeded by libFuzzer, so that runs replay.
fn fastrand_lite(seed: u32) -> impl FnMut() -> u32 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    }
}
