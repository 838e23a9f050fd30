//! The container's own CPU and memory (fixture cgroup trees copied from real v1 and v2 layouts,
//! and this machine's real /sys/fs/cgroup), disk, files, processes, DNS and Redis.

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::{closed_port, repo, temp_dir, Probe};

fn with_root(fixture: &str, script: &str) -> support::Run {
    Probe::script(script)
        .env(
            "RHAI_PROBE_ROOT",
            &repo(&format!("tests/data/cgroup/{fixture}"))
                .display()
                .to_string(),
        )
        .run()
}

#[test]
fn memory_and_cpu_from_cgroup_v2() {
    with_root(
        "v2",
        "let m = memory();\nlet c = cpu();\n\
         m.limit == 536870912 && m.used == 402653184 && m.working_set == 350000000 && m.used_pct == 75.0\n\
         && m.total == 16384000 * 1024 && m.available == 8192000 * 1024 && m.pressure_avg10 == 1.5\n\
         && m.cgroup == \"v2 /sys/fs/cgroup\"\n\
         && c.quota_cpus == 0.5 && c.usage_usec == 8123456 && c.nr_throttled == 12 && c.throttled_usec == 345678\n\
         && c.pressure_avg10 == 3.25",
    )
    .expect(0, "healthy");
}

#[test]
fn unlimited_v2_has_no_limit_and_no_pressure_where_psi_is_absent() {
    with_root(
        "v2-unlimited",
        "let m = memory();\nlet c = cpu();\n\
         m.limit == () && m.used_pct == 402653184.0 / (16384000.0 * 1024.0) * 100.0 && m.pressure_avg10 == ()\n\
         && c.quota_cpus == () && c.pressure_avg10 == ()",
    )
    .expect(0, "healthy");
}

#[test]
fn the_process_s_own_v2_cgroup_is_found_below_the_mount() {
    with_root(
        "v2-nested",
        "let m = memory();\nlet c = cpu();\n\
         m.limit == 1073741824 && m.used == 104857600 && c.quota_cpus == 3.0 && c.usage_usec == 42000000\n\
         && m.cgroup.ends_with(\"cri-containerd-abc.scope\")",
    )
    .expect(0, "healthy");
}

#[test]
fn memory_and_cpu_from_cgroup_v1() {
    // /proc/self/cgroup names the host's path; in the container's namespace the mount's root
    // is the container's own cgroup, and cpu,cpuacct is one combined hierarchy.
    with_root(
        "v1",
        "let m = memory();\nlet c = cpu();\n\
         m.limit == 268435456 && m.used == 134217728 && m.working_set == 100000000 && m.used_pct == 50.0\n\
         && m.pressure_avg10 == () && m.cgroup == \"v1 /sys/fs/cgroup/memory\"\n\
         && c.quota_cpus == 2.0 && c.usage_usec == 5000000 && c.nr_throttled == 7 && c.throttled_usec == 123000",
    )
    .expect(0, "healthy");
    with_root(
        "v1-unlimited",
        "memory().limit == () && cpu().quota_cpus == ()",
    )
    .expect(0, "healthy");
}

#[test]
fn missing_cgroup_files_are_a_check_error_naming_the_cgroup() {
    let dir = temp_dir("no-cgroup");
    std::fs::create_dir_all(dir.join("proc/self")).unwrap();
    std::fs::write(dir.join("proc/self/cgroup"), "0::/\n").unwrap();
    Probe::script("memory().used > 0")
        .env("RHAI_PROBE_ROOT", &dir.display().to_string())
        .run()
        .expect(
            2,
            "memory(): cannot read the memory use of cgroup v1 /sys/fs/cgroup/memory",
        );
}

