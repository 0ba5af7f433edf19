//! The report's charts, built from a run's results: each only where the
//! run has its data.

use base64::Engine;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use transbench_analysis::recovery::theory::{
    recovery_curve, GiveUp, TimerModel, LINUX_TCP_RETRIES2, QUINN_DEFAULT_IDLE_TIMEOUT_NS,
};
use transbench_reports::cell::{params_key, schedule_label};
use transbench_reports::schema::{Detector, SettingOutcome};
use transbench_reports::stats::median;
use transbench_reports::{
    new_histogram, FlowMetrics, HeartbeatMetrics, LatencyKind, RunResults, ScheduleTimeline, TimelineBin,
    TrialResult,
};
use transbench_wire::{BulkDirection, Transport, Workload};

use crate::cells::{cells, slug, transport_color, CellTrials};
use crate::chart::{Axis, Bar, BoxStat, Chart, HeatCell, Mark, Panel, Scale, Series, Shape};

const MS: f64 = 1e6;

/// Every chart's file name starts with its kind.
pub const KINDS: [&str; 14] = [
    "latency-vs-loss-",
    "spectrum-",
    "ontime-",
    "goodput-vs-p95-",
    "hol-raster-",
    "hol-fanout",
    "over-time-",
    "ttfb-",
    "flows-over-time-",
    "under-load-",
    "goodput-vs-loss-",
    "detector-trade-off",
    "recovery-vs-partition-",
    "schedule-timeline-",
];

/// Every chart the results support, in the report's order.
pub fn charts(results: &RunResults) -> Vec<Chart> {
    let cells = cells(results);
    let mut out = Vec::new();
    // Bulk times no messages: its charts are its own, below.
    for workload in workloads(&cells).into_iter().filter(|w| *w != Workload::Bulk) {
        let of: Vec<&CellTrials> = cells.iter().filter(|c| c.workload == workload).collect();
        // One loss axis per path: cells that differ in delay or rate as
        // well as loss would show the delay as an effect of loss.
        let mut paths: Vec<&str> = of.iter().map(|c| c.lossless.as_str()).collect();
        paths.sort();
        paths.dedup();
        for path in &paths {
            let on: Vec<&CellTrials> = of.iter().copied().filter(|c| c.lossless == *path).collect();
            let tag = (paths.len() > 1).then_some(*path);
            out.extend(latency_vs_loss(workload, tag, &on));
        }
        out.extend(spectrum(workload, &of));
        // Heartbeats are few and small: no deadline or goodput to speak of.
        if !workload.is_churn() && workload != Workload::Heartbeat {
            out.extend(ontime(workload, &of));
            out.extend(goodput_vs_p95(workload, &of));
        }
    }
    let multistream: Vec<&CellTrials> = cells
        .iter()
        .filter(|c| c.workload == Workload::Multistream)
        .collect();
    out.extend(hol_rasters(&multistream));
    out.extend(hol_fanout(&multistream));
    for c in cells.iter().filter(|c| c.workload.is_churn()) {
        out.extend(churn_over_time(c));
    }
    for workload in workloads(&cells).into_iter().filter(|w| w.is_churn()) {
        let of: Vec<&CellTrials> = cells.iter().filter(|c| c.workload == workload).collect();
        out.extend(ttfb(workload, &of));
    }
    let bulk: Vec<&CellTrials> = cells.iter().filter(|c| c.workload == Workload::Bulk).collect();
    // Loss is the forward profile's: flows that ran down, or both ways, met another.
    let up: Vec<&CellTrials> = bulk
        .iter()
        .copied()
        .filter(|c| {
            c.trials
                .iter()
                .all(|t| t.bulk.as_ref().is_some_and(|b| b.direction == BulkDirection::Up))
        })
        .collect();
    let mut paths: Vec<&str> = up.iter().map(|c| c.lossless.as_str()).collect();
    paths.sort();
    paths.dedup();
    for path in &paths {
        let on: Vec<&CellTrials> = up.iter().copied().filter(|c| c.lossless == *path).collect();
        out.extend(goodput_vs_loss(path, &on));
    }
    for c in &bulk {
        out.extend(flows_over_time(c));
    }
    for c in cells.iter().filter(|c| c.workload == Workload::Load) {
        out.extend(under_load(c));
    }
    let heartbeat: Vec<&CellTrials> = cells
        .iter()
        .filter(|c| c.workload == Workload::Heartbeat)
        .collect();
    out.extend(detector_trade_off(&heartbeat));
    out.extend(recovery_charts(results));
    out.extend(schedule_timelines(results));
    out
}

fn workloads(cells: &[CellTrials]) -> Vec<Workload> {
    let mut w: Vec<Workload> = Vec::new();
    for c in cells {
        if !w.contains(&c.workload) {
            w.push(c.workload);
        }
    }
    w
}

fn transports(cells: &[&CellTrials]) -> Vec<Transport> {
    let mut t: Vec<Transport> = cells.iter().map(|c| c.transport).collect();
    t.sort_by_key(|t| transport_color(*t));
    t.dedup();
    t
}

/// Profiles in order of loss, then name.
fn profiles(cells: &[&CellTrials]) -> Vec<(String, Option<f64>)> {
    let mut p: Vec<(String, Option<f64>)> = Vec::new();
    for c in cells {
        if !p.iter().any(|(name, _)| *name == c.profile) {
            p.push((c.profile.clone(), c.loss_pct));
        }
    }
    p.sort_by(|a, b| {
        a.1.unwrap_or(f64::MAX)
            .total_cmp(&b.1.unwrap_or(f64::MAX))
            .then_with(|| a.0.cmp(&b.0))
    });
    p
}

/// "Profiles: ...; backend: ...; N trials (k per cell)."
fn caption(lead: &str, cells: &[&CellTrials]) -> String {
    let mut profiles: Vec<&str> = cells.iter().map(|c| c.profile.as_str()).collect();
    profiles.dedup();
    profiles.sort();
    profiles.dedup();
    let mut backends: Vec<&str> = cells.iter().filter_map(|c| c.backend.as_deref()).collect();
    backends.sort();
    backends.dedup();
    let backend = if backends.is_empty() {
        "none (loopback)".to_string()
    } else {
        backends.join(", ")
    };
    let trials: usize = cells.iter().map(|c| c.trials.len()).sum();
    let per: Vec<usize> = cells.iter().map(|c| c.trials.len()).collect();
    let (lo, hi) = (
        per.iter().min().copied().unwrap_or(0),
        per.iter().max().copied().unwrap_or(0),
    );
    let per = if lo == hi {
        format!("{lo}")
    } else {
        format!("{lo}-{hi}")
    };
    format!(
        "{lead} {}: {}. Impairment backend: {backend}. {}, {per} per cell.",
        if profiles.len() == 1 {
            "Profile"
        } else {
            "Profiles"
        },
        profiles.join("; "),
        transbench_reports::counted(trials as u64, "trial")
    )
}

fn latency_word(cells: &[&CellTrials]) -> &'static str {
    if cells.first().is_some_and(|c| c.workload.is_churn()) {
        return "transaction time (completed connections)";
    }
    match cells
        .first()
        .and_then(|c| c.trials.first())
        .map(|t| t.latency_kind)
    {
        Some(LatencyKind::Rtt) => "round-trip latency",
        _ => "one-way latency",
    }
}

fn loss_axis(cells: &[&CellTrials]) -> &'static str {
    match cells
        .first()
        .and_then(|c| c.trials.first())
        .map(|t| t.latency_kind)
    {
        Some(LatencyKind::Rtt) => "configured loss, both ways added (%)",
        _ => "configured loss (%)",
    }
}

/// Log where the values span more than a decade.
fn scale_for(values: impl Iterator<Item = f64>) -> Scale {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi > 0.0 && hi / lo > 10.0 {
        Scale::Log
    } else {
        Scale::Linear
    }
}

fn lat_ms(t: &TrialResult, pick: fn(&TrialResult) -> u64) -> f64 {
    pick(t) as f64 / MS
}

