//! transbench's report from a results file: charts as PNG and SVG, one
//! self-contained `index.html` (inline SVG, opens from disk), `summary.md`
//! for a PR comment, and each cell's latency as HdrHistogram files
//! (`.hgrm` percentile distribution, `.hlog` interval log; written by
//! `transbench_reports::hdrfiles`).
//!
//! What a chart shows is built first, in data units ([`chart`],
//! [`figures`]); [`draw`] only turns that into pixels.

pub mod cells;
pub mod chart;
pub mod draw;
pub mod figures;
pub mod phases;
pub mod tables;
pub mod typeset;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use transbench_reports::{hdrfiles, RunResults};
use transbench_wire::Workload;

use crate::cells::{cells, slug};
use crate::chart::Chart;
use crate::draw::Caption;
use crate::tables::{escape, Table};

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Draw(#[from] draw::DrawError),
    #[error("trial {trial}: {source}")]
    Histogram {
        trial: String,
        source: transbench_reports::HistError,
    },
}

/// What a report holds, for the caller to point at.
#[derive(Debug)]
pub struct Rendered {
    pub dir: PathBuf,
    /// Chart slugs, in the report's order.
    pub charts: Vec<String>,
    pub index: PathBuf,
    pub summary: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    std::fs::write(path, bytes).map_err(|source| RenderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Renders the report of `results` into `out` (created if missing).
/// `source` names the results file in the report's header.
pub fn render(results: &RunResults, source: &str, out: &Path) -> Result<Rendered, RenderError> {
    check_histograms(results)?;
    // Attempts a retry replaced are listed with the invalid trials, and
    // nowhere else.
    let attempts = results;
    let results = &results.final_attempts();
    let hdr_dir = out.join("hdr");
    std::fs::create_dir_all(&hdr_dir).map_err(|source| RenderError::Write {
        path: hdr_dir.clone(),
        source,
    })?;
    remove_earlier(out, &hdr_dir)?;
    let charts = figures::charts(results);
    // The files stand alone, caption drawn; the page sets each caption
    // as text under its chart (it wraps to the window, can be selected
    // and read aloud), so its inline copy leaves it out.
    let mut svgs = Vec::with_capacity(charts.len());
    for chart in &charts {
        let file = draw::svg(chart, Caption::Drawn)?;
        write(&out.join(format!("{}.svg", chart.slug)), file.as_bytes())?;
        draw::png(chart, &out.join(format!("{}.png", chart.slug)))?;
        svgs.push(draw::svg(chart, Caption::Omitted)?);
    }
    if results.trials.is_empty() {
        tracing::warn!("{source} has no trials: the report is empty");
    }
    let hdr = hdr_files(results, &hdr_dir)?;
    let tables = tables_of(attempts, results);
    let facts = header_facts(attempts, results, source);
    let summary = out.join("summary.md");
    write(
        &summary,
        markdown(results, &facts, &charts, &tables, &hdr).as_bytes(),
    )?;
    let index = out.join("index.html");
    write(
        &index,
        html(results, &facts, &charts, &svgs, &tables, &hdr).as_bytes(),
    )?;
    Ok(Rendered {
        dir: out.to_path_buf(),
        charts: charts.into_iter().map(|c| c.slug).collect(),
        index,
        summary,
    })
}

/// Every histogram a report decodes (each trial's `lat`), checked before
/// anything is drawn or written: one out of bounds (a corrupt file, or one
/// transbench did not write, see `transbench_reports::hist`) fails the
/// report, naming its trial. Leaving it out would redraw its cell from the
/// other trials without a word.
fn check_histograms(results: &RunResults) -> Result<(), RenderError> {
    for t in &results.trials {
        t.lat.histogram().map_err(|source| RenderError::Histogram {
            trial: t.id.clone(),
            source,
        })?;
    }
    Ok(())
}

/// A report rendered again into the same directory must not keep charts
/// the new one lacks: remove the files an earlier rendering wrote (charts
/// by their kinds' names, histogram files), and nothing else.
fn remove_earlier(out: &Path, hdr_dir: &Path) -> Result<(), RenderError> {
    let ours = |dir: &Path, name: &str| {
        if dir == hdr_dir {
            name.ends_with(".hgrm") || name.ends_with(".hlog")
        } else {
            (name.ends_with(".png") || name.ends_with(".svg"))
                && figures::KINDS.iter().any(|k| name.starts_with(k))
        }
    };
    for dir in [out, hdr_dir] {
        let entries = std::fs::read_dir(dir).map_err(|source| RenderError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ours(dir, &name) && entry.path().is_file() {
                std::fs::remove_file(entry.path()).map_err(|source| RenderError::Write {
                    path: entry.path(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// The tables of the final attempts `results`, after the invalid trials
/// among every attempt.
fn tables_of(attempts: &RunResults, results: &RunResults) -> Vec<Table> {
    let cells = cells(results);
    // Invalid trials first: its note points down to the numbers it qualifies.
    [
        tables::invalid(attempts),
        tables::latency(&cells),
        tables::delivery(&cells),
        tables::hol(&cells),
        tables::churn(&cells),
        tables::bulk(&cells),
        tables::load(&cells),
        tables::heartbeat(&cells),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A cell's HdrHistogram files, relative to the report.
struct HdrFiles {
    cell: String,
    hgrm: String,
    hlog: String,
}

/// Per cell: `.hgrm` of all its trials' `lat` added together, and `.hlog`
/// with each trial as one interval, in the order they ran. Bulk cells
/// have no message latency, and no files.
fn hdr_files(results: &RunResults, dir: &Path) -> Result<Vec<HdrFiles>, RenderError> {
    let mut out = Vec::new();
    for c in cells(results)
        .into_iter()
        .filter(|c| c.workload != Workload::Bulk)
    {
        let name = slug(&c.id);
        let mut histograms = Vec::with_capacity(c.trials.len());
        for t in &c.trials {
            let h = t.lat.histogram().map_err(|source| RenderError::Histogram {
                trial: t.id.clone(),
                source,
            })?;
            let start = humantime::parse_rfc3339(&t.start_time).unwrap_or(SystemTime::UNIX_EPOCH);
            histograms.push((start, Duration::from_nanos(t.duration_ns), h));
        }
        let merged = c.merged_lat();
        let hgrm = format!("hdr/{name}.hgrm");
        write(
            &dir.join(format!("{name}.hgrm")),
            hdrfiles::hgrm(&merged).as_bytes(),
        )?;
        let intervals: Vec<hdrfiles::Interval> = histograms
            .iter()
            .map(|(start, length, h)| hdrfiles::Interval {
                start: *start,
                length: *length,
                histogram: h,
            })
            .collect();
        let comment = format!(
            "transbench {}: cell {}, `lat` of each trial ({}), values in ns, max column in ms",
            results.host.tool_version,
            c.id,
            c.trials
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let log = hdrfiles::hlog(&comment, &intervals).map_err(|source| RenderError::Write {
            path: dir.join(format!("{name}.hlog")),
            source,
        })?;
        let hlog = format!("hdr/{name}.hlog");
        write(&dir.join(format!("{name}.hlog")), log.as_bytes())?;
        out.push(HdrFiles {
            cell: c.id.clone(),
            hgrm,
            hlog,
        });
    }
    Ok(out)
}

/// The facts every reader of a report needs before its numbers.
/// Of the final attempts `results`; every attempt's misses from `attempts`.
fn header_facts(attempts: &RunResults, results: &RunResults, source: &str) -> Vec<(&'static str, String)> {
    let h = &results.host;
    let mut backends: Vec<&str> = results
        .trials
        .iter()
        .filter_map(|t| t.impairment.as_ref().map(|i| i.backend.as_str()))
        .collect();
    backends.sort();
    backends.dedup();
    let invalid = results.trials.iter().filter(|t| !t.valid).count();
    let baselines = results.trials.iter().filter(|t| t.baseline).count();
    let count = if baselines > 0 {
        format!("{} ({baselines} of them no-loss baselines)", results.trials.len())
    } else {
        results.trials.len().to_string()
    };
    let mut facts = vec![
        ("results", source.to_string()),
        ("run started", results.created.clone()),
    ];
    if let Some(s) = &results.scenario {
        facts.push((
            "scenario",
            format!(
                "{} ({}; seed {}, order {}, {} x {})",
                s.name,
                s.file,
                s.seed,
                s.order,
                transbench_reports::counted(s.cells.len() as u64, "cell"),
                transbench_reports::counted(s.trials_per_cell as u64, "trial")
            ),
        ));
    }
    facts.extend([("host", host_line(h))]);
    if let Some(line) = remote_receiver_fact(results) {
        facts.push(("receiver", line));
    }
    facts.extend([
        ("congestion control", {
            let mut pinned: Vec<String> = results
                .trials
                .iter()
                .filter_map(|t| {
                    let tcp = t.params.tcp_congestion.as_ref().map(|c| format!("TCP {c}"));
                    let quic = t.params.quic_congestion.as_ref().map(|c| format!("QUIC {c}"));
                    tcp.or(quic)
                })
                .collect();
            pinned.sort();
            pinned.dedup();
            let host = h.congestion_control.as_deref().unwrap_or("unknown");
            if pinned.is_empty() {
                format!("{host} (the host's default)")
            } else {
                format!(
                    "{} in the trials; the host's default is {host}",
                    pinned.join(", ")
                )
            }
        }),
        (
            "tool",
            format!(
                "transbench {}{}",
                h.tool_version,
                h.git_sha.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
            ),
        ),
        (
            "impairment backend",
            if backends.is_empty() {
                match results.remote_receiver {
                    Some(_) => "none".into(),
                    None => "none: loopback".into(),
                }
            } else {
                backends.join(", ")
            },
        ),
        (
            "trials",
            if invalid == 0 {
                format!("{count}, all valid")
            } else {
                format!("{count}, {invalid} INVALID (see the table below)")
            },
        ),
    ]);
    if let Some(line) = transbench_reports::table::schedule_note(attempts) {
        facts.push(("send schedule", line));
    }
    facts
}

/// A run against a receiver on another host: where, what host, and the
/// interfaces between, as the first trial recorded them.
fn remote_receiver_fact(results: &RunResults) -> Option<String> {
    let addr = results.remote_receiver.as_ref()?;
    let interface = |h: Option<&transbench_reports::HostInfo>| {
        h.and_then(|h| h.interface.as_ref()).map(|i| {
            format!(
                "{} ({}, mtu {})",
                i.name,
                i.driver.as_deref().unwrap_or("no driver"),
                i.mtu.map_or("unknown".into(), |m| m.to_string())
            )
        })
    };
    let trial = results.trials.iter().find(|t| t.receiver.host.is_some());
    Some(match trial {
        Some(t) => {
            let far = t.receiver.host.as_deref().expect("found with a host");
            format!(
                "{addr}, another host: {}; its {} from this host's {}",
                host_line(far),
                interface(Some(far)).unwrap_or_else(|| "interface unknown".into()),
                interface(t.sender_host.as_ref()).unwrap_or_else(|| "interface unknown".into())
            )
        }
        None => format!("{addr}, another host"),
    })
}

/// A host in the report's header: name, CPU, cores, kernel.
fn host_line(h: &transbench_reports::HostInfo) -> String {
    format!(
        "{} · {} · {} cores · kernel {}",
        h.hostname, h.cpu_model, h.cores, h.kernel
    )
}

fn title(results: &RunResults) -> String {
    match &results.scenario {
        Some(s) => format!("transbench report: {}", s.name),
        None => "transbench report".into(),
    }
}

fn markdown(
    results: &RunResults,
    facts: &[(&'static str, String)],
    charts: &[Chart],
    tables: &[Table],
    hdr: &[HdrFiles],
) -> String {
    let mut s = format!("## {}\n\n", title(results));
    for (k, v) in facts {
        s.push_str(&format!("- **{k}**: {v}\n"));
    }
    s.push('\n');
    for t in tables {
        s.push_str(&t.markdown());
    }
    if !charts.is_empty() {
        s.push_str("### Charts\n\n");
        for c in charts {
            s.push_str(&format!("![{}]({}.png)\n\n", c.title, c.slug));
        }
    }
    if !hdr.is_empty() {
        s.push_str("### Latency histograms (HdrHistogram)\n\n");
        for f in hdr {
            s.push_str(&format!(
                "- {}: [{}]({}), [{}]({})\n",
                f.cell, f.hgrm, f.hgrm, f.hlog, f.hlog
            ));
        }
    }
    s
}

/// The page fills a window up to 1360 px wide. Charts are vector drawings
/// scaled to the page's width (no taller than most of the window, kept to
/// the left); tables scroll inside their box rather than widen the page.
const STYLE: &str = "body{font-family:DejaVu Sans,Verdana,sans-serif;max-width:1360px;margin:1.5em auto;padding:0 20px;color:#222}\
.table{overflow-x:auto;margin:0.5em 0 1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}.num{text-align:right}th{background:#f0f0f0}\
dl{display:grid;grid-template-columns:max-content minmax(0,auto);gap:2px 1em}dd{margin:0;overflow-wrap:anywhere}\
dt{font-weight:bold}.bad{color:#c00;font-weight:bold}figure{margin:2em 0}figcaption{color:#444;font-size:14px}\
svg{display:block;width:100%;height:auto;max-height:90vh}.note{color:#555;font-size:14px}";

fn html(
    results: &RunResults,
    facts: &[(&'static str, String)],
    charts: &[Chart],
    svgs: &[String],
    tables: &[Table],
    hdr: &[HdrFiles],
) -> String {
    let title = title(results);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<dl>\n",
        escape(&title),
        escape(&title)
    );
    for (k, v) in facts {
        let class = if v.contains("INVALID") {
            " class=\"bad\""
        } else {
            ""
        };
        s.push_str(&format!("<dt>{k}</dt><dd{class}>{}</dd>\n", escape(v)));
    }
    s.push_str("</dl>\n");
    for t in tables {
        s.push_str(&t.html());
    }
    if !charts.is_empty() {
        s.push_str("<h2>Charts</h2>\n<ol>\n");
        for c in charts {
            s.push_str(&format!(
                "<li><a href=\"#{}\">{}</a></li>\n",
                c.slug,
                escape(&c.title)
            ));
        }
        s.push_str("</ol>\n");
    }
    for (c, svg) in charts.iter().zip(svgs) {
        s.push_str(&format!(
            "<figure id=\"{slug}\">\n{}\n<figcaption>{} <a href=\"{slug}.png\">PNG</a> · <a href=\"{slug}.svg\">SVG</a></figcaption>\n</figure>\n",
            svg.trim_start_matches(|c| c != '<')
                .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                .replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"xMinYMin meet\" ", escape(&c.title)), 1),
            escape(&c.caption),
            slug = c.slug,
        ));
    }
    if !hdr.is_empty() {
        s.push_str("<h2>Latency histograms</h2>\n<p class=\"note\">HdrHistogram files per cell: <code>.hgrm</code>, the percentile distribution of all its trials (ms), as HdrHistogram's plotters read it; <code>.hlog</code>, an interval log with one interval per trial (V2, deflate).</p>\n<ul>\n");
        for f in hdr {
            s.push_str(&format!(
                "<li>{}: <a href=\"{}\">.hgrm</a> · <a href=\"{}\">.hlog</a></li>\n",
                escape(&f.cell),
                f.hgrm,
                f.hlog
            ));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}
