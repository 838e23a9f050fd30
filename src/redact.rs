//! Secrets never reach output.
//!
//! Two layers: host functions print URLs through `mask_url`, which replaces a URL's password and
//! the values of credential-like query parameters with `***`; and every secret seen that way is
//! remembered, so that `scrub` can remove it from any text about to be written (logs, the verdict,
//! a script's own `throw "failed: " + url`). The second layer is what makes the first one safe
//! against scripts that build messages from URLs themselves.

use std::{borrow::Cow, sync::Mutex};

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shorter secrets are masked where they stand in a URL but not searched for in free text, where
/// they would garble ordinary words.
const MIN_SCRUB_LEN: usize = 4;

pub const MASK: &str = "***";

/// Remember a secret so that `scrub` removes it from all later output.
pub fn remember(secret: &str) {
    if secret.len() < MIN_SCRUB_LEN {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Forget every remembered secret: for fuzz targets, whose runs must not depend on earlier ones.
#[doc(hidden)]
pub fn forget_all() {
    SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Remove every remembered secret from `text`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// Whether a query parameter or header with this name carries a credential
/// (`?token=`, `X-Api-Key`, `Authorization`, `Cookie`, …).
pub fn sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    // A DSN's client key is named by its file's path, which is no secret (and the error that
    // names a key not matching its certificate must show it).
    if name == "sslkey" || name == "ssl-key" {
        return false;
    }
    [
        "token",
        "key",
        "secret",
        "pass",
        "pwd",
        "auth",
        "sig",
        "credential",
        "session",
        "cookie",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Remember a request header's value when its name says it is a credential, and the credential
/// alone of a `Bearer …`-style value.
pub fn remember_header(name: &str, value: &str) {
    if sensitive_name(name) {
        remember(value);
        if let Some((_, credential)) = value.split_once(' ') {
            remember(credential);
        }
    }
}

/// A URL or DSN as it may be shown: `scheme://user:***@host/path?token=***`. Remembers the
/// secrets it masks. Text that is not URL-shaped is returned scrubbed but otherwise unchanged.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = match userinfo_end(rest) {
        Some(at) => rest[at..]
            .find(['/', '?', '#'])
            .map_or(rest.len(), |e| at + e),
        None => rest.find(['/', '?', '#']).unwrap_or(rest.len()),
    };
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) if !scheme.is_empty() => {
            let (userinfo, host) = (&authority[..at], &authority[at..]);
            match userinfo.split_once(':') {
                Some((user, password)) => {
                    remember(password);
                    remember(&percent_decode(password));
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        _ => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if sensitive_name(k) && !v.is_empty() => {
                        remember(v);
                        remember(&percent_decode(v));
                        format!("{k}={MASK}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&masked.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    scrub(&out).into_owned()
}

/// A path as every message shows it: one given where a URL was meant
/// (`rhai-probe run 'postgres://u:pw@db/app'`) has its password masked like a URL's.
pub fn path(path: &std::path::Path) -> String {
    let shown = path.display().to_string();
    // Most paths are not URL-shaped: skip the parse (this runs in every probe's start-up).
    if shown.contains("://") {
        mask_url(&shown)
    } else {
        shown
    }
}

/// Remember the credentials written in a script's own text (`"postgres://app:pw@db/app"`,
/// `password=pw`), before anything runs, so that even a compile error quoting that line masks
/// them.
pub fn remember_in_source(text: &str) {
    let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | ',' | ';');
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let at = from + i;
        let start = text[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |s| s + 1);
        let end = text[at..].find(stop).map_or(text.len(), |e| at + e);
        let _ = mask_url(&text[start..end]);
        from = at + 3;
    }
    let mut from = 0;
    while let Some(i) = text[from..].find("password=") {
        let value_start = from + i + "password=".len();
        let rest = &text[value_start..];
        let value = match rest.strip_prefix('\'') {
            Some(quoted) => quoted.split('\'').next().unwrap_or_default(),
            None => rest.split(stop).next().unwrap_or_default(),
        };
        remember(value);
        from = value_start;
    }
}

/// A script's source line as it may be shown under a diagnostic: every URL password and
/// `password=` value replaced by as many `*`, so that the caret below still points at the right
/// column and even a password too short for `scrub` is hidden.
pub fn mask_line(line: &str) -> String {
    let mut out: Vec<char> = line.chars().collect();
    let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | ',' | ';');
    let mut hide = |from: usize, to: usize| {
        for c in out.iter_mut().take(to).skip(from) {
            *c = '*';
        }
    };
    let chars: Vec<char> = line.chars().collect();
    let text: String = chars.iter().collect();
    let index = |byte: usize| text[..byte].chars().count();
    // Where a URL or value that starts at `start` ends: at whitespace; inside a string literal
    // at its closing quote only (a password may hold `;` or `,`, and `\"` is part of it);
    // outside one at any stop character.
    let end_of = |start: usize| {
        let quote = open_quote(&text[..start]);
        let mut escaped = false;
        for (i, c) in text[start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c.is_whitespace() || quote.map_or(stop(c), |q| c == q) {
                return start + i;
            }
        }
        text.len()
    };
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let at = from + i + 3;
        let end = end_of(at);
        if let Some(at_sign) = userinfo_end(&text[at..end]) {
            if let Some(colon) = text[at..at + at_sign].find(':') {
                hide(index(at + colon + 1), index(at + at_sign));
            }
        }
        from = at;
    }
    let mut from = 0;
    while let Some(i) = text[from..].find("password=") {
        let start = from + i + "password=".len();
        let end = end_of(start);
        hide(index(start), index(end));
        from = start;
    }
    out.into_iter().collect()
}

/// The quote (`"` or `` ` ``) of the string literal still open at the end of `before`, if any.
fn open_quote(before: &str) -> Option<char> {
    let mut open = None;
    let mut escaped = false;
    for c in before.chars() {
        match (open, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => open = None,
            (None, '"' | '`') => open = Some(c),
            _ => {}
        }
    }
    open
}

/// Where the userinfo of a URL ends (the `@`), in the text after `scheme://`. A password that
/// should have been percent-encoded but holds a `/` (`u:pa/ss@db/app`) ends the authority early
/// by the book; when the part before that `/` looks like `user:pass` and an `@` follows before
/// the query, the userinfo runs to that `@`. Masking too much beats showing a password.
pub fn userinfo_end(rest: &str) -> Option<usize> {
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let slash = rest[..query].find('/').unwrap_or(query);
    if let Some(at) = rest[..slash].rfind('@') {
        return Some(at);
    }
    if rest[..slash].contains(':') {
        if let Some(at) = rest[..query].rfind('@') {
            return Some(at);
        }
        // A `?` or `#` in the password ends the authority early too (`u:a#b@db/app`): then the
        // userinfo runs to the last `@`. (`h:5432/db?x=a@b`, an unencoded `@` in a query after
        // a port, is masked too, and misread: masking too much beats showing a password.)
        return rest.rfind('@');
    }
    None
}

/// Decode `%XX` escapes (a password in a URL is often percent-encoded; the raw form must be
/// masked as well). Invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_and_token() {
        let m = mask_url("http://app:hunter2pw@127.0.0.1:8080/health?token=abcd1234&verbose=1#x");
        assert_eq!(
            m,
            "http://app:***@127.0.0.1:8080/health?token=***&verbose=1#x"
        );
        assert!(scrub("failed: hunter2pw and abcd1234").contains("failed: *** and ***"));
    }

    #[test]
    fn sensitive_names_cover_headers_and_params() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Api-Key",
            "access_token",
            "password",
        ] {
            assert!(sensitive_name(name), "{name}");
        }
        for name in ["Accept", "X-Request-Id", "page", "verbose"] {
            assert!(!sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn credentials_in_a_script_are_remembered_before_it_runs() {
        remember_in_source(
            "let a = \"mysql://root:src-pw-111@db/x\";\nlet b = `host=h password='src pw 222' user=u`;\nlet c = \"password=src-pw-333\";",
        );
        assert_eq!(scrub("src-pw-111 src pw 222 src-pw-333"), "*** *** ***");
    }

    #[test]
    fn source_lines_keep_their_columns() {
        assert_eq!(
            mask_line("sql_ping(\"postgres://u:pw@h/x\") && f(`password=ab c`)"),
            "sql_ping(\"postgres://u:**@h/x\") && f(`password=** c`)"
        );
        assert_eq!(
            mask_line("let é = \"http://h/a@b\";"),
            "let é = \"http://h/a@b\";"
        );
    }

    #[test]
    fn fuzz_findings_stay_masked() {
        // A `#` or `?` in an unencoded password, and `;` `,` `"` inside a string literal.
        assert_eq!(
            mask_url("postgresql://probe:>As//P:#<>@db.local:5432/"),
            "postgresql://probe:***@db.local:5432/"
        );
        assert_eq!(
            mask_line(r#"let db = "mysql://probe:\"a:;.,=@db\"  \"";"#),
            r#"let db = "mysql://probe:********@db\"  \"";"#
        );
        assert_eq!(
            mask_url("postgres://probe://:token/?@?"),
            "postgres://probe:***@?"
        );
        assert_eq!(
            mask_url("postgresql://probe:2#:/#:/#@db.local:5432/#"),
            "postgresql://probe:***@db.local:5432/#"
        );
    }

    #[test]
    fn an_unencoded_slash_in_a_password_is_still_masked() {
        assert_eq!(
            mask_url("postgres://app:pa/ss-9x@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(scrub("pa/ss-9x"), "***");
        assert_eq!(
            mask_line("\"mysql://u:pa/ss@h/db\""),
            "\"mysql://u:*****@h/db\""
        );
        // A path with an @ and no user:pass before the first / is left alone.
        assert_eq!(mask_url("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn keeps_plain_urls() {
        let u = "https://example.test/a/b?verbose=1&page=2";
        assert_eq!(mask_url(u), u);
        assert_eq!(mask_url("postgres://user@db/app"), "postgres://user@db/app");
        assert_eq!(mask_url("localhost:8080"), "localhost:8080");
    }

    #[test]
    fn percent_encoded_password_is_remembered_decoded() {
        mask_url("postgres://u:p%40ss%2Fword@db:5432/app");
        assert_eq!(scrub("pw=p@ss/word"), "pw=***");
    }

    #[test]
    fn short_secrets_are_masked_in_place_only() {
        assert_eq!(mask_url("http://u:ab@h/"), "http://u:***@h/");
        assert_eq!(scrub("lab"), "lab");
    }

    #[test]
    fn percent_decode_tolerates_garbage() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a%41"), "aA");
        assert_eq!(percent_decode("é%é"), "é%é");
    }
}
