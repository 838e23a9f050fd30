//! sql_ping and sql_scalar against real servers: the shared PostgreSQL and MariaDB on
//! 127.0.0.1 (trust / empty root password), and two private PostgreSQL servers the tests start
//! from the installed binaries, where a password matters and TLS is off or on with our own CA.
//! Every case also runs with `--format json`, `-vv` and a log file, and no password may appear
//! in any of it.

mod support;

use std::time::Duration;

use support::{
    black_hole, closed_port, mysql_password_user, private_pg, shared_mysql, shared_pg, temp_dir,
    Probe, Run, MY_PASSWORD, PG_PASSWORD, PG_USER,
};

const WRONG: &str = "wrong-pw-123";

/// Run `script` as text (with `-vv` and a log file) and as JSON; neither, nor the log, may
/// hold a password. Returns the text run.
fn run(script: &str, extra: &[&str]) -> Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("sql-{}-{n}", std::process::id()));
    let log = dir.join("probe.log").display().to_string();
    let text = Probe::script(script)
        .args(["-vv", "--log-file", &log])
        .args(extra.iter().copied())
        .run();
    let json = Probe::script(script)
        .args(["--format", "json"])
        .args(extra.iter().copied())
        .run();
    assert_eq!(text.code, json.code, "{}\n{}", text.output(), json.output());
    let all = text.output() + &json.output() + &std::fs::read_to_string(&log).unwrap_or_default();
    for secret in [PG_PASSWORD, MY_PASSWORD, WRONG] {
        assert!(!all.contains(secret), "{secret} leaked by {script}:\n{all}");
    }
    text
}

fn pg(port: u16, password: &str, rest: &str) -> String {
    format!("postgres://{PG_USER}:{password}@127.0.0.1:{port}/{rest}")
}

fn my_pw(password: &str, rest: &str) -> String {
    format!(
        "mysql://{}:{password}@127.0.0.1:3306/{rest}",
        mysql_password_user()
    )
}

// ---- PostgreSQL ---------------------------------------------------------------------------------

#[test]
fn pg_ping_with_the_right_password() {
    let p = private_pg();
    run(
        &format!("sql_ping(\"{}\")", pg(p.plain, PG_PASSWORD, "postgres")),
        &[],
    )
    .expect(0, "healthy");
    // libpq's key=value form, and the unix socket the server listens on.
    let conninfo = format!(
        "host=127.0.0.1 port={} user={PG_USER} password='{PG_PASSWORD}' dbname=postgres",
        p.plain
    );
    run(&format!("sql_ping(\"{conninfo}\")"), &[]).expect(0, "healthy");
    let socket = format!(
        "postgresql://{PG_USER}:{PG_PASSWORD}@{}:{}/postgres",
        p.socket_dir.replace('/', "%2F"),
        p.plain
    );
    run(&format!("sql_ping(\"{socket}\")"), &[]).expect(0, "healthy");
    // Several hosts are tried in order, as libpq does: the first refuses, the second answers.
    let hosts = format!(
        "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{},127.0.0.1:{}/postgres",
        closed_port(),
        p.plain
    );
    run(&format!("sql_ping(\"{hosts}\")"), &[]).expect(0, "healthy");
    let query = format!(
        "host={} port={} user={PG_USER} password={PG_PASSWORD} dbname=postgres",
        p.socket_dir, p.plain
    );
    run(&format!("sql_ping(\"{query}\")"), &[]).expect(0, "healthy");
}

#[test]
fn pg_wrong_password_is_false_with_the_reason() {
    let p = private_pg();
    let dsn = pg(p.plain, WRONG, "postgres");
    run(&format!("sql_ping(\"{dsn}\")"), &[])
        .expect(1, &format!("sql_ping(postgres://{PG_USER}:***@127.0.0.1:{}/postgres) -> password authentication failed for user \"{PG_USER}\" (SQLSTATE 28P01)", p.plain));
    // The same through check(), and a throw from sql_scalar.
    run(&format!("check(\"db\", sql_ping(\"{dsn}\"))"), &[])
        .expect(1, "check \"db\" failed: sql_ping(")
        .expect(1, "28P01");
    run(&format!("sql_scalar(\"{dsn}\", \"SELECT 1\") == 1"), &[])
        .expect(2, "password authentication failed");
}

