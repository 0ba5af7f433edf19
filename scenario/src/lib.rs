//! Scenario files: a TOML matrix of transports x workloads x impairment
//! profiles x parameters, with trials per cell, duration, warm-up, seed and
//! order. [`parse`] checks a file and reports the first problem with its
//! file, line and key, before anything runs; [`Scenario::trials`] expands
//! the cells into trials in a seeded random order (or as written).
//!
//! ```toml
//! name = "quick"
//! duration = "2s"
//! warmup = "500ms"
//! trials = 3
//! seed = 1
//!
//! [[matrix]]
//! workload = "rr"
//! transports = ["udp", "tcp", "tcp+tls", "quic"]
//! profiles = ["none", "lan", "delay 5ms loss 1%", { forward = "lan", reverse = "none" }]
//! rate = [500, 1000]
//! size = 64
//! ```
//!
//! A profile is `none` (no emulated link: loopback), the name of a file in
//! `netem-scripts/profiles/` (without `.netem`), or a netem string; a table
//! gives each direction its own. A parameter is one value or a list of
//! them; lists multiply the cells.

use linkemu::NetemSpec;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;
use toml::Spanned;
use transbench_wire::{CloseMode, Transport, Workload};

/// A problem in a scenario file, where it is: `file:line: key: message`
/// (line 0 and key `-` when it is the whole file).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.located())]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl ScenarioError {
    fn located(&self) -> String {
        match (self.line, self.key.as_str()) {
            (0, "-") => format!("{}: {}", self.file, self.message),
            (line, "-") => format!("{}:{line}: {}", self.file, self.message),
            (line, key) => format!("{}:{line}: {key}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Trials shuffled with the scenario's seed: drifts of the machine
    /// spread over every cell instead of biasing the last ones.
    Random,
    /// Cell by cell, as written.
    AsWritten,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Trials per cell.
    pub trials: u32,
    pub seed: u64,
    pub order: Order,
    pub cells: Vec<Cell>,
}

/// One combination of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// `workload transport profile [param=value ...]`, unique in the
    /// scenario.
    pub id: String,
    pub workload: Workload,
    pub transport: Transport,
    pub profile: LinkProfile,
    pub params: Params,
    /// The line of the `[[matrix]]` entry it came from, for errors found
    /// later (`file:line`).
    pub line: usize,
    /// `skip_without_root = true`: without root (no namespaces for an
    /// emulated link) the run leaves this cell out instead of refusing.
    pub skip_without_root: bool,
}

/// The emulated link of a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProfile {
    /// As written: `none`, a profile's name, a netem string, or
    /// `forward/reverse`.
    pub name: String,
    /// `None`: no emulated link (loopback).
    pub link: Option<(NetemSpec, NetemSpec)>,
}

/// A cell's parameters; unset ones take the workload's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    pub rate: Option<f64>,
    pub size: Option<u32>,
    pub streams: Option<u32>,
    pub bitrate: Option<f64>,
    pub conn_rate: Option<f64>,
    pub close: Option<CloseMode>,
    pub cc: Option<String>,
}

/// One trial: which cell, and which repetition of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrialPlan {
    pub cell: usize,
    pub repetition: u32,
}

impl Scenario {
    /// Every trial, in the order they run.
    pub fn trials(&self) -> Vec<TrialPlan> {
        let mut plan: Vec<TrialPlan> = (0..self.cells.len())
            .flat_map(|cell| (0..self.trials).map(move |repetition| TrialPlan { cell, repetition }))
            .collect();
        if self.order == Order::Random {
            let mut rng = SplitMix64(self.seed);
            // Fisher-Yates.
            for i in (1..plan.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                plan.swap(i, j);
            }
        }
        plan
    }
}

