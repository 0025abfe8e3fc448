//! Lowering: pest pairs to the typed AST, in one pass.

use super::Rule;
use crate::ast::*;
use crate::source::{FileId, Span};
use pest::iterators::Pair;

/// Punctuation and keywords are named rules only so that errors can name them; lowering skips them.
fn is_meaningful(pair: &Pair<Rule>) -> bool {
    !matches!(
        pair.as_rule(),
        Rule::arrow
            | Rule::lbrace
            | Rule::rbrace
            | Rule::lbracket
            | Rule::rbracket
            | Rule::lparen
            | Rule::rparen
            | Rule::colon
            | Rule::equals
            | Rule::comma
            | Rule::semicolon
            | Rule::inner_open
            | Rule::outer_open
            | Rule::kw_ladder
            | Rule::kw_use
            | Rule::kw_entry
            | Rule::kw_vars
            | Rule::kw_meta
            | Rule::kw_model
            | Rule::kw_intent
            | Rule::kw_examples
            | Rule::kw_type
            | Rule::kw_enum
            | Rule::kw_tool
            | Rule::kw_http
            | Rule::kw_auth
            | Rule::kw_bearer
            | Rule::kw_header
            | Rule::kw_body
            | Rule::kw_exec
            | Rule::kw_mock
            | Rule::kw_host
            | Rule::kw_mcp
            | Rule::kw_timeout
            | Rule::kw_retries
            | Rule::kw_approval
            | Rule::kw_env
            | Rule::kw_agent
            | Rule::kw_prompt
            | Rule::kw_tools
            | Rule::kw_accepts
            | Rule::kw_handoff
            | Rule::kw_context
            | Rule::kw_escalate
            | Rule::kw_when
            | Rule::kw_consult
            | Rule::kw_sla
            | Rule::kw_else
            | Rule::kw_fallback
            | Rule::kw_router
            | Rule::kw_human
            | Rule::kw_script
            | Rule::kw_say
            | Rule::kw_collect
            | Rule::kw_end
            | Rule::kw_test
            | Rule::kw_user
            | Rule::kw_says
            | Rule::kw_calls
            | Rule::kw_expect
            | Rule::kw_escalation
            | Rule::kw_reply
            | Rule::kw_contains
            | Rule::kw_matches
            | Rule::kw_called
            | Rule::kw_with
            | Rule::kw_ceiling
            | Rule::kw_var
            | Rule::kw_ended
    )
}

