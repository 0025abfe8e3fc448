//! Error recovery: a file with syntax errors is cut where items begin, and each piece is parsed
//! on its own.

use super::errors::parse_error;
use super::lower::Lower;
use super::{parse, too_deep, LadderParser, ParseError, Rule, MAX_NESTING};
use crate::ast::*;
use crate::source::{FileId, Span};
use pest::Parser as _;

/// Parses one file and recovers from syntax errors item by item: every broken item is reported,
/// and the items around it are still returned (with the broken ones listed in
/// [`File::broken`]), so that the checker and the editor keep working on the rest.
///
/// A file that parses is returned as [`parse`] returns it. Otherwise the file is cut where an
/// item begins at the start of a line (`agent`, `tool x(`, `model x {`, ...: the layout `ladderc
/// fmt` writes, outside strings and comments) and each piece is parsed on its own. A piece that
/// fails is one error; its first line names the broken item.
pub fn parse_recovering(file: FileId, text: &str) -> (File, Vec<ParseError>) {
    let first = match parse(file, text) {
        Ok(parsed) => return (parsed, Vec::new()),
        Err(error) => error,
    };
    let starts = item_starts(text);
    let mut errors = Vec::new();
    let mut out = File {
        span: Span::new(file, 0, text.len()),
        version: None,
        attrs: Vec::new(),
        items: Vec::new(),
        broken: Vec::new(),
    };
    let Some(&first_item) = starts.first() else {
        return (out, vec![first]);
    };
    // The preamble: the version line and the file's attributes.
    match LadderParser::parse(Rule::file, &text[..first_item]) {
        Ok(mut pairs) => {
            let root = pairs
                .next()
                .expect("the `file` rule always produces one pair");
            let preamble = Lower { file, offset: 0 }.file(root);
            out.version = preamble.version;
            out.attrs = preamble.attrs;
            out.items = preamble.items;
        }
        Err(e) => errors.push(parse_error(file, text, 0..first_item, e)),
    }
    let ends = starts
        .iter()
        .skip(1)
        .copied()
        .chain(std::iter::once(text.len()));
    for (start, end) in starts.iter().copied().zip(ends) {
        let piece = &text[start..end];
        let parsed = match too_deep(piece) {
            Some(at) => Err(ParseError {
                span: Span::new(file, start + at, start + at + 1),
                expected: vec![format!("at most {MAX_NESTING} nested brackets")],
                found: "a bracket nested deeper".to_string(),
                suggestion: None,
                hint: None,
            }),
            None => LadderParser::parse(Rule::items, piece)
                .map(|mut pairs| {
                    pairs
                        .next()
                        .expect("the `items` rule always produces one pair")
                })
                .map_err(|e| parse_error(file, text, start..end, e)),
        };
        match parsed {
            Ok(root) => out.items.extend(
                Lower {
                    file,
                    offset: start,
                }
                .file(root)
                .items,
            ),
            Err(error) => {
                errors.push(error);
                out.broken.push(broken_item(file, text, start, end));
            }
        }
    }
    if errors.is_empty() {
        // The cuts hid the problem (it spans items): report it as the whole parse saw it.
        errors.push(first);
    }
    (out, errors)
}

/// Item keywords that begin an item wherever they start a line.
const ITEM_KEYWORDS: &[&str] = &[
    "use", "ladder", "intent", "type", "agent", "human", "script", "test",
];

/// Byte offsets where an item begins at the start of a line, outside strings and comments: an
/// item keyword in column 0 (not the version line), or `model x {`, `tool x(`, `meta {` there
/// outside every block. Doc comments and attributes right above an item belong to it.
fn item_starts(text: &str) -> Vec<usize> {
    use crate::lex::Lexeme;
    let mut starts = Vec::new();
    let mut depth = 0usize;
    let mut check = |line_start: usize, depth: &mut usize| {
        if begins_item(&text[line_start..], *depth) {
            starts.push(owning_prefix(text, line_start));
            *depth = 0;
        }
    };
    check(0, &mut depth);
    for (lexeme, _, end) in crate::lex::lex(text) {
        match lexeme {
            Lexeme::Newline => check(end, &mut depth),
            Lexeme::Open(b'{') => depth += 1,
            Lexeme::Close(b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    starts
}

/// Whether a line (`rest` starts at its column 0) begins an item.
fn begins_item(rest: &str, depth: usize) -> bool {
    let word_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let word = &rest[..word_len];
    let after = rest[word_len..].trim_start_matches([' ', '\t']);
    let name_then = |open: char| {
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        name_len > 0
            && after[name_len..]
                .trim_start_matches([' ', '\t'])
                .starts_with(open)
    };
    match word {
        // `ladder 1` is the version line.
        "ladder" => !after.starts_with(|c: char| c.is_ascii_digit()),
        w if ITEM_KEYWORDS.contains(&w) => true,
        "model" => depth == 0 || name_then('{'),
        "tool" => depth == 0 || name_then('('),
        "meta" => depth == 0,
        "mcp" => depth == 0 || name_then('{'),
        _ => false,
    }
}

/// The start of the doc comments and attributes directly above the item line at `at`.
fn owning_prefix(text: &str, at: usize) -> usize {
    let mut start = at;
    while start > 0 {
        let prev_start = text[..start - 1].rfind('\n').map_or(0, |n| n + 1);
        let line = &text[prev_start..start - 1];
        if line.starts_with("///") || line.starts_with("#[") {
            start = prev_start;
        } else {
            break;
        }
    }
    start
}

/// The broken item in `text[start..end]`, named by its first line.
fn broken_item(file: FileId, text: &str, start: usize, end: usize) -> BrokenItem {
    let piece = &text[start..end];
    // Skip the doc comments and attributes above the keyword.
    let mut at = 0;
    for line in piece.split_inclusive('\n') {
        if line.starts_with("///") || line.starts_with("#[") {
            at += line.len();
        } else {
            break;
        }
    }
    let word = |from: usize| -> (usize, usize) {
        let rest = &piece[from..];
        let skip = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let len = rest[skip..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        (from + skip, from + skip + len)
    };
    let (k0, k1) = word(at);
    let (n0, n1) = word(k1);
    let trimmed_end = start + piece.trim_end().len();
    BrokenItem {
        keyword: piece[k0..k1].to_string(),
        name: (n1 > n0).then(|| Ident {
            name: piece[n0..n1].to_string(),
            span: Span::new(file, start + n0, start + n1),
        }),
        span: Span::new(file, start, trimmed_end.max(start)),
    }
}
