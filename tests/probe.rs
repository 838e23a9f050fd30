//! The probe runner as a user meets it: the real binary, real peers on 127.0.0.1, and the exit
//! code plus the words on stdout/stderr for every outcome and every kind of bad input.

mod support;

use std::time::Duration;

use support::{black_hole, closed_port, http_server, repo, temp_dir, tls_server, Probe};

fn url(path: &str) -> String {
    format!("{}{path}", http_server())
}

/// A run must end by its deadline plus this (the watchdog's grace and process start included).
const SLACK: Duration = Duration::from_secs(1);

// ---- exit 0 / 1: healthy and unhealthy ---------------------------------------------------------

#[test]
fn healthy_http_check_exits_0_with_one_line() {
    let run = Probe::script(&format!("http_get(\"{}\").ok", url("/health"))).run();
    run.expect(0, "healthy: probe.rhai returned true in ");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stderr.is_empty(), "quiet by default: {}", run.stderr);
}

#[test]
fn unhealthy_status_names_the_call_and_position() {
    let script = format!("let r = http_get(\"{}\");\nr.ok", url("/bad"));
    Probe::script(&script)
        .run()
        .expect(1, &format!("unhealthy: GET {} -> 503 (", url("/bad")))
        .expect(1, "probe.rhai:1:9) in ");
}

#[test]
fn false_without_failed_calls_shows_what_was_seen() {
    Probe::script("load_avg() < 0.0")
        .run()
        .expect(1, "probe.rhai returned false after load_avg() -> ");
}

#[test]
fn named_checks_all_run_and_every_failure_is_reported() {
    let script = format!(
        "check(\"load\", load_avg() >= 0.0);\n\
         check(\"api\", || http_get(\"{}\").ok);\n\
         check(\"db\", || tcp_open(\"127.0.0.1\", {}));\n\
         check(\"refused\", || http_get(\"http://127.0.0.1:{}/\").ok);\n",
        url("/bad"),
        closed_port(),
        closed_port()
    );
    let run = Probe::script(&script).run();
    run.expect(1, "check \"api\" failed: GET ")
        .expect(1, "-> 503 (probe.rhai:2:1)")
        .expect(1, "check \"db\" failed: TCP 127.0.0.1:")
        .expect(1, "connection refused (probe.rhai:3:1)")
        .expect(1, "check \"refused\" failed: GET http://127.0.0.1:");
    assert!(
        !run.stdout.contains("\"load\""),
        "passed checks are not failures: {}",
        run.stdout
    );
}

#[test]
fn all_checks_passing_is_healthy_even_ending_with_unit() {
    let script = format!(
        "check(\"a\", true);\ncheck(\"b\", || http_get(\"{}\").ok);",
        url("/health")
    );
    Probe::script(&script)
        .run()
        .expect(0, "healthy: 2 checks passed (a, b)");
}

#[test]
fn a_failed_check_wins_over_a_true_result() {
    Probe::script("check(\"x\", false); true")
        .run()
        .expect(1, "check \"x\" failed: condition was false");
}

// ---- exit 2: check errors ----------------------------------------------------------------------

#[test]
fn refused_connection_is_a_check_error_naming_url_and_cause() {
    let target = format!("http://127.0.0.1:{}/health", closed_port());
    let run = Probe::script(&format!("http_get(\"{target}\").ok")).run();
    run.expect(
        2,
        &format!("check error: GET {target}: connection refused (probe.rhai:1:1)"),
    );
    assert!(run.stderr.contains("^"), "caret on stderr: {}", run.stderr);
}

#[test]
fn throw_is_a_check_error() {
    Probe::script("throw \"replica lag too high\"")
        .run()
        .expect(2, "check error: replica lag too high (probe.rhai:1:1)");
}

#[test]
fn errors_can_be_caught_by_the_script() {
    let script = format!(
        "let ok = false;\ntry {{ http_get(\"http://127.0.0.1:{}/\"); }} catch (e) {{ ok = e.contains(\"connection refused\"); }}\nok",
        closed_port()
    );
    Probe::script(&script).run().expect(0, "healthy");
}

#[test]
fn tls_to_a_plain_port_is_a_check_error() {
    let base = http_server().replace("http://", "https://");
    Probe::script(&format!("http_get(\"{base}/health\").ok"))
        .run()
        .expect(2, "check error: GET https://127.0.0.1:")
        .expect(2, "TLS");
}

// ---- exit 3: script faults ---------------------------------------------------------------------

#[test]
fn missing_file_says_what_to_check() {
    Probe::command(["run", "/nonexistent/liveness.rhai"])
        .run()
        .expect(
            3,
            "script fault: /nonexistent/liveness.rhai: cannot read the script",
        )
        .expect(3, "is the ConfigMap mounted there?");
}

#[test]
fn empty_file() {
    Probe::script("").run().expect(
        3,
        "the script returned nothing; a probe must end with a boolean expression",
    );
}

#[test]
fn binary_garbage_is_refused_as_not_utf8() {
    Probe::script_bytes(
        "garbage.rhai",
        &[0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0x00, 0x81],
    )
    .run()
    .expect(3, "garbage.rhai:1: the script is not UTF-8 text");
}

#[test]
fn bom_and_shebang_are_allowed_and_positions_stay_right() {
    let mut bytes = "\u{feff}#!/usr/bin/env rhai-probe\ntrue\n"
        .as_bytes()
        .to_vec();
    Probe::script_bytes("bom.rhai", &bytes)
        .run()
        .expect(0, "healthy");
    bytes = "\u{feff}#!/usr/bin/env rhai-probe\nlet x = ;\n"
        .as_bytes()
        .to_vec();
    Probe::script_bytes("bom.rhai", &bytes)
        .run()
        .expect(3, "bom.rhai:2:9: syntax error");
}

#[test]
fn syntax_error_has_line_col_and_caret() {
    let run = Probe::script("let a = 1;\nlet b = (a + ;\nb").run();
    run.expect(3, "script fault: ").expect(3, "probe.rhai:2:");
    assert!(run.stderr.contains(" --> "), "{}", run.stderr);
    assert!(run.stderr.contains("2 | let b = (a + ;"), "{}", run.stderr);
    assert!(run.stderr.contains("^"), "{}", run.stderr);
}

