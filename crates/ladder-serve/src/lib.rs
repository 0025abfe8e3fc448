//! A ladder over HTTP, with sessions in a store shared by any number of workers: what
//! `ladderc serve` runs, as a library (docs/serve.md).
//!
//! Routes: `POST /v1/sessions`, `POST /v1/sessions/{id}/messages` (the turn's events as SSE, the
//! same JSON as `run --json`), `GET /v1/sessions/{id}`, `GET /v1/sessions/{id}/events` (live),
//! the operator API (`GET /v1/handovers`, `POST /v1/sessions/{id}/human/{claim,messages,release}`),
//! `GET /healthz`, `GET /metrics` (Prometheus text), and an OpenAI-compatible
//! `POST /v1/chat/completions` facade.
//!
//! [`serve`] binds, serves and drains on SIGTERM; [`app`] is the same service without a socket,
//! for in-process tests and embedding in another axum server.

#![warn(missing_docs)]

mod console;
mod humans;
pub mod metrics;
pub mod notify;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use ladder_runtime::{Durable, Event, Runtime, StoreError};
pub use metrics::{Metrics, TimedBackend};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How to serve (the `ladderc serve` flags).
pub struct ServeOptions {
    /// Where to listen; anything but a loopback address needs a `token`.
    pub addr: SocketAddr,
    /// The store: a SQLite path or `sqlite:PATH`, or `postgres://...`.
    pub store: String,
    /// The bearer token every request must carry (none: loopback only).
    pub token: Option<String>,
    /// How long a worker's claim on a session lasts without renewal.
    pub lease: Duration,
    /// How long running turns may finish after SIGTERM.
    pub grace: Duration,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// `Host` names served besides the bound address (and `localhost` on loopback).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// How often to hand sessions no one claimed within their human's `sla` to its fallback.
    pub sweep_every: Duration,
}

/// What the HTTP layer needs besides the runtime, for [`app`].
pub struct AppOptions {
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    /// `Host` header values served (lower case); `None`: any.
    pub hosts: Option<Vec<String>>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// How often to hand sessions no one claimed within their human's `sla` to its fallback
    /// (`None`: never; the app's owner sweeps).
    pub sweep_every: Option<Duration>,
}

#[derive(Clone)]
struct App {
    durable: Durable,
    token: Option<Arc<str>>,
    metrics: Arc<Metrics>,
    ladder: Arc<str>,
    /// Every running turn holds a clone; shutdown waits until all are dropped.
    turns: mpsc::Sender<()>,
    /// `Host` header values served (lower case); `None`: any (a token guards the server).
    hosts: Option<Arc<Vec<String>>>,
    /// Live events per session.
    hub: Arc<humans::Hub>,
    /// For webhooks.
    http: reqwest::Client,
}

/// A failed request: answered with its status and `{"error": {"message", "type"}}` (the OpenAI
/// shape, so that OpenAI clients show the message too).
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        kind,
        message: message.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind}});
        (self.status, Json(body)).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError {
            status: r.status(),
            kind: "invalid_request",
            message: r.body_text(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            StoreError::Exists(_) => error(StatusCode::CONFLICT, "exists", e.to_string()),
            StoreError::Busy { .. } => error(
                StatusCode::CONFLICT,
                "session_busy",
                format!("{e}; send the message again when that turn has ended"),
            ),
            StoreError::LeaseLost(_) => error(StatusCode::CONFLICT, "lease_lost", e.to_string()),
            StoreError::OtherLadder { .. } => {
                error(StatusCode::CONFLICT, "other_ladder", e.to_string())
            }
            StoreError::Backend(m) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the session store failed: {m}"),
            ),
        }
    }
}

/// Parses a JSON body; every failure is a 4xx with a JSON error.
fn body<T: serde::de::DeserializeOwned>(
    bytes: Result<Bytes, BytesRejection>,
    empty: Option<T>,
) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|r| ApiError {
        status: r.status(),
        kind: "invalid_request",
        message: r.body_text(),
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = empty {
            return Ok(default);
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request body is not valid: {e}"),
        )
    })
}

