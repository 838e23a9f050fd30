//! amqp_ping, mqtt_ping, nats_ping and memcached_ping against real servers on 127.0.0.1: the
//! machine's RabbitMQ (a user and vhosts made here with rabbitmqctl, removed at the end), and
//! private Mosquitto, nats-server and memcached processes started with logins and certificates
//! made here. Every password below is in `support::TEST_SECRETS`, so each `expect` also checks
//! that none is printed.

mod support;

use std::{path::Path, process::Command, time::Duration};

use support::{black_hole, certificate_files, closed_port, start, temp_dir, Child, Probe};

const AMQP_USER: &str = "rhai_probe_app";
const AMQP_PASSWORD: &str = "Amqp-s3cret-pw";
const MQ_PASSWORD: &str = "Mq-s3cret-pw";
const NATS_PASSWORD: &str = "Nats-s3cret-pw";
const NATS_TOKEN: &str = "tok-nats-4711";
const MC_PASSWORD: &str = "Mc-s3cret-pw";

/// `check("dep", CALL)` run with a 2 s deadline: the exit code, and the verdict line must
/// contain `text`.
#[track_caller]
fn verdict(call: &str, code: i32, text: &str) -> support::Run {
    let run = Probe::script(&format!("check(\"dep\", {call})"))
        .args(["--timeout", "2s"])
        .run();
    run.expect(code, text);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    run
}

/// The faults every broker function shares: a refused port, a listener that never answers (its
/// own timeout: false; the deadline: exit 4), and a Redis server on the port.
fn common_faults(function: &str, scheme: &str, silent: &str, redis: &str) {
    verdict(
        &format!("{function}(\"{scheme}127.0.0.1:{}\")", closed_port()),
        1,
        "connection refused",
    );
    verdict(
        &format!(
            "{function}(\"{scheme}127.0.0.1:{}\", #{{timeout: \"300ms\"}})",
            black_hole()
        ),
        1,
        silent,
    );
    let run = Probe::script(&format!(
        "{function}(\"{scheme}127.0.0.1:{}\")",
        black_hole()
    ))
    .args(["--timeout", "1s"])
    .run();
    run.expect(4, "deadline: the 1.00 s deadline passed during");
    assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
    verdict(
        &format!("{function}(\"{scheme}127.0.0.1:6379\", #{{timeout: \"300ms\"}})"),
        1,
        redis,
    );
}

// ---------------------------------------------------------------------------------------------
// AMQP: the machine's RabbitMQ.

/// A user with a password, a vhost it may use and one it may not, on the machine's RabbitMQ.
struct Rabbit {
    vhost: String,
    forbidden: String,
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_user", AMQP_USER]);
        let _ = rabbitmqctl(&["delete_vhost", &self.vhost]);
        let _ = rabbitmqctl(&["delete_vhost", &self.forbidden]);
    }
}

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn rabbit() -> Option<Rabbit> {
    let pid = std::process::id();
    let rabbit = Rabbit {
        vhost: format!("probe-orders-{pid}"),
        forbidden: format!("probe-private-{pid}"),
    };
    let made = rabbitmqctl(&["add_user", AMQP_USER, AMQP_PASSWORD])
        || rabbitmqctl(&["change_password", AMQP_USER, AMQP_PASSWORD]);
    if !made {
        return None;
    }
    assert!(rabbitmqctl(&["add_vhost", &rabbit.vhost]));
    assert!(rabbitmqctl(&["add_vhost", &rabbit.forbidden]));
    assert!(rabbitmqctl(&[
        "set_permissions",
        "-p",
        &rabbit.vhost,
        AMQP_USER,
        ".*",
        ".*",
        ".*"
    ]));
    Some(rabbit)
}

