//! Scenario files: a TOML matrix of transports x workloads x impairment
//! profiles x parameters, with trials per cell, duration, warm-up, seed and
//! order. [`parse`] checks a file and reports the first problem with its
//! file, line and key, before anything runs (a scenario of more than
//! [`MAX_TRIALS`] trials among them, counted before any cell is made);
//! [`Scenario::trials`] expands the cells into trials in a seeded random
//! order (or as written).
//!
//! ```toml
//! name = "quick"
//! duration = "2s"
//! warmup = "500ms"
//! trials = 3
//! retry_invalid = 2
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
//! gives each direction its own. A table with `schedule` (both directions),
//! `forward_schedule` or `reverse_schedule` gives a direction an impairment
//! schedule instead (`{ schedule = "0s: delay 5ms; partition 2s 1s" }`,
//! `{ forward = "delay 5ms", reverse_schedule = "0s: delay 5ms; partition
//! 2s 1s" }`), in `--impair-schedule`'s grammar. A parameter is one value
//! or a list of them; lists multiply the cells.

use linkemu::{ImpairSchedule, NetemSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;
use toml::Spanned;
use transbench_wire::{Transport, Workload};

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
    /// More attempts a trial gets when it is invalid only because the
    /// sender missed its schedule (`retry_invalid`, at most
    /// [`MAX_RETRY_INVALID`]); every attempt is kept.
    pub retry_invalid: u32,
    pub seed: u64,
    pub order: Order,
    pub cells: Vec<Cell>,
    /// `[receiver]`: run every cell against a receiver on another host.
    pub receiver: Option<ReceiverTable>,
}

/// A scenario's `[receiver]` table: a `transbench receiver` already
/// running on another host (`run --receiver` overrides it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverTable {
    /// `HOST:PORT` of its control port.
    pub address: String,
    /// The shared secret's file, as written (relative to the scenario
    /// file's directory when not absolute).
    pub secret_file: Option<std::path::PathBuf>,
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
    /// `None`: no emulated link (loopback). With schedules, their first
    /// profiles.
    pub link: Option<(NetemSpec, NetemSpec)>,
    /// Forward and reverse schedules, when either direction has one.
    pub schedules: Option<(ImpairSchedule, ImpairSchedule)>,
}

/// A cell's trial options, by the name of their flag (`conn_rate` is
/// `--conn-rate`), each with its value as written (`true` for a flag
/// without a value); unset ones take the workload's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Checks one trial option of a workload: `Err` says what is wrong with it.
pub type OptionCheck<'a> = &'a dyn Fn(Workload, &str, &str) -> Result<(), String>;

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
    retry_invalid: Option<Spanned<i64>>,
    seed: Option<Spanned<i64>>,
    order: Option<Spanned<String>>,
    matrix: Option<Vec<Spanned<RawMatrix>>>,
    receiver: Option<RawReceiver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    address: Spanned<String>,
    secret_file: Option<String>,
}

/// A matrix entry's structural keys; every other key is a trial option
/// (read again as [`RawOptions`]).
#[derive(Deserialize)]
struct RawMatrix {
    workload: Spanned<String>,
    transports: Spanned<Vec<Spanned<String>>>,
    profiles: Option<Spanned<Vec<Spanned<RawProfile>>>>,
    skip_without_root: Option<bool>,
}

/// Every key of every matrix entry, with where it is.
#[derive(Deserialize)]
struct RawOptions {
    matrix: Option<Vec<BTreeMap<String, Spanned<toml::Value>>>>,
}

/// The most trials one scenario may run (cells x trials per cell),
/// counted before any cell is made. A run rewrites results.json after
/// every trial, a few KB each (a multistream timeline up to 1.6 MB):
/// 10,000 trials make a file of 50 MB or more, rewritten as often, and at
/// a few seconds a trial, most of a day of running; it is also the most
/// trials one cell may have. Beyond it a scenario is a list multiplying
/// another by mistake (a 14 KB file can ask for 10^9 cells): split it.
pub const MAX_TRIALS: u64 = 10_000;

/// The most `retry_invalid` may be.
pub const MAX_RETRY_INVALID: u32 = 10;

