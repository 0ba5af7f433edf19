//! `transbench report`: a results file's charts, tables and histogram
//! files, in a directory that opens from disk.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a run's results and its report go: `DIR` may be a run directory
/// or its results file; the report lands in `report/` beside the file.
pub fn locate(input: &Path) -> (PathBuf, PathBuf) {
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

/// Renders the report of `results` into `out` and says where it is.
pub fn render(results: &Path, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    if results.file_name().is_some_and(|n| n == "results.json")
        && results.parent().is_some_and(|d| d.is_dir())
        && !results.exists()
    {
        anyhow::bail!(
            "{} has no results.json: give a run directory (run --out DIR) or a results file",
            results
                .parent()
                .map_or_else(String::new, |d| d.display().to_string())
        );
    }
    let run = transbench_reports::read_results(results)?;
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
