//! grpc_health and grpc_health_list against real servers on 127.0.0.1: Python's grpcio with
//! grpcio-health-checking (tests/peers/grpc_server.py), tonic's tonic-health, an HTTP/2 server
//! on python-hyper's h2 that records what it was sent or ends the call badly
//! (tests/peers/h2_peer.py), an HTTP/1.1 server, a listener that never answers, and TLS with
//! certificates made here. scripts/test-services.sh installs the Python packages into
//! target/grpc-venv.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::{black_hole, closed_port, temp_dir, Probe, Run};

/// In `support::TEST_SECRETS`: no output may show it.
const TOKEN: &str = "tok-abc-123";

fn python() -> Option<PathBuf> {
    let python = support::repo("target/grpc-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import grpc, grpc_health, h2"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// A Python peer: killed when dropped; its stdout's first line was its port.
struct Peer {
    child: std::process::Child,
    port: u16,
    out: BufReader<std::process::ChildStdout>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn start(test: &str, script: &str, args: &[&str]) -> Option<Peer> {
        let Some(python) = python() else {
            support::unavailable(
                test,
                "no target/grpc-venv with grpcio, grpcio-health-checking and h2",
            );
            return None;
        };
        let mut child = Command::new(python)
            .arg(support::repo(&format!("tests/peers/{script}")))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} did not start: {line:?}"));
        Some(Peer { child, port, out })
    }

    fn grpcio(test: &str, args: &[&str]) -> Option<Peer> {
        Peer::start(test, "grpc_server.py", args)
    }

    fn h2(test: &str, args: &[&str]) -> Option<Peer> {
        Peer::start(test, "h2_peer.py", args)
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The headers of the next request the h2 peer received.
    fn request(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a request: {line:?}"))
    }
}

/// `rhai-probe run` of `script` with a 3 s deadline; `args` after.
fn run(script: &str, args: &[&str]) -> Run {
    Probe::script(script)
        .args(["--timeout", "3s"])
        .args(args.iter().copied())
        .run()
}

#[track_caller]
fn expect(script: &str, code: i32, text: &str) -> Run {
    let run = run(script, &[]);
    run.expect(code, text);
    run
}

#[test]
fn grpcio_serving_not_serving_unknown_and_no_such_service_are_each_named() {
    let Some(peer) = Peer::grpcio("grpcio_serving…", &[]) else {
        return;
    };
    let t = peer.target();
    expect(&format!("grpc_health(\"{t}\")"), 0, "healthy");
    let down = expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"down\" }})"),
        1,
        "NOT_SERVING",
    );
    let unset = expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"unset\" }})"),
        1,
        "UNKNOWN",
    );
    let missing = expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"nosuch.v1.Nothing\" }})"),
        1,
        "NOT_FOUND",
    );
    assert!(
        missing.stdout.contains("\"nosuch.v1.Nothing\""),
        "{}",
        missing.stdout
    );
    // Each reason is its own: none of the other names appears in a verdict.
    assert!(!down.stdout.contains("UNKNOWN") && !down.stdout.contains("NOT_FOUND"));
    assert!(!unset.stdout.contains("NOT_SERVING") && !unset.stdout.contains("NOT_FOUND"));
    assert!(!missing.stdout.contains("NOT_SERVING") && !missing.stdout.contains("UNKNOWN"));
    // The service by a grpc:// target's path, and the URL target of `run` and `wait`.
    expect(
        &format!("grpc_health(\"grpc://{t}/down\")"),
        1,
        "NOT_SERVING",
    );
    Probe::command(["run", "--timeout", "3s", &format!("grpc://{t}")])
        .run()
        .expect(0, "healthy");
    Probe::command(["wait", "--for", "1s", &format!("grpc://{t}/down")])
        .run()
        .expect(124, "service \"down\" -> NOT_SERVING");
}

