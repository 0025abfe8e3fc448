//! The file-access policy: the one place where ladder sources are read from disk, used by
//! `check`, `test`, `run`, `serve`, `fmt` and the language server.
//!
//! - only regular files are read (no devices, FIFOs, sockets or directories: `/dev/zero` would
//!   never end, a FIFO would block forever);
//! - a file larger than the size cap is refused before it is read;
//! - every file must lie inside the project root, after symlinks are resolved: the `--root`
//!   given, else the nearest directory above the root file holding `.git` or `ladder.toml`, else
//!   the root file's own directory. `use "/proc/self/environ"` or a symlink out of the project
//!   is refused;
//! - errors name the path and the rule, never the content.

use crate::load::Loader;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The default size cap: far above any real ladder (the examples are a few KB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Reads ladder sources from disk under the rules above.
#[derive(Debug, Clone)]
pub struct FilePolicy {
    root: PathBuf,
    max_bytes: u64,
}

impl FilePolicy {
    /// The policy for a project rooted at `root` (which must exist).
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("the project root `{}` cannot be used: {e}", root.display()),
            )
        })?;
        Ok(FilePolicy {
            root,
            max_bytes: DEFAULT_MAX_FILE_BYTES,
        })
    }

    /// The policy for the project of `file`: the nearest directory above it that holds `.git`
    /// or `ladder.toml`, else the file's own directory.
    pub fn for_file(file: &Path) -> std::io::Result<Self> {
        let absolute = std::path::absolute(file)?;
        let dir = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let dir = std::fs::canonicalize(&dir)?;
        let project = dir
            .ancestors()
            .find(|d| d.join(".git").exists() || d.join("ladder.toml").is_file())
            .map(Path::to_path_buf)
            .unwrap_or(dir);
        Self::new(&project)
    }

    /// Refuses files larger than `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The directory files must be inside.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `path` (which must exist) lies inside the project root, symlinks resolved.
    pub fn contains(&self, path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(&self.root))
    }

    /// Reads one file under the policy.
    pub fn read(&self, path: &Path) -> std::io::Result<String> {
        let denied = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
        let canonical = std::fs::canonicalize(path)?;
        if !canonical.starts_with(&self.root) {
            return Err(denied(format!(
                "`{}` is outside the project root `{}` (files are read only inside the project; pass --root to widen it)",
                path.display(),
                self.root.display()
            )));
        }
        let meta = std::fs::metadata(&canonical)?;
        if !meta.is_file() {
            return Err(denied(format!(
                "`{}` is not a regular file",
                path.display()
            )));
        }
        if meta.len() > self.max_bytes {
            return Err(denied(format!(
                "`{}` is {} bytes, over the limit of {} bytes (--max-file-size)",
                path.display(),
                meta.len(),
                self.max_bytes
            )));
        }
        // The size was checked, but a file may grow between the check and the read.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(&canonical)?
            .take(self.max_bytes + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(denied(format!(
                "`{}` is over the limit of {} bytes (--max-file-size)",
                path.display(),
                self.max_bytes
            )));
        }
        String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("`{}` is not UTF-8 text", path.display()),
            )
        })
    }
}

impl Loader for FilePolicy {
    fn load(&self, path: &Path) -> std::io::Result<String> {
        self.read(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ladder-access-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("ladder.toml"), "").unwrap();
        std::fs::write(dir.join("sub/a.ladder"), "ladder 1\n").unwrap();
        dir
    }

    #[test]
    fn reads_regular_files_inside_the_project_only() {
        let dir = project();
        let policy = FilePolicy::for_file(&dir.join("sub/a.ladder")).unwrap();
        assert_eq!(policy.root(), std::fs::canonicalize(&dir).unwrap());
        assert_eq!(
            policy.read(&dir.join("sub/a.ladder")).unwrap(),
            "ladder 1\n"
        );
        for outside in ["/etc/hostname", "/proc/self/environ", "/dev/zero"] {
            let e = policy.read(Path::new(outside)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{outside}");
            assert!(e.to_string().contains("outside the project root"), "{e}");
        }
        let e = policy.read(&dir.join("sub")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let small = policy.clone().with_max_bytes(4);
        assert!(small
            .read(&dir.join("sub/a.ladder"))
            .unwrap_err()
            .to_string()
            .contains("over the limit"));
        #[cfg(unix)]
        {
            let link = dir.join("sub/escape.ladder");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
            let e = policy.read(&link).unwrap_err();
            assert!(e.to_string().contains("outside the project root"), "{e}");
        }
    }
}
