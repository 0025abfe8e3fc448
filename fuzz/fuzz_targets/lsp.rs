//! The language server's message handler: sessions of opens, edits and questions at arbitrary
//! positions (see `ladder_lsp::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ladder_lsp::fuzzing::session(data);
});
