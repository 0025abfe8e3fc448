//! The `.ladder` language: grammar binding, typed AST with spans, and syntax errors.
//!
//! ```
//! use ladder_syntax::{parse, FileId};
//! let file = parse(FileId(0), "ladder 1\nhuman rn \"On-call nurse\"\n").unwrap();
//! assert_eq!(file.items.len(), 1);
//! ```

#![warn(missing_docs)]

// The pest derive refers to `::alloc` when pest is built without its `std` feature (see parser.rs).
extern crate alloc;

pub mod ast;
mod format;
mod lex;
mod parser;
mod source;

pub use format::{format, format_unguarded};
pub use parser::{
    dedent, parse, parse_recovering, parse_sequential, ParseError, MAX_NESTING, PARALLEL_THRESHOLD,
};
pub use source::{FileId, SourceFile, SourceMap, Span};

/// The offsets of the `{` that are still open at byte `at` of `text` (outermost first), outside
/// strings and comments: the blocks the cursor is in, for an editor.
pub fn open_blocks(text: &str, at: usize) -> Vec<usize> {
    let at = at.min(text.len());
    let mut open = Vec::new();
    for (lexeme, start, _) in lex::lex(&text[..at]) {
        match lexeme {
            lex::Lexeme::Open(b'{') => open.push(start),
            lex::Lexeme::Close(b'}') => {
                open.pop();
            }
            _ => {}
        }
    }
    open
}
