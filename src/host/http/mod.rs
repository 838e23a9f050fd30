//! `http_get` and `json`: kubelet's `httpGet` probe, from a script.
//!
//! Semantics follow kubelet's prober: a status in 200-399 is `ok`; redirects are followed on the
//! same host only (a redirect elsewhere is returned as it is, as kubelet does); proxy environment
//! variables are ignored. Unlike kubelet, TLS certificates are verified unless `insecure: true`,
//! against bundled Mozilla roots (no CA bundle needed in the image, and no 3 ms load of the
//! system store on every start). The body is read up to `max_body` bytes and never further.
//! Connections are made by `transport`: TCP or a unix socket, TLS with a client certificate if
//! one is given, and what the handshake showed kept for the response's `tls`.

mod transport;

use std::{io::Read, rc::Rc, time::Instant};

use rhai::{Dynamic, Engine, Map, NativeCallContext};
use ureq::{
    http::{header::LOCATION, Uri},
    typestate::{WithBody, WithoutBody},
    RequestBuilder,
    unversioned::{
        resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver},
        transport::NextTimeout,
    },
};

use super::{
    decl::{Fails, HostFn, Key, KeyStub, Mask, Opt, OptType, Secret, Stub, Time, Type, TIMEOUT, TIMEOUT_MS},
    options::Options,
    result_map, tls, values, wire, Host, HostError, RhaiResult,
};
use crate::{redact, trace::Outcome};

pub const FUNCTIONS: &[HostFn] = &[HTTP_GET, HTTP_REQUEST, JSON];

/// kubelet's rule for an `httpGet` probe: a status from 200 to 399 is a success. The one
/// definition: `http_get`'s `ok` and its stubs both read it.
pub fn ok_status(status: i64) -> bool {
    (200..400).contains(&status)
}

/// The options of `http_get`; `http_request` takes these and its own.
const HEADERS: Opt = Opt {
        key: "headers",
        ty: OptType::Map,
        default: "none",
        doc: "request headers, e.g. `#{ Authorization: \"Bearer \" + token }`; values of credential-like names are masked",
};
const INSECURE: Opt = Opt {
        key: "insecure",
        ty: OptType::Bool,
        default: "false",
        doc: "skip TLS certificate verification (`tls` still says whether it verified)",
};
const CA_FILE: Opt = Opt {
        key: "ca_file",
        ty: OptType::String,
        default: "none",
        doc: "a PEM file of the CAs to trust (a private CA, a self-signed certificate) instead of the bundled roots; unreadable or empty: a script fault",
};
const MAX_BODY: Opt = Opt {
        key: "max_body",
        ty: OptType::Int,
        default: "65536",
        doc: "bytes of body to read (0 to 1048576); the rest is never read",
};
const FOLLOW_REDIRECTS: Opt = Opt {
        key: "follow_redirects",
        ty: OptType::Bool,
        default: "true",
        doc: "follow 301/302/303/307/308 on the same host, at most 10",
};
const UNIX_SOCKET: Opt = Opt {
        key: "unix_socket",
        ty: OptType::String,
        default: "none",
        doc: "connect to this unix socket instead of the URL's host, as curl's `--unix-socket`; the URL still gives the `Host` header and the path (`http://localhost/stats`)",
};
const HTTP_OPTIONS: &[Opt] = &[
    TIMEOUT,
    TIMEOUT_MS,
    HEADERS,
    INSECURE,
    CA_FILE,
    wire::CERT_FILE,
    wire::KEY_FILE,
    UNIX_SOCKET,
    MAX_BODY,
    FOLLOW_REDIRECTS,
];

