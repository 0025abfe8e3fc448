//! The language server on a file with syntax errors: every broken item is reported, and the
//! diagnostics, navigation and symbols of everything else stay, at the offsets of the text as it
//! is now (not of the last text that parsed).

mod support;

use serde_json::json;
use std::path::PathBuf;
use support::{definition, position, session};

const BROKEN: &str = r#"ladder 1
ladder help_desk { entry triage }
model mini { provider: openai, name: "gpt-4o-mini" }
intent billing "Bills" {}
intent support "Help" {}

agent triage {
  router
  model mini
  prompt "Route."
  handoff billing -> billing
  handoff support -> support
}

agent billing {
  model mini
  accepts billing
  prompt: "You handle invoices."
}

agent support {
  model mini
  accepts support
  prompt "You help."
  escalate -> on_cal
}

tool lookup(id: string) -> string {
  mock "paid"
  retries: 2
}

human on_call "On call"
"#;

fn document() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("ladder-lsp-recovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let path = dir.join("main.ladder");
    std::fs::write(&path, BROKEN).unwrap();
    let uri = format!("file://{}", path.display());
    (dir, uri)
}

#[tokio::test]
async fn every_broken_item_is_reported_and_the_rest_still_navigates() {
    let (dir, uri) = document();
    let shifted = format!("// one\n// two\n// three\n{BROKEN}");
    let outcome = session(vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "capabilities": {}, "processId": null,
            "workspaceFolders": [{"uri": format!("file://{}", dir.display()), "name": "ws"}]}}),
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "ladder", "version": 1, "text": BROKEN}}}),
        // `support` in `handoff support -> support`, the target (the 4th `support` in the text).
        definition(2, &uri, BROKEN, "support", 3),
        json!({"jsonrpc": "2.0", "id": 3, "method": "textDocument/documentSymbol", "params": {
            "textDocument": {"uri": uri}}}),
        // Three lines inserted above: the same name, three lines down, still resolves.
        json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"text": shifted}]}}),
        definition(4, &uri, &shifted, "support", 3),
        // Hover is rendered from the tree on request: over a broken item it says so; over an
        // item that parsed, its edges.
        json!({"jsonrpc": "2.0", "id": 6, "method": "textDocument/hover", "params": {
            "textDocument": {"uri": uri}, "position": position(&shifted, "billing", 3)}}),
        json!({"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": {
            "textDocument": {"uri": uri}, "position": position(&shifted, "support", 3)}}),
        json!({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}),
    ])
    .await;

    // Both broken items, and the semantic error in an item that parsed; no follow-on error for
    // the names of broken items (`billing` is handed to, `lookup` is a broken tool).
    assert_eq!(outcome.codes(), ["L0001", "L0004", "L0001"]);

    let target = outcome.response(2);
    assert_eq!(target["range"]["start"]["line"], 20, "{target}");
    let names: Vec<&str> = outcome
        .response(3)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in ["triage", "support", "on_call", "mini"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let moved = outcome.response(4);
    assert_eq!(moved["range"]["start"]["line"], 23, "{moved}");
    let broken = outcome.response(6)["contents"]["value"].as_str().unwrap();
    assert_eq!(
        broken,
        "```ladder\nagent billing\n```\n(this agent has a syntax error)"
    );
    let parsed = outcome.response(7)["contents"]["value"].as_str().unwrap();
    assert!(parsed.contains("- escalate -> `on_cal`"), "{parsed}");
}
