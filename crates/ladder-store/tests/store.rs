//! The store contract, run against a real SQLite file and a real PostgreSQL server; and durable
//! turns end to end through the runtime, the real `OpenAi` backend and a real HTTP server speaking
//! the OpenAI protocol.

use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_llm::{OpenAi, Retry};
use ladder_runtime::store::{RecordedCall, Store, StoreError};
use ladder_runtime::{compile, Durable, Event, Runtime, SessionState};
use ladder_store::testing::{fresh_sqlite_path, fresh_store_urls};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn state(id: &str) -> SessionState {
    SessionState::new(id.into(), "root".into(), serde_json::Map::new())
}

fn reply(text: &str) -> Event {
    Event::Reply {
        agent: "root".into(),
        text: text.into(),
    }
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn sessions_are_created_once_and_load_back() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("a")).await.unwrap();
        assert_eq!(
            store.create(&state("a")).await,
            Err(StoreError::Exists("a".into()))
        );
        let loaded = store.load("a").await.unwrap().expect("stored");
        assert_eq!(loaded.state, state("a"), "{url}");
        assert_eq!(loaded.open_turn, None);
        assert!(store.load("nope").await.unwrap().is_none());
        assert_eq!(
            store.acquire("nope", "w", TTL, "hi").await.map(|_| ()),
            Err(StoreError::NotFound("nope".into()))
        );
        let listed = store.list(10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "a");
        assert_eq!(listed[0].current, "root");
    }
}

#[tokio::test]
async fn leases_are_exclusive_and_expire() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("s")).await.unwrap();
        let claim = store.acquire("s", "w1/a", TTL, "first").await.unwrap();
        assert_eq!(claim.state, state("s"));
        assert_eq!(claim.interrupted, None);
        let listed = &store.list(1).await.unwrap()[0];
        assert_eq!(listed.leased_by.as_deref(), Some("w1"), "{url}");
        assert_eq!(listed.open_turn, Some(1));
        assert_eq!(
            store.acquire("s", "w2/b", TTL, "second").await.map(|_| ()),
            Err(StoreError::Busy {
                id: "s".into(),
                owner: "w1".into()
            }),
            "{url}"
        );
        store.renew("s", "w1/a", TTL).await.unwrap();
        store.release("s", "w1/a").await.unwrap();
        // w1 gave up without committing: its turn is still open, and the next holder is told.
        let claim = store
            .acquire("s", "w2/b", Duration::from_millis(100), "hello")
            .await
            .unwrap();
        let open = claim.interrupted.expect("the open turn is handed over");
        assert_eq!((open.turn, open.text.as_str()), (1, "first"));
        store.begin_turn("s", "w2/b", 1, "hello").await.unwrap();
        // A short lease that runs out can be taken over; the old holder is fenced off.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let claim = store.acquire("s", "w3/c", TTL, "again").await.unwrap();
        let open = claim.interrupted.expect("the open turn is handed over");
        assert_eq!((open.turn, open.text.as_str()), (1, "hello"));
        assert_eq!(
            store.renew("s", "w2/b", TTL).await,
            Err(StoreError::LeaseLost("s".into()))
        );
        let mut after = state("s");
        after.turn = 1;
        assert_eq!(
            store
                .commit_turn("s", "w2/b", &after, &[reply("late")], true)
                .await,
            Err(StoreError::LeaseLost("s".into()))
        );
        assert!(
            store.events("s").await.unwrap().is_empty(),
            "nothing half-written"
        );
        let open = store.load("s").await.unwrap().unwrap().open_turn.unwrap();
        assert_eq!((open.turn, open.text.as_str()), (1, "hello"));
    }
}

