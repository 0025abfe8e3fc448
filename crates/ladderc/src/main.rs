//! `ladderc`: check, draw and run `.ladder` files.

mod fmt;
mod graph_render;
mod mcp_cmd;
mod otel;
mod report;
mod run;
mod sessions;
mod test_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use ladder_check::{check_path, CheckOptions, Code, LintOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ladderc",
    version,
    about = "Compiler and checker for .ladder multi-agent ladders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The project root: ladder files are read only inside it (default: the nearest directory
    /// above the ladder that holds `.git` or `ladder.toml`, else the ladder's own directory).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The largest ladder file read, in bytes.
    #[arg(long = "max-file-size", global = true, value_name = "BYTES", default_value_t = ladder_check::DEFAULT_MAX_FILE_BYTES)]
    max_file_size: u64,
    /// The most items (agents, tools, intents, ...) a ladder may declare, over all its files.
    #[arg(long = "max-items", global = true, value_name = "N", default_value_t = ladder_check::DEFAULT_MAX_ITEMS)]
    max_items: usize,
}

/// The input limits of the command line (`--root`, `--max-file-size`, `--max-items`), set once
/// in `main` and read wherever a ladder is loaded.
#[derive(Clone)]
struct InputLimits {
    root: Option<PathBuf>,
    max_file_bytes: u64,
    max_items: usize,
}

static INPUT_LIMITS: std::sync::OnceLock<InputLimits> = std::sync::OnceLock::new();

fn input_limits() -> InputLimits {
    INPUT_LIMITS.get().cloned().unwrap_or(InputLimits {
        root: None,
        max_file_bytes: ladder_check::DEFAULT_MAX_FILE_BYTES,
        max_items: ladder_check::DEFAULT_MAX_ITEMS,
    })
}

/// The file-access policy for the project of `file` (docs/language.md, "Files").
pub(crate) fn policy_for(file: &Path) -> std::io::Result<ladder_check::FilePolicy> {
    let limits = input_limits();
    let policy = match &limits.root {
        Some(root) => ladder_check::FilePolicy::new(root)?,
        None => ladder_check::FilePolicy::for_file(file)?,
    };
    Ok(policy.with_max_bytes(limits.max_file_bytes))
}

/// Checks the ladder at `file` with `use`s read under the file-access policy.
pub(crate) fn check_file(
    file: &Path,
    options: &CheckOptions,
) -> std::io::Result<ladder_check::Checked> {
    let options = CheckOptions {
        max_items: input_limits().max_items,
        ..options.clone()
    };
    check_path(file, &policy_for(file)?, &options)
}

