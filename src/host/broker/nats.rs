//! `nats_ping(url)`: the server's INFO, CONNECT with the URL's login, PING → PONG. NATS's
//! text protocol, three lines each way, written here.

use std::rc::Rc;

use rhai::{Engine, NativeCallContext};

use crate::host::{
    decl::HostFn,
    options::Options,
    wire::{self, Conn, Protocol, Scheme, Url},
    Host, RhaiResult,
};

pub const NATS_PING: HostFn = wire::url_check(
    "nats_ping",
    &[
        "nats_ping(url: string) -> bool",
        "nats_ping(url: string, options: map) -> bool",
    ],
    "true when a NATS server accepts the CONNECT (user and password, or token) and answers PING with PONG; false with its -ERR",
    wire::OPTIONS,
    register,
);

pub(crate) const NATS: Protocol = Protocol {
    decl: &NATS_PING,
    schemes: &[
        Scheme {
            prefix: "nats://",
            tls: false,
            port: 4222,
        },
        Scheme {
            prefix: "tls://",
            tls: true,
            port: 4222,
        },
    ],
    usage: "nats://[user:password@|token@]host[:port] or tls:// for TLS",
    plain: "does the server have TLS configured? (use nats:// for a server without it)",
    lone_userinfo_is_secret: true,
    tls_after_greeting: true,
};

/// The INFO line's facts this check uses.
#[derive(Debug)]
struct Info {
    server: String,
    tls_required: bool,
    tls_available: bool,
}

fn info(line: &[u8]) -> Result<Info, String> {
    let Some(json) = line.strip_prefix(b"INFO ") else {
        return Err(format!("not a NATS server (it answered {})", wire::shown(line)));
    };
    let info: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| format!("the server's INFO is not JSON: {e}"))?;
    let text = |key: &str| info.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    let flag = |key: &str| info.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    Ok(Info {
        server: format!("NATS {}", text("version")).trim_end().to_string(),
        tls_required: flag("tls_required"),
        tls_available: flag("tls_available"),
    })
}

/// CONNECT without echo or verbose `+OK`s, then PING: one write.
fn connect(url: &Url, tls: bool) -> Vec<u8> {
    let mut fields = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": tls,
        "name": "rhai-probe",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "echo": false,
    });
    match (&url.user, &url.password) {
        (Some(user), Some(pass)) => {
            fields["user"] = user.as_str().into();
            fields["pass"] = pass.as_str().into();
        }
        // nats://token@host, as NATS clients read it.
        (Some(token), None) => fields["auth_token"] = token.as_str().into(),
        _ => {}
    }
    format!("CONNECT {fields}\r\nPING\r\n").into_bytes()
}

fn speak(conn: &mut Conn, url: &Url) -> Result<String, String> {
    let line = conn
        .line(64 * 1024)
        .map_err(|e| e.waiting("a NATS server", "for the INFO greeting (NATS servers speak first)"))?;
    let info = info(&line)?;
    // As NATS's own clients: a server that requires TLS gets it on a nats:// URL too
    // (verified as a tls:// URL would be).
    let tls = url.tls || info.tls_required;
    if !tls {
        conn.stay_plain();
    } else if !info.tls_required && !info.tls_available {
        return Err(format!(
            "{} has no TLS configured: use nats://{}:{}",
            info.server, url.host, url.port
        ));
    }
    conn.start_tls()?;
    conn.send(&connect(url, tls))?;
    loop {
        let line = conn
            .line(64 * 1024)
            .map_err(|e| e.waiting("a NATS server", "to CONNECT and PING"))?;
        let text = String::from_utf8_lossy(&line);
        match text.split(' ').next().unwrap_or_default() {
            "PONG" => return Ok(format!("PONG from {}", info.server)),
            "-ERR" => {
                let error = text["-ERR".len()..].trim().trim_matches('\'');
                return Err(format!("{} refused: {error}", info.server));
            }
            "PING" => conn.send(b"PONG\r\n")?,
            "+OK" | "INFO" => {}
            _ => return Err(format!("not a NATS server (it answered {})", wire::shown(&line))),
        }
    }
}

fn nats_ping(host: &Host, ctx: &NativeCallContext, text: &str, options: Options) -> RhaiResult<bool> {
    let url = NATS.parse(ctx, text)?;
    NATS.ping(host, ctx, text, &url, &options, |conn| speak(conn, &url))
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &NATS_PING, nats_ping);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_lines() {
        let url = |t: &str| Url::parse(t, NATS.schemes, NATS.usage).unwrap();
        let line = String::from_utf8(connect(&url("nats://app:p%22w@n"), false)).unwrap();
        assert!(line.contains(r#""user":"app""#), "{line}");
        assert!(line.contains(r#""pass":"p\"w""#), "{line}");
        assert!(line.ends_with("}\r\nPING\r\n"));
        let line = String::from_utf8(connect(&url("tls://s3cr3t@n"), true)).unwrap();
        assert!(line.contains(r#""auth_token":"s3cr3t""#), "{line}");
        assert!(line.contains(r#""tls_required":true"#), "{line}");
        let i = info(br#"INFO {"version":"2.9.10","tls_required":true}"#).unwrap();
        assert_eq!((i.server.as_str(), i.tls_required), ("NATS 2.9.10", true));
        assert!(info(b"+PONG").unwrap_err().contains("not a NATS server"));
    }
}
