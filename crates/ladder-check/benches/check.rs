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

    // The anchor harness's tree: fan-out 10, every agent with two tools of its own (issue 17's
    // "linear checks"). `check` is what `ladderc check` does (no lowering); `compile` adds the
    // lowering to the runtime's program. The growth factor from 1 111 to 11 111 agents is in
    // BENCHMARKS.md.
    let mut tools = c.benchmark_group("tool_tree");
    tools.sample_size(10);
    for depth in [2u32, 3, 4] {
        let (text, agents) = generate::tool_tree(10, depth);
        tools.throughput(Throughput::Bytes(text.len() as u64));
        let check = CheckOptions {
            lower: false,
            ..CheckOptions::default()
        };
        tools.bench_with_input(BenchmarkId::new("check", agents), &text, |b, text| {
            b.iter(|| check_source("tools.ladder", text, &check))
        });
        tools.bench_with_input(BenchmarkId::new("compile", agents), &text, |b, text| {
            b.iter(|| {
                let checked = check_source("tools.ladder", text, &CheckOptions::default());
                assert!(checked.program.is_some());
                checked
            })
        });
    }
    tools.finish();

    // What the language server does on every keystroke: re-check the document and list the
    // definitions of its tree for navigation and completion (references are the checker's).
    let mut lsp = c.benchmark_group("lsp_keystroke");
    lsp.sample_size(30);
    let agents = 1_000usize;
    let text = generate::ladder(agents, 10);
    // What the server does on each change: one check, whose trees give the symbols.
    lsp.bench_with_input(BenchmarkId::new("clean", agents), &text, |b, text| {
        b.iter(|| {
            let checked = check_source("generated.ladder", text, &CheckOptions::default());
            let definitions = ladder_check::symbols::definitions(&checked.files[0]);
            (checked, definitions)
        })
    });
    // The same file while an item in the middle is broken: recovery parses it again in pieces.
    let middle = text.len() / 2;
    let cut = middle
        + text[middle..]
            .find("\nagent ")
            .expect("an agent after the middle")
        + 1;
    let broken = format!(
        "{}agent broken {{ prompt: \"x\" }}\n{}",
        &text[..cut],
        &text[cut..]
    );
    lsp.bench_with_input(BenchmarkId::new("broken", agents), &broken, |b, text| {
        b.iter(|| {
            let checked = check_source("generated.ladder", text, &CheckOptions::default());
            assert_eq!(checked.error_count(), 1);
            let definitions = ladder_check::symbols::definitions(&checked.files[0]);
            (checked, definitions)
        })
    });
    lsp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
