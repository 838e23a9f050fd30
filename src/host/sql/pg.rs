//! PostgreSQL through `tokio-postgres` (the engine of the `postgres` crate) on a current-thread
//! runtime made for the one call. Driving it directly, rather than through `postgres::Client`,
//! lets one timer bound everything — DNS, connect, TLS, login, query, goodbye — and dropping the
//! future on time-out closes the socket at once.

use std::{
    cell::Cell,
    fmt::Write as _,
    time::{Duration, Instant},
};

use rhai::Dynamic;
use sha2::Digest as _;
use tokio_postgres::{
    tls::MakeTlsConnect,
    types::{FromSql, Type},
    Config, NoTls, Socket,
};

use super::{
    super::tls::{client_config_with, prepare_p256_key_share, KeyShare, Verify},
    dsn::{Dsn, SslMode, Target},
    gather::GatherTls,
    Request, SqlError,
};
use crate::deadline::human;

pub fn run(dsn: &Dsn, budget: Duration, request: &Request) -> Result<Dynamic, SqlError> {
    let config = config(dsn)?;
    if dsn.ssl == SslMode::Disable {
        return drive(&config, NoTls, false, dsn, budget, request);
    }
    let verify = Verify::of(dsn.ssl, dsn.ca_file.as_deref());
    let identity = match &dsn.identity {
        Some((cert, key)) => Some(crate::host::tls::identity(cert, key).map_err(SqlError::Fault)?),
        None => None,
    };
    let tls = client_config_with(verify, dsn.ca_file.as_deref(), KeyShare::P256, identity.as_ref())
        .map_err(SqlError::Fault)?;
    drive(
        &config,
        GatherTls(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
        true,
        dsn,
        budget,
        request,
    )
}

fn config(dsn: &Dsn) -> Result<Config, SqlError> {
    let mut config = Config::new();
    config.user(dsn.user.as_deref().unwrap_or_default());
    if let Some(password) = &dsn.password {
        config.password(password);
    }
    if let Some(dbname) = &dsn.dbname {
        config.dbname(dbname);
    }
    for target in &dsn.targets {
        match target {
            Target::Tcp(host, port) => config.host(host).port(*port),
            Target::Socket(dir, port) => config.host_path(dir).port(*port),
        };
    }
    config.ssl_mode(match dsn.ssl {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    // Shows in pg_stat_activity and the server log, so a DBA can tell probes from the app.
    config.application_name("rhai-probe");
    if !dsn.params.is_empty() {
        // The rest goes through the driver's own parser, which knows libpq's other parameters
        // (application_name, options, target_session_attrs, …) and rejects unknown ones.
        let mut extra = String::new();
        for (key, value) in &dsn.params {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            let _ = write!(extra, "{key}='{quoted}' ");
        }
        let parsed: Config = extra
            .parse()
            .map_err(|e: tokio_postgres::Error| SqlError::Fault(chain(&e)))?;
        if let Some(name) = parsed.get_application_name() {
            config.application_name(name);
        }
        if let Some(options) = parsed.get_options() {
            config.options(options);
        }
        config.target_session_attrs(parsed.get_target_session_attrs());
        config.channel_binding(parsed.get_channel_binding());
        for addr in parsed.get_hostaddrs() {
            config.hostaddr(*addr);
        }
    }
    Ok(config)
}

/// Connect, run the request and say goodbye, all within `budget`. `early_tls`: TLS may follow,
/// so its CPU work that does not depend on the server is done while the server starts up.
fn drive<T>(
    config: &Config,
    tls: T,
    early_tls: bool,
    dsn: &Dsn,
    budget: Duration,
    request: &Request,
) -> Result<Dynamic, SqlError>
where
    T: MakeTlsConnect<Socket> + 'static + Send,
    T::Stream: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| SqlError::Failed(format!("cannot start the I/O runtime: {e}")))?;
    let phase = Cell::new("connecting");
    let started = Instant::now();
    let result = runtime.block_on(async {
        if early_tls {
            // Spawned, this runs while the connection waits: PostgreSQL starts a backend for
            // each connection before it answers the SSLRequest, a few hundred microseconds the
            // client would spend idle. Done then: the key pair of the ClientHello, and the
            // one-time CPU feature checks of ring and of the SHA-256 code SCRAM uses. The yield
            // lets the runtime poll for I/O first: the connection's first wait is for the TCP
            // handshake, which on loopback is already done, and this work (about 0.1 ms) ran
            // there, ahead of the SSLRequest, delaying the backend's start by as much.
            tokio::spawn(async {
                tokio::task::yield_now().await;
                prepare_p256_key_share();
                sha2::Sha256::digest(b"");
            });
        }
        let work = async {
            let (client, connection) = config
                .connect(tls)
                .await
                .map_err(|e| SqlError::Failed(describe(&e, dsn)))?;
            let connection = tokio::spawn(connection);
            phase.set("waiting for the answer");
            let answer = match request {
                Request::Ping(query) => client
                    .simple_query(query)
                    .await
                    .map(|_| Dynamic::TRUE)
                    .map_err(|e| SqlError::Failed(describe(&e, dsn))),
                Request::Scalar(query) => match client.query(*query, &[]).await {
                    Ok(rows) => match rows.first() {
                        None => Ok(Dynamic::UNIT),
                        Some(row) => first_value(row),
                    },
                    Err(e) => Err(SqlError::Failed(describe(&e, dsn))),
                },
            };
            Ok((client, connection, answer))
        };
        match tokio::time::timeout(budget, work).await {
            Err(_) => Err(SqlError::Failed(format!(
                "timed out after {} ({})",
                human(budget),
                phase.get()
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok((client, connection, answer))) => {
                // Dropping the client makes the connection send Terminate and close: no
                // "unexpected EOF on client connection" in the server's log.
                drop(client);
                let left = budget.saturating_sub(started.elapsed());
                let _ = tokio::time::timeout(left.max(Duration::from_millis(10)), connection).await;
                answer
            }
        }
    });
    // Do not wait for a DNS lookup still running on the blocking pool.
    runtime.shutdown_background();
    result
}

/// The reason in a line: the server's message with its SQLSTATE, or what the network said.
fn describe(e: &tokio_postgres::Error, dsn: &Dsn) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return super::tls_reason(tls, dsn);
            }
            return super::super::io_reason(io);
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return super::tls_reason(tls, dsn);
        }
        source = inner.source();
    }
    let text = chain(e);
    if text.contains("server does not support TLS") {
        return format!(
            "the server does not support TLS, and sslmode={} requires it",
            dsn.ssl.name(dsn.kind)
        );
    }
    if text.contains("password missing") {
        return "the server asks for a password, and the DSN has none".into();
    }
    text
}

