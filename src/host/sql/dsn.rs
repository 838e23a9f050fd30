//! Database connection strings: `postgres://`, `postgresql://`, `mysql://`, `mariadb://` URLs and
//! libpq's `host=... dbname=...` form. One parser for both drivers, so that both read the same
//! URL the same way, both show it masked, and both reject a typo with the same kind of message.

use std::time::Duration;

use crate::{diagnostic::closest, redact};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "PostgreSQL",
            Kind::MySql => "MySQL",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::MySql => 3306,
        }
    }

    /// The name of the TLS parameter, as the user would write it.
    pub fn ssl_param(self) -> &'static str {
        match self {
            Kind::Postgres => "sslmode",
            Kind::MySql => "ssl-mode",
        }
    }
}

/// TLS, as libpq's `sslmode` means it (MySQL's `ssl-mode` names map onto the same five).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified; plain otherwise.
    Prefer,
    /// TLS or fail; the certificate is not verified (unless a CA file is given: then as VerifyCa).
    Require,
    /// TLS, certificate chain verified, host name not.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(kind: Kind, value: &str) -> Result<SslMode, String> {
        let v = value.to_ascii_lowercase().replace('_', "-");
        Ok(match v.as_str() {
            "disable" | "disabled" => SslMode::Disable,
            "allow" | "prefer" | "preferred" => SslMode::Prefer,
            "require" | "required" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" | "verify-identity" => SslMode::VerifyFull,
            _ => {
                let known = match kind {
                    Kind::Postgres => "disable, allow, prefer, require, verify-ca, verify-full",
                    Kind::MySql => "DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
                };
                return Err(format!(
                    "{}={value} is not a TLS mode; use one of {known}",
                    kind.ssl_param()
                ));
            }
        })
    }

    /// As the user's driver names it, for messages.
    pub fn name(self, kind: Kind) -> &'static str {
        match (kind, self) {
            (Kind::Postgres, SslMode::Disable) => "disable",
            (Kind::Postgres, SslMode::Prefer) => "prefer",
            (Kind::Postgres, SslMode::Require) => "require",
            (Kind::Postgres, SslMode::VerifyCa) => "verify-ca",
            (Kind::Postgres, SslMode::VerifyFull) => "verify-full",
            (Kind::MySql, SslMode::Disable) => "DISABLED",
            (Kind::MySql, SslMode::Prefer) => "PREFERRED",
            (Kind::MySql, SslMode::Require) => "REQUIRED",
            (Kind::MySql, SslMode::VerifyCa) => "VERIFY_CA",
            (Kind::MySql, SslMode::VerifyFull) => "VERIFY_IDENTITY",
        }
    }
}

/// Where to connect: a TCP host, or a unix socket (for PostgreSQL the directory, as libpq, with
/// the port naming the socket file in it; for MySQL the socket file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(String, u16),
    Socket(String, u16),
}

#[derive(Debug)]
pub struct Dsn {
    pub kind: Kind,
    /// The DSN as it may be shown: password and credential parameters replaced by `***`.
    pub shown: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// At least one; PostgreSQL tries them in order, as libpq does.
    pub targets: Vec<Target>,
    pub dbname: Option<String>,
    pub ssl: SslMode,
    /// `sslrootcert` / `ssl-ca`: trust this CA file instead of the bundled roots.
    pub ca_file: Option<String>,
    /// `sslcert` and `sslkey` (MySQL: `ssl-cert`, `ssl-key`): a client certificate and its key.
    pub identity: Option<(String, String)>,
    pub connect_timeout: Option<Duration>,
    /// Other PostgreSQL parameters (`application_name`, `options`, …), passed to the driver.
    pub params: Vec<(String, String)>,
}

const MYSQL_PARAMS: &[&str] = &[
    "ssl-mode",
    "sslmode",
    "ssl-ca",
    "sslrootcert",
    "ssl-cert",
    "sslcert",
    "ssl-key",
    "sslkey",
    "connect_timeout",
    "socket",
];

const SCHEMES: &str =
    "postgres://, postgresql://, mysql:// or mariadb:// (or libpq's \"host=... dbname=...\" form)";

