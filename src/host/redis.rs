//! `redis_ping(url)`: log in (AUTH when the URL has a password), `PING`, expect `PONG`.
//!
//! Three commands of the RESP protocol, written here: a Redis client crate would add more to the
//! binary than this whole file, for a check that needs nothing else.

use std::{
    io::{Read, Write},
    net::TcpStream,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use rhai::{Engine, Map, NativeCallContext};

use super::{
    decl::{Fails, HostFn, Mask, Opt, OptType, Secret, Stub, Time, TIMEOUT, TIMEOUT_MS},
    io_reason,
    options::Options,
    tcp::resolve,
    tls, Host, HostError, RhaiResult,
};
use crate::{redact, trace::Outcome};

pub const FUNCTIONS: &[HostFn] = &[REDIS_PING];

pub const REDIS_PING: HostFn = HostFn {
    name: "redis_ping",
    signatures: &[
        "redis_ping(url: string) -> bool",
        "redis_ping(url: string, options: map) -> bool",
    ],
    summary:
        "true when Redis accepts the login (AUTH) and answers PING with PONG; false with the reason",
    options: &[
        TIMEOUT,
        TIMEOUT_MS,
        Opt {
            key: "insecure",
            ty: OptType::Bool,
            default: "false",
            doc: "`rediss://`: skip certificate verification",
        },
    ],
    keys: &[],
    fails: Fails::False,
    time: Time::Network,
    secrets: &[Secret {
        arg: 0,
        mask: Mask::Url,
    }],
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    register,
};

/// What a `redis://` or `rediss://` URL says.
#[derive(Debug, PartialEq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    db: Option<u32>,
}

fn parse(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("redis://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("rediss://") {
        (true, r)
    } else {
        return Err(
            "expected redis://[user:password@]host[:port][/db] or rediss:// for TLS".into(),
        );
    };
    let (userinfo, after) = match redact::userinfo_end(rest) {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
    let authority = authority.split(['?', '#']).next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or("a '[' without ']'")?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None | Some("") => 6379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port '{p}' is not a number in 1-65535"))?,
    };
    let decode = redact::percent_decode;
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (Some(decode(u)).filter(|u| !u.is_empty()), Some(decode(p))),
            // redis://secret@host: a password alone, as redis-cli reads it.
            None => (None, Some(decode(info))),
        },
    };
    let db = match path.split(['?', '#']).next().unwrap_or_default() {
        "" => None,
        n => Some(
            n.parse::<u32>()
                .map_err(|_| format!("database '{n}' is not a number"))?,
        ),
    };
    Ok(Target {
        tls,
        host,
        port,
        user,
        password,
        db,
    })
}

/// An I/O failure in a line; a TLS one says what to change.
fn reason(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "TLS certificate rejected ({cert:?}): it must chain to the bundled roots and name the host; insecure: true skips the check"
        ),
        Some(other) => format!("TLS failed: {other}"),
        None => io_reason(e),
    }
}

/// Complete the TLS handshake of `conn` over `tcp` (its timeouts already set), or say why not.
fn handshake(conn: &mut rustls::ClientConnection, tcp: &mut TcpStream) -> Result<(), String> {
    use std::io::ErrorKind::{ConnectionReset, InvalidData, TimedOut, UnexpectedEof, WouldBlock};
    const PLAIN: &str = "is the port serving plain Redis? (use redis:// for a port without TLS)";
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(tcp) {
            return Err(match e.kind() {
                WouldBlock | TimedOut => {
                    format!("TLS handshake failed: no answer to the ClientHello; {PLAIN}")
                }
                UnexpectedEof | ConnectionReset => {
                    format!("connection closed during the TLS handshake; {PLAIN}")
                }
                InvalidData if !matches!(
                    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
                    Some(rustls::Error::InvalidCertificate(_))
                ) =>
                {
                    format!("TLS handshake failed ({}); {PLAIN}", reason(&e))
                }
                _ => reason(&e),
            });
        }
    }
    Ok(())
}

/// A RESP command as an array of bulk strings.
fn command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply line (`+PONG`, `-WRONGPASS …`), at most 512 bytes.
fn reply(stream: &mut impl Read) -> Result<String, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 512 {
        match stream.read(&mut byte) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer in time".into())
            }
            Err(e) => return Err(reason(&e)),
        }
    }
    let text = String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string();
    if !text.starts_with(['+', '-', ':', '$', '*']) {
        let shown: String = text.chars().take(40).collect();
        return Err(format!("not a Redis server (it answered {shown:?})"));
    }
    Ok(text)
}

