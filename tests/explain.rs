//! `rhai-probe explain`: the same run as `run`, reported for a person.

mod support;

use support::{black_hole, closed_port, http_server, Probe};

#[test]
fn a_healthy_run_lists_calls_checks_value_verdict_and_time() {
    let url = format!("{}/health", http_server());
    let run = Probe::script(&format!(
        "check(\"load\", load_avg() >= 0.0);\ncheck(\"api\", || http_get(\"{url}\").status == 200);\ntrue"
    ))
    .command_name("explain")
    .run();
    assert_eq!(run.code, 0, "{}", run.output());
    let out = &run.stdout;
    for part in [
        "explain probe.rhai (deadline 800 ms)",
        "\ncalls\n",
        "   1 ✓ load_avg() ",
        &format!("   2 ✓ GET {url}  200 "),
        "probe.rhai:2:17",
        "\nchecks\n",
        "  ✓ load  ",
        "  ✓ api   ",
        "\nvalue    true\n",
        "\nverdict  healthy: 2 checks passed (load, api) in ",
        " (exit 0)\ntime     ",
        " of 800 ms (",
    ] {
        assert!(out.contains(part), "{part:?} not in\n{out}");
    }
    assert!(!out.contains('\u{1b}'), "colour when piped:\n{out}");
}

#[test]
fn failures_are_marked_with_their_reasons_and_the_exit_code_is_runs() {
    let refused = format!("http://127.0.0.1:{}/health", closed_port());
    let bad = format!("{}/bad", http_server());
    let run = Probe::script(&format!(
        "check(\"down\", || http_get(\"{refused}\").ok);\ncheck(\"bad\", http_get(\"{bad}\").status == 200);"
    ))
    .command_name("explain")
    .run();
    assert_eq!(run.code, 1, "{}", run.output());
    let out = &run.stdout;
    assert!(
        out.contains(&format!("   1 ✗ GET {refused}  connection refused")),
        "{out}"
    );
    assert!(out.contains(&format!("   2 ✗ GET {bad}")), "{out}");
    assert!(out.contains("  ✗ down  GET "), "{out}");
    assert!(
        out.contains("\nverdict  unhealthy: check \"down\" failed"),
        "{out}"
    );
    assert!(out.contains("(exit 1)"), "{out}");
}

#[test]
fn the_deadline_is_the_verdict_with_exit_4() {
    let run = Probe::script("sleep(5); true")
        .command_name("explain")
        .args(["--timeout", "300ms"])
        .run();
    assert_eq!(run.code, 4, "{}", run.output());
    assert!(
        run.stdout
            .contains("verdict  deadline: the 300 ms deadline passed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("(exit 4)"), "{}", run.stdout);
}

#[test]
fn no_secret_in_the_report_text_or_json() {
    let target = format!(
        "http://app:explain-secret-1@127.0.0.1:{}/health?token=explain-tok-2",
        closed_port()
    );
    for format in ["text", "json"] {
        let run = Probe::script(&format!("check(\"api\", || http_get(\"{target}\").ok)"))
            .command_name("explain")
            .args(["--format", format])
            .run();
        assert_eq!(run.code, 1, "{}", run.output());
        assert!(run.stdout.contains("app:***@127.0.0.1"), "{}", run.stdout);
        for secret in ["explain-secret-1", "explain-tok-2"] {
            assert!(
                !run.output().contains(secret),
                "{secret} in {format}:\n{}",
                run.output()
            );
        }
    }
}

#[test]
fn json_is_one_document_with_calls_and_checks() {
    let url = format!("{}/health", http_server());
    let run = Probe::script(&format!("check(\"api\", http_get(\"{url}\").ok)"))
        .command_name("explain")
        .args(["--format", "json"])
        .run();
    assert_eq!(run.code, 0, "{}", run.output());
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["verdict"], "healthy");
    assert_eq!(doc["calls"][0]["what"], format!("GET {url}"));
    assert_eq!(doc["calls"][0]["result"], "200");
    assert_eq!(doc["checks"][0]["name"], "api");
    assert_eq!(doc["deadline_ms"], 800.0);
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    // `script` (util-linux) gives the run a pseudo-terminal for stdout.
    let dir = support::temp_dir("explain-tty");
    let path = dir.join("probe.rhai");
    std::fs::write(&path, "check(\"cpus\", cpu_count() >= 1)").unwrap();
    let command = format!("{} explain {}", support::BIN, path.display());
    let tty = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().expect("script(1) from util-linux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = tty(false);
    assert!(coloured.contains("\u{1b}[32m✓\u{1b}[0m"), "{coloured:?}");
    let plain = tty(true);
    assert!(
        plain.contains("✓ cpus") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );
}

#[test]
fn a_call_with_a_longer_timeout_stops_at_the_deadline_and_says_so() {
    // The call asks for 5 s; the probe has 300 ms. `Host::call` gives it the time left, so it
    // ends at the deadline and the report shows that call stopped by it, not one still in
    // flight when the watchdog ended the process.
    let url = format!("http://127.0.0.1:{}/", black_hole());
    let run = Probe::script(&format!("http_get(\"{url}\", #{{timeout: \"5s\"}}).ok"))
        .command_name("explain")
        .args(["--timeout", "300ms"])
        .run();
    assert_eq!(run.code, 4, "{}", run.output());
    let out = &run.stdout;
    assert!(
        out.contains(&format!("   1 ✗ GET {url}  deadline passed")),
        "{out}"
    );
    assert!(!out.contains("in flight"), "{out}");
    assert!(
        out.contains(&format!(
            "verdict  deadline: the 300 ms deadline passed during GET {url} (probe.rhai:1:1)"
        )),
        "{out}"
    );
    assert!(
        run.elapsed < std::time::Duration::from_millis(1300),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn a_true_value_after_a_failed_check_says_why_the_verdict_is_unhealthy() {
    let run = Probe::script("check(\"db\", false);\ncheck(\"cache\", true);\ntrue")
        .command_name("explain")
        .run();
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stdout.contains(
            "\nvalue    true (but check \"db\" failed, and a failed check makes the probe unhealthy)\n"
        ),
        "{}",
        run.stdout
    );
    // A true value with every check passed has nothing to explain.
    let run = Probe::script("check(\"db\", true);\ntrue")
        .command_name("explain")
        .run();
    assert!(run.stdout.contains("\nvalue    true\n"), "{}", run.stdout);
}