#[test]
fn explain_shows_the_call_and_the_status() {
    let Some(peer) = Peer::grpcio("explain_shows…", &[]) else {
        return;
    };
    let t = peer.target();
    let run = Probe::script(&format!("grpc_health(\"{t}\")"))
        .command_name("explain")
        .run();
    run.expect(0, "");
    let row = format!("gRPC {t} service \"\"");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains(&row) && l.contains("SERVING") && l.contains("probe.rhai:1:1")),
        "{}",
        run.output()
    );
}

#[test]
fn a_server_without_the_health_service_is_unimplemented() {
    let Some(peer) = Peer::grpcio("a_server_without…", &["--no-health"]) else {
        return;
    };
    expect(
        &format!("grpc_health(\"{}\")", peer.target()),
        1,
        "UNIMPLEMENTED",
    );
}

#[test]
fn list_maps_every_service_or_says_the_server_lacks_list() {
    let Some(peer) = Peer::grpcio("list_maps…", &["--list"]) else {
        return;
    };
    let t = peer.target();
    expect(
        &format!(
            "let m = grpc_health_list(\"{t}\"); \
             m[\"\"] == \"SERVING\" && m.down == \"NOT_SERVING\" && m.unset == \"UNKNOWN\" && m.len() == 3"
        ),
        0,
        "healthy",
    );
    // grpcio's own servicer leaves List unimplemented: a catchable error that says so.
    let Some(plain) = Peer::grpcio("list_maps…", &[]) else {
        return;
    };
    let run = expect(
        &format!("grpc_health_list(\"{}\").len() > 0", plain.target()),
        2,
        "does not implement grpc.health.v1.Health/List",
    );
    assert!(run.stdout.contains("grpc_health(target"), "{}", run.stdout);
    expect(
        &format!(
            "let said = \"\"; try {{ grpc_health_list(\"{}\"); }} catch (e) {{ said = \"\" + e; }} said.contains(\"UNIMPLEMENTED\")",
            plain.target()
        ),
        0,
        "healthy",
    );
}

/// A tonic-health server on its own runtime, serving "" and "orders" SERVING, "billing"
/// NOT_SERVING. Returns its port.
fn tonic_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (reporter, service) = tonic_health::server::health_reporter();
            reporter
                .set_service_status("orders", tonic_health::ServingStatus::Serving)
                .await;
            reporter
                .set_service_status("billing", tonic_health::ServingStatus::NotServing)
                .await;
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    });
    port
}

#[test]
fn tonic_health_serving_not_serving_not_found_and_no_list() {
    let t = format!("127.0.0.1:{}", tonic_server());
    expect(&format!("grpc_health(\"{t}\")"), 0, "healthy");
    expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"orders\" }})"),
        0,
        "healthy",
    );
    expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"billing\" }})"),
        1,
        "NOT_SERVING",
    );
    expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"nosuch\" }})"),
        1,
        "NOT_FOUND",
    );
    expect(
        &format!("grpc_health_list(\"{t}\").len() > 0"),
        2,
        "does not implement grpc.health.v1.Health/List",
    );
}

