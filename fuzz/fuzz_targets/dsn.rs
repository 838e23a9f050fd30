//! DSNs and their masking: any text parses or fails without a panic, and a password put in a
//! DSN never appears in what may be shown (the masked DSN, the parse error, a masked line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhai_probe::{host::sql::dsn, redact};

fuzz_target!(|input: (u8, &str, &str)| {
    let (form, password, rest) = input;
    redact::forget_all();
    // Arbitrary text first: no panic, whatever it is.
    let _ = dsn::parse(rest);
    let _ = redact::mask_line(rest);

    // A password worth looking for: long enough not to occur by chance, and a character set
    // that each form can carry unquoted (URL userinfo ends at '@'; key=value ends at space).
    if password.len() < 8
        || password
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@'\\".contains(c))
    {
        return;
    }
    let dsn = |password: &str| match form % 4 {
        0 => format!("postgres://probe:{password}@{rest}"),
        1 => format!("mysql://probe:{password}@{rest}"),
        2 => format!("host={rest} password={password} dbname=test"),
        _ => format!("postgresql://probe:{password}@db.local:5432/{rest}"),
    };
    // Nothing to find when the rest of the DSN, or the mask, holds the password anyway.
    if format!("let db = \"{}\";", dsn("")).contains(password) || password.contains('*') {
        return;
    }
    let text = dsn(password);
    // The source line first: it is masked before anything has remembered the password.
    let literal = text.replace('\\', "\\\\").replace('"', "\\\"");
    let line = redact::mask_line(&format!("let db = \"{literal}\";"));
    assert!(
        !line.contains(password),
        "{password:?} in {text:?} -> {line:?}"
    );
    let masked = dsn::mask(&text);
    assert!(
        !masked.contains(password),
        "{password:?} in {text:?} -> {masked:?}"
    );
    // Error messages carry fixed advice (`postgres://USER:PASSWORD@host`), which an ASCII
    // password may happen to spell: look for the non-ASCII ones only.
    if let Err(e) = dsn::parse(&text) {
        assert!(
            password.is_ascii() || !e.contains(password),
            "{password:?} in {text:?} -> {e:?}"
        );
    }
});
