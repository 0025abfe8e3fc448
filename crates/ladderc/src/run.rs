//! `ladderc run`: a conversation with a ladder, interactive or scripted.

use ladder_llm::{Anthropic, OpenAi, Providers, Simulator};
use ladder_runtime::human::{Action, Refused};
use ladder_runtime::{
    Backend, Durable, Event, EventStream, Program, Runtime, Session, SessionState,
};
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendChoice {
    Sim,
    Openai,
}

/// Which model answers, and what a run may do: the flags `run`, `test` and `serve` share.
#[derive(clap::Args, Clone)]
pub(crate) struct ModelArgs {
    /// `sim` (offline) or `openai` (any OpenAI-compatible endpoint). Default: openai if an
    /// endpoint is configured, else sim.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Endpoint, e.g. http://127.0.0.1:11434/v1 (default: OPENAI_BASE_URL).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Use this model name for every agent (e.g. a local model).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Prices of the `--model` model, dollars per million tokens: input/output[/cached input],
    /// e.g. `0/0` for a local model or `0.15/0.60/0.075`. Without it, its calls cost 0.
    #[arg(long, value_name = "IN/OUT[/CACHED]", requires = "model", value_parser = parse_prices)]
    pub prices: Option<ladder_runtime::Prices>,
    /// Send this temperature with every request (default: the model's `temperature`, else 0
    /// for routers and 0.2 for other agents).
    #[arg(long, value_name = "T", value_parser = parse_temperature)]
    pub temperature: Option<f64>,
    /// Allow `exec` tools to start local programs.
    #[arg(long)]
    pub allow_exec: bool,
    /// Continue stored sessions that another ladder (or another version of this one) started.
    #[arg(long)]
    pub migrate: bool,
    /// Export OpenTelemetry traces over OTLP/HTTP to URL (a traces endpoint, e.g.
    /// http://127.0.0.1:4318/v1/traces); without URL, to OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,
}

impl ModelArgs {
    /// The backend these flags choose.
    pub(crate) fn backend(&self) -> Arc<dyn Backend> {
        backend(self.backend, self.base_url.clone())
    }

    /// A runtime for `program` on `backend`, with these permissions and model.
    pub(crate) fn runtime(&self, program: Program, backend: Arc<dyn Backend>) -> Runtime {
        Runtime::new(program)
            .backend_arc(backend)
            .allow_exec(self.allow_exec)
            .migrate(self.migrate)
            .model_override(self.model.clone())
            .prices_override(self.prices)
            .temperature_override(self.temperature)
    }
}

fn parse_prices(text: &str) -> Result<ladder_runtime::Prices, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let number = |s: &str| -> Result<f64, String> {
        s.trim()
            .trim_start_matches('$')
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("`{s}` is not a price (dollars per million tokens, >= 0)"))
    };
    match parts.as_slice() {
        [input, output] => Ok(ladder_runtime::Prices {
            input_per_mtok: number(input)?,
            output_per_mtok: number(output)?,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }),
        [input, output, cached] => Ok(ladder_runtime::Prices {
            input_per_mtok: number(input)?,
            output_per_mtok: number(output)?,
            cached_input_per_mtok: Some(number(cached)?),
            cache_write_per_mtok: None,
        }),
        _ => Err("expected IN/OUT or IN/OUT/CACHED, e.g. 0.15/0.60".into()),
    }
}

fn parse_temperature(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|t| (0.0..=2.0).contains(t))
        .ok_or_else(|| format!("`{text}` is not a temperature between 0 and 2"))
}

pub(crate) struct RunOptions {
    pub messages: Vec<String>,
    pub json: bool,
    pub trace: Option<PathBuf>,
    pub model: ModelArgs,
    pub session: Option<String>,
    pub store: Option<String>,
    pub operator: Option<String>,
}

/// Where the conversation lives: in memory for this run, or in a store across runs.
enum Conversation {
    Memory(Session),
    Stored { durable: Durable, id: String },
}