/// The service over an already durable runtime, without a socket: the routes, the host guard
/// and the token check, as [`serve`] runs them. `metrics` must be the one the runtime's backend
/// reports to (a [`TimedBackend`]). Running turns are not waited for when it is dropped.
pub fn app(durable: Durable, metrics: Arc<Metrics>, options: AppOptions) -> Router {
    // Nobody waits on this channel: turns hold a sender only for `serve`'s drain.
    let (turns, _) = mpsc::channel::<()>(1);
    let app = App::new(durable, options.token, metrics, turns, options.hosts);
    if let Some(every) = options.sweep_every {
        let sweeper = humans::sweeper(app.clone(), every);
        // The sweeper stops with the last clone of the router (its state holds this guard).
        let guard = Arc::new(AbortOnDrop(sweeper));
        return router(app, options.max_body).layer(axum::Extension(guard));
    }
    router(app, options.max_body)
}

/// Stops the claim sweeper when the app is dropped.
struct AbortOnDrop(Arc<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl App {
    fn new(
        durable: Durable,
        token: Option<String>,
        metrics: Arc<Metrics>,
        turns: mpsc::Sender<()>,
        hosts: Option<Vec<String>>,
    ) -> Self {
        let ladder: Arc<str> = durable.runtime().program().name.as_str().into();
        App {
            durable,
            token: token.map(Into::into),
            metrics,
            ladder,
            turns,
            hosts: hosts.map(Arc::new),
            hub: Arc::default(),
            http: reqwest::Client::new(),
        }
    }
}

/// Serves `runtime` (whose backend reports to `metrics`, see [`TimedBackend`]) until SIGINT or
/// SIGTERM, then drains: no new requests, running turns get `grace` to finish.
pub async fn serve(
    runtime: Runtime,
    metrics: Arc<Metrics>,
    options: ServeOptions,
) -> Result<(), String> {
    if !options.addr.ip().is_loopback() && options.token.is_none() {
        return Err(format!(
            "refusing to listen on {} without a token: pass --token or set LADDER_TOKEN (only loopback addresses may go without)",
            options.addr
        ));
    }
    let store = ladder_store::open(&options.store)
        .await
        .map_err(|e| e.to_string())?;
    // Names this process in leases and 409 messages: host and pid.
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ladderc".into());
    let worker = format!("{host}:{}", std::process::id());
    let durable = runtime.durable(store, worker).lease(options.lease);
    let (turns, mut all_done) = mpsc::channel::<()>(1);
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let hosts = served_hosts(local, &options.allowed_hosts, options.token.is_some());
    let app = App::new(durable, options.token, metrics, turns, hosts);
    let sweeper = AbortOnDrop(humans::sweeper(app.clone(), options.sweep_every));
    let cors = cors_layer(&options.cors_origins)?;
    let mut router = router(app.clone(), options.max_body);
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    // Tests and scripts wait for this line.
    // The handlers are installed before the line that says the server is ready: a SIGTERM sent
    // right after it must drain, not kill.
    let signals = Signals::install();
    note(format_args!("listening on http://{local}"));
    // On SIGTERM: stop accepting, let running turns finish for up to `grace`, then exit. A turn
    // still running then stays open in the store (its begun turn and recorded tool calls); the
    // next worker to get the session finishes it once the lease runs out.
    let (stopping, stop) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    tokio::spawn(async move {
        signals.recv().await;
        let _ = stopping.send(Some(tokio::time::Instant::now()));
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>| async move {
        let at = rx.wait_for(Option::is_some).await.ok().and_then(|at| *at);
        match at {
            Some(at) => at,
            None => std::future::pending().await,
        }
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown({
            let stop = stop.clone();
            async move {
                stopped(stop).await;
            }
        })
        .into_future();
    let deadline = async {
        let at = stopped(stop.clone()).await;
        tokio::time::sleep_until(at + options.grace).await;
    };
    let drained = tokio::select! {
        served = server => {
            served.map_err(|e| e.to_string())?;
            true
        }
        () = deadline => false,
    };
    // Connections are closed; turns whose client went away may still be running.
    drop(sweeper);
    drop(app);
    let at = (*stop.borrow()).unwrap_or_else(tokio::time::Instant::now);
    let finished = drained
        && tokio::time::timeout_at(at + options.grace, all_done.recv())
            .await
            .is_ok();
    if finished {
        note(format_args!("stopped: every turn finished"));
    } else {
        note(format_args!(
            "stopped after {:?} with turns still running: they stay open in the store, and the next worker to get their session finishes them",
            options.grace
        ));
    }
    Ok(())
}

/// A line on stderr for the operator. Never fails: with stderr closed (`serve 2>&1 | head`),
/// `eprintln!` would panic, and a panic in the signal task would leave SIGTERM unanswered.
fn note(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn recv(mut self) {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        note(format_args!(
            "shutting down: no new requests; waiting for running turns"
        ));
    }
}

/// The `Host` values this server answers (DNS rebinding: a hostile page whose name resolves to
/// 127.0.0.1 sends its own name): the bound address, `localhost` and the loopback addresses on
/// loopback, and the `--allowed-host` names. Bound to every interface with a token and no
/// `--allowed-host`, any host (the token is the guard).
fn served_hosts(local: SocketAddr, allowed: &[String], token: bool) -> Option<Vec<String>> {
    let port = local.port();
    let mut hosts: Vec<String> = Vec::new();
    for a in allowed {
        let a = a.trim().to_ascii_lowercase();
        if a.rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !a.ends_with(']')
        {
            hosts.push(a);
        } else {
            hosts.push(format!("{a}:{port}"));
            hosts.push(a);
        }
    }
    if local.ip().is_unspecified() {
        if token && allowed.is_empty() {
            return None;
        }
    } else {
        hosts.push(local.to_string());
    }
    if local.ip().is_loopback() || local.ip().is_unspecified() {
        for h in ["localhost", "127.0.0.1", "[::1]"] {
            hosts.push(format!("{h}:{port}"));
        }
    }
    Some(hosts)
}

fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, String> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let list = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .map_err(|_| format!("--cors-origin `{o}` is not a valid origin"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                axum::http::HeaderName::from_static("x-ladder-session"),
            ])
            .expose_headers([axum::http::HeaderName::from_static("x-ladder-session")]),
    ))
}

/// Refuses cross-site use before anything else runs: a `Host` this server does not serve (421),
/// and a POST body that is not declared JSON (415): a web page can send `text/plain` or a form
/// to any address without a preflight, but not `application/json`.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Some(hosts) = &app.hosts {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if !host.as_ref().is_some_and(|h| hosts.contains(h)) {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                format!(
                    "this server does not answer for host `{}`; start it with --allowed-host to add a name",
                    host.unwrap_or_default()
                ),
            )
            .into_response();
        }
    }
    if request.method() == axum::http::Method::POST {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        let headers = request.headers();
        let empty = match headers.get(header::CONTENT_LENGTH) {
            Some(v) => v.to_str().is_ok_and(|v| v.trim() == "0"),
            None => headers.get(header::TRANSFER_ENCODING).is_none(),
        };
        if !json && !empty {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request bodies must be JSON, sent with `Content-Type: application/json`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

fn router(app: App, max_body: usize) -> Router {
    Router::new()
        .route("/v1/sessions", post(create_session).get(console::sessions))
        .route("/v1/ladder", get(console::ladder))
        .route(
            "/v1/sessions/{id}",
            get(get_session).delete(console::delete),
        )
        .route("/v1/sessions/{id}/messages", post(send_message))
        .route("/v1/sessions/{id}/events", get(humans::live_events))
        .route("/v1/sessions/{id}/human/claim", post(humans::claim))
        .route("/v1/sessions/{id}/human/messages", post(humans::message))
        .route("/v1/sessions/{id}/human/release", post(humans::release))
        .route("/v1/handovers", get(humans::handovers))
        .route("/v1/approvals", get(humans::approvals))
        .route("/v1/approvals/{id}", post(humans::decide))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth))
        .route("/healthz", get(healthz))
        // The console's page and assets hold no data; its requests carry the token.
        .route("/console", get(console::page))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Compares in time that does not depend on where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required: Authorization: Bearer <token>",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

async fn healthz(State(app): State<App>) -> Result<Response, ApiError> {
    app.durable.store().list(1).await?;
    Ok(Json(json!({"status": "ok"})).into_response())
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    id: Option<String>,
}

/// Session ids go into URLs, headers and logs: keep them plain.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a session id is 1 to 128 characters of letters, digits and - _ . :",
        ))
    }
}

