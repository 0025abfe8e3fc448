//! Syntax errors in words a ladder author understands: what was expected and found, a keyword a
//! misspelt word may have meant, and one-line fixes for the common slips.

use super::{brackets, ParseError, Rule};
use crate::source::{FileId, Span};

/// A syntax error of a parse of `text[range]` (pest's positions are relative to its start).
pub(super) fn parse_error(
    file: FileId,
    text: &str,
    range: std::ops::Range<usize>,
    error: pest::error::Error<Rule>,
) -> ParseError {
    let pos = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let pos = (range.start + pos).min(range.end);
    let mut expected: Vec<String> = Vec::new();
    let mut keywords: Vec<&'static str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            keywords.extend_from_slice(keywords_of(*rule));
            if let Some(words) = describe(*rule) {
                if !expected.iter().any(|e| e == words) {
                    expected.push(words.to_string());
                }
            }
        }
    }
    let rest = &text[pos..];
    let word_len = rest
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    let (found, len) = if rest.starts_with("\"\"\"") {
        ("a `\"\"\"` text that is never closed".to_string(), 3)
    } else if rest.starts_with('"') {
        let line_len = rest.find('\n').unwrap_or(rest.len());
        ("a string that is never closed".to_string(), line_len)
    } else if rest.is_empty() {
        ("end of file".to_string(), 0)
    } else if word_len > 0 {
        (format!("`{}`", &rest[..word_len]), word_len)
    } else {
        let c = rest.chars().next().expect("rest is not empty");
        let shown = match c {
            '\n' => "end of line".to_string(),
            c => format!("`{c}`"),
        };
        (shown, c.len_utf8())
    };
    let suggestion = if word_len > 0 {
        let word = &rest[..word_len];
        keywords
            .iter()
            .map(|kw| (strsim_distance(word, kw), *kw))
            .filter(|(d, kw)| *d > 0 && *d <= 2.max(kw.len() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, kw)| kw.to_string())
    } else {
        None
    };
    let hint = slip(text, range, pos);
    ParseError {
        span: Span::new(file, pos, pos + len),
        expected,
        found,
        suggestion,
        hint,
    }
}

/// The line number (from 1) of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// A one-line fix for the common slips at `pos` in a parse of `text[range]` (see
/// [`ParseError::hint`]).
fn slip(text: &str, range: std::ops::Range<usize>, pos: usize) -> Option<String> {
    let rest = &text[pos..range.end];
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..pos].trim();
    // An unclosed `"""`: the grammar sees the rest of the file as text.
    let triples: Vec<usize> = text.match_indices("\"\"\"").map(|(i, _)| i).collect();
    if triples.len() % 2 == 1 {
        let open = *triples.last().expect("an odd count is not zero");
        return Some(format!(
            "the `\"\"\"` text that opens on line {} is never closed: end it with `\"\"\"`",
            line_of(text, open)
        ));
    }
    if rest.trim_start().is_empty() {
        let (at, by_indent) = unclosed_block(&text[range.clone()])?;
        let at = range.start + at;
        let head_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let head = text[head_start..at].trim();
        let next = if range.end < text.len() && !by_indent {
            format!(" before line {}", line_of(text, range.end))
        } else {
            String::new()
        };
        return Some(format!(
            "the `{head} {{` block that opens on line {} is never closed: add `}}`{next}",
            line_of(text, at)
        ));
    }
    let word = before.split_whitespace().last().unwrap_or("");
    const STATEMENTS: &[&str] = &[
        "tools", "accepts", "model", "prompt", "timeout", "retries", "sla", "fallback", "handoff",
        "escalate", "consult", "entry", "mock", "http", "exec", "host", "mcp", "say", "collect",
    ];
    if rest.starts_with(':') && STATEMENTS.contains(&word) && before == word {
        return Some(format!(
            "statements take no `:`: write `{word} ...` (`tools [a, b]`, `timeout 2s`)"
        ));
    }
    if rest.starts_with("->") && before.starts_with("sla ") {
        return Some(format!("write `{before} else -> ...`"));
    }
    if rest.starts_with("->") && before == "handoff" {
        return Some(
            "in a script, a handoff names its rung with no arrow: `handoff nurse`".to_string(),
        );
    }
    None
}

