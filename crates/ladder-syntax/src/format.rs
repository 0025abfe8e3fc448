//! The canonical layout of a `.ladder` file (`ladderc fmt`).
//!
//! The AST is printed in one canonical form: two-space indentation, one blank line between items,
//! handoff arrows aligned within a run of handoffs, short blocks on one line. Literal atoms
//! (numbers, durations, prices, strings) are copied from the source, so their text never drifts;
//! `"""` prompts are re-indented without changing their (de-indented) text. Comments are not in
//! the AST: they are found in the source and re-attached by position, before the next node that
//! follows them, or at the end of the line they ended.

use crate::ast::*;
use crate::source::Span;

/// Blocks that fit this width stay on one line.
const WIDTH: usize = 100;

/// Formats a parsed file; `text` is the source it was parsed from.
pub fn format(file: &File, text: &str) -> String {
    let out = format_once(file, text);
    // The formatter must never break a file or keep changing it: its output parses, and
    // formatting it again changes nothing. Where that does not hold (a bug), the text is left
    // as it is rather than damaged.
    match crate::parse(crate::FileId(0), &out) {
        Ok(again) if format_once(&again, &out) == out => out,
        _ => text.to_string(),
    }
}

/// The formatter without the guard of [`format`], for the fuzz target that looks for the bugs
/// the guard hides. Not part of the stable API.
#[doc(hidden)]
pub fn format_unguarded(file: &File, text: &str) -> String {
    format_once(file, text)
}

fn format_once(file: &File, text: &str) -> String {
    let mut p = Printer {
        text,
        out: String::new(),
        indent: 0,
        comments: comments(text, &verbatim(file)),
        next_comment: 0,
        last_end: 0,
    };
    p.file(file);
    p.out
}

/// Spans the grammar reads as raw text (`meta { .. }` bodies, statements it does not know):
/// a `//` or `/*` inside them is part of that text, not a comment.
fn verbatim(file: &File) -> Vec<(usize, usize)> {
    use crate::ast::{AgentStmtKind, ItemKind, ScriptStmtKind};
    let mut spans = Vec::new();
    for item in &file.items {
        match &item.kind {
            ItemKind::Meta(m) => spans.push((m.span.start, m.span.end)),
            ItemKind::Ladder(l) => {
                spans.extend(l.meta.iter().map(|m| (m.span.start, m.span.end)));
                spans.extend(l.unknown.iter().map(|u| (u.span.start, u.span.end)));
            }
            ItemKind::Tool(t) => spans.extend(t.unknown.iter().map(|u| (u.span.start, u.span.end))),
            ItemKind::Agent(a) => spans.extend(a.stmts.iter().filter_map(|s| match &s.kind {
                AgentStmtKind::Unknown(u) => Some((u.span.start, u.span.end)),
                _ => None,
            })),
            ItemKind::Script(sc) => spans.extend(sc.stmts.iter().filter_map(|s| match &s.kind {
                ScriptStmtKind::Unknown(u) => Some((u.span.start, u.span.end)),
                _ => None,
            })),
            _ => {}
        }
    }
    spans.sort_unstable();
    spans
}

/// A comment in the source: byte range.
#[derive(Debug, Clone, Copy)]
struct Comment {
    start: usize,
    end: usize,
}

/// `//` and `/* */` comments outside strings and `verbatim` spans; `///` doc comments are in
/// the AST and excluded.
fn comments(text: &str, verbatim: &[(usize, usize)]) -> Vec<Comment> {
    crate::lex::lex(text)
        .filter(|(lexeme, start, _)| {
            // `verbatim` is sorted and its spans do not overlap.
            let before = verbatim.partition_point(|(s, _)| s <= start);
            lexeme.is_comment() && !(before > 0 && *start < verbatim[before - 1].1)
        })
        .map(|(_, start, end)| Comment { start, end })
        .collect()
}

struct Printer<'t> {
    text: &'t str,
    out: String,
    indent: usize,
    comments: Vec<Comment>,
    next_comment: usize,
    /// Source offset of the end of the last node printed, to tell trailing comments.
    last_end: usize,
}