async fn create_session(
    State(app): State<App>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: CreateSession = body(bytes, Some(CreateSession::default()))?;
    if let Some(id) = &request.id {
        check_id(id)?;
    }
    let id = app.durable.create(request.id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

#[derive(Deserialize, Default)]
struct GetSession {
    #[serde(default)]
    events: bool,
}

async fn get_session(
    State(app): State<App>,
    Path(id): Path<String>,
    query: Result<Query<GetSession>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let store = app.durable.store();
    let stored = if query.events {
        store.history(&id).await?
    } else {
        store
            .load(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))?
    };
    let s = stored.state;
    let mut body = json!({
        "id": s.id,
        "turn": s.turn,
        "current": s.current,
        "escalation_stack": s.escalation_stack,
        "vars": s.vars,
        "counters": s.counters,
        "paused_for": s.paused_for,
        "hold": s.hold,
        "ended": s.ended,
        "open_turn": stored.open_turn,
        "transcript": s.transcript,
    });
    if query.events {
        body["events"] = json!(s.events);
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    text: String,
}

#[derive(Deserialize, Default)]
struct SendQuery {
    /// `false`: answer with one JSON array of the events once the turn ends.
    stream: Option<bool>,
}

/// Runs a turn and returns its events on a channel that a task feeds to the end of the turn, so
/// that the turn is counted and committed even if the client goes away.
async fn start_turn(
    app: &App,
    id: &str,
    text: String,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    if text.trim().is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the message is empty",
        ));
    }
    let mut events = match app.durable.send(id, text).await {
        Ok(events) => events,
        Err(e) => {
            if matches!(e, StoreError::Busy { .. }) {
                app.metrics.busy();
            }
            return Err(e.into());
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = app.metrics.clone();
    let running = app.turns.clone();
    let hub = app.hub.clone();
    let id = id.to_string();
    let runtime = app.durable.runtime().clone();
    let http = app.http.clone();
    tokio::spawn(async move {
        // A human reached in this turn (not a message to one already waiting) is notified.
        let (mut turn, mut arrived) = (0, None::<String>);
        while let Some(event) = events.next().await {
            metrics.observe(&event);
            hub.publish(&id, &event);
            match &event {
                Event::TurnStarted { turn: t, .. } => turn = *t,
                Event::AgentActive { agent, kind } if kind == "human" => {
                    arrived = Some(agent.clone())
                }
                Event::HumanNeeded { human, from, .. } if arrived.as_ref() == Some(human) => {
                    let program = runtime.program();
                    if let Some(def) = program.humans.get(human) {
                        let payload = notify::payload(&program.name, &id, turn, human, def, from);
                        notify::send(http.clone(), def, format!("{id}:{turn}:{human}"), payload);
                    }
                }
                _ => {}
            }
            let _ = tx.send(event);
        }
        drop(running);
    });
    Ok(rx)
}

fn events_stream(rx: mpsc::UnboundedReceiver<Event>) -> impl Stream<Item = Event> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

fn event_type(event: &Value) -> String {
    event["type"].as_str().unwrap_or("event").to_string()
}

async fn send_message(
    State(app): State<App>,
    Path(id): Path<String>,
    query: Result<Query<SendQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let request: SendMessage = body(bytes, None)?;
    let rx = start_turn(&app, &id, request.text).await?;
    if query.stream == Some(false) {
        let events: Vec<Event> = events_stream(rx).collect().await;
        return Ok(Json(events).into_response());
    }
    let sse = events_stream(rx).map(|event| {
        let value = serde_json::to_value(&event).unwrap_or(Value::Null);
        Ok::<_, Infallible>(
            SseEvent::default()
                .event(event_type(&value))
                .data(value.to_string()),
        )
    });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct ChatCompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatCompletionMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// What the caller of the chat endpoint reads, from a turn's events: model text token by token
/// as it streams, script lines, `collect` questions and the hand-over to a person as text, and
/// an error only when nothing else was said.
#[derive(Default)]
struct ChatText {
    /// The agent whose text is streaming, and what it streamed so far.
    streaming: Option<(String, String)>,
    wrote: bool,
    told_human: bool,
    heard_human: bool,
    usage: Option<Value>,
}

impl ChatText {
    /// The text an event adds to the answer, if any.
    fn piece(&mut self, event: &Event) -> Option<String> {
        let text = match event {
            Event::TextDelta { agent, text } => {
                let sep = match &mut self.streaming {
                    Some((a, so_far)) if a == agent => {
                        so_far.push_str(text);
                        ""
                    }
                    _ => {
                        self.streaming = Some((agent.clone(), text.clone()));
                        if self.wrote {
                            "\n\n"
                        } else {
                            ""
                        }
                    }
                };
                format!("{sep}{text}")
            }
            Event::Reply { agent, text } => match self.streaming.take() {
                // Already streamed: only what the stream did not carry.
                Some((a, so_far)) if &a == agent && text.starts_with(&so_far) => {
                    text[so_far.len()..].to_string()
                }
                _ => self.separated(text),
            },
            // Streamed chunks cannot be taken back: what follows starts a new paragraph (the
            // non-streamed answer drops the withdrawn text).
            Event::Withdrawn { .. } => {
                self.streaming = None;
                return None;
            }
            Event::Collect { question, var, .. } => {
                let q = question
                    .clone()
                    .unwrap_or_else(|| format!("Please give your {}.", var.replace('_', " ")));
                self.separated(&q)
            }
            // What a person wrote since the user's last message.
            Event::HumanMessage { text, .. } => {
                self.heard_human = true;
                self.separated(text)
            }
            Event::HumanNeeded {
                human,
                handover,
                claimed_by,
                ..
            } if !self.told_human => {
                self.told_human = true;
                let line = match (claimed_by, handover) {
                    // The person has the conversation: their answers are the reply.
                    (Some(_), _) if self.heard_human => return None,
                    (Some(by), _) => format!("{by} has your message and will answer here."),
                    (None, Some(line)) => line.clone(),
                    (None, None) => format!(
                        "A person ({}) will take over this conversation.",
                        human.replace('_', " ")
                    ),
                };
                self.separated(&line)
            }
            Event::ApprovalRequested { human, tool, .. } if !self.told_human => {
                self.told_human = true;
                self.separated(&format!(
                    "This needs the approval of a person ({}) before `{tool}` can go ahead; you will hear back here.",
                    human.replace('_', " ")
                ))
            }
            Event::Error { message, .. } if !self.wrote => format!("[error: {message}]"),
            Event::TurnEnded { usage, .. } => {
                self.usage = Some(json!({
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
                }));
                return None;
            }
            _ => return None,
        };
        if text.is_empty() {
            return None;
        }
        self.wrote = true;
        Some(text)
    }

    fn separated(&mut self, text: &str) -> String {
        self.streaming = None;
        if self.wrote {
            format!("\n\n{text}")
        } else {
            text.to_string()
        }
    }
}

#[derive(Deserialize)]
struct ChatCompletionMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// The text of a message: a string, or the text parts of a content array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `GET /v1/models`: the served ladder, as the one model of this endpoint (chat front ends ask
/// for the list before anything else).
async fn models(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": &*app.ladder, "object": "model", "created": 0, "owned_by": "ladderc"}],
    }))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The OpenAI-compatible facade: the session is named by the `X-Ladder-Session` header or the
