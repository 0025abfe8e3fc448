//! Worst case per turn: the most LLM calls, tool calls and transfers one turn can take given the
//! limits and the graph, and what that costs (L0021); SLAs longer than the budget (L0030).

use crate::diagnostics::Diagnostics;
use crate::findings::{CostUnknown, Finding};
use crate::graph::{AgentGraph, EdgeKind, RungKind};
use crate::index::Index;
use crate::program::{Limits, Model};
use crate::props::Budget;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;
use std::collections::BTreeMap;

/// Upper bounds for one turn (and a session, where `turns_per_session` is set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstCase {
    /// The most model calls one turn can make.
    pub llm_calls: u32,
    /// The most tool calls (consults included) one turn can make.
    pub tool_calls: u32,
    /// The most handoffs one turn can make.
    pub handoffs: u32,
    /// The rungs of the longest chain of handoffs and fallbacks from the entry.
    pub longest_chain: Vec<String>,
    /// Dollars; `None` when a model on the way lacks prices or token limits (see `cost_unknown`).
    pub cost_per_turn: Option<f64>,
    /// The worst cost of a session (`turns_per_session` worst turns), in dollars, when bounded.
    pub cost_per_session: Option<f64>,
    /// Why the cost is unbounded (a model with no prices, ...), if it is.
    pub cost_unknown: Option<String>,
    /// Sum of SLAs along the slowest chain, when every agent on it has one.
    pub latency_seconds: Option<f64>,
}

