//! What a chart shows, in data units, before anything is drawn: the pure
//! half of the report, built from results and checked without pixels.

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    /// Powers of ten equally spaced; values <= 0 are left out.
    Log,
    /// Quantiles q placed at -log10(1 - q): 90 %, 99 %, 99.9 % equally
    /// spaced, as HdrHistogram's percentile plots do.
    Nines,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Says what and in which unit: "latency (ms)".
    pub label: String,
    pub scale: Scale,
    /// A categorical axis: value i stands for `categories[i]`.
    pub categories: Vec<String>,
    /// Forces the range to include these values (e.g. 0 and 1 for a ratio).
    pub include: Vec<f64>,
}

impl Axis {
    pub fn new(label: impl Into<String>, scale: Scale) -> Self {
        Axis {
            label: label.into(),
            scale,
            categories: Vec::new(),
            include: Vec::new(),
        }
    }

    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        Axis {
            categories: names,
            ..Axis::new(label, Scale::Linear)
        }
    }

    pub fn including(mut self, values: &[f64]) -> Self {
        self.include.extend_from_slice(values);
        self
    }
}

/// Marker shapes, for a second grouping beside colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Triangle,
    Square,
    Cross,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::Circle, Shape::Triangle, Shape::Square, Shape::Cross];
}

/// How strongly a [`Mark::Span`] shades its stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shade {
    Dark,
    Light,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoxStat {
    pub x: f64,
    pub width: f64,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub value: f64,
    /// A whisker from the bar's value to here (e.g. p50 bar, p99 whisker).
    pub whisker: Option<f64>,
}

/// One rectangle of a raster: x0..x1 by y0..y1, coloured by `value`
/// (`None`: the message never arrived).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Line(Vec<(f64, f64)>),
    /// A line with gaps: each run of points joined, nothing between runs
    /// (where there is no value), never marked; `thin` beside a main line
    /// of the same colour.
    Runs {
        runs: Vec<Vec<(f64, f64)>>,
        thin: bool,
    },
    /// The spread around a line: (x, low, high).
    Band(Vec<(f64, f64, f64)>),
    Points(Vec<(f64, f64)>, Shape),
    Boxes(Vec<BoxStat>),
    Bars(Vec<Bar>),
    /// A raster coloured from 0 to `max` (values above are clipped), and
    /// what the colour means.
    Heat {
        cells: Vec<HeatCell>,
        max: f64,
        label: String,
    },
    /// A vertical marker across the panel, with its text.
    Rule {
        x: f64,
        text: String,
    },
    /// A stretch of the x axis shaded across the panel, in grey whatever
    /// the series' colour, its text at the top where it fits.
    Span {
        from: f64,
        to: f64,
        shade: Shade,
        text: String,
    },
}

/// A labelled thing drawn in one colour (an index into the palette).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's text; series with an empty label stay out of the legend.
    pub label: String,
    pub color: usize,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

impl Panel {
    /// The data points a panel draws (rules and raster cells included).
    pub fn points(&self) -> usize {
        self.series
            .iter()
            .map(|s| match &s.mark {
                Mark::Line(p) | Mark::Points(p, _) => p.len(),
                Mark::Runs { runs, .. } => runs.iter().map(Vec::len).sum(),
                Mark::Band(p) => p.len(),
                Mark::Boxes(b) => b.len(),
                Mark::Bars(b) => b.len(),
                Mark::Heat { cells, .. } => cells.len(),
                Mark::Rule { .. } | Mark::Span { .. } => 1,
            })
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The file stem: `latency-vs-loss-rr`.
    pub slug: String,
    /// Says what was measured.
    pub title: String,
    /// Profile, backend and trial count.
    pub caption: String,
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
}

impl Chart {
    /// The legend: each (label, colour, shape) once, in order of appearance.
    pub fn legend(&self) -> Vec<(String, usize, Option<Shape>)> {
        let mut out: Vec<(String, usize, Option<Shape>)> = Vec::new();
        for s in self.panels.iter().flat_map(|p| &p.series) {
            if s.label.is_empty() {
                continue;
            }
            let shape = match &s.mark {
                Mark::Points(_, shape) => Some(*shape),
                _ => None,
            };
            if !out
                .iter()
                .any(|(l, c, sh)| *l == s.label && *c == s.color && *sh == shape)
            {
                out.push((s.label.clone(), s.color, shape));
            }
        }
        out
    }
}
