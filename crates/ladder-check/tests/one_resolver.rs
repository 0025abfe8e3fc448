//! One resolver: every reference the editor navigates is one the checker looked up, at the same
//! place and in the same namespace. The editor's table is `Checked::references`.

use ladder_check::symbols::symbols;
use ladder_check::{check_path, CheckOptions, FilePolicy};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn ladders(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            ladders(&path, out);
        } else if path.extension().is_some_and(|e| e == "ladder") {
            out.push(path);
        }
    }
}

#[test]
fn the_checker_looks_up_every_name_the_editor_navigates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    ladders(&root.join("examples"), &mut files);
    ladders(&root.join("tests/fixtures"), &mut files);
    let mut compared = 0;
    let mut problems = Vec::new();
    for path in files {
        let loader = FilePolicy::new(&root).expect("the repository is readable");
        let Ok(checked) = check_path(&path, &loader, &CheckOptions::default()) else {
            continue;
        };
        let key = |r: &ladder_check::symbols::Reference| {
            (
                r.span.file.0,
                r.span.start,
                r.span.end,
                format!("{:?}", r.namespace),
                r.name.clone(),
            )
        };
        let walked: BTreeSet<_> = checked
            .files
            .iter()
            .flat_map(|f| symbols(f).references)
            .map(|r| key(&r))
            .collect();
        let resolved: BTreeSet<_> = checked.references.iter().map(key).collect();
        for missing in walked.difference(&resolved) {
            problems.push(format!("{}: not looked up: {missing:?}", path.display()));
        }
        for extra in resolved.difference(&walked) {
            problems.push(format!(
                "{}: not in the editor's walk: {extra:?}",
                path.display()
            ));
        }
        compared += 1;
    }
    assert!(compared > 50);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
