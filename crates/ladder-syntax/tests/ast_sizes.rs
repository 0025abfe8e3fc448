//! Memory per source byte is bounded by the size of the AST nodes (BENCHMARKS.md, "Large
//! inputs"): large, rare variants are boxed so that every item and statement stays small.

use ladder_syntax::ast::{AgentStmt, Item};

#[test]
fn items_and_statements_stay_small() {
    assert!(
        std::mem::size_of::<Item>() <= 160,
        "{}",
        std::mem::size_of::<Item>()
    );
    assert!(
        std::mem::size_of::<AgentStmt>() <= 160,
        "{}",
        std::mem::size_of::<AgentStmt>()
    );
}
