//! `cargo run --release --example gen_ladder AGENTS > file.ladder`: writes a generated ladder
//! (fan-out 10) for measuring the binary on large inputs (BENCHMARKS.md, "Large inputs").
fn main() {
    let agents = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    print!("{}", ladder_check::generate::ladder(agents, 10));
}