/// The offset of the `{` whose `}` is missing in a piece that ends with blocks open. The braces
/// pair up innermost first, so a missing `}` is only seen at the end; the indentation tells which
/// block lost it: a `}` that starts a line left of its block's first line closed an outer block.
/// Without such a clue, the innermost open block. The flag tells whether indentation decided.
fn unclosed_block(piece: &str) -> Option<(usize, bool)> {
    let indent_at = |at: usize| -> (usize, bool) {
        let line_start = piece[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = &piece[line_start..at];
        let indent = before.len() - before.trim_start_matches([' ', '\t']).len();
        (indent, before.trim().is_empty())
    };
    let mut open: Vec<usize> = Vec::new();
    let mut suspect = None;
    for (i, b) in brackets(piece) {
        match b {
            b'{' => open.push(i),
            b'}' => {
                if let Some(opener) = open.pop() {
                    let (close_indent, starts_line) = indent_at(i);
                    if suspect.is_none() && starts_line && close_indent < indent_at(opener).0 {
                        suspect = Some(opener);
                    }
                }
            }
            _ => {}
        }
    }
    if open.is_empty() {
        return None;
    }
    match suspect {
        Some(at) => Some((at, true)),
        None => open.last().map(|at| (*at, false)),
    }
}

/// Levenshtein distance; small and local so that the syntax crate needs no extra dependency.
fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Keywords a misspelt word at the position of `rule` may have meant.
fn keywords_of(rule: Rule) -> &'static [&'static str] {
    match rule {
        Rule::item => &[
            "use", "ladder", "model", "intent", "type", "tool", "agent", "human", "script", "mcp",
            "meta", "test",
        ],
        Rule::test_stmt => &["user", "model", "tool", "expect"],
        Rule::expect_stmt => &[
            "handoff",
            "agent",
            "escalation",
            "human",
            "reply",
            "tool",
            "ceiling",
            "fallback",
            "var",
            "ended",
        ],
        Rule::agent_stmt => &[
            "model", "prompt", "tools", "accepts", "handoff", "escalate", "consult", "sla",
            "fallback", "router", "return", "owns",
        ],
        Rule::tool_stmt => &[
            "http", "exec", "mock", "host", "mcp", "timeout", "retries", "approval",
        ],
        Rule::script_stmt => &["say", "collect", "handoff", "end"],
        Rule::header_stmt => &["entry", "vars", "meta", "limits", "budget"],
        Rule::http_option => &["auth", "header", "body"],
        Rule::kw_context => &["context"],
        Rule::kw_when => &["when"],
        Rule::kw_else => &["else"],
        _ => &[],
    }
}

