//! The parser: pest's grammar to the typed AST. No code outside this module sees a `Pair`.
//!
//! - this file: the entry points and the parallel parse of large files;
//! - [`recovery`]: error recovery item by item;
//! - [`errors`]: syntax errors in words, with the one-line fixes for common slips;
//! - [`lower`]: pest pairs to the AST.

mod errors;
mod lower;
mod recovery;

use crate::ast::*;
use crate::source::{FileId, Span};
use errors::parse_error;
use lower::Lower;
use pest::Parser as _;

pub use lower::dedent;
pub use recovery::parse_recovering;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/ladder.pest"]
struct LadderParser;

/// A syntax error, in words a ladder author understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the parser stopped: the offending token (or an empty span at the end of the file).
    pub span: Span,
    /// What would have been accepted there, e.g. "`->`", "an agent name".
    pub expected: Vec<String>,
    /// What was found instead, e.g. "`agnet`", "end of file".
    pub found: String,
    /// A keyword the offending word is probably a misspelling of.
    pub suggestion: Option<String>,
    /// A one-line fix for a common slip: the block a missing `}` would close and where it opened,
    /// an unclosed `"""`, a `:` after a statement keyword, `sla 3s -> x`, `handoff -> x` in a
    /// script.
    pub hint: Option<String>,
}

/// Parses one file. Syntax errors stop the parse of that file (pest has no recovery); every
/// semantic problem is left to the checker.
///
/// Files of [`PARALLEL_THRESHOLD`] bytes or more are cut between top-level items and the pieces
/// parsed on all cores; if any piece fails, the whole file is parsed again in one piece, so that
/// errors are exactly those of a sequential parse.
pub fn parse(file: FileId, text: &str) -> Result<File, ParseError> {
    if let Some(at) = too_deep(text) {
        return Err(ParseError {
            span: Span::new(file, at, at + 1),
            expected: vec![format!("at most {MAX_NESTING} nested brackets")],
            found: "a bracket nested deeper".to_string(),
            suggestion: None,
            hint: None,
        });
    }
    if text.len() >= PARALLEL_THRESHOLD {
        if let Some(parsed) = parse_parallel(file, text) {
            return Ok(parsed);
        }
    }
    parse_sequential(file, text)
}

/// [`parse`] in one piece, whatever the size (for tests that compare the two).
#[doc(hidden)]
pub fn parse_sequential(file: FileId, text: &str) -> Result<File, ParseError> {
    let mut pairs = LadderParser::parse(Rule::file, text)
        .map_err(|e| parse_error(file, text, 0..text.len(), e))?;
    let root = pairs
        .next()
        .expect("the `file` rule always produces one pair");
    Ok(Lower { file, offset: 0 }.file(root))
}

/// Below this size a parallel parse costs more in thread start-up than it saves.
pub const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// The size of the pieces a large file is parsed in. pest holds a piece's whole token queue
/// (about 40 bytes per source byte) until it is lowered: small pieces, each lowered and dropped
/// before the next is parsed, keep that to a few MiB whatever the file's size, where two halves
/// of a 4 MiB file held 170 MiB (BENCHMARKS.md, "Linear checks").
const PIECE_BYTES: usize = 64 * 1024;

fn parse_parallel(file: FileId, text: &str) -> Option<File> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads < 2 {
        return None;
    }
    let cuts = item_boundaries(text, text.len().div_ceil(PIECE_BYTES).max(threads))?;
    let pieces: Vec<(usize, &str)> = cuts.windows(2).map(|w| (w[0], &text[w[0]..w[1]])).collect();
    // Each worker takes a run of consecutive pieces, so that the items stay in order.
    let per_worker = pieces.len().div_ceil(threads);
    let results: Vec<Option<Vec<File>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .chunks(per_worker)
            .enumerate()
            .map(|(w, run)| {
                scope.spawn(move || {
                    run.iter()
                        .enumerate()
                        .map(|(i, &(offset, piece))| {
                            let rule = if w == 0 && i == 0 {
                                Rule::file
                            } else {
                                Rule::items
                            };
                            let root = LadderParser::parse(rule, piece).ok()?.next()?;
                            Some(Lower { file, offset }.file(root))
                        })
                        .collect::<Option<Vec<File>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    // Any piece that failed: the sequential parse reports the error.
    let pieces: Vec<File> = results
        .into_iter()
        .collect::<Option<Vec<Vec<File>>>>()?
        .into_iter()
        .flatten()
        .collect();
    let total: usize = pieces.iter().map(|f| f.items.len()).sum();
    let mut pieces = pieces.into_iter();
    let mut first = pieces.next()?;
    first.items.reserve_exact(total - first.items.len());
    for rest in pieces {
        first.items.extend(rest.items);
    }
    first.span = Span::new(file, 0, text.len());
    Some(first)
}

/// Brackets nested deeper than this are refused before pest runs: the grammar recurses once per
/// level, and pest is built without its stack guard (which costs about 11% of parse time).
pub const MAX_NESTING: usize = 128;

/// Byte offsets of `{ } [ ] ( )` outside strings and comments, with the byte.
fn brackets(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    crate::lex::lex_without_newlines(text).filter_map(|(lexeme, at, _)| match lexeme {
        crate::lex::Lexeme::Open(b) | crate::lex::Lexeme::Close(b) => Some((at, b)),
        _ => None,
    })
}

/// The offset of the first bracket nested deeper than [`MAX_NESTING`].
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in brackets(text) {
        if matches!(b, b'{' | b'[' | b'(') {
            depth += 1;
            if depth > MAX_NESTING {
                return Some(i);
            }
        } else {
            depth = depth.saturating_sub(1);
        }
    }
    None
}

/// Byte offsets `0 = c0 < c1 < .. < len` that cut `text` into about `pieces` runs of whole
/// top-level items: each inner cut follows a `}` that closes a top-level block. `None` when no
/// cut is found or the braces do not balance (the sequential parse then reports the problem).
fn item_boundaries(text: &str, pieces: usize) -> Option<Vec<usize>> {
    let target = text.len() / pieces;
    let mut cuts = vec![0];
    let mut depth: i64 = 0;
    for (i, b) in brackets(text) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                let next_cut = cuts.len() * target;
                if depth == 0 && i + 1 >= next_cut && cuts.len() < pieces && i + 1 < text.len() {
                    cuts.push(i + 1);
                }
            }
            _ => {}
        }
    }
    if depth != 0 || cuts.len() < 2 {
        return None;
    }
    cuts.push(text.len());
    Some(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_file() {
        let src = "ladder 1\nladder demo { entry a }\nagent a { model m prompt \"hi {{x}}\" }\n";
        let file = parse(FileId(0), src).expect("valid");
        assert_eq!(file.version.as_ref().map(|v| v.number), Some(1));
        assert_eq!(file.items.len(), 2);
    }

    #[test]
    fn syntax_errors_use_words() {
        let src = "ladder 1\nagnet a {}\n";
        let err = parse(FileId(0), src).unwrap_err();
        assert_eq!(err.found, "`agnet`");
        assert_eq!(err.suggestion.as_deref(), Some("agent"));
        assert!(err.expected.iter().all(|e| !e.contains("kw_")));
    }

    #[test]
    fn dedent_keeps_relative_indentation() {
        assert_eq!(dedent("\n    a\n      b\n  "), "a\n  b");
    }
}
