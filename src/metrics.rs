//! The process's metrics, and their Prometheus text exposition: conventional names
//! (`ambassador_xds_` prefix, counters ending in `_total`, durations in seconds as histograms),
//! `# HELP` and `# TYPE` lines. Everything here is plain atomics and small maps: recording is
//! cheap enough for the hot paths that do it (one response, one ACK).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bucket bounds (seconds) for everything that takes milliseconds to seconds.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A histogram of seconds with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self.bounds.iter().position(|&bound| seconds <= bound).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(DURATION_BUCKETS)
    }
}

/// Counters by one label value.
#[derive(Debug, Default)]
pub struct CounterBy(Mutex<BTreeMap<String, u64>>);

impl CounterBy {
    pub fn inc(&self, label: &str) {
        *self.0.lock().expect("never poisoned").entry(label.to_string()).or_default() += 1;
    }

    pub fn values(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("never poisoned").clone()
    }
}

/// Everything the process counts. Shared (`Arc`) by the controller, the xDS server and the admin
/// endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    // Reloads (the controller).
    /// By result: `published`, `unchanged`, `failed`.
    pub reloads: CounterBy,
    pub reload_duration: Histogram,
    // Streams (the xDS server).
    pub streams_opened: AtomicU64,
    /// Open streams by protocol (`sotw`, `delta`).
    pub streams: Mutex<BTreeMap<&'static str, i64>>,
    /// Responses produced, by type short name.
    pub pushes: CounterBy,
    /// Responses handed to HTTP/2 (written, not merely produced).
    pub responses_sent: Arc<AtomicU64>,
    pub nacks: CounterBy,
    pub ignored_requests: AtomicU64,
    /// From a response to the ACK that answers it.
    pub push_ack_latency: Histogram,
    // Connections (both ports).
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    /// Closed at once because `--max-connections` were open.
    pub connections_refused: AtomicU64,
    /// Closed because they carried no stream for the idle timeout.
    pub connections_idle_closed: AtomicU64,
    /// Times the accept loop paused because the process was out of file descriptors.
    pub accept_backoffs: AtomicU64,
}

impl Metrics {
    pub fn stream_opened(&self, protocol: &'static str) {
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
        *self.streams.lock().expect("never poisoned").entry(protocol).or_default() += 1;
    }

    pub fn stream_closed(&self, protocol: &'static str) {
        *self.streams.lock().expect("never poisoned").entry(protocol).or_default() -= 1;
    }

    pub fn streams_active(&self) -> i64 {
        self.streams.lock().expect("never poisoned").values().sum()
    }
}

/// A metric family's samples: label pairs and a value.
pub type Samples = Vec<(Vec<(&'static str, String)>, f64)>;

/// Builds a text exposition, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    pub fn counter(&mut self, name: &str, help: &str, samples: Samples) {
        self.family(name, help, "counter", samples);
    }

    pub fn gauge(&mut self, name: &str, help: &str, samples: Samples) {
        self.family(name, help, "gauge", samples);
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, kind: &str, name: &str, help: &str, value: f64) {
        self.family(name, help, kind, vec![(Vec::new(), value)]);
    }

    fn family(&mut self, name: &str, help: &str, kind: &str, samples: Samples) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{} {}", render_labels(&labels), render_value(value));
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, count) in histogram.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = histogram.bounds.get(index).map_or("+Inf".to_string(), |b| render_value(*b));
            let _ = writeln!(self.0, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(self.0, "{name}_sum {}", render_value(sum));
        let _ = writeln!(self.0, "{name}_count {cumulative}");
    }

    pub fn finish(self) -> String {
        self.0
    }
}

fn render_labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
    format!("{{{}}}", pairs.join(","))
}

/// Label values escape backslash, double quote and newline (the exposition format's rule).
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Samples with one label, from a map.
pub fn by_label(label: &'static str, values: &BTreeMap<String, u64>) -> Samples {
    values.iter().map(|(k, v)| (vec![(label, k.clone())], *v as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(5));
        let mut out = Exposition::default();
        out.histogram("x_seconds", "X.", &histogram);
        let text = out.finish();
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum 5.55\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.counter("c_total", "C.", vec![(vec![("file", "a\"b\\c\nd".into())], 1.0)]);
        assert!(out.finish().contains(r#"c_total{file="a\"b\\c\nd"} 1"#));
    }
}
