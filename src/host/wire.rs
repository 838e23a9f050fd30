//! What the small protocols spoken here directly over TCP share (Redis, AMQP, MQTT, NATS,
//! Memcached): the `scheme://[user[:password]@]host[:port][/path]` URL, a connection whose every
//! read and write is bounded by the call's budget, the TLS handshake with reasons that say what
//! to change, and buffered reading of lines and frames.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    os::unix::net::UnixStream,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use rustls::{pki_types::ServerName, ClientConfig, ClientConnection, StreamOwned};

use rhai::{Engine, EvalAltResult, Map, NativeCallContext};

use super::{
    decl::{Fails, HostFn, Mask, Opt, OptType, Secret, Stub, Time, TIMEOUT, TIMEOUT_MS},
    io_reason,
    options::Options,
    tcp::resolve,
    tls, Host, HostError, RhaiResult,
};
use crate::{redact, trace::Outcome};

/// A URL scheme a function accepts: `prefix` ends in `://`.
pub struct Scheme {
    pub prefix: &'static str,
    pub tls: bool,
    pub port: u16,
}

/// What a URL says. `user` is the userinfo before a `:`, or all of it when it has none
/// (`password` is then `None`): Redis reads that as a password, NATS as a token.
#[derive(Debug, PartialEq)]
pub struct Url {
    pub scheme: &'static str,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// After the authority's `/`, before `?` or `#`, not decoded.
    pub path: String,
}

impl Url {
    /// Parse `url` as one of `schemes`, or say what was expected (`usage`).
    pub fn parse(url: &str, schemes: &[Scheme], usage: &str) -> Result<Url, String> {
        let url = url.trim();
        let Some((scheme, rest)) = schemes.iter().find_map(|s| {
            let head = url.get(..s.prefix.len())?;
            head.eq_ignore_ascii_case(s.prefix)
                .then(|| (s, &url[s.prefix.len()..]))
        }) else {
            return Err(format!("expected {usage}"));
        };
        let (userinfo, after) = match redact::userinfo_end(rest) {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (authority, path) = match after.find(['/', '?', '#']) {
            Some(i) if after.as_bytes()[i] == b'/' => (&after[..i], &after[i + 1..]),
            Some(i) => (&after[..i], ""),
            None => (after, ""),
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or("a '[' without ']'")?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host; expected {usage}"));
        }
        let port = match port {
            None | Some("") => scheme.port,
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
                Some((u, p)) => (Some(decode(u)), Some(decode(p))),
                None => (Some(decode(info)), None),
            },
        };
        if let Some(p) = &password {
            redact::remember(p);
        }
        Ok(Url {
            scheme: scheme.prefix,
            tls: scheme.tls,
            host: host.to_string(),
            port,
            user,
            password,
            path: path.to_string(),
        })
    }
}

/// The TLS options of the functions here, declared once.
pub const INSECURE: Opt = Opt {
    key: "insecure",
    ty: OptType::Bool,
    default: "false",
    doc: "TLS: skip certificate verification (the connection is still encrypted)",
};
pub const CA_FILE: Opt = Opt {
    key: "ca_file",
    ty: OptType::String,
    default: "none",
    doc: "TLS: a PEM file of the CAs to trust instead of the bundled roots; unreadable or empty: a script fault",
};
pub const SERVER_NAME: Opt = Opt {
    key: "server_name",
    ty: OptType::String,
    default: "the URL's host",
    doc: "TLS: the name to send (SNI) and to verify the certificate against",
};

pub const CERT_FILE: Opt = Opt {
    key: "cert_file",
    ty: OptType::String,
    default: "none",
    doc: "TLS: a PEM client certificate (chain) to present, for servers that ask for one; with `key_file`",
};
pub const KEY_FILE: Opt = Opt {
    key: "key_file",
    ty: OptType::String,
    default: "none",
    doc: "TLS: the PEM private key of `cert_file`; one that does not match it is a script fault",
};

