//! The agent graph (petgraph) and the analyses over it. Each analysis is a function over the graph
//! and a diagnostics sink; none stops at the first problem.

use crate::diagnostics::Diagnostics;
use crate::findings::{CycleStep, Finding};
use crate::index::{Index, Namespace, Rung};
use crate::symbols::SymbolNamespace;
use ladder_syntax::ast::{CompareOp, Operand, ScriptStmtKind};
use ladder_syntax::Span;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// What kind of rung a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RungKind {
    /// An agent (a model).
    Agent,
    /// A person.
    Human,
    /// A model-free script.
    Script,
}

/// What kind of transfer of control an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// `handoff intent -> agent`, and `handoff x` in a script.
    Handoff,
    /// `escalate -> x`
    Escalate,
    /// `consult x`: a call that returns to the caller.
    Consult,
    /// `fallback -> x` and `sla .. else -> x`.
    Fallback,
    /// `return`: back to a rung that hands off to this agent.
    Return,
    /// `release: [..]` of a human: the rungs a person may hand the conversation back to.
    Release,
    /// `fallback: X` of a human: where the session goes when no one claims it within the
    /// human's `sla` (on a timer, not within a turn).
    Unclaimed,
}

impl EdgeKind {
    /// Delegation and fallback edges must form a DAG; escalations, returns and a person's
    /// releases go back up by design (a release always has a person in the loop).
    fn is_downward(self) -> bool {
        !matches!(
            self,
            EdgeKind::Escalate | EdgeKind::Return | EdgeKind::Release | EdgeKind::Unclaimed
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EdgeInfo {
    pub kind: EdgeKind,
    pub label: Option<String>,
    /// The target name as written, where diagnostics point.
    pub span: Span,
}

/// The resolved graph of rungs.
#[derive(Debug, Default)]
pub(crate) struct AgentGraph {
    pub graph: DiGraph<(String, RungKind), EdgeInfo>,
    pub nodes: HashMap<String, NodeIndex>,
    pub entry: Option<NodeIndex>,
}

/// A serialisable view of the graph for `ladderc graph`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphView {
    /// The entry rung, if the header names one.
    pub entry: Option<String>,
    /// Every rung.
    pub nodes: Vec<GraphNode>,
    /// Every edge between rungs.
    pub edges: Vec<GraphEdge>,
}

/// A rung in [`GraphView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    /// The rung's name.
    pub name: String,
    /// Agent, human or script.
    pub kind: RungKind,
    /// Whether a path from the entry reaches it.
    pub reachable: bool,
}

/// An edge in [`GraphView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    /// The rung control leaves.
    pub from: String,
    /// The rung control goes to.
    pub to: String,
    /// Handoff, escalation, consult or fallback.
    pub kind: EdgeKind,
    /// The intent, condition or SLA written on the edge.
    pub label: Option<String>,
}

impl AgentGraph {
    pub fn view(&self) -> GraphView {
        let reachable = self.reachable();
        GraphView {
            entry: self.entry.map(|e| self.graph[e].0.clone()),
            nodes: self
                .graph
                .node_indices()
                .map(|n| GraphNode {
                    name: self.graph[n].0.clone(),
                    kind: self.graph[n].1,
                    reachable: reachable[n.index()],
                })
                .collect(),
            edges: self
                .graph
                .edge_references()
                .map(|e| GraphEdge {
                    from: self.graph[e.source()].0.clone(),
                    to: self.graph[e.target()].0.clone(),
                    kind: e.weight().kind,
                    label: e.weight().label.clone(),
                })
                .collect(),
        }
    }

    /// Which nodes a path from the entry reaches (all of them if there is no entry).
    pub fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![self.entry.is_none(); self.graph.node_count()];
        if let Some(entry) = self.entry {
            let mut queue = VecDeque::from([entry]);
            seen[entry.index()] = true;
            while let Some(n) = queue.pop_front() {
                for next in self.graph.neighbors(n) {
                    if !seen[next.index()] {
                        seen[next.index()] = true;
                        queue.push_back(next);
                    }
                }
            }
        }
        seen
    }
}

