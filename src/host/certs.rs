//! `tls_cert(host, port)`: what a TLS endpoint says about itself, without speaking HTTP: the
//! version and cipher agreed, whether the chain verified (and why not), the leaf's names and
//! dates, and the earliest expiry in the chain the server sent. A certificate that does not
//! verify is still read: the handshake completes with a client that records the verdict, and
//! nothing is sent over it. `starttls: "postgres"` asks a PostgreSQL server for TLS first.

use std::{
    rc::Rc,
    time::{SystemTime, UNIX_EPOCH},
};

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, INT};
use rustls::pki_types::{CertificateDer, ServerName};
use x509_cert::{
    der::{oid::AssociatedOid, Decode},
    ext::pkix::{name::GeneralName, SubjectAltName},
    Certificate,
};

use super::{
    decl::{Fails, HostFn, Key, KeyStub, Opt, OptType, Stub, Time, Type, TIMEOUT, TIMEOUT_MS},
    options::Options,
    result_map, tls, wire, Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[TLS_CERT];

pub const TLS_CERT: HostFn = HostFn {
    name: "tls_cert",
    signatures: &[
        "tls_cert(host: string, port: int) -> map",
        "tls_cert(host: string, port: int, options: map) -> map",
    ],
    summary: "a TLS port's certificate: #{days_left, not_after, verified, error, subject, dns_names, earliest_days_left, …}; read even when it does not verify",
    options: &[
        TIMEOUT,
        TIMEOUT_MS,
        wire::CA_FILE,
        wire::SERVER_NAME,
        wire::CERT_FILE,
        wire::KEY_FILE,
        Opt {
            key: "starttls",
            ty: OptType::String,
            default: "none",
            doc: "`\"postgres\"`: ask a PostgreSQL server for TLS first (SSLRequest); else TLS from the first byte",
        },
    ],
    keys: &[
        Key {
            name: "verified",
            ty: Type::Bool,
            doc: "the chain leads to a trusted root (the bundled ones, or `ca_file`) and names the host (or `server_name`)",
            stub: KeyStub::Value("true"),
        },
        Key {
            name: "error",
            ty: Type::String,
            doc: "why it did not verify (`invalid peer certificate: certificate expired: …`); `\"\"` when it did",
            stub: KeyStub::Value("\"\""),
        },
        Key {
            name: "days_left",
            ty: Type::Float,
            doc: "days until the leaf certificate's `not_after` (negative once expired)",
            stub: KeyStub::Value("90.0"),
        },
        Key {
            name: "not_after",
            ty: Type::String,
            doc: "the leaf's end of validity, RFC 3339 (`2027-03-01T12:00:00Z`)",
            stub: KeyStub::Value("\"2027-03-01T12:00:00Z\""),
        },
        Key {
            name: "not_before",
            ty: Type::String,
            doc: "the leaf's start of validity, RFC 3339",
            stub: KeyStub::Value("\"2026-12-01T12:00:00Z\""),
        },
        Key {
            name: "earliest_days_left",
            ty: Type::Float,
            doc: "days until the first `not_after` of every certificate the server sent (an intermediate may expire first)",
            stub: KeyStub::Value("90.0"),
        },
        Key {
            name: "earliest_not_after",
            ty: Type::String,
            doc: "that earliest `not_after`, RFC 3339",
            stub: KeyStub::Value("\"2027-03-01T12:00:00Z\""),
        },
        Key {
            name: "subject",
            ty: Type::String,
            doc: "the leaf's subject (`CN=api.example.com`)",
            stub: KeyStub::Value("\"CN=localhost\""),
        },
        Key {
            name: "issuer",
            ty: Type::String,
            doc: "the leaf's issuer",
            stub: KeyStub::Value("\"CN=Example CA\""),
        },
        Key {
            name: "dns_names",
            ty: Type::Array,
            doc: "the leaf's DNS names (subject alternative names) and IP addresses",
            stub: KeyStub::Value("[]"),
        },
        Key {
            name: "chain_length",
            ty: Type::Int,
            doc: "how many certificates the server sent",
            stub: KeyStub::Value("1"),
        },
        Key {
            name: "version",
            ty: Type::String,
            doc: "the TLS version agreed (`TLSv1.3`)",
            stub: KeyStub::Value("\"TLSv1.3\""),
        },
        Key {
            name: "cipher",
            ty: Type::String,
            doc: "the cipher suite agreed (`TLS13_AES_256_GCM_SHA384`)",
            stub: KeyStub::Value("\"TLS13_AES_256_GCM_SHA384\""),
        },
    ],
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[],
    stub: Stub::Answer {
        example: "{ days_left = 90.0 }",
        failing: "{ days_left = 3.0 }",
    },
    reach: crate::host::decl::Reach::HostPort(0, 1),
    register,
};

/// The dates and names of one certificate.
struct Facts {
    not_before: u64,
    not_after: u64,
    subject: String,
    issuer: String,
    names: Vec<String>,
}

fn facts(der: &CertificateDer) -> Result<Facts, String> {
    let cert = Certificate::from_der(der.as_ref())
        .map_err(|e| format!("the server's certificate cannot be read: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let mut names = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != SubjectAltName::OID {
            continue;
        }
        let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) else {
            continue;
        };
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => names.push(dns.as_str().to_string()),
                GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip.as_bytes()).unwrap())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip.as_bytes()).unwrap())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(Facts {
        not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
        not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        names,
    })
}

fn rfc3339(secs: u64) -> String {
    crate::logging::rfc3339(secs, None)
}