#[test]
fn unknown_function_suggests_the_right_one() {
    let run = Probe::script("let r = htp_get(\"http://127.0.0.1/\");\nr.ok").run();
    run.expect(3, "probe.rhai:1:9: unknown function htp_get(string)");
    assert!(
        run.stderr.contains("help: did you mean http_get?"),
        "{}",
        run.stderr
    );
    // Without arguments: the empty list, not a unit argument.
    Probe::script("lod_avg() < 10.0")
        .run()
        .expect(3, "probe.rhai:1:1: unknown function lod_avg() in ");
}

#[test]
fn wrong_argument_types_list_the_signatures() {
    let run = Probe::script("http_get(42)").run();
    run.expect(3, "http_get cannot be called with (int)");
    assert!(
        run.stderr
            .contains("http_get takes: http_get(url: string) -> map"),
        "{}",
        run.stderr
    );
    Probe::script("tcp_open(\"h\", \"x\")")
        .run()
        .expect(3, "tcp_open cannot be called with (string, string)");
}

#[test]
fn a_typo_in_a_map_key_is_an_error_not_unit() {
    let run = Probe::script(&format!(
        "let resp = http_get(\"{}\");\nresp.stauts == 200",
        url("/health")
    ))
    .run();
    run.expect(3, "probe.rhai:2:6: http_get's result has no key 'stauts'");
    assert!(
        run.stderr.contains("did you mean 'status'?"),
        "{}",
        run.stderr
    );
}

#[test]
fn undefined_variable_is_caught_at_compile_time() {
    let run = Probe::script("http_get(url).ok").run();
    run.expect(3, "probe.rhai:1:10: variable 'url' is not defined");
    assert!(run.stderr.contains("--var url=VALUE"), "{}", run.stderr);
}

#[test]
fn non_boolean_results_are_faults() {
    for (script, words) in [
        ("()", "the script returned nothing"),
        ("let x = load_avg();", "the script's last statement has no value (a let,"),
        ("42", "returned 42 (int), not a boolean"),
        ("\"true\"", "returned the string \"true\", not a boolean; end it with a boolean expression (no quotes)"),
        ("#{a: 1}", "(map), not a boolean"),
    ] {
        let run = Probe::script(script).run();
        run.expect(3, words);
    }
}

#[test]
fn endless_loop_hits_the_operations_limit() {
    let run = Probe::script("loop {}").args(["--timeout", "5s"]).run();
    run.expect(3, "more than 1000000 operations (sandbox limit)");
    assert!(run.elapsed < Duration::from_secs(5) + SLACK);
}

#[test]
fn deep_recursion_hits_the_call_depth_limit() {
    Probe::script("fn f(n) { f(n + 1) }\nf(0)")
        .run()
        .expect(3, "function calls nested more than 32 deep (sandbox limit)");
}

#[test]
fn deep_nesting_is_refused_by_the_parser() {
    let script = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    Probe::script(&script).run().expect(3, "nested too deeply");
}

#[test]
fn huge_strings_hit_the_size_limit() {
    Probe::script("let s = \"x\"; loop { s += s; }")
        .run()
        .expect(3, "larger than the sandbox allows");
}

#[test]
fn import_and_eval_are_not_available() {
    Probe::script("import \"os\" as os;\ntrue")
        .run()
        .expect(3, "probe.rhai:1:");
    Probe::script("eval(\"true\")")
        .run()
        .expect(3, "probe.rhai:1:");
}

#[test]
fn limits_cannot_be_caught_with_try_or_check() {
    Probe::script("try { loop {} } catch { }\ntrue")
        .run()
        .expect(3, "more than 1000000 operations (sandbox limit)");
    Probe::script("fn f(n) { f(n + 1) }\ncheck(\"x\", || f(0));\ntrue")
        .run()
        .expect(3, "function calls nested more than 32 deep");
}

#[test]
fn faults_cannot_be_caught_with_try() {
    Probe::script("try { http_get(\"localhost:8080\") } catch { }\ntrue")
        .run()
        .expect(
            3,
            "has no http:// or https:// scheme; write http://localhost:8080",
        );
}

#[test]
fn bad_urls_and_ports_are_faults_with_advice() {
    for (script, words) in [
        (
            "http_get(\"localhost:8080/health\").ok",
            "write http://localhost:8080/health",
        ),
        (
            "http_get(\"ftp://127.0.0.1/\").ok",
            "only http:// and https:// are supported",
        ),
        (
            "http_get(\"http://127.0.0.1:0/\").ok",
            "port 0 is out of range 1-65535",
        ),
        (
            "http_get(\"http://127.0.0.1:70000/\").ok",
            "port 70000 is out of range 1-65535",
        ),
        (
            "tcp_open(\"127.0.0.1\", 0)",
            "tcp_open: port 0 is out of range 1-65535",
        ),
        (
            "tcp_open(\"127.0.0.1\", 70000)",
            "tcp_open: port 70000 is out of range 1-65535",
        ),
        ("tcp_open(\"\", 80)", "tcp_open: host is empty"),
        (
            "http_get(\"http://127.0.0.1/\", #{timout: 1})",
            "unknown option 'timout'; did you mean 'timeout'?",
        ),
        (
            "http_get(\"http://127.0.0.1/\", #{timeout: \"soon\"})",
            "option 'timeout': invalid duration 'soon'",
        ),
        (
            "http_get(\"http://127.0.0.1/\", #{max_body: -1})",
            "option 'max_body' must be between 0 and",
        ),
        ("load_avg(7)", "minutes must be 1, 5 or 15"),
        (
            "check(\"x\", 42)",
            "must be a boolean or a closure returning one",
        ),
        (
            "check(\"x\", || 42)",
            "the closure returned i64, not a boolean",
        ),
    ] {
        Probe::script(script).run().expect(3, words);
    }
}

#[test]
fn script_larger_than_a_mebibyte_is_refused() {
    // 10 MB, as a ConfigMap could never hold (1 MiB): refused before it is compiled.
    let big = format!("// {}\ntrue", "x".repeat(10 * 1024 * 1024));
    Probe::script(&big).run().expect(3, "larger than 1024 KiB");
}

// ---- exit 4: the deadline ----------------------------------------------------------------------

#[test]
fn a_peer_that_never_answers_ends_at_the_deadline() {
    let target = format!("http://127.0.0.1:{}/health", black_hole());
    let run = Probe::script(&format!("http_get(\"{target}\").ok"))
        .args(["--timeout", "300ms"])
        .run();
    run.expect(
        4,
        &format!("deadline: the 300 ms deadline passed during GET {target} (probe.rhai:1:1)"),
    );
    assert!(
        run.elapsed < Duration::from_millis(300) + SLACK,
        "{:?}",
        run.elapsed
    );
}

