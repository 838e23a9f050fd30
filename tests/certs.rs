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

/// An HTTPS server on 127.0.0.1 sending `chain` with `key`, answering every request with 200 and
/// a body naming the client certificate's subject count (`client certs: N`). With `client_ca`,
/// it requires a client certificate signed by that CA. Returns the port and the number of
/// request bytes it received, over all connections.
fn https_server(
    chain: &[&str],
    key: &KeyPair,
    client_ca: Option<&str>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    https_server_with(chain, key, client_ca, rustls::DEFAULT_VERSIONS)
}

/// As [`https_server`], speaking only `versions` of TLS.
fn https_server_with(
    chain: &[&str],
    key: &KeyPair,
    client_ca: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::{io::Write, sync::atomic::Ordering};
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                .unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(certs, key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = received.clone();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, count) = (config.clone(), count.clone());
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            count.fetch_add(n, Ordering::SeqCst);
                            head.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let clients = tls.conn.peer_certificates().map_or(0, |c| c.len());
                let body = format!("client certs: {clients}");
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
                // Close only after the client has: a socket closed with unread bytes (a POST's
                // body in its own record) is reset, and a busy client then saw the reset before
                // the response ("connection closed during the TLS handshake").
                let _ = tls.sock.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 1024];
                while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    (port, received)
}

/// Write a PEM (and a key) under a test's directory; returns the paths.
fn pem_files(name: &str, pem: &str, key: &KeyPair) -> (String, String) {
    let dir = temp_dir(name);
    let (cert, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert.display().to_string(), key_path.display().to_string())
}

#[test]
fn https_responses_carry_what_the_handshake_showed() {
    let (root_pem, root) = ca(3650, None);
    let (leaf_pem, key) = leaf(3, Some(&root));
    let (port, _) = https_server(&[&leaf_pem], &key, None);
    let ca = ca_file("http-tls-3", &root_pem);
    let url = format!("https://localhost:{port}/");
    for call in [
        format!("http_get(\"{url}\", #{{ca_file: \"{ca}\"}})"),
        format!("http_request(\"{url}\", #{{method: \"POST\", body: \"x\", ca_file: \"{ca}\"}})"),
    ] {
        expect(
            &call,
            "let t = c.tls; c.status == 200 && t.verified && t.error == \"\" \
             && t.days_left > 2.9 && t.days_left < 3.1 && t.not_after.ends_with(\"Z\") \
             && t.subject == \"CN=rcgen self signed cert\" && t.issuer == \"CN=Test CA 3650\" \
             && t.dns_names == [\"localhost\", \"127.0.0.1\"] && t.chain_length == 1 \
             && t.version == \"TLSv1.3\" && t.cipher.starts_with(\"TLS13_\")",
            0,
            "healthy",
        );
    }
    // The docs' expiry check, on the response itself.
    Probe::script(&format!(
        "check(\"cert\", http_get(\"{url}\", #{{ca_file: \"{ca}\"}}).tls.days_left > 14.0)"
    ))
    .run()
    .expect(1, "check \"cert\" failed");
    // Plain HTTP has no TLS to describe.
    let plain = support::http_server();
    expect(
        &format!("http_get(\"{plain}/health\")"),
        "c.status == 200 && c.tls == ()",
        0,
        "healthy",
    );
}