#[test]
fn amqp_ping_logs_in_and_opens_the_vhost() {
    let Some(rabbit) = rabbit() else {
        return support::unavailable(
            "amqp_ping_logs_in_and_opens_the_vhost",
            "rabbitmqctl cannot reach RabbitMQ on this machine",
        );
    };
    let url = |password: &str, vhost: &str| {
        format!("amqp://{AMQP_USER}:{password}@127.0.0.1:5672/{vhost}")
    };
    verdict(
        &format!("amqp_ping(\"{}\")", url(AMQP_PASSWORD, &rabbit.vhost)),
        0,
        "healthy",
    );
    // The default vhost: `guest` may use it, from loopback.
    verdict("amqp_ping(\"amqp://guest:guest@127.0.0.1\")", 0, "healthy");
    verdict(
        &format!("amqp_ping(\"{}\")", url("wrong-amqp-pw", &rabbit.vhost)),
        1,
        "login refused: 403 ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
    );
    verdict(
        &format!("amqp_ping(\"{}\")", url(AMQP_PASSWORD, "no-such-vhost")),
        1,
        "vhost \"no-such-vhost\" refused: 530 NOT_ALLOWED - vhost no-such-vhost not found",
    );
    verdict(
        &format!("amqp_ping(\"{}\")", url(AMQP_PASSWORD, &rabbit.forbidden)),
        1,
        &format!(
            "vhost \"{0}\" refused: 530 NOT_ALLOWED - access to vhost '{0}' refused for user '{AMQP_USER}'",
            rabbit.forbidden
        ),
    );
    // The same through a URL target and `explain`, where the trace shows the call.
    Probe::command(["run", &url(AMQP_PASSWORD, &rabbit.vhost)])
        .run()
        .expect(0, "healthy");
    let run = Probe::command(["explain", &url("wrong-amqp-pw", &rabbit.vhost)]).run();
    run.expect(1, "403 ACCESS_REFUSED");
    assert!(
        run.stdout
            .contains(&format!("amqp_ping(amqp://{AMQP_USER}:***@127.0.0.1:5672/")),
        "{}",
        run.stdout
    );
    assert!(!run.output().contains("wrong-amqp-pw"), "{}", run.output());
    // amqps:// to the plain port: RabbitMQ answers the ClientHello with its protocol header.
    verdict(
        "amqp_ping(\"amqps://guest:guest@localhost:5672\", #{insecure: true})",
        1,
        "is the port serving plain AMQP? (use amqp:// for a port without TLS, usually 5672)",
    );
    common_faults(
        "amqp_ping",
        "amqp://",
        "no answer in time to the protocol header; is this an AMQP 0-9-1 server?",
        "no answer in time to the protocol header; is this an AMQP 0-9-1 server?",
    );
    drop(rabbit);
}

#[test]
fn amqp_ping_names_a_server_of_another_protocol() {
    // NATS speaks first: its INFO line is not an AMQP frame.
    let nats = nats_server(&[]);
    verdict(
        &format!("amqp_ping(\"amqp://127.0.0.1:{}\")", nats.1),
        1,
        "not an AMQP 0-9-1 server (it answered \"INFO {",
    );
    Probe::script("amqp_ping(\"http://mq\")")
        .run()
        .expect(3, "amqp_ping: http://mq: expected amqp://");
}

// ---------------------------------------------------------------------------------------------
// MQTT: private Mosquitto servers.

/// One Mosquitto with two listeners: `plain` wants a login, `tls` takes anyone over TLS.
struct Mosquitto {
    plain: Child,
    tls: u16,
    /// TLS that requires a client certificate from client-ca.pem.
    mtls: u16,
    dir: std::path::PathBuf,
}

fn mosquitto() -> Option<Mosquitto> {
    if Command::new("mosquitto_passwd").arg("-h").output().is_err() {
        return None;
    }
    // Each test its own server and files: tests run in parallel.
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("mosquitto-{n}"));
    let passwords = dir.join("passwords");
    let ok = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["app", MQ_PASSWORD])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "mosquitto_passwd failed");
    let (cert, key) = certificate_files(&dir);
    for file in [&passwords, &cert, &key] {
        let _ = Command::new("chmod").arg("644").arg(file).status();
    }
    client_certificates(&dir);
    let (plain_port, tls_port, mtls_port) = (closed_port(), closed_port(), closed_port());
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "user root\nper_listener_settings true\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous false\npassword_file {p}\n\
             listener {tls_port} 127.0.0.1\nallow_anonymous true\ncertfile {c}\nkeyfile {k}\n\
             listener {mtls_port} 127.0.0.1\nallow_anonymous true\ncertfile {c}\nkeyfile {k}\n\
             cafile {ca}\nrequire_certificate true\n",
            ca = dir.join("client-ca.pem").display(),
            p = passwords.display(),
            c = cert.display(),
            k = key.display()
        ),
    )
    .unwrap();
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&config);
    let plain = start(command, plain_port);
    let started = std::time::Instant::now();
    while !support::listening(tls_port) || !support::listening(mtls_port) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no TLS listener"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Mosquitto {
        plain,
        tls: tls_port,
        mtls: mtls_port,
        dir,
    })
}