/// Chart 1: Latency percentiles against loss rate: a line per transport through
/// the trials' median, a band from the lowest to the highest trial.
fn latency_vs_loss(workload: Workload, path: Option<&str>, cells: &[&CellTrials]) -> Option<Chart> {
    let mut losses: Vec<f64> = cells.iter().filter_map(|c| c.loss_pct).collect();
    losses.sort_by(f64::total_cmp);
    losses.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if losses.len() < 2 {
        return None;
    }
    type Pick = fn(&TrialResult) -> u64;
    let pcts: [(&str, Pick); 3] = [
        ("p50", |t| t.lat.p50),
        ("p99", |t| t.lat.p99),
        ("p99.9", |t| t.lat.p999),
    ];
    let all: Vec<f64> = cells
        .iter()
        .flat_map(|c| &c.trials)
        .flat_map(|t| pcts.iter().map(|(_, f)| lat_ms(t, *f)))
        .collect();
    let y_scale = scale_for(all.iter().copied());
    let panels = pcts
        .iter()
        .map(|(name, pick)| {
            let mut series = Vec::new();
            for t in transports(cells) {
                let mut points = Vec::new();
                for &loss in &losses {
                    let v: Vec<f64> = cells
                        .iter()
                        .filter(|c| c.transport == t && c.loss_pct.is_some_and(|l| (l - loss).abs() < 1e-9))
                        .flat_map(|c| &c.trials)
                        .filter(|t| t.lat.count > 0)
                        .map(|t| lat_ms(t, *pick))
                        .collect();
                    if v.is_empty() {
                        continue;
                    }
                    let (lo, hi) = (
                        v.iter().copied().fold(f64::INFINITY, f64::min),
                        v.iter().copied().fold(0.0, f64::max),
                    );
                    points.push((loss, lo, median(&v), hi));
                }
                if points.is_empty() {
                    continue;
                }
                series.push(Series {
                    label: String::new(),
                    color: transport_color(t),
                    mark: Mark::Band(points.iter().map(|p| (p.0, p.1, p.3)).collect()),
                });
                series.push(Series {
                    label: t.to_string(),
                    color: transport_color(t),
                    mark: Mark::Line(points.iter().map(|p| (p.0, p.2)).collect()),
                });
            }
            Panel {
                title: name.to_string(),
                x: Axis::new(loss_axis(cells), Scale::Linear).including(&[0.0]),
                y: Axis::new(format!("{name} latency (ms)"), y_scale),
                series,
            }
        })
        .collect();
    Some(Chart {
        slug: match path {
            Some(p) => format!("latency-vs-loss-{}-{}", slug(workload.name()), slug(p)),
            None => format!("latency-vs-loss-{}", slug(workload.name())),
        },
        title: format!(
            "{workload}: {} percentiles against packet loss, {}",
            latency_word(cells),
            cells.first().map_or("", |c| c.lossless.as_str())
        ),
        caption: caption(
            "Lines: the median over a cell's trials; bands: lowest to highest trial. A lost message counts at the loss timeout.",
            cells,
        ),
        panels,
        columns: 3,
    })
}

/// The latency of several cells' trials, their histograms added.
fn merged(of: &[&CellTrials]) -> Histogram<u64> {
    let mut h = new_histogram();
    for c in of {
        // Auto-resizing, so adding never runs out of range.
        let _ = h.add(c.merged_lat());
    }
    h
}

/// A panel per profile, and in each a line per transport drawn from that
/// profile's cells of it (none where `line` gives no points).
fn line_per_transport(
    cells: &[&CellTrials],
    x: impl Fn() -> Axis,
    y: impl Fn() -> Axis,
    line: impl Fn(&[&CellTrials]) -> Vec<(f64, f64)>,
) -> Vec<Panel> {
    let mut panels = Vec::new();
    for (profile, _) in profiles(cells) {
        let series: Vec<Series> = transports(cells)
            .into_iter()
            .filter_map(|t| {
                let of: Vec<&CellTrials> = cells
                    .iter()
                    .copied()
                    .filter(|c| c.transport == t && c.profile == profile)
                    .collect();
                let points = line(&of);
                (!points.is_empty()).then(|| Series {
                    label: t.to_string(),
                    color: transport_color(t),
                    mark: Mark::Line(points),
                })
            })
            .collect();
        if !series.is_empty() {
            panels.push(Panel {
                title: profile,
                x: x(),
                y: y(),
                series,
            });
        }
    }
    panels
}

/// The latency at each quantile, from 0 to as many nines as the samples
/// support.
fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let nines = (h.len() as f64).log10().floor().clamp(1.0, 6.0);
    let steps = (nines * 20.0) as u32;
    (0..=steps)
        .map(|i| {
            let k = i as f64 / 20.0;
            let q = 1.0 - 10f64.powf(-k);
            (q, h.value_at_quantile(q) as f64 / MS)
        })
        .collect()
}

/// Chart 2: The whole distribution on a "nines" axis, a panel per profile.
fn spectrum(workload: Workload, cells: &[&CellTrials]) -> Option<Chart> {
    let mut panels = line_per_transport(
        cells,
        || Axis::new("percentile", Scale::Nines),
        || Axis::new("latency (ms)", Scale::Linear),
        |of| spectrum_points(&merged(of)),
    );
    if panels.is_empty() {
        return None;
    }
    let all = panels.iter().flat_map(|p| &p.series).flat_map(|s| match &s.mark {
        Mark::Line(points) => points.iter().map(|p| p.1).collect(),
        _ => Vec::new(),
    });
    let y = scale_for(all);
    for p in &mut panels {
        p.y.scale = y;
    }
    Some(Chart {
        slug: format!("spectrum-{}", slug(workload.name())),
        title: format!("{workload}: {} at every percentile", latency_word(cells)),
        caption: caption(
            if cells.first().is_some_and(|c| c.workload.is_churn()) {
                "Each line: every completed transaction of a cell, from its intended start to the whole response; failed connections are not in it (see the Connections table)."
            } else {
                "Each line: all of a cell's messages, its trials' histograms added; drawn to as many nines as the messages support. A lost message counts at the loss timeout."
            },
            cells,
        ),
        columns: 2,
        panels,
    })
}

/// Chart 3: The share of messages delivered within a deadline, lost ones
/// counting as late.
fn ontime(workload: Workload, cells: &[&CellTrials]) -> Option<Chart> {
    // Lost messages sit in `lat` at the loss timeout: the deadlines stop
    // at the latest message that arrived.
    let mut lo = f64::INFINITY;
    let mut hi = 0.0f64;
    for c in cells {
        let h = c.merged_lat();
        let arrived = delivered(c);
        if !h.is_empty() && arrived > 0 {
            lo = lo.min(h.min().max(1) as f64);
            hi = hi.max(h.value_at_quantile(arrived as f64 / h.len() as f64) as f64);
        }
    }
    if hi == 0.0 {
        return None;
    }
    let (lo, hi) = ((lo * 0.8).log10(), (hi * 1.2).log10());
    let deadlines: Vec<f64> = (0..=60)
        .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / 60.0))
        .collect();
    let panels = line_per_transport(
        cells,
        || Axis::new("deadline (ms)", Scale::Log),
        || Axis::new("on time (share of messages sent)", Scale::Linear).including(&[0.0, 1.0]),
        |of| {
            let sent: u64 = of.iter().flat_map(|c| &c.trials).map(|t| t.counters.sent).sum();
            if sent == 0 {
                return Vec::new();
            }
            let h = merged(of);
            let arrived: u64 = of.iter().map(|c| delivered(c)).sum();
            deadlines
                .iter()
                .map(|&d| {
                    let on_time = h.count_between(0, d as u64).min(arrived);
                    (d / MS, (on_time as f64 / sent as f64).min(1.0))
                })
                .collect()
        },
    );
    (!panels.is_empty()).then(|| Chart {
        slug: format!("ontime-{}", slug(workload.name())),
        title: format!("{workload}: share of messages on time, by deadline"),
        caption: caption(
            "A message is on time if its latency is within the deadline; lost messages never are. Trials of a cell pooled.",
            cells,
        ),
        columns: 2,
        panels,
    })
}

/// Messages of a cell that arrived: its latencies less the lost ones
/// recorded at the loss timeout.
fn delivered(c: &CellTrials) -> u64 {
    c.trials
        .iter()
        .map(|t| t.lat.count.saturating_sub(t.counters.lost))
        .sum()
}

