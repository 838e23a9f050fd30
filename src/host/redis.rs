//! `redis_ping(url)`: log in (AUTH when the URL has a password), `PING`, expect `PONG`.
//!
//! Three commands of the RESP protocol, written here: a Redis client crate would add more to the
//! binary than this whole file, for a check that needs nothing else.

use std::rc::Rc;

use rhai::{Engine, NativeCallContext};

use super::{
    decl::HostFn,
    options::Options,
    wire::{self, shown, Conn, Protocol, Scheme, Url},
    Host, RhaiResult,
};

pub const FUNCTIONS: &[HostFn] = &[REDIS_PING];

pub const REDIS_PING: HostFn = wire::url_check(
    "redis_ping",
    &[
        "redis_ping(url: string) -> bool",
        "redis_ping(url: string, options: map) -> bool",
    ],
    "true when Redis accepts the login (AUTH) and answers PING with PONG; false with the reason",
    wire::OPTIONS,
    register,
);

const SCHEMES: &[Scheme] = &[
    Scheme {
        prefix: "redis://",
        tls: false,
        port: 6379,
    },
    Scheme {
        prefix: "rediss://",
        tls: true,
        port: 6379,
    },
];

pub(crate) const REDIS: Protocol = Protocol {
    decl: &REDIS_PING,
    schemes: SCHEMES,
    usage: "redis://[user:password@]host[:port][/db] or rediss:// for TLS",
    plain: "is the port serving plain Redis? (use redis:// for a port without TLS)",
    lone_userinfo_is_secret: true,
    tls_after_greeting: false,
};

/// What a `redis://` or `rediss://` URL says.
#[derive(Debug, PartialEq)]
struct Target {
    url: Url,
    db: Option<u32>,
}

fn parse(mut url: Url) -> Result<Target, String> {
    // redis://secret@host: a password alone, as redis-cli reads it.
    if url.password.is_none() {
        url.password = url.user.take();
    }
    url.user = url.user.take().filter(|u| !u.is_empty());
    let db = match url.path.as_str() {
        "" => None,
        n => Some(
            n.parse::<u32>()
                .map_err(|_| format!("database '{n}' is not a number"))?,
        ),
    };
    Ok(Target { url, db })
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
fn reply(conn: &mut Conn) -> Result<String, String> {
    let line = conn
        .line(512)
        .map_err(|e| e.waiting("a Redis server", "to the command"))?;
    let text = String::from_utf8_lossy(&line).to_string();
    if !text.starts_with(['+', '-', ':', '$', '*']) {
        return Err(format!("not a Redis server (it answered {})", shown(&line)));
    }
    Ok(text)
}

/// Log in, select the database, ping. `Ok(())` on PONG; `Err(reason)` otherwise.
fn ping(conn: &mut Conn, target: &Target) -> Result<(), String> {
    let mut send = |parts: &[&str], expect: &str| -> Result<(), String> {
        conn.send(&command(parts))?;
        let answer = reply(conn)?;
        if answer == expect {
            Ok(())
        } else {
            Err(answer.trim_start_matches(['-', '+']).to_string())
        }
    };
    let url = &target.url;
    if let Some(password) = &url.password {
        match &url.user {
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
    text: &str,
    options: Options,
) -> RhaiResult<bool> {
    let target = parse(REDIS.parse(ctx, text)?).map_err(|m| REDIS.fault(ctx, text, &m))?;
    REDIS.ping(host, ctx, text, &target.url, &options, |conn| {
        ping(conn, &target).map(|()| "PONG".into())
    })
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &REDIS_PING, redis_ping);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let parse = |text: &str| Url::parse(text, SCHEMES, REDIS.usage).and_then(parse);
        let t = parse("redis://app:s%40cret@cache:6380/2").unwrap();
        assert_eq!(
            (
                t.url.host.as_str(),
                t.url.port,
                t.url.user.as_deref(),
                t.url.password.as_deref(),
                t.db
            ),
            ("cache", 6380, Some("app"), Some("s@cret"), Some(2))
        );
        let t = parse("rediss://:pw12@[::1]").unwrap();
        assert_eq!(
            (
                t.url.tls,
                t.url.host.as_str(),
                t.url.port,
                t.url.user,
                t.url.password.as_deref()
            ),
            (true, "::1", 6379, None, Some("pw12"))
        );
        let t = parse("redis://only-pw@h").unwrap();
        assert_eq!((t.url.user, t.url.password.as_deref()), (None, Some("only-pw")));
        assert!(parse("http://x").unwrap_err().contains("redis://"));
        assert!(parse("redis://h:0").unwrap_err().contains("port '0'"));
        assert!(parse("redis://h/x").unwrap_err().contains("database 'x'"));
        assert_eq!(command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    }
}
