//! `ladderc-bench`: ladderc's client for the side-by-side anchor harness (`../shared/anchors`,
//! README "Adding ladderc"). It runs the harness's clinic scenario (`clinic.ladder`, the same eight
//! rungs, instructions and tools as `scenario.py`) against the harness's fake model and writes the
//! JSON its `report.py` reads:
//!
//! ```text
//! ladderc-bench overhead    --fw ladderc --base-url URL --out F.json --n 200 --warmup 8 [--stream]
//! ladderc-bench concurrency --fw ladderc --base-url URL --out F.json --n 1000 --warmup 8
//! ladderc-bench construct   --fw ladderc --base-url URL --out F.json --fanout 10 --depth 3
//! ```
//!
//! ladderc always streams (SSE), so `--stream` changes nothing and both overhead runs measure
//! streaming. `construct` compiles a generated ladder of the harness's synthetic tree (parse,
//! every check, lowering): that is what "building the agents" means for ladderc.

use clap::{Parser, ValueEnum};
use ladder_runtime::{Event, Runtime};
use serde_json::{json, Map, Value};
use std::time::Instant;

const CLINIC: &str = include_str!("../clinic.ladder");

/// The four root -> lead -> specialist routes of `scenario.py`; session `i` takes route `i % 4`.
const ROUTES: [(&str, &str, &str); 4] = [
    (
        "clinical_lead",
        "scheduler",
        "Hi, I need to move my appointment at the east clinic to next Tuesday.",
    ),
    (
        "clinical_lead",
        "nurse_triage",
        "Hello, my son has had a fever of 38.5 since last night, what should I do?",
    ),
    (
        "ops_lead",
        "billing",
        "I was charged twice for my last visit, can I get a refund?",
    ),
    (
        "ops_lead",
        "insurance",
        "Does my plan cover an MRI of the knee, and do I need pre-authorisation?",
    ),
];

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Smoke,
    Overhead,
    Concurrency,
    Construct,
}

#[derive(Parser)]
#[command(
    name = "ladderc-bench",
    about = "ladderc's client for the anchor harness"
)]
struct Args {
    mode: Mode,
    #[arg(long, default_value = "ladderc")]
    fw: String,
    #[arg(long, default_value = "http://127.0.0.1:8787/v1")]
    base_url: String,
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 200)]
    n: usize,
    #[arg(long, default_value_t = 8)]
    warmup: usize,
    #[arg(long)]
    stream: bool,
    #[arg(long, default_value_t = 10)]
    fanout: usize,
    #[arg(long, default_value_t = 3)]
    depth: u32,
}

fn cpu_s() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn max_rss_mib() -> f64 {
    // SAFETY: as above.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn cur_rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / (1024.0 * 1024.0)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[k.min(v.len() - 1)]
}

struct Harness {
    root: String,
    http: reqwest::Client,
}