#[tokio::test]
async fn a_session_is_deleted_whole_and_never_under_a_running_turn() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("d")).await.unwrap();
        store.acquire("d", "w1/a", TTL, "hi").await.unwrap();
        let mut after = state("d");
        after.turn = 1;
        store
            .commit_turn("d", "w1/a", &after, &[reply("hello")], false)
            .await
            .unwrap();
        let call = RecordedCall {
            tool: "t".into(),
            arguments: json!({}),
            result: json!({"ok": true}),
            ok: true,
        };
        store.record("d", "d-1-1", &call).await.unwrap();
        // The lease is still held: a turn may be running.
        assert_eq!(
            store.delete("d").await,
            Err(StoreError::Busy {
                id: "d".into(),
                owner: "w1".into()
            }),
            "{url}"
        );
        store.release("d", "w1/a").await.unwrap();
        store.delete("d").await.unwrap();
        assert!(store.load("d").await.unwrap().is_none(), "{url}");
        assert!(store.events("d").await.unwrap().is_empty());
        assert_eq!(store.recall("d", "d-1-1").await.unwrap(), None);
        assert_eq!(
            store.delete("d").await,
            Err(StoreError::NotFound("d".into()))
        );
        // The id can be used again, from nothing.
        store.create(&state("d")).await.unwrap();
        assert!(store.events("d").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_one_of_many_concurrent_claims_wins() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("race")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .acquire("race", &format!("w{i}/x"), TTL, "hi")
                    .await
                    .map(|_| ())
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => won += 1,
                Err(StoreError::Busy { .. }) => {}
                Err(e) => panic!("{url}: {e}"),
            }
        }
        assert_eq!(won, 1, "{url}");
    }
}

#[tokio::test]
async fn commits_append_events_in_order_and_replace_the_state() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("log")).await.unwrap();
        let mut expected = Vec::new();
        for turn in 1..=3u32 {
            let claim = store.acquire("log", "w/1", TTL, "hi").await.unwrap();
            assert_eq!(claim.interrupted, None);
            assert_eq!(claim.state.turn, turn - 1);
            // More events than one insert batch holds.
            let events: Vec<Event> = (0..300).map(|i| reply(&format!("{turn}.{i}"))).collect();
            let mut after = state("log");
            after.turn = turn;
            after.current = format!("rung{turn}");
            after.events = vec![reply("not stored with the state")];
            store
                .commit_turn("log", "w/1", &after, &events, true)
                .await
                .unwrap();
            expected.extend(events);
        }
        assert_eq!(store.events("log").await.unwrap(), expected, "{url}");
        let loaded = store.load("log").await.unwrap().unwrap();
        assert_eq!(loaded.state.turn, 3);
        assert_eq!(loaded.state.current, "rung3");
        assert!(loaded.state.events.is_empty());
        assert_eq!(loaded.open_turn, None);
        // The commit released the lease.
        store.acquire("log", "w/2", TTL, "hi").await.unwrap();
    }
}

