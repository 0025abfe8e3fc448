//! `cargo run --release --example profile_check [parse|check|keystroke] [FILE]`: time one ladder
//! (a generated 10 000-agent ladder unless FILE, a number of agents, or `tools:DEPTH` for the
//! harness's tree with two tools per agent is given), for profiling with perf or counting
//! instructions with callgrind (criterion numbers are in BENCHMARKS.md). `keystroke` is what the
//! language server does on each change: one check, and the definitions of its tree.
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    // FILE, or a number of agents to generate (default 10 000).
    let text = match std::env::args().nth(2) {
        Some(n) if n.parse::<usize>().is_ok() => {
            ladder_check::generate::ladder(n.parse().expect("a number"), 10)
        }
        // `tools:DEPTH`: the anchor harness's tree with two tools per agent, fan-out 10.
        Some(t) if t.starts_with("tools:") => {
            ladder_check::generate::tool_tree(10, t[6..].parse().expect("a depth")).0
        }
        Some(path) => std::fs::read_to_string(path).expect("the file is readable"),
        None => ladder_check::generate::ladder(10_000, 10),
    };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        if mode == "parse" {
            ladder_syntax::parse(ladder_syntax::FileId(0), &text).expect("parses");
        } else if mode == "keystroke" {
            let c = ladder_check::check_source("g.ladder", &text, &Default::default());
            let definitions = ladder_check::symbols::definitions(&c.files[0]);
            eprintln!("{} definitions", definitions.len());
        } else {
            let c = ladder_check::check_source("g.ladder", &text, &Default::default());
            eprintln!("{} diagnostics", c.diagnostics.len());
        }
        eprintln!("{mode} {:?} ({} bytes)", t.elapsed(), text.len());
    }
}
