//! `grpc_health(target)`: gRPC's health-checking protocol (`grpc.health.v1.Health/Check`), what
//! grpc-health-probe and kubelet's `grpc` probe ask, with TLS, mTLS, metadata and `:authority`;
//! `grpc_health_list(target)`: its `List` method.
//!
//! One unary call on a fresh connection needs little of HTTP/2 and protobuf: the client side of
//! both is written here ([`h2`], [`hpack`], two messages of one or two fields), over the TCP,
//! unix-socket and TLS code the other protocols use, with ALPN `h2` (gRPC servers refuse TLS
//! without it). A gRPC stack (h2 or tonic, over tokio) would cost the static binary more than
//! its size budget has left (h2 alone, measured: +0.55 MB); this costs 50 KB and nothing at start-up.

mod h2;
mod hpack;

use std::{path::PathBuf, rc::Rc, time::Instant};

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::{
    decl::{Fails, HostFn, Opt, OptType, Reach, Stub, Time, TIMEOUT, TIMEOUT_MS},
    options::Options,
    wire::{self, Conn, Scheme, TlsOptions, Url},
    Host, HostError, RhaiResult,
};
use crate::{redact, trace::Outcome};

pub const FUNCTIONS: &[HostFn] = &[GRPC_HEALTH, GRPC_HEALTH_LIST];

const TLS: Opt = Opt {
    key: "tls",
    ty: OptType::Bool,
    default: "false (true for grpcs://)",
    doc: "speak TLS, verifying the server's certificate against the bundled roots (or `ca_file`), offering ALPN `h2`",
};

const HEADERS: Opt = Opt {
    key: "headers",
    ty: OptType::Map,
    default: "none",
    doc: "request metadata, e.g. `#{ authorization: \"Bearer \" + token }`; names lower-cased; values of credential-like names are masked",
};

const AUTHORITY: Opt = Opt {
    key: "authority",
    ty: OptType::String,
    default: "the target's host:port (`localhost` for unix:)",
    doc: "the `:authority` pseudo-header, for servers and meshes that route on it (Kestrel, Istio)",
};

const USER_AGENT: Opt = Opt {
    key: "user_agent",
    ty: OptType::String,
    default: "rhai-probe/VERSION",
    doc: "the `user-agent` header",
};

const SERVICE: Opt = Opt {
    key: "service",
    ty: OptType::String,
    default: "\"\" (the whole server), or the path of a grpc:// target",
    doc: "the service whose health to ask, e.g. `\"orders.v1.Orders\"`",
};

/// The options both functions take, `service` aside.
macro_rules! options {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            TIMEOUT,
            TIMEOUT_MS,
            TLS,
            wire::INSECURE,
            wire::CA_FILE,
            wire::SERVER_NAME,
            wire::CERT_FILE,
            wire::KEY_FILE,
            HEADERS,
            AUTHORITY,
            USER_AGENT,
        ]
    };
}

pub const GRPC_HEALTH: HostFn = HostFn {
    name: "grpc_health",
    signatures: &[
        "grpc_health(target: string) -> bool",
        "grpc_health(target: string, options: map) -> bool",
    ],
    summary: "true when gRPC's health service answers SERVING; false naming NOT_SERVING, UNKNOWN, NOT_FOUND or UNIMPLEMENTED; transport failures throw",
    options: options!(SERVICE),
    keys: &[],
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[],
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    reach: Reach::Target(0),
    register,
};

pub const GRPC_HEALTH_LIST: HostFn = HostFn {
    name: "grpc_health_list",
    signatures: &[
        "grpc_health_list(target: string) -> map",
        "grpc_health_list(target: string, options: map) -> map",
    ],
    summary: "every service's health status by name (`#{\"\": \"SERVING\", …}`), from the health service's List method; throws when the server lacks it",
    options: options!(),
    keys: &[],
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[],
    stub: Stub::Answer {
        example: "{ \"\" = \"SERVING\" }",
        failing: "{ \"\" = \"NOT_SERVING\" }",
    },
    reach: Reach::Target(0),
    register: register_list,
};

