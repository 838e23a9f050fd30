//! `rhai-probe wait`: retry targets (scripts, `-e` expressions, URL targets) until they are
//! healthy or the overall budget ends, then optionally `exec` a command: what wait-for-it,
//! dockerize and wait4x do in init containers and entrypoints, with the probes' own checks.
//!
//! Each target is retried on its own thread (all at once, so a hundred of them take as long as
//! the slowest), each attempt a probe run (`probe::run`: the one engine factory, the deadline,
//! the verdict) whose deadline is `--timeout` cut to what is left of `--for`. Between attempts
//! a target waits `--interval`, doubled after each failure up to `--max-interval`, less or more
//! by up to a tenth (jitter), so pods started together do not retry in step. A target that was
//! healthy is not tried again. A script fault ends the wait at once: retrying a script that
//! cannot compile helps nobody. One thread waits for the end of the budget and for SIGTERM,
//! whichever comes first, as `run`'s watchdog does.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    cli::WaitArgs,
    deadline::{human, Deadline},
    exit_code::Exit,
    logging, probe,
    probe::{Script, Verdict},
    redact, signals,
    trace::Trace,
};

/// After the budget, how long the watchdog gives the targets to report before it ends the wait.
const GRACE: Duration = Duration::from_millis(100);

/// Set by whichever of the main thread and the watchdog prints the final verdict first.
static ENDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Claim the final verdict; `false` if the other thread has it.
fn claim_end() -> bool {
    !ENDED.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// What the main thread knows of one target.
#[derive(Clone)]
struct State {
    name: String,
    attempts: u32,
    /// The last verdict's label and reason, `None` before the first attempt ends.
    last: Option<(Exit, String)>,
}

struct Event {
    target: usize,
    attempt: u32,
    verdict: Verdict,
}

pub fn run(args: WaitArgs) -> Exit {
    logging::init(&args.log);
    let started = Instant::now();
    let budget = args.budget.0;
    let vars = args.vars.to_map();

    // Every target is read and compiled first: a typo is exit 3 before any attempt.
    let mut scripts: Vec<Script> = Vec::new();
    let sources = args
        .targets
        .iter()
        .map(|p| probe::load(p))
        .chain(args.eval.iter().map(|e| Ok(probe::inline(e))));
    for loaded in sources {
        let checked = loaded
            .map_err(|v| Box::new((v, None)))
            .and_then(|s| probe::check_script(s, &vars));
        match checked {
            Ok((script, _)) => scripts.push(script),
            Err(failure) => {
                let (verdict, script) = *failure;
                if let (Some(d), Some(s)) = (&verdict.diagnostic, &script) {
                    eprint!(
                        "{}",
                        redact::scrub(&d.render(&s.name, &s.text, crate::report::stderr_color()))
                    );
                }
                println!("{}", crate::report::verdict_line(&verdict));
                return Exit::ScriptFault;
            }
        }
    }
    if scripts.is_empty() {
        println!(
            "usage: wait needs a target: a script, -e EXPR or a URL (see rhai-probe wait --help)"
        );
        return Exit::Usage;
    }

    let states: Arc<Mutex<Vec<State>>> = Arc::new(Mutex::new(
        scripts
            .iter()
            .map(|s| State {
                name: s.name.clone(),
                attempts: 0,
                last: None,
            })
            .collect(),
    ));
    // Before any thread starts, so that every thread inherits the mask.
    let sigterm = signals::Blocked::sigterm();
    spawn_watchdog(sigterm, started, budget, states.clone());

    let (tx, rx) = mpsc::channel();
    for (target, script) in scripts.into_iter().enumerate() {
        let tx = tx.clone();
        // Rhai values are not Send: each thread makes its own from the command line's.
        let var_args = args.vars.clone();
        let (timeout, interval, max_interval) = (
            args.timeout.0,
            args.interval.0,
            args.max_interval.0.max(args.interval.0),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("wait {target}"))
            .spawn(move || {
                let vars = var_args.to_map();
                // A target's state lives as long as the wait: its attempts share it.
                let kept = std::rc::Rc::new(std::cell::RefCell::new(None));
                let mut pause = interval;
                for attempt in 1.. {
                    let left = budget.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return;
                    }
                    let deadline = Deadline::start(timeout.min(left));
                    let verdict = probe::run(
                        &script,
                        vars.clone(),
                        deadline,
                        &Trace::default(),
                        None,
                        crate::state::Store::Memory(kept.clone()),
                    );
                    let done = matches!(verdict.exit, Exit::Healthy | Exit::ScriptFault);
                    if tx
                        .send(Event {
                            target,
                            attempt,
                            verdict,
                        })
                        .is_err()
                        || done
                    {
                        return;
                    }
                    let left = budget.saturating_sub(started.elapsed());
                    std::thread::sleep(jittered(pause, target).min(left));
                    pause = (pause * 2).min(max_interval);
                }
            });
        if let Err(e) = spawned {
            println!("error: cannot start a thread for a target: {e}");
            return Exit::Usage;
        }
    }
    drop(tx);

    let total = states.lock().unwrap_or_else(|e| e.into_inner()).len();
    let mut healthy: Vec<usize> = Vec::new();
    loop {
        let left = budget.saturating_sub(started.elapsed());
        let event = match rx.recv_timeout(left + GRACE) {
            Ok(event) => event,
            // The budget ended (or every thread is gone): the watchdog reports it.
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                return Exit::TimedOut;
            }
        };
        let name = {
            let mut states = states.lock().unwrap_or_else(|e| e.into_inner());
            let state = &mut states[event.target];
            state.attempts = event.attempt;
            let now = (event.verdict.exit, event.verdict.reason.clone());
            let changed = state.last.as_ref() != Some(&now);
            if changed {
                eprintln!(
                    "wait: {} after {}, attempt {}: {}",
                    state.name,
                    human(started.elapsed()),
                    event.attempt,
                    redact::scrub(&format!("{}: {}", now.0.label(), now.1.replace('\n', " ")))
                );
            }
            state.last = Some(now);
            state.name.clone()
        };
        let finishing = event.verdict.exit == Exit::ScriptFault
            || (event.verdict.exit == Exit::Healthy && (args.any || healthy.len() + 1 == total));
        if finishing && !claim_end() {
            // The watchdog is reporting the end of the budget and will exit with it.
            std::thread::sleep(Duration::from_secs(1));
            return Exit::TimedOut;
        }
        match event.verdict.exit {
            Exit::ScriptFault => {
                println!("{}", crate::report::verdict_line(&event.verdict));
                return Exit::ScriptFault;
            }
            Exit::Healthy => {
                healthy.push(event.target);
                if args.any || healthy.len() == total {
                    let states = states.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let ready: Vec<String> = healthy
                        .iter()
                        .map(|&i| {
                            let s = &states[i];
                            format!(
                                "{} ({} attempt{})",
                                s.name,
                                s.attempts,
                                if s.attempts == 1 { "" } else { "s" }
                            )
                        })
                        .collect();
                    let line = if args.any {
                        format!("healthy: {name} is ready in {}", human(started.elapsed()))
                    } else {
                        format!(
                            "healthy: {} ready in {}: {}",
                            if total == 1 {
                                "1 target".to_string()
                            } else {
                                format!("all {total} targets")
                            },
                            human(started.elapsed()),
                            ready.join(", ")
                        )
                    };
                    println!("{}", redact::scrub(&line));
                    return exec(&args.command, sigterm);
                }
            }
            _ => {}
        }
    }
}

