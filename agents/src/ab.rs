//! `transbench ab --base BIN_A --cand BIN_B SCENARIO`: two builds' trials
//! of one scenario, alternately in one run, then compared as `compare`
//! compares. Each build runs its own trials through its own CLI (`run
//! SCENARIO --max-trials 1`, then `--resume`): `ab` only decides which
//! build goes next and marks both results as one interleaved run.
//!
//! The order is ABBA per cell: a cell's even repetitions run base then
//! candidate, its odd ones candidate then base. Alternating by step
//! instead would balance the order over the run but not within a cell (the
//! seeded plan could give one cell all its trials base-first), and compare
//! decides cell by cell.

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, Signal, SignalKind};
use transbench_reports::{read_results, write_atomic, Interleaved, RunResults, Side};

use crate::compare::{self, GateArgs};
use crate::scenario_run;

pub struct AbOptions {
    pub base: PathBuf,
    pub cand: PathBuf,
    pub scenario: PathBuf,
    /// Passed to both builds' `run --profiles`.
    pub profiles: Option<PathBuf>,
    pub out: PathBuf,
    /// Continue the A/B run in `out`.
    pub resume: bool,
    pub gate: GateArgs,
}

/// One side of the run: its build and where its trials go.
struct Build {
    side: Side,
    bin: PathBuf,
    /// The build as the results name it: its path and `--version`.
    named: String,
    /// Its run: `OUT/base` or `OUT/cand`.
    dir: PathBuf,
    /// Everything the build printed, step after step.
    log: PathBuf,
}

impl Build {
    /// Checks that `bin` runs and has `run --max-trials`, before any trial.
    fn probe(side: Side, bin: &Path, out: &Path) -> anyhow::Result<Build> {
        let name = side_name(side);
        let output = |args: &[&str]| {
            std::process::Command::new(bin).args(args).output().map_err(|e| {
                anyhow::anyhow!(
                    "cannot run the {name} build {}: {e}; give the path of a transbench binary",
                    bin.display()
                )
            })
        };
        let version = output(&["--version"])?;
        if !version.status.success() {
            bail!(
                "the {name} build {} does not answer --version ({}): give a transbench binary",
                bin.display(),
                last_line(&version.stderr)
            );
        }
        // Old builds refuse the flag; `--help` after it stops a new one
        // before it runs anything.
        let max_trials = output(&["run", "--max-trials", "1", "--help"])?;
        if !max_trials.status.success() {
            bail!(
                "the {name} build {} has no `run --max-trials` ({}): ab runs each build one trial at a time \
                 with it; build the {name} from a commit that has `transbench ab`",
                bin.display(),
                last_line(&max_trials.stderr)
            );
        }
        let dir = out.join(name);
        Ok(Build {
            side,
            bin: bin.to_path_buf(),
            named: format!(
                "{} ({})",
                bin.display(),
                String::from_utf8_lossy(&version.stdout).trim()
            ),
            log: out.join(format!("{name}.log")),
            dir,
        })
    }

    fn results_path(&self) -> PathBuf {
        self.dir.join("results.json")
    }

    /// Its results so far; `None` before its first trial started.
    fn results(&self) -> anyhow::Result<Option<RunResults>> {
        let path = self.results_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(read_results(&path)?))
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Base => "base",
        Side::Cand => "cand",
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Base => 0,
        Side::Cand => 1,
    }
}

/// A trial of the plan: its cell's id and its repetition.
type TrialKey = (String, u32);