/// Chart 5: Goodput against p95 latency, one point per trial.
fn goodput_vs_p95(workload: Workload, cells: &[&CellTrials]) -> Option<Chart> {
    let profiles = profiles(cells);
    let mut series = Vec::new();
    let mut xs = Vec::new();
    let profile_of = |c: &CellTrials| profiles.iter().position(|(p, _)| *p == c.profile).unwrap_or(0);
    // By transport, then profile: the legend's rows are transports and
    // its columns profiles where they fit.
    let mut cells = cells.to_vec();
    cells.sort_by_key(|c| (transport_color(c.transport), profile_of(c)));
    for c in &cells {
        let shape = profile_of(c);
        let points: Vec<(f64, f64)> = c
            .trials
            .iter()
            .filter_map(|t| {
                let h = t.lat.histogram().ok().filter(|h| !h.is_empty())?;
                Some((
                    h.value_at_quantile(0.95) as f64 / MS,
                    t.goodput_bps().unwrap_or(0.0) / 1e6,
                ))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        xs.extend(points.iter().map(|p| p.0));
        let label = if profiles.len() > 1 {
            format!("{}, {}", c.transport, c.profile)
        } else {
            c.transport.to_string()
        };
        series.push(Series {
            label,
            color: transport_color(c.transport),
            mark: Mark::Points(points, Shape::ALL[shape % Shape::ALL.len()]),
        });
    }
    if series.is_empty() {
        return None;
    }
    Some(Chart {
        slug: format!("goodput-vs-p95-{}", slug(workload.name())),
        title: format!("{workload}: goodput against p95 latency, one point per trial"),
        caption: caption(
            "Goodput: payload bytes delivered per second of the measured interval. Colour: transport; shape: profile.",
            &cells,
        ),
        panels: vec![Panel {
            title: String::new(),
            x: Axis::new("p95 latency (ms)", scale_for(xs.into_iter())),
            y: Axis::new("goodput (Mbit/s)", Scale::Linear).including(&[0.0]),
            series,
        }],
        columns: 1,
    })
}

/// A multistream trial's messages: (stream, send time µs, latency µs or
/// lost), from `hol.timeline`.
pub fn timeline(b64: &str) -> Option<Vec<(u32, u32, Option<u32>)>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some(
        bytes
            .chunks_exact(12)
            .map(|r| {
                let lat = word(&r[8..]);
                (word(r), word(&r[4..]), (lat != u32::MAX).then_some(lat))
            })
            .collect(),
    )
}

const RASTER_BINS: usize = 160;

/// Chart 4a: Streams against time, coloured by how late each message was over
/// the path's no-loss latency: HOL stalls show as vertical stripes across
/// streams, per-stream loss as single cells. One chart per lossy profile,
/// the first trial of each transport.
fn hol_rasters(cells: &[&CellTrials]) -> Vec<Chart> {
    let mut out = Vec::new();
    let mut excess_all = Vec::new();
    for (profile, loss) in profiles(cells) {
        if loss.is_some_and(|l| l == 0.0) {
            continue;
        }
        let mut panels = Vec::new();
        let mut used = Vec::new();
        for t in transports(cells) {
            let Some(c) = cells.iter().find(|c| c.transport == t && c.profile == profile) else {
                continue;
            };
            let Some((trial, hol, msgs)) = c.trials.iter().find_map(|tr| {
                let hol = tr.hol.as_ref()?;
                Some((tr, hol, timeline(hol.timeline.as_deref()?)?))
            }) else {
                continue;
            };
            if msgs.is_empty() {
                continue;
            }
            let end = msgs.iter().map(|m| m.1).max().unwrap_or(0) as f64 + 1.0;
            let bin_us = end / RASTER_BINS as f64;
            let base_us = hol.base_ns as f64 / 1e3;
            // (stream, bin) -> worst excess; lost beats any delay.
            let mut grid: BTreeMap<(u32, usize), Option<f64>> = BTreeMap::new();
            for &(stream, at, lat) in &msgs {
                let bin = ((at as f64 / bin_us) as usize).min(RASTER_BINS - 1);
                let excess = lat.map(|l| (l as f64 - base_us).max(0.0) / 1e3);
                if let Some(x) = excess {
                    excess_all.push(x);
                }
                let cell = grid.entry((stream, bin)).or_insert(Some(0.0));
                *cell = match (*cell, excess) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
            }
            let cells = grid
                .into_iter()
                .map(|((stream, bin), value)| HeatCell {
                    x0: bin as f64 * bin_us / 1e6,
                    x1: (bin + 1) as f64 * bin_us / 1e6,
                    y0: stream as f64 - 0.5,
                    y1: stream as f64 + 0.5,
                    value,
                })
                .collect();
            used.push(*c);
            panels.push(Panel {
                title: format!("{t} (trial {})", trial.id),
                x: Axis::new("time since the first message (s)", Scale::Linear),
                y: Axis::categories("stream", (0..hol.streams).map(|s| s.to_string()).collect()),
                series: vec![Series {
                    label: String::new(),
                    color: transport_color(t),
                    mark: Mark::Heat {
                        cells,
                        max: 0.0,
                        label: "excess delay (ms)".into(),
                    },
                }],
            });
        }
        if panels.is_empty() {
            continue;
        }
        out.push(Chart {
            slug: format!("hol-raster-{}", slug(&profile)),
            title: format!("Head-of-line blocking under {profile}: each stream's messages over time"),
            caption: caption(
                "Colour: the worst excess delay (latency over the no-loss p1) of a stream's messages in each time slice, on one scale for every raster of the report; red: a message lost. A stall on one ordered connection shows as a stripe across all streams. Each panel: the first trial of its cell.",
                &used,
            ),
            columns: 2,
            panels,
        });
    }
    // One colour scale for every raster, topping out at the 99th
    // percentile of excess so one extreme stall does not wash out the rest.
    excess_all.sort_by(f64::total_cmp);
    let top = excess_all
        .get(((excess_all.len() as f64 * 0.99) as usize).min(excess_all.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0)
        .max(1.0);
    for s in out
        .iter_mut()
        .flat_map(|c| &mut c.panels)
        .flat_map(|p| &mut p.series)
    {
        if let Mark::Heat { max, .. } = &mut s.mark {
            *max = top;
        }
    }
    out
}

/// Quartiles of a counted distribution (value -> count).
fn box_of(counts: &BTreeMap<u32, u64>, x: f64, width: f64) -> Option<BoxStat> {
    let n: u64 = counts.values().sum();
    if n == 0 {
        return None;
    }
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (v, c) in counts {
            seen += c;
            if seen >= rank {
                return *v as f64;
            }
        }
        0.0
    };
    Some(BoxStat {
        x,
        width,
        min: *counts.keys().next()? as f64,
        q1: at(0.25),
        median: at(0.5),
        q3: at(0.75),
        max: *counts.keys().next_back()? as f64,
    })
}

/// Chart 4b: How many streams each stall held up, per transport and loss rate.
fn hol_fanout(cells: &[&CellTrials]) -> Option<Chart> {
    let transports = transports(cells);
    let lossy: Vec<(String, Option<f64>)> = profiles(cells)
        .into_iter()
        .filter(|(_, l)| *l != Some(0.0))
        .collect();
    if lossy.is_empty() {
        return None;
    }
    let width = 0.8 / lossy.len() as f64;
    let mut series = Vec::new();
    for (k, (profile, loss)) in lossy.iter().enumerate() {
        let boxes: Vec<BoxStat> = transports
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let mut counts = BTreeMap::new();
                for c in cells
                    .iter()
                    .filter(|c| c.transport == *t && c.profile == *profile)
                {
                    for hol in c.trials.iter().filter_map(|t| t.hol.as_ref()) {
                        for (v, n) in &hol.hol_fanout.counts {
                            *counts.entry(*v).or_insert(0) += n;
                        }
                    }
                }
                let x = i as f64 - 0.4 + width * (k as f64 + 0.5);
                box_of(&counts, x, width * 0.8)
            })
            .collect();
        if boxes.is_empty() {
            continue;
        }
        series.push(Series {
            label: match loss {
                Some(l) => format!("loss {}%", crate::draw::number(*l)),
                None => profile.clone(),
            },
            color: (k + 1) % 8,
            mark: Mark::Boxes(boxes),
        });
    }
    if series.is_empty() {
        return None;
    }
    let streams = cells
        .iter()
        .flat_map(|c| &c.trials)
        .filter_map(|t| t.hol.as_ref())
        .map(|h| h.streams)
        .max()
        .unwrap_or(1);
    let used: Vec<&CellTrials> = cells
        .iter()
        .copied()
        .filter(|c| c.loss_pct != Some(0.0))
        .collect();
    Some(Chart {
        slug: "hol-fanout".into(),
        title: "Head-of-line blocking: streams held up per stall episode".into(),
        caption: caption(
            &format!(
                "Boxes: quartiles and median of every stall episode's count of late streams, over all trials; whiskers: fewest to most. {streams} streams in all: one ordered connection stalls them all at once."
            ),
            &used,
        ),
        panels: vec![Panel {
            title: String::new(),
            x: Axis::categories("transport", transports.iter().map(|t| t.to_string()).collect()),
            y: Axis::new("late streams per episode", Scale::Linear).including(&[0.0, streams as f64]),
            series,
        }],
        columns: 1,
    })
}

/// Chart 6: A churn trial over time: connection rate, TIME_WAIT sockets and
/// connect p99, with the first EADDRNOTAVAIL marked. The cell's first
/// trial.
fn churn_over_time(c: &CellTrials) -> Option<Chart> {
    let (trial, churn) = c.trials.iter().find_map(|t| Some((t, t.churn.as_ref()?)))?;
    let samples = &churn.time_wait.samples;
    if samples.len() < 2 {
        return None;
    }
    let s = |ns: u64| ns as f64 / 1e9;
    let mut completed = Vec::new();
    let mut failed = Vec::new();
    let nominal = s(churn.time_wait.interval_ns);
    for w in samples.windows(2) {
        let dt = s(w[1].t_ns.saturating_sub(w[0].t_ns));
        // The last sample can follow the one before by a millisecond: a
        // rate over it says nothing.
        if dt < nominal / 2.0 {
            continue;
        }
        completed.push((
            s(w[1].t_ns),
            w[1].completed.saturating_sub(w[0].completed) as f64 / dt,
        ));
        failed.push((s(w[1].t_ns), w[1].failed.saturating_sub(w[0].failed) as f64 / dt));
    }
    let rule = churn.first_eaddrnotavail_ns.map(|at| Series {
        label: String::new(),
        color: 1,
        mark: Mark::Rule {
            x: s(at),
            text: format!("first EADDRNOTAVAIL, {:.2} s", s(at)),
        },
    });
    let end = s(samples.last().map_or(0, |p| p.t_ns));
    let time = || Axis::new("time since the trial started (s)", Scale::Linear).including(&[0.0, end]);
    let mut rate = vec![Series {
        label: "completed/s".into(),
        color: 0,
        mark: Mark::Line(completed),
    }];
    if churn.failed > 0 || failed.iter().any(|f| f.1 > 0.0) {
        rate.push(Series {
            label: "failed/s".into(),
            color: 1,
            mark: Mark::Line(failed),
        });
    }
    let mut tw = vec![Series {
        label: "TIME_WAIT, sender's namespace".into(),
        color: 2,
        mark: Mark::Line(samples.iter().map(|p| (s(p.t_ns), p.sender as f64)).collect()),
    }];
    let receiver: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|p| Some((s(p.t_ns), p.receiver? as f64)))
        .collect();
    if !receiver.is_empty() {
        tw.push(Series {
            label: "TIME_WAIT, receiver's namespace".into(),
            color: 3,
            mark: Mark::Line(receiver),
        });
    }
    let p99: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|p| Some((s(p.t_ns), p.connect_p99_ns? as f64 / MS)))
        .collect();
    let mut connect = vec![Series {
        label: "connect p99 per 100 ms".into(),
        color: 4,
        mark: Mark::Line(p99.clone()),
    }];
    for panel in [&mut rate, &mut tw, &mut connect] {
        panel.extend(rule.clone());
    }
    let mut panels = vec![Panel {
        title: "connections per second".into(),
        x: time(),
        y: Axis::new("transactions/s", Scale::Linear).including(&[0.0]),
        series: rate,
    }];
    // QUIC has no TCP connection to leave in TIME_WAIT.
    if !c.transport.is_quic() {
        panels.push(Panel {
            title: "TIME_WAIT sockets".into(),
            x: time(),
            y: Axis::new("sockets", Scale::Linear).including(&[0.0]),
            series: tw,
        });
    }
    if !p99.is_empty() {
        panels.push(Panel {
            title: "connect time".into(),
            x: time(),
            y: Axis::new("connect p99 (ms)", scale_for(p99.iter().map(|p| p.1))),
            series: connect,
        });
    }
    let range = churn
        .port_range
        .as_ref()
        .map(|r| format!(" Ports {}-{} ({} set by {}).", r.lo, r.hi, r.ports, r.set_by))
        .unwrap_or_default();
    Some(Chart {
        slug: format!("over-time-{}", slug(&c.id)),
        title: format!(
            "{} {}: a new connection per transaction, offered {:.0}/s, closed by {}",
            c.workload, c.transport, churn.offered_rate, churn.close
        ),
        caption: caption(
            &format!(
                "Trial {}: {} completed, {} failed.{range} Sampled every {} ms.",
                trial.id,
                churn.completed,
                churn.failed,
                churn.time_wait.interval_ns / 1_000_000
            ),
            &[c],
        ),
        panels,
        columns: 1,
    })
}