/// The options of a check that has no others: the timeout and TLS.
pub const OPTIONS: &[Opt] = &[
    TIMEOUT,
    TIMEOUT_MS,
    INSECURE,
    CA_FILE,
    SERVER_NAME,
    CERT_FILE,
    KEY_FILE,
];

/// The TLS options every function here takes: `insecure`, `ca_file`, `server_name`.
#[derive(Default)]
pub struct TlsOptions {
    pub insecure: bool,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    /// `cert_file` and `key_file`.
    pub identity: Option<(String, String)>,
}

impl TlsOptions {
    /// The options' TLS keys; those a function does not declare read as unset.
    pub fn of(options: &Options) -> Result<TlsOptions, HostError> {
        let identity = match (options.string("cert_file")?, options.string("key_file")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(HostError::Fault(
                    "option 'cert_file' needs 'key_file' too".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(HostError::Fault(
                    "option 'key_file' needs 'cert_file' too".into(),
                ))
            }
        };
        Ok(TlsOptions {
            insecure: options.bool("insecure")?.unwrap_or(false),
            ca_file: options.string("ca_file")?,
            server_name: options.string("server_name")?,
            identity,
        })
    }

    /// Whether any TLS option was given.
    fn given(&self) -> bool {
        self.insecure
            || self.ca_file.is_some()
            || self.server_name.is_some()
            || self.identity.is_some()
    }

    /// The client configuration and the name to verify for `host`, built before connecting: a
    /// CA file that cannot be read or a name that is not one is the script's fault.
    pub fn config(
        &self,
        host: &str,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), HostError> {
        self.config_with_alpn(host, None)
    }

    /// As [`TlsOptions::config`], offering `alpn` (`h2`) in the handshake.
    pub fn config_with_alpn(
        &self,
        host: &str,
        alpn: Option<&[u8]>,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), HostError> {
        let verify = if self.insecure {
            tls::Verify::Nothing
        } else {
            tls::Verify::ChainAndName
        };
        let identity = match &self.identity {
            Some((cert, key)) => Some(tls::identity(cert, key).map_err(HostError::Fault)?),
            None => None,
        };
        let mut config = tls::client_config_with(
            verify,
            self.ca_file.as_deref(),
            tls::KeyShare::X25519,
            identity.as_ref(),
        )
        .map_err(HostError::Fault)?;
        config.alpn_protocols.extend(alpn.map(<[u8]>::to_vec));
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string())
            .map_err(|_| HostError::Fault(format!("{name} is not a valid TLS server name")))?;
        Ok((Arc::new(config), name))
    }
}