fn per_call_cost(model: &Model) -> Result<f64, &'static str> {
    match (
        model.input_per_mtok,
        model.output_per_mtok,
        model.max_input_tokens,
        model.max_output_tokens,
    ) {
        // Every prompt token may be one written to the cache, at its own (higher) price.
        (Some(i), Some(o), Some(ti), Some(to)) => {
            let i = model.cache_write_per_mtok.map_or(i, |w| w.max(i));
            Ok((i * ti as f64 + o * to as f64) / 1e6)
        }
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
    // What the runtime enforces (docs/language.md, "What check proves"): every model call of a
    // turn, a consulted agent's and a correction's included, takes one step of the rung's
    // allowance of `steps_per_turn`; every tool call and every consult one of its allowance of
    // `tool_calls_per_turn`; a fallback starts a fresh allowance of both. So the turn has at most
    // `1 + activations` allowances, where an activation is a fallback after which an agent may
    // still run. Escalations never reset an allowance, but each one (at most
    // `escalation_depth`, the stack only grows) may start a new walk down the handoff and
    // fallback DAG, with fallbacks and handoffs of its own.
    let escalations = if reachable_agents
        .iter()
        .any(|n| agent(*n).is_some_and(|a| !a.escalations.is_empty()))
    {
        limits.escalation_depth
    } else {
        0
    };
    // The first walk starts at the entry, each later one at an escalation target.
    let reaches_agent = reaches_agent(g, &agent_of);
    let sla = |n: NodeIndex| -> f64 { agent(n).and_then(|a| a.sla.map(|s| s.0)).unwrap_or(0.0) };
    let is_script = |n: NodeIndex| matches!(g.graph[n].1, RungKind::Script);
    let w = walks(g, &reaches_agent, &is_script, &sla);
    // Where the walks after the first start: the targets of escalations, and of returns.
    let targets_of = |kind: EdgeKind| -> Vec<usize> {
        reachable_agents
            .iter()
            .flat_map(|n| {
                g.graph
                    .edges(*n)
                    .filter(move |e| e.weight().kind == kind)
                    .map(|e| e.target().index())
            })
            .collect()
    };
    let escalation_targets = targets_of(EdgeKind::Escalate);
    // A `return` hands control back up to a delegator (an agent that hands off), which may walk
    // down again. Returns count against `handoffs_per_turn` like handoffs, so a turn has at most
    // that many, each starting a new walk at a delegator.
    let return_targets = targets_of(EdgeKind::Return);
    let returns = if return_targets.is_empty() {
        0
    } else {
        limits.handoffs_per_turn
    };
    // A turn may also begin where a person put the conversation: a human's release targets, and
    // the fallback that takes over when no one claims it. The first walk of a turn starts at the
    // entry or at one of these, whichever walks farthest.
    let starts: Vec<usize> = std::iter::once(entry.index())
        .chain(
            g.graph
                .node_indices()
                .filter(|n| reachable[n.index()] && g.graph[*n].1 == RungKind::Human)
                .flat_map(|n| {
                    g.graph
                        .edges(n)
                        .filter(|e| {
                            matches!(e.weight().kind, EdgeKind::Release | EdgeKind::Unclaimed)
                        })
                        .map(|e| e.target().index())
                }),
        )
        .collect();
    let later = |per_node: &[u32]| -> u32 {
        let most = |targets: &[usize]| targets.iter().map(|t| per_node[*t]).max().unwrap_or(0);
        most(&starts)
            .saturating_add(escalations.saturating_mul(most(&escalation_targets)))
            .saturating_add(returns.saturating_mul(most(&return_targets)))
    };
    let allowances = later(&w.fallbacks).saturating_add(1);
    let handoffs = limits
        .handoffs_per_turn
        .min(later(&w.handoffs).saturating_add(returns))
        .saturating_add(later(&w.script_handoffs));
    // The turn deadline bounds every turn, whatever the SLAs add up to. With returns, a rung may
    // answer more than once in a turn: the deadline is the bound.
    let latency_bound = if returns > 0 {
        limits.turn_deadline_seconds
    } else {
        (starts.iter().map(|s| w.sla_seconds[*s]).fold(0.0, f64::max)
            + f64::from(escalations)
                * escalation_targets
                    .iter()
                    .map(|t| w.sla_seconds[*t])
                    .fold(0.0, f64::max))
        .min(limits.turn_deadline_seconds)
    };
    // Every agent a model call may come from is reachable (consult edges count).
    let llm_calls = if reachable_agents.is_empty() {
        0
    } else {
        limits.steps_per_turn.saturating_mul(allowances)
    };
    let calls_functions = reachable_agents
        .iter()
        .any(|n| agent(*n).is_some_and(|a| !a.tools.is_empty() || !a.consults.is_empty()));
    let tool_calls = if calls_functions {
        limits.tool_calls_per_turn.saturating_mul(allowances)
    } else {
        0
    };
    let cost_per_turn = cost_unknown.is_none().then(|| {
        let priciest = reachable_agents
            .iter()
            .map(|n| call_cost[n.index()])
            .fold(0.0, f64::max);
        priciest * f64::from(llm_calls)
    });
    let cost_per_session =
        cost_per_turn.and_then(|t| limits.turns_per_session.map(|n| t * f64::from(n)));
    let (_, chain) = heaviest_path(g, entry, limits.handoffs_per_turn, &|_| 1.0);
    let without_sla: Vec<&str> = reachable_agents
        .iter()
        .filter(|n| agent(**n).is_some_and(|a| a.sla.is_none()))
        .map(|n| g.graph[*n].0.as_str())
        .collect();

    let worst = WorstCase {
        llm_calls,
        tool_calls,
        handoffs,
        longest_chain: chain.iter().map(|n| g.graph[*n].0.clone()).collect(),
        cost_per_turn,
        cost_per_session,
        cost_unknown,
        latency_seconds: without_sla.is_empty().then_some(latency_bound),
    };
    budget_breaches(&worst, budget, out);
    let slowest = || slowest_walk(g, entry, &w.sla_seconds, &sla);
    latency_budget(&worst, budget, limits, &slowest, &without_sla, out);
    unproved_cost(&worst, budget, limits, out);
    Some(worst)
}

/// The walk from the entry whose SLAs add up to the most (the rungs with an SLA on it), read off
/// the per-node sums of [`walks`]: each step goes to the successor with the largest sum.
fn slowest_walk(
    g: &AgentGraph,
    entry: NodeIndex,
    sla_seconds: &[f64],
    sla: &dyn Fn(NodeIndex) -> f64,
) -> Vec<String> {
    let mut walk = vec![entry];
    let mut at = entry;
    while let Some(next) = g
        .graph
        .edges(at)
        .filter(|e| is_transfer(e.weight().kind))
        .map(|e| e.target())
        .max_by(|a, b| sla_seconds[a.index()].total_cmp(&sla_seconds[b.index()]))
    {
        // The transfer edges form a DAG here, so the walk ends; the bound keeps a bad graph
        // from looping.
        if walk.len() > g.graph.node_count() {
            break;
        }
        walk.push(next);
        at = next;
    }
    walk.into_iter()
        .filter(|n| sla(*n) > 0.0)
        .map(|n| g.graph[n].0.clone())
        .collect()
}

