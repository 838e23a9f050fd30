//! URL targets: a URL where a script path goes is checked without a script. Each scheme is one
//! row of [`SCHEMES`], which writes the one-call script that checks it; the run that follows is
//! the same as a script's (the engine, the deadline, masking, the verdict line, the exit codes).
//!
//! A path that exists as a file is always a file: only what is not one is read as a URL.

use std::path::Path;

/// A URL scheme and the script that checks a URL of it.
struct Scheme {
    scheme: &'static str,
    /// The script for `url` (already known to start with the scheme), or why it cannot be one.
    script: fn(url: &str) -> Result<String, String>,
}

/// Every scheme a target may have. A later capability adds its row (gRPC, brokers).
const SCHEMES: &[Scheme] = &[
    Scheme {
        scheme: "http://",
        script: http,
    },
    Scheme {
        scheme: "https://",
        script: http,
    },
    Scheme {
        scheme: "tcp://",
        script: tcp,
    },
    Scheme {
        scheme: "grpc://",
        script: grpc,
    },
    Scheme {
        scheme: "grpcs://",
        script: grpc,
    },
    Scheme {
        scheme: "postgres://",
        script: sql,
    },
    Scheme {
        scheme: "postgresql://",
        script: sql,
    },
    Scheme {
        scheme: "mysql://",
        script: sql,
    },
    Scheme {
        scheme: "mariadb://",
        script: sql,
    },
    Scheme {
        scheme: "redis://",
        script: redis,
    },
    Scheme {
        scheme: "rediss://",
        script: redis,
    },
    Scheme {
        scheme: "amqp://",
        script: amqp,
    },
    Scheme {
        scheme: "amqps://",
        script: amqp,
    },
    Scheme {
        scheme: "mqtt://",
        script: mqtt,
    },
    Scheme {
        scheme: "mqtts://",
        script: mqtt,
    },
    Scheme {
        scheme: "nats://",
        script: nats,
    },
    Scheme {
        scheme: "memcached://",
        script: memcached,
    },
];

/// The schemes, for messages and docs: `http, https, tcp, …`.
pub fn schemes() -> String {
    SCHEMES
        .iter()
        .map(|s| s.scheme.trim_end_matches("://"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a script's name is a URL target's (it has no lines to point at).
pub fn is_target_name(name: &str) -> bool {
    name.contains("://")
}

/// The script that checks `path` when it is a URL target (not a file, and URL-shaped): `None`
/// for anything else; `Some(Err)` for a URL this version cannot check.
pub fn script_for(path: &Path) -> Option<Result<String, String>> {
    let text = path.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    if path.exists()
        || scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let prefix = &text[..scheme.len() + 3];
    Some(
        match SCHEMES
            .iter()
            .find(|s| s.scheme.eq_ignore_ascii_case(prefix))
        {
            Some(s) => (s.script)(text),
            // NATS clients spell TLS `tls://`, but as a target alone it could mean any TLS port.
            None if scheme.eq_ignore_ascii_case("tls") => Err(format!(
                "{text}: a tls:// target is ambiguous; for NATS over TLS use \
                 -e 'nats_ping(\"{text}\")' (a nats:// target speaks TLS too when the server \
                 requires it)"
            )),
            None => Err(format!(
                "{scheme}:// is not a scheme rhai-probe checks, and no file has this name; \
                 targets are {}",
                schemes()
            )),
        },
    )
}

/// `"…"`: a Rhai string literal holding `text` as it is.
fn literal(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Healthy for a status from 200 to 399, as kubelet's httpGet probe.
fn http(url: &str) -> Result<String, String> {
    Ok(format!("http_get({}).ok", literal(url)))
}

fn tcp(url: &str) -> Result<String, String> {
    let rest = &url["tcp://".len()..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p),
        _ => {
            return Err(format!(
                "{url}: a tcp:// target needs a port: tcp://HOST:PORT"
            ))
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{url}: port '{port}' is not a number in 1-65535"))?;
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(format!("tcp_open({}, {port})", literal(host)))
}

/// gRPC's health service; the URL's path, if any, names the service.
fn grpc(url: &str) -> Result<String, String> {
    ping("grpc_health", url)
}

fn sql(url: &str) -> Result<String, String> {
    ping("sql_ping", url)
}

fn redis(url: &str) -> Result<String, String> {
    ping("redis_ping", url)
}

fn amqp(url: &str) -> Result<String, String> {
    ping("amqp_ping", url)
}

fn mqtt(url: &str) -> Result<String, String> {
    ping("mqtt_ping", url)
}

fn nats(url: &str) -> Result<String, String> {
    ping("nats_ping", url)
}

fn memcached(url: &str) -> Result<String, String> {
    ping("memcached_ping", url)
}

/// `function(url)`: the functions whose one argument is the URL, and whose answer is a bool.
fn ping(function: &str, url: &str) -> Result<String, String> {
    Ok(format!("{function}({})", literal(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> Option<Result<String, String>> {
        script_for(Path::new(text))
    }

    #[test]
    fn each_scheme_has_its_check() {
        assert_eq!(
            script("http://127.0.0.1:8080/health").unwrap().unwrap(),
            "http_get(\"http://127.0.0.1:8080/health\").ok"
        );
        assert_eq!(
            script("tcp://[::1]:5432").unwrap().unwrap(),
            "tcp_open(\"::1\", 5432)"
        );
        assert_eq!(
            script("postgres://u:p\"w@db/app").unwrap().unwrap(),
            "sql_ping(\"postgres://u:p\\\"w@db/app\")"
        );
        assert_eq!(
            script("REDIS://h").unwrap().unwrap(),
            "redis_ping(\"REDIS://h\")"
        );
        assert_eq!(
            script("amqps://u:p@mq/v").unwrap().unwrap(),
            "amqp_ping(\"amqps://u:p@mq/v\")"
        );
        assert_eq!(
            script("grpcs://api:443/orders.v1.Orders").unwrap().unwrap(),
            "grpc_health(\"grpcs://api:443/orders.v1.Orders\")"
        );
        assert_eq!(
            script("memcached://c").unwrap().unwrap(),
            "memcached_ping(\"memcached://c\")"
        );
        assert!(script("tls://n:4222")
            .unwrap()
            .unwrap_err()
            .contains("nats_ping(\"tls://n:4222\")"));
        assert!(script("tcp://db")
            .unwrap()
            .unwrap_err()
            .contains("needs a port"));
        assert!(script("tcp://db:70000")
            .unwrap()
            .unwrap_err()
            .contains("1-65535"));
        assert!(script("ftp://x")
            .unwrap()
            .unwrap_err()
            .contains("targets are http, https, tcp, grpc, grpcs"));
        assert!(script("probe.rhai").is_none());
        assert!(script("-").is_none());
    }
}
