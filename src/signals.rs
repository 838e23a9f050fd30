//! SIGTERM during a run.
//!
//! The default action would end the process silently, and the pod's event would show an exit code
//! and nothing else. Instead SIGTERM is blocked before any other thread starts (threads inherit the
//! mask), and the watchdog waits for it with `sigtimedwait` while it waits for the deadline: the
//! run then ends at once with a verdict that names the call in flight, and exit code 143.
//! Nothing runs in signal-handler context.

use std::{mem::MaybeUninit, time::Instant};

/// SIGTERM, blocked in the calling thread and every thread it starts afterwards.
#[derive(Clone, Copy)]
pub struct Blocked {
    set: libc::sigset_t,
}

impl Blocked {
    /// Block SIGTERM in this thread; `None` if the kernel refused.
    pub fn sigterm() -> Option<Blocked> {
        // SAFETY: sigemptyset/sigaddset initialise the set we own; pthread_sigmask only reads it.
        unsafe {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
            let set = set.assume_init();
            (libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0)
                .then_some(Blocked { set })
        }
    }

    /// Undo the block (when no thread could be started to wait for the signal).
    pub fn unblock(&self) {
        // SAFETY: the set was initialised in `sigterm`.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.set, std::ptr::null_mut()) };
    }

    /// Wait for SIGTERM until `wake`: true when it arrived, false when `wake` passed first.
    pub fn wait_until(&self, wake: Instant) -> bool {
        loop {
            let now = Instant::now();
            if now >= wake {
                return false;
            }
            let left = wake - now;
            let timeout = libc::timespec {
                // `as _`: time_t is 32 or 64 bits depending on the libc (musl is changing it).
                tv_sec: left.as_secs().min(i32::MAX as u64) as _,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // SAFETY: the set was initialised in `sigterm`; a null info pointer is allowed.
            let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
            if signal == libc::SIGTERM {
                return true;
            }
            // -1 with EAGAIN (timed out) or EINTR (another signal): look at the clock again.
        }
    }
}