/// For every node, whether an agent can run at or after it along handoff and fallback edges.
fn reaches_agent(g: &AgentGraph, agent_of: &[Option<&crate::index::AgentInfo>]) -> Vec<bool> {
    let mut reaches: Vec<bool> = agent_of.iter().map(Option::is_some).collect();
    let mut queue: Vec<NodeIndex> = g
        .graph
        .node_indices()
        .filter(|n| reaches[n.index()])
        .collect();
    while let Some(n) = queue.pop() {
        for e in g.graph.edges_directed(n, petgraph::Direction::Incoming) {
            if is_transfer(e.weight().kind) && !reaches[e.source().index()] {
                reaches[e.source().index()] = true;
                queue.push(e.source());
            }
        }
    }
    reaches
}

/// Per node, the most on any walk from it down the handoff and fallback edges (a DAG when this
/// is called): fallbacks into a part of the graph where an agent can still run, handoffs, and
/// seconds of SLA. O(nodes + edges), in reverse topological order (Kahn's algorithm, iterative).
struct Walks {
    fallbacks: Vec<u32>,
    /// Handoffs by agents (limited by `handoffs_per_turn` at run time) and by scripts (not).
    handoffs: Vec<u32>,
    script_handoffs: Vec<u32>,
    sla_seconds: Vec<f64>,
}

fn walks(
    g: &AgentGraph,
    reaches_agent: &[bool],
    is_script: &dyn Fn(NodeIndex) -> bool,
    sla: &dyn Fn(NodeIndex) -> f64,
) -> Walks {
    let n = g.graph.node_count();
    let transfers = |node: NodeIndex| {
        g.graph
            .edges(node)
            .filter(|e| is_transfer(e.weight().kind))
            .map(|e| (e.target(), e.weight().kind))
    };
    let mut out_degree: Vec<usize> = g
        .graph
        .node_indices()
        .map(|v| transfers(v).count())
        .collect();
    let mut ready: Vec<NodeIndex> = g
        .graph
        .node_indices()
        .filter(|v| out_degree[v.index()] == 0)
        .collect();
    let mut w = Walks {
        fallbacks: vec![0; n],
        handoffs: vec![0; n],
        script_handoffs: vec![0; n],
        sla_seconds: vec![0.0; n],
    };
    while let Some(v) = ready.pop() {
        let i = v.index();
        let mut later_sla = 0.0f64;
        for (target, kind) in transfers(v) {
            let t = target.index();
            let f = w.fallbacks[t] + u32::from(kind == EdgeKind::Fallback && reaches_agent[t]);
            let handoff = kind == EdgeKind::Handoff;
            let h = w.handoffs[t] + u32::from(handoff && !is_script(v));
            let hs = w.script_handoffs[t] + u32::from(handoff && is_script(v));
            w.fallbacks[i] = w.fallbacks[i].max(f);
            w.handoffs[i] = w.handoffs[i].max(h);
            w.script_handoffs[i] = w.script_handoffs[i].max(hs);
            later_sla = later_sla.max(w.sla_seconds[t]);
        }
        w.sla_seconds[i] = sla(v) + later_sla;
        for e in g.graph.edges_directed(v, petgraph::Direction::Incoming) {
            if is_transfer(e.weight().kind) {
                let source = e.source().index();
                out_degree[source] -= 1;
                if out_degree[source] == 0 {
                    ready.push(e.source());
                }
            }
        }
    }
    w
}

