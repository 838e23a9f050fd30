//! What ships besides the code: every Rhai snippet in the docs compiles, the Dockerfile copies
//! what the build script builds, `--version` names the commit, `install` works.

mod support;

use std::{path::Path, process::Command};

use support::{repo, temp_dir, Probe, BIN};

/// Every ```rhai block in README.md and docs/**/*.md, as (file:line, code).
fn rhai_blocks() -> Vec<(String, String)> {
    let mut files = vec![repo("README.md")];
    let mut dirs = vec![repo("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut current: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match &mut current {
                None if trimmed == "```rhai" => current = Some((i + 1, String::new())),
                Some((start, code)) if trimmed == "```" => {
                    let name = file.strip_prefix(repo("")).unwrap_or(&file).display();
                    blocks.push((format!("{name}:{start}"), std::mem::take(code)));
                    current = None;
                }
                Some((_, code)) => {
                    code.push_str(line);
                    code.push('\n');
                }
                None => {}
            }
        }
        assert!(
            current.is_none(),
            "{}: unclosed ```rhai block",
            file.display()
        );
    }
    blocks
}

#[test]
fn every_rhai_snippet_in_the_docs_compiles() {
    let blocks = rhai_blocks();
    assert!(
        blocks.len() >= 10,
        "found only {} ```rhai blocks",
        blocks.len()
    );
    let dir = temp_dir("doc-snippets");
    let mut paths = Vec::new();
    for (n, (place, code)) in blocks.iter().enumerate() {
        let path = dir.join(format!("{n:02}.rhai"));
        std::fs::write(&path, format!("// {place}\n{code}")).unwrap();
        paths.push(path.display().to_string());
    }
    let run = Probe::command(["check".to_string()].into_iter().chain(paths)).run();
    assert_eq!(
        run.code, 0,
        "a snippet does not compile:\n{}{}",
        run.stdout, run.stderr
    );
}

#[test]
fn the_dockerfile_ships_what_the_build_script_builds() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let script = std::fs::read_to_string(repo("scripts/build-static.sh")).unwrap();
    assert!(
        dockerfile.contains("RUN scripts/build-static.sh"),
        "{dockerfile}"
    );
    let built = "target/x86_64-unknown-linux-musl/release/rhai-probe";
    assert!(
        script.contains("target=x86_64-unknown-linux-musl"),
        "{script}"
    );
    // The shipping build's output directory is target/ (--profiling builds elsewhere).
    assert!(script.contains("\nout_dir=target\n"), "{script}");
    assert!(
        script.contains("bin=$out_dir/$target/release/rhai-probe"),
        "{script}"
    );
    // Both sources of the binary take what build-static.sh writes (tests/docker.rs builds the
    // `prebuilt` one and runs it).
    assert!(
        dockerfile.contains(&format!("&& cp {built} /out/")),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains(&format!("COPY {built} /out/rhai-probe")),
        "{dockerfile}"
    );
    let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(final_stage.starts_with("scratch"), "{final_stage}");
    assert!(final_stage.contains("USER 65532:65532"), "{final_stage}");
    assert!(
        final_stage.contains("ENTRYPOINT [\"/usr/local/bin/rhai-probe\"]"),
        "{final_stage}"
    );
    // The image's scripts are the example scripts, and they exist.
    assert!(final_stage.contains("COPY --from=binary /out/rhai-probe /usr/local/bin/rhai-probe"));
    assert!(final_stage.contains("COPY --from=binary /out/scripts/ /usr/share/rhai-probe/scripts/"));
    assert!(dockerfile.contains("&& cp scripts/*.rhai /out/scripts/"));
    assert!(dockerfile.contains("COPY scripts/*.rhai /out/scripts/"));
    assert!(std::fs::read_dir(repo("scripts"))
        .unwrap()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "rhai")));
    let ignore = std::fs::read_to_string(repo(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"), "{ignore}");
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(out.status.code(), Some(0));
    let expected_prefix = format!("rhai-probe {} (", env!("CARGO_PKG_VERSION"));
    assert!(
        text.starts_with(&expected_prefix) && text.ends_with(')'),
        "{text}"
    );
    let commit = &text[expected_prefix.len()..text.len() - 1];
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo(""))
        .output();
    match head {
        Ok(head) if head.status.success() && std::env::var("RHAI_PROBE_COMMIT").is_err() => {
            assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim());
        }
        _ => assert!(!commit.is_empty(), "{text}"),
    }
}

#[test]
fn install_copies_a_working_binary() {
    let dir = temp_dir("install");
    let out = Command::new(BIN).arg("install").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let installed = dir.join("rhai-probe");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("installed {}", installed.display())
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(!dir.join(".rhai-probe.partial").exists());
    let run = Command::new(&installed)
        .args(["run", &repo("scripts/node.rhai").display().to_string()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    // A directory that is not there: exit 1 and the reason.
    let out = Command::new(BIN)
        .arg("install")
        .arg(Path::new("/nonexistent/dir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot install into /nonexistent/dir: no such file or directory"));
}

#[test]
fn functions_lists_every_host_function_in_three_formats() {
    let text = Command::new(BIN).arg("functions").output().unwrap();
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let json = Command::new(BIN)
        .args(["functions", "--format", "json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in [
        "load_avg",
        "cpu_count",
        "http_get",
        "json",
        "tcp_open",
        "sql_ping",
        "sql_scalar",
        "env",
        "read_file",
        "check",
        "var_or",
        "sleep",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
        assert!(
            text.contains(&format!("\n{name}(")) || text.starts_with(&format!("{name}(")),
            "{name}: {text}"
        );
    }
    let markdown = Command::new(BIN)
        .args(["functions", "--format", "markdown"])
        .output()
        .unwrap();
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        markdown.starts_with("| function | signatures | what it does |"),
        "{markdown}"
    );
    assert_eq!(markdown.lines().count(), names.len() + 2);
}

#[test]
fn help_for_run_and_for_the_whole_command() {
    let run = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    assert_eq!(run.status.code(), Some(0));
    let text = String::from_utf8_lossy(&run.stdout);
    for part in [
        "Usage: rhai-probe run [OPTIONS] <SCRIPT|--eval <EXPR>>",
        "--timeout <DURATION>",
        "--var <NAME=VALUE>",
        "Exit codes:",
        "  4   deadline",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
    let all = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&all.stdout);
    for sub in [
        "run",
        "explain",
        "test",
        "check",
        "wait",
        "functions",
        "defs",
        "install",
        "serve",
    ] {
        assert!(text.contains(&format!("\n  {sub} ")), "{sub} not in {text}");
    }
}