/// Builds the graph, resolving every rung reference (L0004/L0005) on the way.
pub(crate) fn build(index: &Index, out: &mut Diagnostics) -> AgentGraph {
    let mut g = AgentGraph::default();
    // Nodes in a stable order (agents, humans, scripts; each by name), whatever the maps' order.
    let mut names: Vec<(u8, &str)> = index.agents.keys().map(|n| (0, *n)).collect();
    names.extend(index.humans.keys().map(|n| (1, *n)));
    names.extend(index.scripts.keys().map(|n| (2, *n)));
    names.sort_unstable();
    g.graph.reserve_nodes(names.len());
    g.nodes.reserve(names.len());
    for &(kind, name) in &names {
        let kind = [RungKind::Agent, RungKind::Human, RungKind::Script][kind as usize];
        let n = g.graph.add_node((name.to_string(), kind));
        g.nodes.insert(name.to_string(), n);
    }
    let add = |g: &mut AgentGraph,
               from: &str,
               to: &ladder_syntax::ast::Ident,
               kind: EdgeKind,
               label: Option<String>| {
        if let (Some(&a), Some(&b)) = (g.nodes.get(from), g.nodes.get(&to.name)) {
            g.graph.add_edge(
                a,
                b,
                EdgeInfo {
                    kind,
                    label,
                    span: to.span,
                },
            );
        }
    };
    // Edges in node order, so that graph output is stable.
    for (name, agent) in names
        .iter()
        .filter_map(|(_, n)| index.agents.get(n).map(|a| (n, a)))
    {
        for h in &agent.handoffs {
            if index.intents.contains_key(h.intent.name.as_str()) {
                index.record(&h.intent, SymbolNamespace::Intent);
            } else {
                index.resolve(Namespace::Intent, &h.intent, "a handoff's intent", out);
            }
            // Fast path: a name with a node is a rung; `resolve` only runs to report a problem.
            if g.nodes.contains_key(&h.target.name) {
                index.record(&h.target, SymbolNamespace::Rung);
            }
            if g.nodes.contains_key(&h.target.name)
                || index.resolve(Namespace::Rung, &h.target, "a handoff target", out)
            {
                add(
                    &mut g,
                    name,
                    &h.target,
                    EdgeKind::Handoff,
                    Some(h.intent.name.clone()),
                );
            }
        }
        for e in &agent.escalations {
            if g.nodes.contains_key(&e.target.name) {
                index.record(&e.target, SymbolNamespace::Rung);
            }
            if g.nodes.contains_key(&e.target.name)
                || index.resolve(Namespace::Rung, &e.target, "an escalation target", out)
            {
                let label = e.condition.as_ref().map(condition_text);
                add(&mut g, name, &e.target, EdgeKind::Escalate, label);
            }
        }
        for c in &agent.consults {
            if index.resolve(Namespace::Agent, c, "a consulted rung", out) {
                add(&mut g, name, c, EdgeKind::Consult, None);
            }
        }
        if let Some((seconds, _, Some(target))) = agent.sla {
            if index.resolve(Namespace::Rung, target, "an SLA fallback", out) {
                add(
                    &mut g,
                    name,
                    target,
                    EdgeKind::Fallback,
                    Some(format!("sla {}", crate::props::seconds_text(seconds))),
                );
            }
        }
        if let Some(target) = agent.fallback {
            if index.resolve(Namespace::Rung, target, "a fallback", out) {
                add(
                    &mut g,
                    name,
                    target,
                    EdgeKind::Fallback,
                    Some("fallback".into()),
                );
            }
        }
    }
    for (name, script) in names
        .iter()
        .filter_map(|(_, n)| index.scripts.get(n).map(|s| (n, s)))
    {
        for stmt in &script.stmts {
            if let ScriptStmtKind::Handoff(target) = &stmt.kind {
                if index.resolve(Namespace::Rung, target, "a script handoff", out) {
                    add(&mut g, name, target, EdgeKind::Handoff, None);
                }
            }
        }
    }
    for (name, human) in names
        .iter()
        .filter_map(|(_, n)| index.humans.get(n).map(|h| (n, h)))
    {
        let edges = HumanEdges::of(human);
        for target in &edges.release {
            if index.resolve(Namespace::Rung, target, "a release target", out) {
                add(&mut g, name, target, EdgeKind::Release, None);
            }
        }
        if let Some(target) = &edges.fallback {
            if index.resolve(Namespace::Rung, target, "a human's fallback", out) {
                let label = edges
                    .sla
                    .map(|s| format!("after {}", crate::props::seconds_text(s)));
                add(&mut g, name, target, EdgeKind::Unclaimed, label);
            }
            if edges.sla.is_none() {
                out.report(Finding::FallbackWithoutSla {
                    fallback: target,
                    human: name,
                });
            }
        }
    }
    returns(index, &mut g, out);
    g.entry = entry(index, &g, out);
    g
}