fn budget_breaches(worst: &WorstCase, budget: &Budget, out: &mut Diagnostics) {
    if let (Some(limit), Some(cost), Some(span)) = (
        budget.cost_per_turn,
        worst.cost_per_turn,
        budget.spans.cost_per_turn,
    ) {
        if cost > limit + 1e-12 {
            out.report(Finding::CostOverBudget {
                at: span,
                per_session: false,
                cost,
                limit,
                worst,
            });
        }
    }
    if let (Some(limit), Some(span)) = (budget.cost_per_session, budget.spans.cost_per_session) {
        if let Some(cost) = worst.cost_per_session {
            if cost > limit + 1e-12 {
                out.report(Finding::CostOverBudget {
                    at: span,
                    per_session: true,
                    cost,
                    limit,
                    worst,
                });
            }
        }
    }
}

/// L0021 when the slowest chain of SLAs exceeds the latency budget; L0036 when nothing bounds
/// the time to a reply below the budget (an agent without an SLA, and a turn deadline above it).
/// What is compared is the time until the turn commits (a reply starts streaming, a person or
/// a script takes over): each rung commits within its SLA or control leaves it, so the sum of the
/// SLAs along a chain bounds it, and `turn_deadline` bounds everything.
fn latency_budget(
    worst: &WorstCase,
    budget: &Budget,
    limits: &Limits,
    slowest: &dyn Fn() -> Vec<String>,
    without_sla: &[&str],
    out: &mut Diagnostics,
) {
    let (Some(limit), Some(span)) = (budget.latency_p95_seconds, budget.spans.latency_p95) else {
        return;
    };
    match worst.latency_seconds {
        Some(bound) if bound > limit + 1e-9 => {
            out.report(Finding::LatencyOverBudget {
                at: span,
                bound,
                limit,
                slowest: slowest(),
            });
        }
        None if limits.turn_deadline_seconds > limit + 1e-9 => {
            out.report(Finding::LatencyUnproved {
                at: span,
                limit,
                without_sla,
                deadline: limits.turn_deadline_seconds,
            });
        }
        _ => {}
    }
}

/// L0036 for cost budgets nothing bounds: a session budget with no `turns_per_session`, a
/// budget over a model without prices or token limits.
fn unproved_cost(worst: &WorstCase, budget: &Budget, limits: &Limits, out: &mut Diagnostics) {
    let unknown = worst.cost_unknown.as_deref();
    for (limit, span, per) in [
        (budget.cost_per_turn, budget.spans.cost_per_turn, "turn"),
        (
            budget.cost_per_session,
            budget.spans.cost_per_session,
            "session",
        ),
    ] {
        let (Some(limit), Some(span)) = (limit, span) else {
            continue;
        };
        let why = match unknown {
            Some(why) => CostUnknown::Model(why),
            None if per == "session" && limits.turns_per_session.is_none() => {
                CostUnknown::NoTurnsPerSession
            }
            None => continue,
        };
        out.report(Finding::CostUnproved {
            at: span,
            limit,
            per,
            why,
        });
    }
}

/// Where `limits { key: .. }` is written, else the ladder's name (the limit is the default).
fn limit_span(index: &Index, key: &str) -> Option<ladder_syntax::Span> {
    let ladder = index.ladder?;
    ladder
        .blocks
        .iter()
        .filter(|b| b.name.name == "limits")
        .flat_map(|b| &b.props)
        .find(|p| p.key.name == key)
        .map(|p| p.value.span)
        .or(Some(ladder.name.span))
}

