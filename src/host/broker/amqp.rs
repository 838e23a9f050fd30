//! `amqp_ping(url)`: AMQP 0-9-1 (RabbitMQ) up to an open virtual host, then a clean close.
//!
//! The protocol header, Connection.Start → StartOk (PLAIN), Tune → TuneOk, Open → OpenOk, and
//! Close → CloseOk: six method frames of the connection class, written here. A client crate
//! (lapin) would bring its own executor and much more code for a check that opens no channel.

use std::rc::Rc;

use rhai::{Engine, NativeCallContext};

use crate::host::{
    decl::HostFn,
    options::Options,
    wire::{self, Conn, Io, Protocol, Scheme},
    Host, RhaiResult,
};

pub const AMQP_PING: HostFn = wire::url_check(
    "amqp_ping",
    &[
        "amqp_ping(url: string) -> bool",
        "amqp_ping(url: string, options: map) -> bool",
    ],
    "true when an AMQP 0-9-1 broker (RabbitMQ) accepts the login and opens the URL's virtual host; false with the broker's reason",
    wire::OPTIONS,
    register,
);

pub(crate) const AMQP: Protocol = Protocol {
    decl: &AMQP_PING,
    schemes: &[
        Scheme {
            prefix: "amqp://",
            tls: false,
            port: 5672,
        },
        Scheme {
            prefix: "amqps://",
            tls: true,
            port: 5671,
        },
    ],
    usage: "amqp://[user:password@]host[:port][/vhost] or amqps:// for TLS",
    plain: "is the port serving plain AMQP? (use amqp:// for a port without TLS, usually 5672)",
    lone_userinfo_is_secret: false,
    tls_after_greeting: false,
};

const SERVER: &str = "an AMQP 0-9-1 server";
const HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// The largest frame read: a Connection.Start is well under 4 KiB.
const MAX_FRAME: usize = 128 * 1024;

// (class, method) of the connection class.
const START: (u16, u16) = (10, 10);
const START_OK: (u16, u16) = (10, 11);
const SECURE: (u16, u16) = (10, 20);
const TUNE: (u16, u16) = (10, 30);
const TUNE_OK: (u16, u16) = (10, 31);
const OPEN: (u16, u16) = (10, 40);
const OPEN_OK: (u16, u16) = (10, 41);
const CLOSE: (u16, u16) = (10, 50);
const CLOSE_OK: (u16, u16) = (10, 51);

/// The login and virtual host a URL names. RabbitMQ's URI spec: user and password default to
/// `guest`; no path is the default vhost `/`, and `/%2F` is `/` too (`amqp://h/` as well, as
/// pika and most clients read it).
#[derive(Debug, PartialEq)]
struct Login {
    user: String,
    password: String,
    vhost: String,
}

fn login(url: &wire::Url) -> Login {
    let vhost = match url.path.as_str() {
        "" => "/".to_string(),
        p => crate::redact::percent_decode(p),
    };
    Login {
        user: url.user.clone().unwrap_or_else(|| "guest".into()),
        password: url.password.clone().unwrap_or_else(|| "guest".into()),
        vhost,
    }
}