/// A bulk cell's first trial over time: each flow's goodput per bin (and
/// the total, with the link's share after headers where there is one),
/// then what the congestion controller saw: its window and the RTT.
fn flows_over_time(c: &CellTrials) -> Option<Chart> {
    let (trial, bulk) = c.trials.iter().find_map(|t| Some((t, t.bulk.as_ref()?)))?;
    if bulk.series_bps.len() < 2 {
        return None;
    }
    let bin_s = bulk.bin_ns as f64 / 1e9;
    // A bin's goodput drawn at its end.
    let line = |series: &[f64]| goodput_line(series, bin_s, 0.0);
    let end = bulk.series_bps.len() as f64 * bin_s;
    let time = || Axis::new("time since the flows started (s)", Scale::Linear).including(&[0.0, end]);
    let window = |text: &str| Series {
        label: String::new(),
        color: 5,
        mark: Mark::Rule {
            x: f64::from(bulk.window[0]) * bin_s,
            text: text.into(),
        },
    };
    // The link's line first, so the flows are drawn over it.
    let mut goodput: Vec<Series> = bulk
        .expected
        .iter()
        .map(|e| Series {
            label: "the link less headers".into(),
            color: 7,
            mark: Mark::Line(vec![(0.0, e.goodput_bps / 1e6), (end, e.goodput_bps / 1e6)]),
        })
        .collect();
    goodput.extend(bulk.flows.iter().map(|f| Series {
        label: flow_label(f),
        color: f.flow as usize,
        mark: Mark::Line(line(&f.series_bps)),
    }));
    if bulk.flows.len() > 1 {
        goodput.push(Series {
            label: "all flows".into(),
            color: 6,
            mark: Mark::Line(line(&bulk.series_bps)),
        });
    }
    goodput.push(window("measured from here"));
    goodput.push(Series {
        label: String::new(),
        color: 5,
        mark: Mark::Rule {
            x: f64::from(bulk.window[1]) * bin_s,
            text: "to here".into(),
        },
    });
    let mut panels = vec![Panel {
        title: "goodput per 100 ms".into(),
        x: time(),
        y: Axis::new("goodput (Mbit/s)", Scale::Linear).including(&[0.0]),
        series: goodput,
    }];
    let s = |ns: u64| ns as f64 / 1e9;
    // Per connection: TCP's from TCP_INFO, QUIC's from quinn.
    let (cwnd, rtt): (Vec<Series>, Vec<Series>) = if bulk.quic.is_empty() {
        bulk.flows
            .iter()
            .filter(|f| !f.tcp_info.is_empty())
            .map(|f| {
                let color = f.flow as usize;
                let cwnd = f
                    .tcp_info
                    .iter()
                    .map(|i| (s(i.t_ns), f64::from(i.snd_cwnd) * f64::from(i.snd_mss) / 1e3))
                    .collect();
                let rtt = f
                    .tcp_info
                    .iter()
                    .map(|i| (s(i.t_ns), f64::from(i.rtt_us) / 1e3))
                    .collect();
                let label = flow_label(f);
                (
                    Series {
                        label: label.clone(),
                        color,
                        mark: Mark::Line(cwnd),
                    },
                    Series {
                        label,
                        color,
                        mark: Mark::Line(rtt),
                    },
                )
            })
            .unzip()
    } else {
        bulk.quic
            .iter()
            .map(|q| {
                // Apart from the flows' colours in the panel above.
                let color = 3 + q.connection as usize;
                let label = format!("connection {}", q.connection);
                (
                    Series {
                        label: label.clone(),
                        color,
                        mark: Mark::Line(
                            q.samples
                                .iter()
                                .map(|p| (s(p.t_ns), p.cwnd as f64 / 1e3))
                                .collect(),
                        ),
                    },
                    Series {
                        label,
                        color,
                        mark: Mark::Line(
                            q.samples
                                .iter()
                                .map(|p| (s(p.t_ns), p.rtt_ns as f64 / MS))
                                .collect(),
                        ),
                    },
                )
            })
            .unzip()
    };
    if !cwnd.is_empty() {
        let source = if bulk.quic.is_empty() { "TCP_INFO" } else { "quinn" };
        panels.push(Panel {
            title: format!("congestion window ({source})"),
            x: time(),
            y: Axis::new("cwnd (kB)", Scale::Linear).including(&[0.0]),
            series: cwnd,
        });
        panels.push(Panel {
            title: format!("smoothed RTT ({source})"),
            x: time(),
            y: Axis::new("RTT (ms)", Scale::Linear).including(&[0.0]),
            series: rtt,
        });
    }
    let cc = trial.params.congestion().unwrap_or("?");
    let fairness = bulk
        .jain
        .map(|j| format!(", Jain's index {j:.3}"))
        .unwrap_or_default();
    Some(Chart {
        slug: format!("flows-over-time-{}", slug(&c.id)),
        title: format!(
            "bulk {}: {} over {cc}, {:.1} Mbit/s in all",
            c.transport,
            transbench_reports::counted(bulk.flows.len() as u64, "flow"),
            bulk.goodput_bps / 1e6
        ),
        caption: caption(
            &format!(
                "Trial {}: what the receiver's application read{fairness}; window and RTT sampled every {} ms.",
                trial.id,
                bulk.bin_ns / 1_000_000
            ),
            &[c],
        ),
        panels,
        columns: 1,
    })
}

/// A flow's name in a legend; down flows say so.
fn flow_label(f: &FlowMetrics) -> String {
    match f.direction {
        BulkDirection::Down => format!("flow {} (down)", f.flow),
        _ => format!("flow {}", f.flow),
    }
}

/// The loss in the data direction of a bulk trial's path, percent.
fn data_loss_pct(t: &TrialResult) -> Option<f64> {
    crate::cells::loss_pct(t, false)
}

/// Goodput per bin as (seconds at the bin's end, Mbit/s), the first bin
/// starting `offset_s` in.
fn goodput_line(series: &[f64], bin_s: f64, offset_s: f64) -> Vec<(f64, f64)> {
    series
        .iter()
        .enumerate()
        .map(|(i, bps)| (offset_s + (i + 1) as f64 * bin_s, bps / 1e6))
        .collect()
}

