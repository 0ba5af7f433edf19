//! Charts onto pixels and SVG, with plotters. Text is set in the embedded
//! DejaVu Sans ([`crate::typeset`] on pixels), so a PNG renders the same on
//! a machine with no fonts.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;
use std::sync::Once;
use thiserror::Error;

use crate::chart::{Axis, Chart, Mark, Panel, Scale, Shade, Shape};
use crate::typeset::{Line, Typeset, FONT};
const FAMILY: &str = "sans-serif";

#[derive(Debug, Error)]
#[error("cannot draw chart {chart}: {message}")]
pub struct DrawError {
    pub chart: String,
    pub message: String,
}

/// Colour-blind-safe (Okabe-Ito), then a darker yellow and grey.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(90, 90, 90),
    RGBColor(184, 160, 0),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const LOST: RGBColor = RGBColor(200, 0, 0);
/// What a span's shade is mixed from, and the size of its text.
const SHADE: RGBColor = RGBColor(70, 70, 70);
const SPAN_TEXT_PX: u32 = 12;
const PANEL_W: u32 = 460;
const PANEL_H: u32 = 330;
/// Text sizes (px) of the title, legend and caption.
const TITLE_PX: u32 = 22;
const LEGEND_PX: u32 = 14;
const CAPTION_PX: u32 = 13;
/// A legend entry's marker and the space after it, before its label.
const LEGEND_MARK: i32 = 30;
/// Space between legend columns.
const LEGEND_GAP: i32 = 24;
/// Left and right margins of title, legend and caption.
const MARGIN: i32 = 20;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid TrueType font"));
    });
}

/// Where a chart's caption goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caption {
    /// Under the panels, in the picture: a file that stands alone.
    Drawn,
    /// Nowhere in the picture: a page sets it as text under the chart.
    Omitted,
}

/// Pixel size of a chart: panels in a grid, a header (title, legend) above
/// and the caption, if drawn, below.
pub fn size(chart: &Chart, caption: Caption) -> (u32, u32) {
    let cols = chart.columns.clamp(1, chart.panels.len().max(1));
    let rows = chart.panels.len().div_ceil(cols).max(1);
    let width = (PANEL_W * cols as u32).max(760);
    let header = header_height(chart, width);
    let footer = footer_height(&caption_lines(chart, width, caption));
    (width, header + PANEL_H * rows as u32 + footer)
}

pub fn svg(chart: &Chart, caption: Caption) -> Result<String, DrawError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size(chart, caption)).into_drawing_area();
        draw(&root, chart, caption).map_err(|message| DrawError {
            chart: chart.slug.clone(),
            message,
        })?;
        root.present().map_err(|e| DrawError {
            chart: chart.slug.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(out)
}

pub fn png(chart: &Chart, path: &Path) -> Result<(), DrawError> {
    register_font();
    let err = |message: String| DrawError {
        chart: chart.slug.clone(),
        message,
    };
    let root = Typeset::new(BitMapBackend::new(path, size(chart, Caption::Drawn))).into_drawing_area();
    draw(&root, chart, Caption::Drawn).map_err(err)?;
    root.present()
        .map_err(|e| err(format!("{}: {e}", path.display())))
}

fn title_lines(chart: &Chart, width: u32) -> Vec<String> {
    wrap(&chart.title, TITLE_PX, width)
}

fn caption_lines(chart: &Chart, width: u32, caption: Caption) -> Vec<String> {
    match caption {
        Caption::Drawn => wrap(&chart.caption, CAPTION_PX, width),
        Caption::Omitted => Vec::new(),
    }
}

/// Below the panels: the caption's lines and a margin.
fn footer_height(caption_lines: &[String]) -> u32 {
    10 + 18 * caption_lines.len() as u32
}

/// Width in pixels of a line of text at a size.
fn text_width(text: &str, px: u32) -> i32 {
    Line::new(text, px as f32).width.ceil() as i32
}

fn header_height(chart: &Chart, width: u32) -> u32 {
    16 + 28 * title_lines(chart, width).len() as u32 + 24 * legend_rows(chart, width)
}

/// Greedy word wrap of text at a size, as measured in the font, within a
/// chart `width` wide less its margins.
fn wrap(text: &str, px: u32, width: u32) -> Vec<String> {
    let room = width as i32 - 2 * MARGIN;
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), px) <= room => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Legend entries in a grid of equal columns, as wide as the widest entry
/// and as many as fit, filled row by row, rows as even as they can be:
/// each entry's row and x. A raster's colour scale takes a row of its own.
fn legend_layout(chart: &Chart, width: u32) -> Vec<(u32, i32)> {
    let entries = chart.legend();
    let column = entries
        .iter()
        .map(|(label, _, _)| LEGEND_MARK + text_width(label, LEGEND_PX) + LEGEND_GAP)
        .max()
        .unwrap_or(1);
    let fit = ((width as i32 - 2 * MARGIN + LEGEND_GAP) / column).max(1) as usize;
    let rows = entries.len().div_ceil(fit).max(1);
    let columns = entries.len().div_ceil(rows).max(1);
    let mut at: Vec<(u32, i32)> = (0..entries.len())
        .map(|i| ((i / columns) as u32, MARGIN + (i % columns) as i32 * column))
        .collect();
    let heat = chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .any(|s| matches!(s.mark, Mark::Heat { .. }));
    if heat {
        at.push((at.last().map_or(0, |a| a.0 + 1), MARGIN));
    }
    at
}

