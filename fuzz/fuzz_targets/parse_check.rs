//! Bytes as a ladder: parse, check and render every diagnostic without a panic, a hang (libFuzzer's
//! `-timeout`) or runaway memory (`-rss_limit_mb`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ladder_check::fuzzing::check_and_render(text, |report| {
            let _ = miette::GraphicalReportHandler::new().render_report(&mut String::new(), report);
        });
    }
});