/// A TCP or unix stream whose reads and writes all end by `until`: each one gets the time left.
pub struct Timed {
    stream: Socket,
    until: Instant,
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Timed {
    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = Some(self.left()?);
        match &mut self.stream {
            Socket::Tcp(s) => s.set_read_timeout(left).and_then(|()| s.read(buf)),
            Socket::Unix(s) => s.set_read_timeout(left).and_then(|()| s.read(buf)),
        }
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = Some(self.left()?);
        match &mut self.stream {
            Socket::Tcp(s) => s.set_write_timeout(left).and_then(|()| s.write(buf)),
            Socket::Unix(s) => s.set_write_timeout(left).and_then(|()| s.write(buf)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Stream {
    Plain(Timed),
    Tls(Box<StreamOwned<ClientConnection, Timed>>),
    /// After a failed TLS handshake.
    Gone,
}

/// The TLS client settings and the name to verify, made before connecting.
pub type TlsConfig = (Arc<ClientConfig>, ServerName<'static>);

/// A connection with a read buffer, so that a protocol reads lines and frames without a system
/// call per byte.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    /// TLS still to start (see [`Conn::start_tls`]), and what a plain port is called.
    tls: Option<(Pending, &'static str)>,
}

/// TLS settings made before connecting, or (a server that may ask for TLS in its greeting,
/// with no TLS option given) made only if it does: the bundled roots cost a plain run.
enum Pending {
    Ready(TlsConfig),
    Default(String),
}

/// Connect to `host:port` (every address in turn), all of it within `budget`.
pub fn connect(host: &str, port: u16, budget: Duration) -> Result<Conn, String> {
    let until = Instant::now() + budget;
    let addrs = resolve(host, port, budget)?;
    let mut last = String::from("no address");
    for addr in addrs {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = format!("timed out after {}", crate::deadline::human(budget));
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(Conn::new(Socket::Tcp(stream), until));
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = format!("timed out after {}", crate::deadline::human(budget));
            }
            Err(e) => last = io_reason(&e),
        }
    }
    Err(last)
}

/// Connect to the unix socket at `path` within `budget`, as [`connect_unix`] does.
pub fn connect_path(path: &std::path::Path, budget: Duration) -> Result<Conn, String> {
    let until = Instant::now() + budget;
    match connect_unix(path, budget) {
        Ok(stream) => Ok(Conn::new(Socket::Unix(stream), until)),
        // Its own messages (a path too long, a full backlog) say more than the kind.
        Err(e) if e.get_ref().is_some() => Err(e.to_string()),
        Err(e) => Err(io_reason(&e)),
    }
}

/// Connect to the unix socket at `path` within `budget`. A blocking `connect` waits without end
/// while the listener's backlog is full (a server that stopped accepting); this one retries a
/// non-blocking connect until the budget is spent, then says so.
pub fn connect_unix(
    path: &std::path::Path,
    budget: Duration,
) -> io::Result<std::os::unix::net::UnixStream> {
    use std::os::unix::{ffi::OsStrExt, io::FromRawFd};
    crate::permissions::unix(path).map_err(io::Error::other)?;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a unix socket path must be 1 to {} bytes without NUL",
                addr.sun_path.len() - 1
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in addr.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    // SAFETY: a plain socket(2) call; the descriptor is owned by the stream at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket that nothing else owns.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let started = Instant::now();
    loop {
        // SAFETY: addr is a valid sockaddr_un of the size given.
        let rc = unsafe {
            libc::connect(
                fd,
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let left = budget.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the socket's backlog stayed full: the server is not accepting connections",
                    ));
                }
                std::thread::sleep(left.min(Duration::from_millis(5)));
            }
            _ => return Err(e),
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// An I/O failure in a line; a TLS one says what to change.
pub fn reason(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "TLS certificate rejected ({cert:?}): it must chain to the bundled roots (or ca_file) and name the host (or server_name); insecure: true skips the check"
        ),
        Some(other) => format!("TLS failed: {other}{}", tls::alert_hint(&other.to_string())),
        None if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            NO_ANSWER.into()
        }
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection".into()
        }
        None => io_reason(e),
    }
}

impl Conn {
    fn new(socket: Socket, until: Instant) -> Conn {
        Conn {
            stream: Stream::Plain(Timed {
                stream: socket,
                until,
            }),
            buf: Vec::new(),
            start: 0,
            tls: None,
        }
    }