fn legend_rows(chart: &Chart, width: u32) -> u32 {
    legend_layout(chart, width).last().map_or(0, |(row, _)| row + 1)
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(root: &Area<'_, DB>, chart: &Chart, caption: Caption) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (width, height) = root.dim_in_pixel();
    let header_h = header_height(chart, width);
    let legend_top = 16 + 28 * title_lines(chart, width).len() as i32;
    let caption_lines = caption_lines(chart, width, caption);
    let (header, rest) = root.split_vertically(header_h);
    let (grid, footer) = rest.split_vertically(height - header_h - footer_height(&caption_lines));

    for (i, line) in title_lines(chart, width).into_iter().enumerate() {
        header
            .draw(&Text::new(
                line,
                (MARGIN, 10 + 28 * i as i32),
                (FAMILY, TITLE_PX).into_font().color(&BLACK),
            ))
            .map_err(e)?;
    }
    let entries = chart.legend();
    let layout = legend_layout(chart, width);
    for ((label, c, shape), (row, x)) in entries.iter().zip(&layout) {
        let y = legend_top + 24 * *row as i32 + 8;
        let style = color(*c);
        match shape {
            Some(s) => draw_shape(&header, *s, (x + 12, y), style).map_err(e)?,
            None => {
                header
                    .draw(&Rectangle::new([(*x, y - 3), (x + 24, y + 3)], style.filled()))
                    .map_err(e)?;
            }
        }
        header
            .draw(&Text::new(
                label.clone(),
                (x + LEGEND_MARK, y - 8),
                (FAMILY, LEGEND_PX).into_font().color(&BLACK),
            ))
            .map_err(e)?;
    }
    if let (Some((row, _)), Some((max, label))) = (layout.get(entries.len()), heat_scale(chart)) {
        let y = legend_top + 24 * *row as i32;
        let low = format!("{label}: 0");
        let x0 = MARGIN + text_width(&low, LEGEND_PX) + 8;
        header
            .draw(&Text::new(
                low,
                (MARGIN, y),
                (FAMILY, LEGEND_PX).into_font().color(&BLACK),
            ))
            .map_err(e)?;
        for i in 0..100 {
            let c = heat_color(i as f64 / 99.0);
            header
                .draw(&Rectangle::new(
                    [(x0 + 2 * i, y + 2), (x0 + 2 * i + 2, y + 16)],
                    c.filled(),
                ))
                .map_err(e)?;
        }
        let high = format!("{} or more    lost:", number(max));
        let lx = x0 + 208 + text_width(&high, LEGEND_PX) + 8;
        header
            .draw(&Text::new(
                high,
                (x0 + 208, y),
                (FAMILY, LEGEND_PX).into_font().color(&BLACK),
            ))
            .map_err(e)?;
        header
            .draw(&Rectangle::new([(lx, y + 2), (lx + 14, y + 16)], LOST.filled()))
            .map_err(e)?;
    }

    let cols = chart.columns.clamp(1, chart.panels.len().max(1));
    let rows = chart.panels.len().div_ceil(cols).max(1);
    for (area, panel) in grid.split_evenly((rows, cols)).iter().zip(&chart.panels) {
        draw_panel(area, panel)?;
    }
    for (i, line) in caption_lines.iter().enumerate() {
        footer
            .draw(&Text::new(
                line.clone(),
                (MARGIN, 4 + 18 * i as i32),
                (FAMILY, CAPTION_PX).into_font().color(&RGBColor(60, 60, 60)),
            ))
            .map_err(e)?;
    }
    Ok(())
}

fn heat_scale(chart: &Chart) -> Option<(f64, String)> {
    chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .find_map(|s| match &s.mark {
            Mark::Heat { max, label, .. } => Some((*max, label.clone())),
            _ => None,
        })
}

/// Viridis, roughly: dark blue (none) through green to yellow (most).
fn heat_color(t: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (68.0, 1.0, 84.0)),
        (0.25, (59.0, 82.0, 139.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (94.0, 201.0, 98.0)),
        (1.0, (253.0, 231.0, 37.0)),
    ];
    let t = t.clamp(0.0, 1.0);
    let i = STOPS.iter().position(|(s, _)| *s >= t).unwrap_or(4).max(1);
    let ((s0, a), (s1, b)) = (STOPS[i - 1], STOPS[i]);
    let f = (t - s0) / (s1 - s0);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_shape<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    shape: Shape,
    (x, y): (i32, i32),
    c: RGBColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    match shape {
        Shape::Circle => area.draw(&Circle::new((x, y), 4, c.filled())),
        Shape::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], c.filled())),
        Shape::Triangle => area.draw(&Polygon::new(
            vec![(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)],
            c.filled(),
        )),
        Shape::Cross => {
            area.draw(&PathElement::new(
                vec![(x - 4, y - 4), (x + 4, y + 4)],
                c.stroke_width(2),
            ))?;
            area.draw(&PathElement::new(
                vec![(x - 4, y + 4), (x + 4, y - 4)],
                c.stroke_width(2),
            ))
        }
    }
}

