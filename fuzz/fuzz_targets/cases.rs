//! A `.cases.toml` file: any text is a list of cases or an error naming where; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match rhai_probe::testing::parse_cases(text, "probe.cases.toml") {
        Ok(cases) => assert!(!cases.is_empty()),
        Err(e) => assert!(e.starts_with("probe.cases.toml"), "{e}"),
    }
});