impl Printer<'_> {
    fn src(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("").trim()
    }

    fn pad(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    fn line(&mut self, s: &str) {
        self.pad();
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// Prints the comments that start before `pos`: a comment on the line where the previous
    /// node ended stays at the end of that line; the others go on lines of their own.
    fn comments_before(&mut self, pos: usize) {
        while let Some(c) = self.comments.get(self.next_comment).copied() {
            if c.start >= pos {
                break;
            }
            self.next_comment += 1;
            let body = self.text[c.start..c.end].trim_end().to_string();
            let trailing = self.last_end > 0
                && c.start >= self.last_end
                && !self.text[self.last_end..c.start].contains('\n')
                && self.out.ends_with('\n');
            if trailing {
                // Blank lines already printed to separate what follows stay after the comment.
                let mut blank = 0;
                while self.out.ends_with("\n\n") {
                    self.out.pop();
                    blank += 1;
                }
                self.out.pop();
                self.out.push_str("  ");
                self.out.push_str(&body);
                self.out.push('\n');
                for _ in 0..blank {
                    self.out.push('\n');
                }
            } else if body.contains('\n') {
                // A block comment over several lines keeps its lines as written.
                self.pad();
                self.out.push_str(&body);
                self.out.push('\n');
            } else {
                self.line(&body);
            }
            self.last_end = c.end;
        }
    }

    fn done(&mut self, span: Span) {
        self.last_end = self.last_end.max(span.end);
    }

    /// Whether a comment not yet printed starts before `end`.
    fn comment_before(&self, end: usize) -> bool {
        self.comments
            .get(self.next_comment)
            .is_some_and(|c| c.start < end)
    }

    /// The comments before a node printed on one line, including those inside it (between the
    /// words of a `handoff` written over two lines): they go on lines of their own above it, so
    /// they stay next to what they annotate. A comment after it on its line stays at the end of
    /// the line (see [`Self::comments_before`]).
    fn comments_for_line(&mut self, span: Span) {
        self.comments_before(span.end);
    }

    /// After a block's opening line: a comment after the `{` on that line stays there.
    fn opened(&mut self, from: usize) {
        let brace = crate::lex::lex(&self.text[from.min(self.text.len())..])
            .find(|(l, _, _)| *l == crate::lex::Lexeme::Open(b'{'))
            .map(|(_, _, end)| from + end);
        if let Some(brace) = brace {
            self.last_end = self.last_end.max(brace);
        }
    }

    /// [`Self::opened`] for a block whose first entry starts at `to`: its `{` is the last one
    /// between the node printed before and `to`.
    fn opened_before(&mut self, to: usize) {
        let from = self.last_end.min(to);
        let brace = crate::lex::lex(&self.text[from..to.min(self.text.len())])
            .filter(|(l, _, _)| *l == crate::lex::Lexeme::Open(b'{'))
            .last()
            .map(|(_, _, end)| from + end);
        if let Some(brace) = brace {
            self.last_end = self.last_end.max(brace);
        }
    }

    /// Prints a bracketed list with comments inside one element a line, each comment beside
    /// the element it annotates: `head` (ending in the opening bracket) and the elements with a
    /// trailing comma; the caller prints the line with the closing bracket. `end` is the source
    /// offset of the closing bracket.
    fn list_lines(&mut self, head: &str, elements: &[(Span, String)], end: usize) {
        self.line(head);
        self.indent += 1;
        for (span, text) in elements {
            self.comments_before(span.start);
            self.line(&format!("{text},"));
            self.done(*span);
        }
        self.comments_before(end);
        self.indent -= 1;
    }

    /// Where a tool parameter ends in the source (after its binding).
    fn param_end(&self, p: &Param) -> usize {
        match &p.binding {
            Some(Binding::Env(e)) => self.close_at(e.span.end, b')') + 1,
            Some(Binding::Session(v)) => v.span.end,
            Some(Binding::Literal(l)) => l.span.end,
            None => p.ty.span.end,
        }
    }

    /// The offset of the first `close` bracket at or after `from`, outside strings and comments.
    fn close_at(&self, from: usize, close: u8) -> usize {
        let from = from.min(self.text.len());
        crate::lex::lex(&self.text[from..])
            .find(|(l, _, _)| *l == crate::lex::Lexeme::Close(close))
            .map_or(self.text.len(), |(_, at, _)| from + at)
    }

    fn docs(&mut self, docs: &[String]) {
        for d in docs {
            if d.is_empty() {
                self.line("///");
            } else {
                self.line(&format!("/// {d}"));
            }
        }
    }

    fn attr(&self, a: &Attr, inner: bool) -> String {
        let level = match a.level {
            AttrLevel::Allow => "allow",
            AttrLevel::Warn => "warn",
            AttrLevel::Deny => "deny",
        };
        let lints: Vec<&str> = a.lints.iter().map(|l| l.name.as_str()).collect();
        format!(
            "#{}[{level}({})]",
            if inner { "!" } else { "" },
            lints.join(", ")
        )
    }

    fn file(&mut self, file: &File) {
        for a in &file.attrs {
            self.comments_before(a.span.start);
            let s = self.attr(a, true);
            self.line(&s);
            self.done(a.span);
        }
        if let Some(v) = &file.version {
            self.comments_before(v.span.start);
            self.line(&format!("ladder {}", v.raw));
            self.done(v.span);
        }
        let mut previous: Option<&ItemKind> = None;
        for item in &file.items {
            let adjacent_uses = matches!(
                (previous, &item.kind),
                (Some(ItemKind::Use(_)), ItemKind::Use(_))
            );
            if !self.out.is_empty() && !adjacent_uses {
                self.out.push('\n');
            }
            self.comments_before(item.span.start);
            self.item(item);
            previous = Some(&item.kind);
        }
        self.comments_before(usize::MAX);
        while self.out.ends_with("\n\n") {
            self.out.pop();
        }
    }

    fn item(&mut self, item: &Item) {
        self.docs(&item.docs);
        for a in &item.attrs {
            let s = self.attr(a, false);
            self.line(&s);
        }
        match &item.kind {
            ItemKind::Use(path) => {
                let s = format!("use {}", self.src(path.span));
                self.line(&s);
            }
            ItemKind::Ladder(l) => self.ladder(l, item.span.end),
            ItemKind::Model(m) => {
                let head = format!("model {}", m.name.name);
                self.props(&head, &m.props, item.span.end);
            }
            ItemKind::Intent(i) => self.intent(i, item.span.end),
            ItemKind::Type(t) => self.type_decl(t, item.span.end),
            ItemKind::Tool(t) => self.tool(t, item.span.end),
            ItemKind::Agent(a) => self.agent(a, item.span.end),
            ItemKind::Human(h) => {
                let mut head = format!("human {}", h.name.name);
                if let Some(d) = &h.description {
                    head.push(' ');
                    head.push_str(self.src(d.span));
                }
                if h.props.is_empty() {
                    self.line(&head);
                } else {
                    self.props(&head, &h.props, item.span.end);
                }
            }
            ItemKind::Script(s) => self.script(s, item.span.end),
            ItemKind::Mcp(m) => {
                let mut head = format!("mcp {}", m.name.name);
                if let Some(d) = &m.description {
                    head.push(' ');
                    head.push_str(self.src(d.span));
                }
                self.props(&head, &m.props, item.span.end);
            }
            ItemKind::Meta(m) => {
                let s = format!(
                    "meta {}",
                    self.src(m.span).trim_start_matches("meta").trim()
                );
                self.line(&s);
            }
            ItemKind::Test(t) => self.test(t, item.span.end),
        }
        self.done(item.span);
    }

    fn value(&self, v: &Value) -> String {
        match &v.kind {
            ValueKind::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| self.value(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => self.src(v.span).to_string(),
        }
    }

    /// `head { k: v, .. }` on one line if it fits and has no comments inside, else one per line.
    fn props(&mut self, head: &str, props: &[Prop], end: usize) {
        let entries: Vec<(usize, String)> = props
            .iter()
            .map(|p| {
                (
                    p.key.span.start,
                    format!("{}: {}", p.key.name, self.value(&p.value)),
                )
            })
            .collect();
        self.block(head, &entries, end, ", ");
    }

    /// Prints `head { entries }`, on one line when short and comment-free.
    fn block(&mut self, head: &str, entries: &[(usize, String)], end: usize, separator: &str) {
        self.block_with(head, entries, end, separator, true);
    }

    /// [`Self::block`]; `one_line: false` when an entry is raw text that runs to the end of its
    /// line (an unknown statement), which would swallow what followed it on one line.
    fn block_with(
        &mut self,
        head: &str,
        entries: &[(usize, String)],
        end: usize,
        separator: &str,
        one_line: bool,
    ) {
        let one = if entries.is_empty() {
            format!("{head} {{}}")
        } else {
            format!(
                "{head} {{ {} }}",
                entries
                    .iter()
                    .map(|(_, e)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(separator)
            )
        };
        let has_comment = self
            .comments
            .get(self.next_comment)
            .is_some_and(|c| c.start < end);
        if one_line && !has_comment && one.len() + self.indent * 2 <= WIDTH && !one.contains('\n') {
            self.line(&one);
            return;
        }
        self.line(&format!("{head} {{"));
        self.opened_before(entries.first().map_or(end, |(start, _)| *start));
        self.indent += 1;
        let trailing = if separator == ", " { "," } else { "" };
        for (start, e) in entries {
            self.comments_before(*start);
            self.line(&format!("{e}{trailing}"));
            self.last_end = *start + 1;
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn ladder(&mut self, l: &LadderDecl, end: usize) {
        self.line(&format!("ladder {} {{", l.name.name));
        self.opened(l.name.span.end);
        self.indent += 1;
        for e in &l.entries {
            self.comments_for_line(e.span);
            self.line(&format!("entry {}", e.name));
            self.done(e.span);
        }
        for b in &l.blocks {
            self.comments_before(b.name.span.start);
            let end = b.props.last().map_or(b.name.span.end, |p| p.value.span.end) + 1;
            self.props(&b.name.name, &b.props, end);
            self.done(Span::new(b.name.span.file, b.name.span.start, end));
        }
        if !l.vars.is_empty() {
            let entries: Vec<(usize, String)> = l
                .vars
                .iter()
                .map(|v| {
                    let mut s = format!("{}: {}", v.name.name, self.ty(&v.ty));
                    if let Some(d) = &v.default {
                        s.push_str(&format!(" = {}", self.src(d.span)));
                    }
                    (v.name.span.start, s)
                })
                .collect();
            let first = entries[0].0;
            self.comments_before(first);
            let end = l.vars.last().map_or(first, |v| {
                v.default.as_ref().map_or(v.ty.span.end, |d| d.span.end)
            }) + 1;
            self.block("vars", &entries, end, ", ");
        }
        for m in &l.meta {
            self.comments_before(m.span.start);
            let s = format!(
                "meta {}",
                self.src(m.span).trim_start_matches("meta").trim()
            );
            self.line(&s);
            self.done(m.span);
        }
        for u in &l.unknown {
            self.comments_before(u.span.start);
            let s = self.src(u.span).to_string();
            self.line(&s);
            self.done(u.span);
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn ty(&self, t: &TypeExpr) -> String {
        t.to_string()
    }

    fn field_entries(&self, fields: &[Field]) -> Vec<(usize, String)> {
        fields
            .iter()
            .map(|f| {
                (
                    f.name.span.start,
                    format!("{}: {}", f.name.name, self.ty(&f.ty)),
                )
            })
            .collect()
    }

    fn fields_block(
        &mut self,
        head: &str,
        fields: &[Field],
        extra: Vec<(usize, String)>,
        end: usize,
    ) {
        let documented = fields.iter().any(|f| !f.docs.is_empty());
        let mut entries = extra;
        entries.extend(self.field_entries(fields));
        if !documented {
            self.block(head, &entries, end, ", ");
            return;
        }
        self.line(&format!("{head} {{"));
        self.opened_before(entries.first().map_or(end, |(start, _)| *start));
        self.indent += 1;
        let n_extra = entries.len() - fields.len();
        for (start, e) in &entries[..n_extra] {
            self.comments_before(*start);
            self.line(e);
        }
        for f in fields {
            self.comments_before(f.name.span.start);
            self.docs(&f.docs);
            self.line(&format!("{}: {}", f.name.name, self.ty(&f.ty)));
            self.done(f.ty.span);
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn intent(&mut self, i: &IntentDecl, end: usize) {
        let mut head = format!("intent {}", i.name.name);
        if let Some(d) = &i.description {
            head.push(' ');
            head.push_str(self.src(d.span));
        }
        if i.fields.is_empty() && i.examples.is_empty() {
            self.line(&head);
            return;
        }
        let mut extra = Vec::new();
        if !i.examples.is_empty() {
            let list: Vec<&str> = i.examples.iter().map(|e| self.src(e.span)).collect();
            extra.push((
                i.examples[0].span.start,
                format!("examples [{}]", list.join(", ")),
            ));
        }
        // Examples and fields are separated by line breaks, not commas, when on several lines.
        let one_line_ok = i.examples.is_empty();
        if one_line_ok {
            self.fields_block(&head, &i.fields, extra, end);
        } else {
            let mut entries = extra;
            entries.extend(self.field_entries(&i.fields));
            let one = format!(
                "{head} {{ {} }}",
                entries
                    .iter()
                    .map(|(_, e)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let has_comment = self
                .comments
                .get(self.next_comment)
                .is_some_and(|c| c.start < end);
            let documented = i.fields.iter().any(|f| !f.docs.is_empty());
            if !has_comment && !documented && one.len() + self.indent * 2 <= WIDTH {
                self.line(&one);
            } else {
                self.line(&format!("{head} {{"));
                self.opened_before(entries[0].0);
                self.indent += 1;
                self.comments_before(entries[0].0);
                let last = i.examples.last().expect("examples are not empty").span.end;
                let close = self.close_at(last, b']');
                if self.comment_before(close) {
                    let elements: Vec<(Span, String)> = i
                        .examples
                        .iter()
                        .map(|e| (e.span, self.src(e.span).to_string()))
                        .collect();
                    self.list_lines("examples [", &elements, close);
                    self.line("]");
                    self.last_end = close + 1;
                } else {
                    let examples = entries[0].1.clone();
                    self.line(&examples);
                }
                for f in &i.fields {
                    self.comments_before(f.name.span.start);
                    self.docs(&f.docs);
                    self.line(&format!("{}: {}", f.name.name, self.ty(&f.ty)));
                    self.done(f.ty.span);
                }
                self.comments_before(end);
                self.indent -= 1;
                self.line("}");
            }
        }
    }

    fn type_decl(&mut self, t: &TypeDecl, end: usize) {
        let head = format!("type {}", t.name.name);
        self.fields_block(&head, &t.fields, Vec::new(), end);
    }

    fn json(&self, j: &Json) -> String {
        match &j.kind {
            JsonKind::Object(pairs) if pairs.is_empty() => "{}".into(),
            JsonKind::Object(pairs) => format!(
                "{{ {} }}",
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = self.src(k.span);
                        format!("{key}: {}", self.json(v))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            JsonKind::Array(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| self.json(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => self.src(j.span).to_string(),
        }
    }

    fn tool(&mut self, t: &ToolDecl, end: usize) {
        let params: Vec<String> = t
            .params
            .iter()
            .map(|p| {
                let mut s = format!("{}: {}", p.name.name, self.ty(&p.ty));
                match &p.binding {
                    Some(Binding::Env(e)) => s.push_str(&format!(" = env({})", e.name)),
                    Some(Binding::Session(v)) => s.push_str(&format!(" = session.{}", v.name)),
                    Some(Binding::Literal(l)) => s.push_str(&format!(" = {}", self.src(l.span))),
                    None => {}
                }
                s
            })
            .collect();
        let returns = t
            .returns
            .as_ref()
            .map(|r| format!(" -> {}", self.ty(r)))
            .unwrap_or_default();
        let close = t
            .params
            .last()
            .map(|p| self.close_at(self.param_end(p), b')'));
        let head = match close {
            Some(close) if self.comment_before(close) => {
                // Parameters with comments: one a line, each comment beside its parameter.
                let elements: Vec<(Span, String)> = t
                    .params
                    .iter()
                    .zip(params)
                    .map(|(p, text)| {
                        let span =
                            Span::new(p.name.span.file, p.name.span.start, self.param_end(p));
                        (span, text)
                    })
                    .collect();
                self.list_lines(&format!("tool {}(", t.name.name), &elements, close);
                self.last_end = close + 1;
                format!("){returns}")
            }
            _ => format!("tool {}({}){returns}", t.name.name, params.join(", ")),
        };
        let mut body: Vec<(usize, String)> = Vec::new();
        if let Some(d) = &t.description {
            body.push((d.span.start, self.src(d.span).to_string()));
        }
        for imp in &t.implementations {
            let s = match &imp.kind {
                ToolImplKind::Http {
                    method,
                    url,
                    bearer_env,
                    headers,
                    body: json_body,
                } => {
                    let mut s = format!("http {method} {}", self.src(url.span));
                    if let Some(e) = bearer_env {
                        s.push_str(&format!(" auth bearer env({})", e.name));
                    }
                    for (name, value) in headers {
                        let v = match value {
                            HeaderValue::Env(e) => format!("env({})", e.name),
                            HeaderValue::Literal(l) => self.src(l.span).to_string(),
                        };
                        s.push_str(&format!(" header {} = {v}", self.src(name.span)));
                    }
                    if let Some(b) = json_body {
                        s.push_str(&format!(" body {}", self.json(b)));
                    }
                    s
                }
                ToolImplKind::Exec { program, args } => {
                    let mut s = format!("exec {}", self.src(program.span));
                    for a in args {
                        s.push(' ');
                        s.push_str(self.src(a.span));
                    }
                    s
                }
                ToolImplKind::Mock(j) => format!("mock {}", self.json(j)),
                ToolImplKind::Host(None) => "host".into(),
                ToolImplKind::Host(Some(n)) => format!("host {}", self.src(n.span)),
                ToolImplKind::Mcp { server, remote } => match remote {
                    Some(r) => format!("mcp {} {}", server.name, self.src(r.span)),
                    None => format!("mcp {}", server.name),
                },
            };
            body.push((imp.span.start, s));
        }
        if let Some((_, span)) = t.timeout {
            body.push((span.start, format!("timeout {}", self.src(span))));
        }
        if let Some((_, span)) = t.retries {
            body.push((span.start, format!("retries {}", self.src(span))));
        }
        if let Some(who) = &t.approval {
            body.push((who.span.start, format!("approval {}", who.name)));
        }
        for u in &t.unknown {
            body.push((u.span.start, self.src(u.span).to_string()));
        }
        self.block_with(&head, &body, end, "  ", t.unknown.is_empty());
    }

    fn agent(&mut self, a: &AgentDecl, end: usize) {
        self.line(&format!("agent {} {{", a.name.name));
        self.opened(a.name.span.end);
        self.indent += 1;
        // Handoff arrows line up within a run of consecutive handoffs.
        let mut i = 0;
        while i < a.stmts.len() {
            if matches!(a.stmts[i].kind, AgentStmtKind::Handoff(_)) {
                let run_end = a.stmts[i..]
                    .iter()
                    .position(|s| !matches!(s.kind, AgentStmtKind::Handoff(_)))
                    .map_or(a.stmts.len(), |n| i + n);
                let width = a.stmts[i..run_end]
                    .iter()
                    .filter_map(|s| {
                        if let AgentStmtKind::Handoff(h) = &s.kind {
                            Some(h.intent.name.len())
                        } else {
                            None
                        }
                    })
                    .max()
                    .unwrap_or(0);
                for s in &a.stmts[i..run_end] {
                    self.agent_stmt(s, width);
                }
                i = run_end;
            } else {
                self.agent_stmt(&a.stmts[i], 0);
                i += 1;
            }
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn prompt(&mut self, keyword: &str, p: &Prompt) {
        let raw = self.src(p.span);
        if !raw.starts_with("\"\"\"") {
            self.line(&format!("{keyword} {raw}"));
            return;
        }
        // Re-indent: the de-indented text stays the same.
        self.line(&format!("{keyword} \"\"\""));
        self.indent += 1;
        for l in p.text.split('\n') {
            if l.is_empty() {
                self.out.push('\n');
            } else {
                self.line(l);
            }
        }
        self.indent -= 1;
        self.line("\"\"\"");
    }

    fn agent_stmt(&mut self, s: &AgentStmt, arrow_width: usize) {
        let listed = match &s.kind {
            AgentStmtKind::Tools(t) | AgentStmtKind::Accepts(t) => !t.is_empty(),
            _ => false,
        };
        if listed && self.comment_before(s.span.end) {
            // A list with comments inside: one element a line (below).
            self.comments_before(s.span.start);
        } else {
            self.comments_for_line(s.span);
        }
        self.docs(&s.docs);
        for a in &s.attrs {
            let t = self.attr(a, false);
            self.line(&t);
        }
        let names = |v: &[Ident]| {
            v.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &s.kind {
            AgentStmtKind::Model(m) => self.line(&format!("model {}", m.name)),
            AgentStmtKind::Prompt(p) => self.prompt("prompt", p),
            AgentStmtKind::Tools(t) if self.comment_before(s.span.end) => {
                let elements: Vec<(Span, String)> =
                    t.iter().map(|i| (i.span, i.name.clone())).collect();
                self.list_lines("tools [", &elements, s.span.end);
                self.line("]");
            }
            AgentStmtKind::Tools(t) => self.line(&format!("tools [{}]", names(t))),
            AgentStmtKind::Accepts(t) => self.line(&format!("accepts {}", names(t))),
            AgentStmtKind::Handoff(h) => {
                let mut line = format!(
                    "handoff {:<arrow_width$} -> {}",
                    h.intent.name, h.target.name
                );
                if let Some(c) = &h.context {
                    line.push_str(&format!(" context {}", c.policy.name));
                    if let Some((_, span)) = c.argument {
                        line.push_str(&format!("({})", self.src(span)));
                    }
                }
                if let Some((fuse, _)) = h.fuse {
                    line.push_str(if fuse { " fuse" } else { " no_fuse" });
                }
                self.line(&line);
            }
            AgentStmtKind::Escalate(e) => {
                let mut line = format!("escalate -> {}", e.target.name);
                if let Some(c) = &e.condition {
                    let cond = self.condition(c);
                    line.push_str(&format!(" when {cond}"));
                }
                self.line(&line);
            }
            AgentStmtKind::Consult(c) => self.line(&format!("consult {}", c.name)),
            AgentStmtKind::Sla {
                duration_span,
                otherwise,
                ..
            } => {
                let mut line = format!("sla {}", self.src(*duration_span));
                if let Some(o) = otherwise {
                    line.push_str(&format!(" else -> {}", o.name));
                }
                self.line(&line);
            }
            AgentStmtKind::Fallback(f) => self.line(&format!("fallback -> {}", f.name)),
            AgentStmtKind::Router => self.line("router"),
            AgentStmtKind::Return => self.line("return"),
            AgentStmtKind::Owns(o) => self.line(&format!("owns {}", o.name)),
            AgentStmtKind::Unknown(u) => {
                let t = self.src(u.span).to_string();
                self.line(&t);
            }
        }
        self.done(s.span);
    }

    fn condition(&self, c: &Condition) -> String {
        let one = |x: &Comparison| {
            let value = self.src(Span::new(x.span.file, x.span.start, x.span.end));
            // `signal op value`, with single spaces.
            let rest = value
                .trim_start_matches(x.signal.name.as_str())
                .trim_start()
                .trim_start_matches(x.op.as_str())
                .trim();
            format!("{} {} {}", x.signal.name, x.op.as_str(), rest)
        };
        let mut s = one(&c.first);
        for (op, x) in &c.rest {
            s.push_str(match op {
                LogicOp::And => " and ",
                LogicOp::Or => " or ",
            });
            s.push_str(&one(x));
        }
        s
    }

    fn script(&mut self, s: &ScriptDecl, end: usize) {
        self.line(&format!("script {} {{", s.name.name));
        self.opened(s.name.span.end);
        self.indent += 1;
        for st in &s.stmts {
            self.comments_for_line(st.span);
            match &st.kind {
                ScriptStmtKind::Say(p) => self.prompt("say", p),
                ScriptStmtKind::Collect { name, ty, question } => {
                    let mut line = format!("collect {}: {}", name.name, self.ty(ty));
                    if let Some(q) = question {
                        line.push(' ');
                        line.push_str(self.src(q.span));
                    }
                    self.line(&line);
                }
                ScriptStmtKind::Handoff(t) => self.line(&format!("handoff {}", t.name)),
                ScriptStmtKind::End => self.line("end"),
                ScriptStmtKind::Unknown(u) => {
                    let t = self.src(u.span).to_string();
                    self.line(&t);
                }
            }
            self.done(st.span);
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn test(&mut self, t: &TestDecl, end: usize) {
        self.line(&format!("test {} {{", self.src(t.name.span)));
        self.opened(t.name.span.end);
        self.indent += 1;
        for st in &t.steps {
            self.comments_for_line(st.span);
            let line = match &st.kind {
                TestStepKind::User(text) => format!("user {}", self.src(text.span)),
                TestStepKind::Says { agent, text } => {
                    format!("model {} says {}", agent.name, self.src(text.span))
                }
                TestStepKind::Calls {
                    agent,
                    function,
                    arguments,
                } => match arguments {
                    Some(a) => format!(
                        "model {} calls {} {}",
                        agent.name,
                        function.name,
                        self.json(a)
                    ),
                    None => format!("model {} calls {}", agent.name, function.name),
                },
                TestStepKind::Stub { tool, outcome } => match outcome {
                    StubOutcome::Returns(j) => {
                        format!("tool {} returns {}", tool.name, self.json(j))
                    }
                    StubOutcome::Fails(m) => {
                        format!("tool {} fails {}", tool.name, self.src(m.span))
                    }
                },
                TestStepKind::Expect(e) => format!("expect {}", self.expectation(e)),
            };
            self.line(&line);
            self.done(st.span);
        }
        self.comments_before(end);
        self.indent -= 1;
        self.line("}");
    }

    fn expectation(&self, e: &Expectation) -> String {
        match e {
            Expectation::Handoff {
                from,
                to,
                intent: Some(i),
            } => format!("handoff {} -> {} intent {}", from.name, to.name, i.name),
            Expectation::Handoff {
                from,
                to,
                intent: None,
            } => format!("handoff {} -> {}", from.name, to.name),
            Expectation::Agent(a) => format!("agent {}", a.name),
            Expectation::Escalation { from: Some(f), to } => {
                format!("escalation {} -> {}", f.name, to.name)
            }
            Expectation::Escalation { from: None, to } => format!("escalation -> {}", to.name),
            Expectation::Human(Some(h)) => format!("human {}", h.name),
            Expectation::Human(None) => "human".into(),
            Expectation::Reply {
                negated,
                regex,
                text,
            } => {
                format!(
                    "reply {}{} {}",
                    if *negated { "not " } else { "" },
                    if *regex { "matches" } else { "contains" },
                    self.src(text.span)
                )
            }
            Expectation::Tool {
                tool,
                arguments: Some(a),
            } => format!("tool {} called with {}", tool.name, self.json(a)),
            Expectation::Tool {
                tool,
                arguments: None,
            } => format!("tool {}", tool.name),
            Expectation::Ceiling(c) => format!("ceiling {}", c.name),
            Expectation::Fallback { from, to } => format!("fallback {} -> {}", from.name, to.name),
            Expectation::Var {
                name,
                op,
                value_span,
                ..
            } => format!(
                "var {} {} {}",
                name.name,
                op.as_str(),
                self.src(*value_span)
            ),
            Expectation::Ended => "ended".into(),
        }
    }
}