/// Bulk goodput against loss on one path, per transport and congestion
/// controller, with what one Reno-like flow carries by Mathis and by
/// Padhye drawn beside it (MSS 1448 B, the probe's round trip, a 200 ms
/// minimum retransmission timeout as Linux has), capped at the link's
/// share where the path has a rate.
fn goodput_vs_loss(path: &str, cells: &[&CellTrials]) -> Option<Chart> {
    let mut losses: Vec<f64> = cells
        .iter()
        .flat_map(|c| &c.trials)
        .filter_map(|t| data_loss_pct(t))
        .collect();
    losses.sort_by(f64::total_cmp);
    losses.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if losses.len() < 2 {
        return None;
    }
    let cc = |t: &TrialResult| t.params.congestion().unwrap_or_default().to_string();
    // One line per transport and controller, through the medians.
    let mut lines: Vec<(Transport, String)> = cells
        .iter()
        .flat_map(|c| c.trials.iter().map(|t| (c.transport, cc(t))))
        .collect();
    lines.sort_by_key(|(t, cc)| (transport_color(*t), cc.clone()));
    lines.dedup();
    let controllers: Vec<String> = {
        let mut all: Vec<String> = lines.iter().map(|l| l.1.clone()).collect();
        all.sort();
        all.dedup();
        all
    };
    let mut series = Vec::new();
    let mut values = Vec::new();
    for (transport, controller) in &lines {
        let mut points = Vec::new();
        for &loss in &losses {
            let v: Vec<f64> = cells
                .iter()
                .filter(|c| c.transport == *transport)
                .flat_map(|c| &c.trials)
                .filter(|t| cc(t) == *controller && data_loss_pct(t).is_some_and(|l| (l - loss).abs() < 1e-9))
                .filter_map(|t| Some(t.bulk.as_ref()?.goodput_bps / 1e6))
                .filter(|g| *g > 0.0)
                .collect();
            if !v.is_empty() {
                points.push((loss, median(&v)));
            }
        }
        values.extend(points.iter().map(|p| p.1));
        let shape =
            Shape::ALL[controllers.iter().position(|c| c == controller).unwrap_or(0) % Shape::ALL.len()];
        series.push(Series {
            label: format!("{transport} {controller}"),
            color: transport_color(*transport),
            mark: Mark::Points(points.clone(), shape),
        });
        series.push(Series {
            label: String::new(),
            color: transport_color(*transport),
            mark: Mark::Line(points),
        });
    }
    // The path's round trip from its probe; the link's share, if it has a rate.
    let trials: Vec<&TrialResult> = cells.iter().flat_map(|c| c.trials.iter().copied()).collect();
    let rtt_s = trials.iter().find_map(|t| {
        let d = t.impairment.as_ref()?.delivered.as_ref()?;
        Some((d.forward.measured.delay_p50_ns + d.reverse.measured.delay_p50_ns) as f64 / 1e9)
    });
    let cap = trials
        .iter()
        .find_map(|t| Some(t.bulk.as_ref()?.expected.as_ref()?.goodput_bps / 1e6));
    let lossy: Vec<f64> = losses.iter().copied().filter(|l| *l > 0.0).collect();
    if let (Some(rtt_s), Some(&lo), Some(&hi)) = (rtt_s, lossy.first(), lossy.last()) {
        let (lo, hi) = (lo / 4.0, hi * 2.0);
        let xs: Vec<f64> = (0..=24)
            .map(|i| lo * (hi / lo).powf(f64::from(i) / 24.0))
            .collect();
        let rto_s = 0.2 + rtt_s;
        type Model = Box<dyn Fn(f64) -> f64>;
        let models: [(&str, Model); 2] = [
            (
                "Mathis",
                Box::new(move |p| transbench_analysis::bulk::mathis_bps(1448.0, rtt_s, p)),
            ),
            (
                "Padhye",
                Box::new(move |p| transbench_analysis::bulk::padhye_bps(1448.0, rtt_s, p, 2.0, rto_s)),
            ),
        ];
        for (k, (name, model)) in models.iter().enumerate() {
            let curve: Vec<(f64, f64)> = xs
                .iter()
                .map(|&pct| {
                    let bps = model(pct / 100.0) / 1e6;
                    (pct, cap.map_or(bps, |c| bps.min(c)))
                })
                .collect();
            values.extend(curve.iter().map(|p| p.1));
            series.push(Series {
                label: format!("{name}, one Reno flow"),
                color: 6 + k,
                mark: Mark::Line(curve),
            });
        }
    }
    if series.is_empty() || values.is_empty() {
        return None;
    }
    let rtt = rtt_s.map_or("no probe: no theory".to_string(), |r| {
        format!("round trip {:.1} ms", r * 1e3)
    });
    Some(Chart {
        slug: format!("goodput-vs-loss-{}", slug(path)),
        title: format!("bulk: goodput against packet loss, {path}"),
        caption: caption(
            &format!(
                "Points and lines: the median over a cell's trials, all flows. Theory for one flow: MSS 1448 B, \
                 {rtt}, Padhye with 2 segments an ACK and a timeout of 200 ms plus the round trip{}.",
                if cap.is_some() { ", both capped at the link's share" } else { "" }
            ),
            cells,
        ),
        panels: vec![Panel {
            title: "goodput".into(),
            x: Axis::new("configured loss, data direction (%)", Scale::Linear).including(&[0.0]),
            y: Axis::new("goodput (Mbit/s)", Scale::Log),
            series,
        }],
        columns: 1,
    })
}

/// A latency-under-load cell's first trial, as Flent draws RRUL: the
/// probe's round trips over time with the load's span marked, and under
/// it the flows' goodput on the same clock.
fn under_load(c: &CellTrials) -> Option<Chart> {
    let (trial, load) = c.trials.iter().find_map(|t| Some((t, t.load.as_ref()?)))?;
    let bulk = trial.bulk.as_ref()?;
    let s = |ns: u64| ns as f64 / 1e9;
    let end = load
        .phases
        .last()
        .map_or(s(load.load_to_ns), |p| s(p.to_ns))
        .max(s(load.load_to_ns));
    let time = || Axis::new("time since the probe started (s)", Scale::Linear).including(&[0.0, end]);
    let rules = || {
        [
            (load.load_from_ns, "load starts"),
            (load.load_to_ns, "load stops"),
        ]
        .map(|(at, text)| Series {
            label: String::new(),
            color: 5,
            mark: Mark::Rule {
                x: s(at),
                text: text.into(),
            },
        })
    };
    let rtts: Vec<(f64, f64)> = load
        .probe_samples
        .iter()
        .filter_map(|&(t, rtt)| Some((s(t), rtt? as f64 / MS)))
        .collect();
    if rtts.len() < 2 {
        return None;
    }
    let mut latency = vec![Series {
        label: format!("{} probe round trip", load.probe),
        color: 0,
        mark: Mark::Line(rtts),
    }];
    let mut floor = 0.0f64;
    if let (Some(drain), Some(before)) = (
        load.queue_drain_ns,
        load.phases.first().filter(|p| p.lat.count > 0),
    ) {
        // The idle round trip plus a full queue: the most the load can add.
        floor = (before.lat.p50 + drain) as f64 / MS;
        latency.push(Series {
            label: "idle p50 + a full queue".into(),
            color: 7,
            mark: Mark::Line(vec![(0.0, floor), (end, floor)]),
        });
    }
    latency.extend(rules());
    let offset = s(load.load_from_ns);
    let bin_s = bulk.bin_ns as f64 / 1e9;
    let shifted = |series: &[f64]| goodput_line(series, bin_s, offset);
    let mut goodput = vec![Series {
        label: "all flows".into(),
        color: 6,
        mark: Mark::Line(shifted(&bulk.series_bps)),
    }];
    if bulk.flows.len() > 1 {
        goodput.extend(bulk.flows.iter().map(|f| Series {
            label: flow_label(f),
            color: 1 + f.flow as usize,
            mark: Mark::Line(shifted(&f.series_bps)),
        }));
    }
    goodput.extend(rules());
    let cc = trial.params.congestion().unwrap_or("?");
    let added = load
        .added_p50_ns
        .map(|ns| format!(" The load added {:.1} ms to the probe's p50.", ns as f64 / MS))
        .unwrap_or_default();
    Some(Chart {
        slug: format!("under-load-{}", slug(&c.id)),
        title: format!(
            "latency under load: {} over {cc}, probed by {} at {}/s",
            c.transport, load.probe, load.probe_rate
        ),
        caption: caption(
            &format!(
                "Trial {}: {} of {} bulk.{added}",
                trial.id,
                transbench_reports::counted(bulk.flows.len() as u64, "flow"),
                c.transport
            ),
            &[c],
        ),
        panels: vec![
            Panel {
                title: "probe round trip".into(),
                x: time(),
                y: Axis::new("round trip (ms)", Scale::Linear).including(&[0.0, floor]),
                series: latency,
            },
            Panel {
                title: "goodput of the load per 100 ms".into(),
                x: time(),
                y: Axis::new("goodput (Mbit/s)", Scale::Linear).including(&[0.0]),
                series: goodput,
            },
        ],
        columns: 1,
    })
}

/// Chart 7: Time to first byte per setup mode and loss rate: bars at the
/// trials' median p50, whiskers to their median p99, crosses at what
/// theory expects (RTTs of the setup x the probe's RTT).
fn ttfb(workload: Workload, cells: &[&CellTrials]) -> Option<Chart> {
    let transports = transports(cells);
    let profiles = profiles(cells);
    let width = 0.8 / profiles.len() as f64;
    let mut series = Vec::new();
    let mut expected = Vec::new();
    let mut ys = Vec::new();
    for (k, (profile, loss)) in profiles.iter().enumerate() {
        let mut bars = Vec::new();
        for (i, t) in transports.iter().enumerate() {
            let churn: Vec<_> = cells
                .iter()
                .filter(|c| c.transport == *t && c.profile == *profile)
                .flat_map(|c| &c.trials)
                .filter_map(|t| t.churn.as_ref())
                .filter(|m| m.ttfb.count > 0)
                .collect();
            if churn.is_empty() {
                continue;
            }
            let x = i as f64 - 0.4 + width * (k as f64 + 0.5);
            let p50 = median(&churn.iter().map(|m| m.ttfb.p50 as f64 / MS).collect::<Vec<_>>());
            let p99 = median(&churn.iter().map(|m| m.ttfb.p99 as f64 / MS).collect::<Vec<_>>());
            ys.extend([p50, p99]);
            bars.push(Bar {
                x,
                width: width * 0.8,
                value: p50,
                whisker: Some(p99),
            });
            if let Some(e) = churn[0].expectation.ttfb_ns.filter(|&e| e > 0) {
                expected.push((x, e as f64 / MS));
            }
        }
        if bars.is_empty() {
            continue;
        }
        series.push(Series {
            label: match loss {
                Some(l) if profiles.len() > 1 => format!("{profile} (loss {}%)", crate::draw::number(*l)),
                _ => profile.clone(),
            },
            color: (k + 1) % 8,
            mark: Mark::Bars(bars),
        });
    }
    if series.is_empty() {
        return None;
    }
    if !expected.is_empty() {
        series.push(Series {
            label: "expected: setup RTTs x probe RTT".into(),
            color: 6,
            mark: Mark::Points(expected, Shape::Cross),
        });
    }
    let scale = scale_for(ys.into_iter());
    Some(Chart {
        slug: format!("ttfb-{}", slug(workload.name())),
        title: format!("{workload}: time to first byte, by setup"),
        caption: caption(
            "Bars: the median over trials of TTFB p50 (from connect() to the first response byte); whiskers: the median of TTFB p99. Crosses: what theory expects, the setup's round trips (TCP 2, TCP with TLS 1.3 3, QUIC 2, QUIC 0-RTT 1) times the probe's RTT.",
            cells,
        ),
        panels: vec![Panel {
            title: String::new(),
            x: Axis::categories("setup", transports.iter().map(|t| t.to_string()).collect()),
            y: Axis::new("time to first byte (ms)", scale).including(if scale == Scale::Linear { &[0.0] } else { &[] }),
            series,
        }],
        columns: 1,
    })
}

