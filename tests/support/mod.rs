//! Real peers on 127.0.0.1 for the integration tests, and a helper that runs the real binary.
//!
//! Every server binds port 0 on loopback, lives as long as the test process, and bounds how long
//! it holds a connection, so no test can hang or send traffic anywhere else.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_rhai-probe");

/// The longest any server holds a connection open without answering.
const HOLD: Duration = Duration::from_secs(10);

/// A small HTTP/1.1 server with good and bad routes. Returns `http://127.0.0.1:PORT`.
pub fn http_server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || serve(stream, port));
            }
        });
        base
    })
}

fn serve(mut stream: TcpStream, port: u16) {
    let _ = stream.set_read_timeout(Some(HOLD));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_string());
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|h| {
                h.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    // `/request`: what came, as JSON (method, content-type, body); `/redirect-to-request/307`:
    // that status, to `/request`.
    if path == "/request" {
        let length = header("content-length").parse::<usize>().unwrap_or(0);
        let mut body = vec![0; length.min(2 * 1024 * 1024)];
        let _ = reader.read_exact(&mut body);
        let method = request_line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let echo = format!(
            "{{\"method\":{method:?},\"content_type\":{:?},\"body\":{:?}}}",
            header("content-type"),
            String::from_utf8_lossy(&body)
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            if method == "HEAD" { 0 } else { echo.len() }
        );
        let _ = stream.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = stream.write_all(echo.as_bytes());
        }
        let _ = stream.shutdown(Shutdown::Write);
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
    if let Some(code) = path.strip_prefix("/redirect-to-request/") {
        let head = format!(
            "HTTP/1.1 {code} Moved\r\nLocation: /request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
    // `/status/399`: that status, with an empty body.
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let head =
            format!("HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
    let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
        "/health" => ("200 OK", String::new(), b"ok".to_vec()),
        "/bad" => ("503 Service Unavailable", String::new(), b"down".to_vec()),
        "/json" => (
            "200 OK",
            "Content-Type: application/json\r\n".into(),
            br#"{"status":"UP","checks":[{"name":"db","up":true}],"lag":0.25,"note":null}"#
                .to_vec(),
        ),
        "/json-down" => ("200 OK", String::new(), br#"{"status":"DOWN"}"#.to_vec()),
        // Spring Boot's actuator: one with its database component, one without.
        "/actuator" => (
            "200 OK",
            String::new(),
            br#"{"status":"UP","components":{"db":{"status":"UP"},"diskSpace":{"status":"UP"}},"checks":[]}"#.to_vec(),
        ),
        "/actuator-nodb" => (
            "200 OK",
            String::new(),
            br#"{"status":"UP","components":{"ping":{"status":"UP"}},"checks":[]}"#.to_vec(),
        ),
        "/html" => ("200 OK", String::new(), b"<html>not json</html>".to_vec()),
        "/redirect" => ("302 Found", "Location: /health\r\n".into(), Vec::new()),
        "/redirect-relative" => (
            "301 Moved Permanently",
            "Location: health\r\n".into(),
            Vec::new(),
        ),
        "/loop" => ("302 Found", "Location: /loop\r\n".into(), Vec::new()),
        // Same server, another host name: kubelet does not follow this.
        "/elsewhere" => (
            "302 Found",
            format!("Location: http://localhost:{port}/health\r\n"),
            Vec::new(),
        ),
        "/big" => ("200 OK", String::new(), vec![b'x'; 1024 * 1024]),
        "/echo" => ("200 OK", String::new(), header("x-probe").into_bytes()),
        "/headers" => (
            "204 No Content",
            "X-Multi: a\r\nX-Multi: b\r\nX-Case: V\r\n".into(),
            Vec::new(),
        ),
        "/stall" => {
            thread::sleep(HOLD);
            return;
        }
        _ => ("404 Not Found", String::new(), b"no such route".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.shutdown(Shutdown::Write);
    // Drain so the client never sees a reset.
    let _ = reader.read_to_end(&mut Vec::new());
}

/// A listener that accepts connections and never answers. Returns its port.
pub fn black_hole() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        port
    })
}

/// A port on 127.0.0.1 with nothing listening (bound, then released). Never the same one twice
/// in a test process: tests run in parallel, and two servers started on one released port would
/// find each other's listener (a server that failed to bind looked started).
pub fn closed_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A fresh directory under the target dir for scripts and log files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Processes still alive after the run that carry its marker (see `Probe::run`).
    pub left_behind: Vec<String>,
    /// The subcommand (`run`, `explain`, …).
    pub command: String,
}

/// The password and the token tests/faults.rs puts in every URL and DSN.
pub const FAULT_PASSWORD: &str = "fault-pw-4711";
pub const FAULT_TOKEN: &str = "fault-tok-0815";

/// Every password and token the tests hand to the binary: none may appear in any output.
pub const TEST_SECRETS: [&str; 12] = [
    PG_PASSWORD,
    MY_PASSWORD,
    FAULT_PASSWORD,
    FAULT_TOKEN,
    "Amqp-s3cret-pw",
    "Mq-s3cret-pw",
    "Nats-s3cret-pw",
    "tok-nats-4711",
    "Mc-s3cret-pw",
    "hunter2secret",
    "tok-abc-123",
    "sk-live-9999",
];

impl Run {
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Assert the exit code and that the verdict line contains `text`.
    #[track_caller]
    pub fn expect(&self, code: i32, text: &str) -> &Self {
        assert!(
            self.left_behind.is_empty(),
            "processes left behind: {:?}",
            self.left_behind
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        // kubelet keeps 10 KiB of a probe's output; a probe run must fit.
        if self.command == "run" {
            let size = self.stdout.len() + self.stderr.len();
            assert!(
                size < 10 * 1024,
                "output is {size} bytes:\n{}",
                self.output()
            );
        }
        for secret in TEST_SECRETS {
            assert!(
                !self.output().contains(secret),
                "{secret} leaked:\n{}",
                self.output()
            );
        }
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A builder for one run: `Probe::script("true").args(["--timeout", "1s"]).run()`.
pub struct Probe {
    args: Vec<String>,
    script: Option<(String, Vec<u8>)>,
    stdin: Option<Vec<u8>>,
    hold_stdin: bool,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
    signal: Option<(Duration, i32)>,
}

impl Probe {
    /// Run `rhai-probe run` on a script with this text (written to a file named `probe.rhai`).
    pub fn script(text: &str) -> Self {
        Self::script_bytes("probe.rhai", text.as_bytes())
    }

    /// Use another subcommand than `run` (`explain`), with the same script and options.
    pub fn command_name(mut self, name: &str) -> Self {
        self.args[0] = name.into();
        self
    }

    pub fn script_bytes(name: &str, bytes: &[u8]) -> Self {
        Probe {
            args: vec!["run".into()],
            script: Some((name.into(), bytes.to_vec())),
            stdin: None,
            hold_stdin: false,
            env: Vec::new(),
            wrapper: Vec::new(),
            signal: None,
        }
    }

    /// Run the binary with exactly these arguments.
    pub fn command<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Probe {
            args: args.into_iter().map(Into::into).collect(),
            script: None,
            stdin: None,
            hold_stdin: false,
            env: Vec::new(),
            wrapper: Vec::new(),
            signal: None,
        }
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Keep standard input open and silent for the whole run.
    pub fn hold_stdin(mut self) -> Self {
        self.hold_stdin = true;
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Start the binary through this command (`unshare ...`, `setpriv ...`), which must end by
    /// exec'ing its arguments so that the signal and the exit code are the binary's own.
    pub fn wrapper<I: IntoIterator<Item = S>, S: Into<String>>(mut self, argv: I) -> Self {
        self.wrapper = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Send `signal` to the process `after` it started.
    pub fn signal_after(mut self, after: Duration, signal: i32) -> Self {
        self.signal = Some((after, signal));
        self
    }

    pub fn run(self) -> Run {
        self.run_with_pid().0
    }

    /// As `run`, with the PID the binary ran as.
    pub fn run_with_pid(self) -> (Run, u32) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut args = self.args;
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        // Every process of this run carries the marker in its environment: any still alive
        // after the run is a child the probe left behind.
        let marker = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        cmd.env("RHAI_PROBE_TEST_RUN", &marker);
        if let Some((name, bytes)) = &self.script {
            // Run from the script's directory with a relative path, as a person would, so
            // messages read `probe.rhai:1:9`.
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = temp_dir(&format!("run-{}-{n}", std::process::id()));
            std::fs::write(dir.join(name), bytes).unwrap();
            args.push(name.clone());
            cmd.current_dir(dir);
        }
        cmd.args(&args)
            .env_remove("RUST_LOG")
            .env_remove("RHAI_PROBE_TIMEOUT")
            .env_remove("RHAI_PROBE_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() || self.hold_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        if let Some((after, signal)) = self.signal {
            let pid = child.id() as i32;
            thread::spawn(move || {
                thread::sleep(after);
                // SAFETY: kill(2) with a pid we spawned; at worst it has exited and been reaped,
                // and the pid is not reused within this short window.
                unsafe { libc::kill(pid, signal) };
            });
        }
        // Written then closed; or, with hold_stdin, kept open and silent until the run ends.
        let held = match (child.stdin.take(), &self.stdin) {
            (Some(mut pipe), Some(bytes)) => {
                let _ = pipe.write_all(bytes);
                None
            }
            (pipe, None) if self.hold_stdin => pipe,
            _ => None,
        };
        let Output {
            status,
            stdout,
            stderr,
        } = wait_bounded(child, Duration::from_secs(30));
        drop(held);
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: started.elapsed(),
            left_behind: carrying(&format!("RHAI_PROBE_TEST_RUN={marker}")),
            command: args.first().cloned().unwrap_or_default(),
        };
        (run, pid)
    }
}

/// Live processes whose environment holds `entry`, as `pid (name)`.
fn carrying(entry: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == entry.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| {
            let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} ({})", e.file_name().to_string_lossy(), name.trim())
        })
        .collect()
}

/// Wait for the child, killing it if it outlives `limit` (a hang is a failure, not a stuck CI).
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "rhai-probe still running after {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A TLS server with a self-signed certificate for `localhost`, from the openssl command line
/// tool (`s_server -www` answers any GET with 200 and a status page). `None` when openssl is not
/// installed. Returns the port; `timeout` ends the server after two minutes.
pub fn tls_server() -> Option<u16> {
    static PORT: OnceLock<Option<u16>> = OnceLock::new();
    *PORT.get_or_init(|| {
        let dir = temp_dir("tls");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !made.success() {
            return None;
        }
        let port = closed_port();
        let mut server = Command::new("timeout")
            .args(["120", "openssl", "s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while !listening(port) {
            if started.elapsed() > Duration::from_secs(10)
                || server.try_wait().ok().flatten().is_some()
            {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Some(port)
    })
}

/// The shared PostgreSQL and MariaDB these machines run (trust / empty-password root), as
/// DSNs; `RHAI_PROBE_PG` and `RHAI_PROBE_MYSQL` point the tests elsewhere.
pub fn shared_pg() -> String {
    std::env::var("RHAI_PROBE_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn shared_mysql() -> String {
    std::env::var("RHAI_PROBE_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Two private PostgreSQL servers started from the installed binaries, because the shared one
/// trusts every local login and so cannot show a wrong password: both require a scram-sha-256
/// password from `PG_USER`; `plain` has TLS off, `tls` serves a certificate for `localhost`
/// (not 127.0.0.1) signed by `ca`. They run as long as the test process: a shell holds our pipe
/// and stops them (and removes their files) when it closes.
pub struct PrivatePg {
    pub plain: u16,
    pub tls: u16,
    pub socket_dir: String,
    pub ca: PathBuf,
    pub log: PathBuf,
    /// A client certificate and key the TLS server accepts (signed by `ca`).
    pub client: (PathBuf, PathBuf),
    /// One it refuses (self-signed).
    pub stranger: (PathBuf, PathBuf),
}

pub const PG_USER: &str = "probe_admin";
pub const PG_PASSWORD: &str = "Pg-s3cret-pw";

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("RHAI_PROBE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").exists());
    dirs.sort();
    dirs.pop().expect(
        "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install postgresql, \
         or set RHAI_PROBE_PG_BIN); .ci/run installs them",
    )
}

pub fn private_pg() -> &'static PrivatePg {
    static PG: OnceLock<PrivatePg> = OnceLock::new();
    PG.get_or_init(|| {
        let bin = pg_bin();
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("rhai-probe-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), PG_PASSWORD).unwrap();
        // A CA and a server certificate for localhost only; client certificates.
        pki(&dir, PG_USER);
        let as_postgres = |program: &str| {
            let mut cmd = if root {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            cmd.current_dir(&dir);
            cmd
        };
        if root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success();
            assert!(ok, "chown postgres {dir:?}");
        }
        std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let out = as_postgres("initdb")
            .args(["-D", "data", "-U", PG_USER, "--pwfile=pw", "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let ok = Command::new("cp").args(["-a", "data", "data-tls"]).current_dir(&dir).status().unwrap().success();
        assert!(ok, "cp data");
        // On the TLS server, database template1 also wants a client certificate signed by the CA
        // (and the password): the first matching line of pg_hba.conf wins.
        let hba = dir.join("data-tls/pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("hostssl template1 all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n{rest}"),
        )
        .unwrap();
        let (plain, tls) = (closed_port(), closed_port());
        let socket_dir = dir.display().to_string();
        let postgres = |data: &str, port: u16, ssl: bool| -> String {
            let mut line = String::new();
            if root {
                line.push_str("setpriv --reuid=postgres --regid=postgres --init-groups ");
            }
            line.push_str(&format!(
                "{} -D {data} -c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} \
                 -c fsync=off -c log_connections=on -c log_disconnections=on -c max_connections=40",
                bin.join("postgres").display()
            ));
            if ssl {
                line.push_str(&format!(
                    " -c ssl=on -c ssl_cert_file={socket_dir}/server.pem -c ssl_key_file={socket_dir}/server.key -c ssl_ca_file={socket_dir}/ca.pem"
                ));
            } else {
                line.push_str(" -c ssl=off");
            }
            line
        };
        let script = format!(
            "cd {socket_dir} || exit 1; {} 2>plain.log & a=$!; {} 2>tls.log & b=$!; read _; kill -INT $a $b; wait; rm -rf {socket_dir}",
            postgres("data", plain, false),
            postgres("data-tls", tls, true)
        );
        // Never waited for: it lives as long as this process, and ends when our pipe closes.
        #[allow(clippy::zombie_processes)]
        let mut shell = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Never closed until the test process exits.
        std::mem::forget(shell.stdin.take());
        let started = Instant::now();
        for log in ["plain.log", "tls.log"] {
            loop {
                let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
                if text.contains("ready to accept connections") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "private PostgreSQL did not start: {text}"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        PrivatePg {
            plain,
            tls,
            socket_dir,
            ca: dir.join("ca.pem"),
            log: dir.join("plain.log"),
            client: (dir.join("client.pem"), dir.join("client.key")),
            stranger: (dir.join("stranger.pem"), dir.join("stranger.key")),
        }
    })
}

/// With openssl in `dir`: a CA (ca.pem, ca.key), a server certificate for localhost only
/// (server.pem, server.key), a client certificate for `client_cn` signed by the CA (client.pem,
/// client.key) and a self-signed one a server must refuse (stranger.pem, stranger.key).
fn pki(dir: &Path, client_cn: &str) {
    let ssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args:?} failed");
    };
    let subject = format!("/CN={client_cn}");
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=probe test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &subject,
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    std::fs::write(
        dir.join("client-ext"),
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "client-ext",
        "-out",
        "client.pem",
    ]);
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-keyout",
        "stranger.key",
        "-out",
        "stranger.pem",
    ]);
}

/// A private MariaDB server with TLS (a certificate for localhost signed by `ca`) and one account,
/// `MY_X509_USER`, that must present a client certificate signed by that CA (`REQUIRE X509`),
/// because the shared server has no TLS. Runs as long as the test process, as [`private_pg`].
pub struct PrivateMariadb {
    pub port: u16,
    pub ca: PathBuf,
    pub client: (PathBuf, PathBuf),
    pub stranger: (PathBuf, PathBuf),
}

pub const MY_X509_USER: &str = "probe_x509";

pub fn private_mariadb() -> &'static PrivateMariadb {
    static MY: OnceLock<PrivateMariadb> = OnceLock::new();
    MY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rhai-probe-my-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        pki(&dir, MY_X509_USER);
        let user = if is_root() { "--user=root" } else { "" };
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(Some(user).filter(|u| !u.is_empty()))
            .current_dir(&dir)
            .output()
            .expect("mariadb-install-db (scripts/test-services.sh installs mariadb-server)");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = closed_port();
        let d = dir.display();
        let script = format!(
            "cd {d} || exit 1; /usr/sbin/mariadbd --no-defaults {user} --datadir={d}/data --port={port} --bind-address=127.0.0.1 \
             --socket={d}/sock --pid-file={d}/pid --skip-log-bin --innodb-buffer-pool-size=16M --skip-name-resolve \
             --ssl-ca={d}/ca.pem --ssl-cert={d}/server.pem --ssl-key={d}/server.key 2>server.log & a=$!; \
             read _; kill $a; wait; rm -rf {d}"
        );
        #[allow(clippy::zombie_processes)]
        let mut shell = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::mem::forget(shell.stdin.take());
        let started = Instant::now();
        while !listening(port) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "private MariaDB did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
        let sql = format!(
            "CREATE USER '{MY_X509_USER}'@'%' REQUIRE X509; GRANT USAGE ON *.* TO '{MY_X509_USER}'@'%';"
        );
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-S"])
            .arg(dir.join("sock"))
            .args(["-e", &sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb: {}", String::from_utf8_lossy(&out.stderr));
        PrivateMariadb {
            port,
            ca: dir.join("ca.pem"),
            client: (dir.join("client.pem"), dir.join("client.key")),
            stranger: (dir.join("stranger.pem"), dir.join("stranger.key")),
        }
    })
}

/// A server or tool a test needs is missing: in CI (`CI=true`) the test fails; elsewhere it is
/// skipped, saying so. Returns only when skipping.
pub fn unavailable(test: &str, what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {what} (CI must have it: scripts/test-services.sh installs it)");
    }
    eprintln!("SKIPPED {test}: {what}");
}

/// A server the tests started, killed when dropped.
pub struct Child(pub std::process::Child, pub u16);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a server listens on 127.0.0.1:`port`. A connect to a port nobody listens on yet can,
/// rarely, connect the socket to itself (the kernel picks `port` as its ephemeral source port,
/// and TCP's simultaneous open succeeds): that is not a server.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Start `command`, which listens on 127.0.0.1:`port`, and wait (at most 10 s) until it accepts.
pub fn start(mut command: Command, port: u16) -> Child {
    let name = format!("{:?}", command.get_program());
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/test-services.sh installs it)"));
    let mut child = Child(child, port);
    let started = Instant::now();
    while !listening(port) {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("{name} exited ({status}) before listening on {port}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} did not start"
        );
        thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A self-signed certificate for `localhost` and 127.0.0.1, valid 2020-2100, written to `dir`
/// as cert.pem and key.pem (readable by all: servers may drop root). Returns their paths.
pub fn certificate_files(dir: &Path) -> (PathBuf, PathBuf) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A rustls server configuration sending `chain` (leaf first) with `key`, for the tests' own
/// TLS servers.
pub fn tls_server_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> std::sync::Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    std::sync::Arc::new(config)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A MariaDB/MySQL account with a password on the shared server (created or reset by root).
pub const MY_USER: &str = "rhai_probe_pw";
pub const MY_PASSWORD: &str = "My-s3cret-pw";

pub fn mysql_password_user() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        use mysql::prelude::Queryable;
        let mut conn = mysql::Conn::new(mysql::Opts::from_url(&shared_mysql()).unwrap())
            .expect("the shared MariaDB (see README: database tests)");
        conn.query_drop(format!(
            "CREATE USER IF NOT EXISTS '{MY_USER}'@'%' IDENTIFIED BY '{MY_PASSWORD}'"
        ))
        .unwrap();
        conn.query_drop(format!(
            "ALTER USER '{MY_USER}'@'%' IDENTIFIED BY '{MY_PASSWORD}'"
        ))
        .unwrap();
        conn.query_drop(format!("GRANT SELECT ON test.* TO '{MY_USER}'@'%'"))
            .unwrap();
    });
    MY_USER
}

/// A wrapper (see `Probe::wrapper`) that runs the probe in a private mount namespace after the
/// shell commands in `setup` (bind mounts). `None`, with a visible note, where namespaces cannot
/// be made (not root, or no unshare).
pub fn in_mount_namespace(setup: &str) -> Option<Vec<String>> {
    static USABLE: OnceLock<bool> = OnceLock::new();
    let usable = *USABLE.get_or_init(|| {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !usable {
        eprintln!("SKIPPED: cannot make a mount namespace here (needs root and unshare)");
        return None;
    }
    Some(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!("{setup} && exec \"$0\" \"$@\""),
        ]
        .map(String::from)
        .to_vec(),
    )
}

/// A DNS server on 127.0.0.1:53 (UDP), and a wrapper that makes it the probe's only resolver:
/// names starting with `slow.` are never answered, every other name is NXDOMAIN. So name
/// lookups in tests never leave the machine. `None`, with a note, when port 53 is taken or
/// namespaces cannot be made.
pub fn loopback_dns() -> Option<Vec<String>> {
    static CONF: OnceLock<Option<PathBuf>> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:53") else {
            eprintln!("SKIPPED: 127.0.0.1:53 cannot be bound for a test resolver");
            return None;
        };
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                if n < 12 || buf[12..n].starts_with(b"\x04slow") {
                    continue;
                }
                // The query with its header turned into an answer: QR, RD+RA, NXDOMAIN, no records.
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x80 | (reply[2] & 0x01);
                reply[3] = 0x80 | 3;
                reply[6..12].fill(0);
                let _ = socket.send_to(&reply, from);
            }
        });
        let dir = temp_dir("loopback-dns");
        let conf = dir.join("resolv.conf");
        std::fs::write(
            &conf,
            "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
        )
        .unwrap();
        Some(conf)
    });
    let conf = conf.as_ref()?;
    in_mount_namespace(&format!("mount --bind {} /etc/resolv.conf", conf.display()))
}
