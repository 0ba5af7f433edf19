//! `transbench report`: a results file's charts, tables and histogram
//! files, in a directory that opens from disk; or its medians for a CI
//! tool that tracks them across commits.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Instant;
use transbench_reports::export::{bencher, github, ExportError};
use transbench_reports::stats::Better;
use transbench_reports::RunResults;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The report directory (index.html, charts, summary.md, hdr/).
    Html,
    /// Per cell the median of the lower-is-better metrics, for
    /// github-action-benchmark's customSmallerIsBetter (stdout).
    GithubSmaller,
    /// The same of the higher-is-better metrics, for its
    /// customBiggerIsBetter (stdout).
    GithubBigger,
    /// Per cell and metric the median and the trials' range in the Bencher
    /// Metric Format, for bencher run --adapter json (stdout).
    Bmf,
}

/// Where a run's results and its report go: `DIR` may be a run directory
/// or its results file; the report lands in `report/` beside the file.
fn locate(input: &Path) -> (PathBuf, PathBuf) {
    if input.is_dir() {
        (input.join("results.json"), input.join("report"))
    } else {
        let dir = match input.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (input.to_path_buf(), dir.join("report"))
    }
}

/// The run in `results`, or why there is none to read.
fn read(results: &Path) -> anyhow::Result<RunResults> {
    if results.file_name().is_some_and(|n| n == "results.json")
        && results.parent().is_some_and(|d| d.is_dir())
        && !results.exists()
    {
        let dir = results.parent().unwrap_or(Path::new("."));
        let latest = dir.join(crate::out_dir::LATEST);
        let newest = match latest.is_dir() {
            true => format!(" ({} is its newest run)", latest.display()),
            false => String::new(),
        };
        anyhow::bail!(
            "{} has no results.json: give a run directory (run --out DIR) or a results file{newest}",
            dir.display()
        );
    }
    Ok(transbench_reports::read_results(results)?)
}

/// `transbench report INPUT`: the HTML report into `out` (default:
/// beside the results), or the run in a CI tool's format on stdout.
pub fn report(input: &Path, format: Format, out: Option<PathBuf>) -> anyhow::Result<()> {
    let (results, default_out) = locate(input);
    let export: fn(&RunResults) -> Result<String, ExportError> = match format {
        Format::Html => return render(&results, &out.unwrap_or(default_out)),
        Format::GithubSmaller => |r| github::from_run(r, Better::Lower),
        Format::GithubBigger => |r| github::from_run(r, Better::Higher),
        Format::Bmf => bencher::from_run,
    };
    if let Some(out) = out {
        let name = clap::ValueEnum::to_possible_value(&format).map(|v| v.get_name().to_string());
        anyhow::bail!(
            "--out {} names the HTML report's directory, and --format {} prints to stdout: redirect it to \
             the file instead (> FILE)",
            out.display(),
            name.unwrap_or_default()
        );
    }
    let run = read(&results)?;
    let exported = export(&run).with_context(|| format!("exporting {}", results.display()))?;
    print!("{exported}");
    Ok(())
}

/// Renders the report of `results` into `out` and says where it is.
pub fn render(results: &Path, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let run = read(results)?;
    let rendered =
        transbench_render::render(&run, &results.display().to_string(), out).with_context(|| {
            format!(
                "rendering the report of {} into {}",
                results.display(),
                out.display()
            )
        })?;
    tracing::info!("report rendered in {:.2} s", started.elapsed().as_secs_f64());
    println!(
        "report: {} ({} charts; summary.md for a PR comment)",
        rendered.index.display(),
        rendered.charts.len()
    );
    Ok(())
}