/// The keys of `tls_cert` (and of an https response's `tls`) from what a handshake showed, and
/// the line a trace shows for them.
pub fn describe(seen: &tls::Seen, version: String, cipher: String) -> Result<(Map, String), String> {
    let chain = seen.chain.iter().map(facts).collect::<Result<Vec<_>, _>>()?;
    let Some(leaf) = chain.first() else {
        return Err("the server sent no certificate".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = |t: u64| (t as f64 - now as f64) / 86_400.0;
    let earliest = chain.iter().map(|c| c.not_after).min().unwrap_or(leaf.not_after);
    let mut map = Map::new();
    map.insert("verified".into(), seen.error.is_none().into());
    map.insert("error".into(), seen.error.clone().unwrap_or_default().into());
    map.insert("days_left".into(), days(leaf.not_after).into());
    map.insert("not_after".into(), rfc3339(leaf.not_after).into());
    map.insert("not_before".into(), rfc3339(leaf.not_before).into());
    map.insert("earliest_days_left".into(), days(earliest).into());
    map.insert("earliest_not_after".into(), rfc3339(earliest).into());
    map.insert("subject".into(), leaf.subject.clone().into());
    map.insert("issuer".into(), leaf.issuer.clone().into());
    let names: Array = leaf.names.iter().map(|n| n.clone().into()).collect();
    map.insert("dns_names".into(), names.into());
    map.insert("chain_length".into(), (chain.len() as INT).into());
    map.insert("version".into(), version.into());
    map.insert("cipher".into(), cipher.into());
    let summary = format!(
        "{}, {:.1} days left{}",
        leaf.subject,
        days(leaf.not_after),
        match &seen.error {
            None => String::new(),
            Some(e) => format!(", not verified: {e}"),
        }
    );
    Ok((map, summary))
}

/// Ask a PostgreSQL server for TLS (SSLRequest) on a plain connection.
fn postgres_starttls(conn: &mut wire::Conn) -> Result<(), String> {
    conn.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
    match conn
        .exact(1)
        .map_err(|e| e.waiting("a PostgreSQL server", "to the SSLRequest"))?
        .as_slice()
    {
        b"S" => Ok(()),
        b"N" => Err("the PostgreSQL server does not offer TLS (ssl = off)".into()),
        other => Err(format!(
            "not a PostgreSQL server (it answered {} to the SSLRequest)",
            wire::shown(other)
        )),
    }
}

fn tls_cert(
    host: &Host,
    ctx: &NativeCallContext,
    name: &str,
    port: INT,
    options: Options,
) -> RhaiResult<Dynamic> {
    let fault = |m: String| HostError::Fault(m).into_fault("tls_cert", ctx);
    let name = name.trim().trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(fault("host is empty".into()));
    }
    let Some(port) = u16::try_from(port).ok().filter(|p| *p != 0) else {
        return Err(fault(format!("port {port} is out of range 1-65535")));
    };
    let timeout = options.timeout().map_err(|e| e.into_fault("tls_cert", ctx))?;
    let starttls = match options
        .string("starttls")
        .map_err(|e| e.into_fault("tls_cert", ctx))?
        .as_deref()
    {
        None => false,
        Some(p) if p.eq_ignore_ascii_case("postgres") => true,
        Some(other) => {
            return Err(fault(format!(
                "option 'starttls': {other:?} is not one this version speaks (\"postgres\"; leave it out for TLS from the first byte)"
            )))
        }
    };
    let ca_file = options
        .string("ca_file")
        .map_err(|e| e.into_fault("tls_cert", ctx))?;
    let server_name = options
        .string("server_name")
        .map_err(|e| e.into_fault("tls_cert", ctx))?
        .unwrap_or_else(|| name.to_string());
    let identity = match wire::TlsOptions::of(&options)
        .map_err(|e| e.into_fault("tls_cert", ctx))?
        .identity
    {
        Some((cert, key)) => Some(tls::identity(&cert, &key).map_err(fault)?),
        None => None,
    };
    let (config, seen) = tls::recording_config(ca_file.as_deref(), identity.as_ref()).map_err(fault)?;
    let sni = ServerName::try_from(server_name.clone())
        .map_err(|_| fault(format!("{server_name} is not a valid TLS server name")))?;
    let what = match name.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => format!("TLS [{name}]:{port}"),
        _ => format!("TLS {name}:{port}"),
    };
    let map = host.call(ctx, &TLS_CERT, &[], what, timeout, |budget| {
        let transport = HostError::Transport;
        let mut conn = wire::connect(name, port, budget).map_err(transport)?;
        if starttls {
            postgres_starttls(&mut conn).map_err(transport)?;
        }
        conn.start_tls_with(
            (std::sync::Arc::new(config), sni),
            "is the port serving TLS? (starttls: \"postgres\" for a PostgreSQL port)",
        )
        .map_err(transport)?;
        let (version, cipher) = conn.tls_session().unwrap_or_default();
        let seen = std::mem::take(&mut *seen.lock().map_err(|_| transport("TLS state lost".into()))?);
        let (map, summary) = describe(&seen, version, cipher).map_err(transport)?;
        Ok((map, Outcome::Pass(summary)))
    })?;
    Ok(result_map(&TLS_CERT, map))
}

fn register(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "tls_cert",
        move |ctx: NativeCallContext, name: &str, port: INT| {
            tls_cert(&h, &ctx, name, port, Options::none())
        },
    );
    let h = host.clone();
    engine.register_fn(
        "tls_cert",
        move |ctx: NativeCallContext, name: &str, port: INT, options: Map| {
            let options =
                Options::new(&options, &TLS_CERT).map_err(|e| e.into_fault("tls_cert", &ctx))?;
            tls_cert(&h, &ctx, name, port, options)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_803_643_200), "2027-02-26T12:00:00Z");
    }
}
