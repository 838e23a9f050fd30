//! `--allow-net`, `--allow-read`, `--allow-env`: each kind denied and allowed, against real
//! listeners that count their connections (a denied call must make none), a redirect to a host
//! not allowed, a name that resolves outside the allowed addresses, symlink and `..` escapes, the
//! ConfigMap `..data` layout, SQL drivers' own connects, unix sockets, `test` and
//! `check --permissions`. (`serve` is in tests/serve.rs.)

mod support;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use support::{closed_port, temp_dir, Probe};

/// An HTTP server on `ip` that counts the connections it accepts and answers each with
/// `answer` (the whole response). Returns its port and the count.
fn counting(ip: &str, answer: impl Fn(u16) -> String + Send + 'static) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = stream.write_all(answer(port).as_bytes());
        }
    });
    (port, count)
}

fn ok(_: u16) -> String {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".into()
}

fn run(args: &[&str], script: &str) -> support::Run {
    let mut argv = vec!["run".to_string(), "--timeout".into(), "5s".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["-e".to_string(), script.to_string()]);
    Probe::command(argv)
        .env("RHAI_PROBE_ALLOW_NET", "")
        .env("RHAI_PROBE_ALLOW_READ", "")
        .env("RHAI_PROBE_ALLOW_ENV", "")
        .run()
}

#[test]
fn net_denied_reaches_nothing_and_allowed_connects() {
    let (port, count) = counting("127.0.0.1", ok);
    let script = format!("tcp_open(\"127.0.0.1\", {port})");
    // Denied: a script fault at the call, naming the call, the target and the flag; no connect.
    let r = run(&["--allow-net", "127.0.0.1:1,db:5432"], &script);
    r.expect(3, &format!("script fault: <eval>:1:1: tcp_open to 127.0.0.1:{port} is not allowed by --allow-net (127.0.0.1:1,db:5432)"));
    assert_eq!(count.load(Ordering::SeqCst), 0);
    // Allowed by address, by address and port, by a block, by `*`.
    for allow in [
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        "127.0.0.0/8".into(),
        "*".into(),
    ] {
        run(&["--allow-net", &allow], &script).expect(0, "healthy");
    }
    assert_eq!(count.load(Ordering::SeqCst), 4);
    // The environment variable is the flag.
    let r = Probe::command(["run", "-e", &script])
        .env("RHAI_PROBE_ALLOW_NET", "10.0.0.0/8")
        .run();
    r.expect(3, "is not allowed by --allow-net (10.0.0.0/8)");
    assert_eq!(count.load(Ordering::SeqCst), 4);
    // Without any flag, nothing is checked.
    run(&[], &script).expect(0, "healthy");
}

#[test]
fn http_denied_allowed_and_a_redirect_to_a_host_not_allowed() {
    // A redirect to the same host on another port is followed (to another host it is not,
    // as kubelet does): the port is what --allow-net must catch.
    let (target, reached) = counting("127.0.0.1", ok);
    let (start, started) = counting("127.0.0.1", move |_| {
        format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    });
    let script = format!("http_get(\"http://127.0.0.1:{start}/\").status == 200");
    // Allowed where it starts, not where it is sent: denied at the redirect, before connecting.
    let r = run(&["--allow-net", &format!("127.0.0.1:{start}")], &script);
    r.expect(
        3,
        &format!(
            "http_get to 127.0.0.1:{target} is not allowed by --allow-net (127.0.0.1:{start})"
        ),
    );
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    // Both allowed: it follows.
    run(
        &[
            "--allow-net",
            &format!("127.0.0.1:{start},127.0.0.1:{target}"),
        ],
        &script,
    )
    .expect(0, "healthy");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    // Not even the first request is made to a host not allowed.
    let r = run(&["--allow-net", "localhost"], &script);
    r.expect(
        3,
        &format!("http_get to 127.0.0.1:{start} is not allowed by --allow-net (localhost)"),
    );
    assert_eq!(started.load(Ordering::SeqCst), 2);
}