fn trials_done(results: Option<&RunResults>) -> HashSet<TrialKey> {
    results
        .map(|r| {
            r.trials
                .iter()
                .filter_map(|t| Some((t.cell.clone()?, t.repetition?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The last line a process printed, for an error message.
fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    line.trim().to_string()
}

/// SIGINT or SIGTERM to `ab`, to pass on to the build running a trial.
struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    fn new() -> anyhow::Result<Stop> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> (libc::c_int, &'static str) {
        tokio::select! {
            _ = self.interrupt.recv() => (libc::SIGINT, "interrupted"),
            _ = self.terminate.recv() => (libc::SIGTERM, "terminated"),
        }
    }
}

/// Runs the next trial of `build`'s plan, its output appended to its log.
async fn run_trial(build: &Build, opts: &AbOptions, stop: &mut Stop) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new(&build.bin);
    let continues = build.results_path().exists();
    cmd.arg("run")
        .arg(&opts.scenario)
        .arg(if continues { "--resume" } else { "--out" })
        .arg(&build.dir)
        .args(["--max-trials", "1"]);
    if let Some(dir) = &opts.profiles {
        cmd.arg("--profiles").arg(dir);
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&build.log)
        .with_context(|| format!("cannot write {}", build.log.display()))?;
    writeln!(log, "$ {:?}", cmd.as_std())?;
    let start = log.metadata()?.len();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start the {} build {}",
                side_name(build.side),
                build.bin.display()
            )
        })?;
    let status = tokio::select! {
        status = child.wait() => status?,
        (signal, what) = stop.recv() => {
            // A run stops cleanly on either signal, keeping the trials it
            // finished; a signal to `ab` alone (a CI job's timeout) must
            // stop it too.
            if let Some(pid) = child.id() {
                // SAFETY: a plain syscall; the child is ours and not yet
                // reaped, so the PID is still its own.
                unsafe { libc::kill(pid as libc::pid_t, signal) };
            }
            child.wait().await?;
            bail!("{what}");
        }
    };
    if !status.success() {
        let mut printed = Vec::new();
        std::io::Read::read_to_end(&mut File::open(&build.log)?, &mut printed)?;
        bail!(
            "the {} build failed ({status}): {} (its output: {})",
            side_name(build.side),
            last_line(&printed[start as usize..]),
            build.log.display()
        );
    }
    Ok(())
}

/// Marks `build`'s results as its side of the A/B run `run`. Again after
/// every step: a build from before the mark existed drops it when it
/// rewrites its results.
fn mark(build: &Build, run: &str, base: &Build, cand: &Build) -> anyhow::Result<()> {
    let Some(mut results) = build.results()? else {
        return Ok(());
    };
    let mark = Interleaved {
        run: run.to_string(),
        side: build.side,
        base: base.named.clone(),
        cand: cand.named.clone(),
    };
    if results.interleaved.as_ref() != Some(&mark) {
        results.interleaved = Some(mark);
        write_atomic(&build.results_path(), &results)?;
    }
    Ok(())
}

/// The A/B run's id: the one its results carry when resuming, else new
/// (start time and process id).
fn run_id(earlier: [Option<&RunResults>; 2]) -> String {
    earlier
        .into_iter()
        .flatten()
        .find_map(|r| Some(r.interleaved.as_ref()?.run.clone()))
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                std::process::id()
            )
        })
}

/// Refuses to resume with other builds than the run was started with:
/// its trials would pair two builds' numbers under other names.
fn check_same_builds(earlier: [Option<&RunResults>; 2], base: &Build, cand: &Build) -> anyhow::Result<()> {
    for mark in earlier
        .into_iter()
        .flatten()
        .filter_map(|r| r.interleaved.as_ref())
    {
        if mark.base != base.named || mark.cand != cand.named {
            bail!(
                "it was started with base {:?} and cand {:?}, not {:?} and {:?}: resume with those builds, \
                 or start anew with another --out",
                mark.base,
                mark.cand,
                base.named,
                cand.named
            );
        }
    }
    Ok(())
}