impl Harness {
    fn new(base_url: &str) -> Self {
        let trimmed = base_url.trim_end_matches('/');
        Harness {
            root: trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn stats(&self, reset: bool) -> Map<String, Value> {
        let url = format!("{}/stats{}", self.root, if reset { "/reset" } else { "" });
        let request = if reset {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        let response = request
            .send()
            .await
            .expect("the fake model's /stats answers");
        response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }
}

/// One session: the route's message, then a check of the final answer.
async fn session(runtime: &Runtime, i: usize) -> Result<(), String> {
    let (lead, specialist, text) = ROUTES[i % ROUTES.len()];
    let events = runtime
        .session()
        .send(format!("{text}\nroute: {lead} > {specialist}"))
        .collect()
        .await;
    let reply: String = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let expected = format!("handled by {specialist}");
    if reply.trim() == expected {
        Ok(())
    } else {
        Err(format!("session {i}: expected `{expected}`, got `{reply}`"))
    }
}

fn runtime(base_url: &str) -> Runtime {
    let mut program = ladder_check::compile(CLINIC).expect("clinic.ladder checks");
    // `LADDER_BENCH_FUSE=off`: every hop its own model call, to compare with fused routing.
    if std::env::var("LADDER_BENCH_FUSE").as_deref() == Ok("off") {
        program = program.without_fused_routes();
    }
    Runtime::new(program).backend(ladder_llm::OpenAi::new(base_url, None))
}

/// The per-session counters of the fake model over the measured part.
fn per_session(stats: &Map<String, Value>, sessions: usize, out: &mut Map<String, Value>) {
    let n = sessions.max(1) as f64;
    let get = |k: &str| stats.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    for (key, field) in [
        ("requests_per_session", "requests"),
        ("prompt_chars_per_session", "prompt_chars"),
        ("content_chars_per_session", "content_chars"),
        ("tools_chars_per_session", "tools_chars"),
        ("tool_call_chars_per_session", "tool_call_chars"),
        ("messages_per_session", "messages"),
        ("body_bytes_per_session", "body_bytes"),
    ] {
        out.insert(key.into(), json!(get(field) / n));
    }
    out.insert(
        "server_cpu_ms_per_session".into(),
        json!(get("cpu_seconds_since_reset") * 1000.0 / n),
    );
    out.insert("route_mismatches".into(), json!(get("route_mismatches")));
}

async fn overhead(args: &Args) -> Map<String, Value> {
    let harness = Harness::new(&args.base_url);
    let runtime = runtime(&args.base_url);
    for i in 0..args.warmup {
        session(&runtime, i).await.expect("a warm-up session");
    }
    harness.stats(true).await;
    let cpu = cpu_s();
    let mut walls = Vec::with_capacity(args.n);
    let mut errors = 0;
    for i in 0..args.n {
        let t = Instant::now();
        if let Err(e) = session(&runtime, i).await {
            eprintln!("{e}");
            errors += 1;
        }
        walls.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = cpu_s() - cpu;
    let stats = harness.stats(false).await;
    let mut out = Map::new();
    out.insert("median_ms".into(), json!(percentile(&walls, 50.0)));
    out.insert("p95_ms".into(), json!(percentile(&walls, 95.0)));
    out.insert("cpu_s_per_session".into(), json!(cpu / args.n as f64));
    out.insert("stream".into(), json!(true));
    out.insert("errors".into(), json!(errors));
    per_session(&stats, args.n, &mut out);
    out
}

async fn concurrency(args: &Args) -> Map<String, Value> {
    let harness = Harness::new(&args.base_url);
    let runtime = runtime(&args.base_url);
    for i in 0..args.warmup {
        session(&runtime, i).await.expect("a warm-up session");
    }
    let idle = cur_rss_mib();
    harness.stats(true).await;
    let cpu = cpu_s();
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.n)
        .map(|i| {
            let runtime = runtime.clone();
            tokio::spawn(async move { session(&runtime, i).await })
        })
        .collect();
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            errors += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu;
    let peak = max_rss_mib();
    let stats = harness.stats(false).await;
    let mut out = Map::new();
    out.insert("wall_s".into(), json!(wall));
    out.insert("sessions_per_s".into(), json!(args.n as f64 / wall));
    out.insert(
        "cpu_ms_per_session".into(),
        json!(cpu * 1000.0 / args.n as f64),
    );
    out.insert("idle_rss_mib".into(), json!(idle));
    out.insert("peak_rss_mib".into(), json!(peak));
    out.insert(
        "kib_per_session".into(),
        json!((peak - idle) * 1024.0 / args.n as f64),
    );
    out.insert(
        "server_max_in_flight".into(),
        stats.get("max_in_flight").cloned().unwrap_or(Value::Null),
    );
    out.insert("errors".into(), json!(errors));
    per_session(&stats, args.n, &mut out);
    out
}

/// The harness's synthetic tree as a ladder (`ladder_check::generate::tool_tree`).
fn synthetic(fanout: usize, depth: u32) -> (String, usize) {
    ladder_check::generate::tool_tree(fanout, depth)
}

fn construct(args: &Args, import_s: f64) -> Map<String, Value> {
    let rss = cur_rss_mib();
    let t = Instant::now();
    let (text, agents) = synthetic(args.fanout, args.depth);
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let program = ladder_check::compile(&text).unwrap_or_else(|d| {
        panic!(
            "the synthetic ladder checks: {:?}",
            d.first().map(|d| &d.message)
        )
    });
    let compile = t.elapsed().as_secs_f64();
    assert_eq!(program.agents.len(), agents);
    let mut out = Map::new();
    out.insert("agents".into(), json!(agents));
    out.insert("build_s".into(), json!(build));
    out.insert("compile_s".into(), json!(compile));
    out.insert("total_s".into(), json!(build + compile));
    out.insert(
        "us_per_agent".into(),
        json!((build + compile) * 1e6 / agents as f64),
    );
    out.insert("rss_delta_mib".into(), json!(cur_rss_mib() - rss));
    out.insert("import_s".into(), json!(import_s));
    drop(program);
    out
}

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let started = Instant::now();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // What a Python framework pays to import: here, the process start up to this point.
    let import_s = started.elapsed().as_secs_f64();
    let (mode, mut result) = match args.mode {
        Mode::Smoke => {
            let runtime = runtime(&args.base_url);
            let ok = rt.block_on(async {
                for i in 0..ROUTES.len() {
                    session(&runtime, i).await?;
                }
                Ok::<_, String>(())
            });
            if let Err(e) = ok {
                eprintln!("{e}");
                std::process::exit(1);
            }
            ("smoke", Map::new())
        }
        Mode::Overhead => ("overhead", rt.block_on(overhead(&args))),
        Mode::Concurrency => ("concurrency", rt.block_on(concurrency(&args))),
        Mode::Construct => ("construct", construct(&args, import_s)),
    };
    result.insert("mode".into(), json!(mode));
    result.insert("fw".into(), json!(args.fw));
    let text = Value::Object(result).to_string();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).expect("the result is written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_checks_with_the_harness_functions() {
        let program = ladder_check::compile(CLINIC).expect("clinic.ladder checks");
        assert_eq!(program.agents.len(), 7);
        assert_eq!(program.humans.len(), 1);
        // The harness's fake model routes by calling `transfer_to_<agent>` along each route.
        for (lead, specialist, _) in ROUTES {
            assert!(program.agents["triage"]
                .handoffs
                .iter()
                .any(|h| h.target == lead));
            assert!(program.agents[lead]
                .handoffs
                .iter()
                .any(|h| h.target == specialist));
        }
    }

    /// A session along the first route against a strict fake that answers as the harness's
    /// fake model does: the client checks the final answer.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_session_follows_its_route_and_checks_the_answer() {
        use ladder_fake_openai::{FakeOpenAi, Reply};
        let fake = FakeOpenAi::start().await;
        fake.push(Reply::tool("transfer_to_clinical_lead", json!({})));
        fake.push(Reply::tool("transfer_to_scheduler", json!({})));
        fake.push(Reply::text("handled by scheduler"));
        let runtime = runtime(&fake.base_url());
        session(&runtime, 0).await.expect("the route is followed");
        let first = &fake.requests()[0];
        assert!(first["messages"][1]["content"]
            .as_str()
            .unwrap()
            .ends_with("route: clinical_lead > scheduler"));
        fake.push(Reply::text("handled by someone else"));
        assert!(session(&runtime, 0).await.is_err(), "a wrong answer fails");
    }

    /// With fused routing the harness's fake, offered the specialist's `transfer_to_*` at the root
    /// in place of the lead's (the edges say `fuse`), takes it: two model calls a session, not three.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_root_routes_straight_to_the_specialist() {
        use ladder_fake_openai::{FakeOpenAi, Reply};
        let fake = FakeOpenAi::start().await;
        let runtime = runtime(&fake.base_url());
        fake.push(Reply::tool("transfer_to_scheduler", json!({})));
        fake.push(Reply::text("handled by scheduler"));
        session(&runtime, 0).await.expect("the route is followed");
        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let offered: Vec<&str> = requests[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        for (lead, specialist, _) in ROUTES {
            assert!(!offered.contains(&format!("transfer_to_{lead}").as_str()));
            assert!(offered.contains(&format!("transfer_to_{specialist}").as_str()));
        }
    }

    #[test]
    fn the_synthetic_tree_has_the_harness_size() {
        let (text, agents) = synthetic(10, 3);
        assert_eq!(agents, 1111);
        let program = ladder_check::compile(&text).expect("the synthetic ladder checks");
        assert_eq!(program.agents.len(), 1111);
        assert_eq!(program.tools.len(), 2222);
    }
}