/// The DSN as it may be shown anywhere, with its secrets remembered by `redact`.
pub fn mask(text: &str) -> String {
    if url_scheme(text).is_some() || !text.contains('=') {
        return redact::mask_url(text);
    }
    match conninfo_pairs(text) {
        Ok(pairs) => {
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            // `host= password=x` gives host the value `password=x` (libpq skips the blank after
            // `=`): hide a value that reads as a credential too, whatever key it landed under.
            let sensitive = |p: &&Pair| {
                !p.value.is_empty()
                    && (redact::sensitive_name(&p.key)
                        || p.value
                            .split_once('=')
                            .is_some_and(|(k, _)| redact::sensitive_name(k)))
            };
            for pair in pairs.iter().filter(sensitive) {
                redact::remember(&pair.value);
                if let Some((_, secret)) = pair.value.split_once('=') {
                    redact::remember(secret);
                }
                out.push_str(&text[last..pair.start]);
                out.push_str(redact::MASK);
                last = pair.end;
            }
            out.push_str(&text[last..]);
            redact::scrub(&out).into_owned()
        }
        // Unparseable: show the keys only.
        Err(_) => format!("(a malformed {} connection string)", Kind::Postgres.name()),
    }
}

/// The scheme when `text` starts like a URL (`name://`, RFC 3986's scheme characters), so that a
/// `://` inside a key=value password does not make the whole string a URL.
fn url_scheme(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let end = text.find("://")?;
    let scheme = &text[..end];
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(scheme)
}

pub fn parse(text: &str) -> Result<Dsn, String> {
    let shown = mask(text);
    let fail = |message: String| format!("{shown}: {message}");
    let text = text.trim();
    if text.is_empty() {
        return Err(format!(
            "the DSN is empty; expected {SCHEMES}, e.g. postgres://user:password@host:5432/db"
        ));
    }
    let mut raw = match url_scheme(text) {
        Some(scheme) => parse_url(scheme, &text[scheme.len() + 3..]).map_err(fail)?,
        None if text.contains('=') => parse_conninfo(text).map_err(fail)?,
        None => {
            return Err(fail(format!(
                "not a DSN; expected {SCHEMES}, e.g. postgres://user:password@host:5432/db"
            )))
        }
    };
    raw.shown = shown;
    Ok(raw)
}

/// The fields as read, before defaults: hosts and ports are zipped at the end, as libpq does.
struct Fields {
    kind: Kind,
    user: Option<String>,
    password: Option<String>,
    hosts: Vec<String>,
    ports: Vec<String>,
    dbname: Option<String>,
    params: Vec<(String, String)>,
}

fn parse_url(scheme: &str, rest: &str) -> Result<Dsn, String> {
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Kind::Postgres,
        "mysql" | "mariadb" => Kind::MySql,
        other => return Err(format!("unknown scheme '{other}://'; use {SCHEMES}")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The userinfo ends where masking says it does, so that what is parsed is what is hidden.
    let (userinfo, after) = match redact::userinfo_end(before_query) {
        Some(i) => (Some(&before_query[..i]), &before_query[i + 1..]),
        None => (None, before_query),
    };
    let (hostlist, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i + 1..]),
        None => (after, ""),
    };
    let decode = redact::percent_decode;
    let mut f = Fields::new(kind);
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        f.user = Some(decode(user)).filter(|u| !u.is_empty());
        f.password = password.map(decode);
    }
    for item in hostlist.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = if let Some(v6) = item.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(format!("'{item}' has no closing ']'"));
            };
            match after.strip_prefix(':') {
                Some(port) => (host.to_string(), Some(port)),
                None if after.is_empty() => (host.to_string(), None),
                None => return Err(format!("unexpected '{after}' after '[{host}]'")),
            }
        } else {
            match item.rsplit_once(':') {
                Some((host, port)) => (decode(host), Some(port)),
                None => (decode(item), None),
            }
        };
        f.hosts.push(host);
        if let Some(port) = port {
            f.ports.push(port.to_string());
        } else if !f.ports.is_empty() {
            f.ports.push(String::new());
        }
    }
    let path = decode(path);
    if !path.is_empty() {
        f.dbname = Some(path);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        f.take(&decode(key), decode(value))?;
    }
    finish(f)
}

impl Fields {
    fn new(kind: Kind) -> Self {
        Fields {
            kind,
            user: None,
            password: None,
            hosts: Vec::new(),
            ports: Vec::new(),
            dbname: None,
            params: Vec::new(),
        }
    }