/// Keys of a matrix entry that are not trial options.
const STRUCTURAL: [&str; 4] = ["workload", "transports", "profiles", "skip_without_root"];

/// The order options take in a cell's id: these first (the ids earlier
/// runs recorded, which `--resume` and `compare` match), then any other
/// alphabetically.
const ID_ORDER: [&str; 7] = ["rate", "bitrate", "conn_rate", "size", "streams", "close", "cc"];

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawProfile {
    Both(String),
    Split { forward: String, reverse: String },
    Scheduled(RawScheduled),
}

/// A profile table with a schedule in it.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawScheduled {
    schedule: Option<String>,
    forward_schedule: Option<String>,
    reverse_schedule: Option<String>,
    forward: Option<String>,
    reverse: Option<String>,
}

/// Reads a scenario file, with profiles by name from `profiles_dir`
/// (`NAME.netem`) and each trial option checked by `option`.
pub fn load(path: &Path, profiles_dir: &Path, option: OptionCheck) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        key: "-".into(),
        message: format!("cannot read it: {e}"),
    })?;
    let profile = |name: &str| std::fs::read_to_string(profiles_dir.join(format!("{name}.netem"))).ok();
    parse_checked(&file, &text, &profile, option)
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

/// Checks and expands a scenario, taking its trial options as written
/// (whoever runs it checks them: see [`parse_checked`]). `profile`
/// returns a named profile's file text, if there is one by that name.
pub fn parse(
    file: &str,
    text: &str,
    profile: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    parse_checked(file, text, profile, &|_, _, _| Ok(()))
}

