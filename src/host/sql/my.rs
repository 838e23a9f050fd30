//! MySQL and MariaDB through the `mysql` crate (blocking). Every socket operation gets what is
//! left of the call's budget as its timeout; the driver is kept from its costly habits: no probe
//! for a local socket and reconnect (`prefer_socket(false)`), no `SELECT @@max_allowed_packet`
//! round trip (the limit is set here).

use std::time::{Duration, Instant};

use mysql::{
    consts::ColumnType, prelude::Queryable, Conn, DriverError, OptsBuilder, SslOpts, Value,
};
use rhai::Dynamic;

use super::{
    super::{tcp, tls},
    dsn::{Dsn, SslMode, Target},
    Request, SqlError,
};
use crate::deadline::human;

/// Large enough for any first row a health check reads; a larger packet is refused.
const MAX_PACKET: usize = 4 * 1024 * 1024;

pub fn run(dsn: &Dsn, budget: Duration, request: &Request) -> Result<Dynamic, SqlError> {
    let started = Instant::now();
    // The driver resolves a host name with getaddrinfo, which takes no timeout: a resolver that
    // never answers held the call (and `serve`'s evaluation) past the deadline. Resolve it
    // here first, within the budget; the driver's own lookup then finds the answer just given.
    if let Target::Tcp(host, port) = &dsn.targets[0] {
        if tcp::without_lookup(host).is_none() {
            tcp::lookup(host, *port, budget).map_err(SqlError::Failed)?;
        }
    }
    // The driver reads these files itself, and says only "invalid key" of a mismatch.
    if let Some((cert, key)) = &dsn.identity {
        let identity = tls::identity(cert, key).map_err(SqlError::Fault)?;
        tls::client_config_with(tls::Verify::Nothing, None, tls::KeyShare::X25519, Some(&identity))
            .map_err(SqlError::Fault)?;
    }
    let attempt = |ssl: Option<SslOpts>| -> Result<Result<Dynamic, SqlError>, mysql::Error> {
        let left = budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(mysql::Error::DriverError(DriverError::ConnectTimeout));
        }
        let mut conn = Conn::new(options(dsn, left, ssl))?;
        let answer = match request {
            Request::Ping(query) => conn.query_drop(query).map(|_| Ok(Dynamic::TRUE))?,
            Request::Scalar(query) => match conn.query_first::<mysql::Row, _>(query)? {
                None => Ok(Dynamic::UNIT),
                Some(row) => first_value(&row),
            },
        };
        // Dropping the connection sends COM_QUIT: the server logs a clean disconnect.
        drop(conn);
        Ok(answer)
    };
    let result = match dsn.ssl {
        // PREFERRED: the driver cannot fall back on the same connection, so a server without
        // TLS costs a second one.
        SslMode::Prefer => match attempt(ssl_opts(dsn, SslMode::Require)) {
            Err(mysql::Error::DriverError(DriverError::TlsNotSupported)) => attempt(None),
            other => other,
        },
        mode => attempt(ssl_opts(dsn, mode)),
    };
    match result {
        Ok(answer) => answer,
        Err(e) => Err(SqlError::Failed(describe(&e, dsn, budget))),
    }
}

fn options(dsn: &Dsn, left: Duration, ssl: Option<SslOpts>) -> OptsBuilder {
    let builder = OptsBuilder::new()
        .user(dsn.user.as_deref())
        .pass(dsn.password.as_deref())
        .db_name(dsn.dbname.as_deref())
        .prefer_socket(false)
        .max_allowed_packet(Some(MAX_PACKET))
        .tcp_connect_timeout(Some(left))
        .read_timeout(Some(left))
        .write_timeout(Some(left))
        .ssl_opts(ssl);
    match &dsn.targets[0] {
        Target::Tcp(host, port) => builder.ip_or_hostname(Some(host)).tcp_port(*port),
        Target::Socket(path, _) => builder.socket(Some(path)),
    }
}

fn ssl_opts(dsn: &Dsn, mode: SslMode) -> Option<SslOpts> {
    let mut opts = SslOpts::default();
    if let Some(ca) = &dsn.ca_file {
        opts = opts.with_root_cert_path(Some(std::path::PathBuf::from(ca)));
    }
    if let Some((cert, key)) = &dsn.identity {
        opts = opts.with_client_identity(Some(mysql::ClientIdentity::new(
            std::path::PathBuf::from(cert),
            std::path::PathBuf::from(key),
        )));
    }
    // As libpq: REQUIRED with a CA file verifies the chain.
    let (chain, name) = match mode {
        SslMode::Disable => return None,
        SslMode::Prefer | SslMode::Require => (dsn.ca_file.is_some(), false),
        SslMode::VerifyCa => (true, false),
        SslMode::VerifyFull => (true, true),
    };
    Some(
        opts.with_danger_accept_invalid_certs(!chain)
            .with_danger_skip_domain_validation(!name),
    )
}