#[tokio::test]
async fn tool_results_are_recorded_once_by_key() {
    for url in fresh_store_urls().await {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("t")).await.unwrap();
        let call = RecordedCall {
            tool: "refund".into(),
            arguments: json!({"invoice": "inv-9"}),
            result: json!({"refunded": true}),
            ok: true,
        };
        assert_eq!(store.recall("t", "t-1-1").await.unwrap(), None);
        store.record("t", "t-1-1", &call).await.unwrap();
        let second = RecordedCall {
            result: json!({"refunded": "twice"}),
            ..call.clone()
        };
        store.record("t", "t-1-1", &second).await.unwrap();
        assert_eq!(
            store.recall("t", "t-1-1").await.unwrap(),
            Some(call),
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_store_reopened_after_close_has_everything() {
    let path = fresh_sqlite_path();
    let url = format!("sqlite:{}", path.display());
    {
        let store = ladder_store::open(&url).await.unwrap();
        store.create(&state("keep")).await.unwrap();
        store.acquire("keep", "w/1", TTL, "hi").await.unwrap();
        store
            .commit_turn("keep", "w/1", &state("keep"), &[reply("kept")], true)
            .await
            .unwrap();
    }
    let store = ladder_store::open(&url).await.unwrap();
    assert_eq!(store.events("keep").await.unwrap(), vec![reply("kept")]);
    assert!(path.exists());
}

const LADDER: &str = r#"ladder 1
ladder shop { entry clerk }
model m { provider: openai, name: "fake-model" }
tool refund(invoice: string) -> json {
  "Refund an invoice."
  host
}
agent clerk {
  model m
  prompt "Help with refunds."
  tools [refund]
}
"#;

fn durable(fake: &FakeOpenAi, store: Arc<dyn Store>, refunds: Arc<AtomicU32>) -> Durable {
    let backend = OpenAi::new(fake.base_url(), None).with_retry(Retry {
        attempts: 1,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(5),
    });
    Runtime::new(compile(LADDER).expect("checks"))
        .backend(backend)
        .tool("refund", move |_| {
            let refunds = refunds.clone();
            async move {
                let n = refunds.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(json!({"refund": n}))
            }
        })
        .durable(store, "test-worker")
        .lease(Duration::from_millis(300))
}

async fn replies(durable: &Durable, id: &str, text: &str) -> Vec<String> {
    let events = durable.send(id, text).await.unwrap().collect().await;
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Reply { text, .. } => Some(text),
            Event::Error { message, .. } => Some(format!("error: {message}")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn durable_turns_survive_a_new_process_and_resume_with_the_whole_state() {
    for url in fresh_store_urls().await {
        let fake = FakeOpenAi::start().await;
        let refunds = Arc::new(AtomicU32::new(0));
        let id = {
            let store = ladder_store::open(&url).await.unwrap();
            let first = durable(&fake, store, refunds.clone());
            let id = first.create(Some("caller-1".into())).await.unwrap();
            fake.push(Reply::tool("refund", json!({"invoice": "inv-9"})));
            fake.push(Reply::text("Refunded."));
            assert_eq!(replies(&first, &id, "refund inv-9").await, ["Refunded."]);
            id
        };
        // A new store connection and runtime: the state comes from the database alone.
        let store = ladder_store::open(&url).await.unwrap();
        let second = durable(&fake, store, refunds.clone());
        fake.push(Reply::text("You're welcome."));
        assert_eq!(replies(&second, &id, "thanks").await, ["You're welcome."]);
        let state = second.state(&id).await.unwrap();
        assert_eq!(state.turn, 2, "{url}");
        assert_eq!(state.counters.tool_calls, 1);
        assert_eq!(state.transcript.len(), 6, "{:#?}", state.transcript);
        let turns: Vec<u32> = state
            .events
            .iter()
            .filter_map(|e| match e {
                Event::TurnStarted { turn, .. } => Some(*turn),
                _ => None,
            })
            .collect();
        assert_eq!(turns, [1, 2]);
        // The last model request carried the first turn's transcript.
        let last = fake.requests().pop().unwrap();
        assert!(last.to_string().contains("refund inv-9"), "{last}");
        assert_eq!(refunds.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_turn_left_open_by_a_dead_worker_is_finished_without_repeating_its_tool_calls() {
    for url in fresh_store_urls().await {
        let fake = FakeOpenAi::start().await;
        let refunds = Arc::new(AtomicU32::new(0));
        let store = ladder_store::open(&url).await.unwrap();
        let worker = durable(&fake, store.clone(), refunds.clone());
        let id = worker.create(None).await.unwrap();
        // A worker that died mid-turn: it began turn 1, completed the refund (its side effect
        // happened once and was recorded) and never committed.
        store
            .acquire(&id, "dead/1", Duration::from_millis(200), "refund inv-9")
            .await
            .unwrap();
        refunds.fetch_add(1, Ordering::SeqCst);
        let key = format!("{id}-1-1");
        let recorded = RecordedCall {
            tool: "refund".into(),
            arguments: json!({"invoice": "inv-9"}),
            result: json!({"refund": 1}),
            ok: true,
        };
        store.record(&id, &key, &recorded).await.unwrap();
        // While the lease holds, the session is busy.
        assert!(matches!(
            worker.send(&id, "hello?").await.err(),
            Some(StoreError::Busy { .. })
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The re-run of turn 1 asks for the same call; then the new turn 2 is answered.
        fake.push(Reply::tool("refund", json!({"invoice": "inv-9"})));
        fake.push(Reply::text("Refunded inv-9."));
        fake.push(Reply::text("Anything else?"));
        assert_eq!(replies(&worker, &id, "hello?").await, ["Anything else?"]);
        assert_eq!(
            refunds.load(Ordering::SeqCst),
            1,
            "{url}: the refund ran twice"
        );
        let state = worker.state(&id).await.unwrap();
        assert_eq!(state.turn, 2);
        let results: Vec<_> = state
            .events
            .iter()
            .filter_map(|e| match e {
                Event::ToolResult { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(results, [json!({"refund": 1})]);
    }
}