/// A value where the axis draws it, or `None` where the scale has no place
/// for it (log of <= 0, the 100th percentile).
pub fn place(axis: &Axis, v: f64) -> Option<f64> {
    let p = match axis.scale {
        Scale::Linear => v,
        Scale::Log if v > 0.0 => v.log10(),
        Scale::Nines if v < 1.0 => -(1.0 - v).log10(),
        _ => return None,
    };
    p.is_finite().then_some(p)
}

/// The range to draw (in placed units) and where its ticks go.
pub fn ticks(axis: &Axis, values: &[f64]) -> (f64, f64, Vec<f64>) {
    if !axis.categories.is_empty() {
        let n = axis.categories.len();
        return (-0.6, n as f64 - 0.4, (0..n).map(|i| i as f64).collect());
    }
    let placed: Vec<f64> = values
        .iter()
        .chain(&axis.include)
        .filter_map(|&v| place(axis, v))
        .collect();
    let lo = placed.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = placed.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) if hi > lo => (lo, hi),
        (true, true) => (lo - 0.5, hi + 0.5),
        _ => (0.0, 1.0),
    };
    match axis.scale {
        Scale::Linear => {
            // The range ends on ticks at or beyond the data, then 5 % more:
            // no value lies past the last labelled tick or on the frame.
            let step = nice_step((hi - lo) / 6.0);
            let first = (lo / step + 1e-9).floor() as i64;
            let last = (hi / step - 1e-9).ceil() as i64;
            let pad = (last - first) as f64 * step * 0.05;
            let (lo, hi) = (first as f64 * step - pad, last as f64 * step + pad);
            (lo, hi, (first..=last).map(|k| k as f64 * step).collect())
        }
        Scale::Log => {
            let (lo, hi) = (lo - 0.08, hi + 0.08);
            let decades = (lo.ceil() as i64)..=(hi.floor() as i64);
            let mut t: Vec<f64> = Vec::new();
            let sub: &[f64] = if hi - lo < 2.5 { &[1.0, 2.0, 5.0] } else { &[1.0] };
            for d in (lo.floor() as i64)..=(hi.ceil() as i64) {
                for m in sub {
                    let v = d as f64 + m.log10();
                    if v >= lo && v <= hi {
                        t.push(v);
                    }
                }
            }
            if t.len() < 3 && decades.count() < 2 {
                // Within a decade or so: round values, placed on the log scale.
                let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
                let step = nice_step((b - a) / 5.0);
                t = ((a / step).ceil() as i64..=(b / step).floor() as i64)
                    .map(|k| (k as f64 * step).log10())
                    .filter(|v| v.is_finite())
                    .collect();
            }
            (lo, hi, t)
        }
        Scale::Nines => {
            let hi = hi.ceil().max(1.0) + 0.05;
            (0.0, hi, (0..=hi.floor() as i64).map(|k| k as f64).collect())
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A number as a tick label: no more digits than it needs.
pub fn number(v: f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    };
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A tick's text, from its placed value.
pub fn tick_label(axis: &Axis, p: f64) -> String {
    if !axis.categories.is_empty() {
        let i = p.round();
        return if (p - i).abs() < 1e-9 && i >= 0.0 {
            axis.categories.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        };
    }
    match axis.scale {
        Scale::Linear => number(p),
        Scale::Log => number(10f64.powf(p)),
        Scale::Nines => {
            let q = 1.0 - 10f64.powf(-p);
            let pct = q * 100.0;
            let digits = (p.round() as usize).saturating_sub(2);
            format!("{pct:.digits$}%")
        }
    }
}

/// A linear axis in placed units whose ticks are exactly the given ones
/// (log, nines and categorical axes place values themselves).
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (a, b): (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        (a as f64 + f * (b - a) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

type Coords = Cartesian2d<Ticked, Ticked>;

/// Every tick's text, with as many decimals as it takes to tell
/// neighbouring ticks apart on a narrow range.
pub fn tick_labels(axis: &Axis, ticks: &[f64]) -> Vec<String> {
    let first: Vec<String> = ticks.iter().map(|&p| tick_label(axis, p)).collect();
    let distinct = |l: &[String]| l.windows(2).all(|w| w[0] != w[1]);
    if distinct(&first) || !axis.categories.is_empty() || axis.scale == Scale::Nines {
        return first;
    }
    let value = |p: f64| {
        if axis.scale == Scale::Log {
            10f64.powf(p)
        } else {
            p
        }
    };
    (1..=6)
        .map(|d| {
            ticks
                .iter()
                .map(|&p| {
                    let s = format!("{:.*}", d, value(p));
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                })
                .collect::<Vec<_>>()
        })
        .find(|l| distinct(l))
        .unwrap_or(first)
}

fn draw_panel<DB: DrawingBackend>(area: &Area<'_, DB>, panel: &Panel) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in &panel.series {
        match &s.mark {
            Mark::Line(p) | Mark::Points(p, _) => {
                xs.extend(p.iter().map(|q| q.0));
                ys.extend(p.iter().map(|q| q.1));
            }
            Mark::Band(p) => {
                xs.extend(p.iter().map(|q| q.0));
                ys.extend(p.iter().flat_map(|q| [q.1, q.2]));
            }
            Mark::Boxes(b) => {
                xs.extend(b.iter().flat_map(|b| [b.x - b.width / 2.0, b.x + b.width / 2.0]));
                ys.extend(b.iter().flat_map(|b| [b.min, b.max]));
            }
            Mark::Bars(b) => {
                xs.extend(b.iter().flat_map(|b| [b.x - b.width / 2.0, b.x + b.width / 2.0]));
                ys.extend(b.iter().flat_map(|b| [Some(b.value), b.whisker]).flatten());
            }
            Mark::Heat { cells, .. } => {
                xs.extend(cells.iter().flat_map(|c| [c.x0, c.x1]));
                ys.extend(cells.iter().flat_map(|c| [c.y0, c.y1]));
            }
            Mark::Rule { x, .. } => xs.push(*x),
            Mark::Runs { runs, .. } => {
                xs.extend(runs.iter().flatten().map(|q| q.0));
                ys.extend(runs.iter().flatten().map(|q| q.1));
            }
            Mark::Span { from, to, .. } => xs.extend([*from, *to]),
        }
    }
    let (x0, x1, xt) = ticks(&panel.x, &xs);
    let (y0, y1, yt) = ticks(&panel.y, &ys);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title.clone(), (FAMILY, 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            Ticked {
                lo: x0,
                hi: x1,
                ticks: xt.clone(),
            },
            Ticked {
                lo: y0,
                hi: y1,
                ticks: yt.clone(),
            },
        )
        .map_err(e)?;
    let label = |ticks: &[f64], labels: &[String], axis: &Axis, v: f64| {
        ticks
            .iter()
            .position(|t| (t - v).abs() <= 1e-9 * (1.0 + t.abs()))
            .map_or_else(|| tick_label(axis, v), |i| labels[i].clone())
    };
    let (x_texts, y_texts) = (tick_labels(&panel.x, &xt), tick_labels(&panel.y, &yt));
    let x_label = |v: &f64| label(&xt, &x_texts, &panel.x, *v);
    let y_label = |v: &f64| label(&yt, &y_texts, &panel.y, *v);
    chart
        .configure_mesh()
        .x_desc(panel.x.label.clone())
        .y_desc(panel.y.label.clone())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(e)?;
    // Bars stand on zero where the axis shows it.
    let floor = place(&panel.y, 0.0)
        .filter(|z| (y0..=y1).contains(z))
        .unwrap_or(y0);
    for s in &panel.series {
        draw_mark(&mut chart, panel, s.color, &s.mark, floor, (x0, x1)).map_err(e)?;
    }
    Ok(())
}

fn draw_mark<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coords>,
    panel: &Panel,
    c: usize,
    mark: &Mark,
    floor: f64,
    (x0, x1): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = color(c);
    let at = |x: f64, y: f64| Some((place(&panel.x, x)?, place(&panel.y, y)?));
    match mark {
        Mark::Line(points) => {
            let placed: Vec<_> = points.iter().filter_map(|&(x, y)| at(x, y)).collect();
            chart.draw_series(LineSeries::new(placed.clone(), style.stroke_width(2)))?;
            // Markers on sparse lines only: on dense ones they hide the line.
            if placed.len() <= 40 {
                chart.draw_series(placed.into_iter().map(|p| Circle::new(p, 3, style.filled())))?;
            }
        }
        Mark::Runs { runs, thin } => {
            let line = match thin {
                true => style.mix(0.6).stroke_width(1),
                false => style.stroke_width(2),
            };
            for run in runs {
                let placed: Vec<_> = run.iter().filter_map(|&(x, y)| at(x, y)).collect();
                chart.draw_series(LineSeries::new(placed, line))?;
            }
        }
        Mark::Band(points) => {
            let lo: Vec<_> = points.iter().filter_map(|&(x, l, _)| at(x, l)).collect();
            let hi: Vec<_> = points.iter().filter_map(|&(x, _, h)| at(x, h)).collect();
            let outline: Vec<_> = lo.iter().copied().chain(hi.iter().rev().copied()).collect();
            if outline.len() >= 3 {
                chart.draw_series(std::iter::once(Polygon::new(outline, style.mix(0.18).filled())))?;
            }
        }
        Mark::Points(points, shape) => {
            let placed: Vec<_> = points.iter().filter_map(|&(x, y)| at(x, y)).collect();
            let plot = chart.plotting_area();
            let (bx, by) = plot.get_base_pixel();
            let pixels = plot.strip_coord_spec();
            for p in placed {
                // map_coordinate answers in the backend's pixels.
                let (x, y) = plot.map_coordinate(&p);
                draw_shape(&pixels, *shape, (x - bx, y - by), style)?;
            }
        }
        Mark::Boxes(boxes) => {
            for b in boxes {
                let (Some(min), Some(q1), Some(med), Some(q3), Some(max)) = (
                    place(&panel.y, b.min),
                    place(&panel.y, b.q1),
                    place(&panel.y, b.median),
                    place(&panel.y, b.q3),
                    place(&panel.y, b.max),
                ) else {
                    continue;
                };
                let (l, r) = (b.x - b.width / 2.0, b.x + b.width / 2.0);
                chart.draw_series([
                    Rectangle::new([(l, q1), (r, q3)], style.mix(0.25).filled()),
                    Rectangle::new([(l, q1), (r, q3)], style.stroke_width(2)),
                ])?;
                chart.draw_series([
                    PathElement::new(vec![(l, med), (r, med)], style.stroke_width(3)),
                    PathElement::new(vec![(b.x, q3), (b.x, max)], style.stroke_width(1)),
                    PathElement::new(vec![(b.x, q1), (b.x, min)], style.stroke_width(1)),
                    PathElement::new(
                        vec![(b.x - b.width / 4.0, max), (b.x + b.width / 4.0, max)],
                        style.stroke_width(1),
                    ),
                    PathElement::new(
                        vec![(b.x - b.width / 4.0, min), (b.x + b.width / 4.0, min)],
                        style.stroke_width(1),
                    ),
                ])?;
            }
        }
        Mark::Bars(bars) => {
            for b in bars {
                let Some(v) = place(&panel.y, b.value) else {
                    continue;
                };
                let (l, r) = (b.x - b.width / 2.0, b.x + b.width / 2.0);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(l, floor), (r, v)],
                    style.filled(),
                )))?;
                if let Some(w) = b.whisker.and_then(|w| place(&panel.y, w)) {
                    chart.draw_series([
                        PathElement::new(vec![(b.x, v), (b.x, w)], BLACK.stroke_width(1)),
                        PathElement::new(
                            vec![(b.x - b.width / 4.0, w), (b.x + b.width / 4.0, w)],
                            BLACK.stroke_width(1),
                        ),
                    ])?;
                }
            }
        }
        Mark::Heat { cells, max, .. } => {
            // One background in the colour of "no excess", then only the
            // cells that differ from it: a raster of mostly quiet streams
            // stays small as SVG.
            let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&crate::chart::HeatCell) -> f64| {
                cells.iter().map(pick).fold(init, f)
            };
            let (xa, xb) = (
                fold(f64::min, f64::INFINITY, |h| h.x0),
                fold(f64::max, f64::NEG_INFINITY, |h| h.x1),
            );
            let (ya, yb) = (
                fold(f64::min, f64::INFINITY, |h| h.y0),
                fold(f64::max, f64::NEG_INFINITY, |h| h.y1),
            );
            if let (Some(a), Some(b)) = (at(xa, ya), at(xb, yb)) {
                chart.draw_series(std::iter::once(Rectangle::new([a, b], heat_color(0.0).filled())))?;
            }
            let scale = max.max(f64::MIN_POSITIVE);
            chart.draw_series(cells.iter().filter_map(|h| {
                let fill = match h.value {
                    Some(v) if v / scale < 0.01 => return None,
                    Some(v) => heat_color(v / scale),
                    None => LOST,
                };
                Some(Rectangle::new([at(h.x0, h.y0)?, at(h.x1, h.y1)?], fill.filled()))
            }))?;
        }
        Mark::Rule { x, text } => {
            if let Some(px) = place(&panel.x, *x) {
                let (lo, hi) = {
                    let r = chart.plotting_area().get_y_range();
                    (r.start, r.end)
                };
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(px, lo), (px, hi)],
                    LOST.stroke_width(2),
                )))?;
                // Text on the side of the rule with room for it.
                let right = px < x0 + (x1 - x0) * 0.6;
                let anchor = if right {
                    px + (x1 - x0) * 0.01
                } else {
                    px - (x1 - x0) * 0.01
                };
                let pos = if right {
                    Pos::new(HPos::Left, VPos::Top)
                } else {
                    Pos::new(HPos::Right, VPos::Top)
                };
                chart.draw_series(std::iter::once(Text::new(
                    text.clone(),
                    (anchor, hi),
                    (FAMILY, 12).into_font().color(&LOST).pos(pos),
                )))?;
            }
        }
        Mark::Span {
            from,
            to,
            shade,
            text,
        } => {
            let (Some(a), Some(b)) = (place(&panel.x, *from), place(&panel.x, *to)) else {
                return Ok(());
            };
            let (lo, hi) = {
                let r = chart.plotting_area().get_y_range();
                (r.start, r.end)
            };
            let fill = match shade {
                Shade::Dark => SHADE.mix(0.38),
                Shade::Light => SHADE.mix(0.12),
            };
            chart.draw_series(std::iter::once(Rectangle::new([(a, lo), (b, hi)], fill.filled())))?;
            let plot = chart.plotting_area();
            let width = plot.map_coordinate(&(b, hi)).0 - plot.map_coordinate(&(a, hi)).0;
            if !text.is_empty() && text_width(text, SPAN_TEXT_PX) + 8 <= width {
                chart.draw_series(std::iter::once(Text::new(
                    text.clone(),
                    (a + (x1 - x0) * 0.005, hi),
                    (FAMILY, SPAN_TEXT_PX)
                        .into_font()
                        .color(&RGBColor(40, 40, 40))
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                )))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::Series;

    #[test]
    fn nines_ticks_read_as_percentiles() {
        let axis = Axis::new("percentile", Scale::Nines);
        let (lo, hi, t) = ticks(&axis, &[0.0, 0.5, 0.999]);
        assert_eq!((lo, t.len()), (0.0, 4));
        assert!(hi >= 3.0);
        let labels: Vec<String> = t.iter().map(|&p| tick_label(&axis, p)).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%"]);
        assert_eq!(place(&axis, 1.0), None, "the 100th percentile has no place");
    }

    #[test]
    fn log_ticks_are_powers_of_ten_over_decades() {
        let axis = Axis::new("latency (ms)", Scale::Log);
        let (_, _, t) = ticks(&axis, &[0.05, 120.0]);
        let labels: Vec<String> = t.iter().map(|&p| tick_label(&axis, p)).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100"]);
        // Two decades: 1-2-5 steps.
        let (_, _, t) = ticks(&axis, &[1.5, 60.0]);
        let labels: Vec<String> = t.iter().map(|&p| tick_label(&axis, p)).collect();
        assert_eq!(labels, ["2", "5", "10", "20", "50"]);
        let (_, _, t) = ticks(&axis, &[1.5, 9.0]);
        let labels: Vec<String> = t.iter().map(|&p| tick_label(&axis, p)).collect();
        assert_eq!(labels, ["2", "5", "10"]);
        // Within a decade: round values, placed on the log scale.
        let (_, _, t) = ticks(&axis, &[3.0, 7.0]);
        let labels: Vec<String> = t.iter().map(|&p| tick_label(&axis, p)).collect();
        assert_eq!(labels, ["4", "6", "8"]);
        assert_eq!(place(&axis, 0.0), None);
    }

    #[test]
    fn linear_ticks_are_round_and_enclose_the_data() {
        let axis = Axis::new("x", Scale::Linear).including(&[0.0]);
        let (lo, hi, t) = ticks(&axis, &[2.0, 9.3]);
        assert!(lo < 0.0 && hi > 10.0);
        assert_eq!(t, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        // Goodput of every trial at the offered 0.512 Mbit/s: a labelled
        // tick above the points, and room between them and the frame.
        let (lo, hi, t) = ticks(&axis, &[0.505, 0.512, 0.512]);
        let top = *t.last().unwrap();
        assert!(t[0] == 0.0 && top >= 0.512, "{t:?}");
        assert!((hi - 0.512) / (hi - lo) > 0.1, "{lo}..{hi}");
        // Values on ticks still get room inside the frame.
        let (lo, hi, t) = ticks(&Axis::new("x", Scale::Linear), &[1.0, 2.0]);
        assert!(lo < 1.0 && hi > 2.0 && t.contains(&1.0) && t.contains(&2.0));
    }

    #[test]
    fn categories_label_their_positions() {
        let axis = Axis::categories("transport", vec!["tcp".into(), "quic".into()]);
        let (lo, hi, t) = ticks(&axis, &[]);
        assert!(lo < 0.0 && hi > 1.0);
        assert_eq!(t, [0.0, 1.0]);
        assert_eq!(tick_label(&axis, 1.0), "quic");
        assert_eq!(tick_label(&axis, 0.5), "");
    }

    #[test]
    fn narrow_ranges_get_the_decimals_they_need() {
        let axis = Axis::new("latency (ms)", Scale::Linear);
        let (_, _, t) = ticks(&axis, &[10.12, 10.27]);
        let labels = tick_labels(&axis, &t);
        assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        let log = Axis::new("ms", Scale::Log);
        let ticks = [50.35f64.log10(), 50.45f64.log10()];
        let labels = tick_labels(&log, &ticks);
        assert!(
            labels[0] != labels[1] && labels.iter().all(|l| l.starts_with("50.")),
            "{labels:?}"
        );
    }

    #[test]
    fn captions_wrap_on_words_within_the_width() {
        let width = 2 * MARGIN as u32 + text_width("four five", CAPTION_PX) as u32;
        let lines = wrap("one two three four five", CAPTION_PX, width);
        assert_eq!(lines, ["one two", "three", "four five"]);
    }

    #[test]
    fn legend_entries_sit_in_even_columns_and_rows() {
        let series = |label: &str, color: usize| Series {
            label: label.into(),
            color,
            mark: Mark::Points(vec![(1.0, 1.0)], Shape::Circle),
        };
        let labels = [
            "udp, loopback",
            "udp, delay 20ms loss random 1%",
            "tcp, loopback",
            "tcp, delay 20ms loss random 1%",
            "tcp+tls, loopback",
            "tcp+tls, delay 20ms loss random 1%",
            "quic, loopback",
        ];
        let chart = Chart {
            slug: "x".into(),
            title: "x".into(),
            caption: String::new(),
            panels: vec![Panel {
                title: String::new(),
                x: Axis::new("x", Scale::Linear),
                y: Axis::new("y", Scale::Linear),
                series: labels.iter().enumerate().map(|(i, l)| series(l, i)).collect(),
            }],
            columns: 1,
        };
        for width in [760, 1000, 2000] {
            let at = legend_layout(&chart, width);
            let mut xs: Vec<i32> = at.iter().map(|a| a.1).collect();
            xs.sort();
            xs.dedup();
            let rows = at.last().unwrap().0 as usize + 1;
            // Filled row by row into equal columns, all within the margins.
            assert_eq!(rows, labels.len().div_ceil(xs.len()), "{width}: {at:?}");
            for (i, a) in at.iter().enumerate() {
                assert_eq!(*a, ((i / xs.len()) as u32, xs[i % xs.len()]), "{width}");
            }
            let widest = labels.iter().map(|l| text_width(l, LEGEND_PX)).max().unwrap();
            let right = xs.last().unwrap() + LEGEND_MARK + widest;
            assert!(right <= width as i32 - MARGIN, "{width}: {at:?}");
        }
    }
}