#[test]
fn metadata_authority_user_agent_and_grpc_timeout_reach_the_server() {
    let Some(mut peer) = Peer::h2("metadata…", &["serving"]) else {
        return;
    };
    let t = peer.target();
    let run = run(
        &format!(
            "grpc_health(\"{t}\", #{{ headers: #{{ Authorization: \"Bearer {TOKEN}\", \"x-team\": \"payments\" }}, \
             authority: \"orders.internal:443\", user_agent: \"kubelet-ish/1\" }})"
        ),
        &[],
    );
    run.expect(0, "healthy");
    let seen = peer.request();
    assert_eq!(seen[":method"], "POST");
    assert_eq!(seen[":scheme"], "http");
    assert_eq!(seen[":path"], "/grpc.health.v1.Health/Check");
    assert_eq!(seen[":authority"], "orders.internal:443");
    assert_eq!(seen["content-type"], "application/grpc");
    assert_eq!(seen["te"], "trailers");
    assert_eq!(seen["user-agent"], "kubelet-ish/1");
    assert_eq!(seen["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen["x-team"], "payments");
    // What is left of the 3 s deadline, in milliseconds.
    let timeout = seen["grpc-timeout"].as_str().unwrap();
    let ms: u64 = timeout.strip_suffix('m').unwrap().parse().unwrap();
    assert!((1..=3000).contains(&ms), "{timeout}");
    // Defaults: the target as authority, this program as user agent.
    run_ok(&format!("grpc_health(\"{t}\")"));
    let seen = peer.request();
    assert_eq!(seen[":authority"], t);
    assert!(seen["user-agent"]
        .as_str()
        .unwrap()
        .starts_with("rhai-probe/"));
}

#[track_caller]
fn run_ok(script: &str) {
    run(script, &[]).expect(0, "healthy");
}

#[test]
fn grpcio_sees_the_metadata_and_no_output_shows_the_token() {
    let Some(peer) = Peer::grpcio("grpcio_sees…", &["--token", TOKEN]) else {
        return;
    };
    let t = peer.target();
    let call = format!(
        "grpc_health(\"{t}\", #{{ service: \"token\", headers: #{{ authorization: \"Bearer {TOKEN}\" }} }})"
    );
    expect(&call, 0, "healthy");
    let explain = Probe::script(&call).command_name("explain").run();
    explain.expect(0, "");
    expect(
        &format!("grpc_health(\"{t}\", #{{ service: \"token\", headers: #{{ authorization: \"Bearer {TOKEN}x\" }} }})"),
        1,
        "NOT_SERVING",
    );
}

#[test]
fn transport_failures_throw_and_name_what_failed() {
    // Refused.
    expect(
        &format!("grpc_health(\"127.0.0.1:{}\")", closed_port()),
        2,
        "connection refused",
    );
    // An HTTP/1.1 server.
    let http = support::http_server().trim_start_matches("http://");
    expect(
        &format!("grpc_health(\"{http}\")"),
        2,
        "not an HTTP/2 server",
    );
    // Caught like any other host function's error.
    expect(
        &format!(
            "let caught = false; try {{ grpc_health(\"127.0.0.1:{}\"); }} catch {{ caught = true; }} caught",
            closed_port()
        ),
        0,
        "healthy",
    );
}

#[test]
fn goaway_and_a_reset_stream_are_errors_naming_the_code() {
    let Some(goaway) = Peer::h2("goaway…", &["goaway"]) else {
        return;
    };
    let run = expect(
        &format!("grpc_health(\"{}\")", goaway.target()),
        2,
        "GOAWAY (ENHANCE_YOUR_CALM",
    );
    assert!(run.stdout.contains("too_many_pings"), "{}", run.stdout);
    let Some(reset) = Peer::h2("goaway…", &["reset"]) else {
        return;
    };
    expect(
        &format!("grpc_health(\"{}\")", reset.target()),
        2,
        "RST_STREAM REFUSED_STREAM",
    );
}

#[test]
fn pings_are_answered_and_long_header_blocks_read() {
    // The server answers only once its PING is acknowledged.
    let Some(ping) = Peer::h2("pings…", &["ping"]) else {
        return;
    };
    expect(&format!("grpc_health(\"{}\")", ping.target()), 0, "healthy");
    // 40 KB of headers: HEADERS and CONTINUATION frames, Huffman-coded by the peer.
    let Some(big) = Peer::h2("pings…", &["big-headers"]) else {
        return;
    };
    expect(&format!("grpc_health(\"{}\")", big.target()), 0, "healthy");
    let Some(compressed) = Peer::h2("pings…", &["compressed"]) else {
        return;
    };
    expect(
        &format!("grpc_health(\"{}\")", compressed.target()),
        2,
        "compressed its answer (gzip)",
    );
}

#[test]
fn a_silent_server_meets_the_deadline_or_the_timeout() {
    let t = format!("127.0.0.1:{}", black_hole());
    let deadline = Probe::script(&format!("grpc_health(\"{t}\")"))
        .args(["--timeout", "1s"])
        .run();
    deadline.expect(4, "");
    assert!(
        deadline.elapsed < Duration::from_secs(2),
        "{:?}",
        deadline.elapsed
    );
    // Its own shorter timeout: a transport error naming the silence.
    let own = expect(
        &format!("grpc_health(\"{t}\", #{{ timeout: \"300ms\" }})"),
        2,
        "no answer in time to the HTTP/2 preface",
    );
    assert!(own.elapsed < Duration::from_secs(2), "{:?}", own.elapsed);
}

#[test]
fn unix_sockets_and_ipv6_loopback() {
    let dir = temp_dir("grpc-unix");
    let path = dir.join("app.sock");
    let _ = std::fs::remove_file(&path);
    let Some(_peer) = Peer::grpcio("unix_sockets…", &["--unix", path.to_str().unwrap()]) else {
        return;
    };
    expect(
        &format!("grpc_health(\"unix:{}\")", path.display()),
        0,
        "healthy",
    );
    expect(
        &format!(
            "grpc_health(\"unix://{}\", #{{ service: \"down\" }})",
            path.display()
        ),
        1,
        "NOT_SERVING",
    );
    expect(
        &format!("grpc_health(\"unix:{}/none.sock\")", dir.display()),
        2,
        "no such file",
    );
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED the IPv6 half of unix_sockets_and_ipv6_loopback: no IPv6 loopback");
        return;
    }
    let Some(v6) = Peer::grpcio("unix_sockets…", &["--host", "::1"]) else {
        return;
    };
    expect(&format!("grpc_health(\"[::1]:{}\")", v6.port), 0, "healthy");
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// Certificates for the TLS tests, in one directory: a private CA; server certificates it
/// signs for localhost/127.0.0.1 (`good`), for another name (`wrong`), and expired; a
/// self-signed one; and a client certificate the CA signs.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = temp_dir(name);
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "gRPC test CA");
        let ca_key = KeyPair::generate().unwrap();
        std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |file: &str, names: &[&str], days: i64, signed: bool| {
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params.not_before = days_from_now(-30);
            params.not_after = days_from_now(days);
            let key = KeyPair::generate().unwrap();
            let cert = match signed {
                true => params.signed_by(&key, &issuer).unwrap(),
                false => params.self_signed(&key).unwrap(),
            };
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem()).unwrap();
        };
        leaf("good", &["localhost", "127.0.0.1"], 365, true);
        leaf("wrong", &["other.example"], 365, true);
        leaf("expired", &["localhost", "127.0.0.1"], -1, true);
        leaf("self", &["localhost", "127.0.0.1"], 365, false);
        leaf("client", &["probe-client"], 365, true);
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// `--tls CERT KEY` for the server certificate `name`.
    fn server_args(&self, name: &str) -> Vec<String> {
        vec![
            "--tls".into(),
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}-key.pem")),
        ]
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn tls_verifies_by_default_with_a_private_ca_wrong_name_expired_and_self_signed() {
    let pki = Pki::new("grpc-tls");
    let ca = pki.path("ca.pem");
    let Some(good) = Peer::grpcio("tls_verifies…", &strs(&pki.server_args("good"))) else {
        return;
    };
    let t = good.target();
    // The bundled roots do not know the private CA.
    expect(
        &format!("grpc_health(\"{t}\", #{{ tls: true }})"),
        2,
        "certificate rejected",
    );
    expect(
        &format!("grpc_health(\"{t}\", #{{ tls: true, ca_file: \"{ca}\" }})"),
        0,
        "healthy",
    );
    expect(
        &format!("grpc_health(\"grpcs://{t}\", #{{ ca_file: \"{ca}\", service: \"down\" }})"),
        1,
        "NOT_SERVING",
    );
    // Plain text to a TLS port, TLS to a plain one: each says what to change.
    expect(&format!("grpc_health(\"{t}\")"), 2, "tls: true");
    let Some(plain) = Peer::grpcio("tls_verifies…", &[]) else {
        return;
    };
    expect(
        &format!("grpc_health(\"{}\", #{{ tls: true }})", plain.target()),
        2,
        "plain gRPC",
    );

    let Some(wrong) = Peer::grpcio("tls_verifies…", &strs(&pki.server_args("wrong"))) else {
        return;
    };
    let w = wrong.target();
    expect(
        &format!("grpc_health(\"{w}\", #{{ tls: true, ca_file: \"{ca}\" }})"),
        2,
        "NotValidForName",
    );
    expect(
        &format!(
            "grpc_health(\"{w}\", #{{ tls: true, ca_file: \"{ca}\", server_name: \"other.example\" }})"
        ),
        0,
        "healthy",
    );

    let Some(expired) = Peer::grpcio("tls_verifies…", &strs(&pki.server_args("expired"))) else {
        return;
    };
    let e = expired.target();
    expect(
        &format!("grpc_health(\"{e}\", #{{ tls: true, ca_file: \"{ca}\" }})"),
        2,
        "Expired",
    );
    expect(
        &format!("grpc_health(\"{e}\", #{{ tls: true, insecure: true }})"),
        0,
        "healthy",
    );

    let Some(selfsigned) = Peer::grpcio("tls_verifies…", &strs(&pki.server_args("self"))) else {
        return;
    };
    let s = selfsigned.target();
    expect(
        &format!("grpc_health(\"{s}\", #{{ tls: true }})"),
        2,
        "certificate rejected",
    );
    expect(
        &format!(
            "grpc_health(\"{s}\", #{{ tls: true, ca_file: \"{}\" }})",
            pki.path("self.pem")
        ),
        0,
        "healthy",
    );
}