#[test]
fn this_machines_real_cgroup() {
    Probe::script(
        "let m = memory();\nlet c = cpu();\n\
         m.used > 0 && m.total > 0 && m.used_pct > 0.0 && c.usage_usec > 0 && c.nr_throttled >= 0",
    )
    .run()
    .expect(0, "healthy");
    // A busy loop in this process: the sample sees some use, never more than all allowed CPUs.
    // The cgroup may hold other busy processes (the tests run in parallel), and sampling
    // jitters: a generous bound.
    Probe::script("let p = cpu_usage_pct(200);\np >= 0.0 && p <= 150.0")
        .run()
        .expect(0, "healthy");
    Probe::script("cpu_usage_pct(0)")
        .run()
        .expect(3, "sample_ms must be 1-10000, got 0");
    // The sample is shortened to the time left before the deadline.
    let run = Probe::script("cpu_usage_pct(5000) >= 0.0")
        .args(["--timeout", "300ms"])
        .run();
    assert!(matches!(run.code, 0 | 4), "{}", run.output());
    assert!(
        run.elapsed < Duration::from_millis(300) + Duration::from_secs(1),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn disk_usage_of_a_real_filesystem() {
    let dir = temp_dir("disk");
    Probe::script(&format!(
        "let d = disk_usage(\"{}\");\n\
         d.total > 0 && d.free <= d.total && d.available <= d.free && d.used_pct >= 0.0 && d.used_pct <= 100.0 && d.inodes_free >= 0",
        dir.display()
    ))
    .run()
    .expect(0, "healthy");
    Probe::script("disk_usage(\"/nonexistent/dir\").used_pct < 90.0")
        .run()
        .expect(2, "disk_usage(/nonexistent/dir): no such file or directory");
}

#[test]
fn heartbeat_files() {
    let dir = temp_dir("heartbeat");
    let beat = dir.join("beat");
    let file = std::fs::File::create(&beat).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(100);
    file.set_modified(old).unwrap();
    let path = beat.display().to_string();
    Probe::script(&format!(
        "file_exists(\"{path}\") && !file_exists(\"{path}.missing\") && file_age(\"{path}\") >= 99.0 && file_age(\"{path}\") < 160.0"
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!("check(\"fresh\", file_age(\"{path}\") < 30.0)"))
        .run()
        .expect(
            1,
            &format!("check \"fresh\" failed: condition was false: file_age({path}) -> 10"),
        );
    Probe::script(&format!("file_age(\"{path}.missing\") < 30.0"))
        .run()
        .expect(2, "no such file or directory");
}

/// A copy of `sleep` under a name longer than the 15 characters the kernel keeps in `comm`.
fn sleeper(dir: &std::path::Path, name: &str) -> Child {
    let exe = dir.join(name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    // Another test's fork can inherit the copy's write descriptor until that child execs, and
    // while it is open the kernel refuses to run the file (ETXTBSY); it closes within moments.
    for _ in 0..100 {
        match Command::new(&exe).arg("30").stdin(Stdio::null()).spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20))
            }
            spawned => return spawned.unwrap(),
        }
    }
    panic!("{} stayed busy for 2 s", exe.display());
}

#[test]
fn processes_by_name_long_name_and_command_line() {
    let dir = temp_dir("procs");
    let name = format!("rhai-probe-sleeper-{}", std::process::id());
    let mut child = sleeper(&dir, &name);
    std::thread::sleep(Duration::from_millis(100));
    Probe::script(&format!(
        "process_running(\"{name}\") && process_count(\"{name}\") == 1\n\
         && !process_running(\"{}\") && process_count(\"{name} 30\", #{{full: true}}) == 1\n\
         && !process_running(\"no-such-process-x\")",
        &name[..15]
    ))
    .run()
    .expect(0, "healthy");
    child.kill().unwrap();
    child.wait().unwrap();
    Probe::script(&format!("check(\"app\", process_running(\"{name}\"))"))
        .run()
        .expect(
            1,
            &format!("check \"app\" failed: process_running(\"{name}\") -> none"),
        );
    Probe::script("process_running(\"x\", #{fulll: true})")
        .run()
        .expect(3, "did you mean 'full'?");
}

