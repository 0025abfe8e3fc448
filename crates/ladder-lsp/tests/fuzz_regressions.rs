//! Every session the `lsp` fuzz target crashed on (fuzz/regressions/lsp/), replayed; plus a
//! session built from each example, so that the replay runs even while that folder is empty.

use std::path::Path;

#[test]
fn lsp_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sessions: Vec<Vec<u8>> = std::fs::read_dir(root.join("fuzz/regressions/lsp"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    for example in std::fs::read_dir(root.join("examples")).unwrap().flatten() {
        if !example.path().is_file() {
            continue;
        }
        let mut session = vec![0, 0, 0];
        session.extend(std::fs::read(example.path()).unwrap());
        // Then hover, definition, references, completion, symbols and formatting.
        session.extend([0, 3, 1, 8, 4, 2, 10, 5, 3, 4, 6, 3, 0, 7, 0, 0, 8, 0, 0]);
        sessions.push(session);
    }
    for session in sessions {
        ladder_lsp::fuzzing::session(&session);
    }
}