/// Phases a timeline shades at most: a short flap over a long window
/// would be more stripes than pixels.
const MAX_SHADED_PHASES: usize = 2_000;

/// The rr trials that kept a timeline through their impairment schedule,
/// a chart per schedule and parameters (rate, size, retries).
fn schedule_timelines(results: &RunResults) -> Vec<Chart> {
    let mut groups: Vec<(String, String, Vec<&TrialResult>)> = Vec::new();
    for t in results.trials.iter().filter(|t| t.is_final() && !t.baseline) {
        let Some(record) = t.impairment.as_ref().and_then(|i| i.schedule.as_ref()) else {
            continue;
        };
        if t.schedule_timeline.is_none() {
            continue;
        }
        let (schedule, params) = (schedule_label(record), params_key(t));
        match groups.iter_mut().find(|g| g.0 == schedule && g.1 == params) {
            Some(g) => g.2.push(t),
            None => groups.push((schedule, params, vec![t])),
        }
    }
    groups
        .iter()
        .filter_map(|(schedule, params, trials)| schedule_timeline(schedule, params, trials))
        .collect()
}

/// A timeline's bins as runs of (the bin's middle in s, `value` of the
/// bin and its length in s), broken where `value` has none. The last bin
/// ends with the window, `window_ns`.
fn bin_runs(
    timeline: &ScheduleTimeline,
    window_ns: u64,
    value: impl Fn(&TimelineBin, f64) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut broken = true;
    for (i, bin) in timeline.bins.iter().enumerate() {
        let from = i as u64 * timeline.bin_ns;
        let to = (from + timeline.bin_ns).min(window_ns);
        if to <= from {
            break;
        }
        let Some(v) = value(bin, (to - from) as f64 / 1e9) else {
            broken = true;
            continue;
        };
        let point = ((from + to) as f64 / 2e9, v);
        match runs.last_mut() {
            Some(run) if !broken => run.push(point),
            _ => runs.push(vec![point]),
        }
        broken = false;
    }
    runs
}

/// One schedule's trials over schedule time, as Flent draws a test: each
/// transport's round trip per bin above (p50 thick, max thin, on a log
/// scale), the answers it delivered per second below, with the offered
/// rate; the schedule's phases shaded behind both (dark where the path
/// dropped everything, light where its profile was another than the
/// first). Each transport's first trial.
fn schedule_timeline(schedule: &str, params: &str, trials: &[&TrialResult]) -> Option<Chart> {
    let mut firsts: Vec<(&TrialResult, &ScheduleTimeline)> = Vec::new();
    for t in trials {
        if !firsts.iter().any(|(f, _)| f.transport == t.transport) {
            firsts.push((t, t.schedule_timeline.as_ref()?));
        }
    }
    firsts.sort_by_key(|(t, _)| transport_color(t.transport));
    let (first, first_timeline) = *firsts.first()?;
    let end_ns = firsts.iter().map(|(t, _)| t.duration_ns).max()?;
    let s = |ns: u64| ns as f64 / 1e9;
    let record = first.impairment.as_ref()?.schedule.as_ref()?;
    let phases = crate::phases::phases(record, end_ns).unwrap_or_default();
    let spans: Vec<Series> = phases
        .iter()
        .take(MAX_SHADED_PHASES)
        .map(|p| Series {
            label: String::new(),
            color: 6,
            mark: Mark::Span {
                from: s(p.from_ns),
                to: s(p.to_ns),
                shade: p.shade,
                text: p.label.clone(),
            },
        })
        .collect();
    let (mut latency, mut rate) = (spans.clone(), spans);
    for (t, timeline) in &firsts {
        let color = transport_color(t.transport);
        let runs =
            |value: &dyn Fn(&TimelineBin, f64) -> Option<f64>| bin_runs(timeline, t.duration_ns, value);
        latency.push(Series {
            label: t.transport.to_string(),
            color,
            mark: Mark::Runs {
                runs: runs(&|b, _| Some(b.p50_ns? as f64 / MS)),
                thin: false,
            },
        });
        latency.push(Series {
            label: String::new(),
            color,
            mark: Mark::Runs {
                runs: runs(&|b, _| Some(b.max_ns? as f64 / MS)),
                thin: true,
            },
        });
        rate.push(Series {
            label: t.transport.to_string(),
            color,
            mark: Mark::Runs {
                runs: runs(&|b, length_s| Some(b.delivered as f64 / length_s)),
                thin: false,
            },
        });
    }
    rate.push(Series {
        label: "offered".into(),
        color: 6,
        mark: Mark::Runs {
            runs: bin_runs(first_timeline, first.duration_ns, |b, length_s| {
                Some(b.offered as f64 / length_s)
            }),
            thin: true,
        },
    });
    let bin = format!("{} ms", crate::draw::number(first_timeline.bin_ns as f64 / MS));
    let time = || Axis::new("schedule time (s)", Scale::Linear).including(&[0.0, s(end_ns)]);
    let offered = first
        .params
        .rate
        .map(|r| format!(" at {}/s", crate::draw::number(r)))
        .unwrap_or_default();
    let shaded = match phases.len() {
        n if n > MAX_SHADED_PHASES => format!(" Shaded: the first {MAX_SHADED_PHASES} of {n} phases."),
        _ => String::new(),
    };
    let backend = first.impairment.as_ref().map_or("none", |i| i.backend.as_str());
    let ids: Vec<String> = firsts.iter().map(|(t, _)| t.id.clone()).collect();
    Some(Chart {
        slug: format!("schedule-timeline-{}", slug(&format!("{schedule}{params}"))),
        title: format!(
            "{}{offered} through the impairment schedule \"{schedule}\": round trip and delivered rate over time",
            first.workload
        ),
        caption: format!(
            "Time 0: the start of the measured window. Top: the round trip of the requests sent in each {bin} \
             (thick: p50, thin: max), drawn at the bin's middle; a gap: none of them was answered within the loss \
             timeout. Bottom: the answers that arrived in each {bin}, per second, against the rate offered. Shaded \
             dark: the path dropped every packet one way or both; light: a profile other than the first, named \
             where it fits.{shaded} Each transport's first trial ({}; {} in all). Impairment backend: {backend}.",
            ids.join(", "),
            transbench_reports::counted(trials.len() as u64, "trial"),
        ),
        panels: vec![
            Panel {
                title: format!("round trip per {bin}"),
                x: time(),
                y: Axis::new("round trip (ms)", Scale::Log),
                series: latency,
            },
            Panel {
                title: format!("answers delivered per {bin}, per second"),
                x: time(),
                y: Axis::new("answers/s", Scale::Linear).including(&[0.0]),
                series: rate,
            },
        ],
        columns: 1,
    })
}