/// Log in, select the database, ping. `Ok(())` on PONG; `Err(reason)` otherwise.
fn ping(stream: &mut (impl Read + Write), target: &Target) -> Result<(), String> {
    let mut send = |parts: &[&str], expect: &str| -> Result<(), String> {
        stream.write_all(&command(parts)).map_err(|e| reason(&e))?;
        let answer = reply(stream)?;
        if answer == expect {
            Ok(())
        } else {
            Err(answer.trim_start_matches(['-', '+']).to_string())
        }
    };
    if let Some(password) = &target.password {
        match &target.user {
            Some(user) => send(&["AUTH", user, password], "+OK")?,
            None => send(&["AUTH", password], "+OK")?,
        }
    }
    if let Some(db) = target.db {
        send(&["SELECT", &db.to_string()], "+OK")?;
    }
    send(&["PING"], "+PONG")
}

fn redis_ping(
    host: &Host,
    ctx: &NativeCallContext,
    url: &str,
    options: Options,
) -> RhaiResult<bool> {
    let shown = redact::mask_url(url);
    let target = parse(url.trim())
        .map_err(|m| HostError::Fault(format!("{shown}: {m}")).into_fault("redis_ping", ctx))?;
    if let Some(p) = &target.password {
        redact::remember(p);
    }
    let timeout = options
        .timeout()
        .map_err(|e| e.into_fault("redis_ping", ctx))?;
    let insecure = options
        .bool("insecure")
        .map_err(|e| e.into_fault("redis_ping", ctx))?
        .unwrap_or(false);
    host.call(
        ctx,
        &REDIS_PING,
        &[url],
        format!("redis_ping({shown})"),
        timeout,
        |budget| {
            let started = Instant::now();
            let left = || {
                budget
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1))
            };
            let fail = |reason: String| Ok((false, Outcome::Fail(reason)));
            let addrs = match resolve(&target.host, target.port, budget) {
                Ok(a) => a,
                Err(reason) => return fail(reason),
            };
            let mut last = String::from("no address");
            let mut stream = None;
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, left()) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = io_reason(&e),
                }
            }
            let Some(tcp) = stream else { return fail(last) };
            let _ = tcp.set_read_timeout(Some(left()));
            let _ = tcp.set_write_timeout(Some(left()));
            let result = if target.tls {
                let verify = if insecure {
                    tls::Verify::Nothing
                } else {
                    tls::Verify::ChainAndName
                };
                let config = tls::client_config(verify, None, tls::KeyShare::X25519)
                    .map_err(HostError::Fault)?;
                let name =
                    rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
                        HostError::Fault(format!("{} is not a valid TLS server name", target.host))
                    })?;
                let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
                    .map_err(|e| HostError::Transport(format!("TLS setup: {e}")))?;
                let mut tcp = tcp;
                // The handshake first, on its own, so that its failure says what HTTPS says:
                // a plain Redis port never answers a ClientHello (it waits for a command line).
                match handshake(&mut conn, &mut tcp) {
                    Ok(()) => {
                        let mut tls = rustls::StreamOwned::new(conn, tcp);
                        ping(&mut tls, &target)
                    }
                    Err(reason) => Err(reason),
                }
            } else {
                let mut tcp = tcp;
                ping(&mut tcp, &target)
            };
            match result {
                Ok(()) => Ok((true, Outcome::Pass("PONG".into()))),
                Err(reason) => fail(reason),
            }
        },
    )
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("redis_ping", move |ctx: NativeCallContext, url: &str| {
        redis_ping(&h, &ctx, url, Options::none())
    });
    let h = host.clone();
    engine.register_fn(
        "redis_ping",
        move |ctx: NativeCallContext, url: &str, options: Map| {
            let options =
                Options::new(&options, &REDIS_PING).map_err(|e| e.into_fault("redis_ping", &ctx))?;
            redis_ping(&h, &ctx, url, options)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse("redis://app:s%40cret@cache:6380/2").unwrap();
        assert_eq!(
            t,
            Target {
                tls: false,
                host: "cache".into(),
                port: 6380,
                user: Some("app".into()),
                password: Some("s@cret".into()),
                db: Some(2)
            }
        );
        let t = parse("rediss://:pw12@[::1]").unwrap();
        assert_eq!(
            (
                t.tls,
                t.host.as_str(),
                t.port,
                t.user,
                t.password.as_deref()
            ),
            (true, "::1", 6379, None, Some("pw12"))
        );
        assert!(parse("http://x").unwrap_err().contains("redis://"));
        assert!(parse("redis://h:0").unwrap_err().contains("port '0'"));
        assert!(parse("redis://h/x").unwrap_err().contains("database 'x'"));
        assert_eq!(command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    }
}
