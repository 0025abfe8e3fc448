//! An in-process language server session for the tests: messages in, responses and published
//! diagnostics out.
#![allow(dead_code)]

use futures_util::StreamExt;
use serde_json::{json, Value};
use tower_lsp::jsonrpc::Request;
use tower_service::Service;

pub struct Outcome {
    pub responses: Vec<(i64, Value)>,
    pub published: Vec<Value>,
}

impl Outcome {
    pub fn response(&self, id: i64) -> &Value {
        &self
            .responses
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no response to request {id}"))
            .1
    }

    /// The codes of the last diagnostics published.
    pub fn codes(&self) -> Vec<String> {
        self.published.last().expect("diagnostics were published")["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect()
    }
}

pub async fn session(messages: Vec<Value>) -> Outcome {
    let (mut service, socket, _stop) = ladder_lsp::service(Default::default());
    let published = tokio::spawn(async move {
        socket
            .filter_map(|r| async move {
                (r.method() == "textDocument/publishDiagnostics")
                    .then(|| r.params().cloned().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .await
    });
    let mut responses = Vec::new();
    for message in messages {
        let request: Request = serde_json::from_value(message).unwrap();
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        if let Some(response) = service.call(request).await.unwrap() {
            let value = serde_json::to_value(&response).unwrap();
            let body = match value.get("error") {
                Some(error) => json!({ "error": error }),
                None => value["result"].clone(),
            };
            responses.push((value["id"].as_i64().unwrap_or(-1), body));
        }
    }
    drop(service);
    Outcome {
        responses,
        published: published.await.unwrap(),
    }
}

/// Line and character of the `nth` occurrence of `needle` in `text`.
pub fn position(text: &str, needle: &str, nth: usize) -> Value {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` occurs {nth} times"))
        .0;
    let line = text[..at].matches('\n').count();
    let character = at - text[..at].rfind('\n').map_or(0, |n| n + 1);
    json!({"line": line, "character": character})
}

pub fn definition(id: i64, uri: &str, text: &str, needle: &str, nth: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "textDocument/definition", "params": {
        "textDocument": {"uri": uri}, "position": position(text, needle, nth)}})
}

/// Applies LSP text edits (`[{range, newText}]`, ASCII text) to `text`.
pub fn apply(text: &str, edits: &[Value]) -> String {
    let offset = |p: &Value| -> usize {
        let line = p["line"].as_u64().unwrap() as usize;
        let character = p["character"].as_u64().unwrap() as usize;
        let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
        start + character
    };
    let mut edits: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|e| {
            (
                offset(&e["range"]["start"]),
                offset(&e["range"]["end"]),
                e["newText"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut out = text.to_string();
    for (start, end, new) in edits {
        out.replace_range(start..end, &new);
    }
    out
}

/// `initialize` with `dir` as the workspace folder, `initialized` and `didOpen` of `text`.
pub fn open(dir: &std::path::Path, uri: &str, text: &str) -> Vec<Value> {
    vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "capabilities": {}, "processId": null,
            "workspaceFolders": [{"uri": format!("file://{}", dir.display()), "name": "ws"}]}}),
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "ladder", "version": 1, "text": text}}}),
    ]
}

/// A fresh directory with `text` written to `main.ladder`: (directory, URI).
pub fn document(tag: &str, text: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("ladder-lsp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let path = dir.join("main.ladder");
    std::fs::write(&path, text).unwrap();
    let uri = format!("file://{}", path.display());
    (dir, uri)
}