#[test]
fn a_certificate_that_does_not_verify_gets_no_request_unless_insecure() {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    let (port, received) = https_server(&[&pem], &key, None);
    let ca = ca_file("http-tls-expired", &pem);
    let url = format!("https://localhost:{port}/");
    // Verified and refused: the request, and its secret header, never leave.
    Probe::script(&format!(
        "http_get(\"{url}\", #{{ca_file: \"{ca}\", headers: #{{Authorization: \"Bearer {}\"}}}})",
        support::FAULT_TOKEN
    ))
    .run()
    .expect(2, "certificate expired");
    Probe::script(&format!("http_get(\"{url}\")"))
        .run()
        .expect(2, "TLS: invalid peer certificate: certificate expired");
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server got request bytes over a certificate that did not verify"
    );
    // insecure: the request goes, and `tls` says what was wrong.
    expect(
        &format!("http_get(\"{url}\", #{{insecure: true}})"),
        "c.status == 200 && !c.tls.verified && c.tls.error.contains(\"certificate expired\") \
         && c.tls.not_after == \"2021-01-01T00:00:00Z\" && c.tls.days_left < -365.0",
        0,
        "healthy",
    );
    assert!(received.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn client_certificates_for_https() {
    let (server_ca_pem, server_ca) = ca(3650, None);
    let (server_pem, server_key) = leaf(30, Some(&server_ca));
    let (client_ca_pem, client_ca) = ca(3650, None);
    let (_, other_ca) = ca(3650, None);
    let (port, _) = https_server(&[&server_pem], &server_key, Some(&client_ca_pem));
    let ca = ca_file("mtls-http-ca", &server_ca_pem);
    let url = format!("https://localhost:{port}/");
    // None: the server refuses the handshake.
    Probe::script(&format!("http_get(\"{url}\", #{{ca_file: \"{ca}\"}})"))
        .run()
        .expect(
            2,
            "received fatal alert: CertificateRequired (the server asks for a client certificate: give cert_file and key_file)",
        );
    // One from another CA: refused as well.
    let (stranger, stranger_key) = leaf(30, Some(&other_ca));
    let (cert, key) = pem_files("mtls-http-stranger", &stranger, &stranger_key);
    Probe::script(&format!(
        "http_get(\"{url}\", #{{ca_file: \"{ca}\", cert_file: \"{cert}\", key_file: \"{key}\"}})"
    ))
    .run()
    .expect(2, "is cert_file signed by a CA it trusts?");
    // The right one: accepted, for GET and POST alike.
    let (client, client_key) = leaf(30, Some(&client_ca));
    let (cert, key) = pem_files("mtls-http-client", &client, &client_key);
    for call in [
        format!("http_get(\"{url}\", #{{ca_file: \"{ca}\", cert_file: \"{cert}\", key_file: \"{key}\"}})"),
        format!("http_request(\"{url}\", #{{method: \"PUT\", json: #{{a: 1}}, ca_file: \"{ca}\", cert_file: \"{cert}\", key_file: \"{key}\"}})"),
    ] {
        expect(&call, "c.status == 200 && c.body == \"client certs: 1\"", 0, "healthy");
    }
    // A key that is not the certificate's: the script's fault, naming both files.
    let (_, wrong_key) = pem_files("mtls-http-wrong", &stranger, &stranger_key);
    Probe::script(&format!(
        "http_get(\"{url}\", #{{cert_file: \"{cert}\", key_file: \"{wrong_key}\"}})"
    ))
    .run()
    .expect(
        3,
        &format!("the key in {wrong_key} does not match the certificate in {cert}"),
    );
    Probe::script(&format!("http_get(\"{url}\", #{{cert_file: \"{cert}\"}})"))
        .run()
        .expect(3, "option 'cert_file' needs 'key_file' too");
}

#[test]
fn tls_cert_presents_a_client_certificate() {
    // TLS 1.2: a server that wants a client certificate refuses the handshake itself (in 1.3 it
    // would say so only after the client's side of the handshake is done).
    let (server_ca_pem, server_ca) = ca(3650, None);
    let (server_pem, server_key) = leaf(30, Some(&server_ca));
    let (client_ca_pem, client_ca) = ca(3650, None);
    let (port, _) = https_server_with(
        &[&server_pem],
        &server_key,
        Some(&client_ca_pem),
        &[&rustls::version::TLS12],
    );
    let ca = ca_file("mtls-cert-ca", &server_ca_pem);
    Probe::script(&format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\"}})"))
        .run()
        .expect(
            2,
            "TLS failed: received fatal alert: CertificateRequired (the server asks for a client certificate: give cert_file and key_file) (probe.rhai",
        );
    let (client, client_key) = leaf(30, Some(&client_ca));
    let (cert, key) = pem_files("mtls-cert-client", &client, &client_key);
    expect(
        &format!("tls_cert(\"localhost\", {port}, #{{ca_file: \"{ca}\", cert_file: \"{cert}\", key_file: \"{key}\"}})"),
        "c.verified && c.version == \"TLSv1.2\" && c.days_left > 29.0",
        0,
        "healthy",
    );
    let (_, stranger_key) = leaf(30, None);
    let (_, wrong_key) = pem_files("mtls-cert-wrong", &client, &stranger_key);
    Probe::script(&format!(
        "tls_cert(\"localhost\", {port}, #{{cert_file: \"{cert}\", key_file: \"{wrong_key}\"}})"
    ))
    .run()
    .expect(
        3,
        &format!("the key in {wrong_key} does not match the certificate in {cert}"),
    );
}
