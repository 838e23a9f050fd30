//! `--var NAME=VALUE`: any text is a valid Rhai identifier with a value, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhai_probe::cli::Var;

fuzz_target!(|text: &str| {
    if let Ok(var) = text.parse::<Var>() {
        let mut chars = var.name.chars();
        let first = chars.next().expect("a name");
        assert!(first.is_ascii_alphabetic() || first == '_', "{text:?}");
        assert!(
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{text:?}"
        );
    }
});
