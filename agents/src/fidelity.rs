//! `transbench fidelity probe` sends a set's profiles through one backend
//! and writes a trace per profile; `transbench fidelity compare` holds
//! the kernel's traces against linkemu's (`reports::fidelity`).
//! `netem-scripts/fidelity.sh` runs both sides (netem in a QEMU guest) and
//! regenerates the table in the docs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use linkemu::NetemSpec;
use testbed::{Backend, Testbed, RECEIVER_ADDR, SENDER_ADDR};
use transbench_reports::fidelity::{self, FidelitySet, ProbeTraceFile, TRACE_SCHEMA};
use transbench_reports::write_bytes_atomic;

pub fn read_set(path: &Path) -> anyhow::Result<FidelitySet> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the fidelity set {} (see bench/fidelity.toml)",
            path.display()
        )
    })?;
    FidelitySet::parse(&text).with_context(|| format!("{} is not a valid fidelity set", path.display()))
}

/// How long after the last datagram one may still arrive: the longest
/// delay the profile gives (jitter tables end near 4 jitters), a full
/// queue drained at its rate, a slot's longest wait, and half a second.
fn wait_for(spec: &NetemSpec) -> Duration {
    let delay = spec.delay.map_or(0, |d| d.latency_ns + 4 * d.jitter_ns);
    let drain = spec.rate.map_or(0, |r| {
        let frame = (testbed::probe::PAYLOAD_LEN + 28 + linkemu::pipeline::L2_HEADER_LEN) as u64;
        spec.effective_limit() as u64 * frame * 1_000_000_000 / r.bytes_per_sec.max(1)
    });
    let slot = spec.slot.map_or(0, |s| match s.interval {
        linkemu::spec::SlotInterval::Range { max_ns, .. } => max_ns,
        linkemu::spec::SlotInterval::Distributed {
            delay_ns, jitter_ns, ..
        } => delay_ns + 4 * jitter_ns,
    });
    Duration::from_nanos(delay + drain + slot) + Duration::from_millis(500)
}

/// linkemu's seed for a profile: fixed by its name, so a trace can be
/// made again decision for decision.
fn seed_for(name: &str) -> u64 {
    testbed::probe::fnv1a(name.as_bytes())
}

