//! Worst case per turn: the most LLM calls, tool calls and transfers one turn can take given the
//! limits and the graph, and what that costs (L0021); SLAs longer than the budget (L0030).

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::graph::{AgentGraph, EdgeKind, RungKind};
use crate::index::Index;
use crate::program::{Budget, Limits, Model};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;
use std::collections::BTreeMap;

/// Upper bounds for one turn (and a session, where `turns_per_session` is set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstCase {
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub handoffs: u32,
    /// The rungs of the longest chain of handoffs and fallbacks from the entry.
    pub longest_chain: Vec<String>,
    /// Dollars; `None` when a model on the way lacks prices or token limits (see `cost_unknown`).
    pub cost_per_turn: Option<f64>,
    pub cost_per_session: Option<f64>,
    pub cost_unknown: Option<String>,
    /// Sum of SLAs along the slowest chain, when every agent on it has one.
    pub latency_seconds: Option<f64>,
}

pub(crate) fn seconds_text(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round())
    } else {
        format!("{s}s")
    }
}

fn per_call_cost(model: &Model) -> Result<f64, &'static str> {
    match (
        model.input_per_mtok,
        model.output_per_mtok,
        model.max_input_tokens,
        model.max_output_tokens,
    ) {
        (Some(i), Some(o), Some(ti), Some(to)) => Ok((i * ti as f64 + o * to as f64) / 1e6),
        (None, _, _, _) | (_, None, _, _) => Err("no `input`/`output` price"),
        _ => Err("no `max_input_tokens`/`max_output_tokens`"),
    }
}

/// The heaviest path from `entry` with at most `hops` transfer edges, by a node weight, in
/// O(hops x edges): `best[h][n]` is the heaviest path from `n` using at most `h` more transfers.
fn heaviest_path(
    g: &AgentGraph,
    entry: NodeIndex,
    hops: u32,
    weight: &dyn Fn(NodeIndex) -> f64,
) -> (f64, Vec<NodeIndex>) {
    let n = g.graph.node_count();
    let own: Vec<f64> = g.graph.node_indices().map(weight).collect();
    let mut best = own.clone();
    let mut choices: Vec<Vec<Option<NodeIndex>>> = Vec::with_capacity(hops as usize);
    for _ in 0..hops {
        let mut next = own.clone();
        let mut choice = vec![None; n];
        for node in g.graph.node_indices() {
            for e in g.graph.edges(node).filter(|e| is_transfer(e.weight().kind)) {
                let candidate = own[node.index()] + best[e.target().index()];
                if candidate > next[node.index()] {
                    next[node.index()] = candidate;
                    choice[node.index()] = Some(e.target());
                }
            }
        }
        best = next;
        choices.push(choice);
    }
    let mut path = vec![entry];
    let mut at = entry;
    for choice in choices.iter().rev() {
        match choice[at.index()] {
            Some(next) => {
                path.push(next);
                at = next;
            }
            None => break,
        }
    }
    (best[entry.index()], path)
}

fn is_transfer(kind: EdgeKind) -> bool {
    matches!(kind, EdgeKind::Handoff | EdgeKind::Fallback)
}