/// The rungs a `human` block names: `release: [..]` and `fallback: X`, with where each is
/// written, and its claim SLA.
pub(crate) struct HumanEdges {
    pub release: Vec<ladder_syntax::ast::Ident>,
    pub fallback: Option<ladder_syntax::ast::Ident>,
    pub sla: Option<f64>,
}

impl HumanEdges {
    pub(crate) fn of(human: &ladder_syntax::ast::HumanDecl) -> Self {
        use ladder_syntax::ast::{Ident, ValueKind};
        let ident = |v: &ladder_syntax::ast::Value| match &v.kind {
            ValueKind::Ident(name) => Some(Ident {
                name: name.clone(),
                span: v.span,
            }),
            _ => None,
        };
        let mut edges = HumanEdges {
            release: Vec::new(),
            fallback: None,
            sla: None,
        };
        for p in &human.props {
            match (p.key.name.as_str(), &p.value.kind) {
                ("release", ValueKind::List(items)) => {
                    edges.release.extend(items.iter().filter_map(ident))
                }
                ("fallback", _) => edges.fallback = ident(&p.value),
                ("sla", ValueKind::Duration(s)) => edges.sla = Some(*s),
                _ => {}
            }
        }
        edges
    }
}

/// Return edges: from an agent with `return` to each agent that hands off to it (a script that
/// hands off is not returned to: the runtime's delegation stack holds agents). L0039 when no
/// agent does, for `return` and for `owns turn` (which hands back at the end of a turn, so adds
/// no edge within one). `owns` takes `turn` or `conversation` (L0008).
fn returns(index: &Index, g: &mut AgentGraph, out: &mut Diagnostics) {
    let mut edges = Vec::new();
    for (name, agent) in &index.agents {
        let owns_turn = match agent.owns {
            Some(o) if o.name == "turn" => Some(o.span),
            Some(o) if o.name != "conversation" => {
                out.report(Finding::BadOwnership {
                    policy: o,
                    suggestion: crate::suggest::did_you_mean(&o.name, ["turn", "conversation"]),
                });
                None
            }
            _ => None,
        };
        let Some(span) = agent.returns.or(owns_turn) else {
            continue;
        };
        let Some(&node) = g.nodes.get(*name) else {
            continue;
        };
        let delegators: Vec<NodeIndex> = g
            .graph
            .edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().kind == EdgeKind::Handoff)
            .map(|e| e.source())
            .filter(|s| matches!(g.graph[*s].1, RungKind::Agent))
            .collect();
        if delegators.is_empty() {
            out.report(Finding::ReturnWithoutDelegator {
                at: span,
                agent: name,
                returns: agent.returns.is_some(),
            });
        }
        if agent.returns.is_none() {
            continue;
        }
        for d in delegators {
            edges.push((node, d, span));
        }
    }
    edges.sort_by_key(|(a, b, _)| (a.index(), b.index()));
    edges.dedup_by_key(|(a, b, _)| (*a, *b));
    for (a, b, span) in edges {
        g.graph.add_edge(
            a,
            b,
            EdgeInfo {
                kind: EdgeKind::Return,
                label: Some("return".into()),
                span,
            },
        );
    }
}