/// Words for what a rule accepts; `None` for rules that never show up on their own.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::version_line => "the version line `ladder 1`",
        Rule::version_number => "a language version number",
        Rule::inner_attr => "`#![..]`",
        Rule::outer_attr => "`#[allow(..)]`",
        Rule::attr_level => "`allow`, `warn` or `deny`",
        Rule::lint_list | Rule::lint_name => "a diagnostic code like `L0018`",
        Rule::doc_comment => "a doc comment",
        Rule::item => "an item (`agent`, `tool`, `intent`, ...)",
        Rule::header_stmt | Rule::named_props => {
            "a header entry (`entry`, `limits`, `budget`, `vars`)"
        }
        Rule::props | Rule::intent_body | Rule::meta_body => "`{`",
        Rule::prop => "a `key: value` pair",
        Rule::value | Rule::value_list => "a value",
        Rule::var_decl | Rule::field => "a field like `name: string`",
        Rule::intent_member => "a payload field or `examples`",
        Rule::type_expr | Rule::type_atom | Rule::list_type | Rule::enum_type => "a type",
        Rule::optional_mark => "`?`",
        Rule::params | Rule::param => "a parameter like `phone: string`",
        Rule::binding => "a binding (`env(NAME)`, `session.name` or a literal)",
        Rule::tool_body => "`{`",
        Rule::tool_stmt => "a tool statement (`http`, `exec`, `mock`, `host`, `mcp`, `timeout`, ...)",
        Rule::description => "a description string",
        Rule::http_method => "an HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`)",
        Rule::http_option => "an http option (`auth`, `header`, `body`)",
        Rule::auth_option | Rule::header_option | Rule::body_option => "an http option",
        Rule::env_ref => "`env(NAME)`",
        Rule::env_name => "an environment variable name",
        Rule::session_ref => "`session.name`",
        Rule::agent_stmt => {
            "an agent statement (`model`, `prompt`, `tools`, `handoff`, `escalate`, ...)"
        }
        Rule::context_clause => "`context`",
        Rule::fuse_clause => "`fuse` or `no_fuse`",
        Rule::condition | Rule::comparison => "a condition like `confidence < 0.7`",
        Rule::compare_op => "a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`)",
        Rule::logic_op => "`and` or `or`",
        Rule::script_stmt => "a script statement (`say`, `collect`, `handoff`, `end`)",
        Rule::literal => "a literal value",
        Rule::json_value | Rule::json_object | Rule::json_array => "a JSON value",
        Rule::json_pair => "a `key: value` pair",
        Rule::price => "a price like `$2.50/Mtok`",
        Rule::price_unit => "`Mtok`, `Ktok` or `tok`",
        Rule::money => "an amount like `$0.04`",
        Rule::duration => "a duration like `2s` or `300ms`",
        Rule::duration_unit => "a duration unit (`ms`, `s`, `m`, `h`)",
        Rule::number | Rule::decimal => "a number",
        Rule::boolean => "`true` or `false`",
        Rule::null => "`null`",
        Rule::string | Rule::string_inner => "a string",
        Rule::triple_string | Rule::triple_inner => "a `\"\"\"` string",
        Rule::ident => "a name",
        Rule::kw_ladder => "`ladder`",
        Rule::kw_use => "`use`",
        Rule::kw_entry => "`entry`",
        Rule::kw_vars => "`vars`",
        Rule::kw_meta => "`meta`",
        Rule::kw_model => "`model`",
        Rule::kw_intent => "`intent`",
        Rule::kw_examples => "`examples`",
        Rule::kw_type => "`type`",
        Rule::kw_enum => "`enum`",
        Rule::kw_tool => "`tool`",
        Rule::kw_http => "`http`",
        Rule::kw_auth => "`auth`",
        Rule::kw_bearer => "`bearer`",
        Rule::kw_header => "`header`",
        Rule::kw_body => "`body`",
        Rule::kw_exec => "`exec`",
        Rule::kw_mock => "`mock`",
        Rule::kw_host => "`host`",
        Rule::kw_mcp => "`mcp`",
        Rule::kw_timeout => "`timeout`",
        Rule::kw_retries => "`retries`",
        Rule::kw_approval => "`approval`",
        Rule::kw_env => "`env`",
        Rule::kw_agent => "`agent`",
        Rule::kw_prompt => "`prompt`",
        Rule::kw_tools => "`tools`",
        Rule::kw_accepts => "`accepts`",
        Rule::kw_handoff => "`handoff`",
        Rule::kw_context => "`context`",
        Rule::kw_escalate => "`escalate`",
        Rule::kw_when => "`when`",
        Rule::kw_consult => "`consult`",
        Rule::kw_sla => "`sla`",
        Rule::kw_else => "`else`",
        Rule::kw_fallback => "`fallback`",
        Rule::kw_router => "`router`",
        Rule::kw_human => "`human`",
        Rule::kw_script => "`script`",
        Rule::kw_say => "`say`",
        Rule::kw_collect => "`collect`",
        Rule::kw_end => "`end`",
        Rule::arrow => "`->`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::colon => "`:`",
        Rule::equals => "`=`",
        Rule::comma => "`,`",
        Rule::semicolon => "`;`",
        Rule::inner_open => "`#![`",
        Rule::outer_open => "`#[`",
        Rule::test_stmt => "a test step (`user`, `model AGENT says|calls`, `tool T returns|fails`, `expect`)",
        Rule::expect_stmt => "`expect`",
        Rule::model_answer => "`model AGENT says \"..\"` or `model AGENT calls FUNCTION { .. }`",
        Rule::says_answer | Rule::calls_answer => "`says` or `calls`",
        Rule::expect_handoff
        | Rule::expect_agent
        | Rule::expect_escalation
        | Rule::expect_human
        | Rule::expect_reply
        | Rule::expect_tool
        | Rule::expect_ceiling
        | Rule::expect_fallback
        | Rule::expect_var
        | Rule::expect_ended => {
            "an expectation (`handoff`, `agent`, `escalation`, `human`, `reply`, `tool`, `ceiling`, `fallback`, `var`, `ended`)"
        }
        Rule::negation | Rule::kw_not => "`not`",
        Rule::kw_test => "`test`",
        Rule::kw_user => "`user`",
        Rule::kw_says => "`says`",
        Rule::kw_calls => "`calls`",
        Rule::kw_expect => "`expect`",
        Rule::kw_escalation => "`escalation`",
        Rule::kw_reply => "`reply`",
        Rule::kw_contains => "`contains`",
        Rule::kw_matches => "`matches`",
        Rule::kw_called => "`called`",
        Rule::kw_with => "`with`",
        Rule::kw_ceiling => "`ceiling`",
        Rule::kw_var => "`var`",
        Rule::kw_ended => "`ended`",
        Rule::unknown_stmt | Rule::unknown_block_stmt | Rule::statement_keyword => return None,
        _ => return None,
    })
}