/// Bounds for a ladder with an entry and an acyclic downward graph.
pub(crate) fn worst_case(
    index: &Index,
    g: &AgentGraph,
    models: &BTreeMap<String, Model>,
    limits: &Limits,
    budget: &Budget,
    out: &mut Diagnostics,
) -> Option<WorstCase> {
    let entry = g.entry?;
    let reachable = g.reachable();
    // Looked up once per node: the passes below visit every node several times.
    let agent_of: Vec<Option<&crate::index::AgentInfo>> = g
        .graph
        .node_indices()
        .map(|n| match &g.graph[n] {
            (name, RungKind::Agent) => index.agents.get(name.as_str()),
            _ => None,
        })
        .collect();
    let agent = |n: NodeIndex| agent_of[n.index()];
    let reachable_agents: Vec<NodeIndex> = g
        .graph
        .node_indices()
        .filter(|n| reachable[n.index()] && agent(*n).is_some())
        .collect();

    // Cost of one LLM call of an agent, when its model has prices and token limits.
    let mut cost_unknown = None;
    let mut call_cost = vec![0.0f64; g.graph.node_count()];
    for &n in &reachable_agents {
        let Some(model) = agent(n)
            .and_then(|a| a.model)
            .and_then(|m| models.get(&m.name).map(|model| (m, model)))
        else {
            continue;
        };
        match per_call_cost(model.1) {
            Ok(c) => call_cost[n.index()] = c,
            Err(why) => {
                cost_unknown.get_or_insert_with(|| format!("model `{}` has {why}", model.0.name));
            }
        }
    }
    let consulted = |n: NodeIndex| -> Vec<NodeIndex> {
        agent(n)
            .map(|a| {
                a.consults
                    .iter()
                    .filter_map(|c| g.nodes.get(&c.name).copied())
                    .collect()
            })
            .unwrap_or_default()
    };
    // One visit of an agent: one call to answer or hand off, plus per consult one call of the
    // consulted agent and one more of the caller.
    let calls = |n: NodeIndex| -> f64 {
        agent(n)
            .map(|a| 1.0 + 2.0 * a.consults.len() as f64)
            .unwrap_or(0.0)
    };
    let cost = |n: NodeIndex| -> f64 {
        if agent(n).is_none() {
            return 0.0;
        }
        let consults = consulted(n);
        call_cost[n.index()] * (1.0 + consults.len() as f64)
            + consults.iter().map(|c| call_cost[c.index()]).sum::<f64>()
    };
    let sla = |n: NodeIndex| -> f64 { agent(n).and_then(|a| a.sla.map(|s| s.0)).unwrap_or(0.0) };

    let hops = limits.handoffs_per_turn;
    let (_, chain) = heaviest_path(g, entry, hops, &|_| 1.0);
    let (path_calls, _) = heaviest_path(g, entry, hops, &calls);
    let (path_cost, _) = heaviest_path(g, entry, hops, &cost);
    let (path_latency, _) = heaviest_path(g, entry, hops, &sla);

    let tool_agents: Vec<NodeIndex> = reachable_agents
        .iter()
        .copied()
        .filter(|n| agent(*n).is_some_and(|a| !a.tools.is_empty()))
        .collect();
    let tool_calls = if tool_agents.is_empty() {
        0
    } else {
        limits.tool_calls_per_turn
    };
    // Every tool call costs one more LLM call (to read its result), on the priciest tool user.
    let tool_round_cost = tool_agents
        .iter()
        .map(|n| call_cost[n.index()])
        .fold(0.0, f64::max);
    let llm_calls = (path_calls as u32 + tool_calls).min(limits.steps_per_turn);
    let handoffs = (chain.len() as u32).saturating_sub(1);
    let cost_per_turn = cost_unknown.is_none().then(|| {
        // Never more calls than `steps_per_turn` allows, each at most the priciest call.
        let priciest = reachable_agents
            .iter()
            .map(|n| call_cost[n.index()])
            .fold(0.0, f64::max);
        (path_cost + tool_round_cost * f64::from(tool_calls))
            .min(priciest * f64::from(limits.steps_per_turn))
    });
    let cost_per_session =
        cost_per_turn.and_then(|t| limits.turns_per_session.map(|n| t * f64::from(n)));
    let all_have_sla = reachable_agents
        .iter()
        .all(|n| agent(*n).is_some_and(|a| a.sla.is_some()));

    let worst = WorstCase {
        llm_calls,
        tool_calls,
        handoffs,
        longest_chain: chain.iter().map(|n| g.graph[*n].0.clone()).collect(),
        cost_per_turn,
        cost_per_session,
        cost_unknown,
        latency_seconds: all_have_sla.then_some(path_latency),
    };
    budget_breaches(&worst, budget, out);
    Some(worst)
}

fn budget_breaches(worst: &WorstCase, budget: &Budget, out: &mut Diagnostics) {
    let explain = format!(
        "worst case per turn: {} LLM calls, {} tool calls, {} handoffs along {}",
        worst.llm_calls,
        worst.tool_calls,
        worst.handoffs,
        worst.longest_chain.join(" -> ")
    );
    if let (Some(limit), Some(cost), Some(span)) = (
        budget.cost_per_turn,
        worst.cost_per_turn,
        budget.spans.cost_per_turn,
    ) {
        if cost > limit + 1e-12 {
            out.push(
                Diagnostic::new(Code::BudgetExceeded, span, format!("worst-case cost per turn ${cost:.4} exceeds the budget of ${limit}"))
                    .label("budget declared here")
                    .note(explain.clone())
                    .help("lower `steps_per_turn` or `tool_calls_per_turn`, cap `max_input_tokens`/`max_output_tokens`, use a cheaper model, or raise the budget"),
            );
        }
    }
    if let (Some(limit), Some(span)) = (budget.cost_per_session, budget.spans.cost_per_session) {
        if let Some(cost) = worst.cost_per_session {
            if cost > limit + 1e-12 {
                out.push(
                    Diagnostic::new(Code::BudgetExceeded, span, format!("worst-case cost per session ${cost:.4} exceeds the budget of ${limit}"))
                        .label("budget declared here")
                        .note(explain)
                        .help("lower `turns_per_session` or the per-turn limits, cap the models' token limits, or raise the budget"),
                );
            }
        }
    }
}

/// L0030: an agent whose SLA alone is longer than the ladder's p95 latency budget.
pub(crate) fn sla_over_budget(index: &Index, budget: &Budget, out: &mut Diagnostics) {
    let (Some(limit), Some(budget_span)) = (budget.latency_p95_seconds, budget.spans.latency_p95)
    else {
        return;
    };
    for (name, agent) in &index.agents {
        if let Some((seconds, span, _)) = agent.sla {
            if seconds > limit {
                out.push(
                    Diagnostic::new(
                        Code::SlaOverBudget,
                        span,
                        format!(
                            "the SLA of `{name}` ({}) is longer than the latency budget ({})",
                            seconds_text(seconds),
                            seconds_text(limit)
                        ),
                    )
                    .label("this rung may take longer than the whole turn is allowed")
                    .secondary(budget_span, "latency budget declared here")
                    .help("tighten the SLA so that its fallback can still answer within budget"),
                );
            }
        }
    }
}