    /// The protocol the TLS handshake agreed on (ALPN), if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match &self.stream {
            Stream::Tls(tls) => tls.conn.alpn_protocol(),
            _ => None,
        }
    }

    /// Plain text from here on: a protocol whose server said it needs no TLS (NATS).
    pub fn stay_plain(&mut self) {
        self.tls = None;
    }

    /// Speak TLS from here on, when the URL asks for it (else nothing). Most protocols start at
    /// once ([`ping`] does it); NATS after the server's greeting.
    pub fn start_tls(&mut self) -> Result<(), String> {
        use io::ErrorKind::{ConnectionReset, InvalidData, TimedOut, UnexpectedEof, WouldBlock};
        let Some((pending, plain)) = self.tls.take() else {
            return Ok(());
        };
        let (config, name) = match pending {
            Pending::Ready(config) => config,
            Pending::Default(host) => TlsOptions::default().config(&host).map_err(
                |(HostError::Fault(m) | HostError::Transport(m) | HostError::Denied(m))| m,
            )?,
        };
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Ok(());
        };
        if self.start != self.buf.len() {
            // TLS must start on a clean boundary: bytes after the greeting would be lost.
            return Err(format!(
                "the server sent more after its greeting ({}) before TLS could start",
                shown(&self.buf[self.start..])
            ));
        }
        let mut conn =
            ClientConnection::new(config, name).map_err(|e| format!("TLS setup: {e}"))?;
        // The handshake on its own, so that its failure says what HTTPS says: a plain port of
        // most of these protocols never answers a ClientHello.
        {
            if let Err(e) = tls::handshake(&mut conn, &mut tcp) {
                return Err(match e.kind() {
                    WouldBlock | TimedOut => {
                        format!("TLS handshake failed: no answer to the ClientHello; {plain}")
                    }
                    UnexpectedEof | ConnectionReset => {
                        format!("connection closed during the TLS handshake; {plain}")
                    }
                    // A certificate rejected or an alert received: the port speaks TLS.
                    InvalidData
                        if !matches!(
                            e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
                            Some(
                                rustls::Error::InvalidCertificate(_)
                                    | rustls::Error::AlertReceived(_)
                            )
                        ) =>
                    {
                        format!("TLS handshake failed ({}); {plain}", reason(&e))
                    }
                    _ => reason(&e),
                });
            }
        }
        self.stream = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
        Ok(())
    }

    /// Speak TLS from here on with these settings (a client of its own, as `tls_cert`'s).
    pub fn start_tls_with(&mut self, config: TlsConfig, plain: &'static str) -> Result<(), String> {
        self.tls = Some((Pending::Ready(config), plain));
        self.start_tls()
    }

    /// The TLS version and cipher suite this connection agreed on (`TLSv1.3`,
    /// `TLS13_AES_256_GCM_SHA384`), once TLS has started.
    pub fn tls_session(&self) -> Option<(String, String)> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        super::tls::negotiated(&tls.conn)
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let result = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        };
        result.map_err(|e| reason(&e))
    }

    /// Read more into the buffer; `Ok(false)` when the peer closed the connection.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 4096, 0);
        let read = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut self.buf[old..]),
            Stream::Tls(s) => s.read(&mut self.buf[old..]),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        };
        self.buf.truncate(old + *read.as_ref().unwrap_or(&0));
        Ok(read? > 0)
    }

    /// The next line, without its `\r\n`, at most `max` bytes; `Err` with the reason when the
    /// peer closes, stays silent, or sends a longer one.
    pub fn line(&mut self, max: usize) -> Result<Vec<u8>, Io> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let mut line = pending[..i].to_vec();
                self.start += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if pending.len() > max {
                return Err(Io::Unexpected(pending.to_vec()));
            }
            self.more()?;
        }
    }

    /// Exactly `n` bytes.
    pub fn exact(&mut self, n: usize) -> Result<Vec<u8>, Io> {
        while self.buf.len() - self.start < n {
            self.more()?;
        }
        let bytes = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(bytes)
    }

    /// What was read and not yet taken (for a message about an unexpected answer).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn more(&mut self) -> Result<(), Io> {
        match self.fill() {
            Ok(true) => Ok(()),
            Ok(false) if self.start == self.buf.len() => Err(Io::Closed),
            Ok(false) => Err(Io::Unexpected(self.buf[self.start..].to_vec())),
            Err(e) => Err(Io::Failed(reason(&e))),
        }
    }
}

/// Why a read did not give what was asked.
#[derive(Debug)]
pub enum Io {
    /// The peer closed the connection with nothing pending.
    Closed,
    /// The peer sent these bytes and then closed, or more than a line may hold.
    Unexpected(Vec<u8>),
    /// Silence until the budget ran out, a reset, a TLS failure: the reason.
    Failed(String),
}