#[test]
fn a_name_that_resolves_outside_the_allowed_addresses_is_denied() {
    let (port, count) = counting("127.0.0.1", ok);
    let script = format!("tcp_open(\"localhost\", {port})");
    // `localhost` is allowed by name; it resolves to 127.0.0.1 (and ::1), outside 10.0.0.0/8.
    let r = run(&["--allow-net", "localhost,10.0.0.0/8"], &script);
    r.expect(3, &format!("tcp_open to localhost:{port} (it resolved to 127.0.0.1:{port}) is not allowed by --allow-net (localhost,10.0.0.0/8)"));
    // A driver that picks among the addresses itself needs all of them allowed.
    let dsn = format!("postgres://probe@localhost:{}/db", closed_port());
    let r = run(
        &["--allow-net", "localhost,127.0.0.0/8"],
        &format!("sql_ping({dsn:?})"),
    );
    if r.code == 3 {
        r.expect(3, "(it resolved to [::1]");
        r.expect(3, "too, and the driver may connect to any of them");
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
    // With its address covered too, it connects; with names only, a name resolves where it does.
    run(&["--allow-net", "localhost,127.0.0.0/8"], &script).expect(0, "healthy");
    run(&["--allow-net", "localhost"], &script).expect(0, "healthy");
    // An address is not a name: 127.0.0.1 does not allow `localhost`.
    run(&["--allow-net", "127.0.0.1"], &script).expect(3, "tcp_open to localhost");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // A suffix.
    let r = run(&["--allow-net", "*.svc.cluster.local"], &script);
    r.expect(3, "is not allowed by --allow-net (*.svc.cluster.local)");
}

#[test]
fn sql_targets_are_checked_before_the_driver_connects() {
    let (port, count) = counting("127.0.0.1", ok);
    for dsn in [
        format!("postgres://probe@127.0.0.1:{port}/db"),
        format!("mysql://probe@127.0.0.1:{port}/db"),
        format!("host=127.0.0.1 port={port} user=probe"),
    ] {
        let r = run(
            &["--allow-net", "127.0.0.1:5432"],
            &format!("sql_ping({dsn:?})"),
        );
        r.expect(
            3,
            &format!("sql_ping to 127.0.0.1:{port} is not allowed by --allow-net (127.0.0.1:5432)"),
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
    // A PostgreSQL socket directory: its socket is the target.
    let r = run(
        &["--allow-net", "127.0.0.1"],
        "sql_ping(\"postgres://probe@%2Fvar%2Frun%2Fpostgresql/db\")",
    );
    r.expect(3, "sql_ping to unix:/var/run/postgresql/.s.PGSQL.5432");
}

#[test]
fn sql_allowed_reaches_the_real_server() {
    let pg = support::shared_pg();
    let r = run(
        &["--allow-net", "127.0.0.1:5432"],
        &format!("sql_ping({pg:?})"),
    );
    if r.code != 0 && std::env::var_os("CI").is_none() && r.output().contains("refused") {
        return support::unavailable("sql_allowed_reaches_the_real_server", "PostgreSQL");
    }
    r.expect(0, "healthy");
}

#[test]
fn unix_sockets_are_allowed_by_path() {
    let dir = temp_dir("allow-unix");
    let socket = dir.join("app.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = stream.write_all(ok(0).as_bytes());
        }
    });
    let script = format!(
        "http_get(\"http://app/health\", #{{ unix_socket: {:?} }}).status == 200",
        socket.display().to_string()
    );
    let r = run(&["--allow-net", "unix:/run/other.sock"], &script);
    r.expect(3, "http_get to unix:");
    assert!(
        r.stdout
            .contains("is not allowed by --allow-net (unix:/run/other.sock)"),
        "{}",
        r.stdout
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
    run(
        &["--allow-net", &format!("unix:{}", dir.display())],
        &script,
    )
    .expect(0, "healthy");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// A ConfigMap volume as kubelet lays it out: the files are symlinks through `..data` to a
/// timestamped directory. Beside it, a secret outside the allowed directory.
fn configmap(dir: &Path) {
    let config = dir.join("config");
    std::fs::create_dir_all(config.join("..2026_12_02_10_00_00.1")).unwrap();
    std::fs::write(config.join("..2026_12_02_10_00_00.1/app.conf"), "mode=ok\n").unwrap();
    std::os::unix::fs::symlink("..2026_12_02_10_00_00.1", config.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/app.conf", config.join("app.conf")).unwrap();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/token"), "tok-abc-123").unwrap();
    // A link planted in the allowed directory, pointing out of it.
    std::os::unix::fs::symlink("../secrets/token", config.join("innocent")).unwrap();
}

#[test]
fn reads_are_allowed_under_a_path_with_symlinks_resolved() {
    let dir = temp_dir("allow-read");
    configmap(&dir);
    let config = dir.join("config").display().to_string();
    let allow = ["--allow-read", config.as_str()];
    let d = dir.display();
    // The ConfigMap's own layout: allowed.
    run(
        &allow,
        &format!("read_file(\"{config}/app.conf\") == \"mode=ok\""),
    )
    .expect(0, "healthy");
    run(
        &allow,
        &format!("file_exists(\"{config}/..data/app.conf\")"),
    )
    .expect(0, "healthy");
    run(&allow, &format!("file_age(\"{config}/app.conf\") >= 0.0")).expect(0, "healthy");
    run(&allow, &format!("disk_usage(\"{config}\").total > 0")).expect(0, "healthy");
    // Out of it: by a symlink, by `..`, directly; and file_exists does not answer for it.
    let r = run(&allow, &format!("read_file(\"{config}/innocent\")"));
    r.expect(3, &format!("read_file of {config}/innocent (it resolves to {d}/secrets/token) is not allowed by --allow-read ({config})"));
    let r = run(&allow, &format!("read_file(\"{config}/../secrets/token\")"));
    r.expect(
        3,
        &format!("(it resolves to {d}/secrets/token) is not allowed"),
    );
    run(&allow, &format!("file_exists(\"{d}/secrets/token\")")).expect(3, "file_exists of");
    run(&allow, &format!("file_exists(\"{d}/secrets/nothing\")")).expect(3, "is not allowed");
    run(
        &allow,
        &format!("file_exists(\"{config}/nothing/../../secrets/token\")"),
    )
    .expect(3, "it climbs out of a directory that does not exist");
    run(&allow, &format!("file_age(\"{d}/secrets/token\")")).expect(3, "file_age of");
    run(&allow, "disk_usage(\"/\")").expect(3, "disk_usage of / is not allowed");
    // A missing file in the allowed directory is still allowed (and answers false).
    run(&allow, &format!("!file_exists(\"{config}/new.conf\")")).expect(0, "healthy");
    // The token never shows.
    let r = run(&allow, &format!("read_file(\"{config}/innocent\")"));
    assert!(!r.output().contains("tok-abc-123"));
    // Relative paths are read from the working directory, and checked as what they are.
    let r = Probe::command([
        "run",
        "--allow-read",
        &config,
        "-e",
        "read_file(\"secrets/token\")",
    ])
    .env("RHAI_PROBE_ALLOW_NET", "")
    .run();
    r.expect(3, "read_file of secrets/token");
}

#[test]
fn env_is_allowed_by_name_or_prefix_and_other_kinds_are_denied() {
    let with = |allow: &[&str], script: &str| {
        let mut argv = vec!["run".to_string()];
        argv.extend(allow.iter().map(|a| a.to_string()));
        argv.extend(["-e".to_string(), script.to_string()]);
        Probe::command(argv)
            .env("APP_URL", "http://app")
            .env("DB_PASSWORD", "hunter2secret")
            .run()
    };
    with(
        &["--allow-env", "APP_*"],
        "env(\"APP_URL\") == \"http://app\"",
    )
    .expect(0, "healthy");
    with(&["--allow-env", "APP_URL,HOME"], "env(\"APP_URL\") != \"\"").expect(0, "healthy");
    let r = with(&["--allow-env", "APP_*"], "env(\"DB_PASSWORD\")");
    r.expect(
        3,
        "env of \"DB_PASSWORD\" is not allowed by --allow-env (APP_*)",
    );
    assert!(!r.output().contains("hunter2secret"));
    // One flag given: the kinds not given are denied, and say why.
    let r = with(&["--allow-net", "127.0.0.1"], "env(\"APP_URL\")");
    r.expect(
        3,
        "env of \"APP_URL\" is not allowed: no --allow-env was given",
    );
    with(
        &["--allow-net", "127.0.0.1"],
        "read_file(\"/etc/hostname\")",
    )
    .expect(3, "no --allow-read was given");
    // An empty list allows none.
    with(&["--allow-env="], "env(\"APP_URL\")").expect(3, "--allow-env is empty");
    // A bad entry is a usage error before anything runs.
    let r = with(&["--allow-net", "db:http"], "true");
    assert_eq!(r.code, 64, "{}", r.output());
    assert!(
        r.stderr
            .contains("--allow-net db:http: port 'http' is not a number"),
        "{}",
        r.stderr
    );
}

#[test]
fn test_cases_report_a_denied_call_as_the_scripts_fault() {
    let dir = temp_dir("allow-test");
    let script = dir.join("p.rhai");
    std::fs::write(
        &script,
        "http_get(\"http://api.internal:8080/health\").status == 200\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("p.cases.toml"),
        "[[case]]\nname = \"up\"\nexpect = \"healthy\"\n[[case.calls]]\nfn = \"http_get\"\nreturns = { status = 200 }\n",
    )
    .unwrap();
    let path = script.display().to_string();
    let r = Probe::command(["test", &path]).run();
    assert_eq!(r.code, 0, "{}", r.output());
    let r = Probe::command(["test", "--allow-net", "api.internal:8080", &path]).run();
    assert_eq!(r.code, 0, "{}", r.output());
    let r = Probe::command(["test", "--allow-net", "api.internal:80", &path]).run();
    assert_eq!(r.code, 1, "{}", r.output());
    assert!(
        r.stdout.contains(
            "http_get to api.internal:8080 is not allowed by --allow-net (api.internal:80)"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn check_permissions_prints_the_flags_a_script_needs() {
    let dir = temp_dir("allow-check");
    let script = dir.join("p.rhai");
    std::fs::write(
        &script,
        "let db = \"postgres://app@db.ns.svc.cluster.local/app\";\n\
         let url = var_or(\"url\", \"http://localhost:8080/health\");\n\
         check(\"db\", || sql_ping(db));\n\
         check(\"web\", || http_get(url).ok);\n\
         check(\"cfg\", file_exists(\"/etc/app/app.conf\"));\n\
         check(\"token\", env(\"APP_TOKEN\") != \"\");\n\
         let host = env(\"PEER\");\n\
         tcp_open(host, 6379)\n",
    )
    .unwrap();
    let path = script.display().to_string();
    let r = Probe::command(["check", "--permissions", &path]).run();
    assert_eq!(r.code, 0, "{}", r.output());
    assert_eq!(
        r.stdout,
        "--allow-net=db.ns.svc.cluster.local:5432,localhost:8080\n--allow-read=/etc/app/app.conf\n--allow-env=APP_TOKEN,PEER\n"
    );
    assert!(
        r.stderr
            .contains("p.rhai:8:1: tcp_open: its target is not a literal"),
        "{}",
        r.stderr
    );
    // --var values are what the script will see.
    let r = Probe::command([
        "check",
        "--permissions",
        "--var",
        "url=https://api:8443/",
        &path,
    ])
    .run();
    assert!(
        r.stdout
            .starts_with("--allow-net=api:8443,db.ns.svc.cluster.local:5432\n"),
        "{}",
        r.stdout
    );
    // A path that allows every file is pointed out.
    let r = Probe::command([
        "check",
        "--permissions",
        "-e",
        "disk_usage(\"/\").used_pct < 90.0",
    ])
    .run();
    assert_eq!(r.stdout, "--allow-net=\n--allow-read=/\n--allow-env=\n");
    assert!(
        r.stderr.contains("note: --allow-read=/ allows every file"),
        "{}",
        r.stderr
    );
    // A script that reaches nothing: every list empty, which denies everything.
    let r = Probe::command(["check", "--permissions", "-e", "load_avg() < 100.0"]).run();
    assert_eq!(r.stdout, "--allow-net=\n--allow-read=\n--allow-env=\n");
    // As JSON.
    let r = Probe::command(["check", "--permissions", "--format", "json", &path]).run();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["flags"]["--allow-env"],
        serde_json::json!(["APP_TOKEN", "PEER"])
    );
    assert_eq!(v["unresolved"][0]["function"], "tcp_open");
    // And the flags it printed let the script's literal calls through (those a flag covers).
    let r = run(
        &[
            "--allow-net",
            "localhost:1",
            "--allow-read",
            "/etc/app/app.conf",
        ],
        &format!("tcp_open(\"localhost\", {})", closed_port()),
    );
    r.expect(3, "is not allowed by --allow-net (localhost:1)");
}

/// The open(2) events on `path` while `f` runs, through inotify (`IN_OPEN`).
fn opens_during(path: &Path, f: impl FnOnce()) -> usize {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain inotify calls on a descriptor this function owns and closes; the path is
    // a NUL-terminated copy that outlives the call.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0, "inotify_init1");
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        assert!(
            libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN) >= 0,
            "inotify_add_watch"
        );
        f();
        let mut buf = [0u8; 4096];
        let mut events = 0;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            let mut at = 0;
            while at < n as usize {
                let event = &*(buf.as_ptr().add(at) as *const libc::inotify_event);
                events += 1;
                at += std::mem::size_of::<libc::inotify_event>() + event.len as usize;
            }
        }
        libc::close(fd);
        events
    }
}

#[test]
fn a_denied_read_never_opens_the_file() {
    let dir = temp_dir("allow-open");
    configmap(&dir);
    let token = dir.join("secrets/token");
    let config = dir.join("config").display().to_string();
    let t = token.display().to_string();
    let denied = opens_during(&token, || {
        run(&["--allow-read", &config], &format!("read_file(\"{t}\")")).expect(3, "is not allowed");
        run(
            &["--allow-read", &config],
            &format!("read_file(\"{config}/innocent\")"),
        )
        .expect(3, "is not allowed");
    });
    assert_eq!(denied, 0, "a denied read_file opened the file");
    // The watch sees an allowed read: the count above could have been more than 0.
    let allowed = opens_during(&token, || {
        run(
            &["--allow-read", &t],
            &format!("read_file(\"{t}\") != \"\""),
        )
        .expect(0, "healthy");
    });
    assert!(allowed >= 1, "inotify saw no open of an allowed read");
}