impl Conversation {
    async fn open(runtime: Runtime, options: &RunOptions) -> Result<Self, String> {
        if options.session.is_none() && options.store.is_none() {
            return Ok(Conversation::Memory(runtime.session()));
        }
        let url = options
            .store
            .clone()
            .unwrap_or_else(|| ladder_store::DEFAULT_SQLITE_PATH.to_string());
        let store = ladder_store::open(&url).await.map_err(|e| e.to_string())?;
        let durable = runtime.durable(store, format!("ladderc-run:{}", std::process::id()));
        let id = match options.session.clone() {
            Some(id) => durable.open(id).await,
            None => durable.create(None).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(Conversation::Stored { durable, id })
    }

    async fn send(&self, text: String) -> Result<EventStream, String> {
        match self {
            Conversation::Memory(session) => Ok(session.send(text)),
            Conversation::Stored { durable, id } => {
                durable.send(id, text).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn operate(&self, action: &Action) -> Result<Result<Vec<Event>, Refused>, String> {
        match self {
            Conversation::Memory(session) => Ok(session.operate(action).await),
            Conversation::Stored { durable, id } => {
                durable.operate(id, action).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn decide(
        &self,
        approval: &str,
        approved: bool,
        operator: String,
        note: Option<String>,
    ) -> Result<Result<EventStream, Refused>, String> {
        match self {
            Conversation::Memory(session) => {
                Ok(session.decide(approval, approved, operator, note).await)
            }
            Conversation::Stored { durable, id } => durable
                .decide(id, approval, approved, operator, note)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    async fn resume(&self) -> Result<EventStream, String> {
        match self {
            Conversation::Memory(session) => Ok(session.resume()),
            Conversation::Stored { durable, id } => {
                durable.resume(id).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn state(&self) -> Result<SessionState, String> {
        match self {
            Conversation::Memory(session) => Ok(session.state().await),
            Conversation::Stored { durable, id } => {
                durable.state(id).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// Picks the backend: the flag, else OpenAI if `OPENAI_BASE_URL`/`OPENAI_API_KEY` or
/// `--base-url` are set, else the simulator (with a notice saying how to configure a real one).
fn backend(choice: Option<BackendChoice>, base_url: Option<String>) -> Arc<dyn Backend> {
    let configured = base_url.map(|url| OpenAi::new(url, std::env::var("OPENAI_API_KEY").ok()));
    // Models with `provider: anthropic` speak the Messages API (ANTHROPIC_BASE_URL,
    // ANTHROPIC_API_KEY); every other provider speaks OpenAI's chat completions.
    let providers = |openai: OpenAi| -> Arc<dyn Backend> {
        Arc::new(Providers {
            openai,
            anthropic: Anthropic::from_env(),
        })
    };
    let anthropic_key = std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.is_empty());
    match choice {
        Some(BackendChoice::Sim) => Arc::new(Simulator),
        Some(BackendChoice::Openai) => providers(
            configured
                .or_else(OpenAi::from_env)
                .unwrap_or_else(|| OpenAi::new("https://api.openai.com/v1", None)),
        ),
        None => match configured.or_else(OpenAi::from_env) {
            Some(b) => providers(b),
            None if anthropic_key => providers(OpenAi::new("https://api.openai.com/v1", None)),
            None => {
                eprintln!("note: no model endpoint configured, using the offline simulator; set OPENAI_BASE_URL and OPENAI_API_KEY (or --base-url), or ANTHROPIC_API_KEY, to talk to a real model");
                Arc::new(Simulator)
            }
        },
    }
}

fn print_event(event: &Event, speaking: &mut Option<String>, out: &mut impl Write) {
    let end_line = |speaking: &mut Option<String>, out: &mut dyn Write| {
        if speaking.take().is_some() {
            let _ = writeln!(out);
        }
    };
    match event {
        Event::TextDelta { agent, text } => {
            if speaking.as_deref() != Some(agent) {
                end_line(speaking, out);
                let _ = write!(out, "[{agent}] ");
                *speaking = Some(agent.clone());
            }
            let _ = write!(out, "{text}");
        }
        Event::Reply { agent, text } => {
            // Agents stream their replies as deltas; scripts (and non-streaming answers) do not.
            if speaking.as_deref() != Some(agent) {
                end_line(speaking, out);
                let _ = writeln!(out, "[{agent}] {text}");
            } else {
                end_line(speaking, out);
            }
        }
        Event::Handoff {
            from, to, intent, ..
        } => {
            end_line(speaking, out);
            match intent {
                Some(i) => {
                    let _ = writeln!(out, "  -> handoff {from} -> {to} (intent {i})");
                }
                None => {
                    let _ = writeln!(out, "  -> handoff {from} -> {to}");
                }
            }
        }
        Event::Returned { from, to, summary } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  <- {from} returns to {to}: {summary}");
        }
        Event::Escalation { from, to, reason } => {
            end_line(speaking, out);
            let _ = writeln!(
                out,
                "  ^ escalation {from} -> {to}{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        Event::Consult { from, to, .. } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  ~ {from} consults {to}");
        }
        Event::ToolCall {
            agent,
            tool,
            arguments,
            ..
        } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  . {agent} calls {tool}({arguments})");
        }
        Event::ToolResult {
            tool,
            ok: false,
            result,
            ..
        } => {
            let _ = writeln!(out, "  ! {tool} failed: {result}");
        }
        Event::CeilingHit {
            agent,
            ceiling,
            limit,
        } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  ! ceiling {ceiling} = {limit} hit in {agent}");
        }
        Event::Correction { agent, reason, .. } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  ! {agent} corrected: {reason}");
        }
        Event::Fallback { from, to, reason } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  -> fallback {from} -> {to} ({reason})");
        }
        Event::HumanNeeded {
            human,
            from,
            queue,
            handover,
            claimed_by,
            ..
        } => {
            end_line(speaking, out);
            if let Some(line) = handover {
                let _ = writeln!(out, "[{human}] {line}");
            }
            let _ = match (claimed_by, queue) {
                (Some(by), _) => writeln!(out, "  * with a person: {human} ({by})"),
                (None, Some(q)) => writeln!(
                    out,
                    "  * waiting for a person: {human} in queue {q} (from {from})"
                ),
                (None, None) => writeln!(out, "  * waiting for a person: {human} (from {from})"),
            };
        }
        Event::HumanClaimed { human, operator } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  * {operator} ({human}) took the conversation");
        }
        Event::HumanMessage {
            human,
            operator,
            text,
        } => {
            end_line(speaking, out);
            let _ = writeln!(out, "[{human}: {operator}] {text}");
        }
        Event::HumanReleased {
            human,
            operator,
            to,
            ..
        } => {
            end_line(speaking, out);
            let _ = writeln!(
                out,
                "  -> {operator} ({human}) handed the conversation to {to}"
            );
        }
        Event::HumanUnclaimed {
            human,
            to,
            waited_seconds,
        } => {
            end_line(speaking, out);
            let _ = writeln!(
                out,
                "  -> no one from {human} was free after {waited_seconds:.0}s: {to} takes over"
            );
        }
        Event::Withdrawn { agent, .. } => {
            end_line(speaking, out);
            let _ = writeln!(
                out,
                "  ! withdrawn: the text above from {agent} was cut off and is not its answer"
            );
        }
        Event::Collect {
            script,
            var,
            question,
        } => {
            end_line(speaking, out);
            let q = question
                .clone()
                .unwrap_or_else(|| format!("Please give your {}.", var.replace('_', " ")));
            let _ = writeln!(out, "[{script}] {q}");
        }
        Event::SessionEnded { by } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  * session ended by {by}");
        }
        Event::Error { agent, message } => {
            end_line(speaking, out);
            let _ = writeln!(out, "  ! error in {agent}: {message}");
        }
        Event::TurnEnded { .. } => end_line(speaking, out),
        _ => {}
    }
}

const HELP: &str = "commands:
  /help   this list
  /quit   leave (also /exit, Ctrl-D)
anything else is a message to the ladder; Up and Down recall earlier lines, Ctrl-R searches them";

/// Where interactive lines come from: a line editor with history on a terminal, plain lines
/// otherwise (a pipe, a file).
enum Input {
    Editor(Box<rustyline::DefaultEditor>),
    Lines(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Input {
    fn open() -> Self {
        if std::io::stdin().is_terminal() {
            if let Ok(editor) = rustyline::DefaultEditor::new() {
                return Input::Editor(Box::new(editor));
            }
        }
        Input::Lines(std::io::stdin().lock().lines())
    }

    /// The next line; `None` at the end of input.
    fn line(&mut self) -> Option<String> {
        self.line_after("> ")
    }

    /// The next line, after `prompt` on a terminal.
    fn line_after(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor(editor) => loop {
                // The editor blocks; the runtime's other threads keep running.
                let read = tokio::task::block_in_place(|| editor.readline(prompt));
                match read {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    // Ctrl-C clears the line, as in a shell.
                    Err(rustyline::error::ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            Input::Lines(lines) => lines.next().and_then(Result::ok),
        }
    }
}

struct TurnSummary {
    turn: u32,
    llm_calls: u32,
    tool_calls: u32,
    tokens: u64,
    cost: f64,
    latency_ms: u64,
}

/// Holds the conversation; `Ok(true)` when a turn ended in an `error` event.
pub(crate) async fn run(program: Program, options: RunOptions) -> Result<bool, String> {
    let banner = format!(
        "ladder `{}`, entry `{}`; type a message, /help for commands, /quit (or Ctrl-D) to leave",
        program.name, program.entry
    );
    let backend = options.model.backend();
    let backend_name = backend.name().to_string();
    let runtime = options.model.runtime(program, backend);
    let (runtime, mcp) = crate::mcp_cmd::connect(runtime).await?;
    // The servers stop when the last connection is dropped, at the end of the conversation.
    let _mcp = mcp;
    let conversation = Conversation::open(runtime, &options).await?;
    let trace = match &options.trace {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let interactive = options.messages.is_empty();
    let mut input = if interactive {
        let _ = writeln!(
            std::io::stderr(),
            "{banner} (model backend: {backend_name})"
        );
        Some(Input::open())
    } else {
        None
    };
    let mut scripted = options.messages.clone().into_iter();
    let mut shown = Shown {
        json: options.json,
        trace,
        visited: BTreeSet::new(),
        turns: Vec::new(),
        failed_turns: 0,
    };
    loop {
        let text = match input.as_mut() {
            Some(input) => match input.line() {
                None => break,
                Some(line) => match line.trim() {
                    "" => continue,
                    "/quit" | "/exit" => break,
                    "/help" => {
                        let _ = writeln!(std::io::stderr(), "{HELP}");
                        continue;
                    }
                    command if command.starts_with('/') && !command.contains(' ') => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "unknown command `{command}`; /help lists them"
                        );
                        continue;
                    }
                    _ => line,
                },
            },
            None => match scripted.next() {
                Some(t) => t,
                None => break,
            },
        };
        let stream = conversation.send(text).await?;
        shown.drain(stream).await?;
        if let Some(operator) = &options.operator {
            person(
                &conversation,
                operator,
                &mut input,
                &mut scripted,
                &mut shown,
            )
            .await?;
        }
    }
    let Shown {
        trace,
        visited,
        turns,
        failed_turns,
        ..
    } = shown;
    if let Some(mut t) = trace {
        t.flush().map_err(|e| e.to_string())?;
    }
    // The summary goes to stderr so that `--json` output stays one event per line.
    let state = conversation.state().await?;
    if let Conversation::Stored { id, .. } = &conversation {
        eprintln!("session: {id} (continue it with --session {id})");
    }
    let c = &state.counters;
    eprintln!(
        "summary: {} turns; agents visited: {}; {} LLM calls, {} tool calls, {} handoffs, {} escalations; {} tokens; cost ${:.6}",
        c.turns,
        visited.iter().cloned().collect::<Vec<_>>().join(", "),
        c.llm_calls,
        c.tool_calls,
        c.handoffs,
        c.escalations,
        c.prompt_tokens + c.completion_tokens,
        c.cost
    );
    for t in &turns {
        eprintln!(
            "  turn {}: {} ms, {} LLM calls, {} tool calls, {} tokens, ${:.6}",
            t.turn, t.latency_ms, t.llm_calls, t.tool_calls, t.tokens, t.cost
        );
    }
    if failed_turns > 0 {
        eprintln!("error: {failed_turns} turn(s) ended in an error (exit 1)");
    }
    Ok(failed_turns > 0)
}

/// Where a run's events go: the terminal (or JSON lines), the trace file, and the summary.
struct Shown {
    json: bool,
    trace: Option<std::io::BufWriter<std::fs::File>>,
    visited: BTreeSet<String>,
    turns: Vec<TurnSummary>,
    failed_turns: u32,
}

impl Shown {
    /// Shows a turn's events (or an operator's) as they arrive.
    async fn drain(&mut self, mut stream: EventStream) -> Result<(), String> {
        let mut speaking = None;
        let stdout = std::io::stdout();
        while let Some(event) = stream.next().await {
            self.show(&event, &mut speaking, &stdout)?;
        }
        Ok(())
    }

    fn show(
        &mut self,
        event: &Event,
        speaking: &mut Option<String>,
        stdout: &std::io::Stdout,
    ) -> Result<(), String> {
        let mut out = stdout.lock();
        if self.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(event).map_err(|e| e.to_string())?
            );
        } else {
            print_event(event, speaking, &mut out);
        }
        let _ = out.flush();
        if let Some(t) = self.trace.as_mut() {
            writeln!(
                t,
                "{}",
                serde_json::to_string(event).map_err(|e| e.to_string())?
            )
            .map_err(|e| e.to_string())?;
        }
        if let Event::AgentActive { agent, .. } = event {
            self.visited.insert(agent.clone());
        }
        if matches!(event, Event::Error { .. }) {
            self.failed_turns += 1;
        }
        if let Event::TurnEnded {
            turn,
            usage,
            llm_calls,
            tool_calls,
            cost,
            latency_ms,
            ..
        } = event
        {
            self.turns.push(TurnSummary {
                turn: *turn,
                llm_calls: *llm_calls,
                tool_calls: *tool_calls,
                tokens: usage.prompt_tokens + usage.completion_tokens,
                cost: *cost,
                latency_ms: *latency_ms,
            });
        }
        Ok(())
    }
}

/// `--operator`: while a person has the session or a tool call waits for approval, the next
/// lines are the person's, until `/wait` (back to the caller), a release, or a decision.
async fn person(
    conversation: &Conversation,
    operator: &str,
    input: &mut Option<Input>,
    scripted: &mut std::vec::IntoIter<String>,
    shown: &mut Shown,
) -> Result<(), String> {
    loop {
        let state = conversation.state().await?;
        let (approval, hold) = (state.pending_approval.clone(), state.hold.clone());
        let who = match (&approval, &hold) {
            (Some(a), _) => format!("{} (approve `{}`?)", a.human, a.tool),
            (None, Some(h)) => h.human.clone(),
            (None, None) => return Ok(()),
        };
        let line = match input.as_mut() {
            Some(input) => input.line_after(&format!("[{who} as {operator}] > ")),
            None => scripted.next(),
        };
        let Some(line) = line else { return Ok(()) };
        let line = line.trim();
        let (command, rest) = match line.split_once(' ') {
            Some((c, r)) if c.starts_with('/') => (c, r.trim()),
            _ if line.starts_with('/') => (line, ""),
            _ => ("", line),
        };
        let note = (!rest.is_empty()).then(|| rest.to_string());
        let refused = |r: Refused| eprintln!("refused: {r}");
        match (command, &approval, &hold) {
            ("/wait", _, _) => return Ok(()),
            ("", _, _) if rest.is_empty() => continue,
            ("/approve" | "/reject", Some(a), _) => {
                match conversation
                    .decide(&a.id, command == "/approve", operator.to_string(), note)
                    .await?
                {
                    Ok(stream) => shown.drain(stream).await?,
                    Err(r) => refused(r),
                }
                return Ok(());
            }
            ("", None, Some(h)) | ("/release" | "/continue", None, Some(h)) => {
                if h.claimed_by.as_deref() != Some(operator) {
                    let claim = Action::Claim {
                        operator: operator.to_string(),
                    };
                    match conversation.operate(&claim).await? {
                        Ok(events) => show_all(shown, &events)?,
                        Err(r) => {
                            refused(r);
                            return Ok(());
                        }
                    }
                }
                if command.is_empty() {
                    let message = Action::Message {
                        operator: operator.to_string(),
                        text: rest.to_string(),
                    };
                    match conversation.operate(&message).await? {
                        Ok(events) => show_all(shown, &events)?,
                        Err(r) => refused(r),
                    }
                    continue;
                }
                let (to, note) = match rest.split_once(' ') {
                    Some((to, note)) => (to.to_string(), Some(note.trim().to_string())),
                    None => (rest.to_string(), None),
                };
                let release = Action::Release {
                    operator: operator.to_string(),
                    to,
                    note,
                };
                match conversation.operate(&release).await? {
                    Ok(events) => {
                        show_all(shown, &events)?;
                        if command == "/continue" {
                            let stream = conversation.resume().await?;
                            shown.drain(stream).await?;
                        }
                        return Ok(());
                    }
                    Err(r) => refused(r),
                }
            }
            _ => eprintln!(
                "the person's commands: text to the caller, /release RUNG [note], /continue RUNG [note], /approve [note], /reject [note], /wait"
            ),
        }
    }
}

fn show_all(shown: &mut Shown, events: &[Event]) -> Result<(), String> {
    let mut speaking = None;
    let stdout = std::io::stdout();
    for event in events {
        shown.show(event, &mut speaking, &stdout)?;
    }
    Ok(())
}
