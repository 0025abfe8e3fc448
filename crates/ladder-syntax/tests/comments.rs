//! Comments stay with what they annotate. In `tests/fixtures/comments/*.ladder`, a comment that
//! contains `@word` annotates the code line that contains `word`: after formatting, a comment at
//! the end of a line must still end a line that contains `word`, and a comment on a line of its
//! own must be followed (after other comments) by a code line that contains `word`. `@EOF` means
//! the comment stays after the last code line.

use ladder_syntax::{format, parse, FileId};
use std::path::PathBuf;

fn fixtures() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comments");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ladder"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// The target word of each comment in `text`, with where it landed: `Ok(line)` for the code line
/// it annotates, `Err(why)` if it annotates nothing.
fn placements(text: &str) -> Vec<(String, Result<String, String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = line.find("// @").or_else(|| line.find("/* @")) else {
            continue;
        };
        let word: String = line[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let code = line[..at].trim();
        let target = if !code.is_empty() {
            Ok(code.to_string())
        } else {
            lines[n + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("/*"))
                .map(|l| l.to_string())
                .ok_or_else(|| "no code line follows".to_string())
        };
        out.push((word, target));
    }
    out
}

#[test]
fn every_comment_stays_with_what_it_annotates() {
    for (path, text) in fixtures() {
        let file = parse(FileId(0), &text).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        let formatted = format(&file, &text);
        assert_ne!(
            formatted, text,
            "{path:?} is a test of moving code, not a formatted file"
        );
        let before = placements(&text);
        let after = placements(&formatted);
        assert_eq!(
            before.len(),
            after.len(),
            "{path:?}: comments lost or duplicated:\n{formatted}"
        );
        for (word, target) in &after {
            match (word.as_str(), target) {
                ("EOF", Err(_)) => {}
                ("EOF", Ok(line)) => panic!("{path:?}: the last comment moved above `{line}`"),
                (word, Ok(line)) => assert!(
                    line.contains(word),
                    "{path:?}: the comment for `{word}` landed at `{line}`:\n{formatted}"
                ),
                (word, Err(why)) => panic!("{path:?}: the comment for `{word}`: {why}"),
            }
        }
        // The fixture itself is written the same way.
        for (word, target) in &before {
            if word != "EOF" {
                assert!(
                    target.as_ref().is_ok_and(|l| l.contains(word.as_str())),
                    "{word}"
                );
            }
        }
        // And formatting is a fixed point.
        let again = parse(FileId(0), &formatted).unwrap();
        assert_eq!(format(&again, &formatted), formatted, "{path:?}");
    }
}