/// The keys of a response map, from `http_get` and `http_request` alike.
const RESPONSE: &[Key] = &[
        Key {
            name: "status",
            ty: Type::Int,
            doc: "the HTTP status",
            stub: KeyStub::Value("200"),
        },
        Key {
            name: "ok",
            ty: Type::Bool,
            doc: "`200 <= status < 400` (kubelet's rule for `httpGet` probes)",
            stub: KeyStub::Derived("from `status`, as kubelet counts 200-399", stub_ok),
        },
        Key {
            name: "body",
            ty: Type::String,
            doc: "at most `max_body` bytes of the body (invalid UTF-8 replaced with U+FFFD)",
            stub: KeyStub::Value("\"\""),
        },
        Key {
            name: "headers",
            ty: Type::Map,
            doc: "response headers, names lower-case, repeated headers joined with `\", \"`",
            stub: KeyStub::Value("{}"),
        },
        Key {
            name: "elapsed_ms",
            ty: Type::Float,
            doc: "time for the whole call, redirects included",
            stub: KeyStub::Value("0.0"),
        },
        Key {
            name: "truncated",
            ty: Type::Bool,
            doc: "the body was longer than `max_body` and was cut",
            stub: KeyStub::Value("false"),
        },
        Key {
            name: "url",
            ty: Type::String,
            doc: "the final URL, after redirects",
            stub: KeyStub::Derived("the URL it was called with", stub_url),
        },
        Key {
            name: "tls",
            ty: Type::Map,
            doc: "https: what the handshake showed, the keys of `tls_cert` (`resp.tls.days_left`, `verified`, `not_after`, `subject`, `dns_names`, `version`, `cipher`, …); `()` for http://",
            stub: KeyStub::Derived("`tls_cert`'s stub defaults for an https:// URL, else `()`", stub_tls),
        },
    
];

pub const HTTP_GET: HostFn = HostFn {
    name: "http_get",
    signatures: &[
        "http_get(url: string) -> map",
        "http_get(url: string, options: map) -> map",
    ],
    summary: "GET a URL: #{status, ok, body, headers, elapsed_ms, truncated, url}; transport failures throw",
    options: HTTP_OPTIONS,
    keys: RESPONSE,
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[Secret {
        arg: 0,
        mask: Mask::Url,
    }],
    stub: Stub::Answer {
        example: "{ status = 200 }",
        failing: "{ status = 503 }",
    },
    reach: crate::host::decl::Reach::Url(0),
    register,
};

pub const HTTP_REQUEST: HostFn = HostFn {
    name: "http_request",
    signatures: &["http_request(url: string, options: map) -> map"],
    summary: "any method (#{method: \"POST\", json: #{…}}): the same map as http_get; transport failures throw",
    options: &[
        Opt {
            key: "method",
            ty: OptType::String,
            default: "GET",
            doc: "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS (any case)",
        },
        Opt {
            key: "body",
            ty: OptType::String,
            default: "none",
            doc: "the request body, sent as it is (at most 1 MiB; set its content-type in `headers`); never shown",
        },
        Opt {
            key: "json",
            ty: OptType::Json,
            default: "none",
            doc: "a map or array sent as JSON, with `content-type: application/json` unless `headers` has one; never shown",
        },
        TIMEOUT,
        TIMEOUT_MS,
        HEADERS,
        INSECURE,
        CA_FILE,
        wire::CERT_FILE,
        wire::KEY_FILE,
        UNIX_SOCKET,
        MAX_BODY,
        FOLLOW_REDIRECTS,
    ],
    keys: RESPONSE,
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[Secret {
        arg: 0,
        mask: Mask::Url,
    }],
    stub: Stub::Answer {
        example: "{ status = 200 }",
        failing: "{ status = 503 }",
    },
    reach: crate::host::decl::Reach::Url(0),
    register: register_request,
};

pub const JSON: HostFn = HostFn {
    name: "json",
    signatures: &["json(response: map) -> any", "json(text: string) -> any"],
    summary: "parse a response body (resp.json()) or a string as JSON; a missing key fails the check",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_json,
};

