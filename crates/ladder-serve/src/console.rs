//! The operator console at `/console`: one page, a script and a style sheet, embedded in the
//! binary (no CDN, no remote fonts; works offline). The page holds no data: it asks for the
//! server's token (kept in the tab's session storage) and reads everything through the same
//! token-protected API as any client. Also `GET /v1/ladder`, the map of rungs the console
//! draws, and `GET /v1/sessions`, the session list it searches.

use crate::{ApiError, App};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ladder_program::{Program, ScriptStep};
use serde::Deserialize;
use serde_json::{json, Value};

const PAGE: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Strict: the page runs only its own script and style, and talks only to this server.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// The rungs and the edges between them, for the console's map.
pub(crate) fn map(program: &Program) -> Value {
    let mut rungs = Vec::new();
    let edge = |to: &str, kind: &str| json!({"to": to, "kind": kind});
    for (name, agent) in &program.agents {
        let mut edges: Vec<Value> = agent
            .handoffs
            .iter()
            .map(|h| edge(&h.target, "handoff"))
            .collect();
        edges.extend(
            agent
                .escalations
                .iter()
                .map(|e| edge(&e.target, "escalate")),
        );
        edges.extend(agent.consults.iter().map(|c| edge(c, "consult")));
        edges.extend(agent.fallback.iter().map(|f| edge(f, "fallback")));
        edges.extend(
            agent
                .sla
                .iter()
                .filter_map(|s| s.otherwise.as_deref())
                .map(|f| edge(f, "fallback")),
        );
        rungs.push(json!({"name": name, "kind": "agent", "edges": edges}));
    }
    for (name, human) in &program.humans {
        let mut edges: Vec<Value> = human.release.iter().map(|r| edge(r, "release")).collect();
        edges.extend(human.fallback.iter().map(|f| edge(f, "unclaimed")));
        rungs.push(json!({
            "name": name, "kind": "human", "edges": edges,
            "queue": human.queue, "sla_seconds": human.sla_seconds,
            "description": human.description,
        }));
    }
    for (name, script) in &program.scripts {
        let edges: Vec<Value> = script
            .steps
            .iter()
            .filter_map(|s| match s {
                ScriptStep::Handoff { target } => Some(edge(target, "handoff")),
                _ => None,
            })
            .collect();
        rungs.push(json!({"name": name, "kind": "script", "edges": edges}));
    }
    json!({"name": program.name, "entry": program.entry, "rungs": rungs})
}

/// `GET /v1/ladder`
pub(crate) async fn ladder(State(app): State<App>) -> Json<Value> {
    Json(map(app.durable.runtime().program()))
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    /// At most this many (default 50, at most 1000).
    limit: Option<u32>,
    /// Skip this many first (the next page: `offset` + `limit`).
    offset: Option<u32>,
    /// Only ids that contain this.
    q: Option<String>,
}

/// `GET /v1/sessions?limit=N&q=TEXT`: the most recently updated sessions first.
pub(crate) async fn sessions(
    State(app): State<App>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let offset = query.offset.unwrap_or(0).min(crate::humans::SCAN);
    let store = app.durable.store();
    let list: Vec<_> = match &query.q {
        // A search looks further back than one page.
        Some(q) => store
            .list(crate::humans::SCAN)
            .await?
            .into_iter()
            .filter(|s| s.id.contains(q.as_str()))
            .skip(offset as usize)
            .take(limit as usize)
            .collect(),
        None => store
            .list(offset + limit)
            .await?
            .into_iter()
            .skip(offset as usize)
            .collect(),
    };
    let next = (list.len() == limit as usize).then_some(offset + limit);
    Ok(Json(json!({ "sessions": list, "next_offset": next })).into_response())
}

/// `DELETE /v1/sessions/{id}`: the session, its events and recorded tool calls; 409 while a
/// turn runs.
pub(crate) async fn delete(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    crate::check_id(&id)?;
    app.durable.store().delete(&id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