#[test]
fn pg_unknown_database_and_unknown_user() {
    let p = private_pg();
    run(
        &format!("sql_ping(\"{}\")", pg(p.plain, PG_PASSWORD, "nope")),
        &[],
    )
    .expect(1, "database \"nope\" does not exist (SQLSTATE 3D000)");
    run(
        &format!(
            "sql_ping(\"postgres://nobody@127.0.0.1:{}/postgres\")",
            p.plain
        ),
        &[],
    )
    .expect(1, "the server asks for a password, and the DSN has none");
    // On the shared server (trust), an unknown role is named as such.
    let shared = shared_pg().replacen("://postgres@", "://no_such_role@", 1);
    run(&format!("sql_ping(\"{shared}\")"), &[])
        .expect(1, "role \"no_such_role\" does not exist (SQLSTATE 28000)");
}

#[test]
fn pg_closed_port_is_a_fast_false() {
    let dsn = format!(
        "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/x",
        closed_port()
    );
    let r = run(&format!("sql_ping(\"{dsn}\")"), &["--timeout", "5s"]);
    r.expect(1, "connection refused");
    assert!(r.elapsed < Duration::from_secs(4), "{:?}", r.elapsed);
}

#[test]
fn a_server_that_never_answers_is_false_at_the_timeout() {
    for scheme in ["postgres", "mysql"] {
        let dsn = format!("{scheme}://u:{WRONG}@127.0.0.1:{}/x", black_hole());
        let r = run(
            &format!("sql_ping(\"{dsn}\", #{{timeout: \"300ms\"}})"),
            &["--timeout", "3s"],
        );
        r.expect(1, "timed out after 300 ms");
        assert!(
            r.elapsed < Duration::from_secs(3) + Duration::from_secs(1),
            "{:?}",
            r.elapsed
        );
        // Without its own timeout the call takes the probe's deadline, and says so.
        let r = run(&format!("sql_ping(\"{dsn}\")"), &["--timeout", "500ms"]);
        r.expect(4, "deadline passed during sql_ping(");
        assert!(
            r.elapsed < Duration::from_millis(500) + Duration::from_secs(1),
            "{:?}",
            r.elapsed
        );
    }
}

#[test]
fn connect_timeout_in_the_dsn_caps_the_call() {
    for scheme in ["postgres", "mysql"] {
        let dsn = format!(
            "{scheme}://u:{WRONG}@127.0.0.1:{}/x?connect_timeout=1",
            black_hole()
        );
        let r = run(&format!("sql_ping(\"{dsn}\")"), &["--timeout", "4s"]);
        r.expect(1, "timed out after 1.00 s");
        assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    }
}