fn stub_ok(stub: &Map, _: &[Dynamic]) -> Dynamic {
    let status = stub.get("status").and_then(|s| s.as_int().ok()).unwrap_or(200);
    ok_status(status).into()
}

fn stub_url(_: &Map, args: &[Dynamic]) -> Dynamic {
    args.first().cloned().unwrap_or(Dynamic::UNIT)
}

fn stub_tls(_: &Map, args: &[Dynamic]) -> Dynamic {
    let https = args
        .first()
        .and_then(|u| u.read_lock::<rhai::ImmutableString>().map(|u| u.to_ascii_lowercase()))
        .is_some_and(|u| u.starts_with("https://"));
    if https {
        crate::testing::complete(&super::certs::TLS_CERT, Map::new().into(), &[])
    } else {
        Dynamic::UNIT
    }
}

/// Bodies are read up to this many bytes unless `max_body` says otherwise.
pub const DEFAULT_MAX_BODY: i64 = 64 * 1024;
/// The largest `max_body` a script may ask for (the engine's string limit is above it).
pub const MAX_MAX_BODY: i64 = 1024 * 1024;
/// The largest request body `http_request` sends.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Redirect hops followed before giving up (kubelet and Go's client stop at 10).
const MAX_REDIRECTS: usize = 10;

/// The agent every `http_get` of a run shares. Small buffers: a probe reads a status line, a few
/// headers and a small body, and ureq's 128 KiB defaults cost start-up time for nothing. No idle
/// connections are kept: every check opens its own, as kubelet's prober does, so a peer whose
/// accept loop is stuck fails the check instead of hiding behind a kept-alive connection.
pub fn build_agent() -> Client {
    let session = transport::Shared::default();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("rhai-probe/", env!("CARGO_PKG_VERSION")))
        .input_buffer_size(16 * 1024)
        .max_response_header_size(16 * 1024)
        .output_buffer_size(4 * 1024)
        .max_idle_connections(0)
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        transport::Connect(session.clone()),
        LiteralsFirst {
            session: session.clone(),
            ureq: DefaultResolver::default(),
        },
    );
    Client {
        agent,
        session,
        default_tls: std::cell::OnceCell::new(),
    }
}

/// A run's HTTP client: the agent, and what its connector is asked and shows (see `transport`).
pub struct Client {
    agent: ureq::Agent,
    session: transport::Shared,
    default_tls: std::cell::OnceCell<transport::Tls>,
}

/// ureq's resolver, except that an IP address in the URL is used as it is, and `localhost` is the
/// loopback addresses (`tcp::without_lookup`). ureq's own resolver runs every lookup, literals
/// included, on a new thread (to bound it by the timeout); most probes name 127.0.0.1 or
/// localhost, and that thread was a tenth of their system time. Other names still go through
/// ureq's (bounded) lookup, as `tcp::resolve` does.
/// With `unix_socket`, no name is looked up at all: the socket is the address.
struct LiteralsFirst {
    session: transport::Shared,
    ureq: DefaultResolver,
}

impl std::fmt::Debug for LiteralsFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiteralsFirst")
    }
}

impl Resolver for LiteralsFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if transport::lock(&self.session).unix_socket.is_some() {
            let mut addrs = self.empty();
            addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], 80)));
            return Ok(addrs);
        }
        // `--allow-net`: the name before any lookup, the addresses after; a redirect's
        // target comes through here too.
        let (host, port) = match uri.authority() {
            Some(a) => {
                let port = a.port_u16().or(match uri.scheme_str() {
                    Some("https") => Some(443),
                    _ => Some(80),
                });
                (a.host().to_string(), port)
            }
            None => (String::new(), None),
        };
        let denied = |m: String| ureq::Error::Io(std::io::Error::other(m));
        crate::permissions::name(&host, port).map_err(denied)?;
        let known = uri.authority().and_then(|authority| {
            let host = authority.host();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let port = authority.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })?;
            let mut addrs = self.empty();
            for ip in super::tcp::without_lookup(host)? {
                addrs.push(std::net::SocketAddr::new(ip, port));
            }
            Some(addrs)
        });
        let addrs = match known {
            Some(addrs) => addrs,
            None => self.ureq.resolve(uri, config, timeout)?,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if crate::permissions::granted().is_none() {
            return Ok(addrs);
        }
        let kept = crate::permissions::addrs(bare, addrs.to_vec()).map_err(denied)?;
        let mut allowed = self.empty();
        for addr in kept {
            allowed.push(addr);
        }
        Ok(allowed)
    }
}