/// In `dir`: client-ca.pem, a client certificate it signed (client.pem, client-key.pem), one
/// signed by another CA (other.pem, other-key.pem), all readable by a server that drops root.
fn client_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let make_ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(params, key))
    };
    let client = |issuer: &Issuer<'_, KeyPair>| {
        let params = CertificateParams::new(vec!["probe-client".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, issuer).unwrap().pem();
        (pem, key.serialize_pem())
    };
    let (ca_pem, ca) = make_ca("Client CA");
    let (_, other) = make_ca("Other CA");
    let (cert, key) = client(&ca);
    let (other_cert, other_key) = client(&other);
    for (name, text) in [
        ("client-ca.pem", ca_pem),
        ("client.pem", cert),
        ("client-key.pem", key),
        ("other.pem", other_cert),
        ("other-key.pem", other_key),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
        let _ = Command::new("chmod")
            .arg("644")
            .arg(dir.join(name))
            .status();
    }
}

#[test]
fn mqtts_presents_a_client_certificate() {
    let Some(m) = mosquitto() else {
        return support::unavailable(
            "mqtts_presents_a_client_certificate",
            "mosquitto is not installed",
        );
    };
    let file = |name: &str| m.dir.join(name).display().to_string();
    let url = format!("mqtts://localhost:{}", m.mtls);
    let with = |cert: &str, key: &str| {
        format!(
            "mqtt_ping(\"{url}\", #{{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}})",
            file("cert.pem"),
            file(cert),
            file(key)
        )
    };
    verdict(&with("client.pem", "client-key.pem"), 0, "healthy");
    // None, or one from a CA the broker does not trust: the broker ends the handshake.
    verdict(
        &format!(
            "mqtt_ping(\"{url}\", #{{ca_file: \"{}\"}})",
            file("cert.pem")
        ),
        1,
        "TLS failed: received fatal alert",
    );
    verdict(
        &with("other.pem", "other-key.pem"),
        1,
        "TLS failed: received fatal alert",
    );
    // A key that is not the certificate's, and one file without the other: script faults.
    Probe::script(&format!(
        "check(\"mq\", {})",
        with("client.pem", "other-key.pem")
    ))
    .run()
    .expect(
        3,
        &format!(
            "the key in {} does not match the certificate in {}",
            file("other-key.pem"),
            file("client.pem")
        ),
    );
    Probe::script(&format!(
        "mqtt_ping(\"{url}\", #{{cert_file: \"{}\"}})",
        file("client.pem")
    ))
    .run()
    .expect(3, "option 'cert_file' needs 'key_file' too");
    Probe::script(&format!(
        "mqtt_ping(\"{url}\", #{{cert_file: \"{}\", key_file: \"{}\"}})",
        file("missing.pem"),
        file("client-key.pem")
    ))
    .run()
    .expect(
        3,
        &format!(
            "cannot read the certificate file {}: no such file or directory",
            file("missing.pem")
        ),
    );
}

#[test]
fn mqtt_ping_maps_connack_codes_to_their_names() {
    let Some(m) = mosquitto() else {
        return support::unavailable(
            "mqtt_ping_maps_connack_codes_to_their_names",
            "mosquitto is not installed",
        );
    };
    let port = m.plain.1;
    for version in ["", ", #{version: 5}", ", #{version: 311}"] {
        verdict(
            &format!("mqtt_ping(\"mqtt://app:{MQ_PASSWORD}@127.0.0.1:{port}\"{version})"),
            0,
            "healthy",
        );
    }
    // Mosquitto answers a wrong password and a missing login alike: "not authorised".
    verdict(
        &format!("mqtt_ping(\"mqtt://app:wrong-mq-pw@127.0.0.1:{port}\")"),
        1,
        "connection refused: not authorised",
    );
    verdict(
        &format!("mqtt_ping(\"mqtt://127.0.0.1:{port}\")"),
        1,
        "connection refused: not authorised",
    );
    verdict(
        &format!("mqtt_ping(\"mqtt://app:wrong-mq-pw@127.0.0.1:{port}\", #{{version: 5}})"),
        1,
        "connection refused: not authorized (0x87)",
    );
    Probe::script(&format!(
        "mqtt_ping(\"mqtt://127.0.0.1:{port}\", #{{version: 3}})"
    ))
    .run()
    .expect(3, "option 'version' is 3; use 4 (MQTT 3.1.1) or 5 (MQTT 5)");
    // TLS: verified against the test's certificate, refused without it, or not verified.
    let tls = m.tls;
    let ca = m.dir.join("cert.pem");
    verdict(
        &format!(
            "mqtt_ping(\"mqtts://localhost:{tls}\", #{{ca_file: \"{}\"}})",
            ca.display()
        ),
        0,
        "healthy",
    );
    verdict(
        &format!(
            "mqtt_ping(\"mqtts://127.0.0.1:{tls}\", #{{ca_file: \"{}\", server_name: \"localhost\"}})",
            ca.display()
        ),
        0,
        "healthy",
    );
    verdict(
        &format!("mqtt_ping(\"mqtts://localhost:{tls}\")"),
        1,
        "TLS certificate rejected (UnknownIssuer)",
    );
    verdict(
        &format!("mqtt_ping(\"mqtts://localhost:{tls}\", #{{insecure: true}})"),
        0,
        "healthy",
    );
    // mqtts:// to the plain listener: Mosquitto closes on a ClientHello.
    verdict(
        &format!("mqtt_ping(\"mqtts://localhost:{port}\", #{{insecure: true}})"),
        1,
        "is the port serving plain MQTT? (use mqtt:// for a port without TLS, usually 1883)",
    );
    Probe::command(["run", &format!("mqtt://app:{MQ_PASSWORD}@127.0.0.1:{port}")])
        .run()
        .expect(0, "healthy");
    common_faults(
        "mqtt_ping",
        "mqtt://",
        "no answer in time to CONNECT; is this an MQTT broker?",
        "no answer in time to CONNECT; is this an MQTT broker?",
    );
    let nats = nats_server(&[]);
    verdict(
        &format!("mqtt_ping(\"mqtt://127.0.0.1:{}\")", nats.1),
        1,
        "not an MQTT broker (it answered \"INFO {",
    );
}