#[test]
fn mtls_rejects_a_call_without_a_client_certificate() {
    let pki = Pki::new("grpc-mtls");
    let ca = pki.path("ca.pem");
    let mut args = pki.server_args("good");
    args.extend(["--client-ca".into(), ca.clone()]);
    let Some(peer) = Peer::grpcio("mtls…", &strs(&args)) else {
        return;
    };
    let t = peer.target();
    let without = run(
        &format!("grpc_health(\"{t}\", #{{ tls: true, ca_file: \"{ca}\" }})"),
        &[],
    );
    assert_eq!(without.code, 2, "{}", without.output());
    let with = format!(
        "grpc_health(\"{t}\", #{{ tls: true, ca_file: \"{ca}\", cert_file: \"{}\", key_file: \"{}\" }})",
        pki.path("client.pem"),
        pki.path("client-key.pem")
    );
    expect(&with, 0, "healthy");
}

#[test]
fn a_tls_server_without_alpn_h2_is_refused() {
    let pki = Pki::new("grpc-alpn");
    let mut args = vec!["serving".to_string()];
    args.extend(pki.server_args("good"));
    let Some(mut peer) = Peer::h2("a_tls_server_without_alpn…", &strs(&args)) else {
        return;
    };
    expect(
        &format!(
            "grpc_health(\"{}\", #{{ tls: true, ca_file: \"{}\" }})",
            peer.target(),
            pki.path("ca.pem")
        ),
        2,
        "did not agree to HTTP/2",
    );
    // Nothing was sent over it: the peer, which prints each request it gets, printed none.
    let _ = peer.child.kill();
    let _ = peer.child.wait();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut peer.out, &mut rest);
    assert!(rest.is_empty(), "{rest}");
}