/// A method frame on channel 0.
fn frame((class, method): (u16, u16), args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(4 + args.len());
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut out = vec![FRAME_METHOD, 0, 0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out.push(FRAME_END);
    out
}

fn short(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Connection.StartOk: who we are, and a PLAIN login. `authentication_failure_close` asks
/// RabbitMQ to say ACCESS_REFUSED in a Close rather than drop the connection.
fn start_ok(login: &Login) -> Vec<u8> {
    let mut capabilities = Vec::new();
    short(&mut capabilities, "authentication_failure_close");
    capabilities.extend_from_slice(b"t\x01");
    let mut table = Vec::new();
    for (key, value) in [
        ("product", "rhai-probe"),
        ("version", env!("CARGO_PKG_VERSION")),
        ("connection_name", "rhai-probe"),
    ] {
        short(&mut table, key);
        table.push(b'S');
        long(&mut table, value.as_bytes());
    }
    short(&mut table, "capabilities");
    table.push(b'F');
    long(&mut table, &capabilities);
    let mut args = Vec::new();
    long(&mut args, &table);
    short(&mut args, "PLAIN");
    let mut response = vec![0];
    response.extend_from_slice(login.user.as_bytes());
    response.push(0);
    response.extend_from_slice(login.password.as_bytes());
    long(&mut args, &response);
    short(&mut args, "en_US");
    frame(START_OK, &args)
}

/// A cursor over a method's arguments; reading past the end is `None`.
struct Args<'a>(&'a [u8]);

impl<'a> Args<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn short(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        self.take(n).map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn long(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// `product` and `version` from a field table (server-properties), skipping other fields; a
/// field type this does not know ends the reading.
fn product(table: &[u8]) -> Option<String> {
    let mut args = Args(table);
    let (mut product, mut version) = (None, None);
    while !args.0.is_empty() {
        let key = args.short()?;
        let size = match args.u8()? {
            b'S' | b'x' | b'A' | b'F' => {
                let value = args.long()?;
                match key.as_str() {
                    "product" => product = Some(String::from_utf8_lossy(value).into_owned()),
                    "version" => version = Some(String::from_utf8_lossy(value).into_owned()),
                    _ => {}
                }
                0
            }
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'l' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            _ => break,
        };
        args.take(size)?;
    }
    match (product, version) {
        (Some(p), Some(v)) => Some(format!("{p} {v}")),
        (p, _) => p,
    }
}

/// The next method frame's (class, method) and arguments; heartbeats are skipped.
fn method(conn: &mut Conn, awaited: &str) -> Result<((u16, u16), Vec<u8>), String> {
    loop {
        let head = conn.exact(7).map_err(|e| match e {
            Io::Unexpected(bytes) if bytes.starts_with(b"AMQP") => other_version(&bytes),
            e => e.waiting(SERVER, awaited),
        })?;
        if head.starts_with(b"AMQP") {
            let mut bytes = head.clone();
            bytes.extend(conn.exact(1).unwrap_or_default());
            return Err(other_version(&bytes));
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        if !matches!(head[0], FRAME_METHOD | FRAME_HEARTBEAT) || size > MAX_FRAME {
            return Err(format!(
                "not {SERVER} (it answered {})",
                wire::shown(&[&head, conn.pending()].concat())
            ));
        }
        let body = conn
            .exact(size + 1)
            .map_err(|e| e.waiting(SERVER, awaited))?;
        if body[size] != FRAME_END {
            return Err(format!("not {SERVER} (a frame without its end marker)"));
        }
        if head[0] == FRAME_HEARTBEAT {
            continue;
        }
        let mut args = Args(&body[..size]);
        let (Some(class), Some(id)) = (args.u16(), args.u16()) else {
            return Err(format!("not {SERVER} (a method frame too short)"));
        };
        return Ok(((class, id), args.0.to_vec()));
    }
}

/// The server answered the protocol header with its own: it speaks another AMQP.
fn other_version(bytes: &[u8]) -> String {
    match bytes.get(4..8) {
        Some([0, 0, 9, 1]) => "the server sent an AMQP 0-9-1 header back".into(),
        Some([id, major, minor, revision]) => format!(
            "the server speaks AMQP {major}.{minor}.{revision} (protocol id {id}), not 0-9-1: \
             is it an AMQP 1.0 broker (ActiveMQ Artemis, Azure Service Bus)?"
        ),
        _ => "the server answered with a protocol header".into(),
    }
}

/// A Connection.Close from the server: `403 ACCESS_REFUSED - Login was refused …`.
fn closed_by_server(args: &[u8]) -> String {
    let mut args = Args(args);
    match (args.u16(), args.short()) {
        (Some(code), Some(text)) => format!("{code} {text}"),
        _ => "the server closed the connection".into(),
    }
}

/// Log in and open the vhost; `Ok(what it said)` when OpenOk came.
fn speak(conn: &mut Conn, login: &Login) -> Result<String, String> {
    conn.send(HEADER)?;
    let (id, args) = method(conn, "to the protocol header")?;
    if id != START {
        return Err(format!(
            "not {SERVER} (method {}.{} before Connection.Start)",
            id.0, id.1
        ));
    }
    let mut start = Args(&args);
    let (_major, _minor) = (start.u8(), start.u8());
    let server = start.long().and_then(product);
    let mechanisms = start
        .long()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    let server = server.unwrap_or_else(|| "the broker".into());
    if !mechanisms.split(' ').any(|m| m == "PLAIN") {
        return Err(format!(
            "{server} offers no PLAIN login (mechanisms: {mechanisms})"
        ));
    }
    conn.send(&start_ok(login))?;
    let refused = |e: String| {
        if e == "the server closed the connection" {
            format!(
                "{server} closed the connection after the login: wrong user name or password?"
            )
        } else {
            e
        }
    };
    let (id, args) = method(conn, "to the login").map_err(refused)?;
    let (channel_max, frame_max) = match id {
        TUNE => {
            let mut tune = Args(&args);
            (tune.u16().unwrap_or(0), tune.u32().unwrap_or(0))
        }
        CLOSE => return Err(format!("login refused: {}", closed_by_server(&args))),
        SECURE => return Err(format!("{server} asks for a SASL challenge PLAIN does not answer")),
        (c, m) => return Err(format!("{server} sent method {c}.{m} instead of Connection.Tune")),
    };
    // TuneOk with the server's limits and no heartbeats; then Open. One write, one round trip.
    let mut tune_ok = channel_max.to_be_bytes().to_vec();
    tune_ok.extend_from_slice(&frame_max.to_be_bytes());
    tune_ok.extend_from_slice(&0u16.to_be_bytes());
    let mut open = Vec::new();
    short(&mut open, &login.vhost);
    short(&mut open, "");
    open.push(0);
    let mut out = frame(TUNE_OK, &tune_ok);
    out.extend(frame(OPEN, &open));
    conn.send(&out)?;
    let (id, args) = method(conn, "to Connection.Open")?;
    match id {
        OPEN_OK => {}
        CLOSE => {
            return Err(format!(
                "vhost {:?} refused: {}",
                login.vhost,
                closed_by_server(&args)
            ))
        }
        (c, m) => return Err(format!("{server} sent method {c}.{m} instead of Connection.OpenOk")),
    }
    // A clean close, so the broker logs no "client unexpectedly closed TCP connection". Its
    // CloseOk is waited for, but the check has already passed.
    let mut close = 200u16.to_be_bytes().to_vec();
    short(&mut close, "rhai-probe check done");
    close.extend_from_slice(&[0, 0, 0, 0]);
    if conn.send(&frame(CLOSE, &close)).is_ok() {
        let _ = method(conn, "to Connection.Close").map(|(id, _)| id == CLOSE_OK);
    }
    Ok(format!("{server}: vhost {:?} open", login.vhost))
}

fn amqp_ping(host: &Host, ctx: &NativeCallContext, text: &str, options: Options) -> RhaiResult<bool> {
    let url = AMQP.parse(ctx, text)?;
    let login = login(&url);
    if login.vhost.len() > 255 {
        return Err(AMQP.fault(ctx, text, "the vhost is longer than 255 bytes"));
    }
    AMQP.ping(host, ctx, text, &url, &options, |conn| speak(conn, &login))
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &AMQP_PING, amqp_ping);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Login {
        login(&wire::Url::parse(text, AMQP.schemes, AMQP.usage).unwrap())
    }

    #[test]
    fn urls_name_the_login_and_vhost() {
        let guest = |vhost: &str| Login {
            user: "guest".into(),
            password: "guest".into(),
            vhost: vhost.into(),
        };
        assert_eq!(parsed("amqp://mq"), guest("/"));
        assert_eq!(parsed("amqp://mq/"), guest("/"));
        assert_eq!(parsed("amqp://mq/%2F"), guest("/"));
        assert_eq!(parsed("amqps://mq:5671/orders%2Fv2"), guest("orders/v2"));
        let l = parsed("amqp://app:p%40ss@mq/prod");
        assert_eq!((l.user.as_str(), l.password.as_str()), ("app", "p@ss"));
    }

    #[test]
    fn frames_and_tables() {
        assert_eq!(
            frame(CLOSE_OK, &[]),
            [1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51, 0xCE]
        );
        let mut table = Vec::new();
        for (k, ty, v) in [
            ("capabilities", b'F', &b"\x00\x00\x00\x00"[..]),
            ("cluster_name", b'S', b"\x00\x00\x00\x03abc"),
            ("flag", b't', b"\x01"),
            ("product", b'S', b"\x00\x00\x00\x08RabbitMQ"),
            ("version", b'S', b"\x00\x00\x00\x063.12.1"),
        ] {
            short(&mut table, k);
            table.push(ty);
            table.extend_from_slice(v);
        }
        assert_eq!(product(&table).as_deref(), Some("RabbitMQ 3.12.1"));
        assert_eq!(product(b"\x03abc?"), None);
        assert!(other_version(b"AMQP\x03\x01\x00\x00").contains("AMQP 1.0.0"));
    }
}