/// An error with its causes: the driver's top line alone ("invalid configuration") hides them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

/// A column's bytes as sent, whatever its type: the conversion below decides by type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn first_value(row: &tokio_postgres::Row) -> Result<Dynamic, SqlError> {
    let Some(column) = row.columns().first() else {
        return Ok(Dynamic::UNIT);
    };
    let raw: Option<Raw> = row
        .try_get(0)
        .map_err(|e| SqlError::Failed(format!("reading the first column: {e}")))?;
    let Some(Raw(bytes)) = raw else {
        return Ok(Dynamic::UNIT);
    };
    let ty = column.type_();
    convert(ty, bytes).ok_or_else(|| {
        SqlError::Fault(format!(
            "the first column ({}) is of type {}, which sql_scalar does not convert; cast it in \
             the query: SELECT (...)::text, or SELECT extract(epoch from ...) for a time",
            column.name(),
            ty.name(),
        ))
    })
}

/// Binary wire format to a Rhai value, for the types a health check reads.
fn convert(ty: &Type, bytes: &[u8]) -> Option<Dynamic> {
    let fixed = |n: usize| bytes.get(..n);
    Some(match *ty {
        Type::BOOL => Dynamic::from_bool(*bytes.first()? != 0),
        Type::INT2 => (i16::from_be_bytes(fixed(2)?.try_into().ok()?) as i64).into(),
        Type::INT4 => (i32::from_be_bytes(fixed(4)?.try_into().ok()?) as i64).into(),
        Type::INT8 => i64::from_be_bytes(fixed(8)?.try_into().ok()?).into(),
        Type::OID => (u32::from_be_bytes(fixed(4)?.try_into().ok()?) as i64).into(),
        Type::FLOAT4 => Dynamic::from_float(f32::from_be_bytes(fixed(4)?.try_into().ok()?) as f64),
        Type::FLOAT8 => Dynamic::from_float(f64::from_be_bytes(fixed(8)?.try_into().ok()?)),
        Type::NUMERIC => numeric(bytes)?,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::CHAR
        | Type::JSON => std::str::from_utf8(bytes).ok()?.into(),
        // jsonb: a version byte, then the text.
        Type::JSONB => std::str::from_utf8(bytes.get(1..)?).ok()?.into(),
        _ if matches!(ty.kind(), tokio_postgres::types::Kind::Enum(_)) || ty.name() == "citext" => {
            std::str::from_utf8(bytes).ok()?.into()
        }
        _ => return None,
    })
}

