//! Orchestration CPU per turn and per handoff, with an in-process backend that answers at once,
//! so that only the runtime's own work is measured.

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use ladder_check::compile;
use ladder_runtime::Runtime;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let direct = Runtime::new(compile(support::DIRECT).expect("checks")).backend(support::Scripted);
    let ladder = Runtime::new(compile(support::LADDER).expect("checks")).backend(support::Scripted);
    let mut group = c.benchmark_group("orchestration");
    group.bench_function("turn_no_handoff", |b| {
        b.iter(|| rt.block_on(async { direct.session().send("hello").collect().await }))
    });
    group.bench_function("turn_two_handoffs", |b| {
        b.iter(|| rt.block_on(async { ladder.session().send("hello").collect().await }))
    });
    // A long session: the cost of a turn grows with the transcript it carries.
    group.bench_function("turn_20th_of_session", |b| {
        b.iter_batched(
            || {
                let s = direct.session();
                rt.block_on(async {
                    for _ in 0..19 {
                        s.send("hello").collect().await;
                    }
                });
                s
            },
            |s| rt.block_on(async { s.send("hello").collect().await }),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
