//! The operator API: sessions waiting for a person, and what a person does with them (claim,
//! write to the user, release to a rung); the live event stream of a session; and the sweeper
//! that hands a session no one claimed within its human's `sla` to the human's `fallback`.

use crate::{body, error, ApiError, App};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use ladder_runtime::human::{self, Action, Refused};
use ladder_runtime::{Durable, Event, SessionState};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many sessions the handover list and the sweeper look at: the most recently updated ones.
pub(crate) const SCAN: u32 = 10_000;

/// Live events per session, for `GET /v1/sessions/{id}/events`: every event a turn or an
/// operator's action on this worker produces. (Events committed by another worker reach the
/// stream's reader through `GET /v1/sessions/{id}?events=true`.)
#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<HashMap<String, broadcast::Sender<Event>>>,
}

impl Hub {
    pub(crate) fn publish(&self, id: &str, event: &Event) {
        let mut sessions = self.sessions.lock().expect("hub lock");
        if let Some(tx) = sessions.get(id) {
            if tx.send(event.clone()).is_err() {
                // No one listens any more.
                sessions.remove(id);
            }
        }
    }

    fn subscribe(&self, id: &str) -> broadcast::Receiver<Event> {
        self.sessions
            .lock()
            .expect("hub lock")
            .entry(id.to_string())
            .or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }
}

