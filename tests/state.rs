//! State across runs (`--state-dir`): grace and failure windows, rates, remember/recall,
//! history; the file's life (locking under 50 overlapping runs, a killed writer, a corrupt or
//! future file, a read-only directory, a new container); `test` cases with a prior state.
//! Semantics over many runs with a controlled clock are unit tests in src/state.rs; here the
//! clock is moved by rewriting the file's times, never by sleeping.

mod support;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use support::{closed_port, temp_dir, Probe, Run, BIN};

/// `rhai-probe run --state-dir DIR SCRIPT` with `extra` arguments.
fn run(dir: &Path, script: &Path, extra: &[&str]) -> Run {
    Probe::command(["run", "--state-dir", &dir.display().to_string()])
        .args(extra.iter().copied())
        .args([script.display().to_string()])
        .run()
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The one state file in `dir`, parsed.
fn state_file(dir: &Path) -> (PathBuf, serde_json::Value) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".state.json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (files[0].clone(), value)
}

/// Move every time in the state file `secs` into the past: as if that long had gone by.
fn age(dir: &Path, secs: f64) {
    let (path, mut v) = state_file(dir);
    let back = |t: &mut serde_json::Value| {
        if let Some(x) = t.as_f64() {
            *t = (x - secs).into();
        }
    };
    for check in v["checks"].as_object_mut().unwrap().values_mut() {
        back(&mut check["failing_since"]);
        for f in check["failures"].as_array_mut().unwrap() {
            back(f);
        }
    }
    for r in v["rates"].as_object_mut().unwrap().values_mut() {
        back(&mut r["at"]);
    }
    // A history entry is [at, wall, exit, reason].
    for h in v["history"].as_array_mut().unwrap() {
        back(&mut h[0]);
    }
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn a_grace_period_outlasts_a_blip_but_not_a_real_outage() {
    let dir = temp_dir("state-grace");
    let state = dir.join("state");
    let port = closed_port();
    let probe = script(
        &dir,
        "liveness.rhai",
        &format!(
            "check(\"db\", tcp_open(\"127.0.0.1\", {port}), #{{ grace: \"3m\" }});\n\
             check(\"cpus\", cpu_count() > 0);"
        ),
    );
    // The first failure starts the grace period: healthy, and the line says why.
    run(&state, &probe, &[]).expect(
        0,
        "2 checks passed (db, cpus); check \"db\" failing for 0 s of its 3 m grace: TCP 127.0.0.1:",
    );
    // 2 m 50 s later: still within it.
    age(&state, 170.0);
    run(&state, &probe, &[]).expect(0, "check \"db\" failing for 2 m 50 s of its 3 m grace");
    // 3 m 10 s: past it.
    age(&state, 20.0);
    run(&state, &probe, &[]).expect(
        1,
        "check \"db\" failed: failing for 3 m 10 s, past its 3 m grace: TCP 127.0.0.1:",
    );
    // The database is back: a success resets the streak...
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    run(&state, &probe, &[]).expect(0, "2 checks passed (db, cpus) in");
    assert!(state_file(&state).1["checks"]["db"]["failing_since"].is_null());
    drop(listener);
    // ...and the next failure gets the whole grace again.
    age(&state, 600.0);
    run(&state, &probe, &[]).expect(0, "failing for 0 s of its 3 m grace");
    // The history holds every run's verdict.
    let (_, v) = state_file(&state);
    let exits: Vec<i64> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[2].as_i64().unwrap())
        .collect();
    assert_eq!(exits, [0, 0, 1, 0, 0]);
}

#[test]
fn failures_within_a_window_count_whether_in_a_row_or_not() {
    let dir = temp_dir("state-window");
    let state = dir.join("state");
    let flag = dir.join("up");
    // Fails while the flag file is missing.
    let probe = script(
        &dir,
        "readiness.rhai",
        &format!(
            "check(\"api\", file_exists(\"{}\"), #{{ failures: 3, within: \"5m\" }})",
            flag.display()
        ),
    );
    let down = || run(&state, &probe, &[]);
    let up = || {
        std::fs::write(&flag, "").unwrap();
        let r = run(&state, &probe, &[]);
        std::fs::remove_file(&flag).unwrap();
        r
    };
    down().expect(0, "check \"api\" failed once in the last 5 m, fewer than 3");
    age(&state, 60.0);
    up().expect(0, "1 check passed (api) in");
    age(&state, 60.0);
    down().expect(0, "failed 2 times in the last 5 m, fewer than 3");
    age(&state, 60.0);
    up().expect(0, "1 check passed (api) in");
    age(&state, 60.0);
    down().expect(
        1,
        "check \"api\" failed: failed 3 times in the last 5 m (the limit is 3)",
    );
    // Four minutes on, the first failure has left the window.
    age(&state, 150.0);
    down().expect(1, "failed 3 times in the last 5 m");
    age(&state, 290.0);
    down().expect(0, "failed 2 times in the last 5 m, fewer than 3");
}