pub(super) struct Lower {
    pub file: FileId,
    /// Where the parsed piece starts in the file (non-zero for the pieces of a parallel parse).
    pub offset: usize,
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Removes the blank first and last lines of a `"""` string and the indentation common to the rest.
pub fn dedent(raw: &str) -> String {
    let mut lines: Vec<&str> = raw.split('\n').collect();
    if lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    if lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                l.get(indent..).unwrap_or(l.trim_start()).trim_end()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finds `{{ path }}` references in raw prompt text that starts at byte `offset` of the file.
fn template_refs(file: FileId, raw: &str, offset: usize) -> Vec<TemplateRef> {
    let mut refs = Vec::new();
    let mut at = 0;
    while let Some(open) = raw[at..].find("{{") {
        let start = at + open;
        let Some(close) = raw[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        let inner = raw[start + 2..start + 2 + close].trim();
        let path = inner.split('.').map(|p| p.trim().to_string()).collect();
        refs.push(TemplateRef {
            path,
            span: Span::new(file, offset + start, offset + end),
        });
        at = end;
    }
    refs
}

impl Lower {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.offset + s.start(), self.offset + s.end())
    }

    /// A statement's span, ending at its last token: pest counts the white space and comments it
    /// skipped while trying an optional part that was absent, and a label would then cover the
    /// line break, the formatter would take a trailing comment for one inside the statement.
    fn token_span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        let text = pair.as_str();
        let end = s.start() + crate::lex::last_token_end(text, 0, text.len());
        Span::new(self.file, self.offset + s.start(), self.offset + end)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn string(&self, pair: Pair<Rule>) -> StringLit {
        let span = self.span(&pair);
        let inner = pair
            .into_inner()
            .find(is_meaningful)
            .map(|p| p.as_str())
            .unwrap_or("");
        StringLit {
            value: unescape(inner),
            span,
        }
    }

    fn prompt(&self, pair: Pair<Rule>) -> Prompt {
        let span = self.span(&pair);
        let triple = pair.as_rule() == Rule::triple_string;
        let inner = pair
            .into_inner()
            .find(is_meaningful)
            .expect("strings always have an inner rule");
        let offset = self.offset + inner.as_span().start();
        let raw = inner.as_str();
        let templates = template_refs(self.file, raw, offset);
        let text = if triple { dedent(raw) } else { unescape(raw) };
        Prompt {
            text,
            templates,
            span,
        }
    }

    fn number(&self, pair: &Pair<Rule>) -> f64 {
        // The grammar only admits digits with an optional fraction, so this parse cannot fail;
        // a huge literal becomes infinity, which the checker reports as absurd.
        pair.as_str().parse().unwrap_or(f64::INFINITY)
    }

    pub(super) fn file(&self, pair: Pair<Rule>) -> File {
        let span = self.span(&pair);
        let mut file = File {
            span,
            version: None,
            attrs: Vec::new(),
            items: Vec::new(),
            broken: Vec::new(),
        };
        for p in pair.into_inner().filter(is_meaningful) {
            match p.as_rule() {
                Rule::version_line => {
                    let num = p
                        .into_inner()
                        .filter(is_meaningful)
                        .find(|p| p.as_rule() == Rule::version_number)
                        .expect("version_line has a number");
                    file.version = Some(Version {
                        number: num.as_str().parse().unwrap_or(u32::MAX),
                        raw: num.as_str().to_string(),
                        span: self.span(&num),
                    });
                }
                Rule::inner_attr => file.attrs.push(self.attr(p)),
                Rule::item => file.items.push(self.item(p)),
                _ => {}
            }
        }
        file
    }

    fn attr(&self, pair: Pair<Rule>) -> Attr {
        let span = self.span(&pair);
        let mut level = AttrLevel::Allow;
        let mut lints = Vec::new();
        for p in pair.into_inner().filter(is_meaningful) {
            match p.as_rule() {
                Rule::attr_level => {
                    level = match p.as_str() {
                        "deny" => AttrLevel::Deny,
                        "warn" => AttrLevel::Warn,
                        _ => AttrLevel::Allow,
                    }
                }
                Rule::lint_list => {
                    lints.extend(p.into_inner().filter(is_meaningful).map(|l| self.ident(l)))
                }
                _ => {}
            }
        }
        Attr { level, lints, span }
    }

    fn item(&self, pair: Pair<Rule>) -> Item {
        let span = self.token_span(&pair);
        let mut docs = Vec::new();
        let mut attrs = Vec::new();
        let mut kind = None;
        for p in pair.into_inner().filter(is_meaningful) {
            match p.as_rule() {
                Rule::doc_comment => docs.push(self.doc(p)),
                Rule::outer_attr => attrs.push(self.attr(p)),
                Rule::use_decl => {
                    let s = p
                        .into_inner()
                        .filter(is_meaningful)
                        .find(|p| p.as_rule() == Rule::string);
                    kind = Some(ItemKind::Use(self.string(s.expect("use has a path"))));
                }
                Rule::ladder_decl => kind = Some(ItemKind::Ladder(Box::new(self.ladder(p)))),
                Rule::model_decl => kind = Some(ItemKind::Model(self.model(p))),
                Rule::intent_decl => kind = Some(ItemKind::Intent(Box::new(self.intent(p)))),
                Rule::type_decl => kind = Some(ItemKind::Type(self.type_decl(p))),
                Rule::tool_decl => kind = Some(ItemKind::Tool(Box::new(self.tool(p)))),
                Rule::agent_decl => kind = Some(ItemKind::Agent(self.agent(p))),
                Rule::human_decl => kind = Some(ItemKind::Human(Box::new(self.human(p)))),
                Rule::script_decl => kind = Some(ItemKind::Script(self.script(p))),
                Rule::mcp_decl => kind = Some(ItemKind::Mcp(Box::new(self.mcp(p)))),
                Rule::meta_block => kind = Some(ItemKind::Meta(self.meta(p))),
                Rule::test_decl => kind = Some(ItemKind::Test(self.test(p))),
                _ => {}
            }
        }
        Item {
            docs,
            attrs,
            kind: kind.expect("an item always has a declaration"),
            span,
        }
    }

    fn doc(&self, pair: Pair<Rule>) -> String {
        pair.into_inner()
            .find(is_meaningful)
            .map(|t| {
                t.as_str()
                    .strip_prefix(' ')
                    .unwrap_or(t.as_str())
                    .to_string()
            })
            .unwrap_or_default()
    }

    fn meta(&self, pair: Pair<Rule>) -> MetaBlock {
        let span = self.span(&pair);
        let raw = pair
            .into_inner()
            .filter(is_meaningful)
            .find(|p| p.as_rule() == Rule::meta_body)
            .and_then(|b| b.into_inner().find(is_meaningful))
            .map(|c| c.as_str().to_string())
            .unwrap_or_default();
        MetaBlock { raw, span }
    }

    fn unknown(&self, pair: Pair<Rule>) -> UnknownStmt {
        let span = self.span(&pair);
        let keyword = self.ident(
            pair.into_inner()
                .find(is_meaningful)
                .expect("unknown_stmt starts with a name"),
        );
        UnknownStmt { keyword, span }
    }

    fn ladder(&self, pair: Pair<Rule>) -> LadderDecl {
        let mut inner = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_ladder);
        let name = self.ident(inner.next().expect("ladder has a name"));
        let mut decl = LadderDecl {
            name,
            entries: Vec::new(),
            blocks: Vec::new(),
            vars: Vec::new(),
            meta: Vec::new(),
            unknown: Vec::new(),
        };
        for stmt in inner {
            let Some(p) = stmt.into_inner().find(is_meaningful) else {
                continue;
            };
            match p.as_rule() {
                Rule::entry_stmt => {
                    let id = p
                        .into_inner()
                        .filter(is_meaningful)
                        .find(|p| p.as_rule() == Rule::ident);
                    decl.entries.push(self.ident(id.expect("entry has a name")));
                }
                Rule::named_props => {
                    let mut it = p.into_inner().filter(is_meaningful);
                    let name = self.ident(it.next().expect("block has a name"));
                    let props = self.props(it.next().expect("block has props"));
                    decl.blocks.push(PropBlock { name, props });
                }
                Rule::vars_block => {
                    for v in p
                        .into_inner()
                        .filter(is_meaningful)
                        .filter(|p| p.as_rule() == Rule::var_decl)
                    {
                        decl.vars.push(self.var_decl(v));
                    }
                }
                Rule::meta_block => decl.meta.push(self.meta(p)),
                Rule::unknown_stmt => decl.unknown.push(self.unknown(p)),
                _ => {}
            }
        }
        decl
    }