const SCHEMES: &[Scheme] = &[
    Scheme {
        prefix: "grpc://",
        tls: false,
        port: 80,
    },
    Scheme {
        prefix: "grpcs://",
        tls: true,
        port: 443,
    },
];

const USAGE: &str = "HOST:PORT, [IPv6]:PORT, unix:/PATH, or grpc://HOST[:PORT][/SERVICE] (grpcs:// for TLS)";

/// Where a target points.
#[derive(Debug, PartialEq)]
pub enum Endpoint {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// What a target says.
#[derive(Debug, PartialEq)]
struct Target {
    endpoint: Endpoint,
    /// `grpcs://`.
    tls: bool,
    /// The path of a `grpc://` target.
    service: Option<String>,
}

impl Target {
    fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let unix = text
            .strip_prefix("unix://")
            .filter(|p| p.starts_with('/'))
            .or_else(|| text.strip_prefix("unix:"));
        if let Some(path) = unix {
            if path.is_empty() {
                return Err(format!("no socket path; expected {USAGE}"));
            }
            return Ok(Target {
                endpoint: Endpoint::Unix(path.into()),
                tls: false,
                service: None,
            });
        }
        if text.contains("://") && !text.starts_with("dns:///") {
            let url = Url::parse(text, SCHEMES, USAGE)?;
            if url.user.is_some() {
                return Err(
                    "a gRPC target has no user or password; send credentials in `headers`".into(),
                );
            }
            let service = Some(redact::percent_decode(&url.path)).filter(|s| !s.is_empty());
            return Ok(Target {
                endpoint: Endpoint::Tcp(url.host, url.port),
                tls: url.tls,
                service,
            });
        }
        // gRPC's own name syntax for DNS, `dns:///host:port`, means the same here.
        let authority = text.strip_prefix("dns:///").unwrap_or(text);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p),
            _ => return Err(format!("'{authority}' has no port; expected {USAGE}")),
        };
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| format!("a '[' without ']'; expected {USAGE}"))?,
            None if host.contains(':') => {
                return Err(format!(
                    "an IPv6 address needs brackets: [{host}]:{port}"
                ))
            }
            // `:50051`, as grpc-health-probe's `-addr=:50051`: this machine.
            None if host.is_empty() => "localhost",
            None => host,
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port '{port}' is not a number in 1-65535"))?;
        Ok(Target {
            endpoint: Endpoint::Tcp(host.to_string(), port),
            tls: false,
            service: None,
        })
    }

    /// `127.0.0.1:50051`, `[::1]:50051`, `unix:/run/app.sock`: as the trace shows it.
    fn shown(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(host, port) if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp(host, port) => format!("{host}:{port}"),
            Endpoint::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

/// What a target reaches, for `--allow-net` where no connection is made (`check
/// --permissions`, stubs): `None` for one that does not parse.
pub fn endpoint(target: &str) -> Option<Endpoint> {
    Target::parse(target).ok().map(|t| t.endpoint)
}

/// The options of one call, checked before connecting.
struct Call {
    target: Target,
    service: String,
    tls: Option<wire::TlsConfig>,
    authority: String,
    user_agent: String,
    headers: Vec<(String, String)>,
    timeout: Option<std::time::Duration>,
}

fn fault(message: impl Into<String>) -> HostError {
    HostError::Fault(message.into())
}

impl Call {
    fn of(text: &str, options: &Options, lists: bool) -> Result<Call, HostError> {
        let target = Target::parse(text).map_err(|m| fault(format!("{text}: {m}")))?;
        let timeout = options.timeout()?;
        let service = match (options.string("service")?, target.service.clone()) {
            (Some(_), Some(_)) => {
                return Err(fault(
                    "the service is named twice: by the grpc:// target's path and by `service`",
                ))
            }
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => String::new(),
        };
        if lists && !service.is_empty() {
            return Err(fault(format!(
                "grpc_health_list lists every service; for one ({service:?}) use grpc_health"
            )));
        }
        let tls_options = TlsOptions::of(options)?;
        let tls = match (options.bool("tls")?, target.tls) {
            (Some(false), true) => {
                return Err(fault("tls: false contradicts the grpcs:// target"));
            }
            (Some(tls), _) => tls,
            (None, tls) => tls,
        };
        if !tls {
            let given = [
                ("insecure", tls_options.insecure),
                ("ca_file", tls_options.ca_file.is_some()),
                ("server_name", tls_options.server_name.is_some()),
                ("cert_file", tls_options.identity.is_some()),
            ];
            if let Some((key, _)) = given.iter().find(|(_, given)| *given) {
                return Err(fault(format!(
                    "option '{key}' is for TLS: add tls: true (or use a grpcs:// target)"
                )));
            }
        }
        if tls_options.insecure && tls_options.ca_file.is_some() {
            return Err(fault(
                "insecure: true verifies nothing, so ca_file would not be used: give one or the other",
            ));
        }
        let (host, port) = match &target.endpoint {
            Endpoint::Tcp(host, port) => (host.as_str(), Some(*port)),
            Endpoint::Unix(_) => ("localhost", None),
        };
        let tls = match tls {
            true => Some(tls_options.config_with_alpn(host, Some(b"h2"))?),
            false => None,
        };
        let authority = match options.string("authority")? {
            Some(a) if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(fault(format!("authority {a:?} is not a host[:port]")))
            }
            Some(a) => a,
            None => match port {
                Some(port) if host.contains(':') => format!("[{host}]:{port}"),
                Some(port) => format!("{host}:{port}"),
                None => "localhost".into(),
            },
        };
        let user_agent = options
            .string("user_agent")?
            .unwrap_or_else(|| concat!("rhai-probe/", env!("CARGO_PKG_VERSION")).into());
        if service.len() > 4096 {
            return Err(fault("the service name is longer than 4096 bytes"));
        }
        Ok(Call {
            target,
            service,
            tls,
            authority,
            user_agent,
            headers: metadata(options)?,
            timeout,
        })
    }

    /// Connect, start TLS (insisting on HTTP/2), call `method` with `message`, and read the
    /// answer, all within `budget`.
    fn run(
        self,
        method: &str,
        message: &[u8],
        budget: std::time::Duration,
    ) -> Result<h2::Response, String> {
        let until = Instant::now() + budget;
        let mut conn = match &self.target.endpoint {
            Endpoint::Tcp(host, port) => wire::connect(host, *port, budget)?,
            Endpoint::Unix(path) => wire::connect_path(path, budget)?,
        };
        let scheme = match self.tls {
            Some(config) => {
                start_tls(&mut conn, config)?;
                "https"
            }
            None => "http",
        };
        let left = until.saturating_duration_since(Instant::now());
        let timeout = grpc_timeout(left);
        let path = format!("/grpc.health.v1.Health/{method}");
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":scheme", scheme),
            (":path", &path),
            (":authority", &self.authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("user-agent", &self.user_agent),
            ("grpc-timeout", &timeout),
        ];
        headers.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        // The length-prefixed message: not compressed, four bytes of length, the message.
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        h2::exchange(&mut conn, &headers, &body)
    }
}