#[test]
fn rates_remembered_values_and_history() {
    let dir = temp_dir("state-rate");
    let state = dir.join("state");
    let probe = script(
        &dir,
        "errors.rhai",
        "let r = rate(\"errors\", errors);\n\
         let runs = recall(\"runs\", 0) + 1;\n\
         remember(\"runs\", runs);\n\
         print(`rate=${if r == () { \"none\" } else { (r * 10.0).round() / 10.0 }} runs=${runs} history=${history().len()}`);\n\
         r == () || r < 1.0",
    );
    let with = |errors: &str| {
        Probe::command([
            "run",
            "--state-dir",
            &state.display().to_string(),
            "--var",
            &format!("errors={errors}"),
            "-v",
        ])
        .args([probe.display().to_string()])
        .run()
    };
    let first = with("100");
    first.expect(0, "healthy");
    assert!(
        first.stderr.contains("rate=none runs=1 history=0"),
        "{}",
        first.stderr
    );
    age(&state, 60.0);
    // 100 -> 130 in 60 s: 0.5 per second.
    let r = with("130");
    r.expect(0, "healthy");
    assert!(
        r.stderr.contains("rate=0.5 runs=2 history=1"),
        "{}",
        r.stderr
    );
    age(&state, 10.0);
    // 130 -> 160 in 10 s: 3 per second, unhealthy.
    with("160").expect(1, "errors.rhai returned false");
    age(&state, 20.0);
    // The counter went down: a restart; 10 since, in 20 s: 0.5 per second, not negative.
    let r = with("10");
    r.expect(0, "healthy");
    assert!(
        r.stderr.contains("rate=0.5 runs=4 history=3"),
        "{}",
        r.stderr
    );
    // history() in a script: the last verdicts, oldest first.
    let h = script(
        &dir,
        "errors2.rhai",
        "let h = history(); h.len() == 0 || (h[0].verdict == \"healthy\" && h[0].at.ends_with(\"Z\") && h[0].ago >= 0.0)",
    );
    run(&state, &h, &[]).expect(0, "healthy");
    run(&state, &h, &[]).expect(0, "healthy");
}