/// Recovery against partition length from the trials' outages, a chart
/// per way the path went dark (both, requests, responses): each trial's
/// first answer after the heal, and each transport's backoff (TCP's RTO,
/// QUIC's PTO) from its first trial with a prediction (the backoff's first
/// wait, where it started, the answer's delay). A QUIC timer restarted by
/// the peer's probe after the heal is a trial's, not the curve's.
fn recovery_charts(results: &RunResults) -> Vec<Chart> {
    let trials = results.final_attempts().trials;
    let mut darks: Vec<&str> = trials
        .iter()
        .flat_map(|t| &t.outages)
        .map(|o| o.dark.as_str())
        .collect();
    darks.sort_unstable();
    darks.dedup();
    darks
        .into_iter()
        .filter_map(|dark| {
            let mut transports: Vec<Transport> = Vec::new();
            for t in trials.iter().filter(|t| t.outages.iter().any(|o| o.dark == dark)) {
                if !transports.contains(&t.transport) {
                    transports.push(t.transport);
                }
            }
            let of = |transport: Transport| {
                let outages: Vec<&transbench_reports::OutageMetrics> = trials
                    .iter()
                    .filter(|t| t.transport == transport)
                    .flat_map(|t| &t.outages)
                    .filter(|o| o.dark == dark)
                    .collect();
                let theory = outages.iter().find_map(|o| {
                    let e = o.expected.as_ref()?;
                    let model = if transport.is_quic() {
                        // quinn's default idle timeout: transbench keeps it.
                        TimerModel::quinn_with_pto(e.first_interval_ns, Some(QUINN_DEFAULT_IDLE_TIMEOUT_NS))
                    } else {
                        // The testbed's namespaces keep Linux's default.
                        TimerModel::linux_tcp(e.first_interval_ns, None, LINUX_TCP_RETRIES2).ok()?
                    };
                    Some(RecoveryTheory {
                        model,
                        timer_start_after_outage_ns: e.timer_start_after_start_ns,
                        answer_delay_ns: e.answer_delay_ns,
                    })
                });
                TransportRecovery {
                    transport,
                    trials: outages
                        .iter()
                        .map(|o| PartitionTrial {
                            partition_ns: o.end_ns - o.start_ns,
                            recovery_ns: o.first_answer_after_heal_ns,
                        })
                        .collect(),
                    theory,
                }
            };
            let partition = match dark {
                "both" => "blackhole both ways",
                "requests" => "requests blackholed",
                "frozen" => "receiver frozen",
                "crashed" => "receiver crashed",
                _ => "responses blackholed",
            };
            recovery_vs_partition(&RecoveryVsPartition {
                partition: partition.into(),
                transports: transports.into_iter().map(of).collect(),
            })
        })
        .collect()
}

/// One trial of a partition: its length and the measured recovery after
/// the heal (the first answer at or after it, less the heal), ns; `None`:
/// no answer came after the heal within the trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionTrial {
    pub partition_ns: u64,
    pub recovery_ns: Option<u64>,
}

/// What a transport's timer predicts, as [`recovery_curve`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryTheory {
    pub model: TimerModel,
    /// The timer's send after the partition's start (0: a request sent as
    /// the path went dark).
    pub timer_start_after_outage_ns: u64,
    /// From the retransmission that gets through to the answer: a round
    /// trip, or half of one with only the responses dropped.
    pub answer_delay_ns: u64,
}

/// One transport's partition trials, and its theory where it has a timer
/// (`None` for UDP).
#[derive(Debug, Clone, PartialEq)]
pub struct TransportRecovery {
    pub transport: Transport,
    pub trials: Vec<PartitionTrial>,
    pub theory: Option<RecoveryTheory>,
}

/// The input of [`recovery_vs_partition`]: the transports' trials of one
/// kind of partition on one path.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryVsPartition {
    /// What was partitioned and how, for the title and the file name:
    /// "blackhole both ways, 10 ms each way".
    pub partition: String,
    pub transports: Vec<TransportRecovery>,
}

/// Recovery after the heal against partition length: each trial a point,
/// each transport's theory a line beside them (a sawtooth: the recovery
/// falls as the heal nears the next backed-off retransmission, and jumps
/// when the heal misses it). `None` without a trial.
pub fn recovery_vs_partition(input: &RecoveryVsPartition) -> Option<Chart> {
    let s = |ns: u64| ns as f64 / 1e9;
    let longest = input
        .transports
        .iter()
        .flat_map(|t| &t.trials)
        .map(|trial| trial.partition_ns)
        .max()?;
    // Room past the longest partition, so its tooth shows.
    let x_end_ns = longest.saturating_add(longest / 4);
    let mut series = Vec::new();
    let mut theories = Vec::new();
    let mut unanswered = 0;
    for t in &input.transports {
        let color = transport_color(t.transport);
        let points: Vec<(f64, f64)> = t
            .trials
            .iter()
            .filter_map(|trial| Some((s(trial.partition_ns), s(trial.recovery_ns?))))
            .collect();
        unanswered += t.trials.len() - points.len();
        if !points.is_empty() {
            series.push(Series {
                label: format!("{} measured", t.transport),
                color,
                mark: Mark::Points(points, Shape::Circle),
            });
        }
        if let Some(theory) = &t.theory {
            let curve = recovery_curve(
                &theory.model,
                theory.timer_start_after_outage_ns,
                theory.answer_delay_ns,
                x_end_ns,
            );
            theories.push(describe_theory(t.transport, theory, curve.recovers_up_to_ns));
            if !curve.points_ns.is_empty() {
                let exact: Vec<(f64, f64)> = curve.points_ns.iter().map(|&(x, y)| (s(x), s(y))).collect();
                series.push(Series {
                    label: format!("{} theory", t.transport),
                    color,
                    mark: Mark::Line(densified(&exact, s(x_end_ns) / 120.0)),
                });
            }
        }
    }
    if series.is_empty() {
        return None;
    }
    let unanswered = if unanswered > 0 {
        format!(
            " Not drawn: {} with no answer after the heal.",
            transbench_reports::counted(unanswered as u64, "trial")
        )
    } else {
        String::new()
    };
    // A receiver's fault has no timer to predict it: no lines to explain.
    let (lines, theories) = if theories.is_empty() {
        (String::new(), String::new())
    } else {
        (
            " Lines: the first answer the retransmission timer predicts, started where the trial's timer \
             started: the first retransmission at or after the heal, plus the answer's way back."
                .to_string(),
            format!(" Theory: {}.", theories.join("; ")),
        )
    };
    Some(Chart {
        slug: format!("recovery-vs-partition-{}", slug(&input.partition)),
        title: format!(
            "recovery after an outage, against its length: {}",
            input.partition
        ),
        caption: format!(
            "Points: the time each trial took from the outage's end (the heal, or the receiver running \
             again) to the first answer.{lines}{theories}{unanswered}"
        ),
        panels: vec![Panel {
            title: String::new(),
            x: Axis::new("outage length (s)", Scale::Linear).including(&[0.0, s(x_end_ns)]),
            y: Axis::new("first answer after its end (s)", Scale::Linear).including(&[0.0]),
            series,
        }],
        columns: 1,
    })
}

/// A theory's settings in words, for the caption.
fn describe_theory(transport: Transport, theory: &RecoveryTheory, recovers_up_to_ns: Option<u64>) -> String {
    let ms = |ns: u64| crate::draw::number(ns as f64 / MS);
    let sec = |ns: u64| crate::draw::number(ns as f64 / 1e9);
    let backoff = theory.model.backoff();
    let give_up = match theory.model.give_up() {
        GiveUp::TcpRetries2(retries2) => format!("ETIMEDOUT by tcp_retries2 = {retries2}"),
        GiveUp::TcpUserTimeout(timeout) => {
            format!(
                "ETIMEDOUT {} s after the first retransmission (TCP_USER_TIMEOUT)",
                sec(timeout)
            )
        }
        GiveUp::QuicIdle(timeout) => format!("idle timeout {} s", sec(timeout)),
        GiveUp::Never => "never given up".to_string(),
    };
    let beyond = recovers_up_to_ns
        .map(|ns| format!(", given up for partitions over {} s", sec(ns)))
        .unwrap_or_default();
    format!(
        "{transport} waits {} ms doubling to {} s, {give_up}, the answer {} ms after the retransmission{beyond}",
        ms(backoff.first_interval_ns()),
        sec(backoff.max_interval_ns()),
        ms(theory.answer_delay_ns),
    )
}

/// A polyline with points added along each sloping segment, at most
/// `step` apart; vertical jumps stay as they are. The drawing marks the
/// vertices of sparse lines as data, which a theory's corners are not.
fn densified(points: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = points.first().copied().into_iter().collect();
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let parts = if step > 0.0 {
            ((x1 - x0) / step).ceil().max(1.0)
        } else {
            1.0
        };
        for i in 1..=parts as usize {
            let f = i as f64 / parts;
            out.push((x0 + (x1 - x0) * f, y0 + (y1 - y0) * f));
        }
    }
    out
}

