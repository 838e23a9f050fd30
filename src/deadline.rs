//! The probe's time budget.
//!
//! One `Deadline` is created before the script is read and shared (it is `Copy`) by everything that
//! can block: the `on_progress` hook stops script CPU work, every host call clamps its own I/O
//! timeout to `remaining()`, and the watchdog ends the process if all of that fails (a stuck DNS
//! lookup in libc cannot be interrupted any other way). kubelet never kills a timed-out exec probe's
//! children (kubernetes#110070), so finishing on time with a reason is ours to guarantee.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    start: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn start(limit: Duration) -> Self {
        Deadline {
            start: Instant::now(),
            limit,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Time left; zero once the deadline has passed.
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.start.elapsed())
    }

    pub fn expired(&self) -> bool {
        self.start.elapsed() >= self.limit
    }

    /// The smaller of a host call's own timeout and the time left; `None` when no time is left.
    pub fn clamp(&self, own: Option<Duration>) -> Option<Duration> {
        let left = self.remaining();
        if left.is_zero() {
            return None;
        }
        Some(own.map_or(left, |own| own.min(left)))
    }

    pub fn at(&self) -> Instant {
        self.start + self.limit
    }
}

/// Format a duration the way the verdict line and logs show it: `850 µs`, `2.1 ms`, `1.25 s`.
pub fn human(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        let ms = d.as_secs_f64() * 1e3;
        if ms < 10.0 {
            format!("{ms:.1} ms")
        } else {
            format!("{ms:.0} ms")
        }
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_takes_the_smaller() {
        let d = Deadline::start(Duration::from_secs(60));
        let c = d.clamp(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(c, Duration::from_millis(10));
        let c = d.clamp(Some(Duration::from_secs(600))).unwrap();
        assert!(c <= Duration::from_secs(60) && c > Duration::from_secs(59));
        assert!(d.clamp(None).unwrap() <= Duration::from_secs(60));
    }

    #[test]
    fn expired_deadline_has_no_time() {
        let d = Deadline::start(Duration::ZERO);
        assert!(d.expired());
        assert_eq!(d.remaining(), Duration::ZERO);
        assert_eq!(d.clamp(Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_micros(850)), "850 µs");
        assert_eq!(human(Duration::from_micros(2_140)), "2.1 ms");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
        assert_eq!(human(Duration::from_millis(1_250)), "1.25 s");
    }
}
