//! Editing help from the language server, in-process: rename, quick fixes, and completion of
//! only the words valid at the cursor. Every edit is applied and the result checked again.

mod support;

use ladder_check::{check_source, CheckOptions, Code};
use serde_json::{json, Value};
use support::{apply, document, open, position, session};

const LADDER: &str = r#"ladder 1
ladder desk { entry triage }
model mini { provider: openai, name: "gpt-4o-mini" }
intent billing "Bills" {}
tool lookup(id: string) -> string { mock "paid" }

agent triage {
  router
  model mini
  prompt "Route."
  handoff billing -> billing
}

agent billing {
  model mini
  accepts billing
  prompt "Bills."
  tools [lookup]
}

test "routes" {
  user "I was charged twice"
  model triage calls transfer_to_billing {}
  model billing says "Let me look."
  expect agent billing
}
"#;

fn request(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn codes(text: &str) -> Vec<Code> {
    check_source("main.ladder", text, &CheckOptions::default())
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect()
}

#[tokio::test]
async fn rename_changes_every_use_in_its_namespace_and_nothing_else() {
    assert_eq!(codes(LADDER), []);
    let (dir, uri) = document("rename", LADDER);
    let doc = json!({"uri": uri});
    let mut messages = open(&dir, &uri, LADDER);
    // The agent `billing` (its definition, the 2nd `billing` word after `agent`), not the intent.
    let agent = position(LADDER, "agent billing", 0);
    let on_name =
        json!({"line": agent["line"], "character": agent["character"].as_u64().unwrap() + 6});
    messages.push(request(
        2,
        "textDocument/prepareRename",
        json!({"textDocument": doc, "position": on_name}),
    ));
    messages.push(request(
        3,
        "textDocument/rename",
        json!({"textDocument": doc, "position": on_name, "newName": "accounts"}),
    ));
    messages.push(request(
        4,
        "textDocument/rename",
        json!({"textDocument": doc, "position": on_name, "newName": "2fast"}),
    ));
    messages.push(request(
        5,
        "textDocument/rename",
        json!({"textDocument": doc, "position": on_name, "newName": "agent"}),
    ));
    let outcome = session(messages).await;

    assert_eq!(outcome.response(2)["start"], on_name);
    let edits = outcome.response(3)["changes"][&uri]
        .as_array()
        .unwrap()
        .clone();
    let renamed = apply(LADDER, &edits);
    assert!(renamed.contains("handoff billing -> accounts"), "{renamed}");
    assert!(renamed.contains("agent accounts {"), "{renamed}");
    assert!(
        renamed.contains("accepts billing"),
        "the intent keeps its name: {renamed}"
    );
    assert!(renamed.contains("calls transfer_to_accounts"), "{renamed}");
    assert!(renamed.contains("model accounts says"), "{renamed}");
    assert!(renamed.contains("expect agent accounts"), "{renamed}");
    assert_eq!(codes(&renamed), [], "{renamed}");
    for bad in [4, 5] {
        assert!(outcome.response(bad)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a name"));
    }
}

/// The quick fixes offered at the first diagnostic of `code` in `text`, applied one by one.
async fn fixed(tag: &str, text: &str, code: Code) -> Vec<(String, String)> {
    let checked = check_source("main.ladder", text, &CheckOptions::default());
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code:?} in {:#?}", checked.diagnostics));
    let file = checked.sources.get(d.primary.span.file);
    let (line, col) = file.line_col(d.primary.span.start);
    let at = json!({"line": line - 1, "character": col - 1});
    let (dir, uri) = document(tag, text);
    let mut messages = open(&dir, &uri, text);
    messages.push(request(
        2,
        "textDocument/codeAction",
        json!({
        "textDocument": {"uri": uri}, "range": {"start": at, "end": at},
        "context": {"diagnostics": []}}),
    ));
    let outcome = session(messages).await;
    outcome
        .response(2)
        .as_array()
        .unwrap()
        .iter()
        .map(|action| {
            assert_eq!(action["kind"], "quickfix");
            let edits = action["edit"]["changes"][&uri].as_array().unwrap();
            (
                action["title"].as_str().unwrap().to_string(),
                apply(text, edits),
            )
        })
        .collect()
}

#[tokio::test]
async fn quick_fixes_apply_a_suggestion_add_an_accepts_and_declare_a_variable() {
    // A misspelt handoff target: replace it with the suggestion.
    let typo = LADDER.replace("handoff billing -> billing", "handoff billing -> biling");
    let fixes = fixed("typo", &typo, Code::Undefined).await;
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(fixes[0].0, "replace with `billing`");
    assert_eq!(codes(&fixes[0].1), []);

    // A receiver that does not accept the intent: add it to its `accepts`.
    let text = LADDER
        .replace(
            "intent billing \"Bills\" {}",
            "intent billing \"Bills\" {}\nintent refunds \"Refunds\" {}",
        )
        .replace(
            "  handoff billing -> billing\n",
            "  handoff billing -> billing\n  handoff refunds -> billing\n",
        );
    let fixes = fixed("accepts", &text, Code::IntentNotAccepted).await;
    assert_eq!(fixes[0].0, "add `refunds` to the accepts of `billing`");
    assert!(
        fixes[0].1.contains("accepts billing, refunds"),
        "{}",
        fixes[0].1
    );
    assert_eq!(codes(&fixes[0].1), []);

    // A template variable nobody declared: declare it in the header.
    let text = LADDER.replace("prompt \"Bills.\"", "prompt \"Bills for {{plan}}.\"");
    let fixes = fixed("vars", &text, Code::UndeclaredTemplate).await;
    assert_eq!(fixes[0].0, "declare `plan: string` in the ladder's `vars`");
    assert!(
        fixes[0].1.contains("vars { plan: string }"),
        "{}",
        fixes[0].1
    );
    assert_eq!(codes(&fixes[0].1), []);
}

#[tokio::test]
async fn completion_offers_only_what_may_start_a_line_at_the_cursor() {
    let text = LADDER
        .replace("  router\n", "  router\n  \n")
        .replace("{ mock \"paid\" }", "{\n  mock \"paid\"\n  \n}")
        .replace(
            "ladder desk { entry triage }",
            "ladder desk {\n  entry triage\n  limits {\n    \n  }\n}",
        );
    let (dir, uri) = document("complete", &text);
    let doc = json!({"uri": uri});
    // An empty line in the agent, in the tool, in `limits`, and the end of the file.
    let in_agent = position(&text, "  \n  model mini\n  prompt \"Route.\"", 0);
    let in_tool = position(&text, "  \n}\n\nagent", 0);
    let in_limits = position(&text, "    \n  }", 0);
    let top = json!({"line": text.lines().count(), "character": 0});
    let mut messages = open(&dir, &uri, &text);
    for (id, at) in [(2, in_agent), (3, in_tool), (4, in_limits)] {
        let at = json!({"line": at["line"], "character": 2});
        messages.push(request(
            id,
            "textDocument/completion",
            json!({"textDocument": doc, "position": at}),
        ));
    }
    messages.push(request(
        5,
        "textDocument/completion",
        json!({"textDocument": doc, "position": top}),
    ));
    let outcome = session(messages).await;
    let labels = |id: i64| -> Vec<String> {
        outcome
            .response(id)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["label"].as_str().unwrap().to_string())
            .collect()
    };
    let agent = labels(2);
    assert!(
        agent.contains(&"handoff".to_string()) && agent.contains(&"escalate".to_string()),
        "{agent:?}"
    );
    assert!(
        !agent.contains(&"mock".to_string()) && !agent.contains(&"entry".to_string()),
        "{agent:?}"
    );
    let tool = labels(3);
    assert!(
        tool.contains(&"mock".to_string()) && !tool.contains(&"handoff".to_string()),
        "{tool:?}"
    );
    let limits = labels(4);
    assert!(
        limits.contains(&"steps_per_turn".to_string()) && !limits.contains(&"agent".to_string()),
        "{limits:?}"
    );
    let top = labels(5);
    assert!(
        top.contains(&"agent".to_string()) && !top.contains(&"prompt".to_string()),
        "{top:?}"
    );
}