/// `pause`, less or more by up to a tenth, different for each target and each time.
fn jittered(pause: Duration, target: usize) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let spread = (nanos ^ (target as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 201;
    // 0..=200 → 0.9..=1.1 of the pause.
    pause.mul_f64(0.9 + spread as f64 / 1000.0)
}

/// The reasons of every target not yet healthy: `tcp://db:5432 (TCP db:5432 -> connection
/// refused, 12 attempts)`.
fn still_unhealthy(states: &[State]) -> String {
    let waiting: Vec<String> = states
        .iter()
        .filter(|s| !matches!(s.last, Some((Exit::Healthy, _))))
        .map(|s| match &s.last {
            Some((_, reason)) => format!(
                "{} ({}, {} attempt{})",
                s.name,
                reason.replace('\n', " "),
                s.attempts,
                if s.attempts == 1 { "" } else { "s" }
            ),
            None => format!("{} (no attempt finished)", s.name),
        })
        .collect();
    waiting.join("; ")
}

/// The end of the budget, or SIGTERM: the verdict naming every target still unhealthy, and the
/// exit code (124, or 143).
fn spawn_watchdog(
    sigterm: Option<signals::Blocked>,
    started: Instant,
    budget: Duration,
    states: Arc<Mutex<Vec<State>>>,
) {
    let spawned = std::thread::Builder::new()
        .name("wait watchdog".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let wake = started + budget + GRACE;
            let terminated = match &sigterm {
                Some(sigterm) => sigterm.wait_until(wake),
                None => {
                    while let Some(left) = wake.checked_duration_since(Instant::now()) {
                        std::thread::sleep(left);
                    }
                    false
                }
            };
            if !claim_end() {
                return;
            }
            let states = states.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (exit, line) = if terminated {
                (
                    Exit::Terminated,
                    format!(
                        "terminated: SIGTERM after {} of the wait; still unhealthy: {}",
                        human(started.elapsed()),
                        still_unhealthy(&states)
                    ),
                )
            } else {
                (
                    Exit::TimedOut,
                    format!(
                        "timed out: {} passed; still unhealthy: {}",
                        human(budget),
                        still_unhealthy(&states)
                    ),
                )
            };
            println!("{}", redact::scrub(&line));
            std::process::exit(exit.code().into());
        });
    if let (Err(_), Some(sigterm)) = (spawned, sigterm) {
        sigterm.unblock();
    }
}

/// `-- COMMAND ARGS…`: replace this process with it (the command keeps the PID, and signals
/// reach it directly); without one, exit 0.
fn exec(command: &[std::ffi::OsString], sigterm: Option<signals::Blocked>) -> Exit {
    let Some((program, rest)) = command.split_first() else {
        return Exit::Healthy;
    };
    // The blocked SIGTERM would pass to the command through exec: give it back its default.
    if let Some(sigterm) = sigterm {
        sigterm.unblock();
    }
    let error = std::process::Command::new(program).args(rest).exec();
    println!(
        "error: cannot run {}: {}",
        redact::path(&PathBuf::from(program)),
        crate::host::io_reason(&error)
    );
    Exit::Usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth() {
        for target in 0..50 {
            let d = jittered(Duration::from_secs(1), target);
            assert!(
                d >= Duration::from_millis(900) && d <= Duration::from_millis(1100),
                "{d:?}"
            );
        }
    }
}