/// L0018 for limits that make the ladder unusable: `handoffs_per_turn` below the handoffs needed
/// to get from the entry to any rung that answers (a non-router agent, a person, a script), and
/// `escalation_depth` below the escalations needed to reach a person from an agent that declares
/// escalations. Each names the path that cannot be completed.
pub(crate) fn unusable_limits(
    index: &Index,
    g: &AgentGraph,
    limits: &Limits,
    out: &mut Diagnostics,
) {
    let Some(entry) = g.entry else { return };
    let n = g.graph.node_count();
    let answers = |node: NodeIndex| match &g.graph[node] {
        (name, RungKind::Agent) => !index.agents.get(name.as_str()).is_some_and(|a| a.router),
        _ => true,
    };
    let names =
        |path: &[NodeIndex]| -> Vec<&str> { path.iter().map(|n| g.graph[*n].0.as_str()).collect() };
    let back_to = |previous: &[Option<NodeIndex>], mut at: NodeIndex| {
        let mut path = vec![at];
        while let Some(p) = previous[at.index()] {
            path.push(p);
            at = p;
        }
        path.reverse();
        path
    };

    // 0-1 BFS: an agent's handoff costs one, a fallback, a script's handoff and an escalation
    // (while escalations are allowed) nothing.
    let mut cost = vec![u32::MAX; n];
    let mut previous: Vec<Option<NodeIndex>> = vec![None; n];
    let mut deque = std::collections::VecDeque::from([entry]);
    cost[entry.index()] = 0;
    let mut found = None;
    while let Some(v) = deque.pop_front() {
        if answers(v) {
            found = Some(v);
            break;
        }
        for e in g.graph.edges(v) {
            let step = match e.weight().kind {
                EdgeKind::Handoff if matches!(g.graph[v].1, RungKind::Agent) => 1,
                EdgeKind::Handoff | EdgeKind::Fallback => 0,
                EdgeKind::Escalate if limits.escalation_depth > 0 => 0,
                _ => continue,
            };
            let t = e.target();
            if cost[v.index()] + step < cost[t.index()] {
                cost[t.index()] = cost[v.index()] + step;
                previous[t.index()] = Some(v);
                if step == 0 {
                    deque.push_front(t);
                } else {
                    deque.push_back(t);
                }
            }
        }
    }
    if let (Some(to), Some(span)) = (found, limit_span(index, "handoffs_per_turn")) {
        let needed = cost[to.index()];
        if needed > limits.handoffs_per_turn {
            out.report(Finding::HandoffsTooFew {
                at: span,
                limit: limits.handoffs_per_turn,
                needed,
                path: names(&back_to(&previous, to)),
            });
        }
    }

    // Escalations: from each agent that declares one, the fewest escalations to a person.
    let escalating: Vec<NodeIndex> = g
        .graph
        .node_indices()
        .filter(|v| {
            g.graph
                .edges(*v)
                .any(|e| e.weight().kind == EdgeKind::Escalate)
        })
        .collect();
    let Some(span) = limit_span(index, "escalation_depth") else {
        return;
    };
    if limits.escalation_depth == 0 {
        if let Some(first) = escalating.first() {
            out.report(Finding::EscalationForbidden {
                at: span,
                agent: &g.graph[*first].0,
            });
        }
        return;
    }
    // One backwards search from every person over escalation edges gives, for every rung, the
    // fewest escalations to a person and the next rung on the way (O(nodes + edges)).
    let mut toward: Vec<Option<NodeIndex>> = vec![None; n];
    let mut hops = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    for v in g.graph.node_indices() {
        if matches!(g.graph[v].1, RungKind::Human) {
            hops[v.index()] = 0;
            queue.push_back(v);
        }
    }
    while let Some(v) = queue.pop_front() {
        for e in g.graph.edges_directed(v, petgraph::Direction::Incoming) {
            let from = e.source();
            if e.weight().kind == EdgeKind::Escalate && hops[from.index()] == usize::MAX {
                hops[from.index()] = hops[v.index()] + 1;
                toward[from.index()] = Some(v);
                queue.push_back(from);
            }
        }
    }
    let worst = escalating
        .iter()
        .copied()
        .filter(|v| {
            hops[v.index()] != usize::MAX && hops[v.index()] > limits.escalation_depth as usize
        })
        .max_by_key(|v| hops[v.index()])
        .map(|from| {
            let mut path = vec![from];
            while let Some(next) = toward[path[path.len() - 1].index()] {
                path.push(next);
            }
            path
        });
    if let Some(path) = worst {
        let needed = path.len() - 1;
        out.report(Finding::EscalationTooShallow {
            at: span,
            depth: limits.escalation_depth,
            needed,
            path: names(&path),
        });
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
                out.report(Finding::SlaOverBudget {
                    at: span,
                    agent: name,
                    seconds,
                    limit,
                    budget_at: budget_span,
                });
            }
        }
    }
}