fn condition_text(c: &ladder_syntax::ast::Condition) -> String {
    let cmp = |c: &ladder_syntax::ast::Comparison| {
        let v = match &c.operand {
            Operand::Number(n) => format!("{n}"),
            Operand::String(s) => format!("\"{s}\""),
            Operand::Bool(b) => b.to_string(),
            Operand::Ident(i) => i.clone(),
        };
        format!("{} {} {}", c.signal.name, c.op.as_str(), v)
    };
    let mut s = cmp(&c.first);
    for (op, next) in &c.rest {
        s.push_str(match op {
            ladder_syntax::ast::LogicOp::And => " and ",
            ladder_syntax::ast::LogicOp::Or => " or ",
        });
        s.push_str(&cmp(next));
    }
    s
}

fn entry(index: &Index, g: &AgentGraph, out: &mut Diagnostics) -> Option<NodeIndex> {
    let Some(ladder) = index.ladder else {
        if index.broken_header {
            return None;
        }
        let at = index.items.first().map(|i| i.span).unwrap_or_default();
        let at = Span::new(at.file, at.start, at.start);
        out.report(Finding::NoHeader { at });
        return None;
    };
    match ladder.entries.as_slice() {
        [] => {
            out.report(Finding::NoEntry {
                ladder: &ladder.name,
                example: index.agents.keys().next().copied(),
            });
            None
        }
        [first, rest @ ..] => {
            for again in rest {
                // Reported (L0032), not resolved; the editor still sees the name.
                index.record(again, SymbolNamespace::Rung);
                out.report(Finding::Repeated {
                    first: first.span,
                    again: again.span,
                    what: "`entry`".into(),
                    keep: "a ladder has one entry rung; route to others with `handoff`",
                });
            }
            if !index.resolve(Namespace::Rung, first, "the entry", out) {
                return None;
            }
            if let Some(Rung::Human(_)) = index.rung(&first.name) {
                out.report(Finding::HumanEntry { entry: first });
            }
            g.nodes.get(&first.name).copied()
        }
    }
}

/// L0010: delegation and fallback edges must form a DAG. Reports each cycle once, whole.
pub(crate) fn cycles(g: &AgentGraph, out: &mut Diagnostics) -> bool {
    let down = petgraph::visit::EdgeFiltered::from_fn(&g.graph, |e| e.weight().kind.is_downward());
    let mut found = false;
    // Kosaraju's algorithm: iterative in petgraph (Tarjan's recurses once per node on a chain,
    // and a 100,000-agent chain overflowed the stack). Components are reported in the order of
    // their smallest name, so that the report does not depend on the algorithm.
    let mut components = petgraph::algo::kosaraju_scc(&down);
    components.sort_by_cached_key(|scc| {
        scc.iter()
            .map(|n| g.graph[*n].0.clone())
            .min()
            .unwrap_or_default()
    });
    for scc in components {
        let self_loop = scc.len() == 1
            && g.graph
                .edges_connecting(scc[0], scc[0])
                .any(|e| e.weight().kind.is_downward());
        if scc.len() < 2 && !self_loop {
            continue;
        }
        found = true;
        // Walk one concrete cycle inside the component, starting from its smallest name so that
        // the report is stable.
        let start = *scc
            .iter()
            .min_by_key(|n| &g.graph[**n].0)
            .expect("scc is not empty");
        let path = cycle_from(g, start, &scc);
        let steps = path
            .iter()
            .map(|e| {
                let (a, b) = g.graph.edge_endpoints(*e).expect("edge");
                let info = &g.graph[*e];
                CycleStep {
                    from: &g.graph[a].0,
                    to: &g.graph[b].0,
                    kind: info.kind,
                    label: info.label.as_deref(),
                    span: info.span,
                }
            })
            .collect();
        out.report(Finding::HandoffCycle { steps });
    }
    found
}