impl Io {
    /// The reason, for a protocol whose server is called `server` (`an AMQP server`).
    pub fn reason(self, server: &str) -> String {
        match self {
            Io::Closed => "the server closed the connection".into(),
            Io::Unexpected(bytes) => format!("not {server} (it answered {})", shown(&bytes)),
            Io::Failed(reason) => reason,
        }
    }

    /// As [`Io::reason`], and silence says what was awaited: `no answer in time to the
    /// protocol header; is this an AMQP 0-9-1 server?`.
    pub fn waiting(self, server: &str, awaited: &str) -> String {
        match self {
            Io::Failed(reason) if reason == NO_ANSWER => {
                format!("{NO_ANSWER} {awaited}; is this {server}?")
            }
            other => other.reason(server),
        }
    }
}

const NO_ANSWER: &str = "no answer in time";

/// The first bytes of an unexpected answer, quoted, for a reason line.
pub fn shown(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
    )
}

/// What `f` must be to be registered by [`register`]: the host, the call, the URL, the options.
pub type UrlCheck<T = bool> =
    for<'a> fn(&Host, &NativeCallContext, &str, Options<'a>) -> RhaiResult<T>;

/// Register `name(url)` and `name(url, options)` for a check of a URL.
pub fn register<T: rhai::Variant + Clone>(
    engine: &mut Engine,
    host: &Rc<Host>,
    decl: &'static HostFn,
    f: UrlCheck<T>,
) {
    let h = host.clone();
    engine.register_fn(decl.name, move |ctx: NativeCallContext, url: &str| {
        f(&h, &ctx, url, Options::none())
    });
    let h = host.clone();
    engine.register_fn(
        decl.name,
        move |ctx: NativeCallContext, url: &str, options: Map| {
            let options =
                Options::new(&options, decl).map_err(|e| e.into_fault(decl.name, &ctx))?;
            f(&h, &ctx, url, options)
        },
    );
}

/// The declaration of a check of a URL (its first argument, masked as a URL) that answers
/// true, or false with the reason: what `redis_ping` and the brokers' functions share.
pub const fn url_check(
    name: &'static str,
    signatures: &'static [&'static str],
    summary: &'static str,
    options: &'static [Opt],
    register: fn(&mut Engine, &Rc<Host>),
) -> HostFn {
    HostFn {
        name,
        signatures,
        summary,
        options,
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
        reach: crate::host::decl::Reach::Url(0),
        register,
    }
}

/// A protocol whose check is "connect, log in, get an answer": the function, its URL forms, and
/// how a failed TLS handshake is explained.
pub struct Protocol {
    pub decl: &'static HostFn,
    pub schemes: &'static [Scheme],
    /// The URL forms, for a fault: `amqp://[user:password@]host[:port][/vhost] or amqps://`.
    pub usage: &'static str,
    /// Said after a failed TLS handshake: `is the port serving plain Redis? (use redis://…)`.
    pub plain: &'static str,
    /// `scheme://secret@host` is a password or token (Redis, NATS), not a user name.
    pub lone_userinfo_is_secret: bool,
    /// TLS starts after the server's plain-text greeting (NATS), not on connecting.
    pub tls_after_greeting: bool,
}

impl Protocol {
    /// `url` with its password (or lone token) masked, as the trace and messages show it.
    pub fn shown(&self, url: &str) -> String {
        let masked = redact::mask_url(url);
        if !self.lone_userinfo_is_secret {
            return masked;
        }
        let Some((scheme, rest)) = masked.split_once("://") else {
            return masked;
        };
        match redact::userinfo_end(rest) {
            Some(at) if !rest[..at].contains(':') => {
                redact::remember(&redact::percent_decode(&rest[..at]));
                format!("{scheme}://{}{}", redact::MASK, &rest[at..])
            }
            _ => masked,
        }
    }

