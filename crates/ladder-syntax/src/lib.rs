//! The `.ladder` language: grammar binding, typed AST with spans, and syntax errors.
//!
//! ```
//! use ladder_syntax::{parse, FileId};
//! let file = parse(FileId(0), "ladder 1\nhuman rn \"On-call nurse\"\n").unwrap();
//! assert_eq!(file.items.len(), 1);
//! ```

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
