//! Syntax errors as diagnostics (L0001), and the version line check (L0002).

use crate::diagnostics::Diagnostics;
use crate::findings::Finding;
use ladder_syntax::ast::File;

/// The only language version this checker knows.
pub const LANGUAGE_VERSION: u32 = 1;

pub(crate) fn check_version(file: &File, out: &mut Diagnostics) {
    match &file.version {
        None => {
            let at = ladder_syntax::Span::new(file.span.file, 0, 0);
            out.report(Finding::NoVersion { at });
        }
        Some(v) if v.number != LANGUAGE_VERSION => out.report(Finding::UnsupportedVersion {
            at: v.span,
            raw: &v.raw,
        }),
        Some(_) => {}
    }
}