/// A cycle through `start` using only nodes of `scc` and downward edges, as edge indices.
fn cycle_from(
    g: &AgentGraph,
    start: NodeIndex,
    scc: &[NodeIndex],
) -> Vec<petgraph::graph::EdgeIndex> {
    let in_scc: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    // BFS from start's successors back to start gives a shortest cycle.
    let mut parent: HashMap<NodeIndex, petgraph::graph::EdgeIndex> = HashMap::default();
    let mut queue = VecDeque::from([start]);
    let mut visited = std::collections::HashSet::from([start]);
    let mut closing = None;
    'search: while let Some(n) = queue.pop_front() {
        let mut edges: Vec<_> = g
            .graph
            .edges(n)
            .filter(|e| e.weight().kind.is_downward() && in_scc.contains(&e.target()))
            .collect();
        edges.sort_by_key(|e| e.id());
        for e in edges {
            if e.target() == start {
                closing = Some(e.id());
                break 'search;
            }
            if visited.insert(e.target()) {
                parent.insert(e.target(), e.id());
                queue.push_back(e.target());
            }
        }
    }
    let mut path = Vec::new();
    let Some(mut e) = closing else { return path };
    loop {
        path.push(e);
        let (from, _) = g.graph.edge_endpoints(e).expect("edge");
        if from == start {
            break;
        }
        e = parent[&from];
    }
    path.reverse();
    path
}

/// L0011: rungs no path from the entry reaches.
pub(crate) fn unreachable(index: &Index, g: &AgentGraph, out: &mut Diagnostics) {
    if g.entry.is_none() {
        return;
    }
    let reachable = g.reachable();
    let entry_name = &g.graph[g.entry.expect("checked above")].0;
    // Targets that name no rung (each already an L0004): a rung one of them misspells is
    // unreachable only because of that typo, and saying so again would be a follow-on error.
    let mut targets: Vec<&str> = Vec::new();
    for agent in index.agents.values() {
        targets.extend(agent.handoffs.iter().map(|h| h.target.name.as_str()));
        targets.extend(agent.escalations.iter().map(|e| e.target.name.as_str()));
        targets.extend(agent.consults.iter().map(|c| c.name.as_str()));
        targets.extend(agent.fallback.map(|f| f.name.as_str()));
        targets.extend(agent.sla.and_then(|(_, _, o)| o).map(|o| o.name.as_str()));
    }
    for script in index.scripts.values() {
        targets.extend(script.stmts.iter().filter_map(|st| match &st.kind {
            ScriptStmtKind::Handoff(t) => Some(t.name.as_str()),
            _ => None,
        }));
    }
    // The rung each undefined target's L0004 suggests, by the same rule.
    let misspelt: std::collections::HashSet<&str> = targets
        .into_iter()
        .filter(|t| !g.nodes.contains_key(*t))
        .filter_map(|t| crate::suggest::did_you_mean(t, index.rung_names()))
        .collect();
    // A person who approves tool calls is reached through the calls, not by an edge.
    let approvers: std::collections::HashSet<&str> = index
        .tools
        .values()
        .filter_map(|(t, _)| t.approval.as_ref().map(|a| a.name.as_str()))
        .collect();
    for n in g.graph.node_indices() {
        if reachable[n.index()] {
            continue;
        }
        let (name, kind) = &g.graph[n];
        if misspelt.contains(name.as_str()) || approvers.contains(name.as_str()) {
            continue;
        }
        let Some(span) = index.rung_span(name) else {
            continue;
        };
        let kind = match kind {
            RungKind::Agent => "agent",
            RungKind::Human => "human",
            RungKind::Script => "script",
        };
        out.report(Finding::Unreachable {
            at: span,
            kind,
            name,
            entry: entry_name,
        });
    }
}

/// Intervals of a depth-first spanning forest: `a` is a tree-ancestor of `b` iff `a`'s interval
/// contains `b`'s. Answers most ancestor queries in O(1); the rest fall back to a search.
struct Intervals {
    pre: Vec<u32>,
    post: Vec<u32>,
}

impl Intervals {
    fn new(g: &AgentGraph) -> Self {
        let n = g.graph.node_count();
        let mut pre = vec![u32::MAX; n];
        let mut post = vec![0; n];
        let mut clock = 0u32;
        let roots = g.entry.into_iter().chain(g.graph.node_indices());
        for root in roots {
            if pre[root.index()] != u32::MAX {
                continue;
            }
            // Iterative DFS: (node, next-neighbour iterator position).
            let mut stack: Vec<(NodeIndex, Vec<NodeIndex>)> = Vec::new();
            pre[root.index()] = clock;
            clock += 1;
            stack.push((root, downward(g, root)));
            while let Some((node, children)) = stack.last_mut() {
                if let Some(child) = children.pop() {
                    if pre[child.index()] == u32::MAX {
                        pre[child.index()] = clock;
                        clock += 1;
                        let grandchildren = downward(g, child);
                        stack.push((child, grandchildren));
                    }
                } else {
                    post[node.index()] = clock;
                    clock += 1;
                    stack.pop();
                }
            }
        }
        Intervals { pre, post }
    }