#[test]
fn bad_arguments_are_script_faults() {
    for (call, text) in [
        ("grpc_health(\"db\")", "has no port"),
        ("grpc_health(\"::1:50051\")", "needs brackets"),
        (
            "grpc_health(\"h:1\", #{ ca_file: \"/x\" })",
            "add tls: true",
        ),
        ("grpc_health(\"grpcs://h\", #{ tls: false })", "contradicts"),
        (
            "grpc_health(\"h:1\", #{ headers: #{ te: \"x\" } })",
            "set by the gRPC protocol",
        ),
        (
            "grpc_health(\"h:1\", #{ headers: #{ host: \"x\" } })",
            "set `authority` instead",
        ),
        ("grpc_health(\"h:1\", #{ servce: \"x\" })", "servce"),
        (
            "grpc_health_list(\"h:1\", #{ service: \"x\" })",
            "unknown option",
        ),
        ("grpc_health_list(\"grpc://h:1/orders\")", "use grpc_health"),
        (
            "grpc_health(\"h:1\", #{ tls: true, insecure: true, ca_file: \"/x\" })",
            "one or the other",
        ),
    ] {
        let run = run(call, &[]);
        assert_eq!(run.code, 3, "{call}: {}", run.output());
        assert!(run.output().contains(text), "{call}: {}", run.output());
        assert!(
            run.output().contains("probe.rhai:1:"),
            "{call}: {}",
            run.output()
        );
    }
}

