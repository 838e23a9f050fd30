//! Every hint that suggests code is true: each test makes the mistake, takes the code the hint
//! suggests (in backticks, or the name after "did you mean"), puts it in the script as the hint
//! says, and runs again: the mistake is gone. `DEFAULT` in a hint stands for a value to choose.

mod support;

use support::{http_server, Probe};

/// The first piece of code a `help:` line (or the message) suggests.
fn suggested(output: &str) -> String {
    for line in output
        .lines()
        .filter(|l| l.contains("help:") || l.contains("did you mean"))
    {
        if let Some(rest) = line.split("did you mean ").nth(1) {
            return rest
                .trim_start_matches(['\'', '`'])
                .split(['\'', '`', '?'])
                .next()
                .unwrap()
                .to_string();
        }
        if let Some(code) = line.split('`').nth(1) {
            return code.replace("DEFAULT", "0");
        }
    }
    // Else the code the message itself names.
    if let Some(code) = output.lines().find_map(|l| l.split('`').nth(1)) {
        return code.replace("DEFAULT", "0");
    }
    panic!("no suggestion in:\n{output}")
}

/// Run `script` (`check` first when `lint`), expect `code`, and return the suggestion.
fn mistake(script: &str, lint: bool, code: i32) -> String {
    let run = if lint {
        Probe::script(script).command_name("check").run()
    } else {
        Probe::script(script).run()
    };
    assert_eq!(run.code, code, "{script}:\n{}", run.output());
    suggested(&run.output())
}

fn fixed(script: &str, lint: bool) {
    let run = if lint {
        Probe::script(script).command_name("check").run()
    } else {
        Probe::script(script).run()
    };
    assert_eq!(
        run.code,
        0,
        "the hint's code did not work: {script}\n{}",
        run.output()
    );
}

#[test]
fn hints_for_json_and_map_keys_work() {
    let json = format!("let h = http_get(\"{}/json\").json();\n", http_server());
    // A key the JSON lacks: `?.components`, or `?? DEFAULT`.
    let script = format!("{json}h.components == ()");
    let code = mistake(&script, false, 2);
    assert_eq!(code, "?.components");
    fixed(&script.replace(".components", &code), false);
    let run = Probe::script(&script).run();
    assert!(run.stderr.contains("or add `?? DEFAULT`"), "{}", run.stderr);
    fixed(&format!("{json}(h.components ?? 0) == 0"), false);
    // An item the JSON array lacks.
    let script = format!("{json}h.checks[3] == ()");
    let code = mistake(&script, false, 2);
    assert_eq!(code, "?[3]");
    fixed(&script.replace("[3]", &code), false);
    // A typo on a host result, and on a map the script made.
    let script = format!("http_get(\"{}/health\").stauts == 200", http_server());
    let code = mistake(&script, false, 3);
    fixed(&script.replace("stauts", &code), false);
    let script = "let m = #{status: 1};\nm.stauts == 1";
    let code = mistake(script, false, 3);
    fixed(&script.replace("stauts", &code), false);
    let script = "let m = #{a: 1};\nm.zzz == ()";
    let code = mistake(script, false, 3);
    assert_eq!(code, "?.zzz");
    fixed(&script.replace(".zzz", &code), false);
}

#[test]
fn hints_for_names_and_arguments_work() {
    let url = format!("{}/health", http_server());
    // An unknown function, at run time and in the lint.
    let script = format!("htp_get(\"{url}\").ok");
    for lint in [false, true] {
        let code = mistake(&script, lint, 3);
        assert_eq!(code, "http_get");
        fixed(&script.replace("htp_get", &code), lint);
    }
    // An undefined variable.
    let script = "x > -1";
    let code = mistake(script, false, 3);
    assert_eq!(code, "var_or(\"x\", 0)");
    fixed(&script.replace('x', &code), false);
    // An unset environment variable.
    let script = "env(\"RHAI_PROBE_HINT_UNSET\") == 0";
    let code = mistake(script, false, 3);
    fixed(&format!("{code} == 0"), false);
    // An unknown option: at run time, and in the lint.
    let script = format!("http_get(\"{url}\", #{{timout: \"1s\"}}).ok");
    for lint in [false, true] {
        let code = mistake(&script, lint, 3);
        assert_eq!(code, "timeout");
        fixed(&script.replace("timout", &code), lint);
    }
    // A string where a port goes.
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let script = format!("tcp_open(\"127.0.0.1\", \"{port}\")");
    let code = mistake(&script, true, 3);
    assert_eq!(code, port);
    fixed(&script.replace(&format!("\"{port}\""), &code), true);
    // A URL without a scheme: the message says what to write.
    let bare = url.trim_start_matches("http://");
    let run = Probe::script(&format!("http_get(\"{bare}\").ok")).run();
    assert_eq!(run.code, 3);
    let written = run
        .stdout
        .split("write ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    fixed(&format!("http_get(\"{written}\").ok"), false);
    // A script that ends with no value.
    let script = "let x = 1;";
    let code = mistake(script, true, 3);
    assert_eq!(code, "load_avg() < 4.0");
    fixed(&format!("{script}\n{code}"), true);
}

#[test]
fn hints_for_tls_work() {
    // rediss:// to a plain Redis port: use redis://.
    let shared =
        std::env::var("RHAI_PROBE_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let script = format!(
        "redis_ping(\"{}\", #{{timeout: \"500ms\"}})",
        shared.replacen("redis://", "rediss://", 1)
    );
    let run = Probe::script(&script).run();
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stdout.contains("(use redis:// for a port without TLS)"),
        "{}",
        run.stdout
    );
    fixed(&script.replacen("rediss://", "redis://", 1), false);
    // A self-signed certificate: insecure: true.
    let Some(port) = support::tls_server() else {
        panic!("openssl is needed for the TLS tests (scripts/test-services.sh installs it)");
    };
    let script = format!("http_get(\"https://localhost:{port}/\").ok");
    let run = Probe::script(&script).run();
    assert_eq!(run.code, 2, "{}", run.output());
    assert!(
        run.stdout.contains("insecure: true skips verification"),
        "{}",
        run.stdout
    );
    fixed(
        &format!("http_get(\"https://localhost:{port}/\", #{{insecure: true}}).ok"),
        false,
    );
}