    fn contains(&self, a: NodeIndex, b: NodeIndex) -> bool {
        self.pre[a.index()] <= self.pre[b.index()] && self.post[b.index()] <= self.post[a.index()]
    }
}

fn downward(g: &AgentGraph, n: NodeIndex) -> Vec<NodeIndex> {
    g.graph
        .edges(n)
        .filter(|e| e.weight().kind.is_downward())
        .map(|e| e.target())
        .collect()
}

/// Is there a downward path from `a` to `b` (i.e. is `a` an ancestor of `b`)?
fn is_ancestor(g: &AgentGraph, intervals: &Intervals, a: NodeIndex, b: NodeIndex) -> bool {
    if a != b && intervals.contains(a, b) {
        return true;
    }
    let mut seen = vec![false; g.graph.node_count()];
    let mut stack = downward(g, a);
    while let Some(n) = stack.pop() {
        if n == b {
            return true;
        }
        if !std::mem::replace(&mut seen[n.index()], true) {
            stack.extend(downward(g, n));
        }
    }
    false
}

/// L0012: escalations must go to a human or to a rung that can (transitively) hand off to the
/// escalating one; L0031: conditions name known signals.
pub(crate) fn escalations(
    index: &Index,
    g: &AgentGraph,
    session_vars: &std::collections::BTreeSet<&str>,
    out: &mut Diagnostics,
) {
    let intervals = Intervals::new(g);
    for (name, agent) in &index.agents {
        let Some(&from) = g.nodes.get(*name) else {
            continue;
        };
        for e in &agent.escalations {
            if let Some(c) = &e.condition {
                for cmp in std::iter::once(&c.first).chain(c.rest.iter().map(|(_, c)| c)) {
                    check_signal(cmp, session_vars, !agent.tools.is_empty(), out);
                    check_variable_operand(index, cmp, session_vars, out);
                }
            }
            let Some(&to) = g.nodes.get(&e.target.name) else {
                continue;
            };
            if g.graph[to].1 == RungKind::Human {
                continue;
            }
            if to == from || !is_ancestor(g, &intervals, to, from) {
                out.report(Finding::EscalationDirection {
                    target: &e.target,
                    agent: name,
                    itself: to == from,
                });
            }
        }
    }
}

/// Signals the runtime computes for escalation conditions.
pub(crate) const SIGNALS: &[(&str, &str)] = &[
    ("confidence", "the model's self-reported confidence, 0 to 1"),
    ("turns", "turns this rung has owned the session"),
    ("tool_errors", "failed tool calls in this turn"),
    ("corrections", "corrective retries in this turn"),
    ("sentiment", "caller sentiment from -1 (angry) to 1"),
];

/// The values a numeric signal can take (`None`: unbounded above).
fn signal_range(name: &str) -> Option<(f64, Option<f64>)> {
    match name {
        "confidence" => Some((0.0, Some(1.0))),
        "sentiment" => Some((-1.0, Some(1.0))),
        "turns" | "tool_errors" | "corrections" => Some((0.0, None)),
        _ => None,
    }
}

/// Whether `signal OP n` holds for no value in `[min, max]` (`Some(false)`), for every value
/// (`Some(true)`), or depends on the value (`None`).
fn constant_truth(op: CompareOp, n: f64, min: f64, max: Option<f64>) -> Option<bool> {
    let above = |x: f64| max.is_some_and(|m| x > m);
    let at_or_above = |x: f64| max.is_some_and(|m| x >= m);
    match op {
        CompareOp::Lt if n <= min => Some(false),
        CompareOp::Lt if above(n) => Some(true),
        CompareOp::Le if n < min => Some(false),
        CompareOp::Le if at_or_above(n) => Some(true),
        CompareOp::Gt if at_or_above(n) => Some(false),
        CompareOp::Gt if n < min => Some(true),
        CompareOp::Ge if above(n) => Some(false),
        CompareOp::Ge if n <= min => Some(true),
        CompareOp::Eq if n < min || above(n) => Some(false),
        CompareOp::Ne if n < min || above(n) => Some(true),
        _ => None,
    }
}

