//! MCP tools against the reference server nobody here wrote:
//! `@modelcontextprotocol/server-everything` from npm, over stdio and streamable HTTP, through the
//! real `ladderc` binary. `ladderc mcp pull` pins its tools; a run calls them and the model reads
//! the results; its errors reach the model; a changed signature stops the run naming the tool; a
//! server that dies is started again; the server's process gets only the environment the ladder
//! lists.
//!
//! Needs `LADDER_MCP_EVERYTHING` (the path of the package's `dist/index.js`, run with `node`);
//! skipped without it unless `LADDER_REQUIRE_MCP` is set (as in CI).

mod common;

use common::repo_root;
use ladder_fake_openai::{FakeOpenAi, Reply};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "sk-mcp-test-secret-41f0";
const PASSED: &str = "passed-through-7c2e";

fn server_script() -> Option<String> {
    match std::env::var("LADDER_MCP_EVERYTHING") {
        Ok(path) => Some(path),
        Err(_) => {
            assert!(
                std::env::var_os("LADDER_REQUIRE_MCP").is_none(),
                "LADDER_REQUIRE_MCP is set but LADDER_MCP_EVERYTHING is not"
            );
            eprintln!("skipped: set LADDER_MCP_EVERYTHING to server-everything's dist/index.js");
            None
        }
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ladder-mcp-{name}-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `text` written to `file` in a fresh folder: (the folder, the file).
fn ladder_in(name: &str, file: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let ladder = dir.join(file);
    std::fs::write(&ladder, text).unwrap();
    (dir, ladder)
}

/// A ladder whose clerk uses the server's tools through `everything.mcp.ladder`; `marker` is an
/// extra argument that names this test's server process (for `pkill`).
fn desk(dir: &Path, server: &str, marker: &str) -> PathBuf {
    let ladder = dir.join("desk.ladder");
    std::fs::write(
        &ladder,
        format!(
            r#"ladder 1
use "everything.mcp.ladder"
ladder desk {{ entry clerk }}
model m {{ provider: openai, name: "fake-model" }}

mcp everything "The MCP reference server" {{
  command: ["node", "{server}", "stdio", "{marker}"],
  env: [env(MCP_PASSED)],
  timeout: 30s,
}}

agent clerk {{
  model m
  prompt "Help with sums."
  tools [get_sum, get_env, echo]
}}
"#
        ),
    )
    .unwrap();
    ladder
}

fn ladderc(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(args)
        .current_dir(dir)
        .env("MCP_PASSED", PASSED)
        .env("OPENAI_API_KEY", SECRET)
        .output()
        .expect("ladderc runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn pull(dir: &Path, ladder: &Path) {
    let out = ladderc(
        &["mcp", "pull", ladder.to_str().unwrap(), "everything"],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// A desk whose tools `ladderc mcp pull` pinned, in a folder of its own; `None` when the test is
/// skipped. `marker` names the server's process (an extra argument it ignores).
fn pulled_desk(marker: &str) -> Option<(PathBuf, PathBuf)> {
    let server = server_script()?;
    // Not named after the marker: `pkill -f MARKER` must match the server, not `ladderc run`.
    let dir = temp_dir("desk");
    let ladder = desk(&dir, &server, marker);
    pull(&dir, &ladder);
    Some((dir, ladder))
}

/// What the model was told each tool call returned, in order.
fn tool_results(fake: &FakeOpenAi) -> Vec<String> {
    let last = fake.requests().pop().expect("the model was asked");
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn run(dir: &Path, ladder: &Path, fake: &FakeOpenAi, message: &str) -> Output {
    let (dir, ladder, base, message) = (
        dir.to_path_buf(),
        ladder.display().to_string(),
        fake.base_url(),
        message.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        ladderc(&["run", &ladder, "--base-url", &base, "-m", &message], &dir)
    })
    .await
    .unwrap()
}

#[test]
fn pull_pins_the_servers_tools_with_their_types_and_they_check() {
    let Some(server) = server_script() else {
        return;
    };
    let dir = temp_dir("pull");
    desk(&dir, &server, "pull");
    // The ladder `use`s the file pull writes: it does not exist yet, so `check` fails first.
    let before = ladderc(&["check", "desk.ladder"], &dir);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));

    let out = ladderc(&["mcp", "pull", "desk.ladder", "everything"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("everything.mcp.ladder"), "{stderr}");
    // An enum of values that are not ladder names is reported, and lowered to `string`.
    assert!(stderr.contains("`location`"), "{stderr}");
    let pinned = std::fs::read_to_string(dir.join("everything.mcp.ladder")).unwrap();
    for expected in [
        "tool get_sum(a: number, b: number) { \"Returns the sum of two numbers\"  mcp everything \"get-sum\" }",
        "tool echo(message: string) { \"Echoes back the input string\"  mcp everything }",
        "enum(error, success, debug)",
        "#![allow(unused)]",
    ] {
        assert!(pinned.contains(expected), "`{expected}` in\n{pinned}");
    }
    let check = ladderc(&["check", "--deny", "warnings", "desk.ladder"], &dir);
    assert!(check.status.success(), "{}", text(&check));
    let fmt = ladderc(&["fmt", "--check", "everything.mcp.ladder"], &dir);
    assert!(
        fmt.status.success(),
        "pull writes formatted text: {}",
        text(&fmt)
    );

    // One tool only, to another file; an unknown server and an unknown tool are clear errors.
    let one = ladderc(
        &[
            "mcp",
            "pull",
            "desk.ladder",
            "everything",
            "--tool",
            "get-sum",
            "-o",
            "sum.ladder",
        ],
        &dir,
    );
    assert!(one.status.success(), "{}", text(&one));
    let sum = std::fs::read_to_string(dir.join("sum.ladder")).unwrap();
    assert_eq!(sum.matches("\ntool ").count(), 1, "{sum}");
    let unknown = ladderc(&["mcp", "pull", "desk.ladder", "everywhere"], &dir);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("declares no MCP server `everywhere` (it declares `everything`)")
    );
    let no_tool = ladderc(
        &[
            "mcp",
            "pull",
            "desk.ladder",
            "everything",
            "--tool",
            "get-product",
        ],
        &dir,
    );
    assert!(
        text(&no_tool).contains("has no tool `get-product`"),
        "{}",
        text(&no_tool)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_calls_the_real_server_and_the_model_reads_what_it_returned() {
    let Some((dir, ladder)) = pulled_desk("run") else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("get_sum", json!({"a": 2, "b": 3})));
    fake.push(Reply::tool("get_env", json!({})));
    fake.push(Reply::tool(
        "echo",
        json!({"message": "hello from the ladder"}),
    ));
    fake.push(Reply::text("2 + 3 = 5."));
    let out = run(&dir, &ladder, &fake, "What is 2 + 3?").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 + 3 = 5."));
    let results = tool_results(&fake);
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[0].contains('5'), "the sum: {}", results[0]);
    // The process started with a clean environment plus what the ladder lists.
    assert!(results[1].contains(PASSED), "{}", results[1]);
    assert!(
        !results[1].contains(SECRET),
        "the model's key reached the server: {}",
        results[1]
    );
    assert!(
        results[2].contains("hello from the ladder"),
        "{}",
        results[2]
    );
    assert!(!text(&out).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_servers_errors_reach_the_model_as_tool_errors() {
    let Some((dir, ladder)) = pulled_desk("errors") else {
        return;
    };
    // Loosen `echo` by hand: the ladder lets any value through, the server's own schema refuses
    // a number.
    let pinned = dir.join("everything.mcp.ladder");
    let loose = std::fs::read_to_string(&pinned)
        .unwrap()
        .replace("tool echo(message: string)", "tool echo(message: json)");
    std::fs::write(&pinned, loose).unwrap();
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("echo", json!({"message": 42})));
    fake.push(Reply::text("The echo tool refused a number."));
    let out = run(&dir, &ladder, &fake, "Echo 42").await;
    assert!(out.status.success(), "{}", text(&out));
    let results = tool_results(&fake);
    assert_eq!(results.len(), 1, "{results:?}");
    let error: Value = serde_json::from_str(&results[0]).unwrap_or(json!(results[0]));
    let error = error.to_string().to_lowercase();
    assert!(
        error.contains("error") && error.contains("message"),
        "the model reads the server's refusal: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_signature_stops_the_run_and_names_the_tool() {
    let Some((dir, ladder)) = pulled_desk("drift") else {
        return;
    };
    let pinned = dir.join("everything.mcp.ladder");
    let drifted = std::fs::read_to_string(&pinned)
        .unwrap()
        .replace(
            "tool get_sum(a: number, b: number)",
            "tool get_sum(a: number, c: number)",
        )
        .replace("mcp everything }", "mcp everything \"echo-v2\" }");
    std::fs::write(&pinned, drifted).unwrap();
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("never asked"));
    let out = run(&dir, &ladder, &fake, "What is 2 + 3?").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "tool `get_sum` (`get-sum` on `everything`): the server requires `b`, which the ladder does not declare",
        "tool `get_sum` (`get-sum` on `everything`): the ladder declares `c`, which the server's tool no longer takes",
        "tool `echo` (`echo-v2` on `everything`): the server has no tool `echo-v2`",
        "ladderc mcp pull",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in\n{stderr}");
    }
    assert!(fake.requests().is_empty(), "no model was asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_dies_is_started_again_on_the_next_call() {
    let marker = format!("restart-{:08x}", fastrand::u32(..));
    let Some((dir, ladder)) = pulled_desk(&marker) else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("get_sum", json!({"a": 1, "b": 1})));
    fake.push(Reply::text("first"));
    fake.push(Reply::tool("get_sum", json!({"a": 20, "b": 22})));
    fake.push(Reply::text("second"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args([
            "run",
            ladder.to_str().unwrap(),
            "--json",
            "--base-url",
            &fake.base_url(),
        ])
        .current_dir(&dir)
        .env("MCP_PASSED", PASSED)
        .env("OPENAI_API_KEY", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let turn_end = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("\"turn_ended\"") || line.contains("\"error\"") {
                return line;
            }
        }
        panic!("the run ended before the turn did");
    };
    writeln!(stdin, "1 + 1?").unwrap();
    let first = turn_end(&mut lines);
    assert!(first.contains("turn_ended"), "{first}");
    // Kill the server process behind the runtime's back.
    let killed = Command::new("pkill")
        .args(["-f", &marker])
        .status()
        .unwrap();
    assert!(killed.success(), "the server process was running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    writeln!(stdin, "20 + 22?").unwrap();
    let second = turn_end(&mut lines);
    assert!(second.contains("turn_ended"), "{second}");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    let results = tool_results(&fake);
    assert!(results.last().unwrap().contains("42"), "{results:?}");
    // The run is over: its server is gone too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the server outlived the run");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streamable_http_pull_and_call() {
    let Some(server) = server_script() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http = Command::new("node")
        .arg("--require")
        .arg(repo_root().join("tests/mcp/loopback.cjs"))
        .args([server.as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(http.stderr.take().unwrap()).lines();
    for line in log.by_ref() {
        if line.unwrap().contains("listening on port") {
            break;
        }
    }
    let (dir, ladder) = ladder_in(
        "http",
        "web.ladder",
        &format!(
            r#"ladder 1
use "everything.mcp.ladder"
ladder web {{ entry clerk }}
model m {{ provider: openai, name: "fake-model" }}
mcp everything {{ url: "http://127.0.0.1:{port}/mcp", auth: env(MCP_PASSED) }}
agent clerk {{
  model m
  prompt "Help with sums."
  tools [get_sum]
}}
"#
        ),
    );
    pull(&dir, &ladder);
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("get_sum", json!({"a": 40, "b": 2})));
    fake.push(Reply::text("42"));
    let out = run(&dir, &ladder, &fake, "40 + 2?").await;
    let _ = http.kill();
    let _ = http.wait();
    assert!(out.status.success(), "{}", text(&out));
    let results = tool_results(&fake);
    assert!(results[0].contains("42"), "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_runs_against_the_real_server_and_its_pinned_tools_have_not_drifted() {
    let Some(server) = server_script() else {
        return;
    };
    let dir = temp_dir("example");
    std::fs::create_dir_all(dir.join("mcp")).unwrap();
    let examples = repo_root().join("examples");
    std::fs::copy(
        examples.join("mcp/everything.ladder"),
        dir.join("mcp/everything.ladder"),
    )
    .unwrap();
    // The example starts the server with `npx`; here it is the installed copy of the same version.
    let ladder = std::fs::read_to_string(examples.join("mcp_desk.ladder"))
        .unwrap()
        .replace(
            r#"command: ["npx", "-y", "@modelcontextprotocol/server-everything@2026.8.31", "stdio"]"#,
            &format!(r#"command: ["node", "{server}", "stdio"]"#),
        );
    assert!(
        ladder.contains(&server),
        "the example's command line changed"
    );
    std::fs::write(dir.join("mcp_desk.ladder"), ladder).unwrap();
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("get_sum", json!({"a": 40, "b": 2})));
    fake.push(Reply::text("40 + 2 is 42."));
    // A run starts only when every pinned tool still matches the live server.
    let out = run(&dir, &dir.join("mcp_desk.ladder"), &fake, "What is 40 + 2?").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(tool_results(&fake)[0].contains("42"));
}

/// The official Python SDK's server (`tests/mcp/meta_echo.py`) sees what a call carries: the
/// idempotency key in `_meta`; its refusals (a result marked `isError`) reach the model.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_carries_its_idempotency_key_in_meta() {
    let Some(python) = std::env::var_os("LADDER_ORACLE_PYTHON") else {
        assert!(
            std::env::var_os("LADDER_REQUIRE_ORACLE").is_none(),
            "LADDER_REQUIRE_ORACLE is set but LADDER_ORACLE_PYTHON is not"
        );
        eprintln!("skipped: set LADDER_ORACLE_PYTHON to a python with the `mcp` package");
        return;
    };
    let (dir, ladder) = ladder_in(
        "meta",
        "meta.ladder",
        &format!(
            r#"ladder 1
use "py.mcp.ladder"
ladder meta {{ entry clerk }}
model m {{ provider: openai, name: "fake-model" }}
mcp py {{ command: ["{}", "{}"] }}
agent clerk {{
  model m
  prompt "Help."
  tools [whoami, fail]
}}
"#,
            python.to_string_lossy(),
            repo_root().join("tests/mcp/meta_echo.py").display()
        ),
    );
    let out = ladderc(&["mcp", "pull", "meta.ladder", "py"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("whoami", json!({"note": "first"})));
    fake.push(Reply::tool("fail", json!({"reason": "not today"})));
    fake.push(Reply::text("done"));
    let out = run(&dir, &ladder, &fake, "Who am I?").await;
    assert!(out.status.success(), "{}", text(&out));
    let results = tool_results(&fake);
    assert_eq!(results.len(), 2, "{results:?}");
    let seen: Value = serde_json::from_str(&results[0]).expect("whoami answers JSON");
    // The SDK also sends the text as structured content (`{"result": ..}`), which the model reads.
    let seen: Value = match seen["result"].as_str() {
        Some(inner) => serde_json::from_str(inner).unwrap(),
        None => seen,
    };
    assert_eq!(seen["note"], "first");
    let key = seen["meta"]["dev.ladderc/idempotency-key"]
        .as_str()
        .unwrap_or_else(|| panic!("no idempotency key in {seen}"));
    // SESSION-TURN-N: the session's id, turn 1, the call's number in the turn.
    let parts: Vec<&str> = key.rsplitn(3, '-').collect();
    assert_eq!(parts.len(), 3, "{key}");
    assert_eq!(parts[1], "1", "turn 1: {key}");
    assert!(parts[2].starts_with("s-"), "the session: {key}");
    assert!(results[1].contains("refused: not today"), "{}", results[1]);
}

/// A call that outlasts its tool's `timeout` is a tool error the model reads, and the server
/// still answers the next call.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_call_times_out_and_the_server_goes_on() {
    let Some(server) = server_script() else {
        return;
    };
    let (dir, ladder) = ladder_in(
        "timeout",
        "slow.ladder",
        &format!(
            r#"ladder 1
ladder slow {{ entry clerk }}
model m {{ provider: openai, name: "fake-model" }}
mcp everything {{ command: ["node", "{server}", "stdio"] }}
tool slow(duration: number?, steps: number?) {{
  "Takes its time."
  mcp everything "trigger-long-running-operation"
  timeout 1s
}}
tool get_sum(a: number, b: number) {{
  "Adds."
  mcp everything "get-sum"
}}
agent clerk {{
  model m
  prompt "Help."
  tools [slow, get_sum]
}}
"#
        ),
    );
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("slow", json!({"duration": 5, "steps": 1})));
    fake.push(Reply::tool("get_sum", json!({"a": 1, "b": 2})));
    fake.push(Reply::text("done"));
    let started = Instant::now();
    let out = run(&dir, &ladder, &fake, "Take your time").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the turn waited for the slow call"
    );
    let results = tool_results(&fake);
    assert!(results[0].contains("timed out after 1.0s"), "{results:?}");
    assert!(results[1].contains('3'), "{results:?}");
}

/// `ladderc serve` starts the servers once, before it listens, and its chat endpoint answers
/// through them; a drifted pin stops it before it listens.
#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_the_servers_and_refuses_a_drifted_pin() {
    let Some((dir, ladder)) = pulled_desk("serve") else {
        return;
    };
    // `Server::start` passes on no extra environment: this desk lists none.
    let without_env = std::fs::read_to_string(&ladder)
        .unwrap()
        .replace("  env: [env(MCP_PASSED)],\n", "");
    std::fs::write(&ladder, without_env).unwrap();
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::tool("get_sum", json!({"a": 20, "b": 22})));
    fake.push(Reply::text("20 + 22 is 42."));
    let store = dir.join("sessions.db");
    let mut server = common::Server::start(&ladder, &fake.base_url(), store.to_str().unwrap(), &[]);
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&json!({"model": "desk", "messages": [{"role": "user", "content": "20 + 22?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"], "20 + 22 is 42.",
        "{answer}"
    );
    assert!(tool_results(&fake)[0].contains("42"));
    server.sigterm();
    assert_eq!(server.wait(), Some(0));

    let pinned = dir.join("everything.mcp.ladder");
    let drifted = std::fs::read_to_string(&pinned).unwrap().replace(
        "tool get_sum(a: number, b: number)",
        "tool get_sum(a: number)",
    );
    std::fs::write(&pinned, drifted).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(["serve", ladder.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .args([
            "--store",
            store.to_str().unwrap(),
            "--base-url",
            &fake.base_url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server requires `b`, which the ladder does not declare"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

/// `ladderc test` is hermetic for MCP tools as for `http` ones: unstubbed, a call fails the test
/// naming the tool and no server starts; with `--live-tools` the servers start and the test's
/// scripted call reaches the real server.
#[test]
fn scenario_tests_reach_the_server_only_with_live_tools() {
    let Some((dir, _)) = pulled_desk("scenario") else {
        return;
    };
    std::fs::write(
        dir.join("desk.test.ladder"),
        r#"ladder 1
use "desk.ladder"

test "a sum from the server" {
  user "What is 2 + 3?"
  model clerk calls get_sum { a: 2, b: 3 }
  model clerk says "5"
  expect tool get_sum called with { a: 2, b: 3 }
}
"#,
    )
    .unwrap();
    let hermetic = ladderc(&["test", "--backend", "sim", "desk.test.ladder"], &dir);
    assert_eq!(hermetic.status.code(), Some(1), "{}", text(&hermetic));
    assert!(
        text(&hermetic).contains("`get_sum` was called; stub it"),
        "{}",
        text(&hermetic)
    );
    let live = ladderc(
        &[
            "test",
            "--backend",
            "sim",
            "--live-tools",
            "desk.test.ladder",
        ],
        &dir,
    );
    assert!(live.status.success(), "{}", text(&live));
    // A drifted pin stops the live run before any test, naming the tool.
    let pinned = dir.join("everything.mcp.ladder");
    let drifted = std::fs::read_to_string(&pinned)
        .unwrap()
        .replace("\"get-sum\"", "\"get-sum-v2\"");
    std::fs::write(&pinned, drifted).unwrap();
    let stopped = ladderc(
        &[
            "test",
            "--backend",
            "sim",
            "--live-tools",
            "desk.test.ladder",
        ],
        &dir,
    );
    assert_eq!(stopped.status.code(), Some(2), "{}", text(&stopped));
    assert!(
        text(&stopped)
            .contains("tool `get_sum` (`get-sum-v2` on `everything`): the server has no tool"),
        "{}",
        text(&stopped)
    );
}