/// SplitMix64: a small, well-mixed generator, so one seed gives one order
/// on every machine and version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    description: Option<String>,
    duration: Spanned<String>,
    warmup: Option<Spanned<String>>,
    trials: Option<Spanned<i64>>,
    seed: Option<Spanned<i64>>,
    order: Option<Spanned<String>>,
    matrix: Option<Vec<Spanned<RawMatrix>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    workload: Spanned<String>,
    transports: Spanned<Vec<Spanned<String>>>,
    profiles: Option<Spanned<Vec<Spanned<RawProfile>>>>,
    rate: Option<Spanned<OneOrMany<f64>>>,
    size: Option<Spanned<OneOrMany<i64>>>,
    streams: Option<Spanned<OneOrMany<i64>>>,
    bitrate: Option<Spanned<OneOrMany<f64>>>,
    conn_rate: Option<Spanned<OneOrMany<f64>>>,
    close: Option<Spanned<OneOrMany<String>>>,
    cc: Option<Spanned<OneOrMany<String>>>,
    skip_without_root: Option<bool>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawProfile {
    Both(String),
    Split { forward: String, reverse: String },
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Reads a scenario file, with profiles by name from `profiles_dir`
/// (`NAME.netem`).
pub fn load(path: &Path, profiles_dir: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        key: "-".into(),
        message: format!("cannot read it: {e}"),
    })?;
    parse(&file, &text, &|name| {
        std::fs::read_to_string(profiles_dir.join(format!("{name}.netem"))).ok()
    })
}

/// Where errors point: the file and its text, to turn byte offsets into
/// lines.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Result<T, ScenarioError> {
        Err(ScenarioError {
            file: self.file.to_string(),
            line: self.line(span.start),
            key: key.to_string(),
            message: message.into(),
        })
    }
}

/// Checks and expands a scenario. `profile` returns a named profile's file
/// text, if there is one by that name.
pub fn parse(
    file: &str,
    text: &str,
    profile: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    let src = Source { file, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError {
        file: file.to_string(),
        line: e.span().map_or(0, |s| src.line(s.start)),
        key: "-".into(),
        message: e.message().trim().to_string(),
    })?;
    let duration = parse_duration(&src, &raw.duration, "duration")?;
    if duration.is_zero() {
        return src.error(raw.duration.span(), "duration", "must be longer than zero");
    }
    let warmup = match &raw.warmup {
        Some(w) => parse_duration(&src, w, "warmup")?,
        None => Duration::from_secs(1),
    };
    let trials = match &raw.trials {
        Some(t) if !(1..=10_000).contains(t.get_ref()) => {
            return src.error(t.span(), "trials", "trials per cell must be 1 to 10000")
        }
        Some(t) => *t.get_ref() as u32,
        None => 1,
    };
    let seed = match &raw.seed {
        Some(s) if *s.get_ref() < 0 => return src.error(s.span(), "seed", "must not be negative"),
        Some(s) => *s.get_ref() as u64,
        None => 1,
    };
    let order = match raw.order.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
        None | Some(("random", _)) => Order::Random,
        Some(("as-written", _)) => Order::AsWritten,
        Some((other, span)) => {
            return src.error(
                span,
                "order",
                format!("{other:?}: expected \"random\" or \"as-written\""),
            )
        }
    };
    let matrices = raw.matrix.unwrap_or_default();
    if matrices.is_empty() {
        return src.error(0..0, "matrix", "no [[matrix]] entry: nothing to run");
    }
    let mut cells = Vec::new();
    for (k, m) in matrices.iter().enumerate() {
        expand(&src, k, m, profile, &mut cells)?;
    }
    let mut seen = std::collections::HashSet::new();
    for c in &cells {
        if !seen.insert(c.id.clone()) {
            return src
                .error(0..0, "matrix", format!("cell {:?} appears twice", c.id))
                .map_err(|mut e| {
                    e.line = c.line;
                    e
                });
        }
    }
    Ok(Scenario {
        name: raw.name.into_inner(),
        description: raw.description,
        duration,
        warmup,
        trials,
        seed,
        order,
        cells,
    })
}

fn parse_duration(src: &Source, value: &Spanned<String>, key: &str) -> Result<Duration, ScenarioError> {
    humantime::parse_duration(value.get_ref()).or_else(|e| {
        src.error(
            value.span(),
            key,
            format!(
                "{:?} is not a duration ({e}): e.g. \"3s\" or \"500ms\"",
                value.get_ref()
            ),
        )
    })
}

/// Which workloads take a parameter.
fn applies(param: &str, workload: Workload) -> bool {
    use Workload::*;
    match param {
        "rate" => matches!(workload, Rr | Multistream),
        "streams" => workload == Multistream,
        "bitrate" => workload == Stream,
        "conn_rate" | "close" => matches!(workload, Churn | Handshake),
        _ => true,
    }
}

