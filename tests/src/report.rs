//! Results of repeated runs: per-metric summaries (median, min, max), the side-by-side table and
//! the JSON report.

use serde::Serialize;
use std::path::Path;

/// Which direction of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput-like: more is better.
    Higher,
    /// Latency-like: less is better.
    Lower,
}

/// Median, min and max of one metric over repeated runs, with every run's value.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Median over runs.
    pub median: f64,
    /// Smallest run value.
    pub min: f64,
    /// Largest run value.
    pub max: f64,
    /// Every run's value, in run order.
    pub runs: Vec<f64>,
}

impl Summary {
    /// Summarise `runs` (at least one value).
    pub fn of(runs: &[f64]) -> Self {
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: runs.to_vec(),
        }
    }

    fn cell(&self, unit: &str) -> String {
        if self.runs.len() == 1 {
            return format!("{} {unit}", fmt_num(self.median));
        }
        format!("{} [{}–{}] {unit}", fmt_num(self.median), fmt_num(self.min), fmt_num(self.max))
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One metric of one scenario, Yilian next to a peer (or alone when nothing compares).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario, e.g. `writes`.
    pub scenario: String,
    /// What was measured, e.g. `writes/s @64 clients`.
    pub metric: String,
    /// Unit of the values.
    pub unit: String,
    /// Direction that is better.
    pub better: Better,
    /// Yilian's values (none where only the peer could be measured yet).
    pub yilian: Option<Summary>,
    /// The peer measured alongside, e.g. `etcd 3.4`.
    pub peer: Option<String>,
    /// The peer's values.
    pub peer_values: Option<Summary>,
    /// How many times better Yilian's median is than the peer's (> 1: Yilian ahead).
    pub advantage: Option<f64>,
}

impl Row {
    /// A row comparing Yilian's run values with a peer's.
    pub fn compare(
        scenario: &str,
        metric: impl Into<String>,
        unit: &str,
        better: Better,
        yilian: &[f64],
        peer: &str,
        peer_runs: &[f64],
    ) -> Self {
        let (y, p) = (Summary::of(yilian), Summary::of(peer_runs));
        let advantage = match better {
            Better::Higher => y.median / p.median,
            Better::Lower => p.median / y.median,
        };
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            yilian: Some(y),
            peer: Some(peer.into()),
            peer_values: Some(p),
            advantage: advantage.is_finite().then_some(advantage),
        }
    }

    /// A row with Yilian's values only.
    pub fn alone(
        scenario: &str,
        metric: impl Into<String>,
        unit: &str,
        better: Better,
        yilian: &[f64],
    ) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            yilian: Some(Summary::of(yilian)),
            peer: None,
            peer_values: None,
            advantage: None,
        }
    }

    /// A row with the peer's values only, where Yilian's side cannot run yet.
    pub fn peer_only(
        scenario: &str,
        metric: impl Into<String>,
        unit: &str,
        better: Better,
        peer: &str,
        peer_runs: &[f64],
    ) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            yilian: None,
            peer: Some(peer.into()),
            peer_values: Some(Summary::of(peer_runs)),
            advantage: None,
        }
    }
}

/// Everything one invocation measured, plus where and how.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The runner's arguments.
    pub command: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Runs per measurement.
    pub runs: usize,
    /// Whether `--quick` shortened every measurement.
    pub quick: bool,
    /// The machine: cores, memory, kernel, peer versions.
    pub machine: serde_json::Value,
    /// One row per metric.
    pub rows: Vec<Row>,
    /// Scenarios that could not run, with why.
    pub skipped: Vec<String>,
}

impl Report {
    /// The side-by-side table, in Markdown so it pastes into docs/benchmarks.md.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | metric | Yilian median [min–max] | peer | peer median [min–max] | Yilian advantage |\n\
             |---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let peer = r.peer.clone().unwrap_or_else(|| "—".into());
            let pv = r.peer_values.as_ref().map_or_else(|| "—".into(), |s| s.cell(&r.unit));
            let adv = r.advantage.map_or_else(|| "—".into(), |a| format!("{a:.2}×"));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.scenario,
                r.metric,
                r.yilian.as_ref().map_or_else(|| "not measured".into(), |s| s.cell(&r.unit)),
                peer,
                pv,
                adv
            ));
        }
        out
    }

    /// Write the report as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .map_err(|e| anyhow::anyhow!("writing the JSON report to {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Summary::of(&[4.0, 1.0]).min, 1.0);
    }

    #[test]
    fn advantage_points_the_same_way_for_both_directions() {
        let fast = Row::compare("s", "m", "ms", Better::Lower, &[1.0], "p", &[2.0]);
        assert_eq!(fast.advantage, Some(2.0));
        let many = Row::compare("s", "m", "/s", Better::Higher, &[10.0], "p", &[5.0]);
        assert_eq!(many.advantage, Some(2.0));
    }
}
