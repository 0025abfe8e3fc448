//! `cargo run --release --example profile_check [parse|check]`: time one 10 000-agent ladder,
//! for profiling with perf (criterion numbers are in BENCHMARKS.md).
fn main() {
    let text = ladder_check::generate::ladder(10_000, 10);
    let mode = std::env::args().nth(1).unwrap_or_default();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        if mode == "parse" {
            ladder_syntax::parse(ladder_syntax::FileId(0), &text).expect("parses");
        } else {
            let c = ladder_check::check_source("g.ladder", &text, &Default::default());
            assert!(c.program.is_some());
        }
        eprintln!("{mode} {:?} ({} bytes)", t.elapsed(), text.len());
    }
}