    fn var_decl(&self, pair: Pair<Rule>) -> VarDecl {
        let mut it = pair.into_inner().filter(is_meaningful);
        let name = self.ident(it.next().expect("var has a name"));
        let ty = self.type_expr(it.next().expect("var has a type"));
        let default = it.next().map(|l| self.literal(l));
        VarDecl { name, ty, default }
    }

    fn props(&self, pair: Pair<Rule>) -> Vec<Prop> {
        pair.into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() == Rule::prop)
            .map(|p| {
                let mut it = p.into_inner().filter(is_meaningful);
                let key = self.ident(it.next().expect("prop has a key"));
                let value = self.value(it.next().expect("prop has a value"));
                Prop { key, value }
            })
            .collect()
    }

    fn value(&self, pair: Pair<Rule>) -> Value {
        let span = self.span(&pair);
        let p = pair
            .into_inner()
            .find(is_meaningful)
            .expect("value has one alternative");
        let kind = match p.as_rule() {
            Rule::price => {
                let mut it = p.into_inner().filter(is_meaningful);
                let amount = self.number(&it.next().expect("price has an amount"));
                let unit = it.next().map(|u| u.as_str()).unwrap_or("Mtok");
                let per_million = match unit {
                    "tok" => amount * 1_000_000.0,
                    "Ktok" => amount * 1_000.0,
                    _ => amount,
                };
                ValueKind::Price(per_million)
            }
            Rule::money => {
                ValueKind::Money(self.number(&p.into_inner().find(is_meaningful).expect("amount")))
            }
            Rule::duration => ValueKind::Duration(self.duration(p)),
            Rule::number => ValueKind::Number(self.number(&p)),
            Rule::string => ValueKind::String(self.string(p).value),
            Rule::boolean => ValueKind::Bool(p.as_str() == "true"),
            Rule::env_ref => ValueKind::Env(self.env_ref(p).name),
            Rule::value_list => ValueKind::List(
                p.into_inner()
                    .filter(is_meaningful)
                    .map(|v| self.value(v))
                    .collect(),
            ),
            _ => ValueKind::Ident(p.as_str().to_string()),
        };
        Value { kind, span }
    }

    fn duration(&self, pair: Pair<Rule>) -> f64 {
        let mut it = pair.into_inner().filter(is_meaningful);
        let amount = self.number(&it.next().expect("duration has an amount"));
        match it.next().map(|u| u.as_str()) {
            Some("ms") => amount / 1000.0,
            Some("m") => amount * 60.0,
            Some("h") => amount * 3600.0,
            _ => amount,
        }
    }

    fn literal(&self, pair: Pair<Rule>) -> Literal {
        let span = self.span(&pair);
        let p = pair
            .into_inner()
            .find(is_meaningful)
            .expect("literal has one alternative");
        let kind = match p.as_rule() {
            Rule::string => LiteralKind::String(self.string(p).value),
            Rule::duration => LiteralKind::Duration(self.duration(p)),
            Rule::money => LiteralKind::Money(
                self.number(&p.into_inner().find(is_meaningful).expect("amount")),
            ),
            Rule::boolean => LiteralKind::Bool(p.as_str() == "true"),
            _ => LiteralKind::Number(self.number(&p)),
        };
        Literal { kind, span }
    }

    fn env_ref(&self, pair: Pair<Rule>) -> Ident {
        let name = pair
            .into_inner()
            .filter(is_meaningful)
            .find(|p| p.as_rule() == Rule::env_name)
            .expect("env has a name");
        self.ident(name)
    }

    fn model(&self, pair: Pair<Rule>) -> ModelDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_model);
        let name = self.ident(it.next().expect("model has a name"));
        let props = self.props(it.next().expect("model has props"));
        ModelDecl { name, props }
    }

    fn intent(&self, pair: Pair<Rule>) -> IntentDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_intent);
        let name = self.ident(it.next().expect("intent has a name"));
        let mut decl = IntentDecl {
            name,
            description: None,
            examples: Vec::new(),
            fields: Vec::new(),
        };
        for p in it {
            match p.as_rule() {
                Rule::string => decl.description = Some(self.string(p)),
                Rule::intent_body => {
                    for member in p.into_inner().filter(is_meaningful) {
                        let Some(m) = member.into_inner().find(is_meaningful) else {
                            continue;
                        };
                        match m.as_rule() {
                            Rule::examples_stmt => decl.examples.extend(
                                m.into_inner()
                                    .filter(is_meaningful)
                                    .filter(|s| s.as_rule() == Rule::string)
                                    .map(|s| self.string(s)),
                            ),
                            _ => decl.fields.push(self.field(m)),
                        }
                    }
                }
                _ => {}
            }
        }
        decl
    }

    fn field(&self, pair: Pair<Rule>) -> Field {
        let mut docs = Vec::new();
        let mut name = None;
        let mut ty = None;
        for p in pair.into_inner().filter(is_meaningful) {
            match p.as_rule() {
                Rule::doc_comment => docs.push(self.doc(p)),
                Rule::ident => name = Some(self.ident(p)),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                _ => {}
            }
        }
        Field {
            docs,
            name: name.expect("field has a name"),
            ty: ty.expect("field has a type"),
        }
    }

    fn type_decl(&self, pair: Pair<Rule>) -> TypeDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_type);
        let name = self.ident(it.next().expect("type has a name"));
        let fields = it
            .filter(|p| p.as_rule() == Rule::field)
            .map(|f| self.field(f))
            .collect();
        TypeDecl { name, fields }
    }

    fn type_expr(&self, pair: Pair<Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut it = pair.into_inner().filter(is_meaningful);
        let atom = it.next().expect("type has an atom");
        let optional = it.next().is_some();
        let inner = atom
            .into_inner()
            .find(is_meaningful)
            .expect("atom has one alternative");
        let kind = match inner.as_rule() {
            Rule::list_type => TypeKind::List(Box::new(
                self.type_expr(
                    inner
                        .into_inner()
                        .find(is_meaningful)
                        .expect("list has an element type"),
                ),
            )),
            Rule::enum_type => TypeKind::Enum(
                inner
                    .into_inner()
                    .filter(is_meaningful)
                    .filter(|p| p.as_rule() == Rule::ident)
                    .map(|p| self.ident(p))
                    .collect(),
            ),
            _ => TypeKind::Named(self.ident(inner)),
        };
        TypeExpr {
            kind,
            optional,
            span,
        }
    }

    fn tool(&self, pair: Pair<Rule>) -> ToolDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_tool);
        let name = self.ident(it.next().expect("tool has a name"));
        let mut decl = ToolDecl {
            name,
            params: Vec::new(),
            returns: None,
            description: None,
            implementations: Vec::new(),
            timeout: None,
            retries: None,
            approval: None,
            unknown: Vec::new(),
        };
        for p in it {
            match p.as_rule() {
                Rule::params => {
                    decl.params = p
                        .into_inner()
                        .filter(is_meaningful)
                        .map(|param| self.param(param))
                        .collect()
                }
                Rule::type_expr => decl.returns = Some(self.type_expr(p)),
                Rule::tool_body => {
                    for stmt in p.into_inner().filter(is_meaningful) {
                        let Some(s) = stmt.into_inner().find(is_meaningful) else {
                            continue;
                        };
                        self.tool_stmt(&mut decl, s);
                    }
                }
                _ => {}
            }
        }
        decl
    }

    fn param(&self, pair: Pair<Rule>) -> Param {
        let mut it = pair.into_inner().filter(is_meaningful);
        let name = self.ident(it.next().expect("param has a name"));
        let ty = self.type_expr(it.next().expect("param has a type"));
        let binding = it.next().map(|b| {
            let b = b
                .into_inner()
                .find(is_meaningful)
                .expect("binding has one alternative");
            match b.as_rule() {
                Rule::env_ref => Binding::Env(self.env_ref(b)),
                Rule::session_ref => Binding::Session(
                    self.ident(b.into_inner().find(is_meaningful).expect("session name")),
                ),
                _ => Binding::Literal(self.literal(b)),
            }
        });
        Param { name, ty, binding }
    }

    fn tool_stmt(&self, decl: &mut ToolDecl, s: Pair<Rule>) {
        let span = self.token_span(&s);
        match s.as_rule() {
            Rule::description => {
                decl.description =
                    Some(self.string(s.into_inner().find(is_meaningful).expect("string")))
            }
            Rule::http_impl => {
                let mut method = String::new();
                let mut url = None;
                let mut bearer_env = None;
                let mut headers = Vec::new();
                let mut body = None;
                for p in s.into_inner().filter(is_meaningful) {
                    match p.as_rule() {
                        Rule::http_method => method = p.as_str().to_string(),
                        Rule::string => url = Some(self.string(p)),
                        Rule::http_option => {
                            let o = p
                                .into_inner()
                                .find(is_meaningful)
                                .expect("option has a kind");
                            match o.as_rule() {
                                Rule::auth_option => {
                                    let env = o
                                        .into_inner()
                                        .filter(is_meaningful)
                                        .find(|p| p.as_rule() == Rule::env_ref);
                                    bearer_env = env.map(|e| self.env_ref(e));
                                }
                                Rule::header_option => {
                                    let mut it = o
                                        .into_inner()
                                        .filter(is_meaningful)
                                        .filter(|p| p.as_rule() != Rule::kw_header);
                                    let name = self.string(it.next().expect("header name"));
                                    let v = it.next().expect("header value");
                                    let value = if v.as_rule() == Rule::env_ref {
                                        HeaderValue::Env(self.env_ref(v))
                                    } else {
                                        HeaderValue::Literal(self.string(v))
                                    };
                                    headers.push((name, value));
                                }
                                _ => {
                                    let j = o
                                        .into_inner()
                                        .filter(is_meaningful)
                                        .find(|p| p.as_rule() == Rule::json_value);
                                    body = j.map(|j| self.json(j));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                decl.implementations.push(ToolImpl {
                    kind: ToolImplKind::Http {
                        method,
                        url: url.expect("http has a url"),
                        bearer_env,
                        headers,
                        body,
                    },
                    span,
                });
            }
            Rule::exec_impl => {
                let mut strings = s
                    .into_inner()
                    .filter(is_meaningful)
                    .filter(|p| p.as_rule() == Rule::string)
                    .map(|p| self.string(p));
                let program = strings.next().expect("exec has a program");
                decl.implementations.push(ToolImpl {
                    kind: ToolImplKind::Exec {
                        program,
                        args: strings.collect(),
                    },
                    span,
                });
            }
            Rule::mock_impl => {
                let j = s
                    .into_inner()
                    .filter(is_meaningful)
                    .find(|p| p.as_rule() == Rule::json_value)
                    .expect("mock has a value");
                decl.implementations.push(ToolImpl {
                    kind: ToolImplKind::Mock(self.json(j)),
                    span,
                });
            }
            Rule::host_impl => {
                let name = s
                    .into_inner()
                    .filter(is_meaningful)
                    .find(|p| p.as_rule() == Rule::string)
                    .map(|p| self.string(p));
                decl.implementations.push(ToolImpl {
                    kind: ToolImplKind::Host(name),
                    span,
                });
            }
            Rule::mcp_impl => {
                let mut parts = s.into_inner().filter(is_meaningful);
                let server = parts
                    .find(|p| p.as_rule() == Rule::ident)
                    .map(|p| self.ident(p))
                    .expect("mcp names a server");
                let remote = parts
                    .find(|p| p.as_rule() == Rule::string)
                    .map(|p| self.string(p));
                decl.implementations.push(ToolImpl {
                    kind: ToolImplKind::Mcp { server, remote },
                    span,
                });
            }
            Rule::timeout_stmt => {
                let d = s
                    .into_inner()
                    .filter(is_meaningful)
                    .find(|p| p.as_rule() == Rule::duration);
                let d = d.expect("timeout has a duration");
                let dspan = self.span(&d);
                decl.timeout = Some((self.duration(d), dspan));
            }
            Rule::retries_stmt => {
                let n = s
                    .into_inner()
                    .filter(is_meaningful)
                    .find(|p| p.as_rule() == Rule::number);
                let n = n.expect("retries has a number");
                decl.retries = Some((self.number(&n), self.span(&n)));
            }
            Rule::approval_stmt => {
                let who = s
                    .into_inner()
                    .filter(is_meaningful)
                    .find(|p| p.as_rule() == Rule::ident)
                    .expect("approval names a human");
                decl.approval = Some(self.ident(who));
            }
            Rule::unknown_stmt => decl.unknown.push(self.unknown(s)),
            _ => {}
        }
    }

    fn json(&self, pair: Pair<Rule>) -> Json {
        let span = self.span(&pair);
        let p = pair
            .into_inner()
            .find(is_meaningful)
            .expect("json value has one alternative");
        let kind = match p.as_rule() {
            Rule::json_object => return self.json_object(p),
            Rule::json_array => JsonKind::Array(
                p.into_inner()
                    .filter(is_meaningful)
                    .map(|v| self.json(v))
                    .collect(),
            ),
            Rule::string => JsonKind::String(self.string(p).value),
            Rule::number => JsonKind::Number(self.number(&p)),
            Rule::boolean => JsonKind::Bool(p.as_str() == "true"),
            _ => JsonKind::Null,
        };
        Json { kind, span }
    }

    fn agent(&self, pair: Pair<Rule>) -> AgentDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_agent);
        let name = self.ident(it.next().expect("agent has a name"));
        let stmts = it.map(|s| self.agent_stmt(s)).collect();
        AgentDecl { name, stmts }
    }

    fn agent_stmt(&self, pair: Pair<Rule>) -> AgentStmt {
        let mut docs = Vec::new();
        let mut attrs = Vec::new();
        let mut kind = None;
        let mut span = self.span(&pair);
        for p in pair.into_inner().filter(is_meaningful) {
            match p.as_rule() {
                Rule::doc_comment => docs.push(self.doc(p)),
                Rule::outer_attr => attrs.push(self.attr(p)),
                _ => {
                    span = self.token_span(&p);
                    kind = Some(self.agent_stmt_kind(p));
                }
            }
        }
        AgentStmt {
            docs,
            attrs,
            kind: kind.expect("an agent statement has a kind"),
            span,
        }
    }

    fn agent_stmt_kind(&self, p: Pair<Rule>) -> AgentStmtKind {
        let rule = p.as_rule();
        if matches!(rule, Rule::unknown_stmt | Rule::unknown_block_stmt) {
            return AgentStmtKind::Unknown(self.unknown(p));
        }
        if rule == Rule::router_stmt {
            return AgentStmtKind::Router;
        }
        if rule == Rule::return_stmt {
            return AgentStmtKind::Return;
        }
        let mut it = p.into_inner().filter(is_meaningful).filter(|p| {
            !matches!(
                p.as_rule(),
                Rule::kw_model
                    | Rule::kw_prompt
                    | Rule::kw_tools
                    | Rule::kw_accepts
                    | Rule::kw_handoff
                    | Rule::kw_escalate
                    | Rule::kw_consult
                    | Rule::kw_sla
                    | Rule::kw_else
                    | Rule::kw_fallback
                    | Rule::kw_when
                    | Rule::kw_owns
            )
        });
        match rule {
            Rule::owns_stmt => AgentStmtKind::Owns(self.ident(it.next().expect("owns what"))),
            Rule::model_stmt => AgentStmtKind::Model(self.ident(it.next().expect("model name"))),
            Rule::prompt_stmt => AgentStmtKind::Prompt(self.prompt(it.next().expect("prompt"))),
            Rule::tools_stmt => AgentStmtKind::Tools(it.map(|t| self.ident(t)).collect()),
            Rule::accepts_stmt => AgentStmtKind::Accepts(it.map(|t| self.ident(t)).collect()),
            Rule::handoff_stmt => {
                let intent = self.ident(it.next().expect("handoff intent"));
                let target = self.ident(it.next().expect("handoff target"));
                let mut fuse = None;
                let mut rest: Vec<_> = it.collect();
                if rest
                    .last()
                    .is_some_and(|p| p.as_rule() == Rule::fuse_clause)
                {
                    let f = rest.pop().expect("just seen");
                    fuse = Some((f.as_str() == "fuse", self.span(&f)));
                }
                let context = rest.into_iter().next().map(|c| {
                    let span = self.token_span(&c);
                    let mut ci = c
                        .into_inner()
                        .filter(is_meaningful)
                        .filter(|p| p.as_rule() != Rule::kw_context);
                    let policy = self.ident(ci.next().expect("context policy"));
                    let argument = ci.next().map(|n| (self.number(&n), self.span(&n)));
                    ContextClause {
                        policy,
                        argument,
                        span,
                    }
                });
                AgentStmtKind::Handoff(Box::new(Handoff {
                    intent,
                    target,
                    context,
                    fuse,
                }))
            }
            Rule::escalate_stmt => {
                let target = self.ident(it.next().expect("escalate target"));
                let condition = it.next().map(|c| self.condition(c));
                AgentStmtKind::Escalate(Box::new(Escalate { target, condition }))
            }
            Rule::consult_stmt => AgentStmtKind::Consult(self.ident(it.next().expect("agent"))),
            Rule::sla_stmt => {
                let d = it.next().expect("sla duration");
                let duration_span = self.span(&d);
                let seconds = self.duration(d);
                let otherwise = it.next().map(|t| self.ident(t));
                AgentStmtKind::Sla {
                    seconds,
                    duration_span,
                    otherwise,
                }
            }
            _ => AgentStmtKind::Fallback(self.ident(it.next().expect("fallback target"))),
        }
    }

    fn condition(&self, pair: Pair<Rule>) -> Condition {
        let span = self.token_span(&pair);
        let mut it = pair.into_inner().filter(is_meaningful);
        let first = self.comparison(it.next().expect("condition has a comparison"));
        let mut rest = Vec::new();
        while let (Some(op), Some(cmp)) = (it.next(), it.next()) {
            let op = if op.as_str() == "and" {
                LogicOp::And
            } else {
                LogicOp::Or
            };
            rest.push((op, self.comparison(cmp)));
        }
        Condition { first, rest, span }
    }

    fn comparison(&self, pair: Pair<Rule>) -> Comparison {
        let span = self.token_span(&pair);
        let mut it = pair.into_inner().filter(is_meaningful);
        let signal = self.ident(it.next().expect("comparison has a signal"));
        let op = match it.next().map(|o| o.as_str()) {
            Some("<") => CompareOp::Lt,
            Some("<=") => CompareOp::Le,
            Some(">") => CompareOp::Gt,
            Some(">=") => CompareOp::Ge,
            Some("==") => CompareOp::Eq,
            _ => CompareOp::Ne,
        };
        let v = it.next().expect("comparison has an operand");
        let operand = match v.as_rule() {
            Rule::number => Operand::Number(self.number(&v)),
            Rule::string => Operand::String(self.string(v).value),
            Rule::boolean => Operand::Bool(v.as_str() == "true"),
            _ => Operand::Ident(v.as_str().to_string()),
        };
        Comparison {
            signal,
            op,
            operand,
            span,
        }
    }

    fn test(&self, pair: Pair<Rule>) -> TestDecl {
        let mut it = pair.into_inner().filter(is_meaningful);
        let name = self.string(it.next().expect("test has a name"));
        let steps = it
            .filter_map(|s| s.into_inner().find(is_meaningful))
            .map(|s| {
                let span = self.token_span(&s);
                let rule = s.as_rule();
                let mut inner = s.into_inner().filter(is_meaningful);
                let kind = match rule {
                    Rule::user_turn => {
                        TestStepKind::User(self.string(inner.next().expect("user text")))
                    }
                    Rule::model_answer => {
                        let agent = self.ident(inner.next().expect("agent"));
                        let answer = inner.next().expect("answer");
                        let says = answer.as_rule() == Rule::says_answer;
                        let mut a = answer.into_inner().filter(is_meaningful);
                        if says {
                            TestStepKind::Says {
                                agent,
                                text: self.string(a.next().expect("text")),
                            }
                        } else {
                            let function = self.ident(a.next().expect("function"));
                            let arguments = a.next().map(|j| self.json_object(j));
                            TestStepKind::Calls {
                                agent,
                                function,
                                arguments,
                            }
                        }
                    }
                    Rule::tool_stub => {
                        let tool = self.ident(inner.next().expect("tool"));
                        let outcome = inner.next().expect("stub outcome");
                        let returns = outcome.as_rule() == Rule::stub_returns;
                        let value = outcome
                            .into_inner()
                            .find(|p| matches!(p.as_rule(), Rule::json_value | Rule::string))
                            .expect("the grammar gives a stub a value");
                        let outcome = if returns {
                            StubOutcome::Returns(self.json(value))
                        } else {
                            StubOutcome::Fails(self.string(value))
                        };
                        TestStepKind::Stub { tool, outcome }
                    }
                    _ => TestStepKind::Expect(self.expectation(inner.next().expect("expectation"))),
                };
                TestStep { kind, span }
            })
            .collect();
        TestDecl { name, steps }
    }

    /// A `json_object` pair as a [`Json`] (the `json_value` wrapper is absent here).
    fn json_object(&self, pair: Pair<Rule>) -> Json {
        let span = self.span(&pair);
        let pairs = pair
            .into_inner()
            .filter(is_meaningful)
            .map(|p| {
                let mut it = p.into_inner().filter(is_meaningful);
                let k = it.next().expect("pair has a key");
                let key = if k.as_rule() == Rule::string {
                    let s = self.string(k);
                    Ident {
                        name: s.value,
                        span: s.span,
                    }
                } else {
                    self.ident(k)
                };
                (key, self.json(it.next().expect("pair has a value")))
            })
            .collect();
        Json {
            kind: JsonKind::Object(pairs),
            span,
        }
    }

    fn expectation(&self, e: Pair<Rule>) -> Expectation {
        let rule = e.as_rule();
        let parts: Vec<Pair<Rule>> = e.into_inner().filter(is_meaningful).collect();
        let ident = |i: usize| self.ident(parts[i].clone());
        match rule {
            Rule::expect_handoff => Expectation::Handoff {
                from: ident(0),
                to: ident(1),
                intent: (parts.len() > 2).then(|| ident(2)),
            },
            Rule::expect_agent => Expectation::Agent(ident(0)),
            Rule::expect_escalation => {
                if parts.len() == 2 {
                    Expectation::Escalation {
                        from: Some(ident(0)),
                        to: ident(1),
                    }
                } else {
                    Expectation::Escalation {
                        from: None,
                        to: ident(0),
                    }
                }
            }
            Rule::expect_human => Expectation::Human((!parts.is_empty()).then(|| ident(0))),
            Rule::expect_reply => {
                let negated = parts.iter().any(|p| p.as_rule() == Rule::negation);
                let text = parts
                    .iter()
                    .find(|p| p.as_rule() == Rule::string)
                    .cloned()
                    .expect("reply text");
                // `contains`/`matches` are keywords (filtered); tell them apart by the source.
                let regex = self.source_has_matches(&text);
                Expectation::Reply {
                    negated,
                    regex,
                    text: self.string(text),
                }
            }
            Rule::expect_tool => Expectation::Tool {
                tool: ident(0),
                arguments: parts.get(1).map(|j| self.json_object(j.clone())),
            },
            Rule::expect_ceiling => Expectation::Ceiling(ident(0)),
            Rule::expect_fallback => Expectation::Fallback {
                from: ident(0),
                to: ident(1),
            },
            Rule::expect_var => {
                let op = match parts[1].as_str() {
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    ">=" => CompareOp::Ge,
                    "==" => CompareOp::Eq,
                    _ => CompareOp::Ne,
                };
                let v = parts[2].clone();
                let value_span = self.span(&v);
                let value = match v.as_rule() {
                    Rule::number => Operand::Number(self.number(&v)),
                    Rule::boolean => Operand::Bool(v.as_str() == "true"),
                    _ => Operand::String(self.string(v).value),
                };
                Expectation::Var {
                    name: ident(0),
                    op,
                    value,
                    value_span,
                }
            }
            _ => Expectation::Ended,
        }
    }

    fn source_has_matches(&self, text: &Pair<Rule>) -> bool {
        // The keyword right before the string: `matches` or `contains`.
        let before = &text.get_input()[..text.as_span().start()];
        before.trim_end().ends_with("matches")
    }

    /// `KEYWORD NAME "description"? { key: value, .. }?`: the shape of `human` and `mcp` items.
    fn described_props(&self, pair: Pair<Rule>) -> (Ident, Option<StringLit>, Vec<Prop>) {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| !matches!(p.as_rule(), Rule::kw_human | Rule::kw_mcp));
        let name = self.ident(it.next().expect("the item has a name"));
        let (mut description, mut props) = (None, Vec::new());
        for p in it {
            match p.as_rule() {
                Rule::string => description = Some(self.string(p)),
                Rule::props => props = self.props(p),
                _ => {}
            }
        }
        (name, description, props)
    }

    fn human(&self, pair: Pair<Rule>) -> HumanDecl {
        let (name, description, props) = self.described_props(pair);
        HumanDecl {
            name,
            description,
            props,
        }
    }

    fn mcp(&self, pair: Pair<Rule>) -> McpDecl {
        let (name, description, props) = self.described_props(pair);
        McpDecl {
            name,
            description,
            props,
        }
    }

    fn script(&self, pair: Pair<Rule>) -> ScriptDecl {
        let mut it = pair
            .into_inner()
            .filter(is_meaningful)
            .filter(|p| p.as_rule() != Rule::kw_script);
        let name = self.ident(it.next().expect("script has a name"));
        let stmts = it
            .filter_map(|s| s.into_inner().find(is_meaningful))
            .map(|s| {
                let span = self.token_span(&s);
                let rule = s.as_rule();
                let kind = match rule {
                    Rule::unknown_stmt => ScriptStmtKind::Unknown(self.unknown(s)),
                    Rule::end_stmt => ScriptStmtKind::End,
                    Rule::say_stmt => ScriptStmtKind::Say(
                        self.prompt(
                            s.into_inner()
                                .filter(is_meaningful)
                                .find(|p| p.as_rule() != Rule::kw_say)
                                .expect("say has text"),
                        ),
                    ),
                    Rule::collect_stmt => {
                        let mut it = s
                            .into_inner()
                            .filter(is_meaningful)
                            .filter(|p| p.as_rule() != Rule::kw_collect);
                        let name = self.ident(it.next().expect("collect name"));
                        let ty = self.type_expr(it.next().expect("collect type"));
                        let question = it.next().map(|q| self.string(q));
                        ScriptStmtKind::Collect { name, ty, question }
                    }
                    _ => ScriptStmtKind::Handoff(
                        self.ident(
                            s.into_inner()
                                .filter(is_meaningful)
                                .find(|p| p.as_rule() == Rule::ident)
                                .expect("handoff target"),
                        ),
                    ),
                };
                ScriptStmt { kind, span }
            })
            .collect();
        ScriptDecl { name, stmts }
    }
}
