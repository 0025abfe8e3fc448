//! The lexical rules of the grammar that matter outside the parser: where comments, doc
//! comments and strings are, and the brackets and line breaks outside them. One scanner serves
//! the parallel parse's splitter, error recovery, the nesting guard, the formatter's comments and
//! the spans that end at a statement's last token, so that they never disagree about what is a
//! comment or a string. The rules are those of `grammar/ladder.pest` (`COMMENT`, `doc_comment`,
//! `string`, `triple_string`); the test `against_the_grammar` below holds the two to each other.
//! The one difference: the grammar reads a `meta { .. }` body as raw text, where the lexer
//! still sees comments; the formatter skips those spans.

/// What a run of source text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lexeme {
    /// `// ..` or `//// ..` to the end of the line (the line break excluded).
    LineComment,
    /// `/* .. */` (to the end of the file if unclosed).
    BlockComment,
    /// `/// ..` to the end of the line.
    DocComment,
    /// `".."`, ending at the closing quote or before the end of the line.
    String,
    /// `"""..."""` (to the end of the file if unclosed).
    TripleString,
    /// One of `{ [ (`.
    Open(u8),
    /// One of `} ] )`.
    Close(u8),
    /// `\n`.
    Newline,
}

impl Lexeme {
    pub(crate) fn is_comment(self) -> bool {
        matches!(self, Lexeme::LineComment | Lexeme::BlockComment)
    }
}

/// The lexemes of `text` with their byte ranges, in order. Everything else (words, numbers,
/// punctuation, white space other than line breaks) is skipped.
pub(crate) struct Lexer<'t> {
    text: &'t str,
    at: usize,
    /// Whether line breaks are lexemes (the bracket scans skip them, which is faster).
    newlines: bool,
}

pub(crate) fn lex(text: &str) -> Lexer<'_> {
    Lexer {
        text,
        at: 0,
        newlines: true,
    }
}

/// [`lex`] without [`Lexeme::Newline`].
pub(crate) fn lex_without_newlines(text: &str) -> Lexer<'_> {
    Lexer {
        text,
        at: 0,
        newlines: false,
    }
}

impl Iterator for Lexer<'_> {
    type Item = (Lexeme, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        let bytes = text.as_bytes();
        while self.at < bytes.len() {
            let i = self.at;
            let line_end = || text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            let (lexeme, end) = match bytes[i] {
                b'"' if bytes[i..].starts_with(b"\"\"\"") => (
                    Lexeme::TripleString,
                    text[i + 3..]
                        .find("\"\"\"")
                        .map_or(bytes.len(), |n| i + 3 + n + 3),
                ),
                b'"' => {
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                        j += if bytes[j] == b'\\' { 2 } else { 1 };
                    }
                    let j = j.min(bytes.len());
                    let end = if j < bytes.len() && bytes[j] == b'"' {
                        j + 1
                    } else {
                        j
                    };
                    (Lexeme::String, end)
                }
                b'/' if bytes[i..].starts_with(b"///") && !bytes[i..].starts_with(b"////") => {
                    (Lexeme::DocComment, line_end())
                }
                b'/' if bytes.get(i + 1) == Some(&b'/') => (Lexeme::LineComment, line_end()),
                b'/' if bytes.get(i + 1) == Some(&b'*') => (
                    Lexeme::BlockComment,
                    text[i + 2..]
                        .find("*/")
                        .map_or(bytes.len(), |n| i + 2 + n + 2),
                ),
                b @ (b'{' | b'[' | b'(') => (Lexeme::Open(b), i + 1),
                b @ (b'}' | b']' | b')') => (Lexeme::Close(b), i + 1),
                b'\n' if self.newlines => (Lexeme::Newline, i + 1),
                _ => {
                    // Skip to the next byte that may start a lexeme.
                    let next = i + text[i..].chars().next().map_or(1, char::len_utf8);
                    let rest = &text[next..];
                    let found = if self.newlines {
                        rest.find(['"', '/', '{', '[', '(', '}', ']', ')', '\n'])
                    } else {
                        rest.find(['"', '/', '{', '[', '(', '}', ']', ')'])
                    };
                    self.at = found.map_or(bytes.len(), |n| next + n);
                    continue;
                }
            };
            self.at = end.max(i + 1);
            return Some((lexeme, i, self.at));
        }
        None
    }
}