/// `GET /v1/sessions/{id}/events`: the session's events as they happen, as SSE (the same JSON
/// as the turn's stream). The user's screen keeps this open to see what a person writes.
pub(crate) async fn live_events(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::check_id(&id)?;
    app.durable
        .store()
        .load(&id)
        .await?
        .ok_or_else(|| ladder_runtime::StoreError::NotFound(id.clone()))?;
    let rx = app.hub.subscribe(&id);
    let events = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                // A reader too slow for 256 events misses some; it can read the log.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .map(|event| {
        let value = serde_json::to_value(&event).unwrap_or_default();
        Ok::<_, Infallible>(
            SseEvent::default()
                .event(crate::event_type(&value))
                .data(value.to_string()),
        )
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct HandoverQuery {
    queue: Option<String>,
}

/// One waiting or claimed session.
fn handover(state: &SessionState, durable: &Durable, now_ms: i64) -> Option<serde_json::Value> {
    let hold = state.hold.as_ref()?;
    let def = durable.runtime().program().humans.get(&hold.human);
    let last_user = state
        .transcript
        .iter()
        .rev()
        .find(|e| e.by == "user")
        .and_then(|e| e.message.content.clone());
    Some(json!({
        "session": state.id,
        "human": hold.human,
        "queue": hold.queue,
        "waiting_seconds": (now_ms - hold.since_ms) as f64 / 1000.0,
        "since_ms": hold.since_ms,
        "sla_seconds": def.and_then(|h| h.sla_seconds),
        "deadline_ms": hold.deadline_ms,
        "claimed_by": hold.claimed_by,
        "release": def.map(|h| h.release.clone()).unwrap_or_default(),
        "last_user_message": last_user,
    }))
}

/// The sessions a person holds or should pick up, most recent first.
async fn holds(durable: &Durable) -> Result<Vec<SessionState>, ApiError> {
    let humans = &durable.runtime().program().humans;
    let store = durable.store();
    let mut found = Vec::new();
    for summary in store.list(SCAN).await? {
        if summary.ended || !humans.contains_key(&summary.current) {
            continue;
        }
        if let Some(stored) = store.load(&summary.id).await? {
            if stored.state.hold.is_some() {
                found.push(stored.state);
            }
        }
    }
    Ok(found)
}

/// `GET /v1/handovers?queue=Q`: waiting and claimed sessions, longest waiting first.
pub(crate) async fn handovers(
    State(app): State<App>,
    query: Result<Query<HandoverQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let now = human::now_ms();
    let mut list: Vec<serde_json::Value> = holds(&app.durable)
        .await?
        .iter()
        .filter(|s| {
            query
                .queue
                .as_ref()
                .is_none_or(|q| s.hold.as_ref().is_some_and(|h| &h.queue == q))
        })
        .filter_map(|s| handover(s, &app.durable, now))
        .collect();
    list.sort_by_key(|h| h["since_ms"].as_i64().unwrap_or(0));
    Ok(Json(json!({ "handovers": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claim {
    operator: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Message {
    text: String,
    /// Default: the operator who claimed the session.
    #[serde(default)]
    operator: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Release {
    to: String,
    #[serde(default)]
    note: Option<String>,
    /// The rung speaks at once, instead of on the user's next message.
    #[serde(default, rename = "continue")]
    resume: bool,
    /// Default: the operator who claimed the session.
    #[serde(default)]
    operator: Option<String>,
}

/// The operator who claimed session `id`, for a message or release that names none.
async fn claimer(app: &App, id: &str, given: Option<String>) -> Result<String, ApiError> {
    if let Some(operator) = given {
        return Ok(operator);
    }
    let state = app
        .durable
        .store()
        .load(id)
        .await?
        .ok_or_else(|| ladder_runtime::StoreError::NotFound(id.into()))?
        .state;
    state
        .hold
        .and_then(|h| h.claimed_by)
        .ok_or_else(|| refused(Refused::NotClaimed(id.to_string())))
}

fn refused(r: Refused) -> ApiError {
    let (status, kind) = match &r {
        Refused::NotWithPerson(_) | Refused::NotDue(_) => (StatusCode::CONFLICT, "not_with_person"),
        Refused::ClaimedByOther { .. } => (StatusCode::CONFLICT, "claimed_by_other"),
        Refused::NotClaimed(_) => (StatusCode::CONFLICT, "not_claimed"),
        Refused::NotReleasable { .. } => (StatusCode::BAD_REQUEST, "not_releasable"),
        Refused::NoSuchApproval(_) => (StatusCode::NOT_FOUND, "not_found"),
        Refused::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
    };
    error(status, kind, r.to_string())
}

/// Runs an action, publishes its events, answers them.
async fn act(app: &App, id: &str, action: Action) -> Result<Response, ApiError> {
    crate::check_id(id)?;
    let events = app.durable.operate(id, &action).await?.map_err(refused)?;
    for event in &events {
        app.metrics.observe(event);
        app.hub.publish(id, event);
    }
    Ok(Json(json!({ "events": events })).into_response())
}

/// `POST /v1/sessions/{id}/human/claim {"operator"}`
pub(crate) async fn claim(
    State(app): State<App>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: Claim = body(bytes, None)?;
    act(
        &app,
        &id,
        Action::Claim {
            operator: request.operator,
        },
    )
    .await
}

/// `POST /v1/sessions/{id}/human/messages {"text", "operator"?}`
pub(crate) async fn message(
    State(app): State<App>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: Message = body(bytes, None)?;
    let operator = claimer(&app, &id, request.operator).await?;
    act(
        &app,
        &id,
        Action::Message {
            operator,
            text: request.text,
        },
    )
    .await
}

/// `POST /v1/sessions/{id}/human/release {"to", "note"?, "operator"?}`
pub(crate) async fn release(
    State(app): State<App>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: Release = body(bytes, None)?;
    let operator = claimer(&app, &id, request.operator).await?;
    let action = Action::Release {
        operator,
        to: request.to,
        note: request.note,
    };
    if !request.resume {
        return act(&app, &id, action).await;
    }
    crate::check_id(&id)?;
    let mut all = app.durable.operate(&id, &action).await?.map_err(refused)?;
    for event in &all {
        app.metrics.observe(event);
        app.hub.publish(&id, event);
    }
    // The rung's words go to the user's live stream and the chat facade's next answer.
    let mut events = app.durable.resume(&id).await?;
    while let Some(event) = events.next().await {
        app.metrics.observe(&event);
        app.hub.publish(&id, &event);
        all.push(event);
    }
    Ok(Json(json!({ "events": all })).into_response())
}

/// How many of the most recently updated sessions `GET /v1/approvals` reads.
pub(crate) const APPROVAL_SCAN: u32 = 1_000;

/// `GET /v1/approvals`: tool calls waiting for a person, oldest first.
pub(crate) async fn approvals(State(app): State<App>) -> Result<Response, ApiError> {
    let store = app.durable.store();
    let mut list = Vec::new();
    for summary in store.list(APPROVAL_SCAN).await? {
        if summary.ended {
            continue;
        }
        let Some(stored) = store.load(&summary.id).await? else {
            continue;
        };
        if let Some(p) = stored.state.pending_approval {
            list.push(json!({
                "id": p.id, "session": summary.id, "agent": p.agent, "tool": p.tool,
                "arguments": p.arguments, "human": p.human, "requested_ms": p.requested_ms,
                "held_messages": p.held.len(),
            }));
        }
    }
    list.sort_by_key(|a| a["requested_ms"].as_i64().unwrap_or(0));
    Ok(Json(json!({ "approvals": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    approve: bool,
    operator: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/approvals/{id} {"approve", "operator", "note"?}`: the turn continues; its events
/// are the answer (and go to the session's live stream).
pub(crate) async fn decide(
    State(app): State<App>,
    Path(approval): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: Decision = body(bytes, None)?;
    // The id is the call's idempotency key, `SESSION-TURN-N`.
    let session = approval.rsplitn(3, '-').nth(2).unwrap_or("").to_string();
    crate::check_id(&session)?;
    let mut events = app
        .durable
        .decide(
            &session,
            &approval,
            request.approve,
            request.operator,
            request.note,
        )
        .await?
        .map_err(refused)?;
    let mut all = Vec::new();
    while let Some(event) = events.next().await {
        app.metrics.observe(&event);
        app.hub.publish(&session, &event);
        all.push(event);
    }
    Ok(Json(json!({ "session": session, "events": all })).into_response())
}

/// Hands every session whose claim SLA passed to its human's fallback; returns how many.
/// Another worker doing the same at once is harmless: the store's lease lets one through, and
/// the other finds the session no longer due.
pub(crate) async fn sweep(app: &App) -> usize {
    let Ok(states) = holds(&app.durable).await else {
        return 0;
    };
    let now = human::now_ms();
    let mut moved = 0;
    for state in states.iter().filter(|s| human::due(s, now)) {
        if let Ok(Ok(events)) = app.durable.operate(&state.id, &Action::Expire).await {
            moved += 1;
            for event in &events {
                app.metrics.observe(event);
                app.hub.publish(&state.id, event);
            }
        }
    }
    moved
}

/// Runs [`sweep`] every `every` for as long as the app lives; nothing at all when no human has
/// both an `sla` and a `fallback` (no session can ever be due).
pub(crate) fn sweeper(app: App, every: Duration) -> Arc<tokio::task::JoinHandle<()>> {
    let due_ever = app
        .durable
        .runtime()
        .program()
        .humans
        .values()
        .any(|h| h.sla_seconds.is_some() && h.fallback.is_some());
    Arc::new(tokio::spawn(async move {
        if !due_ever {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep(&app).await;
        }
    }))
}

/// The operator's messages since the user last wrote, when a person has (or had) the session:
/// the chat facade puts them before its answer (a chat client has no open stream to see them
/// arrive).
pub(crate) async fn unread(durable: &Durable, id: &str) -> Vec<Event> {
    let Ok(Some(stored)) = durable.store().load(id).await else {
        return Vec::new();
    };
    let humans = &durable.runtime().program().humans;
    let with_person = stored.state.hold.is_some()
        || stored.state.pending_approval.is_some()
        || stored
            .state
            .inbound
            .from
            .as_ref()
            .is_some_and(|f| humans.contains_key(f));
    if !with_person {
        return Vec::new();
    }
    let Ok(events) = durable.store().events(id).await else {
        return Vec::new();
    };
    // After the end of the user's last turn: what people and approved calls added since.
    let last_turn = events
        .iter()
        .rposition(|e| matches!(e, Event::TurnStarted { .. }))
        .unwrap_or(0);
    let since = events[last_turn..]
        .iter()
        .position(|e| matches!(e, Event::TurnEnded { .. }))
        .map_or(events.len(), |i| last_turn + i + 1);
    events[since..]
        .iter()
        // A person's words, and what a turn continued by an approval replied.
        .filter(|e| matches!(e, Event::HumanMessage { .. } | Event::Reply { .. }))
        .cloned()
        .collect()
}
