//! Fused routing (docs/runtime.md, "Fused routing"): when an agent hands off to a rung it may
//! route through (`HandoffEdge::fuse`, decided by the checker: a pure router, or an edge marked
//! `fuse`), the agent is also offered that rung's own handoffs, so one model call decides both
//! hops. Both handoffs are still carried out, validated and counted one by one.

use super::request::add_param;
use ladder_program::{Agent, ContextPolicy, Fuse, HandoffEdge, Program};
use serde_json::{json, Map, Value};

/// Two handoffs decided by one call: `first` from the calling agent to `via`, then `second` from
/// `via` onwards. Offered as `transfer_to_<second.target>`.
#[derive(Clone, Copy)]
pub(super) struct Route<'p> {
    pub first: &'p HandoffEdge,
    pub second: &'p HandoffEdge,
}

impl<'p> Route<'p> {
    /// The rung routed through.
    pub fn via(&self) -> &'p str {
        &self.first.target
    }

    /// The function's name: the final receiver's, like a direct handoff's.
    pub fn function(&self) -> String {
        format!("transfer_to_{}", self.second.target)
    }
}

/// The routes `agent` may take with `handoffs_left` handoffs left in the turn (a route takes
/// two). A route is left out when its name would be ambiguous (a direct handoff or a tool of that
/// name, or two routes to one receiver) or when the two intents' payloads share a field name
/// (one object could not say which edge a value is for).
pub(super) fn routes<'p>(
    prog: &'p Program,
    agent: &'p Agent,
    handoffs_left: u32,
) -> Vec<Route<'p>> {
    if handoffs_left < 2 {
        return Vec::new();
    }
    let mut routes: Vec<Route<'p>> = Vec::new();
    for first in agent.handoffs.iter().filter(|h| !h.fuse.is_off()) {
        let Some(via) = prog.agents.get(&first.target) else {
            continue;
        };
        for second in &via.handoffs {
            let direct = agent.handoffs.iter().any(|h| h.target == second.target)
                || agent
                    .tools
                    .iter()
                    .any(|t| t.strip_prefix("transfer_to_") == Some(second.target.as_str()));
            if direct || shared_field(prog, first, second) {
                continue;
            }
            routes.push(Route { first, second });
        }
    }
    let ambiguous: Vec<String> = routes
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            routes[..*i]
                .iter()
                .any(|o| o.second.target == r.second.target)
        })
        .map(|(_, r)| r.second.target.clone())
        .collect();
    routes.retain(|r| !ambiguous.contains(&r.second.target));
    routes
}

/// Whether the routes through `edge`'s receiver take the place of the handoff to it: when they
/// are every handoff it has and it has nothing else to decide (no escalation, no `return`), or
/// when the edge says `fuse` (a pass-through for this sender). Otherwise the sender is offered
/// both, so that whatever the receiver could do stays reachable.
pub(super) fn replaced(prog: &Program, edge: &HandoffEdge, routes: &[Route<'_>]) -> bool {
    let Some(via) = prog
        .agents
        .get(&edge.target)
        .filter(|_| !edge.fuse.is_off())
    else {
        return false;
    };
    let covered = via.handoffs.iter().all(|h| {
        routes
            .iter()
            .any(|r| std::ptr::eq(r.first, edge) && std::ptr::eq(r.second, h))
    });
    covered && (edge.fuse == Fuse::Through || (via.escalations.is_empty() && !via.returns))
}

fn fields(prog: &Program, intent: &str) -> Vec<String> {
    prog.intents
        .get(intent)
        .and_then(|i| i.payload.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn shared_field(prog: &Program, first: &HandoffEdge, second: &HandoffEdge) -> bool {
    let a = fields(prog, &first.intent);
    let mut b = fields(prog, &second.intent);
    if second.context == ContextPolicy::Summary || first.context == ContextPolicy::Summary {
        b.push("summary".into());
    }
    a.iter().any(|f| b.contains(f))
}

/// The schema of one edge's arguments: its intent's payload, plus a required `summary` when the
/// edge's context is `summary`.
pub(super) fn edge_schema(prog: &Program, edge: &HandoffEdge) -> Value {
    let mut schema = prog
        .intents
        .get(&edge.intent)
        .map(|i| i.payload.clone())
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    if edge.context == ContextPolicy::Summary {
        add_param(
            &mut schema,
            "summary",
            json!({"type": "string", "description": "A short summary of the conversation for the receiver."}),
            true,
        );
    }
    schema
}

/// The schema of a route's arguments: both edges' parameters in one object (their names never
/// clash, [`routes`]). One `summary` serves both edges.
pub(super) fn route_schema(prog: &Program, route: Route<'_>) -> Value {
    let mut schema = edge_schema(prog, route.first);
    let second = edge_schema(prog, route.second);
    let required: Vec<String> = second
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    if let Some(props) = second.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            if schema
                .get("properties")
                .and_then(|ps| ps.get(name))
                .is_none()
            {
                add_param(&mut schema, name, p.clone(), required.contains(name));
            }
        }
    }
    if second.get("additionalProperties") == Some(&Value::Bool(false)) {
        if let Some(o) = schema.as_object_mut() {
            o.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    schema
}

/// A route's validated arguments, split into each edge's own (a `summary` goes to each edge
/// whose context is `summary`).
pub(super) fn split(prog: &Program, route: Route<'_>, arguments: Value) -> (Value, Value) {
    let first_fields = fields(prog, &route.first.intent);
    let mut first = Map::new();
    let mut second = Map::new();
    if let Value::Object(map) = arguments {
        for (k, v) in map {
            if k == "summary" {
                if route.first.context == ContextPolicy::Summary {
                    first.insert(k.clone(), v.clone());
                }
                if route.second.context == ContextPolicy::Summary {
                    second.insert(k, v);
                }
            } else if first_fields.contains(&k) {
                first.insert(k, v);
            } else {
                second.insert(k, v);
            }
        }
    }
    (Value::Object(first), Value::Object(second))
}
