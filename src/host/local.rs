//! A helper thread for calls that read the kernel or the filesystem ([`Time::Local`]) in
//! `serve`.
//!
//! `statvfs` on a hung NFS mount, an `open` of a cgroup file on a stuck FUSE mount, a read of
//! `/proc/PID/cmdline` while that process holds its memory lock: each can block with no timeout
//! to give it. `run` has a watchdog that ends the process at the deadline; `serve` lives on, so
//! there such a call runs on this helper and the probe's thread waits for it no longer than
//! the time left. A helper that misses the deadline is left blocked where it is (the kernel
//! call cannot be cancelled) and a new one takes the next call.
//!
//! [`Time::Local`]: super::decl::Time::Local

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
        Arc,
    },
    time::Duration,
};

/// Helpers left blocked that may still be alive, at most: past this a call fails at once
/// instead of leaving one more thread behind (a mount hung for a day, probed every 10 s, would
/// otherwise leave thousands).
pub const MAX_STUCK: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The helper of one probe's thread (not shared: the probe's thread owns its `Host`).
#[derive(Default)]
pub struct Helper {
    jobs: RefCell<Option<Sender<Job>>>,
    /// Helpers abandoned so far, for the log and tests.
    abandoned: RefCell<usize>,
    /// Helper threads alive: the current one and those still blocked.
    alive: Arc<AtomicUsize>,
}

impl Helper {
    /// Run `body` on the helper, waiting at most `budget`. `Err(None)` when it did not answer in
    /// time (or the helper could not be started): the call is abandoned; `Err(Some(reason))`
    /// when too many earlier ones are still blocked to start another.
    pub fn run<T: Send + 'static>(
        &self,
        budget: Duration,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Option<String>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(body());
        });
        let mut jobs = self.jobs.borrow_mut();
        if jobs.is_none() {
            if self.alive.load(Ordering::SeqCst) >= MAX_STUCK {
                return Err(Some(format!(
                    "{MAX_STUCK} earlier reads of /proc, a cgroup or a file are still blocked in the kernel (a hung mount?); not starting another"
                )));
            }
            *jobs = spawn(self.alive.clone());
        }
        jobs.as_ref().ok_or(None)?.send(job).map_err(|_| None)?;
        match rx.recv_timeout(budget) {
            Ok(value) => Ok(value),
            Err(RecvTimeoutError::Timeout) => {
                // Still blocked: leave it. Dropping the sender ends it once the kernel returns.
                *jobs = None;
                *self.abandoned.borrow_mut() += 1;
                log::warn!(
                    "a filesystem or /proc read did not return before the deadline; its thread \
                     is left behind (a hung mount?)"
                );
                Err(None)
            }
            Err(RecvTimeoutError::Disconnected) => {
                *jobs = None;
                Err(None)
            }
        }
    }

    pub fn abandoned(&self) -> usize {
        *self.abandoned.borrow()
    }
}

fn spawn(alive: Arc<AtomicUsize>) -> Option<Sender<Job>> {
    let (tx, rx): (Sender<Job>, Receiver<Job>) = mpsc::channel();
    alive.fetch_add(1, Ordering::SeqCst);
    let counted = alive.clone();
    let spawned = std::thread::Builder::new()
        .name("local calls".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
            // The sender is gone (abandoned, or the probe removed) and the last job returned.
            counted.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        alive.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_blocked_call_is_abandoned_at_the_budget_and_the_next_one_runs() {
        let helper = Helper::default();
        assert_eq!(helper.run(Duration::from_secs(5), || 7), Ok(7));
        let started = Instant::now();
        let (release, blocked) = mpsc::channel::<()>();
        let got = helper.run(Duration::from_millis(100), move || blocked.recv().is_ok());
        assert_eq!(got, Err(None));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(helper.abandoned(), 1);
        // A new helper answers while the old one is still blocked.
        assert_eq!(helper.run(Duration::from_secs(5), || 8), Ok(8));
        drop(release);
    }

    #[test]
    fn at_most_a_few_blocked_helpers_are_left_behind() {
        let helper = Helper::default();
        let (release, blocked) = mpsc::channel::<()>();
        let blocked = Arc::new(std::sync::Mutex::new(blocked));
        for _ in 0..MAX_STUCK {
            let b = blocked.clone();
            let got = helper.run(Duration::from_millis(50), move || {
                b.lock().map(|r| r.recv().is_ok()).ok()
            });
            assert_eq!(got, Err(None));
        }
        // MAX_STUCK threads are blocked (one holds the lock and waits, the others wait for it).
        let started = Instant::now();
        let refused = helper.run(Duration::from_secs(5), || 9);
        assert!(
            matches!(refused, Err(Some(ref m)) if m.contains("still blocked")),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
        // Once they return, calls run again.
        drop(release);
        let again = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            helper.run(Duration::from_secs(5), || 10).ok()
        });
        assert_eq!(again, Some(10));
    }
}
