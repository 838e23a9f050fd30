//! `memcached_ping(url)`: `version` answered, after the ASCII protocol's login when the URL has
//! one (memcached's `-Y` auth file: a `set` whose data is `user password`).

use std::rc::Rc;

use rhai::{Engine, NativeCallContext};

use crate::host::{
    decl::{HostFn, Opt, OptType, TIMEOUT, TIMEOUT_MS},
    options::Options,
    wire::{self, Conn, Protocol, Scheme, Url},
    Host, RhaiResult,
};

pub const MEMCACHED_PING: HostFn = wire::url_check(
    "memcached_ping",
    &[
        "memcached_ping(url: string) -> bool",
        "memcached_ping(url: string, options: map) -> bool",
    ],
    "true when memcached accepts the login (if the URL has one) and answers `version`; false with the reason",
    &[
        TIMEOUT,
        TIMEOUT_MS,
        Opt {
            key: "tls",
            ty: OptType::Bool,
            default: "false",
            doc: "speak TLS (memcached started with `-Z`); memcached URLs have no TLS scheme",
        },
        wire::INSECURE,
        wire::CA_FILE,
        wire::SERVER_NAME,
        wire::CERT_FILE,
        wire::KEY_FILE,
    ],
    register,
);

pub(crate) const MEMCACHED: Protocol = Protocol {
    decl: &MEMCACHED_PING,
    schemes: &[Scheme {
        prefix: "memcached://",
        tls: false,
        port: 11211,
    }],
    usage: "memcached://[user:password@]host[:port] (tls: true for TLS)",
    plain: "is the port serving plain memcached? (leave out tls: true for a port without TLS)",
    lone_userinfo_is_secret: false,
    tls_after_greeting: false,
};

fn line(conn: &mut Conn) -> Result<String, String> {
    let line = conn
        .line(1024)
        .map_err(|e| e.waiting("a memcached server", "to version"))?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// `version` first: a server without an auth file answers it, and the login is never sent (a
/// `set` there would store the login as a key's value). One with an auth file says
/// `unauthenticated`; then the login and `version` again.
fn speak(conn: &mut Conn, url: &Url) -> Result<String, String> {
    conn.send(b"version\r\n")?;
    let mut answer = line(conn)?;
    let logged_in = answer == "CLIENT_ERROR unauthenticated";
    if logged_in {
        let (Some(user), Some(password)) = (&url.user, &url.password) else {
            return Err("the server requires a login: memcached://user:password@host:port".into());
        };
        let data = format!("{user} {password}");
        let login = format!("set rhai-probe 0 0 {}\r\n{data}\r\nversion\r\n", data.len());
        conn.send(login.as_bytes())?;
        match line(conn)?.as_str() {
            "STORED" => answer = line(conn)?,
            // Pipelined with `version`, a refused login is answered "unauthenticated".
            "CLIENT_ERROR authentication failure" | "CLIENT_ERROR unauthenticated" => {
                return Err("login refused: authentication failure (user or password)".into())
            }
            other => return Err(format!("login refused: {other}")),
        }
    }
    match answer.strip_prefix("VERSION ") {
        Some(version) if url.user.is_some() && !logged_in => {
            Ok(format!("memcached {version} (it asks no login)"))
        }
        Some(version) => Ok(format!("memcached {version}")),
        None => Err(format!(
            "not a memcached server (it answered {})",
            wire::shown(answer.as_bytes())
        )),
    }
}

fn memcached_ping(
    host: &Host,
    ctx: &NativeCallContext,
    text: &str,
    options: Options,
) -> RhaiResult<bool> {
    let mut url = MEMCACHED.parse(ctx, text)?;
    url.tls = options
        .bool("tls")
        .map_err(|e| e.into_fault("memcached_ping", ctx))?
        .unwrap_or(false);
    if url.user.is_some() != url.password.is_some() {
        return Err(MEMCACHED.fault(ctx, text, "a login needs both user and password"));
    }
    MEMCACHED.ping(host, ctx, text, &url, &options, |conn| speak(conn, &url))
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &MEMCACHED_PING, memcached_ping);
}
