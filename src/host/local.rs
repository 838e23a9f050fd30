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
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    time::Duration,
};

type Job = Box<dyn FnOnce() + Send>;

/// The helper of one probe's thread (not shared: the probe's thread owns its `Host`).
#[derive(Default)]
pub struct Helper {
    jobs: RefCell<Option<Sender<Job>>>,
    /// Helpers abandoned so far, for the log and tests.
    abandoned: RefCell<usize>,
}

impl Helper {
    /// Run `body` on the helper, waiting at most `budget`. `None` when it did not answer in
    /// time (or the helper could not be started): the call is abandoned.
    pub fn run<T: Send + 'static>(
        &self,
        budget: Duration,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(body());
        });
        let mut jobs = self.jobs.borrow_mut();
        if jobs.is_none() {
            *jobs = spawn();
        }
        jobs.as_ref()?.send(job).ok()?;
        match rx.recv_timeout(budget) {
            Ok(value) => Some(value),
            Err(RecvTimeoutError::Timeout) => {
                // Still blocked: leave it. Dropping the sender ends it once the kernel returns.
                *jobs = None;
                *self.abandoned.borrow_mut() += 1;
                log::warn!(
                    "a filesystem or /proc read did not return before the deadline; its thread \
                     is left behind (a hung mount?)"
                );
                None
            }
            Err(RecvTimeoutError::Disconnected) => {
                *jobs = None;
                None
            }
        }
    }

    pub fn abandoned(&self) -> usize {
        *self.abandoned.borrow()
    }
}

fn spawn() -> Option<Sender<Job>> {
    let (tx, rx): (Sender<Job>, Receiver<Job>) = mpsc::channel();
    std::thread::Builder::new()
        .name("local calls".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .ok()?;
    Some(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_blocked_call_is_abandoned_at_the_budget_and_the_next_one_runs() {
        let helper = Helper::default();
        assert_eq!(helper.run(Duration::from_secs(5), || 7), Some(7));
        let started = Instant::now();
        let (release, blocked) = mpsc::channel::<()>();
        let got = helper.run(Duration::from_millis(100), move || blocked.recv().is_ok());
        assert_eq!(got, None);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(helper.abandoned(), 1);
        // A new helper answers while the old one is still blocked.
        assert_eq!(helper.run(Duration::from_secs(5), || 8), Some(8));
        drop(release);
    }
}