#[derive(Subcommand)]
enum Command {
    /// Check ladders and report every problem found.
    Check {
        /// Root `.ladder` files (their `use`d files are checked with them).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` (rendered diagnostics) or `json` (see docs/diagnostics.md).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Turn a lint into an error: `warnings` for all of them, or a code/name like `L0017`.
        #[arg(long, value_name = "LINT")]
        deny: Vec<String>,
        /// Silence a lint (warnings only): a code like `L0011` or a name like `unreachable-rung`.
        #[arg(long, value_name = "LINT")]
        allow: Vec<String>,
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// Write the checked program as JSON to FILE (one ladder, no errors), for a runtime
        /// embedded without the compiler (see docs/runtime.md).
        #[arg(long, value_name = "FILE")]
        emit_program: Option<PathBuf>,
    },
    /// Hold a conversation with a ladder: interactive, or one turn per `--message`.
    Run {
        file: PathBuf,
        /// A user message; repeat for several turns. Without it, read lines from stdin.
        #[arg(long = "message", short = 'm', value_name = "TEXT")]
        messages: Vec<String>,
        /// Print one JSON event per line (schema in docs/runtime.md).
        #[arg(long)]
        json: bool,
        /// Also write every event as JSON lines to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        #[command(flatten)]
        model: run::ModelArgs,
        /// Continue (or start) the stored session ID; its turns are committed to the store.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Keep the session in this store: a SQLite path or `sqlite:PATH`, or `postgres://...`
        /// (default with --session: .ladder/sessions.db).
        #[arg(long, value_name = "URL", env = "LADDER_STORE")]
        store: Option<String>,
        /// Play the person too, as NAME: while a human has the session (or a tool call waits
        /// for approval), the next lines are the person's (text to the caller, `/release RUNG
        /// [note]`, `/continue RUNG [note]`, `/approve [note]`, `/reject [note]`, `/wait`).
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
    },
    /// Serve a ladder over HTTP (sessions API with SSE, OpenAI-compatible chat completions).
    Serve {
        file: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
        addr: std::net::SocketAddr,
        /// Session store: a SQLite path or `sqlite:PATH`, or `postgres://...` for several workers.
        #[arg(long, value_name = "URL", env = "LADDER_STORE", default_value = ladder_store::DEFAULT_SQLITE_PATH)]
        store: String,
        /// Bearer token every request must carry (required off loopback).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "LADDER_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// How long a worker's claim on a session lasts unrenewed (seconds): after a crash,
        /// another worker takes the session over this long after the last renewal.
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        lease: f64,
        /// On SIGTERM, how long running turns may take to finish (seconds).
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        grace: f64,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
        max_body: usize,
        /// A host name clients use to reach this server (`Host` header), besides the bound
        /// address (and `localhost` on loopback); repeat for several.
        #[arg(long = "allowed-host", value_name = "HOST[:PORT]")]
        allowed_hosts: Vec<String>,
        /// A web origin allowed to call this server from a browser (CORS), e.g.
        /// `https://console.example.com`; repeat for several. None by default.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origins: Vec<String>,
        #[command(flatten)]
        model: run::ModelArgs,
    },
    /// Tools from MCP servers: `ladderc mcp pull LADDER SERVER` pins a server's tools.
    Mcp {
        #[command(subcommand)]
        command: mcp_cmd::McpCommand,
    },
    /// Inspect stored sessions.
    Sessions {
        #[command(subcommand)]
        command: sessions::SessionsCommand,
        /// A SQLite path or `sqlite:PATH`, or `postgres://...`.
        #[arg(long, value_name = "URL", env = "LADDER_STORE", default_value = ladder_store::DEFAULT_SQLITE_PATH, global = true)]
        store: String,
    },
    /// Run the scenario tests (`test` blocks) of ladders and gate on their budgets.
    Test {
        /// Ladders or `*.test.ladder` files (default: every `*.test.ladder` under this directory).
        files: Vec<PathBuf>,
        #[command(flatten)]
        model: run::ModelArgs,
        /// Run each test N times and report pass rate, p50/p95 latency and cost.
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        repeat: u32,
        /// Also run every test with user turns perturbed at this level (0 to 1).
        #[arg(long, value_name = "LEVEL")]
        noise: Option<f64>,
        /// Only tests whose name contains TEXT.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Write a JUnit XML report to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print a JSON report instead of the table.
        #[arg(long)]
        json: bool,
        /// Sessions run at the same time.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Let tests call `http` and `exec` tools they do not stub (tests are hermetic without it:
        /// such a call fails the test, naming the tool).
        #[arg(long)]
        live_tools: bool,
    },
    /// Format ladders in the one canonical layout (in place).
    Fmt {
        /// Files to format (default: every `*.ladder` under this directory).
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
    /// Run the language server on stdin/stdout (for editors).
    Lsp,
    /// Draw the agent graph: handoff, escalate, consult and fallback edges, labelled.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    Mermaid,
    Dot,
    Json,
}

fn lint_options(deny: &[String], allow: &[String]) -> Result<LintOptions, String> {
    let mut options = LintOptions::default();
    for name in deny {
        if name == "warnings" {
            options.deny_warnings = true;
        } else {
            options
                .deny
                .push(Code::parse(name).ok_or_else(|| format!("unknown lint `{name}` in --deny"))?);
        }
    }
    for name in allow {
        options
            .allow
            .push(Code::parse(name).ok_or_else(|| format!("unknown lint `{name}` in --allow"))?);
    }
    Ok(options)
}

/// Checks a ladder for `run` and `serve`: its program, or the exit code after reporting why not.
fn compile_file(file: &Path) -> Result<ladder_runtime::Program, ExitCode> {
    let checked = match check_file(file, &CheckOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return Err(ExitCode::from(2));
        }
    };
    report::program_or_report(&checked).ok_or(ExitCode::from(1))
}

