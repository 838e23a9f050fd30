//! rhai-probe: Kubernetes exec probes written in Rhai.
//!
//! `main` parses the command line, sets up logging and dispatches; each subcommand returns the
//! [`Exit`] it ends with, and that is the process's exit code. Nothing else exits, except the
//! watchdog, which must be able to end a run stuck in a call that cannot be interrupted.

use std::{process::ExitCode, time::Duration};

use rhai_probe::{
    cli::{CheckArgs, Cli, Command, Format, LogArgs, RunArgs, TestArgs, TestFormat, VarArgs},
    deadline::Deadline,
    exit_code::Exit,
    report::Reporter,
    trace::Trace,
};
use rhai_probe::{engine, host, lint, logging, probe, report, signals, testing, trace};

fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Exit::Usage.into(),
            };
        }
    };
    // What scripts may reach, before any runs: a bad list is a usage error.
    let allow = match &cli.command {
        Command::Run(a) | Command::Explain(a) => Some(&a.allow),
        Command::Test(a) => Some(&a.allow),
        Command::Wait(a) => Some(&a.allow),
        Command::Serve(a) => Some(&a.allow),
        _ => None,
    };
    if let Some(Err(e)) = allow.map(|a| a.install()) {
        eprintln!(
            "error: {e}

For more information, try '--help'."
        );
        return Exit::Usage.into();
    }
    match cli.command {
        Command::Run(args) => run(args, false),
        Command::Explain(args) => run(args, true),
        Command::Check(args) => check(args),
        Command::Test(args) => test(args),
        Command::Install(args) => return install(&args.dir),
        Command::Wait(args) => rhai_probe::wait::run(args),
        Command::Serve(args) => {
            // A process that lives as long as its pod: the system allocator from here on (see
            // `Arena::for_a_long_life`). One thread so far, as that needs.
            if !ALLOC.for_a_long_life() {
                log::debug!("the start-up allocator keeps serving: it already holds memory");
            }
            return rhai_probe::serve::run(args);
        }
        Command::Functions(args) => {
            print!("{}", host::reference(args.format));
            return ExitCode::SUCCESS;
        }
        Command::Defs(args) => return defs(args.out.as_deref()),
    }
    .into()
}

