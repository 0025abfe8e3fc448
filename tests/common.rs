//! Helpers shared by the workspace-level tests: run the real `ladderc` binary from the repo root.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

pub fn ladderc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("NO_COLOR")
        .output()
        .expect("ladderc runs")
}

/// Exit code and stdout (and stderr, if any) as one snapshot-friendly string.
pub fn transcript(output: &Output) -> String {
    let mut s = format!("exit: {}\n", output.status.code().unwrap_or(-1));
    s.push_str(&String::from_utf8_lossy(&output.stdout));
    if !output.stderr.is_empty() {
        s.push_str("--- stderr ---\n");
        s.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    s
}

/// `ladderc serve` on a free port of 127.0.0.1, against an OpenAI-protocol endpoint; killed when
/// dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    stderr: Arc<Mutex<String>>,
    /// Copies the server's stderr into `stderr` until the pipe closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(ladder: &Path, base_url: &str, store: &str, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ladderc"));
        cmd.arg("serve")
            .arg(ladder)
            .args(["--addr", "127.0.0.1:0", "--store", store])
            .args(["--backend", "openai", "--base-url", base_url])
            .args(extra)
            .env_remove("LADDER_TOKEN")
            .env_remove("LADDER_STORE")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("ladderc serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "ladderc serve did not start:\n{}",
                    stderr.lock().unwrap().as_str()
                )
            });
        Server {
            child,
            url,
            stderr,
            reader: Some(reader),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (and its last words to be read); its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status.code();
            }
            assert!(Instant::now() < deadline, "ladderc serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