/// [`parse`], with each value of each trial option checked by `option`,
/// so a bad one is reported at its key.
pub fn parse_checked(
    file: &str,
    text: &str,
    profile: &dyn Fn(&str) -> Option<String>,
    option: OptionCheck,
) -> Result<Scenario, ScenarioError> {
    let src = Source { file, text };
    let toml_error = |e: toml::de::Error| ScenarioError {
        file: file.to_string(),
        line: e.span().map_or(0, |s| src.line(s.start)),
        key: "-".into(),
        message: e.message().trim().to_string(),
    };
    let raw: RawScenario = toml::from_str(text).map_err(toml_error)?;
    let options: RawOptions = toml::from_str(text).map_err(toml_error)?;
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
    let retry_invalid = match &raw.retry_invalid {
        Some(r) if !(0..=i64::from(MAX_RETRY_INVALID)).contains(r.get_ref()) => {
            return src.error(
                r.span(),
                "retry_invalid",
                format!(
                    "retries of a trial that missed its schedule must be 0 to {MAX_RETRY_INVALID}: a machine \
                     that misses more often is too busy to measure on"
                ),
            )
        }
        Some(r) => *r.get_ref() as u32,
        None => 0,
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
    let options = options.matrix.unwrap_or_default();
    count_trials(&src, &matrices, &options, trials)?;
    let mut cells = Vec::new();
    for (k, (m, opts)) in matrices.iter().zip(&options).enumerate() {
        expand(&src, k, m, opts, profile, option, &mut cells)?;
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
    let receiver = match raw.receiver {
        Some(r) => {
            let port_given = r
                .address
                .get_ref()
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_given {
                return src.error(
                    r.address.span(),
                    "receiver.address",
                    "must be HOST:PORT, the control port `transbench receiver` listens on (e.g. \"lab-b:7000\" or \"[2001:db8::2]:7000\")",
                );
            }
            Some(ReceiverTable {
                address: r.address.into_inner(),
                secret_file: r.secret_file.map(Into::into),
            })
        }
        None => None,
    };
    Ok(Scenario {
        receiver,
        name: raw.name.into_inner(),
        description: raw.description,
        duration,
        warmup,
        trials,
        retry_invalid,
        seed,
        order,
        cells,
    })
}

/// Refuses a scenario of more than [`MAX_TRIALS`] trials, at the matrix
/// entry that takes it past, from the lengths of its lists alone: nothing
/// is made or checked before.
fn count_trials(
    src: &Source,
    matrices: &[Spanned<RawMatrix>],
    options: &[BTreeMap<String, Spanned<toml::Value>>],
    trials: u32,
) -> Result<(), ScenarioError> {
    let mut cells = 0u64;
    for (k, (m, opts)) in matrices.iter().zip(options).enumerate() {
        let raw = m.get_ref();
        let mut factors = vec![(raw.transports.get_ref().len() as u64, "transports".to_string())];
        if let Some(p) = &raw.profiles {
            factors.push((p.get_ref().len() as u64, "profiles".into()));
        }
        for (key, value) in opts.iter().filter(|(key, _)| !STRUCTURAL.contains(&key.as_str())) {
            if let toml::Value::Array(list) = value.get_ref() {
                factors.push((list.len() as u64, format!("{key} values")));
            }
        }
        let made = factors.iter().fold(1u64, |n, (f, _)| n.saturating_mul(*f));
        cells = cells.saturating_add(made);
        let total = cells.saturating_mul(trials.into());
        if total > MAX_TRIALS {
            let product: Vec<String> = factors
                .iter()
                .filter(|(n, _)| *n > 1)
                .map(|(n, what)| format!("{n} {what}"))
                .collect();
            let product = match product.is_empty() {
                true => String::new(),
                false => format!(" ({})", product.join(" x ")),
            };
            let before = match cells - made {
                0 => String::new(),
                n => format!(" after {n} before it"),
            };
            return src.error(
                m.span(),
                &format!("matrix[{k}]"),
                format!(
                    "makes {made} cells{product}{before}, so with trials = {trials} the scenario would run \
                     {total} trials, more than the {MAX_TRIALS} one scenario may: trim its lists, or split \
                     it into several scenarios"
                ),
            );
        }
    }
    Ok(())
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

fn expand(
    src: &Source,
    k: usize,
    m: &Spanned<RawMatrix>,
    options: &BTreeMap<String, Spanned<toml::Value>>,
    profile: &dyn Fn(&str) -> Option<String>,
    option: OptionCheck,
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
            schedules: None,
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

    // Each option's values, checked; absent ones leave the default.
    let mut axes: Vec<(&str, Vec<String>)> = Vec::new();
    for (key, value) in options {
        if STRUCTURAL.contains(&key.as_str()) {
            continue;
        }
        if matches!(key.as_str(), "duration" | "warmup") {
            return src.error(
                value.span(),
                &at(key),
                "is set once, at the top of the file, for every cell",
            );
        }
        let values = match value.get_ref() {
            toml::Value::Array(list) => list.iter().map(scalar).collect::<Option<Vec<_>>>(),
            one => scalar(one).map(|v| vec![v]),
        };
        let Some(values) = values else {
            return src.error(
                value.span(),
                &at(key),
                "expected a number, a string, true or false, or a list of them",
            );
        };
        if values.is_empty() {
            return src.error(value.span(), &at(key), "an empty list: give at least one value");
        }
        for v in &values {
            option(workload, key, v).or_else(|e| src.error(value.span(), &at(key), e))?;
        }
        axes.push((key.as_str(), values));
    }
    let rank = |key: &str| ID_ORDER.iter().position(|k| *k == key).unwrap_or(ID_ORDER.len());
    axes.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));

    for transport in &transports {
        for link in &profiles {
            for combo in product(&axes) {
                let mut label = format!("{workload} {transport} {}", link.name);
                for (name, value) in &combo {
                    label.push_str(&format!(" {name}={value}"));
                }
                let params = Params(combo.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
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

/// A scalar option value as text: numbers as written (a float as Rust
/// prints it, so `1000.0` is `1000`), strings as they are.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every combination of the axes' values, in order.
fn product<'a>(axes: &'a [(&'a str, Vec<String>)]) -> Vec<Vec<(&'a str, String)>> {
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
        RawProfile::Scheduled(raw) => return scheduled_profile(src, p, key, raw, &one),
    };
    let link = match (forward, reverse) {
        (None, None) => None,
        (f, r) => Some((f.unwrap_or_default(), r.unwrap_or_default())),
    };
    Ok(LinkProfile {
        name,
        link,
        schedules: None,
    })
}

/// A profile table with a schedule: each direction its own schedule (or
/// `schedule`'s), or else its profile (or none).
fn scheduled_profile(
    src: &Source,
    p: &Spanned<RawProfile>,
    key: &str,
    raw: &RawScheduled,
    one: &dyn Fn(&str) -> Result<Option<NetemSpec>, ScenarioError>,
) -> Result<LinkProfile, ScenarioError> {
    let direction = |name: &str,
                     own: &Option<String>,
                     profile: &Option<String>|
     -> Result<(String, ImpairSchedule), ScenarioError> {
        match (own.as_ref().or(raw.schedule.as_ref()), profile) {
            (Some(_), Some(_)) => src.error(
                p.span(),
                key,
                format!(
                    "the {name} direction has both a profile and a schedule: put the profile in the schedule as \
                     its first step (\"0s: PROFILE; ...\")"
                ),
            ),
            (Some(text), None) => match ImpairSchedule::parse(text) {
                Ok(s) => Ok((text.trim().to_string(), s)),
                Err(e) => src.error(p.span(), key, format!("{text:?} is not a valid impairment schedule: {e}")),
            },
            (None, Some(text)) => Ok((
                text.trim().to_string(),
                ImpairSchedule::constant(one(text)?.unwrap_or_default()),
            )),
            (None, None) => Ok(("none".into(), ImpairSchedule::constant(NetemSpec::default()))),
        }
    };
    let (forward_name, forward) = direction("forward", &raw.forward_schedule, &raw.forward)?;
    let (reverse_name, reverse) = direction("reverse", &raw.reverse_schedule, &raw.reverse)?;
    if forward.is_constant() && reverse.is_constant() {
        return src.error(
            p.span(),
            key,
            "a schedule that never changes: give it a step or shape after 0s, or write the profile as a string"
                .to_string(),
        );
    }
    let name = match forward_name == reverse_name {
        true => forward_name,
        false => format!("{forward_name}/{reverse_name}"),
    };
    Ok(LinkProfile {
        name,
        link: Some((forward.at(0), reverse.at(0))),
        schedules: Some((forward, reverse)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(name: &str) -> Option<String> {
        (name == "lan").then(|| "# a LAN\ndelay 250us 50us\n".to_string())
    }

    /// Stands in for the agents' checks of trial options: what matters
    /// here is where its refusals are reported.
    fn option(workload: Workload, key: &str, value: &str) -> Result<(), String> {
        match (key, value.starts_with('-'), workload) {
            ("rate", true, _) => Err(format!("{value} must be a positive number")),
            ("streams", _, Workload::Churn) => Err("does not apply to workload churn".into()),
            _ => Ok(()),
        }
    }

    fn check(text: &str) -> Result<Scenario, ScenarioError> {
        parse_checked("s.toml", text, &profiles, &option)
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
            (s.duration, s.warmup, s.trials, s.seed, s.retry_invalid),
            (Duration::from_secs(2), Duration::from_millis(500), 3, 9, 0)
        );
        let retried = check(&GOOD.replace("seed = 9", "seed = 9\nretry_invalid = 2")).unwrap();
        assert_eq!(retried.retry_invalid, 2);
        // 2 transports x 3 profiles x 2 rates, then 2 close modes.
        assert_eq!(s.cells.len(), 12 + 2);
        let c = &s.cells[0];
        assert_eq!(c.id, "rr udp none rate=500 size=64");
        assert_eq!(
            (
                c.params.get("rate"),
                c.params.get("size"),
                c.profile.link.is_none()
            ),
            (Some("500"), Some("64"), true)
        );
        let lan = s.cells.iter().find(|c| c.profile.name == "lan").unwrap();
        let (f, r) = lan.profile.link.as_ref().unwrap();
        assert_eq!(f.delay.unwrap().latency_ns, 250_000);
        assert_eq!(f, r);
        let split = s.cells.iter().find(|c| c.profile.name.contains('/')).unwrap();
        let (f, r) = split.profile.link.as_ref().unwrap();
        assert!(f.loss.is_some() && r.loss.is_none() && r.delay.is_none());
        assert_eq!(s.cells[13].params.get("close"), Some("rst"));
        assert_eq!(s.cells[13].line, 15, "its [[matrix]] line");
    }

    #[test]
    fn any_option_is_an_axis_and_ids_keep_their_order() {
        let text = GOOD.replace(
            "size = 64",
            "size = 64\ngso = [true, false]\ncc = \"bbr\"\nloss_timeout = \"1s\"",
        );
        let s = parse("s.toml", &text, &profiles).unwrap();
        assert_eq!(s.cells.len(), 2 * 12 + 2);
        // rate and size first, as ids always had them; the rest alphabetically.
        assert_eq!(
            s.cells[0].id,
            "rr udp none rate=500 size=64 cc=bbr gso=true loss_timeout=1s"
        );
        assert_eq!(s.cells[0].params.get("gso"), Some("true"));
        assert_eq!(s.cells[1].params.get("gso"), Some("false"));
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

    #[test]
    fn a_receiver_table_names_a_host_and_port_and_its_secret() {
        assert_eq!(check(GOOD).unwrap().receiver, None);
        let remote = GOOD.replacen(
            "seed = 9\n",
            "seed = 9\n\n[receiver]\naddress = \"lab-b:7000\"\nsecret_file = \"secret\"\n",
            1,
        );
        assert_eq!(
            check(&remote).unwrap().receiver,
            Some(ReceiverTable {
                address: "lab-b:7000".into(),
                secret_file: Some("secret".into())
            })
        );
        for bad in ["lab-b", "lab-b:0", ":7000", "lab-b:seventy"] {
            let e = error(&GOOD.replacen(
                "seed = 9\n",
                &format!("seed = 9\n\n[receiver]\naddress = \"{bad}\"\n"),
                1,
            ));
            assert_eq!((e.line, e.key.as_str()), (9, "receiver.address"), "{bad}: {e}");
        }
        let unknown = error(&GOOD.replacen("seed = 9\n", "seed = 9\n\n[receiver]\nadress = \"x:1\"\n", 1));
        assert!(unknown.message.contains("adress"), "{unknown}");
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

        let retries = GOOD.replace("seed = 9", "seed = 9\nretry_invalid = 11");
        let e = error(&retries);
        assert_eq!((e.line, e.key.as_str()), (7, "retry_invalid"));
        assert!(e.message.contains("must be 0 to 10"), "{e}");

        let unknown_key = GOOD.replace("seed = 9", "seed = 9\nrepeat = 2");
        let e = error(&unknown_key);
        assert_eq!(e.line, 7);
        assert!(e.message.contains("repeat"), "{e}");

        let duration = GOOD.replace(r#"duration = "2s""#, r#"duration = "two""#);
        let e = error(&duration);
        assert_eq!((e.line, e.key.as_str()), (3, "duration"));

        let at_top = GOOD.replace("size = 64", "size = 64\nduration = \"1s\"");
        let e = error(&at_top);
        assert_eq!((e.line, e.key.as_str()), (14, "matrix[0].duration"));

        let table = GOOD.replace("size = 64", "size = { bytes = 64 }");
        assert!(error(&table).message.contains("expected a number"));

        let twice = GOOD.replace(r#"["client", "rst"]"#, r#"["client", "client"]"#);
        assert!(error(&twice).message.contains("appears twice"));

        let empty = "name = \"e\"\nduration = \"1s\"\n";
        assert!(error(empty).message.contains("nothing to run"));

        let syntax = "name = \"e\"\nduration = \n";
        assert_eq!(error(syntax).line, 2);
    }

    /// `n` values, as a TOML list.
    fn list(n: usize) -> String {
        let values: Vec<String> = (1..=n).map(|v| v.to_string()).collect();
        format!("[{}]", values.join(", "))
    }

    #[test]
    fn a_billion_cells_are_refused_before_any_is_made() {
        // Every value is checked, so an expansion would show: it never runs.
        let checked = std::cell::Cell::new(0u32);
        let option = |_: Workload, _: &str, _: &str| {
            checked.set(checked.get() + 1);
            Ok(())
        };
        let text = format!(
            "name = \"big\"\nduration = \"1s\"\ntrials = 3\n\n[[matrix]]\nworkload = \"rr\"\n\
             transports = [\"udp\"]\nrate = {}\nsize = {}\nloss_timeout = {}\n",
            list(1000),
            list(1000),
            list(1000)
        );
        let e = parse_checked("big.toml", &text, &profiles, &option).unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            ("big.toml", 5, "matrix[0]")
        );
        assert!(
            e.message.starts_with(
                "makes 1000000000 cells (1000 loss_timeout values x 1000 rate values x 1000 size values), \
                 so with trials = 3 the scenario would run 3000000000 trials, more than the 10000"
            ),
            "{e}"
        );
        assert_eq!(checked.get(), 0, "no option was checked");
    }

    #[test]
    fn the_limit_counts_trials_over_every_entry() {
        let entry = |sizes: usize| {
            format!(
                "\n[[matrix]]\nworkload = \"rr\"\ntransports = [\"udp\"]\nrate = {}\nsize = {}\n",
                list(100),
                list(sizes)
            )
        };
        let scenario = |trials: u32, entries: &str| {
            format!("name = \"n\"\nduration = \"1s\"\ntrials = {trials}\n{entries}")
        };
        // 100 x 100 cells, once each: exactly the limit.
        let at_limit = check(&scenario(1, &entry(100))).unwrap();
        assert_eq!(at_limit.trials().len() as u64, MAX_TRIALS);
        let e = error(&scenario(2, &entry(100)));
        assert_eq!(e.key, "matrix[0]");
        assert!(e.message.contains("20000 trials"), "{e}");
        // The entry that takes the scenario past the limit is the one named.
        let e = error(&scenario(1, &(entry(50) + &entry(51).replace("udp", "tcp"))));
        assert_eq!((e.line, e.key.as_str()), (11, "matrix[1]"));
        assert!(
            e.message
                .contains("makes 5100 cells (100 rate values x 51 size values) after 5000 before it"),
            "{e}"
        );
    }

    #[test]
    fn a_profile_table_may_give_a_direction_a_schedule() {
        let s = check(
            r#"
name = "s"
duration = "2s"
trials = 1
seed = 1

[[matrix]]
workload = "rr"
transports = ["tcp"]
profiles = [
  { schedule = "0s: delay 5ms; partition 2s 1s" },
  { forward = "lan", reverse_schedule = "0s: delay 5ms; partition 2s 1s" },
]
"#,
        )
        .unwrap();
        let both = &s.cells[0].profile;
        assert_eq!(both.name, "0s: delay 5ms; partition 2s 1s");
        let (f, r) = both.schedules.as_ref().unwrap();
        assert!(f.is_partitioned(2_500_000_000) && r.is_partitioned(2_500_000_000));
        assert_eq!(both.link.as_ref().unwrap().0, f.at(0));
        let one_way = &s.cells[1].profile;
        assert_eq!(one_way.name, "lan/0s: delay 5ms; partition 2s 1s");
        let (f, r) = one_way.schedules.as_ref().unwrap();
        assert!(f.is_constant() && !r.is_constant());
        assert_eq!(f.at(0), NetemSpec::parse("delay 250us 50us").unwrap());
    }

    #[test]
    fn a_scheduled_profile_s_mistakes_are_named() {
        for (profile, says) in [
            (
                r#"{ schedule = "0s: delay 5ms; 5s: los 100%" }"#,
                "not a valid impairment schedule",
            ),
            (
                r#"{ schedule = "0s: delay 5ms", forward = "lan" }"#,
                "both a profile and a schedule",
            ),
            (r#"{ forward_schedule = "0s: delay 5ms" }"#, "never changes"),
        ] {
            let e = check(&format!(
                "name = \"s\"\nduration = \"2s\"\ntrials = 1\nseed = 1\n[[matrix]]\nworkload = \"rr\"\ntransports = [\"tcp\"]\nprofiles = [{profile}]\n"
            ))
            .unwrap_err();
            assert!(e.message.contains(says), "{profile}: {e}");
            assert_eq!(e.line, 8, "{e}");
        }
    }
}