fn describe(e: &mysql::Error, dsn: &Dsn, budget: Duration) -> String {
    match e {
        mysql::Error::MySqlError(e) => {
            format!("{} (error {}, SQLSTATE {})", e.message, e.code, e.state)
        }
        mysql::Error::CodecError(codec) => {
            match std::error::Error::source(codec).and_then(|s| s.downcast_ref::<std::io::Error>())
            {
                Some(io) => io_failure(io, dsn, budget),
                None => codec.to_string(),
            }
        }
        mysql::Error::IoError(io) => io_failure(io, dsn, budget),
        mysql::Error::DriverError(DriverError::ConnectTimeout | DriverError::Timeout) => {
            format!("timed out after {} (connecting)", human(budget))
        }
        mysql::Error::DriverError(DriverError::TlsNotSupported) => format!(
            "the server does not support TLS, and ssl-mode={} requires it",
            dsn.ssl.name(dsn.kind)
        ),
        mysql::Error::DriverError(DriverError::CouldNotConnect(Some((_, text, _)))) => text
            .split(" (os error")
            .next()
            .unwrap_or(text)
            .to_lowercase(),
        mysql::Error::TlsError(tls) => format!("TLS failed: {tls}"),
        other => other.to_string(),
    }
}

/// An I/O failure, however the driver wrapped it: TLS, a timeout, a closed connection.
fn io_failure(io: &std::io::Error, dsn: &Dsn, budget: Duration) -> String {
    use std::io::ErrorKind;
    if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return super::tls_reason(tls, dsn);
    }
    match io.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("timed out after {} (no answer)", human(budget))
        }
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => format!(
            "the server closed the connection ({}); is this a {} server?",
            super::super::io_reason(io),
            dsn.kind.name()
        ),
        _ => super::super::io_reason(io),
    }
}

fn first_value(row: &mysql::Row) -> Result<Dynamic, SqlError> {
    let Some(column) = row.columns_ref().first() else {
        return Ok(Dynamic::UNIT);
    };
    let Some(value) = row.as_ref(0) else {
        return Ok(Dynamic::UNIT);
    };
    let unsupported = || {
        SqlError::Fault(format!(
            "the first column ({}) is of type {:?}, which sql_scalar does not convert; cast it \
             in the query: SELECT CAST(... AS CHAR)",
            column.name_str(),
            column.column_type(),
        ))
    };
    Ok(match value {
        Value::NULL => Dynamic::UNIT,
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => i64::try_from(*u).map_or(Dynamic::from_float(*u as f64), Dynamic::from),
        Value::Float(f) => Dynamic::from_float(*f as f64),
        Value::Double(f) => Dynamic::from_float(*f),
        // The text protocol sends every value as text; the column type says what it is.
        Value::Bytes(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| unsupported())?;
            text_value(column.column_type(), text).ok_or_else(unsupported)?
        }
        Value::Date(..) | Value::Time(..) => return Err(unsupported()),
    })
}

fn text_value(ty: ColumnType, text: &str) -> Option<Dynamic> {
    use ColumnType::*;
    Some(match ty {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => match text.parse::<i64>() {
            Ok(i) => i.into(),
            // BIGINT UNSIGNED above i64: a float, like JSON would carry it.
            Err(_) => Dynamic::from_float(text.parse::<f64>().ok()?),
        },
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => Dynamic::from_float(text.parse::<f64>().ok()?),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => match text.parse::<i64>() {
            Ok(i) if !text.contains('.') => i.into(),
            _ => Dynamic::from_float(text.parse::<f64>().ok()?),
        },
        MYSQL_TYPE_BIT => {
            let value = text
                .bytes()
                .fold(0i64, |acc, b| acc.wrapping_shl(8) | i64::from(b));
            value.into()
        }
        MYSQL_TYPE_GEOMETRY => return None,
        // Strings, JSON, dates and times: their text, as the server wrote it.
        _ => text.into(),
    })
}