/// Prints a command's error and exits 2.
fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs an async command on a fresh tokio runtime; exit 2 if the runtime cannot start.
/// The trace exporter `--otlp` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) asks for; flushed when dropped,
/// after the command's runtime has stopped.
fn traces(model: &run::ModelArgs) -> Result<Option<otel::Otel>, ExitCode> {
    let flag = model
        .otlp
        .clone()
        .map(|url| (!url.is_empty()).then_some(url));
    otel::init(flag).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn block_on<F: std::future::Future>(
    future: F,
    done: impl FnOnce(F::Output) -> ExitCode,
) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => {
            let output = rt.block_on(future);
            // Blocking threads (the LSP's stdin reader) must not keep the process alive.
            rt.shutdown_background();
            done(output)
        }
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    // reqwest 0.13's clients (the OTLP exporter, MCP over HTTP) take the process's rustls
    // crypto provider, and none is chosen by default: ring, as everywhere else here. Without
    // it, `--otlp` panicked building its HTTP client (found by the OpenTelemetry test).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let _ = INPUT_LIMITS.set(InputLimits {
        root: cli.root.clone(),
        max_file_bytes: cli.max_file_size,
        max_items: cli.max_items,
    });
    match cli.command {
        Command::Check {
            files,
            format,
            deny,
            allow,
            color,
            emit_program,
        } => {
            if emit_program.is_some() && files.len() != 1 {
                eprintln!(
                    "error: `--emit-program` takes one ladder, {} given",
                    files.len()
                );
                return ExitCode::from(2);
            }
            let lints = match lint_options(&deny, &allow) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let options = CheckOptions {
                lints,
                lower: emit_program.is_some(),
                ..CheckOptions::default()
            };
            let color = match color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            let mut results = Vec::new();
            for file in &files {
                match check_file(file, &options) {
                    Ok(checked) => results.push(checked),
                    Err(e) => {
                        eprintln!("error: cannot read `{}`: {e}", file.display());
                        return ExitCode::from(2);
                    }
                }
            }
            let errors: usize = results.iter().map(|r| r.error_count()).sum();
            match format {
                Format::Json => println!("{}", report::json(&results)),
                Format::Human => print!("{}", report::human(&results, color)),
            }
            if let (Some(path), Some(program)) = (&emit_program, &results[0].program) {
                let json = serde_json::to_string_pretty(program).expect("a program serialises");
                if let Err(e) = std::fs::write(path, json + "\n") {
                    eprintln!("error: cannot write `{}`: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            // A one-shot command: the process's exit returns the checked trees' memory at once,
            // where dropping them node by node took a fifth of a large check (BENCHMARKS.md).
            std::mem::forget(results);
            ExitCode::from(if errors > 0 { 1 } else { 0 })
        }
        Command::Run {
            file,
            messages,
            json,
            trace,
            model,
            session,
            store,
            operator,
        } => {
            if messages.iter().any(|m| m.trim().is_empty()) {
                eprintln!("error: a --message is empty; say something (nothing was sent)");
                return ExitCode::from(2);
            }
            let program = match compile_file(&file) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let _traces = match traces(&model) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let options = run::RunOptions {
                messages,
                json,
                trace,
                model,
                session,
                store,
                operator: operator.filter(|o| !o.trim().is_empty()),
            };
            block_on(run::run(program, options), |result| match result {
                Ok(false) => ExitCode::SUCCESS,
                Ok(true) => ExitCode::from(1),
                Err(e) => finish(Err(e)),
            })
        }
        Command::Serve {
            file,
            addr,
            store,
            token,
            lease,
            grace,
            max_body,
            allowed_hosts,
            cors_origins,
            model,
        } => {
            let program = match compile_file(&file) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let _traces = match traces(&model) {
                Ok(t) => t,
                Err(code) => return code,
            };
            let seconds = |s: f64, flag: &str| {
                (s.is_finite() && s > 0.0 && s <= 86_400.0)
                    .then(|| std::time::Duration::from_secs_f64(s))
                    .ok_or_else(|| format!("--{flag} must be between 0 and 86400 seconds"))
            };
            let (lease, grace) = match (seconds(lease, "lease"), seconds(grace, "grace")) {
                (Ok(l), Ok(g)) => (l, g),
                (Err(e), _) | (_, Err(e)) => return finish(Err(e)),
            };
            let options = ladder_serve::ServeOptions {
                addr,
                store,
                token: token.filter(|t| !t.is_empty()),
                lease,
                grace,
                max_body,
                allowed_hosts,
                cors_origins,
                sweep_every: std::time::Duration::from_secs(1),
            };
            let metrics = Arc::new(ladder_serve::Metrics::default());
            let backend = Arc::new(ladder_serve::TimedBackend {
                inner: model.backend(),
                metrics: metrics.clone(),
            });
            let runtime = model.runtime(program, backend);
            block_on(
                async move {
                    let (runtime, servers) = mcp_cmd::connect(runtime).await?;
                    let served = ladder_serve::serve(runtime, metrics, options).await;
                    if let Some(servers) = servers {
                        servers.shutdown().await;
                    }
                    served
                },
                finish,
            )
        }
        Command::Sessions { command, store } => block_on(sessions::run(command, store), finish),
        Command::Mcp { command } => block_on(mcp_cmd::run(command), finish),
        Command::Test {
            files,
            model,
            repeat,
            noise,
            filter,
            junit,
            json,
            jobs,
            live_tools,
        } => {
            let _traces = match traces(&model) {
                Ok(t) => t,
                Err(code) => return code,
            };
            if let Some(n) = noise {
                if !(0.0..=1.0).contains(&n) {
                    eprintln!("error: --noise takes a level from 0 to 1, got {n}");
                    return ExitCode::from(2);
                }
            }
            let options = test_cmd::TestOptions {
                files,
                model,
                repeat,
                noise,
                filter,
                junit,
                json,
                jobs,
                live_tools,
            };
            block_on(test_cmd::run(options), |result| match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            })
        }
        Command::Fmt { files, check } => fmt::run(files, check),
        Command::Lsp => {
            let options = ladder_lsp::LspOptions {
                root: cli.root.clone(),
                max_file_bytes: cli.max_file_size,
            };
            block_on(ladder_lsp::serve_stdio(options), |()| ExitCode::SUCCESS)
        }
        Command::Graph { file, format } => match check_file(&file, &CheckOptions::default()) {
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", file.display());
                ExitCode::from(2)
            }
            Ok(checked) => match &checked.graph {
                // A ladder with errors gets its diagnostics, never a drawing of a wrong graph.
                Some(graph) if checked.error_count() == 0 => {
                    print!("{}", graph_render::render(graph, format));
                    ExitCode::SUCCESS
                }
                _ => {
                    eprint!("{}", report::human(std::slice::from_ref(&checked), false));
                    ExitCode::from(1)
                }
            },
        },
    }
}
