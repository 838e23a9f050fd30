//! Authoring a probe before a rollout: `check` finds what `run` would, the reports CI reads
//! (`check --format json`, `test --format json|junit`), editor definitions (`defs`), and the
//! help a newcomer reads first.

mod support;

use support::{temp_dir, Probe};

/// `check` on a script written to a file: (exit code, stderr).
fn check(text: &str) -> (i32, String) {
    let run = Probe::script(text).command_name("check").run();
    (run.code, run.stderr)
}

#[test]
fn check_finds_what_run_reports_as_a_script_fault() {
    for (script, finding) in [
        (
            "let resp = http_get(\"http://127.0.0.1:1/\");\nresp.stauts == 200",
            "probe.rhai:2:6\n",
        ),
        (
            "http_get(\"http://127.0.0.1:1/\", #{timout: \"1s\"}).ok",
            "http_get: unknown option 'timout'; did you mean 'timeout'?",
        ),
        (
            "tcp_open(\"127.0.0.1\", \"18080\")",
            "tcp_open's port is an integer, not a string",
        ),
        (
            "let resp = http_get(\"http://127.0.0.1:1/\");\nresp.status",
            "the script ends with an integer",
        ),
        ("loop {}\ntrue", "this loop never ends"),
        (
            "http_get(\"u\", #{timeout: true}).ok",
            "option 'timeout' must be a duration",
        ),
        (
            "check(\"a\", true);\nmemory()",
            "the script ends with the map memory() returns",
        ),
    ] {
        let (code, stderr) = check(script);
        assert_eq!(code, 3, "{script}: {stderr}");
        assert!(
            stderr.contains(finding),
            "{script}: {finding:?} not in\n{stderr}"
        );
    }
    // And nothing on what is right, or on JSON keys the lint cannot know.
    for script in [
        "let resp = http_get(\"http://h/\", #{timeout: \"1s\", headers: #{a: \"b\"}});\nresp.status == 200 && resp.json().anything == 1",
        "let n = 0;\nloop { n += 1; if n > 2 { break; } }\ntcp_open(\"h\", 80)",
        "let r = http_get(\"http://h/\");\nlet r = 5;\nr == 5",
    ] {
        let (code, stderr) = check(script);
        assert_eq!(code, 0, "{script}: {stderr}");
    }
}

#[test]
fn check_and_test_report_for_ci() {
    let run = Probe::script("let r = http_get(\"http://h/\");\nr.stauts == 1")
        .command_name("check")
        .args(["--format", "json"])
        .run();
    assert_eq!(run.code, 3);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["scripts"][0]["problems"][0]["line"], 2);
    assert_eq!(doc["scripts"][0]["problems"][0]["col"], 3);
    assert!(doc["scripts"][0]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("no key 'stauts'"));

    let dir = temp_dir("ci-reports");
    let script = dir.join("p.rhai");
    std::fs::write(&script, "http_get(\"http://app/health\").ok").unwrap();
    std::fs::write(
        dir.join("p.cases.toml"),
        "[[case]]\nname = \"up\"\nexpect = \"healthy\"\nstubs.http_get = { status = 200 }\n\n[[case]]\nname = \"a <wrong> & expectation\"\nexpect = \"healthy\"\nstubs.http_get = { status = 503 }\n",
    )
    .unwrap();
    let path = script.display().to_string();
    let run = Probe::command(["test", &path, "--format", "json"]).run();
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (doc["passed"].as_u64(), doc["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(doc["cases"][1]["passed"], false);
    assert!(doc["cases"][1]["problem"]
        .as_str()
        .unwrap()
        .contains("expected healthy, got unhealthy"));

    let run = Probe::command(["test", &path, "--format", "junit"]).run();
    assert_eq!(run.code, 1);
    let xml = &run.stdout;
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"),
        "{xml}"
    );
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<testcase name=\"up\""), "{xml}");
    assert!(
        xml.contains("name=\"a &lt;wrong&gt; &amp; expectation\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected healthy, got unhealthy"),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 2);
    // A cases file that cannot be read is still one failed test case, never an empty report.
    std::fs::remove_file(dir.join("p.cases.toml")).unwrap();
    let run = Probe::command(["test", &path, "--format", "junit"]).run();
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.contains("tests=\"1\" failures=\"1\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("<testcase name=\"cases file\""),
        "{}",
        run.stdout
    );
    // All passing: every case is a test case.
    std::fs::write(
        dir.join("p.cases.toml"),
        "[[case]]\nname = \"up\"\nexpect = \"healthy\"\nstubs.http_get = { status = 200 }\n",
    )
    .unwrap();
    let run = Probe::command(["test", &path, "--format", "junit"]).run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("tests=\"1\" failures=\"0\""),
        "{}",
        run.stdout
    );
}

#[test]
fn defs_lists_every_function_for_editors() {
    let run = Probe::command(["defs"]).run();
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("module static;\n"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("fn http_get(url: String, options: Map) -> Map;"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("/// GET a URL"), "{}", run.stdout);
    let listed = Probe::command(["functions", "--format", "json"]).run();
    let doc: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    for f in doc.as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert!(
            run.stdout.contains(&format!("fn {name}(")),
            "defs lack {name}"
        );
    }
    let dir = temp_dir("defs");
    let out = dir.join(".rhai");
    let run = Probe::command(["defs", "--out", &out.display().to_string()]).run();
    assert_eq!(run.code, 0, "{}", run.output());
    let written = std::fs::read_to_string(out.join("rhai-probe.d.rhai")).unwrap();
    assert!(written.contains("fn sql_ping(dsn: String) -> bool;"));
}

#[test]
fn help_reads_well() {
    let run = Probe::command(["run", "--help"]).run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with("Run a probe script and exit with its verdict"),
        "{}",
        run.stdout
    );
    let help = Probe::command(["help", "run"]).run();
    assert_eq!(help.code, 0, "{}", help.output());
    assert!(
        help.stdout.contains("Usage: rhai-probe run"),
        "{}",
        help.stdout
    );
    for command in [
        "run",
        "explain",
        "test",
        "check",
        "functions",
        "defs",
        "install",
        "serve",
    ] {
        let run = Probe::command([command, "--help"]).run();
        assert_eq!(run.code, 0, "{command}");
        assert!(
            run.stdout.contains("Examples:\n  rhai-probe "),
            "{command} --help has no examples:\n{}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("Where log records go"),
            "{}",
            run.stdout
        );
    }
    // serve without a probe is a bad command line, 64, as docs/usage.md says.
    let run = Probe::command(["serve", "--listen", "127.0.0.1:0"]).run();
    assert_eq!(run.code, 64, "{}", run.output());
}
