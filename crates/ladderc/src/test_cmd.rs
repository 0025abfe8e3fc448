//! `ladderc test`: runs the scenario tests of ladders, reports them, and gates on budgets.

use crate::run::ModelArgs;
use crate::{check_file, report};
use ladder_check::{CheckOptions, Program};
use ladder_runtime::scenario::{run_test, TestRun};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct TestOptions {
    pub files: Vec<PathBuf>,
    pub model: ModelArgs,
    pub repeat: u32,
    pub noise: Option<f64>,
    pub filter: Option<String>,
    pub junit: Option<PathBuf>,
    pub json: bool,
    pub jobs: usize,
    pub live_tools: bool,
}

/// The runs of one test at one noise level.
struct Group {
    file: usize,
    test: String,
    level: f64,
    runs: Vec<TestRun>,
}

impl Group {
    fn passed(&self) -> usize {
        self.runs.iter().filter(|r| r.passed).count()
    }

    /// Whether the test scripts its model answers (it passes whatever a model would do).
    fn scripted(&self) -> bool {
        self.runs.first().is_some_and(|r| r.scripted)
    }

    fn pass_rate(&self) -> f64 {
        self.passed() as f64 / self.runs.len().max(1) as f64
    }

    fn session_latencies(&self) -> Vec<f64> {
        self.runs
            .iter()
            .map(|r| r.turn_latency_ms.iter().sum::<u64>() as f64)
            .collect()
    }
}

/// Nearest-rank percentile of unsorted values.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

struct Budget {
    file: usize,
    message: String,
}

pub(crate) async fn run(options: TestOptions) -> Result<bool, String> {
    let mut files = options.files.clone();
    if files.is_empty() {
        crate::fmt::discover(Path::new("."), ".test.ladder", &mut files);
        if files.is_empty() {
            return Err("no test files given and no `*.test.ladder` file found here".into());
        }
    }
    let mut ok = true;
    let mut programs: Vec<(PathBuf, Program)> = Vec::new();
    for file in &files {
        let checked = check_file(file, &CheckOptions::default())
            .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        match report::program_or_report(&checked) {
            Some(p) => programs.push((file.clone(), p)),
            None => ok = false,
        }
    }
    let model_backend = options.model.backend();
    let levels: Vec<f64> = match options.noise {
        Some(level) if level > 0.0 => vec![0.0, level],
        _ => vec![0.0],
    };
    // One job per (file, test, level, repetition); at most `jobs` sessions at a time.
    let mut groups: Vec<Group> = Vec::new();
    let mut jobs = Vec::new();
    let mut mcp_servers = Vec::new();
    for (f, (_, program)) in programs.iter().enumerate() {
        let runtime = options
            .model
            .runtime(program.clone(), model_backend.clone());
        // Without --live-tools every MCP tool a test does not stub is cut off: nothing starts.
        let runtime = if options.live_tools {
            let (runtime, servers) = crate::mcp_cmd::connect(runtime).await?;
            mcp_servers.extend(servers);
            runtime
        } else {
            runtime
        };
        for case in &program.tests {
            if options
                .filter
                .as_ref()
                .is_some_and(|f| !case.name.contains(f.as_str()))
            {
                continue;
            }
            for &level in &levels {
                let g = groups.len();
                groups.push(Group {
                    file: f,
                    test: case.name.clone(),
                    level,
                    runs: Vec::new(),
                });
                for rep in 0..options.repeat.max(1) {
                    jobs.push((g, runtime.clone(), case.clone(), level, u64::from(rep)));
                }
            }
        }
    }
    let progress = if std::io::stderr().is_terminal() && !options.json {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let live_tools = options.live_tools;
    let mut handles = Vec::with_capacity(jobs.len());
    for (g, runtime, case, level, seed) in jobs {
        let limit = limit.clone();
        let progress = progress.clone();
        handles.push(tokio::spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let noise = (level > 0.0).then_some((level, seed));
            let run = run_test(&runtime, &case, noise, live_tools).await;
            if let Some(p) = progress {
                p.inc(1);
            }
            (g, run)
        }));
    }
    for h in handles {
        let (g, run) = h.await.map_err(|e| format!("a test task failed: {e}"))?;
        groups[g].runs.push(run);
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    // Budgets: p95 turn latency, p95 cost per session and the pass rate, per file, without noise.
    let mut breaches = Vec::new();
    for (f, (_, program)) in programs.iter().enumerate() {
        let clean: Vec<&Group> = groups
            .iter()
            .filter(|g| g.file == f && g.level == 0.0)
            .collect();
        let runs: Vec<&TestRun> = clean.iter().flat_map(|g| g.runs.iter()).collect();
        if runs.is_empty() {
            continue;
        }
        let turns: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.turn_latency_ms.iter().map(|l| *l as f64))
            .collect();
        let costs: Vec<f64> = runs.iter().map(|r| r.cost).collect();
        let pass_rate = runs.iter().filter(|r| r.passed).count() as f64 / runs.len() as f64;
        if let Some(limit) = program.budget.latency_p95_seconds {
            let p95 = percentile(&turns, 95.0) / 1000.0;
            if p95 > limit {
                breaches.push(Budget {
                    file: f,
                    message: format!(
                        "p95 turn latency {p95:.3}s exceeds the budget latency_p95 of {limit}s"
                    ),
                });
            }
        }
        if let Some(limit) = program.budget.cost_per_session {
            let p95 = percentile(&costs, 95.0);
            if p95 > limit {
                breaches.push(Budget { file: f, message: format!("p95 cost per session ${p95:.6} exceeds the budget cost_per_session of ${limit}") });
            }
        }
        if let Some(min) = program.budget.min_pass_rate {
            if pass_rate < min {
                breaches.push(Budget {
                    file: f,
                    message: format!(
                        "pass rate {:.1}% is below the budget min_pass_rate of {:.1}%",
                        pass_rate * 100.0,
                        min * 100.0
                    ),
                });
            }
        }
    }
    // Noisy runs measure robustness; they fail the build only through `min_pass_rate`.
    let all_passed = groups
        .iter()
        .filter(|g| g.level == 0.0)
        .all(|g| g.passed() == g.runs.len());
    ok &= all_passed && breaches.is_empty();

    if let Some(path) = &options.junit {
        std::fs::write(path, junit(&programs, &groups))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_report(&programs, &groups, &breaches, ok))
                .map_err(|e| e.to_string())?
        );
    } else {
        print!(
            "{}",
            table(&programs, &groups, &breaches, options.repeat.max(1))
        );
    }
    Ok(ok)
}