pub fn probe(set_path: &Path, backend: Backend, out: &Path, only: &[String]) -> anyhow::Result<()> {
    if !testbed::is_root() {
        bail!("transbench fidelity probe needs root: the probe crosses network namespaces");
    }
    let set = read_set(set_path)?;
    if let Some(name) = only.iter().find(|n| !set.profile.iter().any(|p| &&p.name == n)) {
        bail!(
            "--only {name}: {} has no such profile (it has: {})",
            set_path.display(),
            set.profile
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if backend == Backend::Netem && testbed::probe_netem().context("probing for tc netem")?.is_none() {
        bail!(
            "this kernel has no sch_netem (tc says the qdisc kind is unknown): probe the netem side inside \
             netem-scripts/vm-run.sh, as netem-scripts/fidelity.sh does"
        );
    }
    for removed in testbed::remove_stale() {
        eprintln!("{removed}");
    }
    let dir = out.join(backend.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let chosen: Vec<_> = set
        .profile
        .iter()
        .filter(|p| {
            only.is_empty() || p.name == fidelity::BASELINE || p.name == set.timing || only.contains(&p.name)
        })
        .collect();
    let bar = ProgressBar::new(chosen.len() as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("probing through {}", backend.name()));
    for p in chosen {
        bar.set_message(p.name.clone());
        let spec = p.spec();
        let count = set.count(p);
        let interval = Duration::from_micros(set.interval_us(p));
        let wait = wait_for(&spec);
        let none = NetemSpec::default();
        let bed = Testbed::up(backend, &spec, &none, seed_for(&p.name))
            .with_context(|| format!("profile {}: setting up the {} link", p.name, backend.name()))?;
        let path = testbed::probe::OneWay {
            from_ns: &bed.sender,
            from: SENDER_ADDR,
            to_ns: &bed.receiver,
            to: RECEIVER_ADDR,
        };
        let trace = testbed::probe::trace(path, count, interval, wait, true)
            .with_context(|| format!("profile {}: probing", p.name))?;
        drop(bed);
        let file = ProbeTraceFile {
            schema: TRACE_SCHEMA.into(),
            profile: p.name.clone(),
            netem: spec.to_string(),
            backend: backend.name().into(),
            kernel: kernel.clone(),
            interval_ns: interval.as_nanos() as u64,
            wait_ns: wait.as_nanos() as u64,
            sent: trace.sent,
            corrupted: trace.corrupted,
            ce_marked: trace.ce_marked,
            arrivals: trace
                .arrivals
                .iter()
                .map(|a| [a.seq, a.sent_ns, a.received_ns])
                .collect(),
        };
        let path = dir.join(format!("{}.json", p.name));
        let json = serde_json::to_vec(&file).expect("traces serialize");
        write_bytes_atomic(&path, &json)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("traces in {}", dir.display());
    Ok(())
}

fn read_traces(dir: &Path, set: &FidelitySet) -> anyhow::Result<Vec<ProbeTraceFile>> {
    let mut traces = Vec::new();
    for p in &set.profile {
        let path = dir.join(format!("{}.json", p.name));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let trace: ProbeTraceFile = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a probe trace (transbench fidelity probe writes them)",
                path.display()
            )
        })?;
        if trace.schema != TRACE_SCHEMA {
            bail!(
                "{} has schema {:?}; this build reads {TRACE_SCHEMA:?}: probe again",
                path.display(),
                trace.schema
            );
        }
        traces.push(trace);
    }
    Ok(traces)
}

#[derive(clap::Args)]
pub struct CompareOptions {
    /// The directory both probes wrote into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The profiles the traces were probed with (TOML), and their notes.
    #[arg(long, default_value = "bench/fidelity.toml", value_name = "FILE")]
    pub set: PathBuf,
    /// Also write the Markdown here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write the table as JSON (schema transbench-fidelity/1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How the table was made, for its header.
    #[arg(long, default_value = "netem-scripts/fidelity.sh", value_name = "TEXT")]
    pub command: String,
    /// Where the netem side ran, for its header.
    #[arg(long, default_value = "on this host", value_name = "TEXT")]
    pub netem_where: String,
}

/// Exit 0: no unexplained FAIL; 1: one or more; 2: inputs unusable.
pub fn compare(o: &CompareOptions) -> ExitCode {
    match try_compare(o) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("{failures} unexplained FAIL row(s): fix linkemu, or explain the kernel's behaviour in the set");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn try_compare(o: &CompareOptions) -> anyhow::Result<usize> {
    let set = read_set(&o.set)?;
    let kernel = read_traces(&o.dir.join(Backend::Netem.name()), &set)?;
    let emu = read_traces(&o.dir.join(Backend::Linkemu.name()), &set)?;
    if kernel.is_empty() || emu.is_empty() {
        bail!(
            "{} needs netem/ and linkemu/ traces (transbench fidelity probe --backend netem|linkemu --out {0})",
            o.dir.display()
        );
    }
    let table = fidelity::compare(&set, &kernel, &emu);
    let made = fidelity::Provenance {
        command: o.command.clone(),
        netem_where: o.netem_where.clone(),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string(),
    };
    let md = fidelity::markdown(&table, &set, &made);
    print!("{md}");
    if let Some(path) = &o.markdown {
        write_bytes_atomic(path, md.as_bytes())?;
    }
    if let Some(path) = &o.json {
        let mut json = serde_json::to_vec_pretty(&table).expect("tables serialize");
        json.push(b'\n');
        write_bytes_atomic(path, &json)?;
    }
    Ok(table.failures())
}