#[test]
fn the_deadline_cannot_be_caught() {
    let target = format!("http://127.0.0.1:{}/", black_hole());
    let script = format!(
        "try {{ http_get(\"{target}\") }} catch {{ }}\ncheck(\"x\", || http_get(\"{target}\").ok);\ntrue"
    );
    Probe::script(&script)
        .args(["--timeout", "200ms"])
        .run()
        .expect(4, "deadline");
}

#[test]
fn cpu_work_stops_at_the_deadline() {
    // Each iteration parses a 128 KiB JSON string: few operations, much CPU, so the operations
    // limit is not what stops it.
    let script = "let s = \"1\"; for i in 0..17 { s += s; }\nlet t = \"\\\"\" + s + \"\\\"\";\nloop { json(t); }";
    let run = Probe::script(script).args(["--timeout", "300ms"]).run();
    run.expect(
        4,
        "deadline: the 300 ms deadline passed while the script was running",
    );
    assert!(
        run.elapsed < Duration::from_millis(300) + SLACK,
        "{:?}",
        run.elapsed
    );
}

#[test]
fn sleep_cannot_outlast_the_deadline() {
    let run = Probe::script("sleep(30); true")
        .args(["--timeout", "200ms"])
        .run();
    run.expect(4, "passed during sleep(30)");
    assert!(run.elapsed < Duration::from_millis(200) + SLACK);
}

#[test]
fn watchdog_ends_a_run_stuck_outside_the_script() {
    // Reading the script from a pipe that never closes blocks where nothing else can stop it.
    let run = Probe::command(["run", "-", "--timeout", "300ms"])
        .hold_stdin()
        .run();
    run.expect(
        4,
        "deadline: the 300 ms deadline passed while reading the script",
    );
    assert!(
        run.elapsed < Duration::from_millis(300) + SLACK,
        "{:?}",
        run.elapsed
    );
}

#[test]
fn host_timeouts_are_clamped_to_the_deadline() {
    let script = format!(
        "tcp_open(\"127.0.0.1\", {}, #{{ timeout: \"1m\" }})",
        black_hole()
    );
    // A black hole accepts, so use a host call that waits: http with a long own timeout.
    let run = Probe::script(&format!(
        "{script};\nhttp_get(\"http://127.0.0.1:{}/\", #{{ timeout: \"1m\" }}).ok",
        black_hole()
    ))
    .args(["--timeout", "300ms"])
    .run();
    run.expect(4, "deadline");
    assert!(run.elapsed < Duration::from_millis(300) + SLACK);
}

#[test]
fn own_timeout_shorter_than_the_deadline_is_a_check_error() {
    let target = format!("http://127.0.0.1:{}/", black_hole());
    let run = Probe::script(&format!(
        "http_get(\"{target}\", #{{ timeout_ms: 150 }}).ok"
    ))
    .args(["--timeout", "5s"])
    .run();
    run.expect(2, "timed out after 150 ms");
    assert!(run.elapsed < Duration::from_secs(2));
}

#[test]
fn timeout_from_the_environment() {
    let target = format!("http://127.0.0.1:{}/", black_hole());
    let run = Probe::script(&format!("http_get(\"{target}\").ok"))
        .env("RHAI_PROBE_TIMEOUT", "0.25")
        .run();
    run.expect(4, "the 250 ms deadline passed");
}

// ---- exit 64: usage ----------------------------------------------------------------------------