/// The end of the last token in `text[start..end]`: trailing white space and comments (which
/// pest counts into a rule that tried an absent optional part) are not part of a statement.
pub(crate) fn last_token_end(text: &str, start: usize, end: usize) -> usize {
    let piece = &text[start..end];
    // Most statements end in no comment: only a last line with `//` or a trailing `*/` needs
    // the scan.
    let trimmed = piece.trim_end();
    // One backward pass over the last line: no `/` on it, no comment ends the statement.
    let slash_on_last_line = trimmed
        .bytes()
        .rev()
        .take_while(|b| *b != b'\n')
        .any(|b| b == b'/');
    if !slash_on_last_line {
        return start + trimmed.len();
    }
    let mut last = 0;
    let mut at = 0;
    for (lexeme, s, e) in lex(piece) {
        if s > at && !piece[at..s].trim().is_empty() {
            last = at + piece[at..s].trim_end().len();
        }
        if !lexeme.is_comment() && lexeme != Lexeme::Newline {
            last = e;
        }
        at = e;
    }
    if !piece[at..].trim().is_empty() {
        last = at + piece[at..].trim_end().len();
    }
    start + last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_strings_hide_what_is_inside_them() {
        let text = "a { \"}//\" /* { */ } // x {\n/// doc {\n\"\"\"\n}\n\"\"\" ]";
        let found: Vec<(Lexeme, &str)> = lex(text).map(|(l, s, e)| (l, &text[s..e])).collect();
        assert_eq!(
            found,
            [
                (Lexeme::Open(b'{'), "{"),
                (Lexeme::String, "\"}//\""),
                (Lexeme::BlockComment, "/* { */"),
                (Lexeme::Close(b'}'), "}"),
                (Lexeme::LineComment, "// x {"),
                (Lexeme::Newline, "\n"),
                (Lexeme::DocComment, "/// doc {"),
                (Lexeme::Newline, "\n"),
                (Lexeme::TripleString, "\"\"\"\n}\n\"\"\""),
                (Lexeme::Close(b']'), "]"),
            ]
        );
    }

    #[test]
    fn an_unclosed_string_ends_at_its_line() {
        let text = "\"abc\n}";
        let found: Vec<Lexeme> = lex(text).map(|(l, _, _)| l).collect();
        assert_eq!(
            found,
            [Lexeme::String, Lexeme::Newline, Lexeme::Close(b'}')]
        );
    }

    #[test]
    fn the_last_token_ends_before_trailing_comments() {
        let text = "escalate -> x when a < -0.5 // angry\n  /* more */ \n";
        assert_eq!(
            &text[..last_token_end(text, 0, text.len())],
            "escalate -> x when a < -0.5"
        );
        let text = "say \"a // b\"  ";
        assert_eq!(
            &text[..last_token_end(text, 0, text.len())],
            "say \"a // b\""
        );
    }
}

/// The lexer against the grammar, on every example and fixture that parses: blanking out the
/// comments it finds leaves the same syntax tree (so none of them was inside a string, and the
/// grammar skips each of them as a comment).
#[cfg(test)]
mod against_the_grammar {
    use super::*;
    use std::path::Path;

    fn ladders(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                ladders(&path, out);
            } else if path.extension().is_some_and(|e| e == "ladder") {
                out.push(std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }

    #[test]
    fn blanking_the_comments_it_finds_changes_no_syntax_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut texts = Vec::new();
        ladders(&root.join("examples"), &mut texts);
        ladders(&root.join("tests/fixtures"), &mut texts);
        let mut compared = 0;
        let mut comments = 0;
        for text in &texts {
            let Ok(parsed) = crate::parse(crate::FileId(0), text) else {
                continue;
            };
            let mut blank = text.clone().into_bytes();
            for (lexeme, start, end) in lex(text) {
                if lexeme.is_comment() {
                    comments += 1;
                    for b in &mut blank[start..end] {
                        if *b != b'\n' {
                            *b = b' ';
                        }
                    }
                }
            }
            let blank = String::from_utf8(blank).expect("whole characters were blanked");
            let again = crate::parse(crate::FileId(0), &blank).expect("still parses");
            assert_eq!(again.items, parsed.items, "{text}");
            compared += 1;
        }
        assert!(
            compared > 50 && comments > 50,
            "{compared} files, {comments} comments"
        );
    }
}
