//! `transbench run SCENARIO`: every trial of a scenario file, in its seeded
//! order, each on its own path (loopback, or a fresh emulated link with the
//! cell's profile); results.json rewritten after every trial, and
//! `--resume DIR` runs only the trials a results file lacks
//! (`--max-trials N`: only the next N of them).

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use linkemu::ImpairSchedule;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use transbench_reports::{read_results, summary_table, write_atomic, RunResults, ScenarioInfo};
use transbench_scenario::{Cell, Order, Scenario, TrialPlan};
use transbench_wire::Workload;

use crate::host::host_info;
use crate::out_dir::{self, OutChoice};
use crate::run::{self, LinkProfiles, Outputs, RunOptions, Sweeps};
use crate::spec::{TrialArgs, TrialSpec};

pub struct ScenarioOptions {
    pub file: PathBuf,
    /// Where named profiles live [default: the nearest
    /// `netem-scripts/profiles` above the scenario file, or below the
    /// working directory].
    pub profiles: Option<PathBuf>,
    /// Where the run goes: its own new directory, `--out DIR`, or `--resume
    /// DIR` (only the trials its results lack).
    pub out: OutChoice,
    /// Run at most this many of the trials left, in plan order, then stop
    /// (the summary and report wait for the last one).
    pub max_trials: Option<usize>,
    /// `--receiver HOST:PORT`: a receiver on another host (over the
    /// scenario's `[receiver]` table).
    pub receiver: Option<String>,
    /// `--secret-file`: its shared secret (over the table's `secret_file`).
    pub secret_file: Option<PathBuf>,
    /// `--allow-impair` on this host: where impaired cells' forward
    /// profiles go across hosts.
    pub egress: crate::egress::EgressArgs,
}

/// The receiver a scenario runs against: the flags', else its
/// `[receiver]` table's (a relative `secret_file` is read from the
/// scenario file's directory), else `None`, one started here.
async fn remote_receiver(
    opts: &ScenarioOptions,
    scenario: &Scenario,
) -> anyhow::Result<Option<run::RemoteReceiver>> {
    let table = scenario.receiver.as_ref();
    let Some(given) = opts.receiver.clone().or_else(|| table.map(|t| t.address.clone())) else {
        if opts.secret_file.is_some() || !opts.egress.allow_impair.is_empty() {
            bail!(
                "--secret-file and --allow-impair are for a receiver on another host: add --receiver \
                 HOST:PORT, or a [receiver] table to the scenario"
            );
        }
        return Ok(None);
    };
    let secret_file = opts.secret_file.clone().or_else(|| {
        let written = table?.secret_file.as_ref()?;
        let dir = opts.file.parent().unwrap_or(Path::new("."));
        Some(dir.join(written))
    });
    let secret = crate::secret::load(secret_file.as_deref())?;
    let own_egress = crate::egress::EgressPolicy::start(&opts.egress)?.map(std::sync::Arc::new);
    Ok(Some(
        run::RemoteReceiver::resolve(&given, secret, own_egress).await?,
    ))
}

