//! Memory per idle and per in-flight session (a counting allocator), and 1 000 concurrent
//! sessions against the fake OpenAI server over HTTP at 200 ms model latency. Prints figures;
//! bounded: fixed session counts, one turn each, a 60 s overall timeout.

mod support;

use async_trait::async_trait;
use ladder_check::compile;
use ladder_fake_openai::{FakeOpenAi, Reply};
use ladder_runtime::{Backend, BackendError, ChatRequest, ChatResponse, DeltaSink, Runtime};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Waits until released, to hold turns in flight.
struct Held(Arc<tokio::sync::Notify>);

#[async_trait]
impl Backend for Held {
    async fn complete(
        &self,
        request: &ChatRequest,
        on_text: DeltaSink<'_>,
    ) -> Result<ChatResponse, BackendError> {
        self.0.notified().await;
        support::Scripted.complete(request, on_text).await
    }
    fn name(&self) -> &str {
        "held"
    }
}

const SESSIONS: usize = 10_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), run())
            .await
            .expect("the load benchmark finished within 60 s");
    });
}

async fn run() {
    // Idle sessions: created, one completed turn each (a user message and a reply in the transcript).
    let runtime =
        Runtime::new(compile(support::DIRECT).expect("checks")).backend(support::Scripted);
    let before = LIVE.load(Ordering::Relaxed);
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let s = runtime.session();
        s.send("hello").collect().await;
        sessions.push(s);
    }
    let idle = (LIVE.load(Ordering::Relaxed) - before) as f64 / SESSIONS as f64;
    let fresh_before = LIVE.load(Ordering::Relaxed);
    let fresh: Vec<_> = (0..SESSIONS).map(|_| runtime.session()).collect();
    let new_session = (LIVE.load(Ordering::Relaxed) - fresh_before) as f64 / SESSIONS as f64;
    drop(fresh);
    drop(sessions);
    println!("memory per idle session after one turn: {idle:.0} bytes");
    println!("memory per new session (no turn yet): {new_session:.0} bytes");

    // In-flight sessions: each turn waits inside the backend.
    let notify = Arc::new(tokio::sync::Notify::new());
    let runtime =
        Runtime::new(compile(support::DIRECT).expect("checks")).backend(Held(notify.clone()));
    let before = LIVE.load(Ordering::Relaxed);
    let mut streams = Vec::with_capacity(SESSIONS);
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let s = runtime.session();
        streams.push(s.send("hello"));
        sessions.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = (LIVE.load(Ordering::Relaxed) - before) as f64 / SESSIONS as f64;
    println!("memory per in-flight session (turn waiting on the model): {in_flight:.0} bytes");
    notify.notify_waiters();
    for s in streams {
        s.collect().await;
    }
    drop(sessions);

    // 1 000 concurrent sessions over HTTP, 200 ms model latency.
    let fake = FakeOpenAi::start().await;
    fake.set_default(
        Reply::text("Booked for Monday."),
        Duration::from_millis(200),
    );
    let backend = ladder_llm::OpenAi::new(fake.base_url(), None);
    let runtime = Runtime::new(compile(support::DIRECT).expect("checks")).backend(backend);
    for round in 0..3 {
        let started = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let s = runtime.session();
                tokio::spawn(async move { s.send("book me in").collect().await })
            })
            .collect();
        let mut replies = 0;
        for t in tasks {
            let events = t.await.expect("task");
            replies += events
                .iter()
                .filter(|e| matches!(e, ladder_runtime::Event::Reply { .. }))
                .count();
        }
        println!("1000 concurrent sessions at 200 ms model latency (round {}): {:.3} s, {replies} replies", round + 1, started.elapsed().as_secs_f64());
        assert_eq!(replies, 1000, "every session got its reply");
    }
}
