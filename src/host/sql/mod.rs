//! `sql_ping` and `sql_scalar`: log in to PostgreSQL or MySQL/MariaDB and run a query, under
//! the probe's deadline. "The database is fine" means the server accepted the credentials and
//! answered — not merely that its port is open (`pg_isready`) or that it said something
//! (`mysqladmin ping` succeeds on "Access denied").

pub mod dsn;
mod gather;
mod my;
mod pg;

use std::{rc::Rc, time::Duration};

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::{
    decl::{Fails, HostFn, Mask, Opt, OptType, Secret, Stub, Time, TIMEOUT, TIMEOUT_MS},
    options::Options,
    Host, HostError, RhaiResult,
};
use crate::trace::Outcome;
use dsn::{Dsn, Kind, SslMode};

pub const FUNCTIONS: &[HostFn] = &[SQL_PING, SQL_SCALAR];

const DSN: &[Secret] = &[Secret {
    arg: 0,
    mask: Mask::Dsn,
}];

pub const SQL_PING: HostFn = HostFn {
    name: "sql_ping",
    signatures: &[
        "sql_ping(dsn: string) -> bool",
        "sql_ping(dsn: string, options: map) -> bool",
    ],
    summary: "true when the database accepts the login and answers SELECT 1; false with the reason otherwise",
    options: &[
        TIMEOUT,
        TIMEOUT_MS,
        Opt {
            key: "query",
            ty: OptType::String,
            default: "`SELECT 1`",
            doc: "the statement to run; success is the server running it",
        },
    ],
    keys: &[],
    fails: Fails::False,
    time: Time::Network,
    secrets: DSN,
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    reach: crate::host::decl::Reach::Dsn(0),
    register: register_ping,
};

pub const SQL_SCALAR: HostFn = HostFn {
    name: "sql_scalar",
    signatures: &[
        "sql_scalar(dsn: string, query: string) -> any",
        "sql_scalar(dsn: string, query: string, options: map) -> any",
    ],
    summary: "the first column of the first row (int, float, bool, string, () for NULL); throws on failure",
    options: &[TIMEOUT, TIMEOUT_MS],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Network,
    secrets: DSN,
    stub: Stub::Answer {
        example: "0",
        failing: "600",
    },
    reach: crate::host::decl::Reach::Dsn(0),
    register: register_scalar,
};

pub enum Request<'a> {
    /// Any statement; success is the server running it.
    Ping(&'a str),
    /// The first column of the first row.
    Scalar(&'a str),
}

pub enum SqlError {
    /// The database or the network said no: false from `sql_ping`, a throw from `sql_scalar`.
    Failed(String),
    /// The script asked for something impossible (an unreadable CA file, a type that cannot
    /// be converted).
    Fault(String),
}

/// A TLS failure in a line, with what to change in the DSN.
fn tls_reason(e: &rustls::Error, dsn: &Dsn) -> String {
    let param = dsn.kind.ssl_param();
    let ca = match dsn.kind {
        Kind::Postgres => "sslrootcert",
        Kind::MySql => "ssl-ca",
    };
    match e {
        rustls::Error::InvalidCertificate(cert) => {
            let hint = match cert {
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    format!("connect by the name in the certificate, or use {param}={}", SslMode::VerifyCa.name(dsn.kind))
                }
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                    "the server's certificate must be renewed".to_string()
                }
                _ => format!(
                    "give the server's CA with {ca}=/path/ca.pem, or use {param}={} to encrypt without verifying",
                    SslMode::Require.name(dsn.kind)
                ),
            };
            format!("TLS certificate rejected ({cert:?}): {hint}")
        }
        other => format!(
            "TLS failed: {other}{}",
            super::tls::alert_hint_with(&other.to_string(), cert_param(dsn.kind), key_param(dsn.kind))
        ),
    }
}

fn cert_param(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "sslcert",
        Kind::MySql => "ssl-cert",
    }
}

fn key_param(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "sslkey",
        Kind::MySql => "ssl-key",
    }
}

/// The DSN, read and shown masked; a malformed one is the script's fault.
fn read_dsn(function: &str, ctx: &NativeCallContext, text: &str) -> RhaiResult<Dsn> {
    dsn::parse(text).map_err(|message| HostError::Fault(message).into_fault(function, ctx))
}