/// `defs`: the definitions on stdout, or in DIR/rhai-probe.d.rhai.
fn defs(out: Option<&std::path::Path>) -> ExitCode {
    let text = rhai_probe::defs::definitions();
    let Some(dir) = out else {
        print!("{text}");
        return ExitCode::SUCCESS;
    };
    let path = dir.join(rhai_probe::defs::FILE);
    match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => {
            println!("wrote {}", rhai_probe::redact::path(&path));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot write {}: {}",
                rhai_probe::redact::path(&path),
                host::io_reason(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// `install DIR`: copy this binary to `DIR/rhai-probe` through a temporary file and a rename, so
/// a probe starting meanwhile never runs a half-written binary.
fn install(dir: &std::path::Path) -> ExitCode {
    use std::os::unix::fs::PermissionsExt;
    let target = dir.join("rhai-probe");
    let partial = dir.join(".rhai-probe.partial");
    let result = std::env::current_exe()
        .and_then(|me| std::fs::copy(me, &partial))
        .and_then(|_| std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)))
        .and_then(|_| std::fs::rename(&partial, &target));
    match result {
        Ok(()) => {
            println!("installed {}", rhai_probe::redact::path(&target));
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            eprintln!(
                "error: cannot install into {}: {}",
                rhai_probe::redact::path(dir),
                host::io_reason(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// After the deadline, how long the watchdog waits for the run to stop by itself.
const WATCHDOG_GRACE: Duration = Duration::from_millis(100);

/// `run`, or with `explain` the same run reported for a person.
fn run(args: RunArgs, explain: bool) -> Exit {
    let deadline = Deadline::start(args.timeout.0);
    logging::init(&args.log);
    let trace = Trace::default();
    let reporter = Reporter {
        format: args.format,
        explain,
        source: match (&args.eval, &args.script) {
            (Some(_), _) | (None, None) => probe::EVAL.into(),
            (None, Some(path)) => probe::display_name(path),
        },
        deadline_ms: deadline.limit().as_secs_f64() * 1e3,
    };
    spawn_watchdog(deadline, reporter.clone(), trace.clone());

    let loaded = match (&args.eval, &args.script) {
        (Some(_), Some(_)) | (None, None) => {
            eprintln!(
                "error: give a SCRIPT (a path, - or a URL target) or -e EXPR, one of them\n\nUsage: rhai-probe {} [OPTIONS] <SCRIPT|--eval <EXPR>>\n\nFor more information, try '--help'.",
                if explain { "explain" } else { "run" }
            );
            return Exit::Usage;
        }
        (Some(text), None) => Ok(probe::inline(text)),
        (None, Some(path)) => probe::load(path),
    };
    let script = match loaded {
        Ok(script) => script,
        Err(mut verdict) => {
            verdict.elapsed = deadline.elapsed();
            reporter.emit(&verdict, &trace, None);
            return verdict.exit;
        }
    };
    trace.set_phase(engine::STOPPED_RUNNING);
    let vars = vars(&args.vars);
    probe::warn_unused_vars(&script, &vars);
    // A script that cannot use state does not even look for its place (no getenv).
    let store = match rhai_probe::state::mentions_state(&script.text)
        .then(|| args.state_dir())
        .flatten()
    {
        Some(dir) => rhai_probe::state::Store::Dir(dir),
        None => rhai_probe::state::Store::Off,
    };
    let verdict = probe::run(&script, vars, deadline, &trace, None, store);
    if !reporter.emit(&verdict, &trace, Some(&script.text)) {
        // The watchdog is reporting the deadline and will exit with it.
        std::thread::sleep(Duration::from_secs(1));
        return Exit::Deadline;
    }
    verdict.exit
}

/// The last line of defence: if the run has not ended shortly after its deadline (stuck in a
/// DNS lookup, a read that ignores its timeout), report the call in flight and exit 4. The same
/// thread waits for SIGTERM and, when it comes first, reports the call in flight and exits 143.
fn spawn_watchdog(deadline: Deadline, reporter: Reporter, trace: Trace) {
    let sigterm = signals::Blocked::sigterm();
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let wake = deadline.at() + WATCHDOG_GRACE;
            let terminated = match &sigterm {
                Some(sigterm) => sigterm.wait_until(wake),
                None => {
                    while let Some(left) = wake.checked_duration_since(std::time::Instant::now()) {
                        std::thread::sleep(left);
                    }
                    false
                }
            };
            let (during, pos) = match trace.at_deadline() {
                Some(call) => (format!("during {}", call.what), call.pos),
                None => (trace.lock().phase.to_string(), trace::Pos::default()),
            };
            let mut verdict = if terminated {
                probe::terminated_verdict(&reporter.source, &during, pos)
            } else {
                probe::deadline_verdict(&reporter.source, deadline.limit(), &during, pos)
            };
            verdict.elapsed = deadline.elapsed();
            if reporter.emit(&verdict, &trace, None) {
                std::process::exit(verdict.exit.code().into());
            }
        });
    if let (Err(_), Some(sigterm)) = (spawned, sigterm) {
        // Nobody waits for SIGTERM: let it end the process the default way.
        sigterm.unblock();
    }
}

/// `test`: the script once per case, against the case's stubs.
fn test(args: TestArgs) -> Exit {
    logging::init(&LogArgs {
        quiet: true,
        ..LogArgs::default()
    });
    if args.init {
        return match testing::starter(&args.script) {
            Ok(text) => {
                print!("{text}");
                Exit::Healthy
            }
            Err(message) => {
                eprintln!("error: {message}");
                Exit::ScriptFault
            }
        };
    }
    let source = probe::display_name(&args.script);
    let report = |results: &[testing::CaseResult], error: Option<&str>| {
        print!(
            "{}",
            report::test_report(args.format, &source, results, error)
        );
    };
    let script = match probe::load(&args.script) {
        Ok(script) => script,
        Err(verdict) => {
            match args.format {
                TestFormat::Text => println!("{}", report::verdict_line(&verdict)),
                _ => report(&[], Some(&verdict.reason)),
            }
            return verdict.exit;
        }
    };
    let path = args
        .cases
        .clone()
        .unwrap_or_else(|| testing::default_cases_path(&args.script));
    let cases = match testing::load_cases(&path) {
        Ok(cases) => cases,
        Err(message) => {
            match args.format {
                TestFormat::Text => {
                    eprintln!("error: {message}");
                    if !path.exists() {
                        if let Ok(start) = testing::starter(&args.script) {
                            eprint!("\na start for {} (the same as `rhai-probe test --init`):\n\n{start}", probe::display_name(&path));
                        }
                    }
                }
                _ => report(&[], Some(&message)),
            }
            return Exit::ScriptFault;
        }
    };
    let cli_vars = vars(&args.vars);
    let mut results = Vec::new();
    for case in cases {
        let mut vars = cli_vars.clone();
        vars.extend(testing::case_vars(&case));
        let store = testing::case_store(&case);
        let stubs = testing::Stubs::new(case);
        let trace = Trace::default();
        let deadline = Deadline::start(args.timeout.0);
        let verdict = probe::run(&script, vars, deadline, &trace, Some(stubs.clone()), store);
        let missing = stubs.missing.borrow().clone();
        let mut result = testing::judge_case(
            stubs.case(),
            &report::verdict_line(&verdict),
            verdict.exit,
            missing,
        );
        result.elapsed = deadline.elapsed();
        if args.format == TestFormat::Text {
            println!("{}", result.line);
        }
        results.push(result);
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if args.format == TestFormat::Text {
        println!("{} passed, {failed} failed", results.len() - failed);
    } else {
        report(&results, None);
    }
    if failed == 0 {
        Exit::Healthy
    } else {
        Exit::Unhealthy
    }
}

fn check(args: CheckArgs) -> Exit {
    logging::init(&LogArgs::default());
    let vars = vars(&args.vars);
    let mut failed = 0;
    let mut reports = Vec::new();
    let mut stateful = Vec::new();
    let mut needed = Vec::new();
    let mut untold: Vec<(String, String)> = Vec::new();
    let scripts = args
        .scripts
        .iter()
        .map(|p| (probe::display_name(p), probe::load(p)))
        .chain(
            args.eval
                .iter()
                .map(|e| (probe::EVAL.to_string(), Ok(probe::inline(e)))),
        );
    for (shown, loaded) in scripts {
        let checked = loaded
            .map_err(|v| Box::new((v, None)))
            .and_then(|script| probe::check_script(script, &vars));
        let (name, problems, text) = match checked {
            Ok((script, ast)) => {
                if let Some((function, pos)) = lint::state_uses(&ast).first() {
                    stateful.push(format!(
                        "note: {}:{}:{}: {function} keeps state across runs: run it with --state-dir DIR (RHAI_PROBE_STATE_DIR; docs/state.md)",
                        script.name, pos.line, pos.col
                    ));
                }
                if args.permissions {
                    let (found, unresolved) = lint::permissions(&ast, &vars);
                    needed.extend(found);
                    untold.extend(
                        unresolved.into_iter().map(|(f, pos)| {
                            (format!("{}:{}:{}", script.name, pos.line, pos.col), f)
                        }),
                    );
                }
                (script.name.clone(), lint::lint(&ast), Some(script.text))
            }
            Err(failure) => {
                let (verdict, script) = *failure;
                let name = shown;
                match (verdict.diagnostic, script) {
                    (Some(d), Some(s)) => (s.name, vec![*d], Some(s.text)),
                    _ => (
                        name,
                        vec![rhai_probe::diagnostic::Diagnostic::new(
                            verdict.reason,
                            trace::Pos::default(),
                        )],
                        None,
                    ),
                }
            }
        };
        if !problems.is_empty() {
            failed += 1;
        }
        if args.format == Format::Text {
            for d in &problems {
                match &text {
                    Some(text) => eprint!("{}", d.render(&name, text, report::stderr_color())),
                    None => eprintln!("error: {}", d.message),
                }
            }
        }
        reports.push((name, problems));
    }
    let total = args.scripts.len() + args.eval.len();
    if args.format == Format::Text {
        for note in &stateful {
            eprintln!("{note}");
        }
    }
    if args.permissions {
        needed.sort();
        needed.dedup();
        let flags = rhai_probe::permissions::flags(&needed);
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::json!({
                    "flags": flags.iter().map(|(flag, list)| (flag.to_string(), list.clone().into()))
                        .collect::<serde_json::Map<String, serde_json::Value>>(),
                    "unresolved": untold.iter().map(|(at, f)| serde_json::json!({"at": at, "function": f}))
                        .collect::<Vec<_>>(),
                })
            ),
            Format::Text => {
                for (flag, list) in &flags {
                    println!("{flag}={}", list.join(","));
                }
                if flags
                    .iter()
                    .any(|(f, l)| *f == "--allow-read" && l.iter().any(|e| e == "/"))
                {
                    eprintln!(
                        "note: --allow-read=/ allows every file, mounted Secrets and the service-account token included: point the call that reads / (a disk_usage(\"/\")?) at a narrower path, such as the volume it is about"
                    );
                }
                for (at, f) in &untold {
                    eprintln!(
                        "note: {at}: {f}: its target is not a literal (nor a --var): add what it reaches by hand"
                    );
                }
            }
        }
        return if failed == 0 {
            Exit::Healthy
        } else {
            Exit::ScriptFault
        };
    }
    if args.format == Format::Json {
        println!("{}", report::check_report(&reports));
    } else if failed == 0 {
        println!(
            "ok: {total} script{} compiled and passed the lint",
            if total == 1 { "" } else { "s" }
        );
    } else {
        println!(
            "failed: {failed} of {total} script{} did not compile or pass the lint",
            if total == 1 { "" } else { "s" }
        );
    }
    if failed == 0 {
        Exit::Healthy
    } else {
        Exit::ScriptFault
    }
}

fn vars(args: &VarArgs) -> rhai::Map {
    args.to_map()
}

/// A bump arena for start-up (src/alloc.rs) in front of TLSF (rlsf) instead of musl's malloc.
/// musl's allocator hands memory back to the kernel as soon as a group of blocks is free, so
/// building the engine and running one probe made 53 `mmap` and 19 `munmap` calls, each with its
/// page faults; TLSF takes memory in 64 KiB pieces and keeps it (a `true` probe 0.59 -> 0.47 ms,
/// the article's check 1.12 -> 0.95 ms, hyperfine medians). The arena takes the ~1,000 small
/// allocations of building the engine off TLSF's free lists and lock. `serve`, a process that
/// lives for days, switches to the system allocator (musl's malloc) once its command line is
/// parsed: under bursts of concurrent connections TLSF fragmented, and RSS crept up for
/// hundreds of bursts (scripts/soak.sh, docs/serve.md).
#[global_allocator]
static ALLOC: rhai_probe::alloc::Arena<{ rhai_probe::alloc::ARENA_BYTES }, rlsf::GlobalTlsf> =
    rhai_probe::alloc::Arena::new(rlsf::GlobalTlsf::new());
