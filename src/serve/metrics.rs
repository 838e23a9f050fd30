//! What `serve` exports on `/metrics`, in the OpenMetrics text format (prometheus-client's
//! encoder; Prometheus asks for this format first).
//!
//! Per probe: the last verdict (`probe_success`, as blackbox_exporter names it), its duration and
//! time, evaluations and failures by reason, the script's reload state; per probe and host
//! function: calls by outcome and a latency histogram. Every series carries a `probe` label.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::{
    exit_code::Exit,
    host,
    probe::Verdict,
    trace::{Inner, Outcome},
};

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Host call latency buckets: 0.5 ms to about 8 s (a host call never outlasts its deadline).
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 8))
}

pub struct Metrics {
    registry: Registry,
    success: Family<Labels, Gauge>,
    duration: Family<Labels, FloatGauge>,
    last_evaluation: Family<Labels, FloatGauge>,
    evaluations: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    calls: Family<Labels, Counter>,
    call_seconds: Histograms,
    reloads: Family<Labels, Counter>,
    script_error: Family<Labels, Gauge>,
}

fn probe(name: &str) -> Labels {
    vec![("probe", name.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            success: Family::default(),
            duration: Family::default(),
            last_evaluation: Family::default(),
            evaluations: Family::default(),
            failures: Family::default(),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            reloads: Family::default(),
            script_error: Family::default(),
            registry: Registry::default(),
        };
        m.registry.register(
            "probe_success",
            "Whether the probe's last evaluation was healthy (1) or not (0)",
            m.success.clone(),
        );
        m.registry.register(
            "probe_duration_seconds",
            "How long the probe's last evaluation took",
            m.duration.clone(),
        );
        m.registry.register(
            "probe_last_evaluation_timestamp_seconds",
            "When the probe's last evaluation ended (Unix time)",
            m.last_evaluation.clone(),
        );
        m.registry.register(
            "probe_evaluations",
            "Evaluations of the probe's script",
            m.evaluations.clone(),
        );
        m.registry.register(
            "probe_failures",
            "Evaluations that did not end healthy, by reason (unhealthy, check-error, script-fault, deadline)",
            m.failures.clone(),
        );
        m.registry.register(
            "probe_host_calls",
            "Host function calls by function and outcome (pass, fail, error)",
            m.calls.clone(),
        );
        m.registry.register(
            "probe_host_call_duration_seconds",
            "Host function call latency",
            m.call_seconds.clone(),
        );
        m.registry.register(
            "probe_script_reloads",
            "Reloads of the probe's script after its file changed, by result (ok, error)",
            m.reloads.clone(),
        );
        m.registry.register(
            "probe_script_error",
            "1 while the script on disk cannot be used (the last good version keeps running)",
            m.script_error.clone(),
        );
        m
    }

    /// Record one finished evaluation and the host calls it made.
    pub fn evaluated(&self, name: &str, verdict: &Verdict, trace: &Inner, unix_secs: f64) {
        let labels = probe(name);
        let healthy = verdict.exit == Exit::Healthy;
        self.success.get_or_create(&labels).set(i64::from(healthy));
        self.duration
            .get_or_create(&labels)
            .set(verdict.elapsed.as_secs_f64());
        self.last_evaluation.get_or_create(&labels).set(unix_secs);
        self.evaluations.get_or_create(&labels).inc();
        if !healthy {
            let mut by_reason = labels.clone();
            by_reason.push(("reason", verdict.exit.key().to_string()));
            self.failures.get_or_create(&by_reason).inc();
        }
        for call in &trace.calls {
            let outcome = match call.outcome {
                Outcome::Pending => continue,
                Outcome::Pass(_) => "pass",
                Outcome::Fail(_) => "fail",
                Outcome::Error(_) => "error",
            };
            let mut by_function = labels.clone();
            by_function.push(("function", call.function.to_string()));
            self.call_seconds
                .get_or_create(&by_function)
                .observe(call.elapsed.as_secs_f64());
            by_function.push(("outcome", outcome.to_string()));
            self.calls.get_or_create(&by_function).inc();
        }
    }

    /// Record a reload: `ok` false when the new script could not be read or compiled.
    pub fn reloaded(&self, name: &str, ok: bool) {
        let mut labels = probe(name);
        self.script_error.get_or_create(&labels).set(i64::from(!ok));
        labels.push(("result", if ok { "ok" } else { "error" }.to_string()));
        self.reloads.get_or_create(&labels).inc();
    }

    /// The state of a probe's script when it starts: usable or not.
    pub fn loaded(&self, name: &str, ok: bool) {
        self.script_error
            .get_or_create(&probe(name))
            .set(i64::from(!ok));
    }

    /// Forget a probe that is gone (its file left the directory), so its series end.
    pub fn remove(&self, name: &str) {
        let labels = probe(name);
        self.success.remove(&labels);
        self.duration.remove(&labels);
        self.last_evaluation.remove(&labels);
        self.evaluations.remove(&labels);
        self.script_error.remove(&labels);
        for exit in Exit::ALL {
            let mut l = labels.clone();
            l.push(("reason", exit.key().to_string()));
            self.failures.remove(&l);
        }
        for result in ["ok", "error"] {
            let mut l = labels.clone();
            l.push(("result", result.to_string()));
            self.reloads.remove(&l);
        }
        for f in host::functions() {
            let mut l = labels.clone();
            l.push(("function", f.name.to_string()));
            self.call_seconds.remove(&l);
            for outcome in ["pass", "fail", "error"] {
                let mut l = l.clone();
                l.push(("outcome", outcome.to_string()));
                self.calls.remove(&l);
            }
        }
    }

    /// The exposition, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Pos, Trace};
    use std::time::Duration;

    #[test]
    fn an_evaluation_shows_up_with_its_calls() {
        let m = Metrics::new();
        let trace = Trace::default();
        let i = trace.begin("http_get", "GET http://x/".into(), Pos::default());
        trace.finish(
            i,
            Outcome::Fail("503".into()),
            Duration::from_millis(3),
            "t",
        );
        let mut verdict = Verdict::new(Exit::Unhealthy, "GET http://x/ -> 503");
        verdict.elapsed = Duration::from_millis(4);
        m.evaluated("live", &verdict, &trace.take(), 1.5e9);
        let text = m.encode();
        for line in [
            "probe_success{probe=\"live\"} 0",
            "probe_failures_total{probe=\"live\",reason=\"unhealthy\"} 1",
            "probe_host_calls_total{probe=\"live\",function=\"http_get\",outcome=\"fail\"} 1",
            "probe_host_call_duration_seconds_count{probe=\"live\",function=\"http_get\"} 1",
            "probe_evaluations_total{probe=\"live\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        m.remove("live");
        assert!(!m.encode().contains("live"), "{}", m.encode());
    }
}
