//! tls_cert against real TLS servers on 127.0.0.1 with certificates made here (rcgen): dates a
//! number of days from now, an expired one, a chain whose intermediate expires first, a name
//! that does not match; the private PostgreSQL with TLS through its SSLRequest; ports that do
//! not speak TLS.

mod support;

use std::{io::Read, net::TcpListener, thread, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use support::{black_hole, closed_port, temp_dir, Probe};

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// A certificate for localhost and 127.0.0.1, valid until `days` from now, signed by `issuer`
/// (self-signed when `None`). Returns its PEM and key.
fn leaf(days: i64, issuer: Option<&Issuer<'_, KeyPair>>) -> (String, KeyPair) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.not_before = days_from_now(-30);
    params.not_after = days_from_now(days);
    let key = KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key)
}

/// A CA valid until `days` from now, signed by `parent` (self-signed when `None`).
fn ca(days: i64, parent: Option<&Issuer<'_, KeyPair>>) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = days_from_now(-30);
    params.not_after = days_from_now(days);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Test CA {days}"));
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        Some(parent) => params.signed_by(&key, parent).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), Issuer::new(params, key))
}

/// A TLS server sending `chain` (PEM, leaf first): it completes handshakes and says nothing.
fn tls_server(chain: &[&str], key: &KeyPair) -> u16 {
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = support::tls_server_config(certs, key);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let _ = tcp.read_to_end(&mut Vec::new());
            });
        }
    });
    port
}

fn ca_file(name: &str, pem: &str) -> String {
    let path = temp_dir(name).join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

/// Run `script` (with `C` standing for the call) and expect `code` and `text`.
#[track_caller]
fn expect(call: &str, script: &str, code: i32, text: &str) {
    Probe::script(&format!("let c = {call};\n{script}"))
        .args(["--timeout", "2s"])
        .run()
        .expect(code, text);
}

#[test]
fn days_left_and_dates_of_the_leaf() {
    let (pem, key) = leaf(400, None);
    let port = tls_server(&[&pem], &key);
    let ca = ca_file("certs-400", &pem);
    let call = format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}})");
    expect(
        &call,
        "c.verified && c.error == \"\" && c.days_left > 399.9 && c.days_left < 400.1 \
         && c.earliest_days_left == c.days_left && c.chain_length == 1 \
         && c.dns_names == [\"localhost\", \"127.0.0.1\"] && c.subject == c.issuer \
         && c.version == \"TLSv1.3\" && c.cipher.starts_with(\"TLS13_\") \
         && c.not_after.len() == 20 && c.not_after.ends_with(\"Z\")",
        0,
        "healthy",
    );
    // 127.0.0.1 is in the certificate too; server_name picks the name to verify.
    expect(
        &format!(
            "tls_cert(\"127.0.0.1\", {port}, #{{ca_file: \"{ca}\", server_name: \"localhost\"}})"
        ),
        "c.verified",
        0,
        "healthy",
    );
    // The example of the docs: a certificate with 3 days left fails a 14-day check.
    let (pem, key) = leaf(3, None);
    let port = tls_server(&[&pem], &key);
    let ca = ca_file("certs-3", &pem);
    expect(
        &format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}})"),
        "c.days_left > 2.9 && c.days_left < 3.1 && c.verified",
        0,
        "healthy",
    );
    Probe::script(&format!(
        "check(\"cert\", tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}}).days_left > 14.0)"
    ))
    .run()
    .expect(1, "check \"cert\" failed");
}

#[test]
fn an_expired_or_unknown_certificate_is_still_read() {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    let port = tls_server(&[&pem], &key);
    let ca = ca_file("certs-expired", &pem);
    expect(
        &format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}})"),
        "!c.verified && c.error.contains(\"certificate expired\") && c.days_left < -365.0 \
         && c.not_after == \"2021-01-01T00:00:00Z\" && c.not_before == \"2020-01-01T00:00:00Z\"",
        0,
        "healthy",
    );
    // Without the CA: the bundled roots do not know it, and the facts are still there.
    let (pem, key) = leaf(30, None);
    let port = tls_server(&[&pem], &key);
    expect(
        &format!("tls_cert(\"localhost\", {port})"),
        "!c.verified && c.error.contains(\"UnknownIssuer\") && c.days_left > 29.0",
        0,
        "healthy",
    );
    // A name the certificate does not hold.
    let ca = ca_file("certs-name", &pem);
    expect(
        &format!("tls_cert(\"127.0.0.1\", {port}, #{{ca_file: \"{ca}\", server_name: \"db.example.test\"}})"),
        "!c.verified && c.error.contains(\"certificate not valid for name\")",
        0,
        "healthy",
    );
}

#[test]
fn the_earliest_expiry_in_the_chain_is_an_intermediate_s() {
    let (root_pem, root) = ca(3650, None);
    let (mid_pem, mid) = ca(10, Some(&root));
    let (leaf_pem, key) = leaf(300, Some(&mid));
    let port = tls_server(&[&leaf_pem, &mid_pem], &key);
    let ca = ca_file("certs-chain", &root_pem);
    expect(
        &format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}})"),
        "c.verified && c.chain_length == 2 && c.days_left > 299.0 \
         && c.earliest_days_left > 9.9 && c.earliest_days_left < 10.1 \
         && c.issuer == \"CN=Test CA 10\"",
        0,
        "healthy",
    );
}

#[test]
fn a_postgres_port_through_its_sslrequest_and_ports_without_tls() {
    let pg = support::private_pg();
    expect(
        &format!(
            "tls_cert(\"localhost\", {}, #{{starttls: \"postgres\", ca_file: \"{}\"}})",
            pg.tls,
            pg.ca.display()
        ),
        "c.verified && c.dns_names.contains(\"localhost\") && c.days_left > 0.0",
        0,
        "healthy",
    );
    // The plain private server refuses the SSLRequest.
    Probe::script(&format!(
        "tls_cert(\"localhost\", {}, #{{starttls: \"postgres\"}})",
        pg.plain
    ))
    .run()
    .expect(2, "the PostgreSQL server does not offer TLS (ssl = off)");
    // A PostgreSQL port without starttls, a silent port, a refused one: transport failures.
    Probe::script(&format!("tls_cert(\"localhost\", {})", pg.tls))
        .run()
        .expect(
            2,
            "is the port serving TLS? (starttls: \"postgres\" for a PostgreSQL port)",
        );
    Probe::script(&format!(
        "tls_cert(\"127.0.0.1\", {}, #{{timeout: \"300ms\"}})",
        black_hole()
    ))
    .run()
    .expect(2, "TLS handshake failed: no answer to the ClientHello");
    Probe::script(&format!("tls_cert(\"127.0.0.1\", {})", closed_port()))
        .run()
        .expect(2, "connection refused");
    Probe::script("tls_cert(\"localhost\", 443, #{starttls: \"smtp\"})")
        .run()
        .expect(
            3,
            "option 'starttls': \"smtp\" is not one this version speaks",
        );
}