/// L0008 for a session variable compared with a value of another type (`vip == "yes"` where
/// `vip: bool`): the condition could never hold.
fn check_variable_operand(
    index: &Index,
    cmp: &ladder_syntax::ast::Comparison,
    session_vars: &std::collections::BTreeSet<&str>,
    out: &mut Diagnostics,
) {
    use ladder_syntax::ast::TypeKind;
    let name = cmp.signal.name.as_str();
    if !session_vars.contains(name) {
        return;
    }
    let Some(ty) = index.var_type(name) else {
        return;
    };
    let fits = match (&ty.kind, &cmp.operand) {
        (TypeKind::Enum(variants), Operand::String(v) | Operand::Ident(v)) => {
            variants.iter().any(|x| &x.name == v)
        }
        (TypeKind::Enum(_), _) => false,
        (TypeKind::List(_), _) => true,
        (TypeKind::Named(t), operand) => match (t.name.as_str(), operand) {
            ("bool", Operand::Bool(_)) => true,
            ("int" | "number" | "float", Operand::Number(_)) => true,
            ("string" | "phone" | "email" | "date" | "datetime" | "url", Operand::String(_)) => {
                true
            }
            (
                "bool" | "int" | "number" | "float" | "string" | "phone" | "email" | "date"
                | "datetime" | "url",
                _,
            ) => false,
            _ => true,
        },
    };
    if !fits {
        out.report(Finding::ConditionType {
            at: cmp.span,
            name,
            ty,
        });
    }
}

fn check_signal(
    cmp: &ladder_syntax::ast::Comparison,
    session_vars: &std::collections::BTreeSet<&str>,
    has_tools: bool,
    out: &mut Diagnostics,
) {
    let name = cmp.signal.name.as_str();
    let is_signal = SIGNALS.iter().any(|(s, _)| *s == name);
    if is_signal && !session_vars.contains(name) {
        if let Some((min, max)) = signal_range(name) {
            match &cmp.operand {
                Operand::Number(n) => {
                    if let Some(always) = constant_truth(cmp.op, *n, min, max) {
                        out.report(Finding::ConstantCondition {
                            at: cmp.span,
                            name,
                            min,
                            max,
                            always,
                        });
                    }
                }
                _ => out.report(Finding::SignalNotNumber {
                    at: cmp.span,
                    name,
                    min,
                    max,
                }),
            }
        }
        if name == "tool_errors" && !has_tools {
            out.report(Finding::ToolErrorsWithoutTools {
                at: cmp.signal.span,
            });
        }
        return;
    }
    if is_signal || session_vars.contains(name) {
        return;
    }
    let candidates = SIGNALS
        .iter()
        .map(|(s, _)| *s)
        .chain(session_vars.iter().copied());
    out.report(Finding::UnknownSignal {
        signal: &cmp.signal,
        suggestion: crate::suggest::did_you_mean(name, candidates),
    });
}