    /// The URL, or a script fault naming it (masked) and the forms expected.
    pub fn parse(&self, ctx: &NativeCallContext, url: &str) -> RhaiResult<Url> {
        Url::parse(url, self.schemes, self.usage).map_err(|m| self.fault(ctx, url, &m))
    }

    /// A script fault about `url`: `amqp_ping: amqp://app:***@mq/x: vhost …`.
    pub fn fault(&self, ctx: &NativeCallContext, url: &str, message: &str) -> Box<EvalAltResult> {
        HostError::Fault(format!("{}: {message}", self.shown(url))).into_fault(self.decl.name, ctx)
    }

    /// Connect to `url` within the call's budget, start TLS when it asks for it (`url.tls`), and
    /// let `speak` log in and ping: `Ok(what the server said)` → true; `Err(reason)` → false
    /// with the reason. Options: `timeout`, and the TLS ones.
    pub fn ping(
        &self,
        host: &Host,
        ctx: &NativeCallContext,
        text: &str,
        url: &Url,
        options: &Options,
        speak: impl FnOnce(&mut Conn) -> Result<String, String>,
    ) -> RhaiResult<bool> {
        let name = self.decl.name;
        let timeout = options.timeout().map_err(|e| e.into_fault(name, ctx))?;
        let settings = TlsOptions::of(options).map_err(|e| e.into_fault(name, ctx))?;
        // A protocol that starts TLS after its greeting may be told to there (NATS's
        // `tls_required`): with TLS options given they are checked now; without, the default
        // settings are made only if the server asks.
        let config = if url.tls || (self.tls_after_greeting && settings.given()) {
            Some(Pending::Ready(
                settings
                    .config(&url.host)
                    .map_err(|e| e.into_fault(name, ctx))?,
            ))
        } else if self.tls_after_greeting {
            Some(Pending::Default(url.host.clone()))
        } else {
            None
        };
        let shown = self.shown(text);
        host.call(
            ctx,
            self.decl,
            &[text],
            format!("{name}({shown})"),
            timeout,
            |budget| {
                let result = connect(&url.host, url.port, budget).and_then(|mut conn| {
                    conn.tls = config.map(|c| (c, self.plain));
                    if !self.tls_after_greeting {
                        conn.start_tls()?;
                    }
                    speak(&mut conn)
                });
                Ok(match result {
                    Ok(said) => (true, Outcome::Pass(said)),
                    Err(reason) => (false, Outcome::Fail(reason)),
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMES: &[Scheme] = &[
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
    ];

    #[test]
    fn urls() {
        let u = Url::parse(
            "AMQP://app:s%40cret@mq:5673/orders%2Fv2?heartbeat=5",
            SCHEMES,
            "x",
        )
        .unwrap();
        assert_eq!(
            u,
            Url {
                scheme: "amqp://",
                tls: false,
                host: "mq".into(),
                port: 5673,
                user: Some("app".into()),
                password: Some("s@cret".into()),
                path: "orders%2Fv2".into(),
            }
        );
        let u = Url::parse("amqps://tok@[::1]", SCHEMES, "x").unwrap();
        assert_eq!(
            (
                u.tls,
                u.host.as_str(),
                u.port,
                u.user.as_deref(),
                u.password
            ),
            (true, "::1", 5671, Some("tok"), None)
        );
        let u = Url::parse("amqp://h?x=1", SCHEMES, "x").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("h", ""));
        assert_eq!(
            Url::parse("http://h", SCHEMES, "amqp://HOST").unwrap_err(),
            "expected amqp://HOST"
        );
        assert!(Url::parse("amqp://h:0", SCHEMES, "x")
            .unwrap_err()
            .contains("port '0'"));
        assert!(Url::parse("amqp://u:p@/v", SCHEMES, "x")
            .unwrap_err()
            .contains("no host"));
        assert!(Url::parse("amqp://[::1/v", SCHEMES, "x").is_err());
    }
}