/// The methods `http_request` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    fn parse(text: &str) -> Result<Method, HostError> {
        Method::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                let all: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                HostError::Fault(format!(
                    "option 'method': {text:?} is not one of {}",
                    all.join(", ")
                ))
            })
    }

    /// The method after a redirect with `status`, as browsers and curl do: 303 makes anything
    /// but HEAD a GET, 301 and 302 make a POST a GET; 307 and 308 keep the method (and body).
    fn after_redirect(self, status: u16) -> Method {
        match (status, self) {
            (303, Method::Head) => Method::Head,
            (303, _) | (301 | 302, Method::Post) => Method::Get,
            _ => self,
        }
    }
}

struct Request {
    method: Method,
    /// The body and, for `json`, its content type.
    body: Option<(Vec<u8>, Option<&'static str>)>,
    timeout: Option<std::time::Duration>,
    headers: Vec<(String, String)>,
    /// `unix_socket`: where to connect instead of the URL's host.
    unix_socket: Option<std::path::PathBuf>,
    /// The TLS settings, built before connecting when TLS options are given (a bad CA file or a
    /// key that does not match its certificate is the script's fault even for an http:// URL
    /// that never gets to TLS); else the run's defaults, on the first https:// connection.
    tls: Option<transport::Tls>,
    max_body: u64,
    follow_redirects: bool,
}

impl Request {
    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

fn parse_options(options: &Options) -> Result<Request, HostError> {
    let max_body = options.int("max_body")?.unwrap_or(DEFAULT_MAX_BODY);
    if !(0..=MAX_MAX_BODY).contains(&max_body) {
        return Err(HostError::Fault(format!(
            "option 'max_body' must be between 0 and {MAX_MAX_BODY} bytes, got {max_body}"
        )));
    }
    let mut headers = Vec::new();
    for (name, value) in options.map("headers")?.unwrap_or_default() {
        let value = value
            .into_immutable_string()
            .map_err(|t| HostError::Fault(format!("header '{name}' must be a string, got {t}")))?;
        redact::remember_header(&name, &value);
        headers.push((name.to_string(), value.to_string()));
    }
    let tls_options = wire::TlsOptions::of(options)?;
    let tls = if tls_options.insecure || tls_options.ca_file.is_some() || tls_options.identity.is_some() {
        Some(tls_settings(&tls_options)?)
    } else {
        None
    };
    let unix_socket = options.string("unix_socket")?.map(std::path::PathBuf::from);
    if unix_socket.as_ref().is_some_and(|p| !p.is_absolute()) {
        return Err(HostError::Fault(format!(
            "option 'unix_socket': {:?} is not an absolute path",
            unix_socket.unwrap_or_default()
        )));
    }
    let method = match options.string("method")? {
        Some(m) => Method::parse(&m)?,
        None => Method::Get,
    };
    let body = match (options.string("body")?, options.value("json")) {
        (Some(_), Some(_)) => {
            return Err(HostError::Fault(
                "options 'body' and 'json' both given; send one".into(),
            ))
        }
        (Some(text), None) => Some((text.into_bytes(), None)),
        (None, Some(value)) => Some((
            serde_json::to_vec(&value)
                .map_err(|e| HostError::Fault(format!("option 'json' is not JSON: {e}")))?,
            Some("application/json"),
        )),
        (None, None) => None,
    };
    if let Some((bytes, _)) = &body {
        if bytes.len() > MAX_REQUEST_BODY {
            return Err(HostError::Fault(format!(
                "the request body is {} bytes; at most {MAX_REQUEST_BODY} are sent",
                bytes.len()
            )));
        }
    }
    Ok(Request {
        method,
        body,
        timeout: options.timeout()?,
        headers,
        unix_socket,
        tls,
        max_body: max_body as u64,
        follow_redirects: options.bool("follow_redirects")?.unwrap_or(true),
    })
}

impl Client {
    /// The run's default TLS settings for a request that gave none, built once per run.
    fn ready_for_tls(&self) -> Result<(), HostError> {
        let mut session = transport::lock(&self.session);
        if session.tls.is_none() {
            let settings = match self.default_tls.get() {
                Some(settings) => settings.clone(),
                None => {
                    let settings = tls_settings(&wire::TlsOptions::default())?;
                    let _ = self.default_tls.set(settings.clone());
                    settings
                }
            };
            session.tls = Some(settings);
        }
        Ok(())
    }
}

/// A client configuration that verifies as `Verify::ChainAndName` does (or, `insecure`, lets a
/// failure pass) and records what the server sent, whatever the verdict.
fn tls_settings(options: &wire::TlsOptions) -> Result<transport::Tls, HostError> {
    let identity = match &options.identity {
        Some((cert, key)) => Some(tls::identity(cert, key).map_err(HostError::Fault)?),
        None => None,
    };
    let (config, seen) = tls::recording_config(options.ca_file.as_deref(), identity.as_ref())
        .map_err(HostError::Fault)?;
    Ok(transport::Tls {
        config: std::sync::Arc::new(config),
        seen,
        insecure: options.insecure,
    })
}

/// `http_get(url)`, `http_get(url, options)` → map
///
/// Keys: `status` (int), `ok` (200 ≤ status < 400, kubelet's rule), `body` (string, at most
/// `max_body` bytes, invalid UTF-8 replaced), `headers` (map, lower-case names, repeated headers
/// joined with ", "), `elapsed_ms` (float), `truncated` (the body was longer than `max_body`),
/// `url` (the final URL after redirects).
/// Options: `timeout` ("2s", or seconds), `timeout_ms`, `headers` (map), `insecure` (skip TLS
/// verification), `ca_file` (a PEM file of CAs to trust instead of the bundled roots), `max_body` (bytes, default 65536, at most 1 MiB), `follow_redirects`
/// (default true, same host only, at most 10).
/// An HTTP status never throws. A transport failure (refused, DNS, TLS, timeout, too many
/// redirects) throws an error naming the URL and the cause; a malformed URL or option is a
/// script fault.
fn http_get(host: &Host, ctx: &NativeCallContext, url: &str, options: Options) -> RhaiResult<Dynamic> {
    http(host, ctx, &HTTP_GET, url, options)
}

/// The time, TLS settings and headers of one request, on a builder of either kind.
fn prepared<B>(builder: RequestBuilder<B>, request: &Request, left: std::time::Duration) -> RequestBuilder<B> {
    let mut builder = builder
        .config()
        .timeout_global(Some(left))
        .timeout_connect(Some(left))
        .build();
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
}

/// Send `method` to `uri` with `body`: ureq types a request by whether its method has a body.
fn send(
    agent: &ureq::Agent,
    method: Method,
    uri: &Uri,
    body: Option<&(Vec<u8>, Option<&'static str>)>,
    request: &Request,
    left: std::time::Duration,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let typed = |b: RequestBuilder<WithBody>| match body {
        Some((bytes, Some(kind))) if !request.has_header("content-type") => {
            prepared(b, request, left).content_type(*kind).send(&bytes[..])
        }
        Some((bytes, _)) => prepared(b, request, left).send(&bytes[..]),
        None => prepared(b, request, left).send_empty(),
    };
    let untyped = |b: RequestBuilder<WithoutBody>| match body {
        Some(_) => typed(b.force_send_body()),
        None => prepared(b, request, left).call(),
    };
    let uri = uri.clone();
    match method {
        Method::Get => untyped(agent.get(uri)),
        Method::Head => untyped(agent.head(uri)),
        Method::Delete => untyped(agent.delete(uri)),
        Method::Options => untyped(agent.options(uri)),
        Method::Post => typed(agent.post(uri)),
        Method::Put => typed(agent.put(uri)),
        Method::Patch => typed(agent.patch(uri)),
    }
}

/// `http_request(url, options)`: `http_get` with a method and a body.
fn http_request(host: &Host, ctx: &NativeCallContext, url: &str, options: Options) -> RhaiResult<Dynamic> {
    http(host, ctx, &HTTP_REQUEST, url, options)
}

/// One request and its redirects, for `http_get` and `http_request`.
fn http(host: &Host, ctx: &NativeCallContext, decl: &'static HostFn, url: &str, options: Options) -> RhaiResult<Dynamic> {
    let shown = redact::mask_url(url);
    let request = parse_options(&options).map_err(|e| e.into_fault(decl.name, ctx))?;
    let first = parse_url(url).map_err(|e| e.into_fault(decl.name, ctx))?;
    let what = match &request.unix_socket {
        Some(path) => format!("{} {shown} via {}", request.method.name(), path.display()),
        None => format!("{} {shown}", request.method.name()),
    };
    let map = host.call(ctx, decl, &[url], what, request.timeout, |budget| {
        let mut uri = first;
        let mut method = request.method;
        let mut body = request.body.as_ref();
        let started = Instant::now();
        let client = host.http_agent();
        {
            let mut session = transport::lock(&client.session);
            session.unix_socket = request.unix_socket.clone();
            session.tls = request.tls.clone();
        }
        let mut hops = 0;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            let https = uri.scheme_str() == Some("https");
            if https {
                client.ready_for_tls()?;
            }
            let sent = send(&client.agent, method, &uri, body, &request, left);
            let handshake = transport::lock(&client.session).handshake.take();
            let mut response = sent.map_err(|e| HostError::Transport(transport_reason(&e, budget, https)))?;
            let status = response.status().as_u16();
            if request.follow_redirects && matches!(status, 301 | 302 | 303 | 307 | 308) {
                if let Some(next) = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| resolve_location(&uri, l))
                {
                    if next.host() == uri.host() {
                        hops += 1;
                        if hops > MAX_REDIRECTS {
                            return Err(HostError::Transport(format!(
                                "stopped after {MAX_REDIRECTS} redirects (a redirect loop?)"
                            )));
                        }
                        uri = next;
                        let after = method.after_redirect(status);
                        if after != method {
                            (method, body) = (after, None);
                        }
                        continue;
                    }
                    log::warn!(
                        "{shown}: not following the redirect to another host ({}), as kubelet does not",
                        redact::mask_url(&next.to_string())
                    );
                }
            }
            let mut headers = Map::new();
            for (name, value) in response.headers() {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                let entry = headers.entry(name.as_str().into()).or_insert_with(|| Dynamic::from(String::new()));
                let joined = match entry.clone().into_immutable_string() {
                    Ok(prev) if !prev.is_empty() => format!("{prev}, {value}"),
                    _ => value,
                };
                *entry = joined.into();
            }
            let mut body = Vec::new();
            response
                .body_mut()
                .as_reader()
                .take(request.max_body + 1)
                .read_to_end(&mut body)
                .map_err(|e| HostError::Transport(format!("reading the body after status {status}: {}", io_reason(&e))))?;
            let truncated = body.len() as u64 > request.max_body;
            body.truncate(request.max_body as usize);
            let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            let ok = ok_status(status.into());
            let mut map = Map::new();
            map.insert("status".into(), (status as i64).into());
            map.insert("ok".into(), ok.into());
            map.insert("body".into(), String::from_utf8_lossy(&body).into_owned().into());
            map.insert("headers".into(), headers.into());
            map.insert("elapsed_ms".into(), elapsed_ms.into());
            map.insert("truncated".into(), truncated.into());
            map.insert("url".into(), uri.to_string().into());
            let tls = handshake.and_then(|h| super::certs::describe(&h.seen, h.version, h.cipher).ok());
            map.insert(
                "tls".into(),
                tls.map_or(Dynamic::UNIT, |(facts, _)| result_map(&super::certs::TLS_CERT, facts)),
            );
            let summary = if hops > 0 && method != request.method {
                format!("{status} after {hops} redirect{} (as {})", if hops == 1 { "" } else { "s" }, method.name())
            } else if hops > 0 {
                format!("{status} after {hops} redirect{}", if hops == 1 { "" } else { "s" })
            } else {
                status.to_string()
            };
            let outcome = if ok { Outcome::Pass(summary) } else { Outcome::Fail(summary) };
            return Ok((map, outcome));
        }
    })?;
    Ok(result_map(decl, map))
}

fn parse_url(url: &str) -> Result<Uri, HostError> {
    let shown = redact::mask_url(url);
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        let hint = if url.contains("://") {
            "only http:// and https:// are supported".to_string()
        } else {
            format!("write http://{shown}")
        };
        return Err(HostError::Fault(format!(
            "URL '{shown}' has no http:// or https:// scheme; {hint}"
        )));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| HostError::Fault(format!("URL '{shown}' is not valid: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(HostError::Fault(format!("URL '{shown}' has no host")));
    }
    // `Uri::port()` silently drops a port that is not a u16, so read it from the authority.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    if let Some((_, port)) = host_port.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(HostError::Fault(format!(
                "URL '{shown}': port {port} is out of range 1-65535"
            )));
        }
    }
    Ok(uri)
}