// ---------------------------------------------------------------------------------------------
// NATS: private nats-server processes.

fn nats_server(args: &[&str]) -> Child {
    let port = closed_port();
    let mut command = Command::new("nats-server");
    command
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    start(command, port)
}

#[test]
fn nats_ping_logs_in_with_a_password_or_a_token() {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return support::unavailable(
            "nats_ping_logs_in_with_a_password_or_a_token",
            "nats-server is not installed",
        );
    }
    let users = nats_server(&["--user", "app", "--pass", NATS_PASSWORD]);
    let token = nats_server(&["--auth", NATS_TOKEN]);
    let (u, t) = (users.1, token.1);
    verdict(
        &format!("nats_ping(\"nats://app:{NATS_PASSWORD}@127.0.0.1:{u}\")"),
        0,
        "healthy",
    );
    verdict(
        &format!("nats_ping(\"nats://{NATS_TOKEN}@127.0.0.1:{t}\")"),
        0,
        "healthy",
    );
    for url in [
        format!("nats://app:wrong-nats-pw@127.0.0.1:{u}"),
        format!("nats://127.0.0.1:{u}"),
        format!("nats://wrong-nats-token@127.0.0.1:{t}"),
    ] {
        let run = verdict(
            &format!("nats_ping(\"{url}\")"),
            1,
            "refused: Authorization Violation",
        );
        assert!(!run.output().contains("wrong-nats"), "{}", run.output());
    }
    // A lone token is masked where the URL is shown.
    let run = Probe::command(["explain", &format!("nats://wrong-nats-token@127.0.0.1:{t}")]).run();
    run.expect(1, "Authorization Violation");
    assert!(
        run.stdout
            .contains(&format!("nats_ping(nats://***@127.0.0.1:{t})")),
        "{}",
        run.stdout
    );
    assert!(
        !run.output().contains("wrong-nats-token"),
        "{}",
        run.output()
    );
    verdict(
        &format!("nats_ping(\"tls://127.0.0.1:{u}\")"),
        1,
        "has no TLS configured: use nats://127.0.0.1:",
    );
    common_faults(
        "nats_ping",
        "nats://",
        "no answer in time for the INFO greeting (NATS servers speak first); is this a NATS server?",
        "no answer in time for the INFO greeting (NATS servers speak first); is this a NATS server?",
    );
}

