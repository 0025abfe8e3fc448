//! Load on `ladderc serve` (the real binary, release build) over loopback, with the fake OpenAI
//! server answering every model call after 200 ms: 1 000 sessions, each sending one message at a
//! time for 5 rounds. Reports turns per second and the latency the server adds
//! on top of the model's 200 ms (p50/p99), on SQLite and, when `LADDER_TEST_POSTGRES` names a
//! server, on PostgreSQL. Bounded: fixed counts, a 120 s timeout per round.
//!
//! Run: `cargo bench -p ladderc --bench serve_load`.

use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_store::testing::{fresh_postgres_database, fresh_sqlite_path, postgres_admin_url};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSIONS: usize = 1_000;
const ROUNDS: usize = 5;
const MODEL_LATENCY: Duration = Duration::from_millis(200);

const LADDER: &str = r#"ladder 1
ladder desk { entry clerk }
model m { provider: openai, name: "fake-model" }
agent clerk {
  model m
  prompt "Answer briefly."
}
"#;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(store: &str, fake: &FakeOpenAi) -> (Serve, String) {
    let dir = std::env::temp_dir().join(format!("ladder-bench-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ladder = dir.join("desk.ladder");
    std::fs::write(&ladder, LADDER).expect("write ladder");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ladderc"))
        .arg("serve")
        .arg(&ladder)
        .args(["--addr", "127.0.0.1:0", "--store", store])
        .args(["--backend", "openai", "--base-url", &fake.base_url()])
        .env_remove("LADDER_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ladderc serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.to_string();
                }
            }
            _ => panic!("ladderc serve did not start"),
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Serve(child), url)
}

/// CPU time the process has used so far (Linux; `None` elsewhere).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(kind: &str, store: &str) {
    let fake = FakeOpenAi::start().await;
    fake.set_default(Reply::text("Noted."), MODEL_LATENCY);
    let (serve, url) = start(store, &fake);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SESSIONS)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let mut ids = Vec::with_capacity(SESSIONS);
    let created = Instant::now();
    let creations = (0..SESSIONS).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(format!("{url}/v1/sessions"))
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = r.json().await.ok()?;
            body["id"].as_str().map(String::from)
        }
    });
    for id in futures_util::future::join_all(creations).await {
        ids.push(id.expect("session created"));
    }
    let create_rate = SESSIONS as f64 / created.elapsed().as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for pace in [Pace::Burst, Pace::Paced] {
        let cpu_before = cpu_time(serve.0.id());
        let started = Instant::now();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (client, url, id) = (client.clone(), url.clone(), id.clone());
                tokio::spawn(async move { conversation(&client, &url, &id, pace).await })
            })
            .collect();
        let mut added = Vec::with_capacity(SESSIONS * ROUNDS);
        let mut errors = 0usize;
        for task in tasks {
            for (elapsed, ok) in task.await.expect("session task") {
                if ok {
                    added.push(elapsed.saturating_sub(MODEL_LATENCY));
                } else {
                    errors += 1;
                }
            }
        }
        let wall = started.elapsed();
        let cpu = cpu_time(serve.0.id())
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        added.sort();
        let turns = SESSIONS * ROUNDS;
        println!(
            "serve/{kind}/{}: {SESSIONS} concurrent sessions x {ROUNDS} turns: {:.0} turns/s, added latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {errors} errors, server CPU {} per turn",
            pace.name(),
            (turns - errors) as f64 / wall.as_secs_f64(),
            ms(percentile(&added, 0.50)),
            ms(percentile(&added, 0.99)),
            ms(*added.last().unwrap_or(&Duration::ZERO)),
            cpu.map_or("n/a".into(), |c| format!("{:.0} us", c.as_secs_f64() * 1e6 / turns as f64)),
        );
    }
    println!("serve/{kind}: sessions created at {create_rate:.0}/s");
}

#[derive(Clone, Copy)]
enum Pace {
    /// Every session sends its next message the moment its last turn ends: all 1 000 at once.
    Burst,
    /// Like people: a first message within 2 s, then each 1 to 3 s after the last answer.
    Paced,
}

impl Pace {
    fn name(self) -> &'static str {
        match self {
            Pace::Burst => "burst",
            Pace::Paced => "paced",
        }
    }
}

/// One session's turns; the latency of each and whether it succeeded.
async fn conversation(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    pace: Pace,
) -> Vec<(Duration, bool)> {
    let mut results = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        if let Pace::Paced = pace {
            let ms = if round == 0 {
                fastrand::u64(0..2_000)
            } else {
                fastrand::u64(1_000..3_000)
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let t = Instant::now();
        let r = client
            .post(format!("{url}/v1/sessions/{id}/messages?stream=false"))
            .json(&json!({"text": format!("message {round}")}))
            .send()
            .await;
        let ok = match r {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .is_ok_and(|body| body.contains("\"turn_ended\"")),
            _ => false,
        };
        results.push((t.elapsed(), ok));
    }
    results
}

fn main() {
    // `cargo test --benches` runs benches with `--test`-like flags; only measure under `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        measure(
            "sqlite",
            &format!("sqlite:{}", fresh_sqlite_path().display()),
        )
        .await;
        match postgres_admin_url() {
            Some(admin) => measure("postgres", &fresh_postgres_database(&admin).await).await,
            None => println!("serve/postgres: skipped (set LADDER_TEST_POSTGRES)"),
        }
    });
}
