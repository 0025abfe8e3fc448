//! Error recovery: a file with broken items still yields the items around them.

use ladder_syntax::ast::ItemKind;
use ladder_syntax::{parse, parse_recovering, FileId};

fn names(file: &ladder_syntax::ast::File) -> Vec<String> {
    file.items
        .iter()
        .map(|i| match &i.kind {
            ItemKind::Agent(a) => a.name.name.clone(),
            ItemKind::Tool(t) => t.name.name.clone(),
            ItemKind::Model(m) => m.name.name.clone(),
            ItemKind::Ladder(l) => l.name.name.clone(),
            other => format!("{other:?}").chars().take(12).collect(),
        })
        .collect()
}

#[test]
fn a_file_that_parses_is_returned_as_parse_returns_it() {
    for example in ["triage", "clinic", "after_hours"] {
        let text = std::fs::read_to_string(format!(
            "{}/../../examples/{example}.ladder",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let (recovered, errors) = parse_recovering(FileId(0), &text);
        assert!(errors.is_empty());
        assert_eq!(recovered, parse(FileId(0), &text).unwrap());
    }
}

#[test]
fn each_broken_item_is_one_error_and_the_rest_parse() {
    let text = "ladder 1\n\
        ladder x { entry a }\n\
        /// The first agent.\n\
        #[allow(unused)]\n\
        agent a {\n  model: m\n}\n\
        model m { provider: openai, name: \"g\" }\n\
        tool t(x: string -> string { mock \"1\" }\n\
        agent b { model m prompt \"hi\" }\n\
        agent c {\n  prompt \"open\"\n";
    let (file, errors) = parse_recovering(FileId(0), text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(names(&file), ["x", "m", "b"]);
    let broken: Vec<(&str, &str)> = file
        .broken
        .iter()
        .map(|b| (b.keyword.as_str(), b.name.as_ref().unwrap().name.as_str()))
        .collect();
    assert_eq!(broken, [("agent", "a"), ("tool", "t"), ("agent", "c")]);
    // The doc comment and the attribute belong to the broken agent, not to the header.
    assert!(text[file.broken[0].span.start..].starts_with("/// The first agent."));
    assert_eq!(file.version.as_ref().map(|v| v.number), Some(1));
    // Errors are in source order, each inside its item.
    for (error, item) in errors.iter().zip(&file.broken) {
        assert!(item.span.start <= error.span.start, "{error:?} in {item:?}");
    }
}

#[test]
fn statements_in_column_zero_inside_a_block_do_not_cut_it() {
    // `model m` and `tool t returns` start lines inside blocks: they are statements, not items.
    let text = "ladder 1\nagent a {\nmodel m\nprompt: \"x\"\n}\ntest \"t\" {\nuser \"hi\"\ntool t returns \"1\"\n}\n";
    let (file, errors) = parse_recovering(FileId(0), text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(file.broken.len(), 1);
    assert_eq!(file.items.len(), 1, "the test block parses");
}

#[test]
fn a_missing_brace_is_named_by_the_block_that_lost_it() {
    let text = "ladder 1\nladder x {\n  entry a\n  limits { steps_per_turn: 4\n}\n\nagent a { prompt \"x\" }\n";
    let (_, errors) = parse_recovering(FileId(0), text);
    let hint = errors[0].hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("`limits {` block that opens on line 4"),
        "{hint}"
    );
    let text = "ladder 1\ntool t() -> string {\n  mock \"1\"\n\nagent a { prompt \"x\" }\n";
    let (_, errors) = parse_recovering(FileId(0), text);
    let hint = errors[0].hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("opens on line 2") && hint.contains("before line 5"),
        "{hint}"
    );
}
