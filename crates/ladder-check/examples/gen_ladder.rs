//! `cargo run --release --example gen_ladder AGENTS > file.ladder`: writes a generated ladder
//! (fan-out 10) for measuring the binary on large inputs (BENCHMARKS.md, "Large inputs").
//! `gen_ladder tools:DEPTH`: the anchor harness's tree instead (fan-out 10, two tools per agent).
fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if let Some(depth) = arg.strip_prefix("tools:") {
        let depth = depth.parse().expect("a depth");
        print!("{}", ladder_check::generate::tool_tree(10, depth).0);
        return;
    }
    let agents = arg.parse().unwrap_or(10_000);
    print!("{}", ladder_check::generate::ladder(agents, 10));
}
