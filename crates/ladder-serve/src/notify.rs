//! Webhooks: when a session reaches a human whose block says `notify: env(URL_VAR)`, the server
//! POSTs JSON to that URL, signed with HMAC-SHA256 when `notify_secret: env(SECRET_VAR)` is set,
//! retried with backoff, on a task of its own: a failing receiver never holds up the session.
//!
//! Headers: `Idempotency-Key` (the same on every attempt of one notification), `X-Ladder-Timestamp`
//! (unix seconds) and `X-Ladder-Signature: sha256=HEX`, the HMAC of `TIMESTAMP.BODY` with the
//! secret, so that a receiver can check both the sender and the freshness.

use hmac::{Hmac, Mac};
use ladder_program::Human;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// How many times a notification is tried, and the first pause between tries (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// `sha256=HEX` of `timestamp.body` under `secret`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// What a receiver gets when session `session` reaches `human` (in turn `turn`).
pub(crate) fn payload(
    ladder: &str,
    session: &str,
    turn: u32,
    name: &str,
    human: &Human,
    from: &str,
) -> Value {
    json!({
        "type": "human_needed",
        "ladder": ladder,
        "session": session,
        "turn": turn,
        "human": name,
        "description": human.description,
        "queue": human.queue,
        "sla_seconds": human.sla_seconds,
        "from": from,
        "claim": format!("/v1/sessions/{session}/human/claim"),
    })
}

/// Sends `payload` to the human's `notify` URL in the background. Problems are reported on
/// stderr by the name of the environment variable, never with the URL or the secret.
pub(crate) fn send(http: reqwest::Client, human: &Human, key: String, payload: Value) {
    let Some(url_var) = human.notify.clone() else {
        return;
    };
    let Ok(url) = std::env::var(&url_var) else {
        crate::note(format_args!(
            "notify: ${url_var} is not set; no notification sent"
        ));
        return;
    };
    let secret = human
        .notify_secret
        .as_ref()
        .and_then(|v| std::env::var(v).ok());
    tokio::spawn(async move {
        let body = payload.to_string();
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut request = http
                .post(&url)
                .timeout(Duration::from_secs(10))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .header("x-ladder-timestamp", timestamp.to_string());
            if let Some(secret) = &secret {
                request = request.header(
                    "x-ladder-signature",
                    signature(secret.as_bytes(), timestamp, body.as_bytes()),
                );
            }
            match request.body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                    crate::note(format_args!(
                        "notify ${url_var}: the receiver refused the notification ({}); not retried",
                        r.status()
                    ));
                    return;
                }
                Ok(r) if attempt == ATTEMPTS => crate::note(format_args!(
                    "notify ${url_var}: gave up after {ATTEMPTS} attempts (last: {})",
                    r.status()
                )),
                Err(e) if attempt == ATTEMPTS => crate::note(format_args!(
                    "notify ${url_var}: gave up after {ATTEMPTS} attempts (last: {})",
                    e.without_url()
                )),
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    });
}
