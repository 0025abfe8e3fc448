//! Types: resolution (L0016), duplicate fields (L0033), lowering to JSON Schema, and the tool
//! checks that need types: implementations (L0009/L0032), URL placeholders (L0029), bound
//! parameters (L0025) and mock results (L0027).

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
use crate::index::Index;
use crate::suggest::did_you_mean;
use ladder_syntax::ast::*;
use ladder_syntax::Span;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Scalar types every ladder has. `phone`, `email`, `date`, `datetime` and `url` are strings
/// with a JSON Schema `format`, so that tools and models see what is expected.
pub(crate) const BUILTIN_TYPES: &[&str] = &[
    "string", "int", "float", "number", "bool", "phone", "email", "date", "datetime", "url", "json",
];

fn builtin_schema(name: &str) -> Option<Value> {
    Some(match name {
        "string" => json!({"type": "string"}),
        "int" => json!({"type": "integer"}),
        "float" | "number" => json!({"type": "number"}),
        "bool" => json!({"type": "boolean"}),
        "phone" => json!({"type": "string", "format": "phone"}),
        "email" => json!({"type": "string", "format": "email"}),
        "date" => json!({"type": "string", "format": "date"}),
        "datetime" => json!({"type": "string", "format": "date-time"}),
        "url" => json!({"type": "string", "format": "uri"}),
        "json" => json!({}),
        _ => return None,
    })
}

/// Reports every unknown type name in `ty` and duplicate enum variants.
pub(crate) fn check_type(
    index: &Index,
    ty: &TypeExpr,
    used: &mut BTreeSet<String>,
    out: &mut Diagnostics,
) {
    match &ty.kind {
        TypeKind::Named(name) => {
            index.record(name, crate::symbols::SymbolNamespace::Type);
            if builtin_schema(&name.name).is_some() {
                return;
            }
            if index.types.contains_key(name.name.as_str()) {
                used.insert(name.name.clone());
                return;
            }
            let candidates = BUILTIN_TYPES
                .iter()
                .copied()
                .chain(index.types.keys().copied());
            out.report(Finding::UnknownType {
                name,
                suggestion: did_you_mean(&name.name, candidates),
            });
        }
        TypeKind::List(inner) => check_type(index, inner, used, out),
        TypeKind::Enum(variants) => {
            duplicate_names(variants.iter(), "enum variant", out);
        }
    }
}

/// L0033 for names declared twice in one list.
pub(crate) fn duplicate_names<'a>(
    names: impl Iterator<Item = &'a Ident>,
    what: &'a str,
    out: &mut Diagnostics,
) {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for name in names {
        if let Some(first) = seen.insert(&name.name, name.span) {
            out.report(Finding::DuplicateField { name, first, what });
        }
    }
}

/// JSON Schema for a type; record types are inlined (recursion stops at a plain object).
pub(crate) fn schema(index: &Index, ty: &TypeExpr) -> Value {
    let mut visiting = Vec::new();
    schema_inner(index, ty, &mut visiting)
}

fn schema_inner<'a>(index: &Index<'a>, ty: &TypeExpr, visiting: &mut Vec<String>) -> Value {
    match &ty.kind {
        TypeKind::Named(name) => {
            if let Some(s) = builtin_schema(&name.name) {
                return s;
            }
            match index.types.get(name.name.as_str()) {
                Some(decl) if !visiting.contains(&name.name) => {
                    visiting.push(name.name.clone());
                    let s = object_schema(index, &decl.fields, visiting);
                    visiting.pop();
                    s
                }
                _ => json!({"type": "object"}),
            }
        }
        TypeKind::List(inner) => {
            json!({"type": "array", "items": schema_inner(index, inner, visiting)})
        }
        TypeKind::Enum(variants) => {
            json!({"type": "string", "enum": variants.iter().map(|v| v.name.clone()).collect::<Vec<_>>()})
        }
    }
}

