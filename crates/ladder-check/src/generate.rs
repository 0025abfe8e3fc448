//! Synthetic ladders for benchmarks and scale tests (not part of the stable API).

use std::fmt::Write;

/// A valid ladder of `agents` agents in a tree of fan-out `fan_out`: every inner agent is a
/// router handing off to its children, every child escalates to its parent, leaves reply and
/// use a tool.
pub fn ladder(agents: usize, fan_out: usize) -> String {
    let agents = agents.max(1);
    let fan_out = fan_out.max(1);
    let mut s = String::with_capacity(agents * 260);
    s.push_str("ladder 1\n\nladder generated {\n  entry a0\n  limits { steps_per_turn: 12, tool_calls_per_turn: 4, handoffs_per_turn: 8 }\n");
    s.push_str("  vars { clinic: string = \"Generated\" }\n}\n\n");
    s.push_str("model fast { provider: openai, name: \"gpt-4o-mini\", input: $0.15/Mtok, output: $0.60/Mtok, max_input_tokens: 4000, max_output_tokens: 300 }\n\n");
    // Only as many intents as the root has children, so that none is unused.
    for i in 0..fan_out.min(agents - 1) {
        let _ = writeln!(
            s,
            "intent route{i} \"Route to child {i}\" {{ examples [\"case {i}\"] reason: string? }}"
        );
    }
    s.push_str(
        "\ntool lookup(id: string) -> string {\n  \"Looks something up.\"\n  mock \"found\"\n}\n\n",
    );
    for n in 0..agents {
        let first_child = n * fan_out + 1;
        let children: Vec<usize> = (first_child..first_child + fan_out)
            .filter(|c| *c < agents)
            .collect();
        let _ = writeln!(s, "/// Agent number {n}.\nagent a{n} {{");
        s.push_str("  model fast\n");
        let _ = writeln!(
            s,
            "  prompt \"You are agent {n} of {{{{clinic}}}}. Help the caller or hand off.\""
        );
        if children.is_empty() {
            s.push_str("  tools [lookup]\n");
        }
        for (i, c) in children.iter().enumerate() {
            let _ = writeln!(s, "  handoff route{i} -> a{c}");
        }
        if n > 0 {
            let _ = writeln!(
                s,
                "  escalate -> a{} when confidence < 0.5",
                (n - 1) / fan_out
            );
        }
        s.push_str("}\n\n");
    }
    s
}

/// The anchor harness's synthetic tree (`../shared/anchors`, "construct"): `fanout` children a
/// level, `depth` levels below the root, every agent with two tools of its own and a handoff to
/// each child; agent names grow with depth (`n_3_1_4`). Returns the text and the agent count.
pub fn tool_tree(fanout: usize, depth: u32) -> (String, usize) {
    let mut levels: Vec<Vec<String>> = vec![vec!["n".into()]];
    for _ in 0..depth {
        let next = levels
            .last()
            .unwrap()
            .iter()
            .flat_map(|p| (0..fanout).map(move |k| format!("{p}_{k}")))
            .collect();
        levels.push(next);
    }
    let mut s = String::from(
        "ladder 1\nladder synthetic { entry n }\nmodel m { provider: openai, name: \"fake-model\" }\n",
    );
    let mut agents = 0;
    for (d, level) in levels.iter().enumerate() {
        for name in level {
            agents += 1;
            let _ = write!(
                s,
                "tool {name}_lookup(record_id: string) -> string {{ \"Look up a record by id.\"  mock \"x\" }}\n\
                 tool {name}_update(record_id: string, note: string) -> string {{ \"Append a note to a record.\"  mock \"x\" }}\n"
            );
            if d > 0 {
                let _ = writeln!(s, "intent to_{name} \"Work for {name}.\"");
            }
            let _ = write!(
                s,
                "agent {name} {{\n  model m\n  prompt \"You are {name}.\"\n  tools [{name}_lookup, {name}_update]\n"
            );
            if d > 0 {
                let _ = writeln!(s, "  accepts to_{name}");
            }
            if d < depth as usize {
                for k in 0..fanout {
                    let _ = writeln!(s, "  handoff to_{name}_{k} -> {name}_{k}");
                }
            }
            s.push_str("}\n");
        }
    }
    (s, agents)
}