fn table(
    programs: &[(PathBuf, Program)],
    groups: &[Group],
    breaches: &[Budget],
    repeat: u32,
) -> String {
    let mut out = String::new();
    // Names and routes are never cut: the name column is as wide as the longest name, and the
    // route comes last.
    let name_width = groups
        .iter()
        .map(|g| g.test.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    for (f, (path, _)) in programs.iter().enumerate() {
        let mine: Vec<&Group> = groups.iter().filter(|g| g.file == f).collect();
        let _ = writeln!(out, "{}", path.display());
        let _ = writeln!(
            out,
            "  {:<name_width$} {:<9} {:<13} {:>5} {:>7} {:>10} {:>12}  route",
            "test", "model", "result", "llm", "tokens", "cost", "latency"
        );
        for g in mine.iter().filter(|g| g.level == 0.0) {
            let result = if repeat > 1 {
                format!(
                    "{}/{} {:.0}%",
                    g.passed(),
                    g.runs.len(),
                    g.pass_rate() * 100.0
                )
            } else if g.passed() == g.runs.len() {
                "pass".to_string()
            } else {
                "FAIL".to_string()
            };
            let shown = g.runs.iter().find(|r| !r.passed).unwrap_or(&g.runs[0]);
            let route = if shown.route.is_empty() {
                "-".to_string()
            } else {
                shown.route.join(", ")
            };
            let n = g.runs.len() as f64;
            let llm = g.runs.iter().map(|r| r.llm_calls).sum::<u64>() as f64 / n;
            let tokens = g.runs.iter().map(|r| r.tokens).sum::<u64>() as f64 / n;
            let cost = g.runs.iter().map(|r| r.cost).sum::<f64>() / n;
            let lat = g.session_latencies();
            let latency = if repeat > 1 {
                format!(
                    "{:.0}/{:.0}ms",
                    percentile(&lat, 50.0),
                    percentile(&lat, 95.0)
                )
            } else {
                format!("{:.0}ms", lat[0])
            };
            let _ = writeln!(
                out,
                "  {:<name_width$} {:<9} {:<13} {:>5} {:>7} {:>10} {:>12}  {route}",
                g.test,
                if g.scripted() { "scripted" } else { "live" },
                result,
                format!("{llm:.0}"),
                format!("{tokens:.0}"),
                report::money(cost),
                latency
            );
        }
        for g in mine.iter().filter(|g| g.passed() < g.runs.len()) {
            let run = g.runs.iter().find(|r| !r.passed).expect("a failed run");
            let noise = if g.level > 0.0 {
                format!(" (noise {:.2}, does not fail the run)", g.level)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "\n  FAIL \"{}\"{noise}: {} of {} runs failed",
                g.test,
                g.runs.len() - g.passed(),
                g.runs.len()
            );
            if g.level > 0.0 {
                for (i, text) in run.inputs.iter().enumerate() {
                    let _ = writeln!(out, "    turn {} sent: {text:?}", i + 1);
                }
            }
            let _ = writeln!(out, "    {:<6} {:<48} | actual", "turn", "expected");
            for f in &run.failures {
                let _ = writeln!(out, "    {:<6} {:<48} | {}", f.turn, f.expected, f.actual);
            }
        }
        for b in breaches.iter().filter(|b| b.file == f) {
            let _ = writeln!(out, "\n  BUDGET {}", b.message);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "route: `a -> b` handoff, `a <- b` b returned to a, `a ^ b` escalation, `a => b` fallback, `!name` a ceiling fired, `@name` a person took over"
    );
    // One table of pass rates by noise level, over every file and test.
    if groups.iter().any(|g| g.level > 0.0) {
        let _ = writeln!(
            out,
            "\npass rate by noise level (noisy runs do not fail the run):"
        );
        let mut levels: Vec<f64> = groups.iter().map(|g| g.level).collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        for level in levels {
            let at: Vec<&Group> = groups.iter().filter(|g| g.level == level).collect();
            let runs: usize = at.iter().map(|g| g.runs.len()).sum();
            let passed: usize = at.iter().map(|g| g.passed()).sum();
            let _ = writeln!(
                out,
                "  noise {level:.2}: {passed}/{runs} ({:.0}%)",
                passed as f64 * 100.0 / runs.max(1) as f64
            );
        }
    }
    let clean: Vec<&Group> = groups.iter().filter(|g| g.level == 0.0).collect();
    let count = |scripted: Option<bool>| {
        let of: Vec<&&Group> = clean
            .iter()
            .filter(|g| scripted.is_none_or(|s| g.scripted() == s))
            .collect();
        (
            of.iter().map(|g| g.passed()).sum::<usize>(),
            of.iter().map(|g| g.runs.len()).sum::<usize>(),
        )
    };
    let (passed, runs) = count(None);
    // Scripted tests pass whatever the model does; the model's own pass rate is the other one.
    let (live_passed, live_runs) = count(Some(false));
    if live_runs > 0 && live_runs < runs {
        let (scripted_passed, scripted_runs) = count(Some(true));
        let _ = writeln!(
            out,
            "\nscripted: {scripted_passed}/{scripted_runs} passed; model-driven: {live_passed}/{live_runs} passed ({:.0}%)",
            live_passed as f64 * 100.0 / live_runs as f64
        );
    }
    let status = if passed == runs && breaches.is_empty() {
        "ok"
    } else {
        "failed"
    };
    let _ = writeln!(
        out,
        "test {status}: {passed} passed, {} failed; {} budget breaches",
        runs - passed,
        breaches.len()
    );
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn junit(programs: &[(PathBuf, Program)], groups: &[Group]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (f, (path, _)) in programs.iter().enumerate() {
        let mine: Vec<&Group> = groups.iter().filter(|g| g.file == f).collect();
        let tests: usize = mine.iter().map(|g| g.runs.len()).sum();
        // Noisy runs measure robustness and do not fail the run: they are not `<failure>`s.
        let failures: usize = mine
            .iter()
            .filter(|g| g.level == 0.0)
            .map(|g| g.runs.len() - g.passed())
            .sum();
        let time: f64 = mine.iter().flat_map(|g| g.session_latencies()).sum::<f64>() / 1000.0;
        let _ = writeln!(out, "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">", xml(&path.display().to_string()));
        for g in &mine {
            for (i, run) in g.runs.iter().enumerate() {
                let mut name = g.test.clone();
                if g.level > 0.0 {
                    name.push_str(&format!(" [noise {:.2}]", g.level));
                }
                if g.runs.len() > 1 {
                    name.push_str(&format!(" #{}", i + 1));
                }
                let t = run.turn_latency_ms.iter().sum::<u64>() as f64 / 1000.0;
                let _ = write!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{t:.3}\"",
                    xml(&name),
                    xml(&path.display().to_string())
                );
                if run.passed {
                    out.push_str("/>\n");
                } else if g.level > 0.0 {
                    let sent: Vec<String> = run.inputs.iter().map(|t| format!("{t:?}")).collect();
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(&format!(
                            "noisy run failed (does not fail the run); sent {}",
                            sent.join(", ")
                        ))
                    );
                } else {
                    out.push_str(">\n");
                    let detail: Vec<String> = run
                        .failures
                        .iter()
                        .map(|f| {
                            format!(
                                "turn {}: expected {}; actual {}",
                                f.turn, f.expected, f.actual
                            )
                        })
                        .collect();
                    let first = run
                        .failures
                        .first()
                        .map(|f| format!("expected {}", f.expected))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\">{}</failure>",
                        xml(&first),
                        xml(&detail.join("\n"))
                    );
                    out.push_str("    </testcase>\n");
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn json_report(
    programs: &[(PathBuf, Program)],
    groups: &[Group],
    breaches: &[Budget],
    ok: bool,
) -> Value {
    json!({
        "schema": 1,
        "ok": ok,
        "files": programs.iter().enumerate().map(|(f, (path, _))| json!({
            "file": path.display().to_string(),
            "tests": groups.iter().filter(|g| g.file == f).map(|g| {
                let lat = g.session_latencies();
                json!({
                    "name": g.test,
                    "noise": g.level,
                    "runs": g.runs.len(),
                    "passed": g.passed(),
                    "pass_rate": g.pass_rate(),
                    "latency_ms_p50": percentile(&lat, 50.0),
                    "latency_ms_p95": percentile(&lat, 95.0),
                    "cost_mean": g.runs.iter().map(|r| r.cost).sum::<f64>() / g.runs.len().max(1) as f64,
                    "route": g.runs.first().map(|r| r.route.clone()).unwrap_or_default(),
                    "failures": g.runs.iter().flat_map(|r| r.failures.clone()).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
            "budget_breaches": breaches.iter().filter(|b| b.file == f).map(|b| b.message.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