/// NUMERIC's binary form (base-10000 digits): an integer when it has no fractional digits and
/// fits, else a float. `extract(epoch from …)` returns NUMERIC since PostgreSQL 14.
fn numeric(bytes: &[u8]) -> Option<Dynamic> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(
            bytes.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = word(0)?.max(0) as usize;
    let weight = word(1)? as i64;
    let sign = word(2)? as u16;
    let dscale = word(3)?.max(0) as usize;
    let digits: Vec<i64> = (0..ndigits)
        .map(|i| word(4 + i).map(i64::from))
        .collect::<Option<_>>()?;
    match sign {
        0xC000 => return Some(Dynamic::from_float(f64::NAN)),
        0xD000 => return Some(Dynamic::from_float(f64::INFINITY)),
        0xF000 => return Some(Dynamic::from_float(f64::NEG_INFINITY)),
        _ => {}
    }
    let digit = |i: i64| -> i64 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(text, "{}", digit(i));
            } else {
                let _ = write!(text, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", digit(i));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    if dscale == 0 {
        if let Ok(i) = text.parse::<i64>() {
            return Some(i.into());
        }
    }
    text.parse::<f64>().ok().map(Dynamic::from_float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_to_rhai() {
        // 12345678 = 1234 5678, weight 1
        let v = numeric(&numeric_bytes(2, 1, 0, 0, &[1234, 5678])).unwrap();
        assert_eq!(v.as_int().unwrap(), 12345678);
        // -0.0012 = weight -1, digit 12, dscale 4
        let v = numeric(&numeric_bytes(1, -1, 0x4000, 4, &[12])).unwrap();
        assert_eq!(v.as_float().unwrap(), -0.0012);
        // 3.5 = 3 . 5000, dscale 1
        let v = numeric(&numeric_bytes(2, 0, 0, 1, &[3, 5000])).unwrap();
        assert_eq!(v.as_float().unwrap(), 3.5);
        // 0.000001 = weight -2, digit 100, dscale 6
        let v = numeric(&numeric_bytes(1, -2, 0, 6, &[100])).unwrap();
        assert_eq!(v.as_float().unwrap(), 0.000001);
        // 20000 = digit 2, weight 1 (trailing zero groups omitted)
        let v = numeric(&numeric_bytes(1, 1, 0, 0, &[2])).unwrap();
        assert_eq!(v.as_int().unwrap(), 20000);
        assert!(numeric(&numeric_bytes(0, 0, 0xC000, 0, &[]))
            .unwrap()
            .as_float()
            .unwrap()
            .is_nan());
        assert!(numeric(&[0, 1]).is_none());
    }
}