/// L0014 (two handoffs with one intent), L0022 (receiver does not accept), L0013 (router
/// without handoffs).
pub(crate) fn handoff_rules(index: &Index, out: &mut Diagnostics) {
    for (name, agent) in &index.agents {
        let mut by_intent: BTreeMap<&str, Span> = BTreeMap::new();
        for h in &agent.handoffs {
            if let Some(first) = by_intent.insert(&h.intent.name, h.intent.span) {
                out.report(Finding::DuplicateIntentEdge {
                    agent: name,
                    intent: &h.intent,
                    first,
                });
            }
            if let Some((true, at)) = h.fuse {
                let onward = crate::lower::hands_off_onward(index, &h.target.name);
                if index.rung(&h.target.name).is_some() && !onward {
                    out.report(Finding::FuseThroughNothing {
                        at,
                        receiver: &h.target.name,
                    });
                }
            }
            if let Some(Rung::Agent(target)) = index.rung(&h.target.name) {
                if let Some(accepts) = &target.accepts {
                    // A receiver whose `accepts` names something that is no intent (a typo,
                    // an agent) already has an L0004 or L0005 there; what it meant is unknown,
                    // so the sender's side would be a follow-on error.
                    let misspelt = accepts
                        .iter()
                        .any(|a| !index.intents.contains_key(a.name.as_str()));
                    if index.intents.contains_key(h.intent.name.as_str())
                        && !misspelt
                        && !accepts.iter().any(|a| a.name == h.intent.name)
                    {
                        out.report(Finding::NotAccepted {
                            sender: name,
                            intent: &h.intent,
                            receiver: &h.target.name,
                            accepts,
                        });
                    }
                }
            }
        }
        if agent.router && agent.handoffs.is_empty() {
            out.report(Finding::RouterWithoutHandoff {
                at: agent.decl.name.span,
                agent: name,
            });
        }
    }
}

/// L0024: every rung must be able to reach a reply (a non-router agent, a script that ends) or a
/// human. Computed as a fixed point over reversed handoff edges, in linear time.
pub(crate) fn dead_ends(index: &Index, g: &AgentGraph, out: &mut Diagnostics) {
    let n = g.graph.node_count();
    let mut concludes = vec![false; n];
    let mut queue = VecDeque::new();
    for node in g.graph.node_indices() {
        let (name, kind) = &g.graph[node];
        let yes = match kind {
            RungKind::Human => true,
            RungKind::Agent => !index.agents.get(name.as_str()).is_some_and(|a| a.router),
            RungKind::Script => index.scripts.get(name.as_str()).is_some_and(|s| {
                s.stmts
                    .iter()
                    .any(|st| matches!(st.kind, ScriptStmtKind::End))
            }),
        };
        if yes {
            concludes[node.index()] = true;
            queue.push_back(node);
        }
    }
    while let Some(node) = queue.pop_front() {
        for e in g.graph.edges_directed(node, Direction::Incoming) {
            let from = e.source();
            if concludes[from.index()]
                || !matches!(
                    e.weight().kind,
                    EdgeKind::Handoff | EdgeKind::Escalate | EdgeKind::Return
                )
            {
                continue;
            }
            concludes[from.index()] = true;
            queue.push_back(from);
        }
    }
    for node in g.graph.node_indices() {
        if concludes[node.index()] {
            continue;
        }
        let (name, kind) = &g.graph[node];
        let Some(span) = index.rung_span(name) else {
            continue;
        };
        let finding = match kind {
            RungKind::Script => {
                let ends_without = index.scripts.get(name.as_str()).is_some_and(|s| {
                    !s.stmts.iter().any(|st| {
                        matches!(st.kind, ScriptStmtKind::End | ScriptStmtKind::Handoff(_))
                    })
                });
                if ends_without {
                    Finding::ScriptWithoutEnd {
                        at: span,
                        script: name,
                    }
                } else {
                    Finding::ScriptDeadEnd {
                        at: span,
                        script: name,
                    }
                }
            }
            _ => {
                if index
                    .agents
                    .get(name.as_str())
                    .is_some_and(|a| a.handoffs.is_empty())
                {
                    // Reported as L0013 already.
                    continue;
                }
                Finding::RouterDeadEnd {
                    at: span,
                    agent: name,
                }
            }
        };
        out.report(finding);
    }
}

/// L0028: statements after a script's `end` or `handoff` never run.
pub(crate) fn script_order(index: &Index, out: &mut Diagnostics) {
    for script in index.scripts.values() {
        let mut terminal: Option<Span> = None;
        for stmt in &script.stmts {
            if let Some(t) = terminal {
                out.report(Finding::StatementAfterEnd {
                    at: stmt.span,
                    stop: t,
                });
                break;
            }
            if matches!(stmt.kind, ScriptStmtKind::End | ScriptStmtKind::Handoff(_)) {
                terminal = Some(stmt.span);
            }
        }
    }
}
