//! The shipping image, run by a real Docker engine: HEALTHCHECK, compose's depends_on
//! service_healthy with `rhai-probe wait` as an entrypoint, and the image's least-privilege run.
//!
//! scripts/docker.sh installs and starts the engine (no bridge, no iptables rules) and
//! scripts/image.sh builds the image from the static binary, FROM scratch: no image is pulled.
//! Every container runs with `--network host`, so all traffic stays on 127.0.0.1, and is removed
//! at the end. The service in the containers is `rhai-probe serve` itself, answering
//! `/probe/app` with 200 while a file the test controls exists.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use support::{closed_port, repo, temp_dir};

const IMAGE: &str = "rhai-probe:local";

/// Debian's client, as the scripts use (another `docker` on PATH may lack the buildx plugin).
fn docker_bin() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new(docker_bin())
        .args(args)
        .output()
        .expect("the docker client")
}

#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The engine and the image, once per test process; `false` when there is no engine (skipped
/// outside CI, a failure in CI).
fn image(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        if !docker(&["info"]).status.success() {
            return Err("no Docker daemon answers (scripts/docker.sh starts one)".into());
        }
        // Without the variables cargo sets for a test (CARGO_*, RUSTC, …): they are not the
        // shell's, and the release build would see a changed environment and build again.
        let mut command = Command::new(repo("scripts/image.sh"));
        command.arg(IMAGE).env_clear();
        for (key, value) in std::env::vars_os() {
            let keep = key.to_str().is_some_and(|k| {
                matches!(
                    k,
                    "PATH" | "HOME" | "USER" | "CI" | "CARGO_HOME" | "RUSTUP_HOME"
                )
            });
            if keep {
                command.env(key, value);
            }
        }
        let out = command.output().expect("scripts/image.sh");
        if !out.status.success() {
            panic!(
                "scripts/image.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    });
    match ready {
        Ok(()) => true,
        Err(why) => {
            support::unavailable(test, why);
            false
        }
    }
}

/// `docker run` arguments: `head`, the least-privilege flags every test container gets (host
/// network, read-only root, no capabilities, no privilege gain), then `tail`.
fn least_privileged<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    let least = [
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ];
    [head, &least[..], tail].concat()
}

/// A name unique to this test process, for containers, images and compose projects.
fn name(what: &str) -> String {
    format!("rhai-probe-test-{what}-{}", std::process::id())
}

/// Removes a container (and an image) when dropped, however the test ends.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = docker(&args);
        }
    }
}

/// The state directory a container's probe reads (mounted read-only): `app.rhai` is healthy
/// while `up` exists.
fn state_dir(what: &str) -> PathBuf {
    let dir = temp_dir(what);
    std::fs::write(dir.join("app.rhai"), "file_exists(\"/state/up\")\n").unwrap();
    // The image runs as 65532: the files must be readable by it.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&dir)
        .status();
    dir
}

fn health(container: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", container])
}