/// TLS with ALPN `h2`; a server that does not agree to HTTP/2 is not one gRPC can use.
fn start_tls(conn: &mut Conn, config: wire::TlsConfig) -> Result<(), String> {
    conn.start_tls_with(
        config,
        "is the port serving plain gRPC? (drop tls: true, or use grpc://)",
    )?;
    match conn.alpn() {
        Some(b"h2") => Ok(()),
        Some(other) => Err(format!(
            "the TLS server chose {} over HTTP/2 (ALPN h2): not a gRPC port, or a proxy without HTTP/2",
            String::from_utf8_lossy(other)
        )),
        None => Err(
            "the TLS server did not agree to HTTP/2 (no ALPN h2 in its answer): gRPC needs it; \
             is this a gRPC port, or a proxy that ends TLS without HTTP/2?"
                .into(),
        ),
    }
}

/// `grpc-timeout`: what is left of the budget, which the server may use to give up in time.
fn grpc_timeout(left: std::time::Duration) -> String {
    let ms = left.as_millis().max(1);
    if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}S", left.as_secs().min(99_999_999))
    }
}

/// The `headers` option: names lower-cased and checked, credentials remembered for masking.
fn metadata(options: &Options) -> Result<Vec<(String, String)>, HostError> {
    let mut headers = Vec::new();
    for (name, value) in options.map("headers")?.unwrap_or_default() {
        let value = value
            .into_immutable_string()
            .map_err(|t| fault(format!("header '{name}' must be a string, got {t}")))?;
        redact::remember_header(&name, &value);
        let name = name.to_ascii_lowercase();
        let reserved = matches!(
            name.as_str(),
            "te" | "content-type" | "connection" | "keep-alive" | "proxy-connection"
                | "transfer-encoding" | "upgrade"
        ) || name.starts_with("grpc-");
        if reserved {
            return Err(fault(format!(
                "header '{name}' is set by the gRPC protocol itself"
            )));
        }
        match name.as_str() {
            "host" | ":authority" => {
                return Err(fault(format!("header '{name}': set `authority` instead")))
            }
            "user-agent" => {
                return Err(fault("header 'user-agent': set `user_agent` instead"))
            }
            _ => {}
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(fault(format!(
                "header name {name:?} is not gRPC metadata (letters, digits, '-', '_', '.')"
            )));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(fault(format!(
                "header '{name}' has a control character in its value"
            )));
        }
        headers.push((name, value.to_string()));
    }
    Ok(headers)
}

