//! One resolver: every reference the editor navigates is one the checker looked up, at the same
//! place and in the same namespace. The editor's table is `Checked::references`.

use ladder_check::{check_path, CheckOptions, FilePolicy};
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
        for difference in ladder_check::fuzzing::reference_differences(&checked) {
            problems.push(format!("{}: {difference}", path.display()));
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
