//! The language server: the real `ladderc lsp` binary driven over stdio with JSON-RPC.

mod common;

use common::repo_root;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

struct Lsp {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    child: std::process::Child,
    next_id: i64,
    /// Notifications received while waiting for responses.
    notifications: Vec<Value>,
}

impl Lsp {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ladderc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ladderc lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Lsp {
            stdin,
            stdout,
            child,
            next_id: 0,
            notifications: Vec::new(),
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut length = 0;
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server closed its output"
            );
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length:") {
                length = n.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.read();
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message["result"].clone();
            }
            self.notifications.push(message);
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Waits for the next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = if let Some(i) = self.notifications.iter().position(|n| {
                n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri
            }) {
                self.notifications.remove(i)
            } else {
                self.read()
            };
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"].as_array().unwrap().clone();
            }
            self.notifications.push(message);
        }
    }
}

/// The LSP position of the `nth` occurrence of `needle` (plus `shift` characters).
fn pos(text: &str, needle: &str, nth: usize, shift: usize) -> Value {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle} #{nth}"))
        .0
        + shift;
    let line = text[..at].matches('\n').count();
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": column})
}

#[test]
fn the_language_server_answers_over_stdio() {
    let dir = std::env::temp_dir().join(format!("ladderc-lsp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("triage.ladder");
    let good = std::fs::read_to_string(repo_root().join("examples/triage.ladder")).unwrap();
    std::fs::write(&path, &good).unwrap();
    let uri = format!("file://{}", path.display());
    let broken = good.replacen("handoff billing -> billing", "handoff billing -> biling", 1);
    assert_ne!(broken, good);

    let mut lsp = Lsp::start();
    let init = lsp.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    assert_eq!(init["capabilities"]["definitionProvider"], true);
    assert_eq!(init["capabilities"]["documentFormattingProvider"], true);
    lsp.notify("initialized", json!({}));

    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "ladder", "version": 1, "text": broken}}),
    );
    let diagnostics = lsp.diagnostics(&uri);
    let undefined = diagnostics
        .iter()
        .find(|d| d["code"] == "L0004")
        .expect("an L0004 diagnostic");
    assert!(undefined["message"]
        .as_str()
        .unwrap()
        .starts_with("undefined rung (agent, human or script) `biling`"));
    assert!(undefined["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `billing`?"));
    assert_eq!(undefined["range"]["start"], pos(&broken, "biling\n", 0, 0));
    assert_eq!(undefined["severity"], 1);

    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": good}]}),
    );
    assert!(
        lsp.diagnostics(&uri).is_empty(),
        "the fix clears the diagnostics"
    );

    let doc = json!({"uri": uri});
    // Go to definition: the handoff target `billing` -> `agent billing`.
    let def = lsp.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": pos(&good, "-> billing", 0, 4)}),
    );
    assert_eq!(def["uri"], uri);
    assert_eq!(def["range"]["start"], pos(&good, "agent billing", 0, 6));

    // References of the intent `billing`: the handoff and the `accepts`.
    let refs = lsp.request("textDocument/references", json!({"textDocument": doc, "position": pos(&good, "intent billing", 0, 7), "context": {"includeDeclaration": true}}));
    assert_eq!(refs.as_array().unwrap().len(), 3, "{refs}");

    // Hover on a tool in `tools [..]`: signature and description.
    let hover = lsp.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(&good, "[refund_status]", 0, 1)}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("tool refund_status(invoice_id: string) -> string")
            && text.contains("Where a refund stands."),
        "{text}"
    );
    // Hover on an agent: its edges.
    let hover = lsp.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(&good, "agent triage", 0, 7)}),
    );
    assert!(hover["contents"]["value"]
        .as_str()
        .unwrap()
        .contains("handoff `support` -> `support`"));

    // Completion after `->`: the rungs.
    let edited = good.replacen("  escalate -> account_manager\n", "  escalate -> \n", 1);
    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": edited}]}),
    );
    lsp.diagnostics(&uri);
    let completion = lsp.request(
        "textDocument/completion",
        json!({"textDocument": doc, "position": pos(&edited, "escalate -> \n", 0, 12)}),
    );
    let labels: Vec<&str> = completion
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    for rung in ["account_manager", "billing", "support", "triage"] {
        assert!(labels.contains(&rung), "{labels:?}");
    }
    assert!(!labels.contains(&"refund_status"), "tools are not rungs");

    let symbols = lsp.request("textDocument/documentSymbol", json!({"textDocument": doc}));
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mini",
            "billing",
            "support",
            "refund_status",
            "triage",
            "billing",
            "support",
            "account_manager"
        ]
    );

    // Formatting: an unformatted document gets one edit with the canonical text.
    let messy = good.replacen(
        "agent support {\n  model mini",
        "agent support {   model mini",
        1,
    );
    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": messy}]}),
    );
    lsp.diagnostics(&uri);
    let edits = lsp.request(
        "textDocument/formatting",
        json!({"textDocument": doc, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(edits[0]["newText"], good);

    lsp.request("shutdown", Value::Null);
    lsp.notify("exit", Value::Null);
    // Editors close the pipe after `exit`; the server then ends.
    let Lsp {
        stdin, mut child, ..
    } = lsp;
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// After `shutdown` and `exit` the server ends, even while the client keeps its stdin open (a
/// Neovim session left it running for 40 minutes).
#[test]
fn the_server_exits_on_exit_with_stdin_still_open() {
    let mut lsp = Lsp::start();
    lsp.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    lsp.notify("initialized", json!({}));
    lsp.request("shutdown", Value::Null);
    lsp.send(json!({"jsonrpc": "2.0", "method": "exit"}));
    let status = wait_for_exit(
        &mut lsp.child,
        10,
        "the server is still running after `exit`",
    );
    assert!(status.success(), "{status}");
    drop(lsp.stdin);
}

/// When the client process named in `initialize` dies without closing the server's pipes (a
/// crashed editor whose pipes another process inherited), the server ends on its own.
#[test]
fn the_server_exits_when_its_client_process_dies() {
    let mut client = Command::new("sleep").arg("600").spawn().unwrap();
    let mut lsp = Lsp::start();
    lsp.request(
        "initialize",
        json!({"processId": client.id(), "rootUri": null, "capabilities": {}}),
    );
    lsp.notify("initialized", json!({}));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(lsp.child.try_wait().unwrap().is_none(), "ended too early");
    client.kill().unwrap();
    client.wait().unwrap();
    wait_for_exit(
        &mut lsp.child,
        15,
        "the server is still running after its client died",
    );
    drop(lsp.stdin);
}

/// Waits up to `seconds` for `child` to end; fails with `why` if it does not.
fn wait_for_exit(
    child: &mut std::process::Child,
    seconds: u64,
    why: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{why}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
