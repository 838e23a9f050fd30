//! `rhai-probe serve`: one long-lived process that answers kubelet's httpGet probes from probe
//! scripts and exports what it sees on `/metrics`.
//!
//! Reached only from `Command::Serve`: nothing here runs (or is even touched) in `run`, whose
//! start-up cost is paid every probe period in every pod.
//!
//! Threads: the main thread runs a single-threaded tokio runtime with hyper's HTTP/1 server (the
//! requests only wait, they never compute); each probe has its own thread owning its engine
//! (`worker`); one thread polls the script files (`reload`); one waits for SIGTERM.

mod http;
pub mod metrics;
pub mod reload;
mod status;
pub mod worker;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::ExitCode,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};

use crate::{
    cli::{
        serve::{ProbeSpec, ServeArgs},
        Var,
    },
    deadline::human,
    host::io_reason,
    logging::{self, SERVE},
    probe, signals,
};

use metrics::Metrics;
use worker::Probe;

/// A client must send its request headers within this (a stalled client holds a connection, not
/// a thread, but it should not hold it forever).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the requests, the reload watcher and the probes share.
pub struct App {
    probes: RwLock<BTreeMap<String, Arc<Probe>>>,
    /// The probes that came from `--dir` (the only ones a rescan may remove).
    from_dir: RwLock<BTreeSet<String>>,
    pub metrics: Arc<Metrics>,
    pub cache: Duration,
    pub timeout: Duration,
    vars: Vec<Var>,
}

impl App {
    pub fn probe(&self, name: &str) -> Option<Arc<Probe>> {
        read(&self.probes).get(name).cloned()
    }

    pub fn probes(&self) -> Vec<Arc<Probe>> {
        read(&self.probes).values().cloned().collect()
    }

    pub fn names(&self) -> Vec<String> {
        read(&self.probes).keys().cloned().collect()
    }

    pub fn has(&self, name: &str) -> bool {
        read(&self.probes).contains_key(name)
    }

    pub fn dir_probes(&self) -> Vec<String> {
        read(&self.from_dir).iter().cloned().collect()
    }

    /// Read and start a probe. A script that does not compile still makes a probe (it answers
    /// 503 with the script fault until its file is fixed); one that cannot be read is an error.
    pub fn add(&self, spec: ProbeSpec, from_dir: bool) -> Result<(), String> {
        let script = probe::load(&spec.path).map_err(|v| v.reason)?;
        let vars = crate::cli::VarArgs {
            vars: self.vars.clone(),
        };
        let name = spec.name.clone();
        let probe = Probe::start(
            spec.name,
            spec.path,
            Ok(script),
            self.timeout,
            vars,
            self.metrics.clone(),
        )
        .map_err(|e| format!("cannot start its thread: {}", io_reason(&e)))?;
        write(&self.probes).insert(name.clone(), probe);
        if from_dir {
            write(&self.from_dir).insert(name);
        }
        Ok(())
    }

    /// Stop serving a probe and end its thread (after the evaluation in flight, if any).
    pub fn remove(&self, name: &str) {
        if let Some(probe) = write(&self.probes).remove(name) {
            probe.send(worker::Job::Stop);
        }
        write(&self.from_dir).remove(name);
        self.metrics.remove(name);
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

pub fn run(args: ServeArgs) -> ExitCode {
    logging::init_serve(&args.log);
    // Before any thread starts, so that every thread inherits the mask (see `signals`).
    let sigterm = signals::Blocked::sigterm();
    match start(args, sigterm) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: ServeArgs, sigterm: Option<signals::Blocked>) -> Result<(), String> {
    // clap requires --probe or --dir (a bad command line, exit 64).
    let mut specs: Vec<(ProbeSpec, bool)> =
        args.probes.iter().map(|p| (p.clone(), false)).collect();
    if let Some(dir) = &args.dir {
        let found = reload::scan(dir)
            .map_err(|e| format!("--dir {}: {}", crate::redact::path(dir), io_reason(&e)))?;
        if found.is_empty() && args.probes.is_empty() {
            return Err(format!(
                "--dir {}: no probe scripts in it (NAME.rhai files)",
                crate::redact::path(dir)
            ));
        }
        for (name, path) in found {
            specs.push((ProbeSpec { name, path }, true));
        }
    }
    let mut seen = BTreeSet::new();
    for (spec, _) in &specs {
        if !seen.insert(spec.name.as_str()) {
            return Err(format!(
                "two probes are named {:?}; name one of them with --probe NAME=SCRIPT",
                spec.name
            ));
        }
    }

    let listener = std::net::TcpListener::bind(args.listen.0)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {}: {}", args.listen.0, io_reason(&e)))?;
    let app = Arc::new(App {
        probes: RwLock::default(),
        from_dir: RwLock::default(),
        metrics: Arc::new(Metrics::new()),
        cache: args.cache.0,
        timeout: args.timeout.0,
        vars: args.vars.vars.clone(),
    });
    let mut stamps = BTreeMap::new();
    for (spec, from_dir) in specs {
        // The stamp first: a change while the file is read shows up at the next poll.
        stamps.insert(spec.name.clone(), reload::stamp(&spec.path));
        let name = spec.name.clone();
        app.add(spec, from_dir)
            .map_err(|e| format!("probe {name}: {e}"))?;
    }

    let watcher = app.clone();
    let dir = args.dir.clone();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || reload::watch(watcher, dir, stamps))
        .map_err(|e| format!("cannot start the reload thread: {}", io_reason(&e)))?;

    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {}", args.listen.0, io_reason(&e)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {}", io_reason(&e)))?;
    let stop = Arc::new(tokio::sync::Notify::new());
    wait_for_sigterm(sigterm, stop.clone());

    log::info!(
        target: SERVE,
        "listening on http://{bound} with {} probe{} ({}); cache {}, deadline {}",
        app.names().len(),
        if app.names().len() == 1 { "" } else { "s" },
        app.names().join(", "),
        human(app.cache),
        human(app.timeout),
    );
    runtime.block_on(serve(listener, app, stop))
}

/// The SIGTERM thread: when the signal comes, wake the server to shut down.
fn wait_for_sigterm(sigterm: Option<signals::Blocked>, stop: Arc<tokio::sync::Notify>) {
    let Some(sigterm) = sigterm else { return };
    let spawned = std::thread::Builder::new()
        .name("sigterm".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            while !sigterm.wait_until(Instant::now() + Duration::from_secs(3600)) {}
            stop.notify_one();
        });
    if spawned.is_err() {
        sigterm.unblock();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    app: Arc<App>,
    stop: Arc<tokio::sync::Notify>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot listen: {}", io_reason(&e)))?;
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait instead of spinning.
                        log::warn!(target: SERVE, "cannot accept a connection: {}", io_reason(&e));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let service = hyper::service::service_fn(move |req| http::handle(app.clone(), req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = stop.notified() => break,
        }
    }
    drop(listener);
    // A request waits at most the deadline plus the grace for its evaluation.
    let bound = app.timeout + worker::GRACE + Duration::from_secs(1);
    log::info!(
        target: SERVE,
        "SIGTERM: not accepting connections; finishing the requests in flight (at most {})",
        human(bound)
    );
    match tokio::time::timeout(bound, graceful.shutdown()).await {
        Ok(()) => log::info!(target: SERVE, "stopped"),
        Err(_) => log::warn!(
            target: SERVE,
            "stopped with requests still in flight after {}",
            human(bound)
        ),
    }
    Ok(())
}