/// The detectors' trade-off: detection time against false suspicions
/// per hour, a line per transport and detector through one point per
/// setting (the medians over a cell's trials), a panel per profile. A
/// setting that made no false suspicion is drawn, as a cross, at the
/// rate one would have made: its rate lies below it.
fn detector_trade_off(cells: &[&CellTrials]) -> Option<Chart> {
    fn heartbeats<'a>(c: &CellTrials<'a>) -> Vec<&'a HeartbeatMetrics> {
        c.trials.iter().filter_map(|t| t.heartbeat.as_ref()).collect()
    }
    let all: Vec<&HeartbeatMetrics> = cells.iter().flat_map(|c| heartbeats(c)).collect();
    if all.is_empty() {
        return None;
    }
    // After the failure where every trial had one, else after the last
    // heartbeat (what a failure right after it would take).
    let after_failure = all.iter().all(|h| h.fail_at_ns.is_some());
    let mut panels = Vec::new();
    for (profile, _) in profiles(cells) {
        let mut series = Vec::new();
        let mut cells_here: Vec<&&CellTrials> = cells.iter().filter(|c| c.profile == profile).collect();
        cells_here.sort_by_key(|c| transport_color(c.transport));
        for c in cells_here {
            let trials = heartbeats(c);
            let Some(first) = trials.first() else { continue };
            for (phi, shape, name) in [(true, Shape::Circle, "φ"), (false, Shape::Square, "timeout")] {
                let mut seen = Vec::new();
                let mut none_seen = Vec::new();
                for (i, setting) in first.monitor.settings.iter().enumerate() {
                    if matches!(setting.detector, Detector::Phi { .. }) != phi {
                        continue;
                    }
                    let of = |f: &dyn Fn(&SettingOutcome, &HeartbeatMetrics) -> Option<f64>| {
                        let v: Vec<f64> = trials
                            .iter()
                            .filter_map(|h| f(h.monitor.settings.get(i)?, h))
                            .collect();
                        (!v.is_empty()).then(|| median(&v))
                    };
                    let detection = of(&|s, _| {
                        let ns = match after_failure {
                            true => s.detection_after_silence_ns,
                            false => s.detection_after_last_arrival_ns,
                        };
                        ns.map(|v| v as f64 / MS)
                    });
                    let per_hour = of(&|s, _| s.false_suspicions_per_hour);
                    let one_per_hour =
                        of(&|_, h| (h.monitor.alive_ns > 0).then(|| 3.6e12 / h.monitor.alive_ns as f64));
                    match (detection, per_hour, one_per_hour) {
                        (Some(y), Some(x), _) if x > 0.0 => seen.push((x, y)),
                        (Some(y), _, Some(bound)) => none_seen.push((bound, y)),
                        _ => {}
                    }
                }
                let mut line: Vec<(f64, f64)> = seen.iter().chain(&none_seen).copied().collect();
                if line.is_empty() {
                    continue;
                }
                line.sort_by(|a, b| a.1.total_cmp(&b.1));
                let color = transport_color(c.transport);
                // The legend shows the detector's shape where it has one.
                let label = format!("{} {name}", c.transport);
                series.push(Series {
                    label: if seen.is_empty() {
                        label.clone()
                    } else {
                        String::new()
                    },
                    color,
                    mark: Mark::Line(line),
                });
                if !seen.is_empty() {
                    series.push(Series {
                        label,
                        color,
                        mark: Mark::Points(seen, shape),
                    });
                }
                if !none_seen.is_empty() {
                    series.push(Series {
                        label: String::new(),
                        color,
                        mark: Mark::Points(none_seen, Shape::Cross),
                    });
                }
            }
        }
        if !series.is_empty() {
            panels.push(Panel {
                title: profile.clone(),
                x: Axis::new("false suspicions per hour of the live peer", Scale::Log),
                y: Axis::new(
                    if after_failure {
                        "detection time after the failure (ms)"
                    } else {
                        "detection time after the last heartbeat (ms)"
                    },
                    Scale::Linear,
                )
                .including(&[0.0]),
                series,
            });
        }
    }
    if panels.is_empty() {
        return None;
    }
    let columns = panels.len().min(2);
    Some(Chart {
        slug: "detector-trade-off".into(),
        title: "heartbeat: failure detectors, detection time against false suspicions".into(),
        caption: caption(
            "One point per setting (φ threshold, circles; fixed timeout, squares), the medians over a cell's trials; the lower left is better. Crosses: settings that made no false suspicion, drawn at the rate one would have made in the time watched (the rate lies below). Colour: transport.",
            cells,
        ),
        panels,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_quartiles_of_counted_values() {
        // 1 x10, 2 x5, 8 x5: median 1.5 -> nearest rank 1 at 50 %, q3 2.
        let counts: BTreeMap<u32, u64> = [(1, 10), (2, 5), (8, 5)].into();
        let b = box_of(&counts, 0.0, 0.5).unwrap();
        assert_eq!((b.min, b.q1, b.median, b.q3, b.max), (1.0, 1.0, 1.0, 2.0, 8.0));
        assert!(box_of(&BTreeMap::new(), 0.0, 0.5).is_none());
    }

    #[test]
    fn timeline_records_decode() {
        use base64::Engine;
        let mut bytes = Vec::new();
        for (stream, at, lat) in [(3u32, 0u32, 150u32), (1, 40_000, u32::MAX)] {
            bytes.extend_from_slice(&stream.to_be_bytes());
            bytes.extend_from_slice(&at.to_be_bytes());
            bytes.extend_from_slice(&lat.to_be_bytes());
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(timeline(&b64).unwrap(), [(3, 0, Some(150)), (1, 40_000, None)]);
    }

    #[test]
    fn timeline_bins_become_runs_broken_where_a_bin_has_no_value() {
        let bin = |p50_ms: Option<u64>| TimelineBin {
            offered: 20,
            delivered: 20,
            p50_ns: p50_ms.map(|ms| ms * 1_000_000),
            ..TimelineBin::default()
        };
        let timeline = ScheduleTimeline {
            bin_ns: 100_000_000,
            bins: vec![bin(Some(10)), bin(None), bin(Some(12)), bin(Some(11))],
        };
        // A window of 350 ms: the last bin is 50 ms long.
        let p50 = bin_runs(&timeline, 350_000_000, |b, _| Some(b.p50_ns? as f64 / MS));
        assert_eq!(p50, [vec![(0.05, 10.0)], vec![(0.25, 12.0), (0.325, 11.0)]]);
        let rate = bin_runs(&timeline, 350_000_000, |b, length_s| {
            Some(b.delivered as f64 / length_s)
        });
        assert_eq!(
            rate,
            [vec![(0.05, 200.0), (0.15, 200.0), (0.25, 200.0), (0.325, 400.0)]]
        );
    }

    #[test]
    fn spectrum_reaches_the_nines_the_samples_support() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1_000).unwrap();
        }
        let points = spectrum_points(&h);
        let (q, v) = *points.last().unwrap();
        // 10,000 samples: four nines, no more.
        assert!((q - 0.9999).abs() < 1e-12, "{q}");
        assert!((v - 10.0).abs() < 0.02, "{v} ms");
        assert!(points.windows(2).all(|w| w[1].1 >= w[0].1), "monotone");
        assert!(spectrum_points(&new_histogram()).is_empty());
    }

    fn recovery_input() -> RecoveryVsPartition {
        use transbench_analysis::recovery::theory::{QuinnPto, LINUX_TCP_RETRIES2};
        let ms = 1_000_000u64;
        let trial = |s: u64, recovery_ms: Option<u64>| PartitionTrial {
            partition_ns: s * 1_000 * ms,
            recovery_ns: recovery_ms.map(|r| r * ms),
        };
        RecoveryVsPartition {
            partition: "blackhole both ways, 10 ms each way".into(),
            transports: vec![
                TransportRecovery {
                    transport: Transport::Tcp,
                    trials: vec![trial(1, Some(430)), trial(4, Some(2_250)), trial(16, Some(9_450))],
                    theory: Some(RecoveryTheory {
                        model: TimerModel::linux_tcp(201 * ms, None, LINUX_TCP_RETRIES2).unwrap(),
                        timer_start_after_outage_ns: 0,
                        answer_delay_ns: 20 * ms,
                    }),
                },
                TransportRecovery {
                    transport: Transport::Quic,
                    trials: vec![trial(1, Some(450)), trial(4, Some(1_870)), trial(16, None)],
                    theory: Some(RecoveryTheory {
                        model: TimerModel::quinn(QuinnPto::steady(20 * ms), Some(30_000 * ms)),
                        timer_start_after_outage_ns: 0,
                        answer_delay_ns: 20 * ms,
                    }),
                },
                TransportRecovery {
                    transport: Transport::Udp,
                    trials: vec![trial(1, Some(1)), trial(4, Some(1))],
                    theory: None,
                },
            ],
        }
    }

    #[test]
    fn recovery_against_partition_length_draws_points_and_theory() {
        let chart = recovery_vs_partition(&recovery_input()).unwrap();
        assert_eq!(
            chart.slug,
            "recovery-vs-partition-blackhole_both_ways_10_ms_each_way"
        );
        let legend = chart.legend();
        let labels: Vec<&str> = legend.iter().map(|(l, _, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "tcp measured",
                "tcp theory",
                "quic measured",
                "quic theory",
                "udp measured"
            ]
        );
        let panel = &chart.panels[0];
        let Mark::Line(tcp) = &panel.series[1].mark else {
            panic!("tcp's theory is a line")
        };
        // Dense enough to draw unmarked, to 20 s (16 s and a quarter), and
        // through the 16 s tooth: 25.5 s after the send, 9.5 s after the heal.
        assert!(tcp.len() > 40, "{} points", tcp.len());
        assert_eq!(tcp.last().unwrap().0, 20.0);
        let (x, y) = *tcp.iter().rfind(|p| p.0 <= 16.0).unwrap();
        let at_16 = y - (16.0 - x);
        assert!((at_16 - (0.201 * 127.0 - 16.0 + 0.02)).abs() < 1e-9, "{at_16}");
        // The trial that never recovered is left out, and said so.
        let Mark::Points(quic, Shape::Circle) = &panel.series[2].mark else {
            panic!("measured trials are points")
        };
        assert_eq!(quic.len(), 2);
        assert!(chart.caption.contains("Not drawn: 1 trial"), "{}", chart.caption);
        assert!(chart.caption.contains("tcp_retries2 = 15"), "{}", chart.caption);
        assert!(chart.caption.contains("idle timeout 30 s"), "{}", chart.caption);

        let svg = crate::draw::svg(&chart, crate::draw::Caption::Drawn).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for label in labels {
            assert!(texts.iter().any(|t| t.trim() == label), "no {label} in {texts:?}");
        }
    }

    #[test]
    fn no_partition_trials_no_recovery_chart() {
        let mut input = recovery_input();
        for t in &mut input.transports {
            t.trials.clear();
        }
        assert_eq!(recovery_vs_partition(&input), None);
    }
}