#[test]
fn usage_errors_exit_64() {
    for args in [
        vec!["run"],
        vec!["run", "x.rhai", "--timeout", "soon"],
        vec!["run", "x.rhai", "--timeout", "0"],
        vec!["run", "x.rhai", "--var", "novalue"],
        vec!["run", "x.rhai", "--var", "let=1"],
        vec!["run", "x.rhai", "--format", "yaml"],
        vec!["run", "x.rhai", "--bogus"],
        vec!["frobnicate"],
        vec![],
    ] {
        let run = Probe::command(args.clone()).run();
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    let run = Probe::command(["run", "x.rhai", "--timeout", "soon"]).run();
    assert!(run.stderr.contains("e.g. 500ms, 2s, 1m"), "{}", run.stderr);
}

#[test]
fn help_and_version_exit_0_and_document_exit_codes() {
    let run = Probe::command(["--help"]).run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("64  usage: bad command line"),
        "{}",
        run.stdout
    );
    let run = Probe::command(["run", "--help"]).run();
    assert!(
        run.stdout.contains("4   deadline: the deadline passed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("RHAI_PROBE_TIMEOUT"), "{}", run.stdout);
    let run = Probe::command(["--version"]).run();
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("rhai-probe "), "{}", run.stdout);
}

// ---- http_get semantics ------------------------------------------------------------------------

#[test]
fn response_map_has_the_documented_keys() {
    let script = format!(
        "let r = http_get(\"{}\");\n\
         r.status == 200 && r.ok && r.body == \"ok\" && type_of(r.elapsed_ms) == \"f64\"\n\
         && r.headers[\"content-length\"] == \"2\" && !r.truncated && r.url.ends_with(\"/health\")",
        url("/health")
    );
    Probe::script(&script).run().expect(0, "healthy");
}

#[test]
fn json_bodies_parse_to_maps_and_arrays() {
    let script = format!(
        "let j = http_get(\"{}\").json();\n\
         j.status == \"UP\" && j.checks[0].up && j.lag < 1.0 && j.note == ()",
        url("/json")
    );
    Probe::script(&script).run().expect(0, "healthy");
    Probe::script(&format!(
        "http_get(\"{}\").json().status == \"UP\"",
        url("/html")
    ))
    .run()
    .expect(2, "body is not JSON");
}

#[test]
fn redirects_are_followed_on_the_same_host_only() {
    Probe::script(&format!(
        "let r = http_get(\"{}\"); r.status == 200 && r.body == \"ok\"",
        url("/redirect")
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!(
        "http_get(\"{}\").status == 200",
        url("/redirect-relative")
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!(
        "http_get(\"{}\", #{{follow_redirects: false}}).status == 302",
        url("/redirect")
    ))
    .run()
    .expect(0, "healthy");
    // As kubelet: a redirect to another host is not followed; 302 is still "ok" (200-399).
    let run = Probe::script(&format!(
        "let r = http_get(\"{}\"); r.status == 302 && r.ok",
        url("/elsewhere")
    ))
    .args(["-v"])
    .run();
    run.expect(0, "healthy");
    assert!(
        run.stderr
            .contains("not following the redirect to another host"),
        "{}",
        run.stderr
    );
    Probe::script(&format!("http_get(\"{}\").ok", url("/loop")))
        .run()
        .expect(2, "stopped after 10 redirects");
}

#[test]
fn bodies_are_capped() {
    Probe::script(&format!(
        "let r = http_get(\"{}\"); r.truncated && r.body.len() == 65536",
        url("/big")
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!(
        "let r = http_get(\"{}\", #{{max_body: 10}}); r.truncated && r.body.len() == 10",
        url("/big")
    ))
    .run()
    .expect(0, "healthy");
}

#[test]
fn request_headers_are_sent_and_response_headers_lower_cased() {
    Probe::script(&format!(
        "http_get(\"{}\", #{{headers: #{{\"X-Probe\": \"yes\"}}}}).body == \"yes\"",
        url("/echo")
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!(
        "let h = http_get(\"{}\").headers; h[\"x-multi\"] == \"a, b\" && h[\"x-case\"] == \"V\"",
        url("/headers")
    ))
    .run()
    .expect(0, "healthy");
}

#[test]
fn proxy_environment_is_ignored() {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    Probe::script(&format!("http_get(\"{}\").ok", url("/health")))
        .env("HTTP_PROXY", &dead)
        .env("http_proxy", &dead)
        .env("ALL_PROXY", &dead)
        .run()
        .expect(0, "healthy");
}

#[test]
fn tls_is_verified_by_default_and_insecure_skips_it() {
    let Some(port) = tls_server() else {
        support::unavailable(
            "tls_is_verified_by_default_and_insecure_skips_it",
            "openssl is not installed",
        );
        return;
    };
    let target = format!("https://localhost:{port}/");
    Probe::script(&format!("http_get(\"{target}\").ok"))
        .run()
        .expect(
            2,
            &format!("check error: GET {target}: TLS: invalid peer certificate: UnknownIssuer"),
        );
    Probe::script(&format!(
        "let r = http_get(\"{target}\", #{{insecure: true}}); r.status == 200 && r.ok"
    ))
    .run()
    .expect(0, "healthy");
}

// ---- tcp_open ----------------------------------------------------------------------------------

#[test]
fn tcp_open_open_closed_and_named() {
    let open = http_server().rsplit(':').next().unwrap().to_string();
    Probe::script(&format!("tcp_open(\"127.0.0.1\", {open})"))
        .run()
        .expect(0, "healthy");
    Probe::script(&format!("tcp_open(\"localhost\", {open})"))
        .run()
        .expect(0, "healthy");
    let closed = closed_port();
    Probe::script(&format!("tcp_open(\"127.0.0.1\", {closed})"))
        .run()
        .expect(
            1,
            &format!("unhealthy: TCP 127.0.0.1:{closed} -> connection refused"),
        );
}

#[test]
fn tcp_open_ipv6_literal() {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("SKIPPED tcp_open_ipv6_literal: no IPv6 loopback on this machine");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    Probe::script(&format!(
        "tcp_open(\"::1\", {port}) && tcp_open(\"[::1]\", {port})"
    ))
    .run()
    .expect(0, "healthy");
    drop(listener);
    Probe::script(&format!("tcp_open(\"::1\", {port})"))
        .run()
        .expect(1, &format!("TCP [::1]:{port} -> connection refused"));
}

#[test]
fn localhost_without_ipv6_says_connection_refused() {
    // A host with IPv6 disabled has no ::1: `localhost` must then be 127.0.0.1 alone, so a port
    // nothing listens on reads "connection refused", not ::1's "address not available". Run in a
    // network namespace of its own (needs root and iproute2's `ip`; skipped otherwise).
    let setup = "ip link set lo up && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 \
                 && ! ip -6 addr show dev lo | grep -q ::1";
    let ready = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", setup])
        .status();
    if !matches!(ready, Ok(s) if s.success()) {
        eprintln!("SKIPPED localhost_without_ipv6_…: cannot make a network namespace without ::1");
        return;
    }
    let dir = temp_dir("localhost-no-ipv6");
    for (source, code, expected) in [
        (
            "http_get(\"http://localhost:1/\").ok",
            2,
            "GET http://localhost:1/: connection refused",
        ),
        (
            "tcp_open(\"localhost\", 1)",
            1,
            "TCP localhost:1 -> connection refused",
        ),
    ] {
        let script = dir.join("probe.rhai");
        std::fs::write(&script, source).unwrap();
        let out = std::process::Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                &format!("{setup} && exec \"$0\" run \"$1\""),
            ])
            .arg(support::BIN)
            .arg(&script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{source}: {stdout}");
        assert!(stdout.contains(expected), "{source}: {stdout}");
    }
}

#[test]
fn localhost_reaches_a_server_listening_on_ipv6_loopback_only() {
    // `localhost` is 127.0.0.1 then ::1 without a lookup: a server on ::1 alone is still found.
    use std::io::{Read, Write};
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("SKIPPED localhost_reaches_…: no IPv6 loopback on this machine");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        eprintln!("SKIPPED localhost_reaches_…: 127.0.0.1:{port} is taken by another listener");
        return;
    }
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(4) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv6",
                );
            }
        }
    });
    Probe::script(&format!(
        "let r = http_get(\"http://localhost:{port}/\"); \
         r.status == 200 && r.body == \"v6\" && tcp_open(\"LOCALHOST.\", {port})"
    ))
    .run()
    .expect(0, "healthy");
    // And nothing listens on either address: refused, quickly, naming the name.
    let closed = closed_port();
    Probe::script(&format!("http_get(\"http://localhost:{closed}/\").ok"))
        .run()
        .expect(2, &format!("GET http://localhost:{closed}/"));
}

// ---- variables, stdin, formats, logs -----------------------------------------------------------

#[test]
fn vars_are_typed_constants() {
    Probe::script(
        "type_of(n) == \"i64\" && type_of(f) == \"f64\" && b == true && s == \"hello world\" && q == \"8080\"\n\
         && var_or(\"n\", 0) == 5 && var_or(\"missing\", \"d\") == \"d\"",
    )
    .args(["--var", "n=5", "--var", "f=0.5", "--var", "b=true", "--var", "s=hello world", "--var", "q=\"8080\""])
    .run()
    .expect(0, "healthy");
}