/// Wait until the container's health is `want`, at most `limit`; returns how long it took.
#[track_caller]
fn wait_health(container: &str, want: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = health(container);
        if now == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{container} still {now}, not {want}, after {limit:?}:\n{}",
            docker_ok(&["inspect", "--format", "{{json .State.Health}}", container])
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthcheck_exec_form_follows_the_service_with_a_script_file() {
    if !image("healthcheck_exec_form_follows_the_service_with_a_script_file") {
        return;
    }
    healthcheck("file", |port, state| {
        std::fs::write(
            state.join("health.rhai"),
            format!(
                "check(\"app\", http_get(\"http://127.0.0.1:{port}/probe/app\").status == 200)\n"
            ),
        )
        .unwrap();
        "\"/state/health.rhai\"".into()
    });
}

#[test]
fn healthcheck_exec_form_follows_the_service_with_eval() {
    if !image("healthcheck_exec_form_follows_the_service_with_eval") {
        return;
    }
    healthcheck("eval", |port, _| {
        format!(
            "\"-e\", \"check(\\\"app\\\", http_get(\\\"http://127.0.0.1:{port}/probe/app\\\").status == 200)\""
        )
    });
}

/// A HEALTHCHECK whose `run` arguments `args` gives (JSON array items), on the serve container.
fn healthcheck(form: &str, args: impl Fn(u16, &Path) -> String) {
    let port = closed_port();
    let state = state_dir(&format!("docker-healthcheck-{form}"));
    let run_args = args(port, &state);
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&state)
        .status();
    let tag = format!("{}:latest", name(&format!("healthcheck-{form}")));
    let container = name(&format!("healthcheck-{form}"));
    let _cleanup = Cleanup(vec![
        vec!["rm".into(), "-f".into(), container.clone()],
        vec!["rmi".into(), "-f".into(), tag.clone()],
    ]);
    // HEALTHCHECK in the exec form: no shell in the image. Interval 1 s, 2 retries.
    let context = temp_dir(&format!("docker-healthcheck-image-{form}"));
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {IMAGE}\n\
             HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
             CMD [\"/usr/local/bin/rhai-probe\", \"run\", {run_args}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(docker_bin())
        .args(["build", "-q", "-t", &tag])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(state.join("up"), "").unwrap();
    docker_ok(&least_privileged(
        &["run", "-d", "--name", &container],
        &[
            "-v",
            &format!("{}:/state:ro", state.display()),
            &tag,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--probe",
            "app=/state/app.rhai",
            "--cache",
            "0",
        ],
    ));
    wait_health(&container, "healthy", Duration::from_secs(20));
    // The service stops answering 200: unhealthy within interval × retries (2 s), plus a
    // generous margin for a loaded machine.
    std::fs::remove_file(state.join("up")).unwrap();
    let took = wait_health(&container, "unhealthy", Duration::from_secs(15));
    eprintln!("unhealthy after {took:?}");
    let log = docker_ok(&[
        "inspect",
        "--format",
        "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}",
        &container,
    ]);
    assert!(
        log.contains(&format!(
            "1 unhealthy: check \"app\" failed: GET http://127.0.0.1:{port}/probe/app -> 503"
        )),
        "{log}"
    );
    std::fs::write(state.join("up"), "").unwrap();
    wait_health(&container, "healthy", Duration::from_secs(15));
}

#[test]
fn compose_waits_for_a_healthy_service_and_wait_runs_as_an_entrypoint() {
    if !image("compose_waits_for_a_healthy_service_and_wait_runs_as_an_entrypoint") {
        return;
    }
    let port = closed_port();
    let state = state_dir("docker-compose");
    std::fs::write(
        state.join("health.rhai"),
        format!("http_get(\"http://127.0.0.1:{port}/probe/app\").status == 200\n"),
    )
    .unwrap();
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&state)
        .status();
    let project = name("compose").replace('-', "");
    let file = state.join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            r#"version: "2.4"
services:
  app:
    image: {IMAGE}
    network_mode: host
    read_only: true
    command: ["serve", "--listen", "127.0.0.1:{port}", "--probe", "app=/state/app.rhai", "--cache", "0"]
    volumes: ["{state}:/state:ro"]
    healthcheck:
      test: ["CMD", "/usr/local/bin/rhai-probe", "run", "/state/health.rhai"]
      interval: 1s
      timeout: 2s
      retries: 3
  web:
    image: {IMAGE}
    network_mode: host
    read_only: true
    depends_on:
      app:
        condition: service_healthy
    entrypoint: ["/usr/local/bin/rhai-probe", "wait", "http://127.0.0.1:{port}/probe/app", "--for", "30s",
                 "--", "/usr/local/bin/rhai-probe", "run", "-e", "cpu_count() >= 1"]
"#,
            state = state.display()
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .arg("-f")
            .arg(&file)
            .args(["-p", &project])
            .args(args)
            .env("DOCKER_HOST", "unix:///var/run/docker.sock")
            .output()
            .expect("docker-compose (scripts/docker.sh installs it)")
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "--timeout", "1"]);
        }
    }
    let _down = Down(&compose);
    // The service becomes healthy only once `up` exists, 3 s after `up` starts: web, which
    // depends on it being healthy, must start after that.
    let state_for_later = state.clone();
    let later = thread::spawn(move || {
        thread::sleep(Duration::from_secs(3));
        std::fs::write(state_for_later.join("up"), "").unwrap();
        Instant::now()
    });
    let started = Instant::now();
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    later.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "compose started web before app was healthy: {:?}",
        started.elapsed()
    );
    // web: the wait passes at once (app is healthy), then execs the command, which exits 0.
    let web = format!("{project}_web_1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let state = docker_ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            &web,
        ]);
        if state.starts_with("exited") {
            break state;
        }
        assert!(Instant::now() < deadline, "web still {state}");
        thread::sleep(Duration::from_millis(100));
    };
    let logs = docker(&["logs", &web]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert_eq!(code, "exited 0", "{logs}");
    assert!(logs.contains("healthy: "), "{logs}");
    assert_eq!(health(&format!("{project}_app_1")), "healthy");
}

#[test]
fn the_image_runs_least_privileged_and_installs_into_a_volume() {
    if !image("the_image_runs_least_privileged_and_installs_into_a_volume") {
        return;
    }
    assert_eq!(
        docker_ok(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE]),
        "65532:65532"
    );
    // The init-container pattern: `install DIR` into a mounted directory, from a read-only
    // container with no capabilities and no privilege gain.
    let dest = temp_dir("docker-install");
    let _ = Command::new("chown").arg("65532:65532").arg(&dest).status();
    let out = docker_ok(&least_privileged(
        &["run", "--rm"],
        &[
            "-v",
            &format!("{}:/opt/rhai-probe", dest.display()),
            IMAGE,
            "install",
            "/opt/rhai-probe",
        ],
    ));
    eprintln!("{out}");
    let installed = dest.join("rhai-probe");
    let run = Command::new(&installed)
        .args(["run", "-e", "cpu_count() >= 1"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    // The shipped example scripts are in the image, and the binary there runs them.
    let run = docker(&least_privileged(
        &["run", "--rm"],
        &[
            IMAGE,
            "check",
            "/usr/share/rhai-probe/scripts/liveness.rhai",
        ],
    ));
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