#[test]
fn fifty_overlapping_runs_leave_one_valid_file() {
    let dir = temp_dir("state-overlap");
    let state = dir.join("state");
    let probe = script(
        &dir,
        "count.rhai",
        "let n = recall(\"n\", 0); remember(\"n\", n + 1); true",
    );
    let children: Vec<std::process::Child> = (0..50)
        .map(|_| {
            Command::new(BIN)
                .args(["run", "--timeout", "5s", "--state-dir"])
                .arg(&state)
                .arg(&probe)
                .env_remove("RHAI_PROBE_STATE_DIR")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut kept = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{line}");
        if !line.contains("state not kept") {
            kept += 1;
        }
    }
    let (_, v) = state_file(&state);
    // Every run that had the lock read the last one's count: none was lost to a race.
    assert_eq!(v["memory"]["n"].as_i64(), Some(kept), "{v}");
    assert!(kept >= 25, "only {kept} of 50 runs got the lock");
    assert_eq!(v["history"].as_array().unwrap().len(), 20);
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !n.ends_with(".state.json") && !n.ends_with(".json.lock") && !n.ends_with(".json.next")
        })
        .collect();
    // The file, its lock and its spare (the previous version, see state::write): nothing else.
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_killed_writer_a_corrupt_file_and_a_future_one() {
    let dir = temp_dir("state-broken");
    let state = dir.join("state");
    let probe = script(
        &dir,
        "p.rhai",
        "let n = recall(\"n\", 0); remember(\"n\", n + 1); sleep(var_or(\"pause\", 0)); true",
    );
    run(&state, &probe, &[]).expect(0, "healthy");
    // The second run holds the lock and sleeps; it is killed before it writes.
    let killed = Probe::command([
        "run",
        "--timeout",
        "10s",
        "--var",
        "pause=5",
        "--state-dir",
        &state.display().to_string(),
    ])
    .args([probe.display().to_string()])
    .signal_after(Duration::from_millis(500), libc::SIGKILL)
    .run();
    assert_eq!(killed.code, -1, "killed");
    // The lock went with it; the file is the first run's, whole.
    let (path, v) = state_file(&state);
    assert_eq!(v["memory"]["n"].as_i64(), Some(1));
    run(&state, &probe, &[]).expect(0, "healthy");
    assert_eq!(state_file(&state).1["memory"]["n"].as_i64(), Some(2));
    // A run killed in the middle of writing leaves a torn spare, never a torn file.
    let spare = path.with_extension("json.next");
    std::fs::write(&spare, "{\"version\": 2, \"ident").unwrap();
    run(&state, &probe, &[]).expect(0, "healthy");
    let (_, v) = state_file(&state);
    assert_eq!(v["memory"]["n"].as_i64(), Some(3), "{v}");
    // The spare now holds the version before, whole.
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spare).unwrap()).unwrap();
    assert_eq!(before["memory"]["n"].as_i64(), Some(2));
    // A corrupt file: reset with one warning, never a failed probe.
    std::fs::write(&path, "{\"version\": 1, \"checks\": [tr").unwrap();
    let r = run(&state, &probe, &[]);
    r.expect(0, "healthy");
    assert!(
        r.stderr.contains("not a state file (corrupt"),
        "{}",
        r.stderr
    );
    assert_eq!(state_file(&state).1["memory"]["n"].as_i64(), Some(1));
    // A future version, and someone else's JSON.
    for (text, says) in [
        ("{\"version\": 99}", "a state file of version 99"),
        ("{\"hello\": \"world\"}", "not a state file (no version)"),
    ] {
        std::fs::write(&path, text).unwrap();
        let r = run(&state, &probe, &[]);
        r.expect(0, "healthy");
        assert_eq!(r.stderr.matches("starting over").count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
}

#[test]
fn without_a_place_for_state_or_with_a_read_only_one() {
    let dir = temp_dir("state-none");
    let probe = script(&dir, "p.rhai", "check(\"x\", false, #{ grace: \"1m\" })");
    // No --state-dir: the script's fault, where it asks for state.
    Probe::command(["run", &probe.display().to_string()])
        .run()
        .expect(
            3,
            "p.rhai:1:1: check keeps state across runs: give --state-dir DIR",
        );
    // `check` says so without running it.
    let checked = Probe::command(["check", &probe.display().to_string()]).run();
    assert_eq!(checked.code, 0);
    assert!(
        checked
            .stderr
            .contains("p.rhai:1:1: check keeps state across runs: run it with --state-dir"),
        "{}",
        checked.stderr
    );
    // A read-only directory: the verdict is computed without state, and the line says so.
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let Some(wrapper) = support::in_mount_namespace(&format!(
        "mount --bind {0} {0} && mount -o remount,bind,ro {0}",
        ro.display()
    )) else {
        return support::unavailable(
            "without_a_place_for_state_or_with_a_read_only_one",
            "no mount namespace for a read-only directory (needs root and unshare)",
        );
    };
    Probe::command([
        "run",
        "--state-dir",
        &ro.display().to_string(),
        &probe.display().to_string(),
    ])
    .wrapper(wrapper)
    .run()
    .expect(1, "check \"x\" failed: condition was false (")
    .expect(1, "(state not kept: ")
    .expect(1, "read-only file system; judged without it)");
}

#[test]
fn a_new_container_starts_over() {
    let dir = temp_dir("state-restart");
    let state = dir.join("state");
    let probe = script(&dir, "p.rhai", "check(\"x\", false, #{ grace: \"1m\" })");
    run(&state, &probe, &[]).expect(0, "failing for 0 s of its 1 m grace");
    age(&state, 120.0);
    run(&state, &probe, &[]).expect(1, "failing for 2 m, past its 1 m grace");
    // In a new PID namespace PID 1 is another process: another container's life. Its streak
    // starts over instead of restarting the new container at once.
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !unshare {
        return support::unavailable(
            "a_new_container_starts_over",
            "cannot make a PID namespace (needs root and unshare)",
        );
    }
    age(&state, 120.0);
    let r = Probe::command([
        "run",
        "-v",
        "--state-dir",
        &state.display().to_string(),
        &probe.display().to_string(),
    ])
    .wrapper(["unshare", "--pid", "--fork", "--mount-proc"])
    .run();
    r.expect(0, "failing for 0 s of its 1 m grace");
    assert!(
        r.stderr
            .contains("written by an earlier container (a restart): starting over"),
        "{}",
        r.stderr
    );
}

#[test]
fn explain_shows_the_state_read_and_written() {
    let dir = temp_dir("state-explain");
    let state = dir.join("state");
    let probe = script(&dir, "p.rhai", "check(\"x\", false, #{ grace: \"1m\" })");
    run(&state, &probe, &[]).expect(0, "healthy");
    let r = Probe::command([
        "explain",
        "--state-dir",
        &state.display().to_string(),
        &probe.display().to_string(),
    ])
    .run();
    r.expect(0, "failing for ");
    for text in [
        "\nstate\n",
        "  read ",
        ": check \"x\" failing for ",
        ", 1 verdict\n",
        "  wrote ",
        ", 2 verdicts\n",
    ] {
        assert!(r.stdout.contains(text), "{text:?} in\n{}", r.stdout);
    }
    let json = Probe::command([
        "run",
        "--format",
        "json",
        "--state-dir",
        &state.display().to_string(),
        &probe.display().to_string(),
    ])
    .run();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["checks"][0]["passed"], true);
    assert!(
        v["checks"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("of its 1 m grace"),
        "{v}"
    );
    assert!(v["state"][0].as_str().unwrap().starts_with("read "), "{v}");
}

#[test]
fn test_cases_give_the_prior_state() {
    let dir = temp_dir("state-cases");
    let probe = script(
        &dir,
        "liveness.rhai",
        "check(\"db\", || sql_ping(\"postgres://app@db:5432/app\"), #{ grace: \"3m\" });\n\
         check(\"api\", http_get(\"http://127.0.0.1:8080/health\", #{ timeout: \"1s\" }).ok, #{ failures: 3, within: \"5m\" });\n\
         let r = rate(\"errors\", var_or(\"errors\", 0));\n\
         r == () || r < 1.0",
    );
    std::fs::write(
        dir.join("liveness.cases.toml"),
        r#"
[[case]]
name = "a first run with the database down is inside its grace"
expect = "healthy"
reason = "check \"db\" failing for 0 s of its 3 m grace"
stubs.sql_ping = false
stubs.http_get = { status = 200 }

[[case]]
name = "down for 2m50s: still inside"
expect = "healthy"
reason = "failing for 2 m 50 s of its 3 m grace"
stubs.sql_ping = false
stubs.http_get = { status = 200 }
state.checks.db.failing_since = "2m50s"

[[case]]
name = "down for 3m10s: restart"
expect = "unhealthy"
reason = "check \"db\" failed: failing for 3 m 10 s, past its 3 m grace"
stubs.sql_ping = false
stubs.http_get = { status = 200 }
state.checks.db.failing_since = "3m10s"

[[case]]
name = "back up: healthy"
expect = "healthy"
stubs.sql_ping = true
stubs.http_get = { status = 200 }
state.checks.db.failing_since = "10m"

[[case]]
name = "the third api failure in five minutes"
expect = "unhealthy"
reason = "failed 3 times in the last 5 m"
stubs.sql_ping = true
stubs.http_get = { status = 503 }
state.checks.api.failures = ["4m", "1m"]

[[case]]
name = "an old failure has left the window"
expect = "healthy"
stubs.sql_ping = true
stubs.http_get = { status = 503 }
state.checks.api.failures = ["6m", "1m"]

[[case]]
name = "the error counter grows too fast"
expect = "unhealthy"
vars = { errors = 200 }
stubs = { sql_ping = true, http_get = { status = 200 } }
state.rates.errors = { value = 100, ago = "30s" }

[[case]]
name = "the counter was reset"
expect = "healthy"
vars = { errors = 5 }
stubs = { sql_ping = true, http_get = { status = 200 } }
state.rates.errors = { value = 100, ago = "30s" }
"#,
    )
    .unwrap();
    let r = Probe::command(["test", &probe.display().to_string()]).run();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("8 passed, 0 failed"), "{}", r.stdout);
    // A bad duration in a case's state is named where it is.
    std::fs::write(
        dir.join("bad.cases.toml"),
        "[[case]]\nname = \"x\"\nexpect = \"healthy\"\nstate.checks.db.failing_since = \"3 fortnights\"\n",
    )
    .unwrap();
    let r = Probe::command([
        "test",
        "--cases",
        &dir.join("bad.cases.toml").display().to_string(),
        &probe.display().to_string(),
    ])
    .run();
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.output().contains("bad.cases.toml:4:1: case \"x\": state: checks.db.failing_since: invalid duration '3 fortnights'"),
        "{}",
        r.output()
    );
}

#[test]
fn the_state_dir_can_come_from_the_environment() {
    let dir = temp_dir("state-env");
    let state = dir.join("from-env");
    let probe = script(&dir, "p.rhai", "remember(\"x\", 1); true");
    Probe::command(["run", &probe.display().to_string()])
        .env("RHAI_PROBE_STATE_DIR", &state.display().to_string())
        .run()
        .expect(0, "healthy");
    assert_eq!(state_file(&state).1["memory"]["x"].as_i64(), Some(1));
    // The flag wins over the environment.
    let flag = dir.join("from-flag");
    Probe::command([
        "run",
        "--state-dir",
        &flag.display().to_string(),
        &probe.display().to_string(),
    ])
    .env("RHAI_PROBE_STATE_DIR", &state.display().to_string())
    .run()
    .expect(0, "healthy");
    assert_eq!(state_file(&flag).1["memory"]["x"].as_i64(), Some(1));
}