#[test]
fn nats_ping_speaks_tls_after_the_greeting() {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return support::unavailable(
            "nats_ping_speaks_tls_after_the_greeting",
            "nats-server is not installed",
        );
    }
    let dir = temp_dir("nats-tls");
    let (cert, key) = certificate_files(&dir);
    let server = nats_server(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
        "--user",
        "app",
        "--pass",
        NATS_PASSWORD,
    ]);
    let port = server.1;
    let ca = format!("#{{ca_file: \"{}\"}}", cert.display());
    verdict(
        &format!("nats_ping(\"tls://app:{NATS_PASSWORD}@localhost:{port}\", {ca})"),
        0,
        "healthy",
    );
    // A server that requires TLS gets it on a nats:// URL too, verified, as NATS clients do.
    verdict(
        &format!("nats_ping(\"nats://app:{NATS_PASSWORD}@localhost:{port}\", {ca})"),
        0,
        "healthy",
    );
    verdict(
        &format!("nats_ping(\"tls://app:{NATS_PASSWORD}@localhost:{port}\")"),
        1,
        "TLS certificate rejected (UnknownIssuer)",
    );
    // With no TLS option, the upgrade a nats:// URL gets verifies against the bundled roots.
    verdict(
        &format!("nats_ping(\"nats://app:{NATS_PASSWORD}@localhost:{port}\")"),
        1,
        "TLS certificate rejected (UnknownIssuer)",
    );
    verdict(
        &format!("nats_ping(\"tls://app:wrong-nats-pw@localhost:{port}\", #{{insecure: true}})"),
        1,
        "refused: Authorization Violation",
    );
}

// ---------------------------------------------------------------------------------------------
// Memcached: private servers, with and without an auth file, and with TLS.

fn memcached(dir: &Path, args: &[&str]) -> Child {
    let port = closed_port();
    let mut command = Command::new("memcached");
    command
        .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(args)
        .current_dir(dir);
    if support::is_root() {
        command.args(["-u", "root"]);
    }
    start(command, port)
}

#[test]
fn memcached_ping_answers_version_with_and_without_a_login() {
    if Command::new("memcached").arg("-h").output().is_err() {
        return support::unavailable(
            "memcached_ping_answers_version_with_and_without_a_login",
            "memcached is not installed",
        );
    }
    let dir = temp_dir("memcached");
    let auth = dir.join("auth");
    std::fs::write(&auth, format!("app:{MC_PASSWORD}\n")).unwrap();
    let open = memcached(&dir, &[]);
    let locked = memcached(&dir, &["-Y", auth.to_str().unwrap()]);
    let (o, l) = (open.1, locked.1);
    verdict(
        &format!("memcached_ping(\"memcached://127.0.0.1:{o}\")"),
        0,
        "healthy",
    );
    verdict(
        &format!("memcached_ping(\"memcached://app:{MC_PASSWORD}@127.0.0.1:{l}\")"),
        0,
        "healthy",
    );
    verdict(
        &format!("memcached_ping(\"memcached://app:wrong-mc-pw@127.0.0.1:{l}\")"),
        1,
        "login refused: authentication failure (user or password)",
    );
    verdict(
        &format!("memcached_ping(\"memcached://127.0.0.1:{l}\")"),
        1,
        "the server requires a login: memcached://user:password@host:port",
    );
    // A login given to a server without an auth file is never sent (it would store a key):
    // the trace says the server asks none.
    let run = Probe::command([
        "explain",
        &format!("memcached://app:{MC_PASSWORD}@127.0.0.1:{o}"),
    ])
    .run();
    run.expect(0, "healthy");
    assert!(run.stdout.contains("(it asks no login)"), "{}", run.stdout);
    common_faults(
        "memcached_ping",
        "memcached://",
        "no answer in time to version; is this a memcached server?",
        "not a memcached server (it answered \"-ERR unknown command 'version'",
    );
    // TLS, where this memcached was built with it (-Z).
    let (cert, key) = certificate_files(&dir);
    let tls = memcached(
        &dir,
        &[
            "-Z",
            "-o",
            &format!(
                "ssl_chain_cert={},ssl_key={}",
                cert.display(),
                key.display()
            ),
        ],
    );
    let ca = cert.display();
    verdict(
        &format!(
            "memcached_ping(\"memcached://localhost:{}\", #{{tls: true, ca_file: \"{ca}\"}})",
            tls.1
        ),
        0,
        "healthy",
    );
    verdict(
        &format!(
            "memcached_ping(\"memcached://localhost:{}\", #{{tls: true}})",
            tls.1
        ),
        1,
        "TLS certificate rejected (UnknownIssuer)",
    );
}

#[test]
fn nats_ping_refuses_bytes_between_the_greeting_and_tls() {
    // No real server does this; a peer that does must get a reason, not lose the bytes (or,
    // in a debug build, a panic). A listener that greets with tls_required and more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::Write;
            let _ = stream.write_all(b"INFO {\"tls_required\":true}\r\nsurplus");
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    verdict(
        &format!("nats_ping(\"nats://127.0.0.1:{port}\")"),
        1,
        "the server sent more after its greeting (\"surplus\") before TLS could start",
    );
}