/// The call's own limit: the `timeout` option and the DSN's `connect_timeout`, whichever is
/// shorter; `Host::call` then clamps it to the deadline.
fn own_timeout(
    options: &Options,
    dsn: &Dsn,
    function: &str,
    ctx: &NativeCallContext,
) -> RhaiResult<Option<Duration>> {
    let timeout = options.timeout().map_err(|e| e.into_fault(function, ctx))?;
    Ok(match (timeout, dsn.connect_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

fn execute(dsn: &Dsn, budget: Duration, request: &Request) -> Result<Dynamic, SqlError> {
    // The drivers resolve and connect on their own: under `--allow-net` every target is
    // checked first, as `tcp::resolve` checks (name, then addresses), and a socket by its path.
    if crate::permissions::granted().is_some() {
        for target in &dsn.targets {
            match target {
                dsn::Target::Tcp(host, port) => {
                    crate::permissions::name(host, Some(*port)).map_err(SqlError::Failed)?;
                    let addrs = match super::tcp::without_lookup(host) {
                        Some(ips) => ips
                            .into_iter()
                            .map(|ip| std::net::SocketAddr::new(ip, *port))
                            .collect(),
                        None => super::tcp::lookup(host, *port, budget).map_err(SqlError::Failed)?,
                    };
                    crate::permissions::all_addrs(host, &addrs).map_err(SqlError::Failed)?;
                }
                dsn::Target::Socket(path, port) => {
                    let path = std::path::Path::new(path);
                    let socket = match dsn.kind {
                        Kind::Postgres => path.join(format!(".s.PGSQL.{port}")),
                        Kind::MySql => path.to_path_buf(),
                    };
                    crate::permissions::unix(&socket).map_err(SqlError::Failed)?;
                }
            }
        }
    }
    match dsn.kind {
        Kind::Postgres => pg::run(dsn, budget, request),
        Kind::MySql => my::run(dsn, budget, request),
    }
}

fn sql_ping(
    host: &Host,
    ctx: &NativeCallContext,
    text: &str,
    options: Options,
) -> RhaiResult<bool> {
    let dsn = read_dsn("sql_ping", ctx, text)?;
    let timeout = own_timeout(&options, &dsn, "sql_ping", ctx)?;
    let query = options
        .string("query")
        .map_err(|e| e.into_fault("sql_ping", ctx))?
        .unwrap_or_else(|| "SELECT 1".to_string());
    let what = format!("sql_ping({})", dsn.shown);
    host.call(ctx, &SQL_PING, &[text], what, timeout, |budget| {
        match execute(&dsn, budget, &Request::Ping(&query)) {
            Ok(_) => Ok((true, Outcome::Pass("true".into()))),
            Err(SqlError::Failed(reason)) => Ok((false, Outcome::Fail(reason))),
            Err(SqlError::Fault(message)) => Err(HostError::Fault(message)),
        }
    })
}

fn sql_scalar(
    host: &Host,
    ctx: &NativeCallContext,
    text: &str,
    query: &str,
    options: Options,
) -> RhaiResult<Dynamic> {
    let dsn = read_dsn("sql_scalar", ctx, text)?;
    let timeout = own_timeout(&options, &dsn, "sql_scalar", ctx)?;
    if query.trim().is_empty() {
        return Err(HostError::Fault("the query is empty".into()).into_fault("sql_scalar", ctx));
    }
    let what = format!("sql_scalar({}, {})", dsn.shown, short(query));
    host.call(ctx, &SQL_SCALAR, &[text], what, timeout, |budget| {
        match execute(&dsn, budget, &Request::Scalar(query)) {
            Ok(value) => {
                let shown = if value.is_unit() {
                    "()".to_string()
                } else if value.is_string() {
                    format!("{:?}", short(&value.to_string()))
                } else {
                    value.to_string()
                };
                Ok((value, Outcome::Pass(shown)))
            }
            Err(SqlError::Failed(reason)) => Err(HostError::Transport(reason)),
            Err(SqlError::Fault(message)) => Err(HostError::Fault(message)),
        }
    })
}

/// A query or value as shown in the trace: one line, at most 60 characters.
fn short(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 60 {
        let cut: String = line.chars().take(57).collect();
        format!("{cut}...")
    } else {
        line
    }
}

fn register_ping(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("sql_ping", move |ctx: NativeCallContext, dsn: &str| {
        sql_ping(&h, &ctx, dsn, Options::none())
    });
    let h = host.clone();
    engine.register_fn(
        "sql_ping",
        move |ctx: NativeCallContext, dsn: &str, options: Map| {
            let options =
                Options::new(&options, &SQL_PING).map_err(|e| e.into_fault("sql_ping", &ctx))?;
            sql_ping(&h, &ctx, dsn, options)
        },
    );
}

fn register_scalar(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "sql_scalar",
        move |ctx: NativeCallContext, dsn: &str, query: &str| {
            sql_scalar(&h, &ctx, dsn, query, Options::none())
        },
    );
    let h = host.clone();
    engine.register_fn(
        "sql_scalar",
        move |ctx: NativeCallContext, dsn: &str, query: &str, options: Map| {
            let options = Options::new(&options, &SQL_SCALAR)
                .map_err(|e| e.into_fault("sql_scalar", &ctx))?;
            sql_scalar(&h, &ctx, dsn, query, options)
        },
    );
}