#[test]
fn the_lint_stubs_and_permissions_know_the_functions() {
    let dir = temp_dir("grpc-authoring");
    let script = dir.join("probe.rhai");
    std::fs::write(&script, "grpc_health(\"api:50051\", #{ servce: \"x\" })\n").unwrap();
    let check = Probe::command(["check", script.to_str().unwrap()]).run();
    assert_ne!(check.code, 0, "{}", check.output());
    assert!(check.output().contains("servce"), "{}", check.output());
    assert!(
        check.output().contains("service"),
        "did you mean: {}",
        check.output()
    );

    std::fs::write(
        &script,
        "grpc_health(\"api:50051\") && grpc_health(\"unix:/run/app.sock\")\n",
    )
    .unwrap();
    let perms = Probe::command(["check", "--permissions", script.to_str().unwrap()]).run();
    assert!(perms.output().contains("api:50051"), "{}", perms.output());
    assert!(
        perms.output().contains("/run/app.sock"),
        "{}",
        perms.output()
    );

    // Denied before any connection: the listener it names has nothing to accept afterwards.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let denied = run(
        &format!(
            "grpc_health(\"127.0.0.1:{}\")",
            listener.local_addr().unwrap().port()
        ),
        &["--allow-net", "db:5432"],
    );
    assert_eq!(denied.code, 3, "{}", denied.output());
    assert!(
        denied.output().contains("--allow-net"),
        "{}",
        denied.output()
    );
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a denied call connected"
    );
    let Some(peer) = Peer::grpcio("the_lint…", &[]) else {
        return;
    };
    run(
        &format!("grpc_health(\"{}\")", peer.target()),
        &["--allow-net", &peer.target()],
    )
    .expect(0, "healthy");
}

#[test]
fn functions_lists_them() {
    let run = Probe::command(["functions"]).run();
    assert!(run.stdout.contains("grpc_health("), "{}", run.stdout);
    assert!(run.stdout.contains("grpc_health_list("), "{}", run.stdout);
}

#[test]
fn test_cases_stub_both_functions() {
    let dir = temp_dir("grpc-stubs");
    let script = dir.join("probe.rhai");
    std::fs::write(
        &script,
        "check(\"grpc\", grpc_health(\"api:50051\"));\ngrpc_health_list(\"api:50051\")[\"\"] == \"SERVING\"\n",
    )
    .unwrap();
    let init = Probe::command(["test", "--init", script.to_str().unwrap()]).run();
    assert_eq!(init.code, 0, "{}", init.output());
    assert!(
        init.stdout.contains("grpc_health = true"),
        "{}",
        init.stdout
    );
    assert!(init.stdout.contains("grpc_health_list"), "{}", init.stdout);
    std::fs::write(dir.join("probe.cases.toml"), &init.stdout).unwrap();
    let test = Probe::command(["test", script.to_str().unwrap()]).run();
    assert_eq!(test.code, 0, "{}", test.output());
    assert!(test.stdout.contains("2 passed"), "{}", test.stdout);
    // A case whose stub says NOT_SERVING is unhealthy.
    std::fs::write(
        dir.join("probe.cases.toml"),
        "[[case]]\nname = \"list says down\"\nexpect = \"unhealthy\"\n[case.stubs]\ngrpc_health = true\ngrpc_health_list = { \"\" = \"NOT_SERVING\" }\n",
    )
    .unwrap();
    let test = Probe::command(["test", script.to_str().unwrap()]).run();
    assert_eq!(test.code, 0, "{}", test.output());
}