#[test]
fn var_or_gives_the_value_the_default_type_or_says_why_not() {
    Probe::script("let m = var_or(\"m\", 90.0); let v = var_or(\"v\", \"\");\ntype_of(m) == \"f64\" && m == 7.0 && v == \"12\"")
        .args(["--var", "m=7", "--var", "v=12"])
        .run()
        .expect(0, "healthy");
    Probe::script("var_or(\"m\", 90.0) > 1.0")
        .args(["--var", "m=1e9"])
        .run()
        .expect(
            3,
            ":1:1: var_or(\"m\", 90.0): --var m=1e9 is a string, but the default is a number",
        )
        .expect(3, "1000000, not 1e6");
    Probe::script("let on = var_or(\"on\", false);\non")
        .args(["--var", "on=5"])
        .run()
        .expect(
            3,
            ":1:10: var_or(\"on\", false): --var on=5 is an integer, but the default is a boolean",
        );
}

#[test]
fn load_averages_over_5_and_15_minutes() {
    Probe::script("load_avg(1) >= 0.0 && load_avg(5) >= 0.0 && load_avg(15) >= 0.0")
        .run()
        .expect(0, "healthy");
}

#[test]
fn print_and_debug_go_to_the_log_not_stdout() {
    let run = Probe::script("print(\"hello\");\ndebug(\"details\");\ntrue")
        .args(["-vv"])
        .run();
    run.expect(0, "healthy");
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stderr.contains("INFO  print: hello"), "{}", run.stderr);
    assert!(
        run.stderr.contains("DEBUG print: \"details\" (line 2)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_misspelt_var_is_reported() {
    let run = Probe::script("let url = var_or(\"url\", \"x\");\nurl == \"x\"")
        .args(["--var", "urll=http://127.0.0.1/"])
        .run();
    run.expect(0, "healthy");
    assert!(
        run.stderr
            .contains("--var urll: probe.rhai never mentions 'urll'; did you mean --var url=...?"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_semicolon_points_at_the_end_of_the_statement() {
    let run = Probe::script("let r = 1\nr == 1\n").run();
    run.expect(
        3,
        "probe.rhai:1:10: missing ';' at the end of this statement",
    );
}

#[test]
fn script_from_stdin() {
    Probe::command(["run", "-"])
        .stdin(b"1 + 1 == 2")
        .run()
        .expect(0, "healthy: <stdin> returned true");
    Probe::command(["run", "-"])
        .stdin(b"let x = ;")
        .run()
        .expect(3, "<stdin>:1:9: syntax error");
}

#[test]
fn json_format_is_one_document_with_calls_and_checks() {
    let script = format!(
        "check(\"api\", || http_get(\"{}\").ok);\ncheck(\"load\", load_avg() >= 0.0);",
        url("/bad")
    );
    let run = Probe::script(&script).args(["--format", "json"]).run();
    assert_eq!(run.code, 1);
    let doc: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON document");
    assert_eq!(doc["verdict"], "unhealthy");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["checks"][0]["name"], "api");
    assert_eq!(doc["checks"][0]["passed"], false);
    assert_eq!(doc["checks"][1]["passed"], true);
    assert_eq!(doc["calls"][0]["function"], "http_get");
    assert_eq!(doc["calls"][0]["outcome"], "fail");
    assert_eq!(doc["calls"][0]["result"], "503");
    assert_eq!(doc["calls"][0]["line"], 1);
    assert_eq!(doc["deadline_ms"], 800.0);
    let run = Probe::script("let x = ;").args(["--format", "json"]).run();
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["verdict"], "script-fault");
    assert_eq!(doc["error"]["line"], 1);
}

#[test]
fn log_file_is_appended_with_every_call_and_the_verdict() {
    let dir = temp_dir("log-file");
    let log = dir.join("probe.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let log_arg = log.display().to_string();
    let script = format!(
        "print(\"from the script\");\nhttp_get(\"{}\").ok",
        url("/health")
    );
    Probe::script(&script)
        .args(["--log-file", &log_arg])
        .run()
        .expect(0, "healthy");
    Probe::script(&script)
        .args(["--log-file", &log_arg])
        .run()
        .expect(0, "healthy");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("earlier line\n"),
        "appended, never truncated: {text}"
    );
    assert_eq!(text.matches(" -> 200 in ").count(), 2, "{text}");
    assert_eq!(
        text.matches("INFO  print: from the script").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("INFO  healthy: probe.rhai returned true")
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().contains("Z rhai-probe INFO "),
        "timestamped: {text}"
    );
}

#[test]
fn an_unwritable_log_file_does_not_fail_the_probe() {
    Probe::script("true")
        .args(["--log-file", "/nonexistent/dir/probe.log"])
        .run()
        .expect(0, "healthy")
        .stderr
        .contains("cannot open --log-file")
        .then_some(())
        .expect("warning on stderr");
}

#[test]
fn verbosity_flags() {
    let script = format!("http_get(\"{}\").ok", url("/health"));
    assert!(Probe::script(&script).run().stderr.is_empty());
    assert!(Probe::script(&script)
        .args(["-v"])
        .run()
        .stderr
        .contains(" -> 200 in "));
    assert!(Probe::script(&script)
        .env("RUST_LOG", "info")
        .run()
        .stderr
        .contains(" -> 200 in "));
    assert!(Probe::script("throw \"x\"")
        .args(["-q"])
        .run()
        .stdout
        .contains("check error: x"));
}

#[test]
fn output_stays_small_whatever_the_script_prints() {
    let run = Probe::script("for i in 0..5000 { print(\"line \" + i + \" of noise\"); }\ntrue")
        .args(["-v"])
        .run();
    run.expect(0, "healthy");
    assert!(
        run.output().len() < 10 * 1024,
        "{} bytes",
        run.output().len()
    );
    assert!(
        run.stderr.contains("output dropped (limit "),
        "{}",
        run.stderr
    );
    // Without -v, prints go to the log file only, where the print budget applies.
    let dir = temp_dir("print-budget");
    let log = dir.join("probe.log").display().to_string();
    let run = Probe::script("for i in 0..5000 { print(\"line \" + i + \" of noise\"); }\ntrue")
        .args(["--log-file", &log])
        .run();
    run.expect(0, "healthy");
    assert!(run.output().len() < 200, "{}", run.output());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("further script output dropped (limit 4096 bytes)"),
        "{text}"
    );
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}

#[test]
fn secrets_never_reach_any_output() {
    let dir = temp_dir("secrets");
    let log = dir.join("probe.log").display().to_string();
    let target = format!(
        "http://app:hunter2secret@127.0.0.1:{}/health?token=tok-abc-123&x=1",
        closed_port()
    );
    for script in [
        format!("http_get(\"{target}\").ok"),
        format!("check(\"api\", || http_get(\"{target}\").ok)"),
        format!("let u = \"{target}\"; try {{ http_get(u) }} catch(e) {{ throw e + \" for \" + u }}"),
        format!("http_get(\"{}\", #{{headers: #{{Authorization: \"Bearer sk-live-9999\"}}}}).status == 1", url("/health")),
    ] {
        for format in ["text", "json"] {
            let run = Probe::script(&script).args(["--format", format, "-vv", "--log-file", &log]).run();
            let all = run.output() + &std::fs::read_to_string(&log).unwrap_or_default();
            for secret in ["hunter2secret", "tok-abc-123", "sk-live-9999"] {
                assert!(!all.contains(secret), "{secret} leaked by {script}:\n{all}");
            }
        }
    }
}

// ---- the shipped scripts -----------------------------------------------------------------------

#[test]
fn every_shipped_script_compiles() {
    let mut scripts: Vec<String> = std::fs::read_dir(repo("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .map(|p| p.display().to_string())
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "{scripts:?}");
    let run = Probe::command(["check".to_string()].into_iter().chain(scripts.clone())).run();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run
        .stdout
        .contains(&format!("ok: {} scripts compiled", scripts.len())));
}

#[test]
fn check_reports_every_broken_script_and_exits_3() {
    let dir = temp_dir("check");
    let good = dir.join("good.rhai");
    let bad = dir.join("bad.rhai");
    let worse = dir.join("worse.rhai");
    std::fs::write(&good, "true").unwrap();
    std::fs::write(&bad, "let x = 1;\nlet y = (x + ;\n").unwrap();
    std::fs::write(&worse, "http_get(url).ok").unwrap();
    let paths = [&good, &bad, &worse, &dir.join("missing.rhai")].map(|p| p.display().to_string());
    let run = Probe::command(["check".to_string()].into_iter().chain(paths.clone())).run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{}:2:", paths[1])),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{}:1:10", paths[2])),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cannot read the script"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("failed: 3 of 4 scripts did not compile or pass the lint"),
        "{}",
        run.stdout
    );
    // With the variable given, the script compiles: check sees what run would.
    let run = Probe::command(["check", &paths[2], "--var", "url=http://x"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn cpu_count_respects_cpu_affinity() {
    if std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED cpu_count_respects_cpu_affinity: taskset is not installed");
        return;
    }
    let dir = temp_dir("affinity");
    std::fs::write(dir.join("one.rhai"), "cpu_count() == 1").unwrap();
    let out = std::process::Command::new("taskset")
        .args(["-c", "0", support::BIN, "run"])
        .arg(dir.join("one.rhai"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

#[test]
fn node_script_is_healthy_here() {
    Probe::command(["run", &repo("scripts/node.rhai").display().to_string()])
        .run()
        .expect(0, "healthy: 2 checks passed (cpus, load)");
}

#[test]
fn liveness_script_against_good_and_bad_endpoints() {
    let script = repo("scripts/liveness.rhai").display().to_string();
    // The load check must not depend on how busy the test machine is: a limit no load reaches,
    // then one every load exceeds (load is never negative).
    let health = format!("url={}", url("/health"));
    let never = ["--var", "max_load_pct=1000000"];
    Probe::command(["run", &script, "--var", &health])
        .args(never)
        .run()
        .expect(0, "healthy: 2 checks passed (load, health)");
    Probe::command(["run", &script, "--var", &health, "--var", "max_load_pct=-1"])
        .run()
        .expect(
            1,
            "check \"load\" failed: condition was false: load_avg() -> ",
        );
    Probe::command(["run", &script, "--var", &format!("url={}", url("/bad"))])
        .args(never)
        .run()
        .expect(1, "check \"health\" failed: GET ")
        .expect(1, "/bad -> 503 (");
    Probe::command([
        "run",
        &script,
        "--var",
        &format!("url=http://127.0.0.1:{}/health", closed_port()),
    ])
    .args(never)
    .run()
    .expect(1, "connection refused");
}

#[test]
fn tcp_script() {
    let script = repo("scripts/tcp.rhai").display().to_string();
    let open = http_server().rsplit(':').next().unwrap().to_string();
    Probe::command(["run", &script, "--var", &format!("port={open}")])
        .run()
        .expect(0, "healthy");
    Probe::command(["run", &script, "--var", &format!("port={}", closed_port())])
        .run()
        .expect(1, "connection refused");
}

#[test]
fn json_health_script() {
    let script = repo("scripts/json-health.rhai").display().to_string();
    Probe::command(["run", &script, "--var", &format!("url={}", url("/json"))])
        .run()
        .expect(
            0,
            "healthy: 3 checks passed (answers, reports UP, database)",
        );
    Probe::command([
        "run",
        &script,
        "--var",
        &format!("url={}", url("/json-down")),
    ])
    .run()
    .expect(1, "check \"reports UP\" failed");
    Probe::command(["run", &script, "--var", &format!("url={}", url("/html"))])
        .run()
        .expect(
            1,
            &format!(
                "check \"reports UP\" failed: GET {}: body is not JSON",
                url("/html")
            ),
        );
}

#[test]
fn checks_script() {
    let script = repo("scripts/checks.rhai").display().to_string();
    let open = http_server().rsplit(':').next().unwrap().to_string();
    Probe::command([
        "run",
        &script,
        "--var",
        &format!("api={}", url("/health")),
        "--var",
        &format!("db_port={open}"),
    ])
    .run()
    .expect(0, "healthy: 3 checks passed (api, database port, load)");
    Probe::command([
        "run",
        &script,
        "--var",
        &format!("api={}", url("/bad")),
        "--var",
        &format!("db_port={}", closed_port()),
    ])
    .run()
    .expect(1, "check \"api\" failed: GET ")
    .expect(1, "check \"database port\" failed: TCP 127.0.0.1:");
}

#[test]
fn check_lints_unknown_functions_argument_counts_and_endings() {
    let dir = temp_dir("lint");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let typo = write("typo.rhai", "let r = htp_get(\"http://x/\");\nr.ok");
    let arity = write("arity.rhai", "tcp_open(\"db\")");
    let ending = write("ending.rhai", "let up = load_avg() < 4.0;");
    let fine = write(
        "fine.rhai",
        "fn near(x) { x < 4.0 }\nlet f = |x| x > 0;\nlet s = \"a,b\";\ncheck(\"split\", s.split(\",\").len() == 2);\ncheck(\"load\", near(load_avg()) && f(1));",
    );
    let run = Probe::command(["check", &typo, &arity, &ending, &fine]).run();
    assert_eq!(run.code, 3, "{}", run.output());
    for part in [
        "error: unknown function htp_get",
        "typo.rhai:1:9",
        "1 | let r = htp_get(\"http://x/\");",
        "= help: did you mean http_get?",
        "error: tcp_open takes 2 or 3 arguments, not 1",
        "arity.rhai:1:1",
        "error: the script ends with a let or const, which has no value; a probe must end with a boolean",
        "ending.rhai:1:1",
    ] {
        assert!(run.stderr.contains(part), "{part:?} not in\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("fine.rhai"), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("failed: 3 of 4 scripts did not compile or pass the lint"),
        "{}",
        run.stdout
    );
    let run = Probe::command(["check", &fine]).run();
    assert_eq!(run.code, 0, "{}", run.output());
}

#[test]
fn ok_is_kubelets_rule_200_to_399() {
    // One definition (http::ok_status) for real responses and for stubs; both are held here.
    for (status, ok) in [
        (200, true),
        (204, true),
        (399, true),
        (400, false),
        (404, false),
        (503, false),
    ] {
        let run = Probe::script(&format!(
            "let r = http_get(\"{}\", #{{follow_redirects: false}});\nr.status == {status} && r.ok == {ok}",
            url(&format!("/status/{status}"))
        ))
        .run();
        run.expect(0, "returned true");
    }
}

#[test]
fn a_path_that_looks_like_a_url_with_a_password_is_masked_everywhere() {
    // A path, not a URL target (those are checked, and masked, as tests/wait.rs shows): one
    // that holds a URL with a password, as a mistyped argument would.
    let path = "./postgres://app:path-pw-5150@db:5432/app";
    for args in [
        vec!["run", path],
        vec!["explain", path],
        vec!["run", path, "--format", "json"],
        vec!["check", path],
        vec!["check", path, "--format", "json"],
        vec!["test", path],
        vec!["test", path, "--format", "junit"],
        vec!["test", "--init", path],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--probe",
            &format!("x={path}"),
        ],
    ] {
        let run = Probe::command(args.clone()).run();
        let out = run.output();
        assert!(
            !out.contains("path-pw-5150"),
            "{args:?} showed the password:\n{out}"
        );
        assert!(
            out.contains("postgres://app:***@db:5432/app"),
            "{args:?}:\n{out}"
        );
        assert_ne!(run.code, 0, "{args:?}");
    }
}

#[test]
fn a_fifo_as_log_file_never_holds_the_probe() {
    // The sidecar's log (docs/kubernetes/sidecar.yaml): a FIFO its main process reads.
    let dir = temp_dir("log-fifo");
    let fifo = dir.join("log");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo with a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let arg = fifo.display().to_string();
    // No reader: the run goes on, logging to stderr only, and says why.
    let run = Probe::script("true").args(["--log-file", &arg]).run();
    run.expect(0, "healthy");
    assert!(
        run.stderr.contains("cannot open --log-file"),
        "{}",
        run.stderr
    );
    assert!(
        run.elapsed < std::time::Duration::from_secs(2),
        "{:?}",
        run.elapsed
    );
    // A reader that holds it open read-write, as the sidecar's `cat 0<>FIFO`: the records arrive.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let run = Probe::script("true").args(["--log-file", &arg]).run();
    run.expect(0, "healthy");
    let mut got = vec![0u8; 4096];
    let n = std::io::Read::read(&mut &reader, &mut got).unwrap();
    assert!(String::from_utf8_lossy(&got[..n]).contains("healthy: probe.rhai returned true"));
}

#[test]
fn a_key_the_json_lacks_fails_its_check_naming_the_url_and_the_path() {
    let script = |route: &str| {
        format!(
            "let health = http_get(\"{}\").json();\ncheck(\"up\", health.status == \"UP\");\ncheck(\"db\", || health.components.db.status == \"UP\");\ncheck(\"disk\", || (health.components.diskSpace?.status ?? \"UP\") == \"UP\");",
            url(route)
        )
    };
    Probe::script(&script("/actuator"))
        .run()
        .expect(0, "healthy: 3 checks passed (up, db, disk)");
    Probe::script(&script("/actuator-nodb")).run().expect(
        1,
        &format!(
            "unhealthy: check \"db\" failed: GET {}: JSON has no key components.db (probe.rhai:3:1)",
            url("/actuator-nodb")
        ),
    );
    // Outside a check it is a check error (2), not a script fault; a typo on the result of
    // http_get stays a script fault (3).
    let base = format!(
        "let health = http_get(\"{}\").json();\n",
        url("/actuator-nodb")
    );
    Probe::script(&format!("{base}health.components.db.status == \"UP\""))
        .run()
        .expect(2, "JSON has no key components.db (probe.rhai:2:19)");
    Probe::script(&format!(
        "let r = http_get(\"{}\");\ncheck(\"x\", || r.stauts == 200);",
        url("/actuator")
    ))
    .run()
    .expect(3, "http_get's result has no key 'stauts'");
    // The optional forms of docs/functions.md#json, each on the JSON without the key.
    for expr in [
        "(health.components.db.status ?? \"UNKNOWN\") == \"UNKNOWN\"",
        "health?.components?.db == ()",
        "!(\"db\" in (health.components ?? #{}))",
        "health.checks?[0] == ()",
        "health.get(\"nope\") == ()",
        "health[\"components\"][\"db\"] ?? true",
    ] {
        Probe::script(&format!("{base}{expr}"))
            .run()
            .expect(0, "returned true");
    }
}

#[test]
fn a_host_function_reached_through_a_pointer_made_from_a_string_is_there() {
    // A run registers only the host functions its text names (start-up); a pointer made from
    // a computed name must still find its function.
    Probe::script("let f = Fn(\"cpu_\" + \"count\"); f.call() >= 1")
        .run()
        .expect(0, "healthy");
    Probe::script("let check_it = |n| cpu_count() >= n; check_it.call(1)")
        .run()
        .expect(0, "healthy");
}

/// `http_request` with `options`, against the test server's `/request` (or `path`): the
/// verdict of a script that checks what the server got.
#[track_caller]
fn request(path: &str, options: &str, check: &str) -> support::Run {
    let run = Probe::script(&format!(
        "let r = http_request(\"{}{path}\", #{{{options}}}); let got = json(r); {check}",
        http_server()
    ))
    .run();
    run
}

#[test]
fn http_request_sends_each_method_and_its_body() {
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post"] {
        request(
            "/request",
            &format!("method: \"{method}\", body: \"a=1\""),
            &format!(
                "got.method == \"{}\" && got.body == \"a=1\"",
                method.to_uppercase()
            ),
        )
        .expect(0, "healthy");
    }
    // json: serialised, with its content type unless the headers name one.
    request(
        "/request",
        "method: \"POST\", json: #{ user: \"probe\", n: [1, 2] }",
        "got.content_type == \"application/json\" && json(got.body).n[1] == 2 && json(got.body).user == \"probe\"",
    )
    .expect(0, "healthy");
    request(
        "/request",
        "method: \"PUT\", json: [1], headers: #{ \"Content-Type\": \"application/vnd.app+json\" }",
        "got.content_type == \"application/vnd.app+json\" && got.body == \"[1]\"",
    )
    .expect(0, "healthy");
    // No method: GET without a body; HEAD: a status and no body.
    request("/request", "", "got.method == \"GET\" && got.body == \"\"").expect(0, "healthy");
    Probe::script(&format!(
        "let r = http_request(\"{}/request\", #{{method: \"HEAD\"}}); r.status == 200 && r.body == \"\"",
        http_server()
    ))
    .run()
    .expect(0, "healthy");
    // The trace names the method; the body is never shown.
    let run = Probe::command([
        "explain",
        "-e",
        &format!(
            "http_request(\"{}/bad\", #{{method: \"POST\", body: \"password=hunter2secret\"}}).ok",
            http_server()
        ),
    ])
    .run();
    run.expect(1, &format!("POST {}/bad -> 503", http_server()));
}

#[test]
fn http_request_redirects_change_the_method_as_browsers_do() {
    // 301/302: a POST becomes a GET without its body; 303: anything but HEAD becomes a GET;
    // 307/308 keep method and body.
    for (status, method, want, body) in [
        (301, "POST", "GET", ""),
        (302, "POST", "GET", ""),
        (303, "POST", "GET", ""),
        (303, "PUT", "GET", ""),
        (302, "PUT", "PUT", "b"),
        (307, "POST", "POST", "b"),
        (308, "PATCH", "PATCH", "b"),
    ] {
        request(
            &format!("/redirect-to-request/{status}"),
            &format!("method: \"{method}\", body: \"b\""),
            &format!("got.method == \"{want}\" && got.body == \"{body}\""),
        )
        .expect(0, "healthy");
    }
}

#[test]
fn http_request_options_are_checked_before_anything_is_sent() {
    let base = http_server();
    for (options, fault) in [
        (
            "method: \"BREW\"",
            "option 'method': \"BREW\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        (
            "body: \"a\", json: #{}",
            "options 'body' and 'json' both given; send one",
        ),
        (
            "json: \"text\"",
            "option 'json' must be a map or an array, got string",
        ),
    ] {
        Probe::script(&format!("http_request(\"{base}/request\", #{{{options}}})"))
            .run()
            .expect(3, fault);
    }
    Probe::script(&format!(
        "let b = \"x\"; b.pad(1048577, \"x\"); http_request(\"{base}/request\", #{{method: \"POST\", body: b}})"
    ))
    .run()
    .expect(3, "the request body is 1048577 bytes; at most 1048576 are sent");
}

/// An HTTP server on a unix socket at `path`: `/start` redirects to `/next`, `/silent` never
/// answers, anything else is 200 with the request's head and body as its body.
fn unix_http_server(path: &std::path::Path) {
    use std::io::{Read, Write};
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while got.len() < head_end + length {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = if head.starts_with("GET /start ") {
                    "HTTP/1.1 302 Found\r\nlocation: /next\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
                } else if head.starts_with("GET /silent ") {
                    std::thread::sleep(Duration::from_secs(3));
                    return;
                } else {
                    let body = String::from_utf8_lossy(&got).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
}

#[test]
fn http_over_a_unix_socket() {
    let dir = temp_dir("unix-http");
    let socket = dir.join("app.sock");
    unix_http_server(&socket);
    let s = socket.display();
    // The URL gives the Host header and the path; the socket is where it goes.
    Probe::script(&format!(
        "let r = http_get(\"http://envoy.admin/stats?x=1\", #{{unix_socket: \"{s}\"}}); \
         let got = r.body.to_lower(); \
         r.status == 200 && got.contains(\"get /stats?x=1 http/1.1\") && got.contains(\"host: envoy.admin\") && r.tls == ()"
    ))
    .run()
    .expect(0, "healthy");
    Probe::script(&format!(
        "let r = http_request(\"http://localhost/jobs\", #{{unix_socket: \"{s}\", method: \"POST\", json: #{{n: 1}}}}); \
         r.status == 200 && r.body.starts_with(\"POST /jobs \") && r.body.ends_with(\"{{\\\"n\\\":1}}\")"
    ))
    .run()
    .expect(0, "healthy");
    // A redirect on the same host goes through the same socket.
    Probe::script(&format!(
        "let r = http_get(\"http://localhost/start\", #{{unix_socket: \"{s}\"}}); \
         r.status == 200 && r.body.starts_with(\"GET /next \") && r.url == \"http://localhost/next\""
    ))
    .run()
    .expect(0, "healthy");
    // explain names the socket.
    Probe::command([
        "explain",
        "-e",
        &format!("http_get(\"http://localhost/health\", #{{unix_socket: \"{s}\"}}).ok"),
    ])
    .run()
    .expect(0, &format!("GET http://localhost/health via {s}  200"));
    // No such socket, one nobody listens on, a server that never answers: transport failures.
    Probe::script(&format!(
        "http_get(\"http://localhost/\", #{{unix_socket: \"{}\"}})",
        dir.join("missing.sock").display()
    ))
    .run()
    .expect(2, "no such file or directory");
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    Probe::script(&format!(
        "http_get(\"http://localhost/\", #{{unix_socket: \"{}\"}})",
        stale.display()
    ))
    .run()
    .expect(2, "connection refused");
    let started = std::time::Instant::now();
    Probe::script(&format!(
        "http_get(\"http://localhost/silent\", #{{unix_socket: \"{s}\", timeout: \"300ms\"}})"
    ))
    .run()
    .expect(2, "timed out after 300 ms");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    // A relative path is a script fault.
    Probe::script("http_get(\"http://localhost/\", #{unix_socket: \"run/app.sock\"})")
        .run()
        .expect(
            3,
            "option 'unix_socket': \"run/app.sock\" is not an absolute path",
        );
}