    /// One `key=value` from a URL's query or a conninfo string.
    fn take(&mut self, key: &str, value: String) -> Result<(), String> {
        match (self.kind, key) {
            (_, "user") => self.user = Some(value),
            (_, "password") => self.password = Some(value),
            (_, "dbname") => self.dbname = Some(value),
            (Kind::Postgres, "host") => {
                self.hosts = value.split(',').map(str::to_string).collect();
            }
            (Kind::Postgres, "port") => {
                self.ports = value.split(',').map(str::to_string).collect();
            }
            (Kind::MySql, "socket") => {
                self.hosts = vec![value];
                self.ports.clear();
            }
            (Kind::Postgres, _) => self.params.push((key.to_string(), value)),
            (Kind::MySql, _) if MYSQL_PARAMS.contains(&key) => {
                self.params.push((key.to_string(), value))
            }
            (Kind::MySql, _) => {
                let hint = match closest(key, MYSQL_PARAMS.iter().copied()) {
                    Some(near) => format!("did you mean '{near}'? "),
                    None => String::new(),
                };
                return Err(format!(
                    "unknown parameter '{key}'; {hint}MySQL DSNs take {}",
                    MYSQL_PARAMS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn parse_conninfo(text: &str) -> Result<Dsn, String> {
    let mut f = Fields::new(Kind::Postgres);
    for pair in conninfo_pairs(text)? {
        if pair.key == "hostaddr" {
            // libpq: connect to this address, use `host` for TLS names; the driver knows both.
            f.params.push((pair.key, pair.value));
            continue;
        }
        f.take(&pair.key, pair.value)?;
    }
    finish(f)
}

fn finish(mut f: Fields) -> Result<Dsn, String> {
    let kind = f.kind;
    let mut ssl = match kind {
        // libpq's default; costs nothing when the server declines.
        Kind::Postgres => SslMode::Prefer,
        // The mysql crate's default: PREFERRED would cost a second connection to every server
        // without TLS (the driver cannot fall back on the same connection).
        Kind::MySql => SslMode::Disable,
    };
    let mut ca_file = None;
    let (mut cert_file, mut key_file) = (None, None);
    let mut ssl_given = false;
    let mut connect_timeout = None;
    let mut params = Vec::new();
    for (key, value) in std::mem::take(&mut f.params) {
        match key.as_str() {
            "sslmode" | "ssl-mode" => {
                ssl = SslMode::parse(kind, &value)?;
                ssl_given = true;
            }
            "sslrootcert" | "ssl-ca" => ca_file = Some(value).filter(|v| !v.is_empty()),
            "sslcert" | "ssl-cert" => cert_file = Some(value).filter(|v| !v.is_empty()),
            "sslkey" | "ssl-key" => key_file = Some(value).filter(|v| !v.is_empty()),
            "connect_timeout" => {
                let secs: u64 = value.trim().parse().map_err(|_| {
                    format!("connect_timeout={value} is not a whole number of seconds")
                })?;
                // libpq: zero means wait forever; here the probe's deadline bounds it anyway.
                connect_timeout = Some(Duration::from_secs(secs)).filter(|d| !d.is_zero());
            }
            _ => params.push((key, value)),
        }
    }
    let (cert, key) = match kind {
        Kind::Postgres => ("sslcert", "sslkey"),
        Kind::MySql => ("ssl-cert", "ssl-key"),
    };
    let identity = match (cert_file, key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err(format!("{cert} needs {key} too (the client certificate's private key)")),
        (None, Some(_)) => return Err(format!("{key} needs {cert} too (the client certificate)")),
    };
    // As the mysql and mariadb clients: a client certificate implies TLS.
    if identity.is_some() && !ssl_given && ssl == SslMode::Disable {
        ssl = SslMode::Require;
    }
    if kind == Kind::Postgres && f.user.as_deref().unwrap_or_default().is_empty() {
        return Err(
            "no user; write it in the DSN: postgres://USER:PASSWORD@host:5432/db (or user=... in \
             the key=value form)"
                .into(),
        );
    }
    if kind == Kind::MySql && f.hosts.len() > 1 {
        return Err("a MySQL DSN takes one host".into());
    }
    if f.hosts.is_empty() {
        f.hosts.push("localhost".into());
    }
    let ports: Vec<Option<u16>> = f
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<_, _>>()?;
    if ports.len() > 1 && ports.len() != f.hosts.len() {
        return Err(format!(
            "{} hosts but {} ports; give one port, or one per host",
            f.hosts.len(),
            ports.len()
        ));
    }
    let targets = f
        .hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = match ports.len() {
                0 => None,
                1 => ports[0],
                _ => ports[i],
            }
            .unwrap_or(kind.default_port());
            if host.starts_with('/') {
                Target::Socket(host.clone(), port)
            } else if host.is_empty() {
                Target::Tcp("localhost".into(), port)
            } else {
                Target::Tcp(host.clone(), port)
            }
        })
        .collect();
    Ok(Dsn {
        kind,
        shown: String::new(),
        user: f.user,
        password: f.password,
        targets,
        dbname: f.dbname.filter(|d| !d.is_empty()),
        ssl,
        ca_file,
        identity,
        connect_timeout,
        params,
    })
}

fn parse_port(text: &str) -> Result<Option<u16>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u16>() {
        Ok(p) if p != 0 => Ok(Some(p)),
        _ => Err(format!("port '{text}' is not a number in 1-65535")),
    }
}

/// One `key=value` of a libpq connection string, with where its value stands in the text.
pub struct Pair {
    pub key: String,
    pub value: String,
    pub start: usize,
    pub end: usize,
}

/// libpq's `key = value` list: values may be single-quoted, with `\'` and `\\` escapes.
pub fn conninfo_pairs(text: &str) -> Result<Vec<Pair>, String> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            return Ok(pairs);
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[key_start..i].to_string();
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(format!("'{key}' has no '=value'"));
        }
        i += 1;
        skip_ws(&mut i);
        let start = i;
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    // An escaped character may be several bytes long (found by fuzz/dsn).
                    b'\\' if i + 1 < bytes.len() => {
                        let ch = text[i + 1..].chars().next().unwrap_or_default();
                        value.push(ch);
                        i += 1 + ch.len_utf8();
                    }
                    b'\'' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        let ch = text[i..].chars().next().unwrap_or_default();
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(format!("the value of '{key}' has no closing quote"));
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value = text[start..i].replace("\\'", "'").replace("\\\\", "\\");
        }
        pairs.push(Pair {
            key,
            value,
            start,
            end: i,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp(host.into(), port)
    }

    #[test]
    fn postgres_url() {
        let d = parse("postgresql://app:s%40cret@db.internal:6543/orders?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(d.kind, Kind::Postgres);
        assert_eq!(d.user.as_deref(), Some("app"));
        assert_eq!(d.password.as_deref(), Some("s@cret"));
        assert_eq!(d.targets, vec![tcp("db.internal", 6543)]);
        assert_eq!(d.dbname.as_deref(), Some("orders"));
        assert_eq!(d.ssl, SslMode::VerifyFull);
        assert_eq!(d.params, vec![("application_name".into(), "x".into())]);
        assert_eq!(
            d.shown,
            "postgresql://app:***@db.internal:6543/orders?sslmode=verify-full&application_name=x"
        );
    }

    #[test]
    fn a_password_with_an_unencoded_slash() {
        let d = parse("postgres://app:pa/ss@db/app").unwrap();
        assert_eq!(d.password.as_deref(), Some("pa/ss"));
        assert_eq!(d.targets, vec![tcp("db", 5432)]);
        assert_eq!(d.dbname.as_deref(), Some("app"));
        assert_eq!(d.shown, "postgres://app:***@db/app");
    }

    #[test]
    fn several_hosts_ipv6_and_sockets() {
        let d = parse("postgres://u@[::1]:5433,h2/db").unwrap();
        assert_eq!(d.targets, vec![tcp("::1", 5433), tcp("h2", 5432)]);
        let d = parse("postgres://u@%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(
            d.targets,
            vec![Target::Socket("/run/postgresql".into(), 5432)]
        );
        let d = parse("postgres://u@/db?host=/var/run/postgresql&port=5433").unwrap();
        assert_eq!(
            d.targets,
            vec![Target::Socket("/var/run/postgresql".into(), 5433)]
        );
        let d = parse("mysql://root@localhost/test?socket=/run/mysqld/mysqld.sock").unwrap();
        assert_eq!(
            d.targets,
            vec![Target::Socket("/run/mysqld/mysqld.sock".into(), 3306)]
        );
    }

    #[test]
    fn conninfo_form_and_its_mask() {
        let text = "host=127.0.0.1 port=5432 user=app password='it''s' dbname=test";
        assert!(parse(text).is_err(), "'' is not an escape in libpq");
        let text =
            r"host=127.0.0.1 port = 5432 user=app password='s3 cr\'et' dbname=test sslmode=require";
        let d = parse(text).unwrap();
        assert_eq!(d.password.as_deref(), Some("s3 cr'et"));
        assert_eq!(d.targets, vec![tcp("127.0.0.1", 5432)]);
        assert_eq!(d.ssl, SslMode::Require);
        assert_eq!(
            d.shown,
            "host=127.0.0.1 port = 5432 user=app password=*** dbname=test sslmode=require"
        );
    }

    #[test]
    fn fuzz_findings() {
        // An escaped multi-byte character in a quoted value: once a panic.
        let d = parse(r"host=h user=u password='p\é\'q' dbname=d").unwrap();
        assert_eq!(d.password.as_deref(), Some("pé'q"));
        // `host= password=x`: libpq gives host the value `password=x`; it is hidden all the same.
        assert_eq!(
            mask("host= password=n:#::.// dbname=test"),
            "host= *** dbname=test"
        );
        // `://` inside a key=value password does not make the string a URL.
        let text = "host=h user=u password=a://b-secret dbname=d";
        assert_eq!(
            parse(text).unwrap().password.as_deref(),
            Some("a://b-secret")
        );
        assert!(!mask(text).contains("b-secret"));
    }

    #[test]
    fn mysql_url_and_ssl_mode_names() {
        let d = parse("mariadb://root:pw12@127.0.0.1/test?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem")
            .unwrap();
        assert_eq!(d.kind, Kind::MySql);
        assert_eq!(d.targets, vec![tcp("127.0.0.1", 3306)]);
        assert_eq!(d.ssl, SslMode::VerifyFull);
        assert_eq!(d.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(parse("mysql://root@h/test").unwrap().ssl, SslMode::Disable);
        assert_eq!(parse("postgres://u@h/test").unwrap().ssl, SslMode::Prefer);
    }

    #[test]
    fn client_certificates_and_the_tls_they_imply() {
        let d = parse("mysql://u@h/db?ssl-cert=/c.pem&ssl-key=/k.pem").unwrap();
        assert_eq!(d.identity, Some(("/c.pem".into(), "/k.pem".into())));
        assert_eq!(d.ssl, SslMode::Require, "a client certificate implies TLS");
        let d = parse("mysql://u@h/db?ssl-mode=DISABLED&ssl-cert=/c.pem&ssl-key=/k.pem").unwrap();
        assert_eq!(d.ssl, SslMode::Disable, "unless TLS is switched off in so many words");
        let d = parse("host=h user=u sslcert=/c.pem sslkey=/k.pem sslmode=verify-full").unwrap();
        assert_eq!(d.identity, Some(("/c.pem".into(), "/k.pem".into())));
        assert!(d.params.is_empty(), "{:?}", d.params);
        // The key's file name is no secret: it is shown.
        assert!(mask("postgres://u:pw12@h/db?sslkey=/etc/k.pem").ends_with("sslkey=/etc/k.pem"));
        assert_eq!(
            parse("postgres://u@h/db?sslcert=/c.pem").unwrap_err(),
            "postgres://u@h/db?sslcert=/c.pem: sslcert needs sslkey too (the client certificate's private key)"
        );
    }

    #[test]
    fn mistakes_are_named_with_the_dsn_masked() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(
            e("http://u:pw12@h/db"),
            "http://u:***@h/db: unknown scheme 'http://'; use postgres://, postgresql://, mysql:// or mariadb:// (or libpq's \"host=... dbname=...\" form)"
        );
        assert!(
            e("postgres://u:pw12@h:99999/db").ends_with("port '99999' is not a number in 1-65535")
        );
        assert!(e("postgres://h/db").contains("no user"));
        assert!(e("postgres://u:pw12@h/db?sslmode=verify").contains(
            "sslmode=verify is not a TLS mode; use one of disable, allow, prefer, require, verify-ca, verify-full"
        ));
        assert!(e("mysql://u:pw12@h/db?ssl_mode=REQUIRED").contains("did you mean 'ssl-mode'?"));
        assert!(e("mysql://u@h1,h2/db").contains("one host"));
        assert!(e("localhost:5432").contains("not a DSN"));
        assert!(e("").contains("empty"));
        for message in [e("http://u:pw12@h/db"), e("postgres://u:pw12@h:0/db")] {
            assert!(!message.contains("pw12"), "{message}");
        }
    }
}
