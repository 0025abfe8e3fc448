//! The language server in-process: which files it reads for a document, by workspace folder.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tower_lsp::jsonrpc::Request;
use tower_service::Service;

/// Sends `messages` (requests with an id, notifications without) in order, then returns every
/// `publishDiagnostics` the server sent, by URI.
async fn session(options: ladder_lsp::LspOptions, messages: Vec<Value>) -> Vec<(String, Value)> {
    let (mut service, socket, _stop) = ladder_lsp::service(options);
    let published = tokio::spawn(async move {
        socket
            .filter_map(|r| async move {
                (r.method() == "textDocument/publishDiagnostics").then(|| {
                    let params = r.params().cloned().unwrap_or_default();
                    (params["uri"].as_str().unwrap_or("").to_string(), params)
                })
            })
            .collect::<Vec<_>>()
            .await
    });
    for message in messages {
        let request: Request = serde_json::from_value(message).unwrap();
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        service.call(request).await.unwrap();
    }
    drop(service);
    published.await.unwrap()
}

fn project() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ladder-lsp-ws-{:016x}", rand()));
    std::fs::create_dir_all(dir.join("ws")).unwrap();
    // The marker makes `dir` the project of `ladderc check`: only the workspace folder narrows it.
    std::fs::write(dir.join("ladder.toml"), "").unwrap();
    std::fs::write(
        dir.join("shared.ladder"),
        "ladder 1\nmodel fast { provider: openai, name: \"gpt-4o-mini\" }\n",
    )
    .unwrap();
    std::fs::canonicalize(dir).unwrap()
}

fn rand() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

const MAIN: &str = "ladder 1\nuse \"../shared.ladder\"\nladder demo { entry greeter }\nagent greeter { model fast prompt \"Say hello.\" }\n";

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn messages(folder: Option<&Path>, doc: &Path) -> Vec<Value> {
    let mut init = json!({"capabilities": {}, "processId": null});
    if let Some(folder) = folder {
        init["workspaceFolders"] = json!([{"uri": uri(folder), "name": "ws"}]);
    }
    vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}),
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri(doc), "languageId": "ladder", "version": 1, "text": MAIN}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
    ]
}

fn messages_of(published: &[(String, Value)], doc: &Path) -> Vec<String> {
    let (_, last) = published
        .iter()
        .rev()
        .find(|(u, _)| *u == uri(doc))
        .expect("diagnostics were published for the document");
    last["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_workspace_folder_is_the_project_root() {
    let dir = project();
    let doc = dir.join("ws/main.ladder");
    std::fs::write(&doc, MAIN).unwrap();

    // The folder that holds the shared file: the `use` is read.
    let whole = session(Default::default(), messages(Some(&dir), &doc)).await;
    assert_eq!(messages_of(&whole, &doc), Vec::<String>::new());

    // A narrower folder: the file above it is not read, and the error says why.
    let narrow = session(Default::default(), messages(Some(&dir.join("ws")), &doc)).await;
    let found = messages_of(&narrow, &doc).join("\n");
    assert!(found.contains("outside the project root"), "{found}");
}

#[tokio::test]
async fn a_document_outside_every_folder_reads_nothing_from_disk() {
    let dir = project();
    let other = project();
    let doc = other.join("ws/main.ladder");
    std::fs::write(&doc, MAIN).unwrap();
    let published = session(Default::default(), messages(Some(&dir), &doc)).await;
    let found = messages_of(&published, &doc).join("\n");
    assert!(found.contains("outside the workspace"), "{found}");
    // Its own open text is still checked: the model comes from the refused file, so it is unknown.
    assert!(!found.contains("greeter` is defined twice"), "{found}");
}

#[tokio::test]
async fn no_folder_means_the_documents_project() {
    let dir = project();
    let doc = dir.join("ws/main.ladder");
    std::fs::write(&doc, MAIN).unwrap();
    let published = session(Default::default(), messages(None, &doc)).await;
    assert_eq!(messages_of(&published, &doc), Vec::<String>::new());
}
