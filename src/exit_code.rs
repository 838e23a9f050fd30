//! The exit contract: the one place that says which number each outcome ends with.
//!
//! kubelet treats every non-zero code as a failed probe; the distinctions exist for the people
//! reading `kubectl describe pod` and for dry-runs in CI, so each code means exactly one thing.

use std::fmt;

/// How a probe (or any subcommand) ended, and the process exit code it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The script returned `true` (and every named check passed).
    Healthy,
    /// The script returned `false`, or a named check failed.
    Unhealthy,
    /// An uncaught error while checking: a host call's transport failure, a `throw`.
    CheckError,
    /// The script cannot run as a probe: unreadable, does not compile, hit a sandbox limit,
    /// or its result is not a boolean.
    ScriptFault,
    /// The deadline passed before the script finished.
    Deadline,
    /// `wait`: the budget (`--for`) ended before the targets were healthy.
    TimedOut,
    /// The command line was wrong.
    Usage,
    /// SIGTERM arrived before the script finished (the pod is stopping, or someone ran `kill`).
    Terminated,
}

impl Exit {
    /// Every outcome, in code order (for documentation and tests).
    pub const ALL: [Exit; 8] = [
        Exit::Healthy,
        Exit::Unhealthy,
        Exit::CheckError,
        Exit::ScriptFault,
        Exit::Deadline,
        Exit::Usage,
        Exit::TimedOut,
        Exit::Terminated,
    ];

    pub const fn code(self) -> u8 {
        match self {
            Exit::Healthy => 0,
            Exit::Unhealthy => 1,
            Exit::CheckError => 2,
            Exit::ScriptFault => 3,
            Exit::Deadline => 4,
            // sysexits.h EX_USAGE, the conventional code for a bad command line.
            Exit::Usage => 64,
            // What timeout(1), wait-for-it and wait4x exit with when time ran out.
            Exit::TimedOut => 124,
            // 128 + SIGTERM, what a shell reports for a process that SIGTERM ended.
            Exit::Terminated => 143,
        }
    }

    /// The word that starts the verdict line and names the outcome in JSON.
    pub const fn label(self) -> &'static str {
        match self {
            Exit::Healthy => "healthy",
            Exit::Unhealthy => "unhealthy",
            Exit::CheckError => "check error",
            Exit::ScriptFault => "script fault",
            Exit::Deadline => "deadline",
            Exit::Usage => "usage",
            Exit::TimedOut => "timed out",
            Exit::Terminated => "terminated",
        }
    }

    /// A machine-friendly name (JSON `verdict`, `test` cases).
    pub const fn key(self) -> &'static str {
        match self {
            Exit::Healthy => "healthy",
            Exit::Unhealthy => "unhealthy",
            Exit::CheckError => "check-error",
            Exit::ScriptFault => "script-fault",
            Exit::Deadline => "deadline",
            Exit::Usage => "usage",
            Exit::TimedOut => "timed-out",
            Exit::Terminated => "terminated",
        }
    }

    /// The outcome of an exit code.
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    /// The outcome a `test` case names (`usage` and `terminated` are not a script's outcome).
    pub fn from_key(key: &str) -> Option<Exit> {
        Exit::ALL
            .into_iter()
            .filter(|e| !matches!(e, Exit::Usage | Exit::Terminated | Exit::TimedOut))
            .find(|e| e.key() == key)
    }

    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Healthy => "healthy: the script returned true",
            Exit::Unhealthy => "unhealthy: the script returned false or a named check failed",
            Exit::CheckError => "check error: an uncaught error while checking (transport failure, throw)",
            Exit::ScriptFault => {
                "script fault: unreadable, does not compile, hit a sandbox limit, or did not return a boolean"
            }
            Exit::Deadline => "deadline: the deadline passed before the script finished",
            Exit::Usage => "usage: bad command line",
            Exit::TimedOut => "timed out: wait's --for ended before the targets were healthy",
            Exit::Terminated => "terminated: SIGTERM arrived before the script finished",
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 64, 124, 143]);
    }

    #[test]
    fn only_healthy_is_zero() {
        for exit in Exit::ALL {
            assert_eq!(exit.code() == 0, exit == Exit::Healthy, "{exit:?}");
        }
    }

    #[test]
    fn keys_and_labels_are_distinct() {
        let mut keys: Vec<&str> = Exit::ALL.iter().map(|e| e.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Exit::ALL.len());
        for exit in Exit::ALL {
            assert!(exit.meaning().starts_with(exit.label()), "{exit:?}");
        }
    }
}