/// The serving statuses of `grpc.health.v1.HealthCheckResponse`.
fn serving_status(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => format!("status {n}"),
    }
}

/// gRPC status codes by number.
fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("(unknown code)")
}

/// How a call ended, once the server answered.
enum Answer {
    /// `grpc-status: 0` and the message.
    Ok(Vec<u8>),
    /// Another status: its code and message.
    Status(u32, String),
}

/// Read a gRPC answer off an HTTP/2 response, or say why it is not one.
fn answer(response: h2::Response) -> Result<Answer, String> {
    let status = response.get("grpc-status");
    let http = response.get(":status").unwrap_or("");
    let content_type = response.get("content-type").unwrap_or("none");
    let Some(status) = status else {
        return Err(if http != "200" {
            format!(
                "the server answered HTTP {http} (content-type {content_type}) without a gRPC status: not a gRPC server, or a proxy in front of one refused the call"
            )
        } else if !content_type.starts_with("application/grpc") {
            format!(
                "not a gRPC server: it answered content-type {content_type}, not application/grpc"
            )
        } else {
            "the server ended the call without a grpc-status".into()
        });
    };
    let code: u32 = status
        .parse()
        .map_err(|_| format!("the server sent grpc-status {status:?}, not a number"))?;
    if code != 0 {
        let message = redact::percent_decode(response.get("grpc-message").unwrap_or(""));
        return Ok(Answer::Status(code, message));
    }
    let body = &response.body;
    let Some(head) = body.get(..5) else {
        return Err("the server answered OK without a message".into());
    };
    if head[0] != 0 {
        return Err(format!(
            "the server compressed its answer ({}), though none was offered",
            response.get("grpc-encoding").unwrap_or("no grpc-encoding")
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let message = body
        .get(5..5 + len)
        .ok_or("the server's message is shorter than its length says")?;
    Ok(Answer::Ok(message.to_vec()))
}

/// The protobuf fields of a message: number and value (a varint, or the bytes of a
/// length-delimited field; fixed-width fields are skipped).
fn fields(mut message: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    const BAD: &str = "the server's answer is not a valid protobuf message";
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !message.is_empty() {
        let key = varint(&mut message).ok_or(BAD)?;
        let value = match key & 7 {
            0 => Field::Int(varint(&mut message).ok_or(BAD)?),
            2 => {
                let len = varint(&mut message).ok_or(BAD)? as usize;
                let bytes = message.get(..len).ok_or(BAD)?;
                message = &message[len..];
                Field::Bytes(bytes)
            }
            1 => {
                message = message.get(8..).ok_or(BAD)?;
                continue;
            }
            5 => {
                message = message.get(4..).ok_or(BAD)?;
                continue;
            }
            _ => return Err(BAD.into()),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// `HealthCheckResponse.status` (field 1; absent means 0, UNKNOWN).
fn status_of(message: &[u8]) -> Result<String, String> {
    let mut status = 0;
    for (number, field) in fields(message)? {
        if let (1, Field::Int(n)) = (number, field) {
            status = n;
        }
    }
    Ok(serving_status(status))
}

/// `HealthCheckRequest { service = 1 }`.
fn check_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a);
        let mut len = service.len();
        while len >= 0x80 {
            out.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

fn grpc_health(
    host: &Host,
    ctx: &NativeCallContext,
    text: &str,
    options: Options,
) -> RhaiResult<bool> {
    let call = Call::of(text, &options, false).map_err(|e| e.into_fault("grpc_health", ctx))?;
    let what = format!("gRPC {} service {:?}", call.target.shown(), call.service);
    let service = call.service.clone();
    host.call(ctx, &GRPC_HEALTH, &[], what, call.timeout, |budget| {
        let response = call
            .run("Check", &check_request(&service), budget)
            .map_err(HostError::Transport)?;
        let (healthy, reason) = match answer(response).map_err(HostError::Transport)? {
            Answer::Ok(message) => {
                let status = status_of(&message).map_err(HostError::Transport)?;
                let healthy = status == "SERVING";
                let reason = match status.as_str() {
                    "UNKNOWN" => "UNKNOWN (the server has not set this service's status)".into(),
                    _ => status,
                };
                (healthy, reason)
            }
            Answer::Status(code, message) => (false, refusal(code, &message, &service)),
        };
        Ok((
            healthy,
            match healthy {
                true => Outcome::Pass(reason),
                false => Outcome::Fail(reason),
            },
        ))
    })
}

/// The reason for a non-OK gRPC status, naming it first.
fn refusal(code: u32, message: &str, service: &str) -> String {
    let said = match message {
        "" => String::new(),
        m => format!(" ({m:?})"),
    };
    match code {
        5 => format!("NOT_FOUND: the server has no health status for service {service:?}{said}"),
        12 => format!(
            "UNIMPLEMENTED: the server does not implement the health service grpc.health.v1.Health{said}"
        ),
        _ => format!("{} (gRPC status {code}){said}", code_name(code)),
    }
}

fn grpc_health_list(
    host: &Host,
    ctx: &NativeCallContext,
    text: &str,
    options: Options,
) -> RhaiResult<Dynamic> {
    let call =
        Call::of(text, &options, true).map_err(|e| e.into_fault("grpc_health_list", ctx))?;
    let what = format!("gRPC {} List", call.target.shown());
    host.call(ctx, &GRPC_HEALTH_LIST, &[], what, call.timeout, |budget| {
        let response = call.run("List", &[], budget).map_err(HostError::Transport)?;
        let message = match answer(response).map_err(HostError::Transport)? {
            Answer::Ok(message) => message,
            Answer::Status(12, _) => {
                return Err(HostError::Transport(
                    "the server does not implement grpc.health.v1.Health/List (UNIMPLEMENTED): \
                     List is a recent addition to the health protocol; ask for each service \
                     with grpc_health(target, #{ service: … })"
                        .into(),
                ))
            }
            Answer::Status(code, message) => {
                return Err(HostError::Transport(refusal(code, &message, "")))
            }
        };
        // HealthListResponse { map<string, HealthCheckResponse> statuses = 1 }: each entry a
        // message of key = 1, value = 2.
        let mut map = Map::new();
        for (number, field) in fields(&message).map_err(HostError::Transport)? {
            let (1, Field::Bytes(entry)) = (number, field) else {
                continue;
            };
            let (mut name, mut status) = (String::new(), serving_status(0));
            for (number, field) in fields(entry).map_err(HostError::Transport)? {
                match (number, field) {
                    (1, Field::Bytes(key)) => name = String::from_utf8_lossy(key).into_owned(),
                    (2, Field::Bytes(value)) => {
                        status = status_of(value).map_err(HostError::Transport)?
                    }
                    _ => {}
                }
            }
            map.insert(name.into(), status.into());
        }
        let mut names: Vec<String> = map
            .iter()
            .map(|(name, status)| format!("{name:?} {status}"))
            .collect();
        names.sort();
        let summary = match names.len() {
            0 => "no services".into(),
            _ => names.join(", "),
        };
        Ok((Dynamic::from_map(map), Outcome::Pass(summary)))
    })
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &GRPC_HEALTH, grpc_health);
}

fn register_list(engine: &mut Engine, host: &Rc<Host>) {
    wire::register(engine, host, &GRPC_HEALTH_LIST, grpc_health_list);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let parse = |t: &str| Target::parse(t);
        assert_eq!(
            parse("127.0.0.1:50051").unwrap().endpoint,
            Endpoint::Tcp("127.0.0.1".into(), 50051)
        );
        assert_eq!(
            parse("[::1]:50051").unwrap().endpoint,
            Endpoint::Tcp("::1".into(), 50051)
        );
        assert_eq!(
            parse(":50051").unwrap().endpoint,
            Endpoint::Tcp("localhost".into(), 50051)
        );
        assert_eq!(
            parse("dns:///api:443").unwrap().endpoint,
            Endpoint::Tcp("api".into(), 443)
        );
        for unix in ["unix:/run/app.sock", "unix:///run/app.sock"] {
            assert_eq!(
                parse(unix).unwrap().endpoint,
                Endpoint::Unix("/run/app.sock".into())
            );
        }
        assert_eq!(
            parse("unix:app.sock").unwrap().endpoint,
            Endpoint::Unix("app.sock".into())
        );
        let t = parse("grpcs://api.example.com/orders.v1.Orders").unwrap();
        assert_eq!(
            (t.endpoint, t.tls, t.service.as_deref()),
            (
                Endpoint::Tcp("api.example.com".into(), 443),
                true,
                Some("orders.v1.Orders")
            )
        );
        let t = parse("grpc://[::1]:9000").unwrap();
        assert_eq!(
            (t.shown(), t.tls, t.service),
            ("[::1]:9000".into(), false, None)
        );
        assert!(parse("db").unwrap_err().contains("no port"));
        assert!(parse("::1:50051").unwrap_err().contains("brackets"));
        assert!(parse("h:0").unwrap_err().contains("1-65535"));
        assert!(parse("unix:").unwrap_err().contains("no socket path"));
        assert!(parse("grpc://u:p@h:1").unwrap_err().contains("headers"));
        assert!(parse("http://h:1").unwrap_err().contains("expected"));
    }

    #[test]
    fn messages() {
        assert_eq!(check_request(""), b"");
        assert_eq!(check_request("a.B"), b"\x0a\x03a.B");
        let long = "s".repeat(200);
        assert_eq!(&check_request(&long)[..3], [0x0a, 0xc8, 0x01]);
        assert_eq!(status_of(b"\x08\x01").unwrap(), "SERVING");
        assert_eq!(status_of(b"\x08\x02").unwrap(), "NOT_SERVING");
        assert_eq!(status_of(b"").unwrap(), "UNKNOWN");
        // Unknown fields of every wire type are skipped.
        assert_eq!(
            status_of(b"\x10\x05\x1a\x02hi\x21\x01\x02\x03\x04\x05\x06\x07\x08\x2d\x01\x02\x03\x04\x08\x01").unwrap(),
            "SERVING"
        );
        assert!(status_of(b"\x08").is_err());
        assert!(status_of(b"\x0a\x05ab").is_err());
        assert_eq!(grpc_timeout(std::time::Duration::from_millis(850)), "850m");
        assert_eq!(grpc_timeout(std::time::Duration::ZERO), "1m");
        assert_eq!(
            grpc_timeout(std::time::Duration::from_secs(200_000)),
            "200000S"
        );
    }
}
