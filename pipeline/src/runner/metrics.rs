//! Every stage's counters in the Prometheus text exposition format, for `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::StageProgress;

/// (name, role, type, progress) of every stage.
type Stages = [(String, &'static str, String, Arc<StageProgress>)];

/// The metrics page at `now_ms`.
pub(crate) fn render(stages: &Stages, now_ms: i64) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, value: &dyn Fn(&StageProgress, &str) -> Option<f64>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (stage, role, type_name, progress) in stages {
            if let Some(v) = value(progress, role) {
                let _ = writeln!(out, "{name}{{stage=\"{stage}\",role=\"{role}\",type=\"{type_name}\"}} {v}");
            }
        }
    };
    let count = |counter: fn(&StageProgress) -> u64| move |p: &StageProgress, _: &str| Some(counter(p) as f64);
    family(
        "weir_records_in_total",
        "Records a stage read (operators, sinks) or received (sources).",
        "counter",
        &count(|p| p.records_in.load(Ordering::Relaxed)),
    );
    family(
        "weir_records_out_total",
        "Records a stage appended (sources, operators) or delivered (sinks).",
        "counter",
        &count(|p| p.records_out.load(Ordering::Relaxed)),
    );
    family(
        "weir_dead_letters_total",
        "Records a stage sent to the dead-letter topic (its errors on input).",
        "counter",
        &count(|p| p.dead_lettered.load(Ordering::Relaxed)),
    );
    family("weir_retries_total", "Retries after retryable errors.", "counter", &count(StageProgress::all_retries));
    family("weir_source_bytes_total", "Bytes of raw records a source appended.", "counter", &|p, role| {
        (role == "source").then(|| p.bytes_in.load(Ordering::Relaxed) as f64)
    });
    family(
        "weir_source_cursor_lag_seconds",
        "How far a source's cursor is behind now, in event time.",
        "gauge",
        &|p, role| {
            let cursor = p.cursor_time_ms.load(Ordering::Relaxed);
            (role == "source" && cursor != i64::MIN).then(|| (now_ms - cursor).max(0) as f64 / 1000.0)
        },
    );
    family(
        "weir_lag_records",
        "Records on a stage's inputs not committed yet (measured every 5 s).",
        "gauge",
        &|p, role| (role != "source").then(|| p.lag.load(Ordering::Relaxed) as f64),
    );
    family(
        "weir_sink_request_seconds_sum",
        "Time spent in calls to a sink's destination, retries included.",
        "counter",
        &|p, role| (role == "sink").then(|| p.deliver_micros.load(Ordering::Relaxed) as f64 / 1e6),
    );
    family("weir_sink_request_seconds_count", "Calls to a sink's destination.", "counter", &|p, role| {
        (role == "sink").then(|| p.deliver_calls.load(Ordering::Relaxed) as f64)
    });
    family("weir_stage_failed", "1 when the stage stopped on a fatal error.", "gauge", &|p, _| {
        Some(if p.failure.lock().map(|f| f.is_some()).unwrap_or(true) { 1.0 } else { 0.0 })
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_rendered_in_the_prometheus_text_format() {
        let source = Arc::new(StageProgress::default());
        source.records_in.store(3, Ordering::Relaxed);
        source.bytes_in.store(1200, Ordering::Relaxed);
        source.retries.store(1, Ordering::Relaxed);
        source.source_retries.store(2, Ordering::Relaxed);
        source.cursor_time_ms.store(10_000, Ordering::Relaxed);
        let sink = Arc::new(StageProgress::default());
        sink.deliver_calls.store(4, Ordering::Relaxed);
        sink.deliver_micros.store(1_500_000, Ordering::Relaxed);
        sink.lag.store(12, Ordering::Relaxed);
        let stages = vec![
            ("okta".to_string(), "source", "okta".to_string(), source),
            ("siem".to_string(), "sink", "splunk_hec".to_string(), sink),
        ];
        let page = render(&stages, 70_000);
        assert!(page.contains("weir_records_in_total{stage=\"okta\",role=\"source\",type=\"okta\"} 3\n"), "{page}");
        assert!(page.contains("weir_retries_total{stage=\"okta\",role=\"source\",type=\"okta\"} 3\n"), "{page}");
        assert!(page.contains("weir_source_bytes_total{stage=\"okta\",role=\"source\",type=\"okta\"} 1200\n"));
        assert!(page.contains("weir_source_cursor_lag_seconds{stage=\"okta\",role=\"source\",type=\"okta\"} 60\n"));
        assert!(!page.contains("weir_source_bytes_total{stage=\"siem\""), "sinks have no source metrics");
        assert!(page.contains("# TYPE weir_source_cursor_lag_seconds gauge\n"));
        assert!(page.contains("weir_sink_request_seconds_sum{stage=\"siem\",role=\"sink\",type=\"splunk_hec\"} 1.5\n"));
        assert!(page.contains("weir_sink_request_seconds_count{stage=\"siem\",role=\"sink\",type=\"splunk_hec\"} 4\n"));
        assert!(page.contains("weir_lag_records{stage=\"siem\",role=\"sink\",type=\"splunk_hec\"} 12\n"), "{page}");
    }
}
