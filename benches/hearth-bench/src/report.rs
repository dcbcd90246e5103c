//! Metrics and scenario outcomes, printed for people or as JSON.
//!
//! Metric keys (`send.msgs_per_s`, …) are stable: `compare.sh` matches runs
//! and servers by key. A failed scenario keeps whatever metrics it recorded
//! before failing and lists its errors; the run goes on with the next one.

use std::time::Instant;

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub(crate) enum Better {
    Higher,
    Lower,
    /// Informational (counts, sizes of what was returned).
    Neither,
}

impl Better {
    fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::Neither => "neither",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub(crate) key: String,
    pub(crate) label: String,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    pub(crate) value: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) errors: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) seconds: f64,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) scale: String,
    pub(crate) server: Option<String>,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) metrics: Vec<Metric>,
}

/// Collects one scenario's metrics, errors and notes.
pub(crate) struct Recorder<'r> {
    report: &'r mut Report,
    name: &'static str,
    errors: Vec<String>,
    notes: Vec<String>,
    started: Instant,
}

impl Report {
    pub(crate) fn scenario(&mut self, name: &'static str) -> Recorder<'_> {
        eprintln!("[{name}] started");
        Recorder {
            report: self,
            name,
            errors: Vec::new(),
            notes: Vec::new(),
            started: Instant::now(),
        }
    }

    pub(crate) fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.errors.is_empty()).count()
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "tool": "hearth-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "url": self.url,
            "scale": self.scale,
            "server": self.server,
            "scenarios": self.outcomes.iter().map(|o| json!({
                "name": o.name,
                "ok": o.errors.is_empty(),
                "seconds": round(o.seconds),
                "errors": o.errors,
                "notes": o.notes,
            })).collect::<Vec<_>>(),
            "metrics": self.metrics.iter().map(|m| json!({
                "key": m.key,
                "label": m.label,
                "unit": m.unit,
                "better": m.better.as_str(),
                "value": round(m.value),
            })).collect::<Vec<_>>(),
        })
    }

    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "hearth-bench {} against {} ({}), scale {}\n\n",
            env!("CARGO_PKG_VERSION"),
            self.url,
            self.server.as_deref().unwrap_or("server unknown"),
            self.scale
        ));
        out.push_str("scenario   status   seconds\n");
        for o in &self.outcomes {
            let status = if o.errors.is_empty() { "ok" } else { "FAILED" };
            out.push_str(&format!("{:<10} {:<8} {:>7.1}\n", o.name, status, o.seconds));
            for e in &o.errors {
                out.push_str(&format!("    error: {e}\n"));
            }
            for n in &o.notes {
                out.push_str(&format!("    note: {n}\n"));
            }
        }
        out.push('\n');
        let width = self.metrics.iter().map(|m| m.label.chars().count()).max().unwrap_or(0);
        for m in &self.metrics {
            out.push_str(&format!(
                "{:<width$}  {:>12}  {}\n",
                m.label,
                format_value(m.value),
                m.unit
            ));
        }
        out
    }
}

impl Recorder<'_> {
    pub(crate) fn metric(
        &mut self,
        key: &str,
        label: &str,
        unit: &'static str,
        better: Better,
        value: f64,
    ) {
        if !value.is_finite() {
            self.note(format!("{key}: not a finite number, left out"));
            return;
        }
        self.report.metrics.push(Metric {
            key: format!("{}.{key}", self.name),
            label: label.to_owned(),
            unit,
            better,
            value,
        });
    }

    /// Records a metric only when there is a value (e.g. a percentile of
    /// samples that may be empty).
    pub(crate) fn metric_opt(
        &mut self,
        key: &str,
        label: &str,
        unit: &'static str,
        better: Better,
        value: Option<f64>,
    ) {
        if let Some(v) = value {
            self.metric(key, label, unit, better, v);
        }
    }

    pub(crate) fn fail(&mut self, error: impl ToString) {
        let error = error.to_string();
        eprintln!("[{}] error: {error}", self.name);
        self.errors.push(error);
    }

    pub(crate) fn note(&mut self, note: impl ToString) {
        let note = note.to_string();
        eprintln!("[{}] note: {note}", self.name);
        self.notes.push(note);
    }

    pub(crate) fn finish(self) {
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "[{}] {} in {seconds:.1} s",
            self.name,
            if self.errors.is_empty() { "done" } else { "FAILED" }
        );
        self.report.outcomes.push(Outcome {
            name: self.name,
            errors: self.errors,
            notes: self.notes,
            seconds,
        });
    }
}

/// Rounds to 4 significant-ish places so JSON stays readable.
fn round(v: f64) -> f64 {
    if v.abs() >= 1000.0 { v.round() } else { (v * 1000.0).round() / 1000.0 }
}

pub(crate) fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
