//! `rhai-probe serve` over real HTTP: the server is the real binary on a loopback port, its peers
//! are real servers the tests start, and every test waits a bounded time.

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use support::{temp_dir, BIN, TEST_SECRETS};

/// A peer that counts its hits, answers with a settable status after a settable delay.
struct Peer {
    port: u16,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Peer {
    fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (h, s, d) = (hits.clone(), status.clone(), delay_ms.clone());
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let (h, s, d) = (h.clone(), s.clone(), d.clone());
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(d.load(Ordering::SeqCst)));
                    let code = s.load(Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        Peer {
            port,
            hits,
            status,
            delay_ms,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One `rhai-probe serve` process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        Server::start_wrapped(&[], args)
    }

    fn start_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_full(&[], env, args)
    }

    /// Start it through `wrapper` (e.g. `support::loopback_dns()`), which execs the binary.
    fn start_wrapped(wrapper: &[String], args: &[&str]) -> Server {
        Server::start_full(wrapper, &[], args)
    }

    fn start_full(wrapper: &[String], env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RHAI_PROBE_TIMEOUT")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                    let _ = tx.send(port);
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("serve did not start:\n{}", stderr.lock().unwrap())
            });
        Server {
            child: Some(child),
            port,
            stderr,
        }
    }

    fn get(&self, path: &str) -> Reply {
        request(self.port, "GET", path, &[])
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The names of the server's threads (`probe NAME` for each probe's).
    fn threads(&self) -> Vec<String> {
        let pid = self.child.as_ref().unwrap().id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect()
    }

    fn metrics(&self) -> String {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// SIGTERM; the exit code, bounded by `within`.
    fn terminate(&mut self, within: Duration) -> i32 {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve still running {within:?} after SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the server and hold its whole log to the bar every run is held to.
    fn finish(mut self) -> String {
        assert_eq!(
            self.terminate(Duration::from_secs(5)),
            0,
            "{}",
            self.stderr()
        );
        thread::sleep(Duration::from_millis(50));
        let log = self.stderr();
        assert!(!log.contains("panicked"), "serve panicked:\n{log}");
        for secret in TEST_SECRETS {
            assert!(!log.contains(secret), "{secret} leaked:\n{log}");
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request on a fresh connection (as kubelet makes them), bounded by 10 s.
fn request(port: u16, method: &str, path: &str, headers: &[&str]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"));
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Poll `f` every 100 ms for at most `limit`; the last value it returned.
fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A directory laid out as kubelet mounts a ConfigMap: `NAME.rhai -> ..data/NAME.rhai`,
/// `..data -> ..GEN`. `update` swaps `..data` atomically, as kubelet does.
struct ConfigMap {
    dir: PathBuf,
    generation: usize,
}

impl ConfigMap {
    fn new(name: &str, files: &[(&str, &str)]) -> ConfigMap {
        let mut map = ConfigMap {
            dir: temp_dir(name),
            generation: 0,
        };
        map.update(files);
        for (file, _) in files {
            std::os::unix::fs::symlink(format!("..data/{file}"), map.dir.join(file)).unwrap();
        }
        map
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let gen = format!(
            "..2026_11_25_00_00_{:02}.{}",
            self.generation, self.generation
        );
        std::fs::create_dir(self.dir.join(&gen)).unwrap();
        for (file, text) in files {
            std::fs::write(self.dir.join(&gen).join(file), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&gen, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

fn http_script(peer: &Peer) -> String {
    format!("http_get(\"{}\").status == 200\n", peer.url())
}

#[test]
fn healthy_is_200_and_a_broken_peer_is_503() {
    let peer = Peer::start();
    let dir = temp_dir("serve-basic");
    let script = write(&dir, "web.rhai", &http_script(&peer));
    let server = Server::start(&[
        "--probe",
        &format!("web={}", script.display()),
        "--cache",
        "0",
    ]);

    let reply = server.get("/probe/web");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("healthy: "), "{}", reply.body);
    assert!(
        reply.headers.contains("content-type: text/plain"),
        "{}",
        reply.headers
    );
    assert!(
        reply.headers.contains("cache-control: no-store"),
        "{}",
        reply.headers
    );

    peer.status.store(503, Ordering::SeqCst);
    let reply = server.get("/probe/web");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply
            .body
            .starts_with(&format!("unhealthy: GET {} -> 503 (", peer.url())),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("web.rhai:1:1)"), "{}", reply.body);

    // The peer gone entirely: a transport failure is a check error, still 503.
    drop(peer);
    let log = server.finish();
    assert!(log.contains("probe web: healthy:"), "{log}");
    assert!(log.contains("probe web: unhealthy:"), "{log}");
}

#[test]
fn json_head_aliases_unknown_paths_and_methods() {
    let dir = temp_dir("serve-routes");
    let live = write(&dir, "liveness.rhai", "1 + 1 == 2\n");
    let ready = write(
        &dir,
        "readiness.rhai",
        // A password in a URL: never in a body, a header or the log.
        "check(\"closed\", !tcp_open(\"127.0.0.1\", 1, #{timeout: \"200ms\"}));\nlet url = \"http://probe:hunter2secret@127.0.0.1:1/x\";\nfalse\n",
    );
    let server = Server::start(&[
        "--probe",
        live.to_str().unwrap(),
        "--probe",
        ready.to_str().unwrap(),
    ]);
    assert_eq!(server.get("/livez").status, 200);
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(
        server.get("/startupz").status,
        404,
        "no probe named startup"
    );

    let json = request(
        server.port,
        "GET",
        "/probe/liveness",
        &["Accept: application/json"],
    );
    assert_eq!(json.status, 200);
    assert!(
        json.headers.contains("content-type: application/json"),
        "{}",
        json.headers
    );
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(doc["verdict"], "healthy", "{doc}");
    assert_eq!(doc["probe"], "liveness", "{doc}");
    assert_eq!(doc["exit_code"], 0, "{doc}");

    let head = request(server.port, "HEAD", "/probe/readiness", &[]);
    assert_eq!(head.status, 503);
    assert_eq!(head.body, "", "HEAD has no body");

    let post = request(server.port, "POST", "/probe/liveness", &[]);
    assert_eq!(post.status, 405, "{post:?}");
    assert!(
        post.headers.contains("allow: get, head"),
        "{}",
        post.headers
    );

    let missing = server.get("/probe/nope");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("/probe/liveness"),
        "lists the routes: {}",
        missing.body
    );
    assert!(missing.body.contains("/readyz"), "{}", missing.body);
    assert_eq!(server.get("/nope").status, 404);
    for reply in [ready, json, missing] {
        for secret in TEST_SECRETS {
            assert!(!reply.body.contains(secret), "{secret} in {}", reply.body);
        }
    }
    server.finish();
}

#[test]
fn a_cached_result_is_reused_and_concurrent_requests_share_one_evaluation() {
    let peer = Peer::start();
    peer.delay_ms.store(400, Ordering::SeqCst);
    let dir = temp_dir("serve-cache");
    let script = write(&dir, "web.rhai", &http_script(&peer));
    let server = Server::start(&[
        "--probe",
        &format!("web={}", script.display()),
        "--cache",
        "30s",
        "--timeout",
        "5s",
    ]);
    let port = server.port;
    let replies: Vec<Reply> = (0..8)
        .map(|_| thread::spawn(move || request(port, "GET", "/probe/web", &[])))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(peer.hits(), 1, "8 concurrent requests, one evaluation");
    for _ in 0..5 {
        assert_eq!(server.get("/probe/web").status, 200);
    }
    assert_eq!(peer.hits(), 1, "within --cache, no new evaluation");
    let metrics = server.metrics();
    assert!(
        metrics.contains("probe_evaluations_total{probe=\"web\"} 1\n"),
        "{metrics}"
    );
    server.finish();

    // --cache 0: every request evaluates, one after the other.
    let server = Server::start(&[
        "--probe",
        &format!("web={}", script.display()),
        "--cache",
        "0",
    ]);
    peer.delay_ms.store(0, Ordering::SeqCst);
    let before = peer.hits();
    for _ in 0..3 {
        assert_eq!(server.get("/probe/web").status, 200);
    }
    assert_eq!(peer.hits() - before, 3);
    server.finish();
}

#[test]
fn a_result_older_than_the_cache_is_never_served() {
    let peer = Peer::start();
    let dir = temp_dir("serve-max-age");
    let script = write(&dir, "web.rhai", &http_script(&peer));
    let server = Server::start(&[
        "--probe",
        &format!("web={}", script.display()),
        "--cache",
        "300ms",
    ]);
    assert_eq!(server.get("/probe/web").status, 200);
    peer.status.store(500, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(400));
    let reply = server.get("/probe/web");
    assert_eq!(
        reply.status, 503,
        "the healthy result is older than --cache: {reply:?}"
    );
    assert_eq!(peer.hits(), 2);
    server.finish();
}

#[test]
fn a_peer_that_never_answers_ends_at_the_deadline() {
    let hole = support::black_hole();
    let dir = temp_dir("serve-deadline");
    let script = write(
        &dir,
        "slow.rhai",
        &format!("http_get(\"http://127.0.0.1:{hole}/\").ok\n"),
    );
    let server = Server::start(&[
        "--probe",
        &format!("slow={}", script.display()),
        "--timeout",
        "300ms",
    ]);
    let started = Instant::now();
    let reply = server.get("/probe/slow");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.starts_with(&format!(
            "deadline: the 300 ms deadline passed during GET http://127.0.0.1:{hole}/"
        )),
        "{}",
        reply.body
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("probe_failures_total{probe=\"slow\",reason=\"deadline\"} 1\n"),
        "{metrics}"
    );
    server.finish();
}

#[test]
fn an_evaluation_stuck_past_its_deadline_is_answered_at_the_deadline() {
    // A MySQL lookup of a name the resolver never answers: the one call that cannot be
    // interrupted (run's watchdog ends such a run; serve must answer without it).
    let Some(dns) = support::loopback_dns() else {
        return;
    };
    let dir = temp_dir("serve-stuck");
    let script = write(
        &dir,
        "db.rhai",
        &format!(
            "sql_ping(\"mysql://u:{}@slow.example.test/db\")\n",
            support::FAULT_PASSWORD
        ),
    );
    let server = Server::start_wrapped(
        &dns,
        &[
            "--probe",
            &format!("db={}", script.display()),
            "--timeout",
            "300ms",
            "--cache",
            "0",
        ],
    );
    for _ in 0..2 {
        // The second request finds the first evaluation still stuck and waits for it too.
        let started = Instant::now();
        let reply = server.get("/probe/db");
        assert!(
            started.elapsed() < Duration::from_millis(1300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(
            reply.body.starts_with(
                "deadline: the 300 ms deadline passed during sql_ping(mysql://u:***@slow.example.test/db)"
            ),
            "{}",
            reply.body
        );
    }
    // The name is resolved within the deadline (the driver's own lookup takes no timeout), so
    // each evaluation ends at its deadline: the second request got one of its own, both counted.
    let metrics = server.metrics();
    assert!(
        metrics.contains("probe_evaluations_total{probe=\"db\"} 2\n"),
        "{metrics}"
    );
    server.finish();
}

/// The answer as JSON: what an evaluation that ended by itself reports, with its calls (a
/// request that gave up on an evaluation still running has none).
fn json_answer(server: &Server, probe: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let reply = request(
        server.port,
        "GET",
        &format!("/probe/{probe}"),
        &["Accept: application/json"],
    );
    let doc = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body));
    (reply.status, doc, started.elapsed())
}

#[test]
fn a_call_with_a_longer_timeout_ends_the_evaluation_at_its_deadline() {
    let hole = support::black_hole();
    let dir = temp_dir("serve-clamp");
    let script = write(
        &dir,
        "slow.rhai",
        &format!("http_get(\"http://127.0.0.1:{hole}/\", #{{timeout: \"5s\"}}).ok\n"),
    );
    let server = Server::start(&[
        "--probe",
        &format!("slow={}", script.display()),
        "--timeout",
        "300ms",
        "--cache",
        "0",
    ]);
    for _ in 0..2 {
        let (status, doc, elapsed) = json_answer(&server, "slow");
        assert_eq!(status, 503, "{doc}");
        assert!(elapsed < Duration::from_millis(1300), "{elapsed:?}");
        assert_eq!(doc["verdict"], "deadline", "{doc}");
        assert_eq!(doc["calls"][0]["result"], "deadline passed", "{doc}");
        assert!(
            doc["calls"][0]["elapsed_ms"].as_f64().unwrap() < 1000.0,
            "{doc}"
        );
    }
    server.finish();
}

#[test]
fn a_read_that_blocks_is_abandoned_at_the_deadline() {
    // memory() opens its cgroup's files under RHAI_PROBE_ROOT; a FIFO there blocks the open
    // forever, as a file on a hung mount would. serve has no watchdog: the read runs where the
    // deadline can abandon it, and the probe keeps evaluating.
    let root = temp_dir("serve-fifo-root");
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/cgroup"), "0::/\n").unwrap();
    std::fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
    std::fs::write(root.join("sys/fs/cgroup/cgroup.controllers"), "memory\n").unwrap();
    let fifo = std::ffi::CString::new(root.join("sys/fs/cgroup/memory.max").display().to_string())
        .unwrap();
    // SAFETY: mkfifo with a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let dir = temp_dir("serve-fifo");
    let script = write(&dir, "mem.rhai", "memory().used > 0\n");
    let server = Server::start_env(
        &[("RHAI_PROBE_ROOT", &root.display().to_string())],
        &[
            "--probe",
            &format!("mem={}", script.display()),
            "--timeout",
            "300ms",
            "--cache",
            "0",
        ],
    );
    for _ in 0..3 {
        let (status, doc, elapsed) = json_answer(&server, "mem");
        assert_eq!(status, 503, "{doc}");
        assert!(elapsed < Duration::from_millis(1300), "{elapsed:?}");
        assert_eq!(doc["verdict"], "deadline", "{doc}");
        assert_eq!(doc["calls"][0]["function"], "memory", "{doc}");
        assert_eq!(doc["calls"][0]["result"], "deadline passed", "{doc}");
    }
    let metrics = server.metrics();
    assert!(
        metrics.contains("probe_evaluations_total{probe=\"mem\"} 3\n"),
        "{metrics}"
    );
    let log = server.finish();
    assert!(log.contains("did not return before the deadline"), "{log}");
}

#[test]
fn a_configmap_update_reloads_the_script_and_a_bad_one_keeps_the_last_good() {
    let mut map = ConfigMap::new("serve-reload", &[("app.rhai", "true\n")]);
    let server = Server::start(&["--dir", map.dir.to_str().unwrap(), "--cache", "0"]);
    assert_eq!(server.get("/probe/app").status, 200);

    map.update(&[("app.rhai", "// now failing\nfalse\n")]);
    let reloaded = eventually(Duration::from_secs(5), || {
        (server.get("/probe/app").status == 503).then_some(())
    });
    assert!(
        reloaded.is_some(),
        "no reload within 5 s:\n{}",
        server.stderr()
    );

    // A script that no longer compiles: logged with its position, the last good one keeps
    // answering, and /metrics says so.
    map.update(&[("app.rhai", "let x = ;\ntrue\n")]);
    let reported = eventually(Duration::from_secs(5), || {
        server
            .metrics()
            .contains("probe_script_error{probe=\"app\"} 1\n")
            .then_some(())
    });
    assert!(reported.is_some(), "{}", server.metrics());
    let reply = server.get("/probe/app");
    assert_eq!(
        reply.status, 503,
        "still the last good script (false): {reply:?}"
    );
    assert!(reply.body.contains("returned false"), "{}", reply.body);
    let metrics = server.metrics();
    assert!(
        metrics.contains("probe_script_reloads_total{probe=\"app\",result=\"error\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("probe_script_reloads_total{probe=\"app\",result=\"ok\"} 1\n"),
        "{metrics}"
    );

    // Fixed again.
    map.update(&[("app.rhai", "true\n")]);
    let fixed = eventually(Duration::from_secs(5), || {
        (server.get("/probe/app").status == 200).then_some(())
    });
    assert!(fixed.is_some(), "{}", server.stderr());
    assert!(server
        .metrics()
        .contains("probe_script_error{probe=\"app\"} 0\n"));
    let log = server.finish();
    assert!(
        log.contains("app.rhai:1:9"),
        "the error's position is logged:\n{log}"
    );
    assert!(
        log.contains("still running the last version that compiled"),
        "{log}"
    );
}

#[test]
fn probes_come_and_go_with_the_directory() {
    let dir = temp_dir("serve-dir");
    write(&dir, "one.rhai", "true\n");
    write(&dir, "notes.txt", "not a probe\n");
    let server = Server::start(&["--dir", dir.to_str().unwrap()]);
    assert_eq!(server.get("/probe/one").status, 200);
    assert_eq!(server.get("/probe/notes").status, 404);

    write(&dir, "two.rhai", "false\n");
    let added = eventually(Duration::from_secs(5), || {
        (server.get("/probe/two").status == 503).then_some(())
    });
    assert!(added.is_some(), "{}", server.stderr());
    assert!(
        server.threads().contains(&"probe one".to_string()),
        "{:?}",
        server.threads()
    );
    std::fs::remove_file(dir.join("one.rhai")).unwrap();
    let removed = eventually(Duration::from_secs(5), || {
        (server.get("/probe/one").status == 404).then_some(())
    });
    assert!(removed.is_some(), "{}", server.stderr());
    assert!(
        !server.metrics().contains("probe=\"one\""),
        "{}",
        server.metrics()
    );
    let ended = eventually(Duration::from_secs(5), || {
        (!server.threads().contains(&"probe one".to_string())).then_some(())
    });
    assert!(
        ended.is_some(),
        "the removed probe's thread still runs: {:?}",
        server.threads()
    );
    server.finish();
}

#[test]
fn a_script_that_does_not_compile_at_start_answers_503_with_its_position() {
    let dir = temp_dir("serve-broken");
    let script = write(&dir, "broken.rhai", "let x = ;\ntrue\n");
    let server = Server::start(&["--probe", script.to_str().unwrap()]);
    let reply = server.get("/probe/broken");
    assert_eq!(reply.status, 503);
    assert!(reply.body.starts_with("script fault: "), "{}", reply.body);
    assert!(reply.body.contains("broken.rhai:1:9"), "{}", reply.body);
    assert!(server
        .metrics()
        .contains("probe_script_error{probe=\"broken\"} 1\n"));
    server.finish();
}

/// The exposition, parsed by the Prometheus project's own Python client (its OpenMetrics
/// parser, strict about the format): `(name, labels, value)` per sample.
fn parse_openmetrics(text: &str) -> Vec<(String, serde_json::Value, f64)> {
    let code = "import sys, json\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
out = [[s.name, s.labels, s.value] for f in parse(sys.stdin.read()) for s in f.samples]\n\
print(json.dumps(out))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/test-services.sh installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, serde_json::Value, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    samples
}

#[test]
fn metrics_parse_as_openmetrics() {
    let peer = Peer::start();
    let dir = temp_dir("serve-metrics");
    let web = write(&dir, "web.rhai", &http_script(&peer));
    let down = write(
        &dir,
        "down.rhai",
        "check(\"port\", tcp_open(\"127.0.0.1\", 1, #{timeout: \"100ms\"}));\n",
    );
    let server = Server::start(&[
        "--probe",
        &format!("web={}", web.display()),
        "--probe",
        &format!("down={}", down.display()),
        "--cache",
        "0",
    ]);
    for _ in 0..3 {
        server.get("/probe/web");
    }
    server.get("/probe/down");
    let reply = server.get("/metrics");
    assert!(
        reply
            .headers
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{}",
        reply.headers
    );
    let samples = parse_openmetrics(&reply.body);
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
            .map(|s| s.2)
    };
    assert_eq!(value("probe_success", &[("probe", "web")]), Some(1.0));
    assert_eq!(value("probe_success", &[("probe", "down")]), Some(0.0));
    assert_eq!(
        value("probe_evaluations_total", &[("probe", "web")]),
        Some(3.0)
    );
    assert_eq!(
        value(
            "probe_failures_total",
            &[("probe", "down"), ("reason", "unhealthy")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "probe_host_calls_total",
            &[
                ("probe", "web"),
                ("function", "http_get"),
                ("outcome", "pass")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            "probe_host_calls_total",
            &[
                ("probe", "down"),
                ("function", "tcp_open"),
                ("outcome", "fail")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "probe_host_call_duration_seconds_count",
            &[("probe", "web"), ("function", "http_get")]
        ),
        Some(3.0)
    );
    let duration = value("probe_duration_seconds", &[("probe", "web")]).unwrap();
    assert!(duration > 0.0 && duration < 1.0, "{duration}");
    let at = value(
        "probe_last_evaluation_timestamp_seconds",
        &[("probe", "web")],
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - at).abs() < 60.0, "{at} vs {now}");
    assert_eq!(value("probe_script_error", &[("probe", "web")]), Some(0.0));
    server.finish();
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let peer = Peer::start();
    peer.delay_ms.store(600, Ordering::SeqCst);
    let dir = temp_dir("serve-sigterm");
    let script = write(&dir, "web.rhai", &http_script(&peer));
    let mut server = Server::start(&[
        "--probe",
        &format!("web={}", script.display()),
        "--timeout",
        "3s",
    ]);
    let port = server.port;
    let in_flight = thread::spawn(move || request(port, "GET", "/probe/web", &[]));
    let asked = eventually(Duration::from_secs(5), || (peer.hits() == 1).then_some(()));
    assert!(asked.is_some());
    let started = Instant::now();
    assert_eq!(
        server.terminate(Duration::from_secs(5)),
        0,
        "{}",
        server.stderr()
    );
    let reply = in_flight.join().unwrap();
    assert_eq!(
        reply.status, 200,
        "the request in flight was answered: {reply:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the answer"
    );
    assert!(!support::listening(port), "no longer listening");
    let log = server.stderr();
    assert!(log.contains("SIGTERM: not accepting connections"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn bad_starts_say_what_to_do() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No probe at all is a bad command line (64), as docs/usage.md says.
    let (code, err) = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--probe <NAME=SCRIPT>|--dir <DIR>"), "{err}");

    let (code, err) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--probe",
        "x=/nonexistent/x.rhai",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("probe x: /nonexistent/x.rhai: cannot read the script: no such file"),
        "{err}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("serve-bad-start");
    let script = write(&dir, "a.rhai", "true");
    let (code, err) = run(&["--listen", &addr, "--probe", script.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on {addr}: address already in use")),
        "{err}"
    );

    let (code, err) = run(&["--listen", "8099", "--probe", "a.rhai"]);
    assert_eq!(code, 64);
    assert!(err.contains("e.g. 0.0.0.0:8099"), "{err}");

    let (code, err) = run(&[
        "--listen",
        ":0",
        "--dir",
        dir.to_str().unwrap(),
        "--probe",
        script.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("two probes are named \"a\""), "{err}");
}

#[test]
fn a_stalled_client_does_not_hold_the_server() {
    let dir = temp_dir("serve-stalled");
    let script = write(&dir, "liveness.rhai", "true\n");
    let server = Server::start(&["--probe", script.to_str().unwrap()]);
    // Half a request, then silence; and a connection that never sends a byte.
    let mut half = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    half.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // Others are answered meanwhile.
    assert_eq!(server.get("/livez").status, 200);
    // Both are closed once the header timeout (5 s) passes.
    for mut stream in [half, silent] {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    server.finish();
}

#[test]
fn logs_go_where_run_sends_them() {
    let dir = temp_dir("serve-logs");
    let script = write(&dir, "liveness.rhai", "false\n");
    let log = dir.join("serve.log");
    let server = Server::start(&[
        "--probe",
        script.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
    ]);
    assert_eq!(server.get("/livez").status, 503);
    let stderr = server.finish();
    let file = std::fs::read_to_string(&log).unwrap();
    for text in [&stderr, &file] {
        assert!(
            text.contains("rhai-probe INFO  listening on http://127.0.0.1:"),
            "{text}"
        );
        assert!(
            text.contains("rhai-probe WARN  probe liveness: unhealthy: "),
            "{text}"
        );
    }
    // -v adds every host call; -q keeps errors only.
    let tcp = write(
        &dir,
        "tcp.rhai",
        "tcp_open(\"127.0.0.1\", 1, #{timeout: \"100ms\"})\n",
    );
    let verbose = Server::start(&["--probe", tcp.to_str().unwrap(), "-v"]);
    verbose.get("/probe/tcp");
    let stderr = verbose.finish();
    assert!(stderr.contains("TCP 127.0.0.1:1 -> "), "{stderr}");
    let port = support::closed_port();
    let quiet = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-q",
            "--probe",
        ])
        .arg(&script)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up = eventually(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "serve -q did not start listening");
    assert_eq!(request(port, "GET", "/livez", &[]).status, 503);
    unsafe { libc::kill(quiet.id() as i32, libc::SIGTERM) };
    let out = quiet.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "-q: nothing but errors"
    );
}

#[test]
fn a_probe_can_be_a_url_target() {
    let peer = Peer::start();
    let server = Server::start(&[
        "--probe",
        &format!("web={}", peer.url()),
        "--probe",
        "db=tcp://127.0.0.1:5432",
        "--cache",
        "0",
    ]);
    let reply = server.get("/probe/web");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .body
            .starts_with(&format!("healthy: GET {} -> 200", peer.url())),
        "{}",
        reply.body
    );
    peer.status.store(503, Ordering::SeqCst);
    let reply = server.get("/probe/web");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply
            .body
            .starts_with(&format!("unhealthy: GET {} -> 503 in ", peer.url())),
        "{}",
        reply.body
    );
    let reply = server.get("/probe/db");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .body
            .starts_with("healthy: TCP 127.0.0.1:5432 -> connected"),
        "{}",
        reply.body
    );
    server.finish();
}

#[test]
fn each_probe_keeps_its_own_state_in_memory() {
    let dir = temp_dir("serve-state");
    // Each evaluation counts itself (remember/recall): the third is unhealthy. Its `blip` check
    // fails every time, but fewer than 4 times in 5 minutes, which the line names.
    let script = write(
        &dir,
        "count.rhai",
        "let n = recall(\"n\", 0) + 1; remember(\"n\", n);\n\
         check(\"young\", n <= 2);\n\
         check(\"blip\", false, #{ failures: 4, within: \"5m\" });",
    );
    let server = Server::start(&[
        "--probe",
        &format!("a={}", script.display()),
        "--probe",
        &format!("b={}", script.display()),
        "--cache",
        "0",
    ]);
    assert_eq!(server.get("/probe/a").status, 200);
    let second = server.get("/probe/a");
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(
        second
            .body
            .contains("failed 2 times in the last 5 m, fewer than 4"),
        "{}",
        second.body
    );
    assert_eq!(
        server.get("/probe/a").status,
        503,
        "the third evaluation of a"
    );
    // b has its own state: its first evaluation.
    let b = server.get("/probe/b");
    assert_eq!(b.status, 200, "{}", b.body);
    assert!(b.body.contains("failed once in the last 5 m"), "{}", b.body);
    server.finish();
}

#[test]
fn allowlists_hold_for_every_probe_served() {
    let allowed = Peer::start();
    let other = Peer::start();
    let dir = temp_dir("serve-allow");
    let web = write(&dir, "web.rhai", &http_script(&allowed));
    let leak = write(&dir, "leak.rhai", &http_script(&other));
    let token = write(&dir, "token.rhai", "read_file(\"/etc/hostname\") != \"\"\n");
    let server = Server::start(&[
        "--probe",
        &format!("web={}", web.display()),
        "--probe",
        &format!("leak={}", leak.display()),
        "--probe",
        &format!("token={}", token.display()),
        "--cache",
        "0",
        "--allow-net",
        &format!("127.0.0.1:{}", allowed.port),
    ]);
    let reply = server.get("/probe/web");
    assert_eq!(reply.status, 200, "{reply:?}");
    for _ in 0..2 {
        let reply = server.get("/probe/leak");
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(
            reply.body.contains(&format!(
                "script fault: {}:1:1: http_get to 127.0.0.1:{} is not allowed by --allow-net (127.0.0.1:{})",
                leak.display(),
                other.port,
                allowed.port
            )),
            "{}",
            reply.body
        );
    }
    let reply = server.get("/probe/token");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply
            .body
            .contains("read_file of /etc/hostname is not allowed: no --allow-read was given"),
        "{}",
        reply.body
    );
    assert_eq!(other.hits(), 0, "a denied call reached its peer");
    assert_eq!(allowed.hits(), 1);
    server.finish();
}

/// A probe whose failure reason is markup (a peer's or script's text may be anything).
const MARKUP: &str = r#"<script>document.title="pwned"</script><b onmouseover='x'>&amp;"#;

/// The status page's probes: healthy, unhealthy (a peer's 503), one that throws markup, one whose
/// DSN holds a password, and one no request has asked for.
fn status_fixture(dir: &Path, peer: &Peer) -> Vec<String> {
    let scripts = [
        ("ok", "true\n".to_string()),
        ("web", http_script(peer)),
        ("markup", format!("throw {MARKUP:?};\n")),
        (
            "db",
            format!(
                "sql_ping(\"postgres://app:{}@127.0.0.1:{}/app\")\n",
                support::FAULT_PASSWORD,
                support::closed_port()
            ),
        ),
        ("idle", "true\n".to_string()),
    ];
    scripts
        .iter()
        .flat_map(|(name, text)| {
            let path = write(dir, &format!("{name}.rhai"), text);
            ["--probe".to_string(), format!("{name}={}", path.display())]
        })
        .collect()
}

fn no_secrets(what: &str, text: &str) {
    for secret in TEST_SECRETS {
        assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
    }
}

#[test]
fn the_status_page_shows_every_probe_and_escapes_what_scripts_say() {
    let peer = Peer::start();
    peer.status.store(503, Ordering::SeqCst);
    let dir = temp_dir("serve-status");
    let args = status_fixture(&dir, &peer);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--cache", "0"]);
    let server = Server::start(&args);
    for name in ["ok", "web", "markup", "db"] {
        server.get(&format!("/probe/{name}"));
    }
    // Twelve more verdicts of one probe: the page keeps the last ten.
    for _ in 0..12 {
        assert_eq!(server.get("/probe/ok").status, 200);
    }
    let hits = peer.hits();

    let html = request(server.port, "GET", "/", &["Accept: text/html"]);
    assert_eq!(html.status, 200, "{html:?}");
    assert!(
        html.headers.contains("content-type: text/html"),
        "{}",
        html.headers
    );
    assert!(
        html.headers
            .contains("content-security-policy: default-src 'none'; style-src 'unsafe-inline'"),
        "{}",
        html.headers
    );
    let body = &html.body;
    no_secrets("the page", body);
    assert!(!body.to_lowercase().contains("<script"), "{body}");
    assert!(!body.contains("<b "), "{body}");
    assert!(
        body.contains("&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;&lt;b onmouseover=&apos;x&apos;&gt;&amp;amp;"),
        "the reason, escaped: {body}"
    );
    for (name, class, word) in [
        ("ok", "healthy", "healthy"),
        ("web", "unhealthy", "unhealthy"),
        ("markup", "fault", "check error"),
        ("db", "unhealthy", "unhealthy"),
        ("idle", "none", "not evaluated yet"),
    ] {
        let row = body
            .split(&format!("<tr class=\"{class}\" id=\"probe-{name}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {class} row for {name}: {body}"));
        let row = row.split("</tr>").next().unwrap();
        assert!(row.contains(&format!("href=\"/explain/{name}\"")), "{row}");
        assert!(
            row.contains(&format!("<span class=\"verdict\">{word}</span>")),
            "{row}"
        );
        if name == "web" {
            assert!(
                row.contains(&format!("GET {} -&gt; 503", peer.url())),
                "{row}"
            );
            assert!(row.contains(" ago</time>"), "the age: {row}");
        }
        if name == "ok" {
            assert_eq!(row.matches("<li class=\"healthy\"").count(), 10, "{row}");
        }
    }
    assert!(body.contains("1 of 5 probes healthy"), "{body}");

    let json = request(server.port, "GET", "/", &["Accept: application/json"]);
    assert_eq!(json.status, 200);
    no_secrets("the JSON page", &json.body);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let probes = doc["probes"].as_array().unwrap();
    let names: Vec<&str> = probes
        .iter()
        .map(|p| p["probe"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "idle", "markup", "ok", "web"]);
    let by = |name: &str| probes.iter().find(|p| p["probe"] == name).unwrap();
    assert_eq!(by("web")["verdict"], "unhealthy");
    assert_eq!(by("web")["healthy"], false);
    assert!(by("web")["age_ms"].as_f64().unwrap() < 60_000.0);
    assert_eq!(by("idle")["verdict"], serde_json::Value::Null);
    assert_eq!(by("markup")["verdict"], "check-error");
    assert!(
        by("markup")["line"].as_str().unwrap().contains(MARKUP),
        "JSON carries the text as it is: {}",
        by("markup")
    );
    let recent = by("ok")["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 10);
    assert!(
        recent[0]["ago_ms"].as_f64() <= recent[9]["ago_ms"].as_f64(),
        "newest first: {recent:?}"
    );
    assert_eq!(by("ok")["evaluations"], 13);
    assert_eq!(doc["healthy"], false);

    let text = server.get("/");
    assert_eq!(text.status, 200);
    assert!(
        text.headers.contains("content-type: text/plain"),
        "{}",
        text.headers
    );
    assert!(
        text.body
            .starts_with("rhai-probe serve: 1 of 5 probes healthy"),
        "{}",
        text.body
    );
    assert!(text.body.contains("\nidle  "), "{}", text.body);
    assert!(text.body.contains("not evaluated yet"), "{}", text.body);

    // The report of the last evaluation: its calls, positions and times, secrets masked.
    let report = request(server.port, "GET", "/explain/db", &["Accept: text/html"]);
    assert_eq!(report.status, 200, "{report:?}");
    no_secrets("the report", &report.body);
    assert!(report.body.contains("<pre>explain "), "{}", report.body);
    assert!(
        report
            .body
            .contains("sql_ping(postgres://app:***@127.0.0.1:"),
        "{}",
        report.body
    );
    assert!(report.body.contains("db.rhai:1:1"), "{}", report.body);
    assert!(
        report.body.contains("verdict  unhealthy"),
        "{}",
        report.body
    );
    let report = request(
        server.port,
        "GET",
        "/explain/markup",
        &["Accept: text/html"],
    );
    assert!(
        !report.body.to_lowercase().contains("<script"),
        "{}",
        report.body
    );
    assert!(report.body.contains("&lt;script&gt;"), "{}", report.body);
    let plain = server.get("/explain/web");
    assert!(
        plain.body.starts_with("probe web (evaluated "),
        "{}",
        plain.body
    );
    assert!(
        plain.body.contains(&format!("GET {}", peer.url())),
        "{}",
        plain.body
    );
    let report = request(
        server.port,
        "GET",
        "/explain/db",
        &["Accept: application/json"],
    );
    no_secrets("the JSON report", &report.body);
    let doc: serde_json::Value = serde_json::from_str(&report.body).unwrap();
    assert_eq!(doc["calls"][0]["function"], "sql_ping", "{doc}");
    assert_eq!(doc["calls"][0]["line"], 1, "{doc}");
    let idle = server.get("/explain/idle");
    assert!(idle.body.contains("no evaluation yet"), "{}", idle.body);
    assert_eq!(server.get("/explain/nope").status, 404);

    // Looking never evaluates: the peer saw no request from any of it.
    assert_eq!(peer.hits(), hits, "the status page started an evaluation");
    assert!(server
        .get("/explain/idle")
        .body
        .contains("no evaluation yet"));
    server.finish();
}

#[test]
fn the_status_page_says_when_a_changed_script_is_not_used() {
    let mut map = ConfigMap::new("serve-status-reload", &[("live.rhai", "true\n")]);
    let server = Server::start(&[
        "--probe",
        &format!("live={}", map.dir.join("live.rhai").display()),
    ]);
    assert_eq!(server.get("/probe/live").status, 200);
    map.update(&[("live.rhai", "let x = ;\n")]);
    let note = eventually(Duration::from_secs(5), || {
        let page = request(server.port, "GET", "/", &["Accept: text/html"]);
        page.body
            .contains("the changed file is not used")
            .then_some(page.body)
    })
    .unwrap_or_else(|| panic!("no note of the failed reload:\n{}", server.stderr()));
    assert!(note.contains("live.rhai:1:"), "where it fails: {note}");
    assert!(
        note.contains("still running the last version that compiled"),
        "{note}"
    );
    map.update(&[("live.rhai", "true\n")]);
    eventually(Duration::from_secs(5), || {
        let page = server.get("/");
        (!page.body.contains("not used")).then_some(())
    })
    .expect("the note goes once the file compiles");
    server.finish();
}

#[path = "support/webdriver.rs"]
mod webdriver;

/// The page as a browser renders it: per verdict, the badge's text and colour.
const ROWS_JS: &str = "return [...document.querySelectorAll('tbody tr')].map(tr => {
  const v = tr.querySelector('.verdict'); const r = tr.getBoundingClientRect();
  return { id: tr.id, verdict: v.innerText, background: getComputedStyle(v).backgroundColor,
           reason: tr.querySelector('.reason').innerText, left: r.left, right: r.right,
           width: r.width, height: r.height };
});";

/// What decides whether a page reads on a phone.
const LAYOUT_JS: &str = "const sizes = [...document.querySelectorAll('body *')]
  .filter(e => e.offsetParent !== null && e.innerText && e.innerText.trim())
  .map(e => parseFloat(getComputedStyle(e).fontSize));
return { inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
         smallest_font: Math.min(...sizes), scripts: document.scripts.length,
         title: document.title,
         head_shown: getComputedStyle(document.querySelector('thead')).display !== 'none' };";

const HEALTHY_RGB: [u8; 3] = [0xd7, 0xf5, 0xdc];
const UNHEALTHY_RGB: [u8; 3] = [0xfb, 0xd9, 0xd9];
const FAULT_RGB: [u8; 3] = [0xfd, 0xec, 0xc8];

#[test]
fn the_status_page_renders_in_a_browser_and_reads_on_a_phone() {
    let test = "the_status_page_renders_in_a_browser_and_reads_on_a_phone";
    if !webdriver::available(test) {
        return;
    }
    let peer = Peer::start();
    peer.status.store(503, Ordering::SeqCst);
    let dir = temp_dir("serve-browser");
    let args = status_fixture(&dir, &peer);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    for name in ["ok", "web", "markup", "db"] {
        server.get(&format!("/probe/{name}"));
    }
    let url = format!("http://127.0.0.1:{}/", server.port);
    let shots = support::repo("target/status-page");
    std::fs::create_dir_all(&shots).unwrap();

    let desktop = webdriver::Browser::start(&dir.join("profile-desktop"), (1280, 900), false);
    desktop.open(&url);
    let rows = desktop.run(ROWS_JS);
    let row = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == format!("probe-{id}"))
            .unwrap_or_else(|| panic!("no row {id}: {rows}"))
            .clone()
    };
    assert_eq!(rows.as_array().unwrap().len(), 5, "{rows}");
    for (id, word, rgb) in [
        ("ok", "healthy", HEALTHY_RGB),
        ("web", "unhealthy", UNHEALTHY_RGB),
        ("markup", "check error", FAULT_RGB),
    ] {
        let r = row(id);
        assert_eq!(r["verdict"], word, "{r}");
        assert_eq!(
            r["background"],
            format!("rgb({}, {}, {})", rgb[0], rgb[1], rgb[2]),
            "{r}"
        );
        assert!(r["height"].as_f64().unwrap() > 10.0, "{r}");
    }
    assert_eq!(row("idle")["verdict"], "not evaluated yet");
    assert!(
        row("markup")["reason"].as_str().unwrap().contains(MARKUP),
        "the markup shows as text: {}",
        row("markup")
    );
    let layout = desktop.run(LAYOUT_JS);
    assert_eq!(layout["scripts"], 0, "a reason became a script: {layout}");
    assert_eq!(
        layout["title"], "rhai-probe: 1 of 5 probes healthy",
        "{layout}"
    );
    assert_eq!(layout["head_shown"], true, "{layout}");
    let shot = desktop.screenshot();
    std::fs::write(shots.join("desktop.png"), &shot).unwrap();
    for (what, rgb) in [
        ("healthy", HEALTHY_RGB),
        ("unhealthy", UNHEALTHY_RGB),
        ("fault", FAULT_RGB),
    ] {
        let n = webdriver::count_colour(&shot, rgb);
        assert!(
            n > 300,
            "the screenshot has {n} pixels of the {what} colour"
        );
    }

    // The probe's link opens its report.
    desktop.open(&format!("{url}explain/db"));
    let pre = desktop.run("return document.querySelector('pre').innerText;");
    let pre = pre.as_str().unwrap();
    assert!(
        pre.contains("sql_ping(postgres://app:***@127.0.0.1:"),
        "{pre}"
    );
    assert!(pre.contains("db.rhai:1:1"), "{pre}");
    no_secrets("the rendered report", pre);
    drop(desktop);

    let (w, h) = webdriver::PHONE;
    let phone = webdriver::Browser::start(&dir.join("profile-phone"), (w, h), true);
    phone.open(&url);
    let layout = phone.run(LAYOUT_JS);
    assert_eq!(
        layout["inner"], w,
        "the viewport is the phone's width: {layout}"
    );
    assert!(
        layout["scroll"].as_f64() <= layout["inner"].as_f64(),
        "nothing wider than the screen: {layout}"
    );
    assert!(
        layout["smallest_font"].as_f64().unwrap() >= 12.0,
        "{layout}"
    );
    assert_eq!(layout["head_shown"], false, "rows become cards: {layout}");
    let rows = phone.run(ROWS_JS);
    for r in rows.as_array().unwrap() {
        assert!(r["left"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["right"].as_f64().unwrap() <= f64::from(w), "{r}");
        assert!(
            r["width"].as_f64().unwrap() > f64::from(w) * 0.8,
            "a card spans the screen: {r}"
        );
    }
    let shot = phone.screenshot();
    std::fs::write(shots.join("phone.png"), &shot).unwrap();
    let (sw, _, _, _) = webdriver::decode(&shot);
    assert_eq!(sw, w);
    assert!(webdriver::count_colour(&shot, UNHEALTHY_RGB) > 300);
    assert!(webdriver::count_colour(&shot, FAULT_RGB) > 300);
    // The healthy probe's card is further down the phone's screen.
    phone.run("document.getElementById('probe-ok').scrollIntoView(); return null;");
    let shot = phone.screenshot();
    std::fs::write(shots.join("phone-scrolled.png"), &shot).unwrap();
    assert!(webdriver::count_colour(&shot, HEALTHY_RGB) > 300);
    drop(phone);
    assert_eq!(peer.hits(), 1, "the browser's visits evaluated nothing");
    server.finish();
}