/// A new run needs an empty output directory; a resumed one, a run of
/// these builds there.
fn check_out_dir(
    opts: &AbOptions,
    earlier: [Option<&RunResults>; 2],
    base: &Build,
    cand: &Build,
) -> anyhow::Result<()> {
    let out = opts.out.display();
    if !opts.resume {
        if earlier.iter().any(Option::is_some) {
            bail!("{out} already holds an A/B run: --resume {out} continues it, or give another --out");
        }
        return Ok(());
    }
    if earlier.iter().all(Option::is_none) {
        bail!("--resume {out}: no A/B run there (neither base/results.json nor cand/results.json)");
    }
    check_same_builds(earlier, base, cand).with_context(|| format!("--resume {out}"))
}

/// The command that continues `opts`'s run.
fn resume_command(opts: &AbOptions) -> String {
    let profiles = opts
        .profiles
        .as_ref()
        .map(|d| format!(" --profiles {}", d.display()))
        .unwrap_or_default();
    format!(
        "transbench ab --base {} --cand {} {}{profiles} --resume {}",
        opts.base.display(),
        opts.cand.display(),
        opts.scenario.display(),
        opts.out.display()
    )
}

pub async fn run(opts: AbOptions) -> anyhow::Result<ExitCode> {
    let planned = scenario_run::plan(&opts.scenario, opts.profiles.as_deref())?;
    let plan: Vec<TrialKey> = planned
        .plan
        .iter()
        .map(|t| (planned.scenario.cells[t.cell].id.clone(), t.repetition))
        .collect();
    let base = Build::probe(Side::Base, &opts.base, &opts.out)?;
    let cand = Build::probe(Side::Cand, &opts.cand, &opts.out)?;
    let (base_before, cand_before) = (base.results()?, cand.results()?);
    let earlier = [base_before.as_ref(), cand_before.as_ref()];
    check_out_dir(&opts, earlier, &base, &cand)?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create the output directory {}", opts.out.display()))?;
    let run = run_id(earlier);
    let mut done = [trials_done(earlier[0]), trials_done(earlier[1])];
    let complete = plan
        .iter()
        .filter(|t| done.iter().all(|d| d.contains(*t)))
        .count();

    let bar = ProgressBar::new(plan.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials a side, ETA {eta}  {msg}",
        )
        .expect("static template"),
    );
    bar.set_position(complete as u64);
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut stop = Stop::new()?;
    let steps = async {
        for key in &plan {
            let (cell, repetition) = key;
            let order = if repetition % 2 == 0 {
                [&base, &cand]
            } else {
                [&cand, &base]
            };
            let mut ran = false;
            for build in order {
                let at = side_index(build.side);
                if done[at].contains(key) {
                    continue;
                }
                bar.set_message(format!(
                    "{cell} (trial {} of {}), {}",
                    repetition + 1,
                    planned.scenario.trials,
                    side_name(build.side)
                ));
                run_trial(build, &opts, &mut stop)
                    .await
                    .with_context(|| format!("at {cell:?}, repetition {repetition}"))?;
                done[at] = trials_done(build.results()?.as_ref());
                if !done[at].contains(key) {
                    bail!(
                        "the {} build ran another trial than {cell:?}, repetition {repetition}: the two builds \
                         plan this scenario differently, and ab needs them to run its trials in one order",
                        side_name(build.side)
                    );
                }
                ran = true;
            }
            if ran {
                for build in [&base, &cand] {
                    mark(build, &run, &base, &cand)?;
                }
                bar.inc(1);
            }
        }
        anyhow::Ok(())
    };
    let outcome = steps.await;
    bar.finish_and_clear();
    outcome.with_context(|| {
        format!(
            "A/B run stopped; the trials that finished are in {} and {} (`{}` continues)",
            base.dir.display(),
            cand.dir.display(),
            resume_command(&opts)
        )
    })?;
    // Also when resumed after its last step: both sides carry the mark.
    for build in [&base, &cand] {
        mark(build, &run, &base, &cand)?;
    }
    eprintln!(
        "the runs: {} and {}, each with its report/",
        base.dir.display(),
        cand.dir.display()
    );
    Ok(compare::run(
        &base.dir,
        &cand.dir,
        opts.gate,
        compare::Mismatch::default(),
    ))
}