#[test]
fn pg_tls_modes() {
    let p = private_pg();
    let ca = p.ca.display().to_string();
    let at = |host: &str, port: u16, params: &str| {
        format!("postgres://{PG_USER}:{PG_PASSWORD}@{host}:{port}/postgres?{params}")
    };
    // No TLS on the plain server: require fails, prefer and disable pass.
    run(
        &format!(
            "sql_ping(\"{}\")",
            at("127.0.0.1", p.plain, "sslmode=require")
        ),
        &[],
    )
    .expect(
        1,
        "the server does not support TLS, and sslmode=require requires it",
    );
    for mode in ["prefer", "disable", "allow"] {
        run(
            &format!(
                "sql_ping(\"{}\")",
                at("127.0.0.1", p.plain, &format!("sslmode={mode}"))
            ),
            &[],
        )
        .expect(0, "healthy");
    }
    // TLS with a certificate for localhost from our CA.
    let ok = |dsn: String| {
        run(&format!("sql_ping(\"{dsn}\")"), &[])
            .expect(0, "healthy")
            .code
    };
    ok(at("127.0.0.1", p.tls, "sslmode=require"));
    ok(at("127.0.0.1", p.tls, "sslmode=prefer"));
    ok(at(
        "127.0.0.1",
        p.tls,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ));
    ok(at(
        "localhost",
        p.tls,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    // As libpq: require with a CA file verifies the chain (not the name).
    ok(at(
        "127.0.0.1",
        p.tls,
        &format!("sslmode=require&sslrootcert={ca}"),
    ));
    let other_ca = support::repo("tests/data/unrelated-ca.pem")
        .display()
        .to_string();
    run(
        &format!(
            "sql_ping(\"{}\")",
            at(
                "127.0.0.1",
                p.tls,
                &format!("sslmode=require&sslrootcert={other_ca}")
            )
        ),
        &[],
    )
    .expect(1, "TLS certificate rejected (");
    // Verified against the bundled roots, our CA is unknown.
    run(
        &format!(
            "sql_ping(\"{}\")",
            at("localhost", p.tls, "sslmode=verify-full")
        ),
        &[],
    )
    .expect(
        1,
        "TLS certificate rejected (UnknownIssuer): give the server's CA with sslrootcert=",
    );
    // The certificate names localhost, not 127.0.0.1.
    run(
        &format!(
            "sql_ping(\"{}\")",
            at(
                "127.0.0.1",
                p.tls,
                &format!("sslmode=verify-full&sslrootcert={ca}")
            )
        ),
        &[],
    )
    .expect(1, "TLS certificate rejected (NotValidForName")
    .expect(1, "or use sslmode=verify-ca");
    // A CA file that is not there is the script's mistake.
    run(
        &format!(
            "sql_ping(\"{}\")",
            at(
                "localhost",
                p.tls,
                "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
            )
        ),
        &[],
    )
    .expect(
        3,
        "cannot read the CA file /nonexistent/ca.pem: no such file or directory",
    );
}

#[test]
fn pg_client_certificates() {
    let p = private_pg();
    let ca = p.ca.display().to_string();
    // Database template1 on the TLS server wants a certificate signed by our CA, and the password.
    let dsn = |extra: &str| {
        format!(
            "postgres://{PG_USER}:{PG_PASSWORD}@localhost:{}/template1?sslmode=verify-full&sslrootcert={ca}{extra}",
            p.tls
        )
    };
    let ping = |extra: &str| run(&format!("sql_ping(\"{}\")", dsn(extra)), &[]);
    let (cert, key) = (p.client.0.display(), p.client.1.display());
    let (stranger, stranger_key) = (p.stranger.0.display(), p.stranger.1.display());
    ping("").expect(1, "connection requires a valid client certificate");
    ping(&format!("&sslcert={stranger}&sslkey={stranger_key}"))
        .expect(1, "is sslcert signed by a CA it trusts?");
    ping(&format!("&sslcert={cert}&sslkey={key}")).expect(0, "healthy");
    // A key that is not the certificate's, and half a pair: the script's fault.
    ping(&format!("&sslcert={cert}&sslkey={stranger_key}")).expect(
        3,
        &format!("the key in {stranger_key} does not match the certificate in {cert}"),
    );
    ping(&format!("&sslcert={cert}")).expect(3, "sslcert needs sslkey too");
}

#[test]
fn mysql_client_certificates() {
    let m = support::private_mariadb();
    let ca = m.ca.display().to_string();
    let user = support::MY_X509_USER;
    let ping = |params: &str| {
        run(
            &format!(
                "sql_ping(\"mysql://{user}@localhost:{}/?{params}\")",
                m.port
            ),
            &[],
        )
    };
    let verified = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}");
    let (cert, key) = (m.client.0.display(), m.client.1.display());
    let (stranger, stranger_key) = (m.stranger.0.display(), m.stranger.1.display());
    // The account requires X509: TLS without a certificate is refused by the server.
    ping(&verified).expect(1, "Access denied for user 'probe_x509'");
    ping(&format!("{verified}&ssl-cert={stranger}&ssl-key={stranger_key}")).expect(1, "received fatal alert: UnknownCA (the server refused the handshake: if it checks client certificates, is ssl-cert signed by a CA it trusts?)");
    ping(&format!("{verified}&ssl-cert={cert}&ssl-key={key}")).expect(0, "healthy");
    // A client certificate implies TLS, as for the mysql and mariadb clients.
    ping(&format!("ssl-cert={cert}&ssl-key={key}")).expect(0, "healthy");
    ping(&format!(
        "{verified}&ssl-cert={cert}&ssl-key={stranger_key}"
    ))
    .expect(
        3,
        &format!("the key in {stranger_key} does not match the certificate in {cert}"),
    );
    ping(&format!("ssl-key={key}")).expect(3, "ssl-key needs ssl-cert too");
}

#[test]
fn pg_connection_is_closed_cleanly() {
    let p = private_pg();
    let marker = format!("clean-close-{}", std::process::id());
    let dsn = format!(
        "{}?application_name={marker}",
        pg(p.plain, PG_PASSWORD, "postgres")
    );
    run(
        &format!("sql_ping(\"{dsn}\") && sql_scalar(\"{dsn}\", \"SELECT 1\") == 1"),
        &[],
    )
    .expect(0, "healthy");
    // The server logs the disconnection of each session, and no EOF without Terminate.
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(!log.contains("unexpected EOF"), "{log}");
    assert!(!log.contains("could not receive data from client"), "{log}");
    assert!(log.contains("disconnection: session time"), "{log}");
}

#[test]
fn pg_scalar_types() {
    let dsn = shared_pg();
    for (query, expect) in [
        ("SELECT 42", "type_of(v) == \"i64\" && v == 42"),
        ("SELECT 42::int2", "v == 42"),
        ("SELECT 9000000000::int8", "v == 9000000000"),
        ("SELECT 2.5::float8", "type_of(v) == \"f64\" && v == 2.5"),
        ("SELECT 0.25::float4", "v == 0.25"),
        ("SELECT 1.50::numeric", "v == 1.5"),
        (
            "SELECT 123456789012::numeric",
            "type_of(v) == \"i64\" && v == 123456789012",
        ),
        (
            "SELECT extract(epoch from now())",
            "type_of(v) == \"f64\" && v > 1700000000.0",
        ),
        ("SELECT pg_is_in_recovery()", "v == false"),
        ("SELECT true", "v == true"),
        ("SELECT 'héllo'::text", "v == \"héllo\""),
        ("SELECT 'x'::varchar(3)", "v == \"x\""),
        ("SELECT current_user", "v == \"postgres\""),
        ("SELECT '{\\\"a\\\": 1}'::jsonb", "json(v).a == 1"),
        ("SELECT NULL", "v == ()"),
        ("SELECT 1 WHERE false", "v == ()"),
    ] {
        run(
            &format!("let v = sql_scalar(\"{dsn}\", \"{query}\");\n{expect}"),
            &[],
        )
        .expect(0, "healthy");
    }
    run(&format!("sql_scalar(\"{dsn}\", \"SELECT now()\")"), &[])
        .expect(3, "the first column (now) is of type timestamptz, which sql_scalar does not convert; cast it in the query: SELECT (...)::text");
}

#[test]
fn pg_query_errors_throw_and_can_be_caught() {
    let dsn = shared_pg();
    run(
        &format!("sql_scalar(\"{dsn}\", \"SELECT * FROM no_such_table\")"),
        &[],
    )
    .expect(
        2,
        "relation \"no_such_table\" does not exist (SQLSTATE 42P01)",
    );
    run(
        &format!("sql_ping(\"{dsn}\", #{{query: \"SELEC 1\"}})"),
        &[],
    )
    .expect(1, "syntax error at or near \"SELEC\" (SQLSTATE 42601)");
    run(
        &format!("let caught = \"\";\ntry {{ sql_scalar(\"{dsn}\", \"SELECT 1/0\") }} catch (e) {{ caught = e }}\ncaught.contains(\"division by zero (SQLSTATE 22012)\")"),
        &[],
    )
    .expect(0, "healthy");
}

// ---- MySQL / MariaDB ---------------------------------------------------------------------------

#[test]
fn mysql_ping_ok_wrong_password_unknown_database_and_user() {
    run(
        &format!("sql_ping(\"{}\")", my_pw(MY_PASSWORD, "test")),
        &[],
    )
    .expect(0, "healthy");
    run(
        &format!(
            "sql_ping(\"{}\")",
            my_pw(MY_PASSWORD, "test").replacen("mysql:", "mariadb:", 1)
        ),
        &[],
    )
    .expect(0, "healthy");
    run(&format!("sql_ping(\"{}\")", my_pw(WRONG, "test")), &[])
        .expect(
            1,
            &format!(
                "sql_ping(mysql://{}:***@127.0.0.1:3306/test) -> Access denied for user '{}'@",
                support::MY_USER,
                support::MY_USER
            ),
        )
        .expect(1, "(error 1045, SQLSTATE 28000)");
    run(
        &format!("sql_ping(\"{}\")", my_pw(MY_PASSWORD, "no_such_db")),
        &[],
    )
    .expect(1, "(error 1044, SQLSTATE 42000)");
    let root = shared_mysql();
    run(
        &format!("sql_ping(\"{}\")", root.replace("/test", "/no_such_db")),
        &[],
    )
    .expect(
        1,
        "Unknown database 'no_such_db' (error 1049, SQLSTATE 42000)",
    );
    run(
        &format!("sql_ping(\"mysql://no_such_user:{WRONG}@127.0.0.1:3306/test\")"),
        &[],
    )
    .expect(1, "Access denied for user 'no_such_user'@");
    run(
        &format!("sql_scalar(\"{}\", \"SELECT 1\")", my_pw(WRONG, "test")),
        &[],
    )
    .expect(2, "(error 1045, SQLSTATE 28000)");
}

#[test]
fn mysql_connection_is_closed_cleanly() {
    // The server counts clients that went away without COM_QUIT as Aborted_clients.
    let aborted = || -> String {
        let dsn = shared_mysql();
        let r = Probe::script(&format!(
            "throw sql_scalar(\"{dsn}\", \"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'ABORTED_CLIENTS'\")"
        ))
        .run();
        let value = r
            .stdout
            .strip_prefix("check error: ")
            .and_then(|v| v.split(' ').next());
        value
            .unwrap_or_else(|| panic!("{}", r.output()))
            .to_string()
    };
    let before = aborted();
    let dsn = my_pw(MY_PASSWORD, "test");
    for _ in 0..3 {
        run(
            &format!("sql_ping(\"{dsn}\") && sql_scalar(\"{dsn}\", \"SELECT 1\") == 1"),
            &[],
        )
        .expect(0, "healthy");
    }
    assert_eq!(aborted(), before);
}

#[test]
fn mysql_closed_port_tls_and_socket() {
    run(
        &format!(
            "sql_ping(\"mysql://root@127.0.0.1:{}/test\")",
            closed_port()
        ),
        &[],
    )
    .expect(1, "connection refused");
    // This MariaDB has no TLS: REQUIRED fails with the reason, PREFERRED falls back.
    let root = shared_mysql();
    run(&format!("sql_ping(\"{root}?ssl-mode=REQUIRED\")"), &[]).expect(
        1,
        "the server does not support TLS, and ssl-mode=REQUIRED requires it",
    );
    run(&format!("sql_ping(\"{root}?ssl-mode=preferred\")"), &[]).expect(0, "healthy");
    run(&format!("sql_ping(\"{root}?ssl-mode=sometimes\")"), &[])
        .expect(3, "ssl-mode=sometimes is not a TLS mode; use one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY");
    let socket = "/run/mysqld/mysqld.sock";
    if std::path::Path::new(socket).exists() {
        run(
            &format!("sql_ping(\"mysql://root@localhost/test?socket={socket}\")"),
            &[],
        )
        .expect(0, "healthy");
    }
}

#[test]
fn mysql_scalar_types_and_errors() {
    let dsn = shared_mysql();
    for (query, expect) in [
        ("SELECT 42", "type_of(v) == \"i64\" && v == 42"),
        ("SELECT 2.5", "v == 2.5"),
        ("SELECT 10.0", "v == 10.0"),
        ("SELECT 1.5e0", "type_of(v) == \"f64\" && v == 1.5"),
        (
            "SELECT CAST(18446744073709551615 AS UNSIGNED)",
            "type_of(v) == \"f64\"",
        ),
        ("SELECT 'héllo'", "v == \"héllo\""),
        ("SELECT NOW()", "type_of(v) == \"string\" && v.len() == 19"),
        ("SELECT 1 = 1", "v == 1"),
        ("SELECT NULL", "v == ()"),
        ("SELECT 1 FROM DUAL WHERE false", "v == ()"),
        ("SELECT @@read_only", "v == 0"),
    ] {
        run(
            &format!("let v = sql_scalar(\"{dsn}\", \"{query}\");\n{expect}"),
            &[],
        )
        .expect(0, "healthy");
    }
    run(
        &format!("sql_scalar(\"{dsn}\", \"SELECT * FROM no_such_table\")"),
        &[],
    )
    .expect(
        2,
        "Table 'test.no_such_table' doesn't exist (error 1146, SQLSTATE 42S02)",
    );
}

// ---- DSNs, env() and read_file() ---------------------------------------------------------------

#[test]
fn malformed_dsns_are_script_faults_with_the_dsn_masked() {
    for (dsn, message) in [
        (
            format!("mongodb://u:{WRONG}@127.0.0.1/x"),
            "unknown scheme 'mongodb://'; use postgres://, postgresql://, mysql:// or mariadb://",
        ),
        (
            format!("postgres://u:{WRONG}@127.0.0.1:99999/x"),
            "port '99999' is not a number in 1-65535",
        ),
        (
            format!("postgres://u:{WRONG}@127.0.0.1/x?sslmode=on"),
            "sslmode=on is not a TLS mode",
        ),
        (
            format!("postgres://u:{WRONG}@127.0.0.1/x?no_such_param=1"),
            "unknown option `no_such_param`",
        ),
        (
            format!("mysql://u:{WRONG}@127.0.0.1/x?sslca=/x"),
            "unknown parameter 'sslca'",
        ),
        (
            "127.0.0.1:5432".to_string(),
            "not a DSN; expected postgres://",
        ),
    ] {
        run(&format!("sql_ping(\"{dsn}\")"), &[])
            .expect(3, message)
            .expect(3, "sql_ping: ");
    }
    run(
        &format!("sql_ping(\"postgres://u:{WRONG}@h/x\", #{{timeot: 1}})"),
        &[],
    )
    .expect(3, "unknown option 'timeot'; did you mean 'timeout'?");
}

#[test]
fn a_source_line_under_an_error_never_shows_a_password() {
    // Too short to be searched for in free text, but masked where it stands.
    let r = Probe::script("sql_pign(\"postgres://u:pw@127.0.0.1/x\")").run();
    r.expect(3, "unknown function sql_pign(string)");
    assert!(
        r.stderr
            .contains("sql_pign(\"postgres://u:**@127.0.0.1/x\")"),
        "{}",
        r.stderr
    );
    assert!(!r.output().contains("u:pw@"), "{}", r.output());
}

#[test]
fn dsn_from_the_environment_and_from_a_file() {
    let p = private_pg();
    let dsn = pg(p.plain, PG_PASSWORD, "postgres");
    Probe::script("sql_ping(env(\"DATABASE_URL\"))")
        .env("DATABASE_URL", &dsn)
        .run()
        .expect(0, "healthy");
    Probe::script("sql_ping(env(\"DATABASE_URL\"))")
        .run()
        .expect(
            3,
            "env: $DATABASE_URL is not set in the probe's environment; set it on the container",
        );
    Probe::script("env(\"DATABASE_URL\", \"none\") == \"none\"")
        .run()
        .expect(0, "healthy");
    // A mounted Secret: written with a trailing newline, as `echo` or an editor leaves it.
    let dir = temp_dir("dsn-file");
    let file = dir.join("dsn");
    std::fs::write(&file, format!("{}\n", pg(p.plain, WRONG, "postgres"))).unwrap();
    let r = run(
        &format!(
            "let dsn = read_file(\"{}\");\nprint(dsn);\nthrow \"failed: \" + dsn",
            file.display()
        ),
        &[],
    );
    r.expect(2, "failed: postgres://probe_admin:***@127.0.0.1");
    std::fs::write(&file, format!("{}\n", pg(p.plain, PG_PASSWORD, "postgres"))).unwrap();
    run(&format!("sql_ping(read_file(\"{}\"))", file.display()), &[]).expect(0, "healthy");
    run("read_file(\"/nonexistent/dsn\")", &[])
        .expect(2, "read_file(/nonexistent/dsn): no such file or directory");
    // A FIFO with no writer: refused at once, not a wait past the deadline for a writer.
    let fifo = dir.join("dsn.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let r = run(&format!("read_file(\"{}\")", fifo.display()), &[]);
    r.expect(3, "dsn.fifo is a FIFO; read_file reads regular files");
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    run("read_file(\"/dev/zero\")", &[]).expect(3, "/dev/zero is a device");
    // A token read from a file whose name says so is masked wherever a script prints it.
    std::fs::write(dir.join("api-token"), "tok-0123456789").unwrap();
    let r = Probe::script(&format!(
        "let t = read_file(\"{}\"); throw \"token \" + t",
        dir.join("api-token").display()
    ))
    .run();
    r.expect(2, "token ***");
    // So is a variable whose name says it is a credential.
    Probe::script("throw \"key \" + env(\"API_TOKEN\")")
        .env("API_TOKEN", "tok-9876543210")
        .run()
        .expect(2, "key ***");
}
