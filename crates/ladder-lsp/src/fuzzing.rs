//! Drives the language server in-process from arbitrary bytes, for the `lsp` fuzz target and
//! its regression tests. Not part of the stable API.
//!
//! The bytes are read as a session: each step is an opcode byte, two position bytes, and for
//! the steps that carry text, the text up to the next zero byte (UTF-8, lossy). Steps open,
//! change and close two documents in a workspace folder and ask every question the server
//! answers, at the positions given; every request must be answered without a panic.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use tower_service::Service;

fn folder() -> &'static PathBuf {
    static FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOLDER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ladder-lsp-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        std::fs::canonicalize(dir).expect("the directory exists")
    })
}

/// The JSON-RPC messages of a session read from `data`.
pub fn messages(data: &[u8]) -> Vec<Value> {
    let dir = folder();
    let uri = |n: u8| {
        format!(
            "file://{}/{}.ladder",
            dir.display(),
            ["main", "other"][n as usize % 2]
        )
    };
    let mut out = vec![
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "processId": null, "capabilities": {},
            "workspaceFolders": [{"uri": format!("file://{}", dir.display()), "name": "fuzz"}]}}),
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    ];
    let mut rest = data;
    let mut id = 0;
    let mut version = 0;
    while rest.len() >= 3 && out.len() < 64 {
        let (op, line, character) = (rest[0], rest[1] as u32 % 64, rest[2] as u32 % 128);
        rest = &rest[3..];
        let doc = op >> 4;
        id += 1;
        version += 1;
        let position = json!({"textDocument": {"uri": uri(doc)}, "position": {"line": line, "character": character}});
        let request = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let message = match op % 9 {
            0..=2 => {
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                let text = String::from_utf8_lossy(&rest[..end]).into_owned();
                rest = &rest[(end + 1).min(rest.len())..];
                if op % 9 == 1 {
                    json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                        "textDocument": {"uri": uri(doc), "version": version},
                        "contentChanges": [{"text": text}]}})
                } else {
                    json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                        "textDocument": {"uri": uri(doc), "languageId": "ladder", "version": version, "text": text}}})
                }
            }
            3 => request("textDocument/hover", position),
            4 => request("textDocument/definition", position),
            5 => {
                let mut p = position;
                p["context"] = json!({"includeDeclaration": line % 2 == 0});
                request("textDocument/references", p)
            }
            6 => request("textDocument/completion", position),
            7 => request(
                "textDocument/documentSymbol",
                json!({"textDocument": {"uri": uri(doc)}}),
            ),
            _ => match line % 2 {
                0 => request(
                    "textDocument/formatting",
                    json!({"textDocument": {"uri": uri(doc)},
                    "options": {"tabSize": 2, "insertSpaces": true}}),
                ),
                _ => json!({"jsonrpc": "2.0", "method": "textDocument/didClose", "params": {
                    "textDocument": {"uri": uri(doc)}}}),
            },
        };
        out.push(message);
    }
    out.push(json!({"jsonrpc": "2.0", "id": id + 1, "method": "shutdown"}));
    out
}

/// Runs the session of `data` against a fresh server; panics if the server panics or answers a
/// well-formed request with an internal error.
pub fn session(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async {
        let (mut service, socket, _stop) = crate::service(crate::LspOptions::default());
        let drain = tokio::spawn(socket.for_each(|_| async {}));
        for message in messages(data) {
            let request: tower_lsp::jsonrpc::Request =
                serde_json::from_value(message).expect("the messages are well-formed");
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .expect("the server is running");
            let response = service.call(request).await.expect("the server is running");
            if let Some(response) = response {
                let (_, result) = response.into_parts();
                if let Err(e) = result {
                    assert_ne!(
                        e.code,
                        tower_lsp::jsonrpc::ErrorCode::InternalError,
                        "internal error: {e:?}"
                    );
                }
            }
        }
        drop(service);
        let _ = drain.await;
    });
}