/// Resolve a `Location` header against the URL that returned it.
fn resolve_location(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority()?.as_str();
    let absolute = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    };
    absolute.parse().ok()
}

/// A transport failure as a person would say it.
fn transport_reason(e: &ureq::Error, budget: std::time::Duration, tls: bool) -> String {
    use std::io::ErrorKind::{ConnectionReset, InvalidData, UnexpectedEof};
    match e {
        // rustls reports through io::Error: name TLS, and the usual cause.
        ureq::Error::Io(io) if tls && io.kind() == InvalidData => {
            let inner = io
                .get_ref()
                .map_or_else(|| io.to_string(), |i| i.to_string());
            if inner.contains("InvalidContentType") || inner.contains("corrupt message") {
                format!("TLS handshake failed ({inner}): is the port serving plain HTTP?")
            } else if inner.contains("UnknownIssuer") {
                format!(
                    "TLS: {inner} (self-signed or private CA; insecure: true skips verification)"
                )
            } else {
                format!("TLS: {inner}{}", tls::alert_hint(&inner))
            }
        }
        ureq::Error::Io(io) if tls && matches!(io.kind(), UnexpectedEof | ConnectionReset) => {
            "connection closed during the TLS handshake: is the port serving plain HTTP?".into()
        }
        ureq::Error::Io(io) => io_reason(io),
        ureq::Error::Timeout(_) => format!("timed out after {}", crate::deadline::human(budget)),
        ureq::Error::HostNotFound => "host not found (DNS)".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Tls(m) => format!("TLS: {m}"),
        ureq::Error::Rustls(r) => format!("TLS: {r}{}", tls::alert_hint(&r.to_string())),
        // A TLS server answers plain HTTP with a TLS alert, whose bytes fail the status line.
        ureq::Error::Protocol(p) if !tls => {
            format!("not a valid HTTP response: {p} (does the port speak TLS? then use https://)")
        }
        ureq::Error::Protocol(p) => format!("not a valid HTTP response: {p}"),
        ureq::Error::LargeResponseHeader(..) => "response header larger than 16 KiB".into(),
        other => other.to_string(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return inner.to_string();
    }
    super::io_reason(e)
}

/// `json(resp)` / `resp.json()` → the body parsed as JSON; `json(text)` parses a string.
/// Objects become maps, arrays arrays, `null` becomes `()`. Throws (check error) when the text is
/// not JSON: a health endpoint answering HTML is a failed check, not a broken script. A key the
/// JSON lacks is the peer's problem too (see `values`).
fn json_of_response(host: &Host, ctx: &NativeCallContext, response: Map) -> RhaiResult<Dynamic> {
    let Some(body) = response.get("body") else {
        return Err(super::fault(
            "json(map): the map has no 'body'; call it on an http_get response: resp.json()"
                .into(),
            ctx.call_position(),
        ));
    };
    let body = body.clone().into_immutable_string().map_err(|t| {
        super::fault(
            format!("json(map): 'body' must be a string, got {t}"),
            ctx.call_position(),
        )
    })?;
    let origin = match response.get("url").and_then(|u| u.read_lock::<rhai::ImmutableString>().map(|u| u.to_string())) {
        Some(url) => format!("GET {}", redact::mask_url(&url)),
        None => "the response".to_string(),
    };
    values::parse_json(host, origin, &body)
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("http_get", move |ctx: NativeCallContext, url: &str| {
        http_get(&h, &ctx, url, Options::none())
    });
    let h = host.clone();
    engine.register_fn(
        "http_get",
        move |ctx: NativeCallContext, url: &str, options: Map| {
            let options =
                Options::new(&options, &HTTP_GET).map_err(|e| e.into_fault("http_get", &ctx))?;
            http_get(&h, &ctx, url, options)
        },
    );
}

fn register_request(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "http_request",
        move |ctx: NativeCallContext, url: &str, options: Map| {
            let options = Options::new(&options, &HTTP_REQUEST)
                .map_err(|e| e.into_fault("http_request", &ctx))?;
            http_request(&h, &ctx, url, options)
        },
    );
}