fn expand(
    src: &Source,
    k: usize,
    m: &Spanned<RawMatrix>,
    profile: &dyn Fn(&str) -> Option<String>,
    cells: &mut Vec<Cell>,
) -> Result<(), ScenarioError> {
    let at = |key: &str| format!("matrix[{k}].{key}");
    let line = src.line(m.span().start);
    let m = m.get_ref();
    let workload: Workload = m
        .workload
        .get_ref()
        .parse()
        .or_else(|e: String| src.error(m.workload.span(), &at("workload"), e))?;
    if m.transports.get_ref().is_empty() {
        return src.error(m.transports.span(), &at("transports"), "no transport listed");
    }
    let mut transports = Vec::new();
    for t in m.transports.get_ref() {
        let transport: Transport = t
            .get_ref()
            .parse()
            .or_else(|e: String| src.error(t.span(), &at("transports"), e))?;
        if !workload.transports().contains(&transport) {
            let names: Vec<&str> = workload.transports().iter().map(|t| t.name()).collect();
            return src.error(
                t.span(),
                &at("transports"),
                format!(
                    "{transport} does not run workload {workload}: it runs on {}",
                    names.join(", ")
                ),
            );
        }
        transports.push(transport);
    }
    let profiles = match &m.profiles {
        None => vec![LinkProfile {
            name: "none".into(),
            link: None,
        }],
        Some(list) if list.get_ref().is_empty() => {
            return src.error(
                list.span(),
                &at("profiles"),
                "no profile listed (\"none\" for loopback)",
            )
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|p| link_profile(src, p, &at("profiles"), profile))
            .collect::<Result<_, _>>()?,
    };

    // Each parameter's values, checked; absent ones leave the default.
    let mut axes: Vec<(&str, Vec<Value>)> = Vec::new();
    let positive = |key: &str,
                    v: &Option<Spanned<OneOrMany<f64>>>,
                    axes: &mut Vec<(&'static str, Vec<Value>)>,
                    name: &'static str|
     -> Result<(), ScenarioError> {
        if let Some(v) = v {
            let values = v.get_ref().values();
            if values.is_empty() {
                return src.error(v.span(), key, "an empty list: give at least one value");
            }
            if let Some(bad) = values.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return src.error(v.span(), key, format!("{bad} must be a positive number"));
            }
            axes.push((name, values.into_iter().map(Value::Number).collect()));
        }
        Ok(())
    };
    positive(&at("rate"), &m.rate, &mut axes, "rate")?;
    positive(&at("bitrate"), &m.bitrate, &mut axes, "bitrate")?;
    positive(&at("conn_rate"), &m.conn_rate, &mut axes, "conn_rate")?;
    for (name, v) in [("size", &m.size), ("streams", &m.streams)] {
        if let Some(v) = v {
            let values = v.get_ref().values();
            if values.is_empty() {
                return src.error(v.span(), &at(name), "an empty list: give at least one value");
            }
            if let Some(bad) = values.iter().find(|x| !(1..=u32::MAX as i64).contains(x)) {
                return src.error(
                    v.span(),
                    &at(name),
                    format!("{bad} must be a positive whole number"),
                );
            }
            axes.push((
                name,
                values.into_iter().map(|x| Value::Number(x as f64)).collect(),
            ));
        }
    }
    if let Some(v) = &m.close {
        let mut values = Vec::new();
        for c in v.get_ref().values() {
            let mode: CloseMode = c
                .parse()
                .or_else(|e: String| src.error(v.span(), &at("close"), e))?;
            values.push(Value::Close(mode));
        }
        axes.push(("close", values));
    }
    if let Some(v) = &m.cc {
        axes.push(("cc", v.get_ref().values().into_iter().map(Value::Text).collect()));
    }
    for (name, _) in &axes {
        if !applies(name, workload) {
            let span = match *name {
                "rate" => m.rate.as_ref().map(|v| v.span()),
                "streams" => m.streams.as_ref().map(|v| v.span()),
                "bitrate" => m.bitrate.as_ref().map(|v| v.span()),
                "conn_rate" => m.conn_rate.as_ref().map(|v| v.span()),
                _ => m.close.as_ref().map(|v| v.span()),
            };
            return src.error(
                span.unwrap_or(0..0),
                &at(name),
                format!("does not apply to workload {workload}"),
            );
        }
    }

    for transport in &transports {
        for link in &profiles {
            for combo in product(&axes) {
                let mut params = Params::default();
                let mut label = format!("{workload} {transport} {}", link.name);
                for (name, value) in &combo {
                    label.push_str(&format!(" {name}={value}"));
                    match (*name, value) {
                        ("rate", Value::Number(x)) => params.rate = Some(*x),
                        ("bitrate", Value::Number(x)) => params.bitrate = Some(*x),
                        ("conn_rate", Value::Number(x)) => params.conn_rate = Some(*x),
                        ("size", Value::Number(x)) => params.size = Some(*x as u32),
                        ("streams", Value::Number(x)) => params.streams = Some(*x as u32),
                        ("close", Value::Close(c)) => params.close = Some(*c),
                        ("cc", Value::Text(t)) => params.cc = Some(t.clone()),
                        _ => unreachable!("each axis holds its own kind of value"),
                    }
                }
                cells.push(Cell {
                    id: label,
                    workload,
                    transport: *transport,
                    profile: link.clone(),
                    params,
                    line,
                    skip_without_root: m.skip_without_root.unwrap_or(false),
                });
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Close(CloseMode),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x}"),
            Value::Close(c) => write!(f, "{c}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// Every combination of the axes' values, in order.
fn product<'a>(axes: &'a [(&'a str, Vec<Value>)]) -> Vec<Vec<(&'a str, Value)>> {
    let mut out = vec![Vec::new()];
    for (name, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((*name, v.clone()));
                    next
                })
            })
            .collect();
    }
    out
}

fn link_profile(
    src: &Source,
    p: &Spanned<RawProfile>,
    key: &str,
    profile: &dyn Fn(&str) -> Option<String>,
) -> Result<LinkProfile, ScenarioError> {
    let one = |text: &str| -> Result<Option<NetemSpec>, ScenarioError> {
        let text = text.trim();
        if text == "none" {
            return Ok(None);
        }
        // A name is one word of letters, digits, '-' and '_'; a netem
        // string has spaces.
        let is_name = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let parsed = match (is_name, profile(text)) {
            (true, Some(file)) => NetemSpec::parse_profile_file(&file),
            (true, None) => {
                return src.error(
                    p.span(),
                    key,
                    format!(
                        "no profile named {text:?}: use \"none\", a file's name from netem-scripts/profiles/, or \
                         a netem string such as \"delay 10ms loss 1%\""
                    ),
                )
            }
            (false, _) => NetemSpec::parse(text),
        };
        parsed.map(Some).or_else(|e| {
            src.error(
                p.span(),
                key,
                format!("{text:?} is not a valid netem profile: {e}"),
            )
        })
    };
    let (name, forward, reverse) = match p.get_ref() {
        RawProfile::Both(s) => (s.trim().to_string(), one(s)?, one(s)?),
        RawProfile::Split { forward, reverse } => (
            format!("{}/{}", forward.trim(), reverse.trim()),
            one(forward)?,
            one(reverse)?,
        ),
    };
    let link = match (forward, reverse) {
        (None, None) => None,
        (f, r) => Some((f.unwrap_or_default(), r.unwrap_or_default())),
    };
    Ok(LinkProfile { name, link })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(name: &str) -> Option<String> {
        (name == "lan").then(|| "# a LAN\ndelay 250us 50us\n".to_string())
    }

    fn check(text: &str) -> Result<Scenario, ScenarioError> {
        parse("s.toml", text, &profiles)
    }

    const GOOD: &str = r#"
name = "t"
duration = "2s"
warmup = "500ms"
trials = 3
seed = 9

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["none", "lan", { forward = "delay 5ms loss 1%", reverse = "none" }]
rate = [500, 1000]
size = 64

[[matrix]]
workload = "churn"
transports = ["tcp"]
close = ["client", "rst"]
"#;

    #[test]
    fn a_matrix_expands_into_every_combination() {
        let s = check(GOOD).unwrap();
        assert_eq!(
            (s.duration, s.warmup, s.trials, s.seed),
            (Duration::from_secs(2), Duration::from_millis(500), 3, 9)
        );
        // 2 transports x 3 profiles x 2 rates, then 2 close modes.
        assert_eq!(s.cells.len(), 12 + 2);
        let c = &s.cells[0];
        assert_eq!(c.id, "rr udp none rate=500 size=64");
        assert_eq!(
            (c.params.rate, c.params.size, c.profile.link.is_none()),
            (Some(500.0), Some(64), true)
        );
        let lan = s.cells.iter().find(|c| c.profile.name == "lan").unwrap();
        let (f, r) = lan.profile.link.as_ref().unwrap();
        assert_eq!(f.delay.unwrap().latency_ns, 250_000);
        assert_eq!(f, r);
        let split = s.cells.iter().find(|c| c.profile.name.contains('/')).unwrap();
        let (f, r) = split.profile.link.as_ref().unwrap();
        assert!(f.loss.is_some() && r.loss.is_none() && r.delay.is_none());
        assert_eq!(s.cells[13].params.close, Some(CloseMode::Rst));
        assert_eq!(s.cells[13].line, 15, "its [[matrix]] line");
    }

    #[test]
    fn the_order_is_random_but_fixed_by_the_seed() {
        let s = check(GOOD).unwrap();
        let order = s.trials();
        assert_eq!(order.len(), 14 * 3);
        assert_eq!(order, s.trials(), "same seed, same order");
        let mut sorted = order.clone();
        sorted.sort_by_key(|t| (t.cell, t.repetition));
        assert_ne!(order, sorted, "shuffled");
        assert_eq!(
            sorted.windows(2).filter(|w| w[0] == w[1]).count(),
            0,
            "each trial once"
        );
        let other = Scenario {
            seed: 10,
            ..s.clone()
        };
        assert_ne!(order, other.trials(), "another seed, another order");
        let written = Scenario {
            order: Order::AsWritten,
            ..s
        };
        assert_eq!(written.trials(), sorted);
    }

    fn error(text: &str) -> ScenarioError {
        check(text).unwrap_err()
    }

    #[test]
    fn errors_say_file_line_and_key() {
        let bad_transport = GOOD.replace(r#"["udp", "tcp"]"#, r#"["udp", "sctp"]"#);
        let e = error(&bad_transport);
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            ("s.toml", 10, "matrix[0].transports")
        );
        assert!(e.message.contains("unknown transport \"sctp\""), "{e}");
        assert!(e.to_string().starts_with("s.toml:10: matrix[0].transports: "));

        let wrong_pair = GOOD.replace(r#"transports = ["tcp"]"#, r#"transports = ["tcp-mux"]"#);
        let e = error(&wrong_pair);
        assert_eq!((e.line, e.key.as_str()), (17, "matrix[1].transports"));
        assert!(e.message.contains("does not run workload churn"), "{e}");

        let negative = GOOD.replace("rate = [500, 1000]", "rate = [500, -1]");
        let e = error(&negative);
        assert_eq!((e.line, e.key.as_str()), (12, "matrix[0].rate"));
        assert!(e.message.contains("-1 must be a positive number"), "{e}");

        let profile = GOOD.replace(r#""lan","#, r#""wan","#);
        let e = error(&profile);
        assert_eq!((e.line, e.key.as_str()), (11, "matrix[0].profiles"));
        assert!(e.message.contains("no profile named \"wan\""), "{e}");

        let netem = GOOD.replace("delay 5ms loss 1%", "delay 5ms loss lots");
        let e = error(&netem);
        assert_eq!(e.line, 11);
        assert!(e.message.contains("not a valid netem profile"), "{e}");

        let misplaced = GOOD.replace(r#"close = ["client", "rst"]"#, "streams = 8");
        let e = error(&misplaced);
        assert_eq!((e.line, e.key.as_str()), (18, "matrix[1].streams"));
        assert!(e.message.contains("does not apply to workload churn"), "{e}");

        let unknown_key = GOOD.replace("seed = 9", "seed = 9\nrepeat = 2");
        let e = error(&unknown_key);
        assert_eq!(e.line, 7);
        assert!(e.message.contains("repeat"), "{e}");

        let duration = GOOD.replace(r#"duration = "2s""#, r#"duration = "two""#);
        let e = error(&duration);
        assert_eq!((e.line, e.key.as_str()), (3, "duration"));

        let twice = GOOD.replace(r#"["client", "rst"]"#, r#"["client", "client"]"#);
        assert!(error(&twice).message.contains("appears twice"));

        let empty = "name = \"e\"\nduration = \"1s\"\n";
        assert!(error(empty).message.contains("nothing to run"));

        let syntax = "name = \"e\"\nduration = \n";
        assert_eq!(error(syntax).line, 2);
    }
}
