//! Report: what a run tells its user, as data ([`Summary`]) and as text or JSON.
//!
//! The output mode is chosen once, in [`crate::config::Output`]: the JSON summary is the only thing ever
//! written to stdout; human lines, warnings and progress go to stderr. Warnings are sorted (file, line,
//! message) before they are shown, so parallel parsing never changes the output order.

pub mod check;

use std::io::Write;

use serde::Serialize;

use crate::config::Output;
use crate::findings::Finding;

/// One built source, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub name: String,
    /// Location with credentials redacted.
    pub location: String,
    pub commit: String,
    /// The commit's committer time (Unix seconds).
    pub commit_time: i64,
    /// Rule files in the commit (after include/exclude).
    pub files: usize,
    /// Whether values of this source carry a link to the rule file.
    pub links: bool,
}

/// What a build did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Values in the cluster.
    pub values: usize,
    /// Rule files parsed this run.
    pub parsed: usize,
    /// Rule files whose parse result came from the cache.
    pub reused: usize,
    /// Values (by uuid) new since the previous output.
    pub added: usize,
    /// Values whose content changed since the previous output.
    pub changed: usize,
    /// Values of the previous output that are gone.
    pub removed: usize,
    /// The cluster's version.
    pub version: i64,
    /// Whether any output file was (re)written (with `build --check`: would be).
    pub wrote: bool,
    /// `build --check`: nothing was written; `wrote` says whether the outputs are out of date.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The files written or kept.
    pub cluster: String,
    pub galaxy: String,
    pub sources: Vec<SourceSummary>,
    /// Every rule file read, as (source, path), sorted; filled by `check` only.
    #[serde(skip)]
    pub files: Vec<(String, String)>,
    /// Remarks on the configuration (e.g. a source named after its folder).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    pub warnings: Vec<Finding>,
    /// Why work was done (per-file reasons only under --verbose).
    pub reasons: Vec<crate::state::reason::Reason>,
    /// Time spent per pipeline stage, in order (under --verbose).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<Timing>,
}

impl Summary {
    /// A summary of nothing done yet, for the output files `cluster` and `galaxy`.
    pub fn empty(cluster: &std::path::Path, galaxy: &std::path::Path) -> Summary {
        Summary {
            values: 0,
            parsed: 0,
            reused: 0,
            added: 0,
            changed: 0,
            removed: 0,
            version: 0,
            wrote: false,
            dry_run: false,
            cluster: cluster.display().to_string(),
            galaxy: galaxy.display().to_string(),
            sources: Vec::new(),
            files: Vec::new(),
            notices: Vec::new(),
            warnings: Vec::new(),
            reasons: Vec::new(),
            timings: Vec::new(),
        }
    }
}

/// Time spent in one pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub stage: &'static str,
    pub ms: f64,
}

/// Measures the pipeline stage by stage: each [`Stopwatch::lap`] closes the stage that was running.
#[derive(Debug)]
pub struct Stopwatch {
    last: std::time::Instant,
    laps: Vec<Timing>,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Stopwatch {
    /// Ends the stage named `stage` now.
    pub fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push(Timing {
            stage,
            ms: (now - self.last).as_secs_f64() * 1000.0,
        });
        self.last = now;
    }

    /// The stages measured so far.
    pub fn finish(self) -> Vec<Timing> {
        self.laps
    }
}

/// Prints the summary the way `output` asks: JSON on stdout, or lines on stderr.
pub fn print(summary: &Summary, output: Output) -> std::io::Result<()> {
    match output {
        Output::Json { .. } => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, summary)?;
            writeln!(out)
        }
        Output::Human { quiet: true, .. } => Ok(()),
        Output::Human { verbose, .. } => {
            let mut err = std::io::stderr().lock();
            for w in &summary.warnings {
                writeln!(err, "{}: {w}", w.severity)?;
            }
            if verbose {
                for r in &summary.reasons {
                    writeln!(err, "  {r}")?;
                }
                if !summary.timings.is_empty() {
                    let laps: Vec<String> = summary
                        .timings
                        .iter()
                        .map(|t| format!("{} {:.1} ms", t.stage, t.ms))
                        .collect();
                    writeln!(err, "timings: {}", laps.join(", "))?;
                }
            }
            for s in &summary.sources {
                writeln!(
                    err,
                    "source {}: {} at {} ({} rule files{})",
                    s.name,
                    s.location,
                    &s.commit[..s.commit.len().min(12)],
                    s.files,
                    if s.links {
                        ""
                    } else {
                        ", no web link: set web_url or an origin remote"
                    }
                )?;
            }
            writeln!(
                err,
                "{} values (parsed {}, reused {}; added {}, changed {}, removed {}), version {}, {} warning(s)",
                summary.values,
                summary.parsed,
                summary.reused,
                summary.added,
                summary.changed,
                summary.removed,
                summary.version,
                summary.warnings.len()
            )?;
            if summary.dry_run && summary.wrote {
                writeln!(
                    err,
                    "out of date: a build would rewrite {} and {}",
                    summary.cluster, summary.galaxy
                )
            } else if summary.dry_run {
                writeln!(
                    err,
                    "up to date: {} and {}",
                    summary.cluster, summary.galaxy
                )
            } else if summary.wrote {
                writeln!(err, "wrote {} and {}", summary.cluster, summary.galaxy)
            } else {
                writeln!(err, "unchanged: {} and {}", summary.cluster, summary.galaxy)
            }
        }
    }
}