fn object_schema(index: &Index, fields: &[Field], visiting: &mut Vec<String>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let mut s = schema_inner(index, &f.ty, visiting);
        if !f.docs.is_empty() {
            if let Value::Object(m) = &mut s {
                m.insert("description".into(), Value::String(f.docs.join("\n")));
            }
        }
        properties.insert(f.name.name.clone(), s);
        if !f.ty.optional {
            required.push(Value::String(f.name.name.clone()));
        }
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// JSON Schema of an object with `fields`.
pub(crate) fn fields_schema(index: &Index, fields: &[Field]) -> Value {
    object_schema(index, fields, &mut Vec::new())
}

/// Does a JSON literal fit a type? Returns the offending span and what was expected.
pub(crate) fn fits(
    index: &Index,
    value: &Json,
    ty: &TypeExpr,
    depth: usize,
) -> Result<(), (Span, String)> {
    if depth > 64 {
        return Ok(());
    }
    if matches!(value.kind, JsonKind::Null) {
        return if ty.optional {
            Ok(())
        } else {
            Err((
                value.span,
                "a value (null is only allowed for optional `T?` types)".into(),
            ))
        };
    }
    match &ty.kind {
        TypeKind::List(inner) => match &value.kind {
            JsonKind::Array(items) => items
                .iter()
                .try_for_each(|i| fits(index, i, inner, depth + 1)),
            _ => Err((value.span, "a list `[..]`".into())),
        },
        TypeKind::Enum(variants) => match &value.kind {
            JsonKind::String(s) if variants.iter().any(|v| &v.name == s) => Ok(()),
            _ => Err((
                value.span,
                format!(
                    "one of {}",
                    variants
                        .iter()
                        .map(|v| format!("\"{}\"", v.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
        TypeKind::Named(name) => {
            let ok = match (name.name.as_str(), &value.kind) {
                ("json", _) => true,
                (
                    "string" | "phone" | "email" | "date" | "datetime" | "url",
                    JsonKind::String(_),
                ) => true,
                ("int", JsonKind::Number(n)) => n.fract() == 0.0,
                ("float" | "number", JsonKind::Number(_)) => true,
                ("bool", JsonKind::Bool(_)) => true,
                (other, JsonKind::Object(pairs)) if index.types.contains_key(other) => {
                    let decl = index.types[other];
                    for (key, v) in pairs {
                        match decl.fields.iter().find(|f| f.name.name == key.name) {
                            Some(f) => fits(index, v, &f.ty, depth + 1)?,
                            None => {
                                return Err((
                                    key.span,
                                    format!("a field of `{other}` (it has no `{}`)", key.name),
                                ))
                            }
                        }
                    }
                    if let Some(missing) = decl.fields.iter().find(|f| {
                        !f.ty.optional && !pairs.iter().any(|(k, _)| k.name == f.name.name)
                    }) {
                        return Err((
                            value.span,
                            format!("a `{other}` with field `{}`", missing.name.name),
                        ));
                    }
                    true
                }
                _ => false,
            };
            if ok
                || (!index.types.contains_key(name.name.as_str())
                    && builtin_schema(&name.name).is_none())
            {
                Ok(())
            } else {
                Err((value.span, format!("a value of type `{}`", name.name)))
            }
        }
    }
}

/// Every check of one tool declaration.
pub(crate) fn check_tool(
    index: &Index,
    tool: &ToolDecl,
    session_vars: &BTreeSet<&str>,
    used_types: &mut BTreeSet<String>,
    out: &mut Diagnostics,
) {
    duplicate_names(tool.params.iter().map(|p| &p.name), "parameter", out);
    for p in &tool.params {
        check_type(index, &p.ty, used_types, out);
        if let Some(Binding::Session(var)) = &p.binding {
            if !session_vars.contains(var.name.as_str()) {
                out.report(Finding::UnknownBinding {
                    var,
                    suggestion: did_you_mean(&var.name, session_vars.iter().copied()),
                });
            } else if let Some(var_ty) = index.var_type(&var.name) {
                if !same_type(var_ty, &p.ty) {
                    out.report(Finding::BindingType {
                        var,
                        var_ty,
                        param: &p.name,
                        param_ty: &p.ty,
                    });
                }
            }
        }
    }
    if let Some(ret) = &tool.returns {
        check_type(index, ret, used_types, out);
    }
    if let Some(who) = &tool.approval {
        if index.resolve(crate::index::Namespace::Rung, who, "an approver", out)
            && !matches!(index.rung(&who.name), Some(crate::index::Rung::Human(_)))
        {
            out.report(Finding::ApproverNotHuman {
                name: who,
                kind: index.kind_of(&who.name).unwrap_or("rung"),
            });
        }
    }
    match tool.implementations.as_slice() {
        [] => out.report(Finding::NoImplementation { tool: &tool.name }),
        [_] => {}
        [first, rest @ ..] => {
            for again in rest {
                out.report(Finding::Repeated {
                    first: first.span,
                    again: again.span,
                    what: format!("an implementation of tool `{}`", tool.name.name),
                    keep: "a tool has exactly one of `http`, `exec`, `mock`, `host` or `mcp`",
                });
            }
        }
    }
    for imp in &tool.implementations {
        match &imp.kind {
            ToolImplKind::Http { url, body, .. } => {
                for (name, offset) in placeholders(&url.value) {
                    if !tool.params.iter().any(|p| p.name.name == name) {
                        // +1 for the opening quote of the literal.
                        let start = url.span.start + 1 + offset;
                        let span = Span::new(url.span.file, start, start + name.len() + 2);
                        let candidates = tool.params.iter().map(|p| p.name.name.as_str());
                        out.report(Finding::UrlPlaceholder {
                            at: span,
                            tool: &tool.name.name,
                            suggestion: did_you_mean(&name, candidates),
                            name,
                        });
                    }
                }
                let _ = body;
            }
            ToolImplKind::Mock(value) => {
                if let Some(ret) = &tool.returns {
                    if let Err((span, expected)) = fits(index, value, ret, 0) {
                        out.report(Finding::MockMisfit {
                            at: span,
                            tool: &tool.name.name,
                            returns: ret.span,
                            expected,
                        });
                    }
                }
            }
            ToolImplKind::Mcp { server, remote } => {
                index.resolve(
                    crate::index::Namespace::Mcp,
                    server,
                    "an MCP tool's server",
                    out,
                );
                if let Some(r) = remote {
                    if r.value.trim().is_empty() {
                        out.report(Finding::McpBadValue {
                            at: r.span,
                            server: &server.name,
                            why: "the tool's name on the server is empty",
                        });
                    }
                }
            }
            ToolImplKind::Exec { .. } | ToolImplKind::Host(_) => {}
        }
    }
    if let Some((t, span)) = tool.timeout {
        if t <= 0.0 || t > 600.0 {
            out.report(Finding::ToolTimeout {
                at: span,
                seconds: t,
            });
        }
    }
    if let Some((r, span)) = tool.retries {
        if r.fract() != 0.0 || !(0.0..=10.0).contains(&r) {
            out.report(Finding::ToolRetries {
                at: span,
                retries: r,
            });
        }
    }
}

/// `{name}` placeholders (single braces) in a URL, with their byte offset.
pub(crate) fn placeholders(url: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = url[at..].find('{') {
        let start = at + open;
        let Some(len) = url[start + 1..].find('}') else {
            break;
        };
        let name = &url[start + 1..start + 1 + len];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push((name.to_string(), start));
        }
        at = start + 1 + len;
    }
    found
}

/// A literal as JSON.
pub(crate) fn literal_value(lit: &Literal) -> Value {
    match &lit.kind {
        LiteralKind::String(s) => Value::String(s.clone()),
        LiteralKind::Number(n) | LiteralKind::Duration(n) | LiteralKind::Money(n) => json!(n),
        LiteralKind::Bool(b) => Value::Bool(*b),
    }
}

/// Does a literal (a variable's default) fit a type? `Err` says what was expected. The same
/// rules as [`fits`]; a duration or an amount fits no variable type.
pub(crate) fn literal_fits(index: &Index, lit: &Literal, ty: &TypeExpr) -> Result<(), String> {
    let kind = match &lit.kind {
        LiteralKind::String(s) => JsonKind::String(s.clone()),
        LiteralKind::Number(n) => JsonKind::Number(*n),
        LiteralKind::Bool(b) => JsonKind::Bool(*b),
        LiteralKind::Duration(_) | LiteralKind::Money(_) => {
            return Err(format!("a value of type `{ty}`"))
        }
    };
    let value = Json {
        kind,
        span: lit.span,
    };
    fits(index, &value, ty, 0).map_err(|(_, expected)| expected)
}

/// Whether two written types are the same type, optionality aside (a bound value is present or
/// not either way).
pub(crate) fn same_type(a: &TypeExpr, b: &TypeExpr) -> bool {
    let bare = |t: &TypeExpr| t.to_string().trim_end_matches('?').to_string();
    bare(a) == bare(b)
}