/// `user` field (created on first use); without either, each request opens a new session, whose
/// id comes back in `X-Ladder-Session`. The last user message is the turn's input; the replies of
/// the turn are the answer.
async fn chat_completions(
    State(app): State<App>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ChatCompletionRequest = body(bytes, None)?;
    let Some(text) = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| content_text(&m.content))
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`messages` has no user message",
        ));
    };
    let named = headers
        .get("x-ladder-session")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or(request.user);
    let id = match named {
        Some(id) => {
            check_id(&id)?;
            app.durable.open(id).await?
        }
        None => app.durable.create(None).await?,
    };
    // A chat client has no open stream: what a person wrote since its last message comes first.
    let unread = humans::unread(&app.durable, &id).await;
    let rx = start_turn(&app, &id, text).await?;
    let model = request.model.unwrap_or_else(|| app.ladder.to_string());
    let completion_id = format!("chatcmpl-{id}-{:08x}", fastrand::u32(..));
    let created = unix_now();
    let session_header = HeaderValue::from_str(&id).ok();
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let mut response = if request.stream {
        let chunk = {
            let (completion_id, model) = (completion_id.clone(), model.clone());
            move |choices: Value, usage: Option<Value>| {
                let mut body = json!({
                    "id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": model, "system_fingerprint": null, "choices": choices,
                });
                if let Some(u) = usage {
                    body["usage"] = u;
                }
                Ok::<_, Infallible>(SseEvent::default().data(body.to_string()))
            }
        };
        let delta = |d: Value, finish: Option<&str>| json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": finish}]);
        let first = chunk.clone()(
            delta(json!({"role": "assistant", "content": ""}), None),
            None,
        );
        let mut text = ChatText::default();
        let body = stream::iter(unread)
            .chain(events_stream(rx))
            .flat_map(move |event| {
                let mut out = Vec::new();
                if let Some(piece) = text.piece(&event) {
                    out.push(chunk(delta(json!({ "content": piece }), None), None));
                }
                if let Event::TurnEnded { .. } = event {
                    out.push(chunk(delta(json!({}), Some("stop")), None));
                    if include_usage {
                        out.push(chunk(json!([]), text.usage.clone()));
                    }
                }
                stream::iter(out)
            });
        let done = stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
        Sse::new(stream::once(async { first }).chain(body).chain(done)).into_response()
    } else {
        let mut events = unread;
        events.extend(events_stream(rx).collect::<Vec<Event>>().await);
        let mut text = ChatText::default();
        let mut content = String::new();
        let mut errors = Vec::new();
        let mut agent = None;
        for event in &events {
            if let Event::Withdrawn { text: gone, .. } = event {
                if let Some(at) = content.rfind(gone.as_str()) {
                    content.truncate(at);
                    content.truncate(content.trim_end().len());
                    text.wrote = !content.is_empty();
                }
            }
            if let Some(piece) = text.piece(event) {
                content.push_str(&piece);
            }
            match event {
                Event::Reply { agent: a, .. } => agent = Some(a.clone()),
                Event::Error { message, .. } => errors.push(message.clone()),
                _ => {}
            }
        }
        let answered = events.iter().any(|e| {
            matches!(
                e,
                Event::Reply { .. }
                    | Event::Collect { .. }
                    | Event::HumanNeeded { .. }
                    | Event::ApprovalRequested { .. }
            )
        });
        if !answered && !errors.is_empty() {
            return Err(error(
                StatusCode::BAD_GATEWAY,
                "ladder_error",
                errors.join("; "),
            ));
        }
        let usage = text.usage.unwrap_or_else(
            || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        );
        Json(json!({
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage,
            "ladder": {"session": id, "agent": agent, "events": events},
        }))
        .into_response()
    };
    if let Some(v) = session_header {
        response.headers_mut().insert("x-ladder-session", v);
    }
    Ok(response)
}
