//! The formatter on every input that parses: its output parses, is a fixed point, and checks to
//! the same program with the same diagnostics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ladder_check::fuzzing::format_properties(text);
    }
});
