//! Parse and full-check time of generated ladders (fan-out 10) of 10, 1 000 and 10 000 agents.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ladder_check::{check_source, generate, CheckOptions};
use ladder_syntax::{parse, FileId};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ladder");
    group.sample_size(20);
    for agents in [10usize, 1_000, 10_000] {
        let text = generate::ladder(agents, 10);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", agents), &text, |b, text| {
            b.iter(|| parse(FileId(0), text).expect("generated ladders parse"))
        });
        group.bench_with_input(BenchmarkId::new("check", agents), &text, |b, text| {
            b.iter(|| {
                let checked = check_source("generated.ladder", text, &CheckOptions::default());
                assert!(checked.program.is_some());
                checked
            })
        });
    }
    group.finish();

    // What the language server does on every keystroke: re-check the document and rebuild the
    // symbols of the file (parse again) for navigation and completion.
    let mut lsp = c.benchmark_group("lsp_keystroke");
    lsp.sample_size(30);
    let agents = 1_000usize;
    let text = generate::ladder(agents, 10);
    lsp.bench_with_input(BenchmarkId::from_parameter(agents), &text, |b, text| {
        b.iter(|| {
            let checked = check_source("generated.ladder", text, &CheckOptions::default());
            let parsed = parse(FileId(0), text).expect("parses");
            (checked, ladder_check::symbols::symbols(&parsed))
        })
    });
    lsp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
