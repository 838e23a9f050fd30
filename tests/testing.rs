//! `rhai-probe test`: scripts against stubbed cases, no network, no clock.

mod support;

use support::{closed_port, repo, temp_dir, Probe};

/// Write a script and its cases beside it, and run `rhai-probe test` on them.
fn test(script: &str, cases: &str) -> support::Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = temp_dir(&format!("cases-{}-{n}", std::process::id()));
    std::fs::write(dir.join("probe.rhai"), script).unwrap();
    std::fs::write(dir.join("probe.cases.toml"), cases).unwrap();
    Probe::command(["test", &dir.join("probe.rhai").display().to_string()]).run()
}

/// The example probes in scripts/, in order.
fn shipped_scripts() -> Vec<std::path::PathBuf> {
    let mut scripts: Vec<_> = std::fs::read_dir(repo("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    scripts
}

#[test]
fn every_shipped_script_has_cases_and_passes_them() {
    let scripts = shipped_scripts();
    assert!(scripts.len() >= 6, "{scripts:?}");
    for script in scripts {
        let cases = script.with_extension("cases.toml");
        assert!(
            cases.exists(),
            "{} has no {}",
            script.display(),
            cases.display()
        );
        let run = Probe::command(["test", &script.display().to_string()]).run();
        assert_eq!(
            run.code,
            0,
            "{}:\n{}{}",
            script.display(),
            run.stdout,
            run.stderr
        );
        assert!(run.stdout.contains(" passed, 0 failed"), "{}", run.stdout);
        assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    }
}

#[test]
fn stubs_replace_the_network_entirely() {
    // The URL is a closed port: only a stub can make this healthy.
    let url = format!("http://127.0.0.1:{}/health", closed_port());
    let run = test(
        &format!("let r = http_get(\"{url}\");\nr.ok && r.status == 204 && r.json().up"),
        &format!(
            "[[case]]\nname = \"stubbed\"\nexpect = \"healthy\"\n[[case.calls]]\nfn = \"http_get\"\nargs = [\"{url}\"]\nreturns = {{ status = 204, body = '{{\"up\": true}}' }}\n"
        ),
    );
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(run.stdout, "ok    stubbed\n1 passed, 0 failed\n");
}

#[test]
fn per_argument_answers_raises_and_hangs() {
    let script = "check(\"a\", || http_get(\"http://a/\").ok);\ncheck(\"b\", || http_get(\"http://b/\").ok);\ncheck(\"port\", tcp_open(\"db\", 5432));";
    let cases = r#"
[[case]]
name = "b refuses"
expect = "unhealthy"
reason = 'check "b" failed: http_get("http://b/"): connection refused'
stubs.tcp_open = true
[[case.calls]]
fn = "http_get"
args = ["http://a/"]
returns = { status = 200 }
[[case.calls]]
fn = "http_get"
args = ["http://b/"]
raises = "connection refused"

[[case]]
name = "a hangs"
expect = "deadline"
reason = 'during http_get("http://a/")'
[[case.calls]]
fn = "http_get"
args = ["http://a/"]
hangs = true

[[case]]
name = "port by argument"
expect = "unhealthy"
reason = 'check "port" failed'
stubs.http_get = { status = 200 }
[[case.calls]]
fn = "tcp_open"
args = ["db", 5432]
returns = false
"#;
    let started = std::time::Instant::now();
    let run = test(script, cases);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.ends_with("3 passed, 0 failed\n"),
        "{}",
        run.stdout
    );
    // `hangs` ends the case at once; no clock is waited for.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_call_without_a_stub_fails_its_case_and_says_how_to_stub_it() {
    let run = test(
        "check(\"load\", load_avg() < 4.0);\ncheck(\"api\", || http_get(\"http://app/health\").ok)",
        "[[case]]\nname = \"forgot\"\nexpect = \"healthy\"\nstubs.load_avg = 1.0\n",
    );
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stdout.contains(
        "FAIL  forgot: no stub for http_get(\"http://app/health\") in case \"forgot\"; add `stubs.http_get = { status = 200 }` to the case, or [[case.calls]] with fn = \"http_get\", args = [\"http://app/health\"] and returns, raises or hangs"
    ), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("0 passed, 1 failed\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_wrong_verdict_or_reason_fails_with_the_actual_verdict() {
    let run = test(
        "check(\"load\", load_avg() < 4.0)",
        "[[case]]\nname = \"w\"\nexpect = \"unhealthy\"\nstubs.load_avg = 1.0\n\n[[case]]\nname = \"r\"\nexpect = \"healthy\"\nreason = \"nope\"\nstubs.load_avg = 1.0\n",
    );
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stdout.contains(
            "FAIL  w: expected unhealthy, got healthy: healthy: 1 check passed (load) in "
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("FAIL  r: the verdict does not contain \"nope\": healthy"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_cases_file_is_named_with_line_and_column() {
    for (cases, message) in [
        ("[[case]]\nname = \"x\nexpect = \"healthy\"\n", "probe.cases.toml:2:10: "),
        ("[[case]]\nname = \"x\"\nexpect = \"healthy\"\nstub.load_avg = 1\n", "probe.cases.toml:4:1: unknown field `stub`, expected one of `name`, `expect`, `reason`, `vars`, `stubs`, `calls`"),
        ("[[case]]\nname = \"x\"\nexpect = \"fine\"\n", "case \"x\": expect = \"fine\" is not a verdict; use healthy, unhealthy, check-error, script-fault or deadline"),
        ("[[case]]\nname = \"x\"\nexpect = \"healthy\"\nstubs.htp_get = 1\n", "htp_get is not a function that can be stubbed; did you mean http_get?"),
        ("[[case]]\nname = \"x\"\nexpect = \"healthy\"\n[[case.calls]]\nfn = \"tcp_open\"\n", "needs exactly one of returns, raises or hangs"),
        ("# nothing\n", "no [[case]] in it"),
    ] {
        let run = test("true", cases);
        assert_eq!(run.code, 3, "{cases}\n{}", run.output());
        assert!(run.stderr.contains(message), "{message:?} not in {}", run.stderr);
    }
    let run = Probe::command([
        "test",
        &repo("scripts/node.rhai").display().to_string(),
        "--cases",
        "/nonexistent/x.toml",
    ])
    .run();
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .contains("cannot read the cases file /nonexistent/x.toml: no such file or directory"),
        "{}",
        run.stderr
    );
    // A starting point, valid TOML with a stub for each function the script calls.
    assert!(
        run.stderr.contains(
            "a start for /nonexistent/x.toml (the same as `rhai-probe test --init`):\n\n# Cases for "
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("stubs.cpu_count = 4") && run.stderr.contains("stubs.load_avg = 0.5"),
        "{}",
        run.stderr
    );
}

#[test]
fn init_writes_a_cases_file_that_test_accepts_for_every_shipped_script() {
    let dir = temp_dir("init");
    let scripts = shipped_scripts();
    for script in scripts {
        let init = Probe::command(["test", "--init", &script.display().to_string()]).run();
        assert_eq!(init.code, 0, "{}", init.output());
        let copy = dir.join(script.file_name().unwrap());
        std::fs::copy(&script, &copy).unwrap();
        std::fs::write(copy.with_extension("cases.toml"), &init.stdout).unwrap();
        let run = Probe::command(["test", &copy.display().to_string()]).run();
        // Valid as written: every case runs (none fails for a missing stub or a bad value).
        assert!(
            matches!(run.code, 0 | 1),
            "{}:\n{}\n{}",
            script.display(),
            init.stdout,
            run.output()
        );
        assert!(!run.output().contains("no stub for"), "{}", run.output());
        assert!(run.stdout.contains(" passed, "), "{}", run.stdout);
    }
    // For a plain check the start passes as it is.
    let copy = dir.join("liveness.rhai");
    let run = Probe::command(["test", &copy.display().to_string()]).run();
    assert_eq!(run.code, 0, "{}", run.output());
}

#[test]
fn a_stub_gets_ok_by_kubelets_rule() {
    let mut cases = String::new();
    for (status, ok) in [(200, true), (399, true), (400, false), (404, false)] {
        cases.push_str(&format!(
            "[[case]]\nname = \"{status}\"\nexpect = \"{}\"\nstubs.http_get = {{ status = {status} }}\n\n",
            if ok { "healthy" } else { "unhealthy" }
        ));
    }
    let run = test("http_get(\"http://app/health\").ok", &cases);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(run.stdout.matches("ok    ").count(), 4, "{}", run.stdout);
}

#[test]
fn raises_answers_as_production_would() {
    // tcp_open answers a refused port with false and the reason; http_get throws. A stub's
    // `raises` does what the real function does.
    let run = test(
        "check(\"db\", tcp_open(\"db\", 5432));\ncheck(\"api\", || http_get(\"http://api/\").ok);",
        "[[case]]\nname = \"both down\"\nexpect = \"unhealthy\"\nreason = 'check \"db\" failed: tcp_open(\"db\", 5432) -> connection refused'\n[[case.calls]]\nfn = \"tcp_open\"\nraises = \"connection refused\"\n[[case.calls]]\nfn = \"http_get\"\nraises = \"connection refused\"\n\n[[case]]\nname = \"outside a check, tcp_open is false, not an error\"\nexpect = \"unhealthy\"\nstubs.http_get = { status = 200 }\n[[case.calls]]\nfn = \"tcp_open\"\nraises = \"connection refused\"\n",
    );
    assert_eq!(run.code, 0, "{}", run.output());
    let run = test(
        "tcp_open(\"db\", 5432)",
        "[[case]]\nname = \"refused\"\nexpect = \"unhealthy\"\nreason = \"connection refused\"\n[[case.calls]]\nfn = \"tcp_open\"\nraises = \"connection refused\"\n",
    );
    assert_eq!(run.code, 0, "{}", run.output());
}
