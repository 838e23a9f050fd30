//! Faults on the wire, each produced on loopback by the test itself, each with the same bar: the
//! exit code, a piece of the one-line reason, finished by the deadline plus a margin, stdout and
//! stderr under 10 KiB (kubelet keeps 10 KiB of a probe's output), and no secret anywhere —
//! every URL carries a password and a token.

mod support;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use support::Probe;

const SECRETS: [&str; 2] = ["fault-pw-4711", "fault-tok-0815"];

/// What a scripted server does once it has read the request's headers.
#[derive(Clone)]
enum Answer {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Write these bytes, then keep the connection open and silent.
    BytesThenStall(Vec<u8>),
    /// Write the head, then the body one byte every `every`, up to `count` bytes.
    Drip(Vec<u8>, Duration, usize),
    /// Write the head, then bytes without end (until the client goes away).
    Endless(Vec<u8>),
}

/// A one-connection-at-a-time server on 127.0.0.1 answering every request the same way.
fn scripted(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            thread::spawn(move || serve(stream, answer));
        }
    });
    port
}

fn serve(mut stream: TcpStream, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    match answer {
        Answer::Bytes(b) => {
            let _ = stream.write_all(&b);
        }
        Answer::BytesThenStall(b) => {
            let _ = stream.write_all(&b);
            thread::sleep(Duration::from_secs(10));
        }
        Answer::Drip(head, every, count) => {
            let _ = stream.write_all(&head);
            for _ in 0..count {
                if stream.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(every);
            }
        }
        Answer::Endless(head) => {
            let _ = stream.write_all(&head);
            let chunk = vec![b'y'; 64 * 1024];
            // Bounded: 1 GiB at most, and the client stops reading long before.
            for _ in 0..16 * 1024 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
    }
}

fn url(port: u16) -> String {
    format!(
        "http://probe:{}@127.0.0.1:{port}/health?token={}",
        SECRETS[0], SECRETS[1]
    )
}

/// Run `script` (with `URL` replaced by the fault's URL) and hold it to the bar.
#[track_caller]
fn fault(answer: Answer, script: &str, timeout_ms: u64, code: i32, reason: &str) {
    let port = scripted(answer);
    let script = script.replace("URL", &url(port));
    let run = Probe::script(&script)
        .args(["--timeout", &format!("{timeout_ms}ms")])
        .run();
    run.expect(code, reason);
    let limit = Duration::from_millis(timeout_ms) + Duration::from_secs(1);
    assert!(
        run.elapsed < limit,
        "took {:?}, limit {limit:?}",
        run.elapsed
    );
    assert!(
        run.stdout.len() + run.stderr.len() < 10 * 1024,
        "output is {} bytes",
        run.stdout.len() + run.stderr.len()
    );
    for secret in SECRETS {
        assert!(
            !run.output().contains(secret),
            "{secret} leaked:\n{}",
            run.output()
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn http_1_0_body_ends_at_close() {
    fault(
        Answer::Bytes(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall good".to_vec()),
        "let r = http_get(\"URL\");\nr.status == 200 && r.body == \"all good\"",
        2000,
        0,
        "healthy",
    );
}

#[test]
fn chunked_body_is_reassembled() {
    fault(
        Answer::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nall\r\n5\r\n good\r\n0\r\n\r\n"
                .to_vec(),
        ),
        "http_get(\"URL\").body == \"all good\"",
        2000,
        0,
        "healthy",
    );
}

#[test]
fn malformed_chunk_is_a_check_error() {
    fault(
        Answer::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\nall good\r\n0\r\n\r\n"
                .to_vec(),
        ),
        "http_get(\"URL\").status == 200",
        2000,
        2,
        "reading the body after status 200: protocol: chunk length cannot be read as a number",
    );
}

#[test]
fn body_shorter_than_its_content_length_is_a_check_error() {
    fault(
        Answer::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec()),
        "http_get(\"URL\").body.len() > 0",
        2000,
        2,
        "/health?token=***: reading the body after status 200: ",
    );
}

#[test]
fn non_http_bytes_are_a_check_error() {
    fault(
        Answer::Bytes(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
        "http_get(\"URL\").status == 200",
        2000,
        2,
        "not a valid HTTP response",
    );
}

#[test]
fn headers_then_a_stalled_body_end_at_the_deadline() {
    fault(
        Answer::BytesThenStall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial".to_vec()),
        "http_get(\"URL\").status == 200",
        700,
        4,
        "deadline: the 700 ms deadline passed during GET http://probe:***@127.0.0.1:",
    );
}

#[test]
fn a_body_dripping_one_byte_at_a_time_ends_at_the_deadline() {
    fault(
        Answer::Drip(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec(),
            Duration::from_millis(20),
            10_000,
        ),
        "http_get(\"URL\").status == 200",
        700,
        4,
        "deadline",
    );
}

#[test]
fn an_endless_body_is_cut_at_max_body_and_marked_truncated() {
    fault(
        Answer::Endless(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec()),
        "let r = http_get(\"URL\");\nr.status == 200 && r.truncated && r.body.len() == 65536",
        3000,
        0,
        "healthy",
    );
}

#[test]
fn a_gzip_bomb_is_never_inflated() {
    // A body that claims gzip: it stays the bytes sent, capped like any other.
    let mut head =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    head.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00]);
    fault(
        Answer::Endless(head),
        "let r = http_get(\"URL\");\nr.status == 200 && r.truncated && r.body.len() <= 65536",
        3000,
        0,
        "healthy",
    );
}

#[test]
fn a_redirect_loop_stops_after_ten_hops() {
    fault(
        Answer::Bytes(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        "http_get(\"URL\").status == 200",
        3000,
        2,
        "redirect",
    );
}

// ---- TLS: certificates made by the test -----------------------------------------------------

/// An HTTPS server on 127.0.0.1 with this certificate and key (PEM), answering 200 to anything.
fn https_server(cert_pem: &str, key_pem: &str) -> u16 {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 2048];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

/// A self-signed certificate for `names`, valid from `from` to `until` (years).
fn certificate(names: &[&str], from: i32, until: i32) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn https_fault(cert: (String, String), host: &str, options: &str, code: i32, reason: &str) {
    let port = https_server(&cert.0, &cert.1);
    let dir = support::temp_dir(&format!("ca-{port}"));
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert.0).unwrap();
    let options = options.replace("CA", &ca.display().to_string());
    let run = Probe::script(&format!(
        "http_get(\"https://probe:{}@{host}:{port}/health?token={}\", #{{{options}}}).status == 200",
        SECRETS[0], SECRETS[1]
    ))
    .args(["--timeout", "2s"])
    .run();
    run.expect(code, reason);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    for secret in SECRETS {
        assert!(
            !run.output().contains(secret),
            "{secret} leaked:\n{}",
            run.output()
        );
    }
}

#[test]
fn tls_self_signed_fails_by_default_and_passes_with_its_ca_or_insecure() {
    let cert = || certificate(&["localhost"], 2020, 2100);
    https_fault(cert(), "localhost", "", 2, "UnknownIssuer");
    https_fault(cert(), "localhost", "insecure: true", 0, "healthy");
    https_fault(cert(), "localhost", "ca_file: \"CA\"", 0, "healthy");
}

#[test]
fn tls_expired_certificate_is_named() {
    let cert = || certificate(&["localhost"], 2020, 2021);
    https_fault(
        cert(),
        "localhost",
        "ca_file: \"CA\"",
        2,
        "TLS: invalid peer certificate: certificate expired",
    );
    https_fault(cert(), "localhost", "insecure: true", 0, "healthy");
}

#[test]
fn tls_wrong_host_name_is_named() {
    let cert = || certificate(&["db.example.invalid"], 2020, 2100);
    https_fault(
        cert(),
        "127.0.0.1",
        "ca_file: \"CA\"",
        2,
        "certificate not valid for name \"127.0.0.1\"",
    );
    https_fault(cert(), "127.0.0.1", "insecure: true", 0, "healthy");
}

#[test]
fn a_ca_file_that_is_not_there_is_the_scripts_fault() {
    let run =
        Probe::script("http_get(\"https://localhost:1/\", #{ca_file: \"/nonexistent/ca.pem\"}).ok")
            .run();
    run.expect(
        3,
        "cannot read the CA file /nonexistent/ca.pem: no such file or directory",
    );
}
