//! `--timeout` and every `timeout` option: any text is a duration in (0, 1h] or an error.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rhai_probe::cli::Timeout;

fuzz_target!(|text: &str| {
    match text.parse::<Timeout>() {
        Ok(Timeout(d)) => assert!(
            d > Duration::ZERO && d <= Duration::from_secs(3600),
            "{text:?} -> {d:?}"
        ),
        Err(e) => assert!(e.starts_with("invalid duration"), "{e}"),
    }
});
