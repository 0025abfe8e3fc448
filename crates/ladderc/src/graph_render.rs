//! The agent graph as Mermaid, Graphviz dot or JSON.

use crate::GraphFormat;
use ladder_check::{EdgeKind, GraphView, RungKind};
use std::fmt::Write;

pub(crate) fn render(graph: &GraphView, format: GraphFormat) -> String {
    match format {
        GraphFormat::Json => {
            let mut s = serde_json::to_string_pretty(graph).expect("the graph serialises");
            s.push('\n');
            s
        }
        GraphFormat::Mermaid => mermaid(graph),
        GraphFormat::Dot => dot(graph),
    }
}

fn edge_label(kind: EdgeKind, label: &Option<String>) -> String {
    let kind = match kind {
        EdgeKind::Handoff => "handoff",
        EdgeKind::Escalate => "escalate",
        EdgeKind::Consult => "consult",
        EdgeKind::Fallback => "fallback",
        EdgeKind::Return => "return",
        EdgeKind::Release => "release",
        EdgeKind::Unclaimed => "unclaimed",
    };
    match label {
        Some(l) if l != kind => format!("{kind}: {l}"),
        _ => kind.to_string(),
    }
}

fn mermaid(graph: &GraphView) -> String {
    let mut s = String::from("flowchart TD\n");
    for n in &graph.nodes {
        let shape = match n.kind {
            RungKind::Agent => format!("{}[\"{}\"]", n.name, n.name),
            RungKind::Human => format!("{}([\"👤 {}\"])", n.name, n.name),
            RungKind::Script => format!("{}[[\"{}\"]]", n.name, n.name),
        };
        let _ = writeln!(s, "  {shape}");
    }
    for e in &graph.edges {
        let arrow = match e.kind {
            EdgeKind::Handoff => "-->",
            EdgeKind::Escalate => "-.->",
            EdgeKind::Consult => "<-->",
            EdgeKind::Fallback => "==>",
            EdgeKind::Return | EdgeKind::Release | EdgeKind::Unclaimed => "-.->",
        };
        let label = edge_label(e.kind, &e.label).replace('"', "'");
        let _ = writeln!(s, "  {} {arrow}|\"{label}\"| {}", e.from, e.to);
    }
    if let Some(entry) = &graph.entry {
        let _ = writeln!(s, "  style {entry} stroke-width:3px");
    }
    s
}

fn dot(graph: &GraphView) -> String {
    let mut s = String::from("digraph ladder {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n");
    for n in &graph.nodes {
        let shape = match n.kind {
            RungKind::Agent => "box",
            RungKind::Human => "ellipse",
            RungKind::Script => "box3d",
        };
        let bold = if graph.entry.as_deref() == Some(n.name.as_str()) {
            ", penwidth=3"
        } else {
            ""
        };
        let _ = writeln!(s, "  \"{}\" [shape={shape}{bold}];", n.name);
    }
    for e in &graph.edges {
        let style = match e.kind {
            EdgeKind::Handoff => "solid",
            EdgeKind::Escalate => "dashed",
            EdgeKind::Consult => "dotted",
            EdgeKind::Fallback => "bold",
            EdgeKind::Return | EdgeKind::Release | EdgeKind::Unclaimed => "dashed",
        };
        let label = edge_label(e.kind, &e.label).replace('"', "\\\"");
        // Escalations point back up: letting them rank would pull the entry down the drawing.
        let rank = if matches!(
            e.kind,
            EdgeKind::Escalate | EdgeKind::Return | EdgeKind::Release | EdgeKind::Unclaimed
        ) {
            ", constraint=false"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{label}\", style={style}{rank}];",
            e.from, e.to
        );
    }
    s.push_str("}\n");
    s
}