/// `json()`: pure, so `rhai-probe test` keeps the real one.
fn register_json(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("json", move |ctx: NativeCallContext, response: Map| {
        json_of_response(&h, &ctx, response)
    });
    let h = host.clone();
    engine.register_fn("json", move |text: &str| {
        values::parse_json(&h, "json(text)".into(), text)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_is_200_to_399() {
        for (status, ok) in [(199, false), (200, true), (399, true), (400, false), (404, false)] {
            assert_eq!(ok_status(status), ok, "{status}");
        }
    }

    fn u(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base = u("http://127.0.0.1:8080/a/b?x=1");
        assert_eq!(
            resolve_location(&base, "/c").unwrap(),
            u("http://127.0.0.1:8080/c")
        );
        assert_eq!(
            resolve_location(&base, "c").unwrap(),
            u("http://127.0.0.1:8080/a/c")
        );
        assert_eq!(
            resolve_location(&base, "//other:1/d").unwrap(),
            u("http://other:1/d")
        );
        assert_eq!(
            resolve_location(&base, "https://x/y").unwrap(),
            u("https://x/y")
        );
    }

    #[test]
    fn bad_urls_are_faults_with_a_hint() {
        let err = |s: &str| match parse_url(s) {
            Err(HostError::Fault(m)) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert!(err("localhost:8080/health").contains("write http://localhost:8080/health"));
        assert!(err("ftp://x/").contains("only http:// and https://"));
        assert!(err("http://127.0.0.1:0/").contains("port 0 is out of range"));
        assert!(err("http://127.0.0.1:70000/").contains("port 70000 is out of range"));
        assert!(err("http:///x").contains("not valid") || err("http:///x").contains("no host"));
    }
}