/// The profiles directory for a scenario file.
fn profiles_dir(file: &Path, given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    let start = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    start
        .ancestors()
        .map(|d| d.join("netem-scripts/profiles"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("netem-scripts/profiles"))
}

/// Checks one trial option of a scenario, as `run` checks the flag of
/// that name: its value, and that the workload takes it.
fn check_option(workload: Workload, key: &str, value: &str) -> Result<(), String> {
    let args = TrialArgs::from_options(workload, [(key, value)])?;
    let transports = workload.transports();
    args.spec(transports[0], &transports)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// A cell as a trial: the spec `run` would build from the same flags.
fn spec_of(scenario: &Scenario, cell: &Cell) -> anyhow::Result<TrialSpec> {
    let duration = humantime::format_duration(scenario.duration).to_string();
    let warmup = humantime::format_duration(scenario.warmup).to_string();
    let options = [("duration", duration.as_str()), ("warmup", warmup.as_str())]
        .into_iter()
        .chain(cell.params.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let args = TrialArgs::from_options(cell.workload, options).map_err(anyhow::Error::msg)?;
    args.check_path(cell.profile.link.is_some())?;
    let spec = args.spec(cell.transport, &[cell.transport])?;
    spec.validate()?;
    if cell.profile.schedules.is_some() {
        run::check_schedule_workload(&spec.workload)?;
    }
    Ok(spec)
}

/// A scenario file with its named profiles, every option checked.
pub fn load(file: &Path, profiles: Option<&Path>) -> anyhow::Result<Scenario> {
    let profiles = profiles_dir(file, profiles);
    Ok(transbench_scenario::load(file, &profiles, &check_option)?)
}

/// What comparing two runs of `scenario` could call, as run here (cells
/// that need root left out without it).
pub fn compare_plan(scenario: &Scenario, gate: &[&'static str]) -> transbench_reports::compare::Plan {
    let root = testbed::is_root();
    let workloads: Vec<Workload> = scenario
        .cells
        .iter()
        .filter(|c| root || !c.skip_without_root)
        .map(|c| c.workload)
        .collect();
    transbench_reports::compare::plan(&workloads, scenario.trials, gate)
}

/// A scenario file as `run` runs it on this host: every cell checked as a
/// trial, and the trials in their order, less the cells that need root
/// when this is not (said on stderr).
pub struct Planned {
    pub scenario: Scenario,
    /// Each cell's trial, by the cell's index.
    pub specs: Vec<TrialSpec>,
    pub plan: Vec<TrialPlan>,
}

/// Loads `file` and plans its trials: what `run SCENARIO` runs, and what
/// `ab` runs with each build, in the same order.
pub fn plan(file: &Path, profiles: Option<&Path>) -> anyhow::Result<Planned> {
    let scenario = load(file, profiles)?;
    // Every cell checked before anything runs.
    let mut specs = Vec::with_capacity(scenario.cells.len());
    for cell in &scenario.cells {
        let spec = spec_of(&scenario, cell)
            .map_err(|e| anyhow::anyhow!("{}:{}: cell {:?}: {e:#}", file.display(), cell.line, cell.id))?;
        specs.push(spec);
    }
    let root = testbed::is_root();
    let skipped: Vec<&str> = scenario
        .cells
        .iter()
        .filter(|c| c.skip_without_root && !root)
        .map(|c| c.id.as_str())
        .collect();
    if !skipped.is_empty() {
        eprintln!(
            "not root: leaving out {} cells that need an emulated link ({}); run as root to include them",
            skipped.len(),
            skipped.join("; ")
        );
    }
    if scenario
        .cells
        .iter()
        .any(|c| c.profile.link.is_some() && !c.skip_without_root)
        && !root
    {
        let named: Vec<&str> = scenario
            .cells
            .iter()
            .filter(|c| c.profile.link.is_some() && !c.skip_without_root)
            .map(|c| c.profile.name.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        bail!(
            "{}: profiles {} need an emulated link, which needs root (namespaces, TUN): run as root, or \
             keep to profiles = [\"none\"]",
            file.display(),
            named.join(", ")
        );
    }
    let plan = scenario
        .trials()
        .into_iter()
        .filter(|t| root || !scenario.cells[t.cell].skip_without_root)
        .collect();
    Ok(Planned {
        scenario,
        specs,
        plan,
    })
}

pub async fn run_scenario(opts: ScenarioOptions) -> anyhow::Result<()> {
    let Planned {
        scenario,
        specs,
        plan,
    } = plan(&opts.file, opts.profiles.as_deref())?;
    let remote = remote_receiver(&opts, &scenario).await?;
    if let Some(remote) = &remote {
        // Before anything runs: a cell this host could not impair.
        for cell in plan.iter().map(|t| &scenario.cells[t.cell]) {
            if cell.profile.link.is_some() {
                let profiles = link_profiles(&cell.profile, 0).expect("a link");
                remote
                    .check_impairment(&profiles)
                    .with_context(|| format!("{}: cell {:?}", opts.file.display(), cell.id))?;
            }
        }
    }
    let info = ScenarioInfo {
        name: scenario.name.clone(),
        file: opts.file.display().to_string(),
        seed: scenario.seed,
        order: match scenario.order {
            Order::Random => "random",
            Order::AsWritten => "as-written",
        }
        .into(),
        cells: scenario.cells.iter().map(|c| c.id.clone()).collect(),
        trials_per_cell: scenario.trials,
        retry_invalid: scenario.retry_invalid,
    };
    let resume = matches!(opts.out, OutChoice::Resume(_));
    let run_dir = out_dir::prepare(&opts.out, &scenario.name, SystemTime::now())?;
    if !resume {
        eprintln!(
            "{}",
            compare_plan(&scenario, &transbench_reports::compare::default_gate()).line()
        );
    }
    let results_path = run_dir.join("results.json");
    let mut results = if resume {
        let earlier = read_results(&results_path)
            .with_context(|| format!("--resume {}: no results to continue", run_dir.display()))?;
        match &earlier.scenario {
            Some(s) if s.name == info.name && s.seed == info.seed && s.cells == info.cells => {
                let now = remote.as_ref().map(|r| r.given.as_str());
                if earlier.remote_receiver.as_deref() != now {
                    let place = |r: Option<&str>| match r {
                        Some(r) => format!("the receiver at {r}"),
                        None => "a receiver on this host".to_string(),
                    };
                    bail!(
                        "--resume {}: its trials ran against {}, these would run against {}: one run's \
                         trials share a path; give the same receiver, or start a new run",
                        run_dir.display(),
                        place(earlier.remote_receiver.as_deref()),
                        place(now)
                    );
                }
                RunResults {
                    // The file's retries now, for the trials to come.
                    scenario: Some(info),
                    ..earlier
                }
            }
            _ => bail!(
                "--resume {}: its results come from another scenario (or another version of this one); \
                 start a new run in another directory",
                run_dir.display()
            ),
        }
    } else {
        let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut r = RunResults::new(created, host_info());
        r.scenario = Some(info);
        r.remote_receiver = remote.as_ref().map(|r| r.given.clone());
        r
    };
    write_atomic(&results_path, &results)?;
    let (done, mut retry_from) = progress(&results, scenario.retry_invalid);
    let mut plan: Vec<_> = plan
        .into_iter()
        .filter(|t| !done.contains(&(scenario.cells[t.cell].id.clone(), t.repetition)))
        .collect();
    if resume {
        eprintln!(
            "resuming {}: {} done, {} to run",
            run_dir.display(),
            transbench_reports::counted(done.len() as u64, "trial"),
            plan.len()
        );
    }
    let left_for_later = plan.len().saturating_sub(opts.max_trials.unwrap_or(usize::MAX));
    plan.truncate(plan.len() - left_for_later);

    let bar = ProgressBar::new(plan.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials, ETA {eta}  {msg}",
        )
        .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut failed = 0usize;
    let trials = async {
        let mut bases = HashMap::new();
        let mut sweeps = Sweeps::default();
        for t in &plan {
            let cell = &scenario.cells[t.cell];
            // The attempt this one replaces, if any: the trial's latest, when
            // it missed its schedule and has retries left.
            let mut previous = retry_from.remove(&(cell.id.clone(), t.repetition));
            for step in 0.. {
                if step > 0 {
                    bar.inc_length(1);
                }
                let attempt = previous.map_or(1, |i| results.trials[i].attempt + 1);
                let retrying = match attempt {
                    1 => String::new(),
                    n => {
                        format!(
                            ", retry {} of {}: the sender missed its schedule",
                            n - 1,
                            scenario.retry_invalid
                        )
                    }
                };
                bar.set_message(format!(
                    "{} (trial {} of {}{retrying})",
                    cell.id,
                    t.repetition + 1,
                    scenario.trials
                ));
                let mut out = Outputs {
                    results: &mut results,
                    path: &results_path,
                    bar: &bar,
                    bases: &mut bases,
                    sweeps: &mut sweeps,
                };
                let ran = run_cell_trial(cell, &specs[t.cell], remote.as_ref(), &mut out).await?;
                let Some(trial) = ran.map(|i| &mut results.trials[i]) else {
                    failed += 1;
                    break;
                };
                trial.cell = Some(cell.id.clone());
                trial.repetition = Some(t.repetition);
                trial.attempt = attempt;
                let id = trial.id.clone();
                let again = trial.retry_due(scenario.retry_invalid);
                if let Some(i) = previous {
                    results.trials[i].superseded_by = Some(id);
                }
                write_atomic(&results_path, &results)?;
                if !again {
                    break;
                }
                previous = ran;
            }
        }
        anyhow::Ok(())
    };
    let outcome = run::unless_signalled(trials).await;
    bar.finish_and_clear();
    outcome.with_context(|| {
        format!(
            "run stopped; the trials that finished are in {} (--resume {} runs the rest)",
            results_path.display(),
            run_dir.display()
        )
    })?;
    if left_for_later == 0 {
        let results = read_results(&results_path)?;
        print!("{}", summary_table(&results));
        println!("results: {}", results_path.display());
        crate::report::render(&results_path, &run_dir.join("report"))?;
    } else if failed == 0 {
        // The summary and the report are of a whole run: they wait for
        // its last trial.
        eprintln!(
            "--max-trials {}: {} {}; --resume {} runs them",
            plan.len(),
            transbench_reports::counted(left_for_later as u64, "trial"),
            if left_for_later == 1 { "remains" } else { "remain" },
            run_dir.display()
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {} trials failed (see the errors above); --resume {} runs them again",
            plan.len(),
            run_dir.display()
        );
    }
    Ok(())
}

/// One trial of `cell` on its own path (after the path's no-loss
/// baseline, for a lossy multistream cell whose baseline is not yet
/// measured); the index of its result, `None` if it failed (said on
/// stderr).
async fn run_cell_trial(
    cell: &Cell,
    spec: &TrialSpec,
    remote: Option<&run::RemoteReceiver>,
    out: &mut Outputs<'_>,
) -> anyhow::Result<Option<usize>> {
    let trial_opts = RunOptions {
        receiver: remote.cloned(),
        transports: vec![cell.transport],
        spec: spec.clone(),
        // Retried here, where the attempts get their cell.
        retry_invalid: 0,
        impair: link_profiles(&cell.profile, run::DEFAULT_PROBE_PACKETS),
        sweep: None,
    };
    // Head-of-line excess counts from the same transport on the same path
    // without loss: measured once per path, first.
    let base = trial_opts
        .impair
        .as_ref()
        .and_then(LinkProfiles::without_loss)
        .filter(|_| {
            cell.workload == Workload::Multistream
                && !out
                    .bases
                    .contains_key(&run::base_key(cell.transport, trial_opts.impair.as_ref()))
        });
    if base.is_some() {
        out.bar.inc_length(1);
    }
    let phases = base.as_ref().map(|b| (Some(b), true)).into_iter();
    let mut before = out.results.trials.len();
    for (profiles, baseline) in phases.chain([(trial_opts.impair.as_ref(), false)]) {
        before = out.results.trials.len();
        run::run_phase(&trial_opts, &[(cell.transport, None)], profiles, baseline, out).await?;
    }
    Ok((before < out.results.trials.len()).then_some(before))
}

/// A trial of a scenario: its cell's id and repetition.
type TrialKey = (String, u32);

/// What `results` holds of a scenario's trials: those done, and those
/// whose latest attempt missed its schedule with retries left (by the
/// index of that attempt), to run again.
fn progress(results: &RunResults, retry_invalid: u32) -> (HashSet<TrialKey>, HashMap<TrialKey, usize>) {
    let mut done = HashSet::new();
    let mut retry_from = HashMap::new();
    for (i, t) in results.trials.iter().enumerate() {
        let (Some(cell), Some(repetition), None) = (&t.cell, t.repetition, &t.superseded_by) else {
            continue;
        };
        let key = (cell.clone(), repetition);
        if t.retry_due(retry_invalid) {
            retry_from.insert(key, i);
        } else {
            done.insert(key);
        }
    }
    (done, retry_from)
}

/// A cell's link as a run takes it; `None`: loopback.
fn link_profiles(profile: &transbench_scenario::LinkProfile, probe_packets: u64) -> Option<LinkProfiles> {
    let (forward, reverse) = profile.link.clone()?;
    let (forward, reverse) = profile.schedules.clone().unwrap_or_else(|| {
        (
            ImpairSchedule::constant(forward),
            ImpairSchedule::constant(reverse),
        )
    });
    Some(LinkProfiles {
        probe_packets,
        ..LinkProfiles::scheduled(forward, reverse)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell of every shipped scenario makes a trial `run` accepts:
    /// checks the scenario crate cannot make (a parameter a transport
    /// refuses, say).
    #[test]
    fn every_shipped_cell_is_a_valid_trial() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut checked = 0;
        for entry in std::fs::read_dir(root.join("bench/scenarios")).unwrap() {
            let file = entry.unwrap().path();
            if file.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let scenario =
                transbench_scenario::load(&file, &root.join("netem-scripts/profiles"), &check_option)
                    .unwrap_or_else(|e| panic!("{e}"));
            for cell in &scenario.cells {
                spec_of(&scenario, cell).unwrap_or_else(|e| panic!("{}: {}: {e:#}", file.display(), cell.id));
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked} cells");
    }
}
