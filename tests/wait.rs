//! `rhai-probe wait`, URL targets and `-e`, against real peers on 127.0.0.1, every wait bounded.

mod support;

use std::{
    net::TcpListener,
    thread,
    time::{Duration, Instant},
};

use support::{closed_port, http_server, shared_mysql, shared_pg, Probe};

/// A port nothing listens on now, and a listener on it after `after`, kept for `hold`.
fn listener_after(after: Duration, hold: Duration) -> u16 {
    let port = closed_port();
    thread::spawn(move || {
        thread::sleep(after);
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        thread::sleep(hold);
        drop(listener);
    });
    port
}

#[test]
fn a_listener_that_appears_is_found_within_an_interval() {
    let port = listener_after(Duration::from_millis(1500), Duration::from_secs(10));
    let run = Probe::command([
        "wait",
        &format!("tcp://127.0.0.1:{port}"),
        "--for",
        "10s",
        "--interval",
        "200ms",
        "--max-interval",
        "400ms",
    ])
    .run();
    run.expect(0, "healthy: 1 target ready in ");
    // Healthy within one (max) interval of appearing, plus the test's slack.
    assert!(
        run.elapsed < Duration::from_millis(1500 + 400 + 1000),
        "{:?}",
        run.elapsed
    );
    // Progress: one line per change of state, not one per attempt.
    assert!(
        run.stderr.contains("attempt 1: unhealthy: TCP 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(": healthy: TCP 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
}

#[test]
fn a_target_that_never_comes_ends_with_124_and_its_reason() {
    let port = closed_port();
    let run = Probe::command([
        "wait",
        &format!("tcp://127.0.0.1:{port}"),
        "--for",
        "1s",
        "--interval",
        "100ms",
    ])
    .run();
    run.expect(
        124,
        &format!("timed out: 1.00 s passed; still unhealthy: tcp://127.0.0.1:{port} (TCP 127.0.0.1:{port} -> connection refused, "),
    );
    assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
}

#[test]
fn all_targets_by_default_any_with_any() {
    let (up, down) = (
        format!("{}/health", http_server()),
        format!("tcp://127.0.0.1:{}", closed_port()),
    );
    let base = ["wait", &up, &down, "--for", "1s", "--interval", "100ms"];
    let run = Probe::command(base).run();
    run.expect(124, &format!("still unhealthy: {down} ("));
    assert!(!run.stdout.contains(&format!("{up} (")), "{}", run.stdout);
    let run = Probe::command(base).args(["--any"]).run();
    run.expect(0, &format!("healthy: {up} is ready in "));
    assert!(run.elapsed < Duration::from_secs(1), "{:?}", run.elapsed);
}

#[test]
fn a_script_fault_ends_the_wait_at_once_with_eval_positions() {
    let run = Probe::command(["wait", "-e", "let x = ;", "--for", "30s"]).run();
    run.expect(3, "script fault: <eval>:1:9: syntax error");
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    let run = Probe::command(["wait", "-e", "htp_get(\"x\").ok", "--for", "30s"]).run();
    run.expect(3, "<eval>:1:1: unknown function htp_get");
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    // run needs a script or -e, one of them: a bad command line otherwise.
    for args in [
        vec!["run"],
        vec!["run", "x.rhai", "-e", "true"],
        vec!["explain"],
    ] {
        let run = Probe::command(args.clone()).run();
        assert_eq!(run.code, 64, "{args:?}: {}", run.output());
        assert!(
            run.stderr.contains("<SCRIPT|--eval <EXPR>>"),
            "{}",
            run.stderr
        );
    }
    // And in run, explain and check.
    Probe::command(["run", "-e", "true && "])
        .run()
        .expect(3, "<eval>:1:9");
    let run = Probe::command(["check", "-e", "htp_get(\"x\").ok"]).run();
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("--> <eval>:1:1"), "{}", run.stderr);
}

#[test]
fn the_command_after_the_wait_keeps_the_pid() {
    let run = Probe::command([
        "wait",
        &format!("{}/health", http_server()),
        "--",
        "sh",
        "-c",
        "echo \"pid $$ ppid $PPID\"",
    ])
    .run_with_pid();
    let (run, pid) = run;
    run.expect(0, "healthy: 1 target ready");
    assert!(
        run.stdout.contains(&format!("pid {pid} ")),
        "the command runs as the waiter's process {pid}:\n{}",
        run.stdout
    );
}

#[test]
fn sigterm_ends_the_wait_with_143_at_once() {
    let run = Probe::command([
        "wait",
        &format!("tcp://127.0.0.1:{}", closed_port()),
        "--for",
        "30s",
    ])
    .signal_after(Duration::from_millis(500), libc::SIGTERM)
    .run();
    run.expect(143, "terminated: SIGTERM after ");
    assert!(
        run.stdout.contains("still unhealthy: tcp://127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[test]
fn each_url_scheme_against_real_servers() {
    let started = Instant::now();
    let redis =
        std::env::var("RHAI_PROBE_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    for (target, line) in [
        (
            format!("{}/health", http_server()),
            "healthy: GET http://127.0.0.1:",
        ),
        (
            "tcp://127.0.0.1:5432".to_string(),
            "healthy: TCP 127.0.0.1:5432 -> connected",
        ),
        (shared_pg(), "healthy: sql_ping(postgres://"),
        (
            shared_pg().replacen("postgres://", "postgresql://", 1),
            "healthy: sql_ping(postgresql://",
        ),
        (shared_mysql(), "healthy: sql_ping(mysql://"),
        (
            shared_mysql().replacen("mysql://", "mariadb://", 1),
            "healthy: sql_ping(mariadb://",
        ),
        (redis.clone(), "healthy: redis_ping(redis://"),
    ] {
        Probe::command(["run", &target]).run().expect(0, line);
        Probe::command(["wait", &target, "--for", "5s"])
            .run()
            .expect(0, "healthy: 1 target ready");
    }
    // kubelet's rule for http: 200-399 healthy, the rest not.
    Probe::command(["run", &format!("{}/bad", http_server())])
        .run()
        .expect(1, "unhealthy: GET http://127.0.0.1:");
    // explain and check take targets too; an unknown scheme is a script fault naming the known.
    Probe::command(["explain", "tcp://127.0.0.1:5432"])
        .run()
        .expect(0, "verdict  healthy: TCP 127.0.0.1:5432 -> connected");
    let run = Probe::command(["check", "tcp://127.0.0.1:5432"]).run();
    assert_eq!(run.code, 0, "{}", run.output());
    Probe::command(["run", "ftp://127.0.0.1/x"])
        .run()
        .expect(3, "targets are http, https, tcp, grpc, grpcs, postgres");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_file_named_like_a_url_is_the_file() {
    // `http://x` from this directory is the file `http:/x`: a path that exists is always read as
    // a script, never fetched.
    let dir = support::temp_dir("target-file");
    std::fs::create_dir_all(dir.join("http:")).unwrap();
    std::fs::write(dir.join("http:/x"), "40 + 2 == 42").unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["run", "http://x"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("healthy: http://x returned true"),
        "{stdout}"
    );
}

#[test]
fn secrets_in_url_targets_are_masked_in_every_line() {
    let secret = "wait-pw-7788";
    let target = format!(
        "mysql://{}:{secret}@127.0.0.1:3306/test",
        support::mysql_password_user()
    );
    let run = Probe::command(["wait", &target, "--for", "1s", "--interval", "200ms", "-v"]).run();
    assert_eq!(run.code, 124, "{}", run.output());
    assert!(!run.output().contains(secret), "{}", run.output());
    assert!(
        run.stdout
            .contains("mysql://rhai_probe_pw:***@127.0.0.1:3306/test"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Access denied"), "{}", run.stdout);
    let run = Probe::command(["run", &target]).run();
    assert!(!run.output().contains(secret), "{}", run.output());
    assert_eq!(run.code, 1);
}
