//! Loading a ladder and every file it `use`s, through an injected [`Loader`] (the checker does no
//! I/O of its own), and parsing each once.

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
use ladder_syntax::ast::{File, ItemKind};
use ladder_syntax::{FileId, SourceMap, Span};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Reads source files. `ladderc` reads the file system; tests and embedders may serve memory.
pub trait Loader {
    /// The text of the file at `path`.
    fn load(&self, path: &Path) -> std::io::Result<String>;
}

/// A loader over an in-memory map of paths to sources.
#[derive(Debug, Default, Clone)]
pub struct MemoryLoader {
    files: HashMap<PathBuf, String>,
}

impl MemoryLoader {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file.
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(normalize(&path.into()), text.into());
        self
    }
}

impl Loader for MemoryLoader {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

/// Removes `.` and resolves `..` lexically, so that one file is not loaded under two names. A
/// `..` cancels only a name before it: `../../x` stays `../../x` (it used to become `x`, so that
/// `use "../../x.ladder"` loaded the wrong file when the root file was given as a relative path),
/// and `/..` is `/`.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) struct Loaded {
    pub sources: SourceMap,
    /// Parsed files, indexed like `sources`. A file with syntax errors holds the items that
    /// parsed, and lists the broken ones in [`File::broken`].
    pub files: Vec<File>,
    /// Whether each file had syntax errors (then its items are not all known).
    pub broken: Vec<bool>,
}

pub(crate) fn load_all(
    root: &Path,
    root_text: Option<String>,
    loader: &dyn Loader,
    out: &mut Diagnostics,
) -> Result<Loaded, std::io::Error> {
    let mut loaded = Loaded {
        sources: SourceMap::new(),
        files: Vec::new(),
        broken: Vec::new(),
    };
    let root = normalize(root);
    let text = match root_text {
        Some(text) => text,
        None => loader.load(&root)?,
    };
    let mut stack = Vec::new();
    visit(&root, text, loader, &mut loaded, &mut stack, out);
    Ok(loaded)
}

/// Depth-first over `use`s; `stack` holds the chain of files being loaded, to name a cycle.
fn visit(
    path: &Path,
    text: String,
    loader: &dyn Loader,
    loaded: &mut Loaded,
    stack: &mut Vec<(FileId, Span)>,
    out: &mut Diagnostics,
) {
    let id = loaded.sources.add(path, text);
    let (parsed, errors) = ladder_syntax::parse_recovering(id, &loaded.sources.get(id).text);
    loaded.broken.push(!errors.is_empty());
    for error in errors {
        out.report(Finding::Syntax(error));
    }
    let uses: Vec<(String, Span)> = parsed
        .items
        .iter()
        .filter_map(|item| match &item.kind {
            ItemKind::Use(s) => Some((s.value.clone(), s.span)),
            _ => None,
        })
        .collect();
    loaded.files.push(parsed);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for (target, span) in uses {
        let target_path = normalize(&dir.join(&target));
        // Only ladders are used: a diagnostic about any other file would print its content.
        if target_path.extension().and_then(|e| e.to_str()) != Some("ladder") {
            out.report(Finding::UseNotLadder {
                at: span,
                target: &target,
            });
            continue;
        }
        if let Some(existing) = loaded.sources.find(&target_path) {
            let on_stack = stack.iter().position(|(f, _)| *f == existing);
            if existing == id || on_stack.is_some() {
                let start = on_stack.unwrap_or(stack.len());
                out.report(Finding::UseCycle {
                    at: span,
                    target: &target,
                    via: stack[start..].iter().map(|(_, via)| *via).collect(),
                });
            }
            continue;
        }
        match loader.load(&target_path) {
            Ok(text) => {
                stack.push((id, span));
                visit(&target_path, text, loader, loaded, stack, out);
                stack.pop();
            }
            Err(error) => out.report(Finding::UnreadableUse {
                at: span,
                path: target_path.display().to_string(),
                error: error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn parent_components_cancel_only_names() {
        assert_eq!(
            normalize(Path::new("../../x.ladder")),
            Path::new("../../x.ladder")
        );
        assert_eq!(normalize(Path::new("a/../../x")), Path::new("../x"));
        assert_eq!(normalize(Path::new("a/./b/../c")), Path::new("a/c"));
        assert_eq!(normalize(Path::new("/../etc")), Path::new("/etc"));
    }
}
