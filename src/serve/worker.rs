//! One probe in `serve`: a thread that owns the probe's engine and compiled script, and the
//! shared state through which requests get its verdicts.
//!
//! Rhai's engine is `Rc`-based (not `Send`), so it lives on its own thread and requests reach it
//! through a channel. That also gives the two rules the server needs for free: one evaluation
//! in flight per probe (the thread does one thing at a time; a request that finds an evaluation
//! running waits for that one instead of queueing another), and a warm engine, AST and HTTP agent
//! from one evaluation to the next.

use std::{
    collections::VecDeque,
    path::PathBuf,
    rc::Rc,
    sync::{mpsc, Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use rhai::{Engine, Scope, AST};
use tokio::sync::watch;

use crate::{
    deadline::Deadline,
    engine,
    exit_code::Exit,
    host::Host,
    logging::SERVE,
    probe::{self, Script, Verdict},
    report::{self, Reporter},
    trace::Trace,
};

use super::metrics::Metrics;

/// A finished evaluation, as requests see it.
pub struct Answer {
    pub verdict: Verdict,
    /// The evaluation's calls and checks, for the JSON body.
    pub trace: Trace,
    /// The verdict line, secrets scrubbed.
    pub line: String,
    /// When it ended.
    pub at: Instant,
    /// When it ended, by the wall clock (for the status page's times).
    pub wall: SystemTime,
}

impl Answer {
    pub fn healthy(&self) -> bool {
        self.verdict.exit == Exit::Healthy
    }
}

/// What the probe's thread is asked to do.
pub enum Job {
    Evaluate,
    /// The probe was removed: end the thread.
    Stop,
    /// The script's file changed: its new text, or why it could not be read.
    Reload(Result<Script, Verdict>),
}

/// The latest finished evaluation, as the channel carries it.
#[derive(Clone, Default)]
struct Finished {
    completed: u64,
    answer: Option<Arc<Answer>>,
}

#[derive(Default)]
struct State {
    last: Option<Arc<Answer>>,
    /// Evaluations finished so far; a request waits for the one numbered `completed + 1`.
    completed: u64,
    /// When the evaluation in flight was asked for; `None` while none is.
    in_flight: Option<Instant>,
    /// The last [`RECENT`] verdicts, oldest first.
    recent: VecDeque<Recent>,
    /// Why the script's file, changed, is not what runs (it does not compile or cannot be read).
    reload_problem: Option<String>,
}

/// Verdicts the status page shows per probe.
pub const RECENT: usize = 10;

/// One past verdict, as the status page lists it.
#[derive(Clone)]
pub struct Recent {
    pub exit: Exit,
    /// The verdict line, secrets scrubbed.
    pub line: String,
    pub at: Instant,
    pub wall: SystemTime,
}

/// What the status page shows of a probe, read at once.
pub struct Snapshot {
    pub last: Option<Arc<Answer>>,
    pub recent: Vec<Recent>,
    /// Since when an evaluation is in flight, if one is.
    pub evaluating: Option<Instant>,
    pub reload_problem: Option<String>,
    pub evaluations: u64,
}

/// A probe as the server and the reload watcher share it.
pub struct Probe {
    pub name: String,
    pub path: PathBuf,
    pub reporter: Reporter,
    state: Mutex<State>,
    /// Each finished evaluation, numbered: what requests waiting for one receive.
    done: watch::Sender<Finished>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// The live trace of the evaluation in flight: what a request names when it gives up.
    trace: Trace,
    timeout: Duration,
}

/// How a request's wait for an evaluation ended.
pub enum Waited {
    Done(Arc<Answer>),
    /// The evaluation outlived its deadline (a call that ignores its timeout): the verdict
    /// to answer with, naming the call in flight.
    Overran(Verdict),
    /// The probe's thread is gone (the probe was removed).
    Gone,
}

/// After the deadline, how long a request waits for an overrunning evaluation (as `run`'s
/// watchdog).
pub const GRACE: Duration = Duration::from_millis(100);

impl Probe {
    /// Start the probe's thread with `script` (or the reason it could not be read).
    pub fn start(
        name: String,
        path: PathBuf,
        script: Result<Script, Verdict>,
        timeout: Duration,
        vars: crate::cli::VarArgs,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Probe>> {
        let (jobs, inbox) = mpsc::channel();
        let source = probe::display_name(&path);
        let probe = Arc::new(Probe {
            reporter: Reporter {
                format: crate::cli::Format::Json,
                explain: false,
                source: source.clone(),
                deadline_ms: timeout.as_secs_f64() * 1e3,
            },
            name,
            path,
            state: Mutex::new(State::default()),
            done: watch::Sender::new(Finished::default()),
            jobs: Mutex::new(jobs),
            trace: Trace::default(),
            timeout,
        });
        let shared = probe.clone();
        std::thread::Builder::new()
            .name(format!("probe {}", probe.name))
            .spawn(move || {
                let mut worker = Worker::new(&shared, source, script, vars.to_map(), metrics);
                while let Ok(job) = inbox.recv() {
                    match job {
                        Job::Evaluate => worker.evaluate(&shared),
                        Job::Reload(script) => worker.reload(&shared, script),
                        Job::Stop => break,
                    }
                }
            })?;
        Ok(probe)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.send(job).is_ok()
    }

    /// The answer for a request: a result younger than `cache`, else the evaluation in flight or
    /// a new one. Never waits past the deadline (plus [`GRACE`]).
    pub async fn answer(&self, cache: Duration) -> Waited {
        let mut done = self.done.subscribe();
        let wanted = {
            let mut state = self.state();
            if let Some(last) = state.last.as_ref().filter(|a| fresh(a.at, cache)) {
                return Waited::Done(last.clone());
            }
            if state.in_flight.is_none() {
                if !self.send(Job::Evaluate) {
                    return Waited::Gone;
                }
                state.in_flight = Some(Instant::now());
            }
            state.completed + 1
        };
        let wait = async {
            // Clone out of the borrow at once: it holds the channel's lock.
            done.wait_for(|finished| finished.completed >= wanted)
                .await
                .map(|finished| finished.answer.clone())
        };
        let waited = tokio::time::timeout(self.timeout + GRACE, wait).await;
        match waited {
            Ok(Ok(Some(answer))) => Waited::Done(answer),
            Ok(Ok(None) | Err(_)) => Waited::Gone,
            Err(_) => {
                let (during, pos) = match self.trace.at_deadline() {
                    Some(call) => (format!("during {}", call.what), call.pos),
                    None => (self.trace.lock().phase.to_string(), Default::default()),
                };
                let mut verdict =
                    probe::deadline_verdict(&self.reporter.source, self.timeout, &during, pos);
                verdict.elapsed = self.timeout + GRACE;
                Waited::Overran(verdict)
            }
        }
    }

    /// The probe as the status page shows it. Reads only: a look at the page never starts an
    /// evaluation.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            last: state.last.clone(),
            recent: state.recent.iter().cloned().collect(),
            evaluating: state.in_flight,
            reload_problem: state.reload_problem.clone(),
            evaluations: state.completed,
        }
    }

    /// Drop the cached answer: the script changed, so the next request evaluates the new one.
    fn invalidate(&self) {
        self.state().last = None;
    }

    fn set_reload_problem(&self, problem: Option<String>) {
        self.state().reload_problem = problem;
    }

    fn publish(&self, answer: Answer) {
        let answer = Arc::new(answer);
        let completed = {
            let mut state = self.state();
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back(Recent {
                exit: answer.verdict.exit,
                line: answer.line.clone(),
                at: answer.at,
                wall: answer.wall,
            });
            state.last = Some(answer.clone());
            state.completed += 1;
            state.in_flight = None;
            state.completed
        };
        self.done.send_replace(Finished {
            completed,
            answer: Some(answer),
        });
    }
}

/// Whether a result that ended at `at` may still be served: younger than `cache`. This is the
/// only way an answer is reused, so `--cache` is also the oldest result ever served.
pub fn fresh(at: Instant, cache: Duration) -> bool {
    at.elapsed() < cache
}

/// The probe's thread: its engine, script and compiled AST.
struct Worker {
    host: Rc<Host>,
    engine: Engine,
    scope: Scope<'static>,
    /// The last script that compiled, or why none has.
    compiled: Result<(Script, AST), Verdict>,
    metrics: Arc<Metrics>,
    last_exit: Option<Exit>,
    /// The probe's state between its evaluations (check grace, rate, remember, history).
    kept: Rc<std::cell::RefCell<Option<crate::state::State>>>,
}

impl Worker {
    fn new(
        probe: &Probe,
        source: String,
        script: Result<Script, Verdict>,
        vars: rhai::Map,
        metrics: Arc<Metrics>,
    ) -> Worker {
        let mut host = Host::new(
            Deadline::start(probe.timeout),
            probe.trace.clone(),
            source,
            vars,
        );
        // No watchdog here: a read of /proc, a cgroup or a file that blocks (a hung mount) runs
        // where the deadline can abandon it.
        if let Some(host) = Rc::get_mut(&mut host) {
            host.local = Some(crate::host::local::Helper::default());
        }
        let engine = engine::build(&host);
        let scope = probe::scope_of(&host.vars);
        let mut worker = Worker {
            host,
            engine,
            scope,
            compiled: Err(Verdict::new(Exit::ScriptFault, "not loaded yet")),
            metrics,
            last_exit: None,
            kept: Rc::default(),
        };
        worker.compiled = worker.compile(probe, script);
        worker.metrics.loaded(&probe.name, worker.compiled.is_ok());
        worker
    }

    /// Compile `script`; when it cannot be used, log why (with the caret) and return the verdict.
    fn compile(
        &self,
        probe: &Probe,
        script: Result<Script, Verdict>,
    ) -> Result<(Script, AST), Verdict> {
        let script = script.inspect_err(|verdict| log_script_error(probe, verdict, None))?;
        match probe::compile(&self.engine, &self.scope, &script) {
            Ok(ast) => Ok((script, ast)),
            Err(verdict) => {
                log_script_error(probe, &verdict, Some(&script));
                Err(verdict)
            }
        }
    }

    fn evaluate(&mut self, probe: &Probe) {
        let deadline = Deadline::start(probe.timeout);
        self.host.restart(deadline);
        let verdict = match &self.compiled {
            Ok((script, ast)) => {
                self.host.trace.set_phase(engine::STOPPED_RUNNING);
                let mut scope = self.scope.clone();
                let store = crate::state::Store::Memory(self.kept.clone());
                probe::start_state(&self.host, store, script, deadline);
                let mut verdict = probe::evaluate(
                    &self.engine,
                    ast,
                    &mut scope,
                    &script.name,
                    &self.host.trace,
                    deadline,
                );
                probe::keep_state(&self.host, &mut verdict, &self.host.trace);
                verdict
            }
            Err(verdict) => {
                let mut verdict = verdict.clone();
                verdict.elapsed = deadline.elapsed();
                verdict
            }
        };
        let trace = self.host.trace.take();
        let wall = SystemTime::now();
        let unix = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics.evaluated(&probe.name, &verdict, &trace, unix);
        let line = report::verdict_line(&verdict);
        log::debug!(target: SERVE, "probe {}: {line}", probe.name);
        if self.last_exit != Some(verdict.exit) {
            if verdict.exit == Exit::Healthy {
                log::info!(target: SERVE, "probe {}: {line}", probe.name);
            } else {
                log::warn!(target: SERVE, "probe {}: {line}", probe.name);
            }
            self.last_exit = Some(verdict.exit);
        }
        probe.publish(Answer {
            verdict,
            trace: Trace::of(trace),
            line,
            at: Instant::now(),
            wall,
        });
    }

    fn reload(&mut self, probe: &Probe, script: Result<Script, Verdict>) {
        match self.compile(probe, script) {
            Ok(compiled) => {
                log::info!(target: SERVE, "probe {}: reloaded {}", probe.name, compiled.0.name);
                self.compiled = Ok(compiled);
                self.metrics.reloaded(&probe.name, true);
                probe.set_reload_problem(None);
                probe.invalidate();
            }
            Err(verdict) => {
                if self.compiled.is_ok() {
                    log::warn!(
                        target: SERVE,
                        "probe {}: still running the last version that compiled",
                        probe.name
                    );
                    probe.set_reload_problem(Some(format!(
                        "the changed file is not used: {}; still running the last version that compiled",
                        crate::redact::scrub(&verdict.reason)
                    )));
                } else {
                    self.compiled = Err(verdict);
                    probe.invalidate();
                }
                self.metrics.reloaded(&probe.name, false);
            }
        }
    }
}

/// A script that cannot be used: the one-line reason, then the diagnostic with its caret.
fn log_script_error(probe: &Probe, verdict: &Verdict, script: Option<&Script>) {
    let mut message = format!("probe {}: {}", probe.name, verdict.reason);
    if let (Some(d), Some(script)) = (&verdict.diagnostic, script) {
        message.push('\n');
        message.push_str(d.render(&script.name, &script.text, false).trim_end());
    }
    log::error!(target: SERVE, "{message}");
}