#[test]
fn dns_names_resolve_or_throw_with_the_name() {
    Probe::script(
        "dns_resolve(\"localhost\").contains(\"127.0.0.1\") && dns_resolve(\"::1\") == [\"::1\"]",
    )
    .run()
    .expect(0, "healthy");
    // Names that do not exist, and a resolver that never answers: tests/faults.rs, against a
    // resolver on loopback.
}

/// A private redis-server with a password, stopped when dropped.
fn private_redis(password: &str) -> support::Child {
    let port = closed_port();
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--requirepass", password]);
    support::start(command, port)
}

#[test]
fn redis_ping_against_real_servers() {
    let shared =
        std::env::var("RHAI_PROBE_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    Probe::script(&format!("redis_ping(\"{shared}\")"))
        .run()
        .expect(0, "healthy");
    let redis = private_redis("Redis-s3cret-pw");
    let port = redis.1;
    Probe::script(&format!(
        "redis_ping(\"redis://:Redis-s3cret-pw@127.0.0.1:{port}/0\")"
    ))
    .run()
    .expect(0, "healthy");
    for (url, reason) in [
        (
            format!("redis://:wrong-redis-pw@127.0.0.1:{port}"),
            "WRONGPASS",
        ),
        (
            format!("redis://127.0.0.1:{port}"),
            "NOAUTH Authentication required",
        ),
        (
            format!("redis://127.0.0.1:{}", closed_port()),
            "connection refused",
        ),
    ] {
        let run = Probe::script(&format!("check(\"cache\", redis_ping(\"{url}\"))"))
            .args(["--format", "json"])
            .run();
        assert_eq!(run.code, 1, "{url}: {}", run.output());
        assert!(
            run.stdout.contains(reason),
            "{reason} not in {}",
            run.stdout
        );
        assert!(!run.output().contains("wrong-redis-pw"), "{}", run.output());
    }
    // A server that is not Redis (MariaDB speaks first, with its greeting), and one that never
    // answers.
    Probe::script("check(\"cache\", redis_ping(\"redis://127.0.0.1:3306\"))")
        .run()
        .expect(1, "not a Redis server (it answered ");
    Probe::script(&format!(
        "check(\"cache\", redis_ping(\"redis://127.0.0.1:{}\", #{{timeout: \"300ms\"}}))",
        support::black_hole()
    ))
    .run()
    .expect(1, "no answer in time");
    // rediss:// to a plain port: the server waits for a command line and never answers the
    // ClientHello; the reason says so, as https:// to a plain HTTP port does.
    Probe::script(&format!(
        "check(\"cache\", redis_ping(\"{}\", #{{timeout: \"500ms\"}}))",
        shared.replacen("redis://", "rediss://", 1)
    ))
    .run()
    .expect(
        1,
        "TLS handshake failed: no answer to the ClientHello; is the port serving plain Redis? (use redis:// for a port without TLS)",
    );
    Probe::script("redis_ping(\"http://x:y@h\")")
        .run()
        .expect(3, "redis_ping: http://x:***@h: expected redis://");
}

#[test]
fn rediss_speaks_tls_and_verifies_the_certificate() {
    // openssl s_server is TLS but not Redis (it waits for an HTTP request): what this shows is
    // the handshake, refused when verified, done when not.
    let Some(port) = support::tls_server() else {
        panic!("openssl is needed for the TLS tests (scripts/test-services.sh installs it)");
    };
    Probe::script(&format!(
        "check(\"cache\", redis_ping(\"rediss://localhost:{port}\"))"
    ))
    .run()
    .expect(1, "TLS certificate rejected (UnknownIssuer)");
    Probe::script(&format!(
        "check(\"cache\", redis_ping(\"rediss://localhost:{port}\", #{{insecure: true, timeout: \"300ms\"}}))"
    ))
    .run()
    .expect(1, "no answer in time");
}
