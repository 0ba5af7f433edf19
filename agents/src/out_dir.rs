//! Where `run` puts a run: by default a directory of its own under
//! `transbench-out/`, named by the scenario (or the workload) and its UTC
//! start time, with `transbench-out/latest` pointing at the newest; so a
//! second run never replaces the first. A directory given with `--out`
//! that already holds a run is refused unless `--force` says to replace it.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use transbench_reports::read_results;

/// Where per-run directories go when no `--out` is given.
pub const DEFAULT_ROOT: &str = "transbench-out";
/// The link in [`DEFAULT_ROOT`] to the newest run's directory.
pub const LATEST: &str = "latest";

/// How the command line chose a run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutChoice {
    /// A new directory under [`DEFAULT_ROOT`], and `latest` pointing to it.
    PerRun,
    /// `--out DIR`; `replace` (`--force`): a run already there is removed
    /// first.
    Given { dir: PathBuf, replace: bool },
    /// `--resume DIR`: the run there continues.
    Resume(PathBuf),
}

impl OutChoice {
    /// From `run`'s flags: `--resume`, `--out` and `--force`.
    pub fn from_flags(resume: Option<PathBuf>, out: Option<PathBuf>, force: bool) -> Self {
        match (resume, out) {
            (Some(dir), _) => OutChoice::Resume(dir),
            (None, Some(dir)) => OutChoice::Given { dir, replace: force },
            (None, None) => OutChoice::PerRun,
        }
    }
}

/// What a run writes in its directory: the results (and the temporary
/// file they are written through) and the report.
const RESULTS: &str = "results.json";
const REPORT: &str = "report";

/// The directory a run named `name` (its scenario's name, or its
/// workload's) starting at `now` writes to, made ready: created, a run
/// already in a given directory refused or (`--force`) removed.
pub fn prepare(choice: &OutChoice, name: &str, now: SystemTime) -> anyhow::Result<PathBuf> {
    match choice {
        OutChoice::Resume(dir) => Ok(dir.clone()),
        OutChoice::Given { dir, replace } => {
            let held = held_run(dir);
            match (held.is_empty(), replace) {
                (true, _) => {}
                (false, false) => bail!(
                    "--out {d} already holds a run ({}): --resume {d} continues it, --force replaces it, or \
                     give another --out (without --out, each run gets its own directory under {DEFAULT_ROOT}/)",
                    held.join(", "),
                    d = dir.display()
                ),
                (false, true) => remove_run(dir)?,
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
            Ok(dir.clone())
        }
        OutChoice::PerRun => {
            let root = Path::new(DEFAULT_ROOT);
            std::fs::create_dir_all(root)
                .with_context(|| format!("cannot create the output directory {}", root.display()))?;
            let dir = new_run_dir(root, &run_dir_name(name, now))?;
            if let Err(e) = point_latest(root, &dir) {
                eprintln!(
                    "warning: {}/{LATEST} still points at an earlier run: {e:#}",
                    root.display()
                );
            }
            Ok(dir)
        }
    }
}

/// `NAME-20261205T012345Z`: the name with anything but letters, digits,
/// `-`, `_` and `.` made `-`, and the UTC time to the second.
pub fn run_dir_name(name: &str, now: SystemTime) -> String {
    let name: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                true => c,
                false => '-',
            },
        )
        .collect();
    let name = match name.trim_matches('.') {
        "" => "run",
        n => n,
    };
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{name}-{stamp}")
}

/// Makes `root/name`, or `root/name-2`, `-3`... when runs started in the
/// same second.
fn new_run_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for n in 1u32.. {
        let dir = match n {
            1 => root.join(name),
            n => root.join(format!("{name}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the output directory {}", dir.display()))
            }
        }
    }
    unreachable!("some suffix is free")
}

/// Points `root/latest` at `dir` (relative, so the tree can move): a new
/// link under a temporary name, renamed over the old one, so `latest`
/// always names a whole run directory.
fn point_latest(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let target = dir.file_name().context("a run directory has a name")?;
    let tmp = root.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).with_context(|| format!("cannot make {}", tmp.display()))?;
    let latest = root.join(LATEST);
    std::fs::rename(&tmp, &latest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!(
            "cannot replace {} (a file or directory of that name is in the way: move it)",
            latest.display()
        ))
    })
}

/// What of a run `dir` holds, described: empty if none.
fn held_run(dir: &Path) -> Vec<String> {
    let mut held = Vec::new();
    let results = dir.join(RESULTS);
    if results.exists() {
        held.push(match read_results(&results) {
            Ok(r) => {
                let scenario = r
                    .scenario
                    .as_ref()
                    .map(|s| format!(" of scenario {:?}", s.name))
                    .unwrap_or_default();
                format!(
                    "{RESULTS} with {}{scenario}, started {}",
                    transbench_reports::counted(r.trials.len() as u64, "trial"),
                    r.created
                )
            }
            Err(_) => format!("{RESULTS}, unreadable"),
        });
    }
    if temporary_results(dir).next().is_some() {
        held.push(format!("a {RESULTS} being written"));
    }
    if dir.join(REPORT).exists() {
        held.push(format!("{REPORT}/"));
    }
    held
}

/// Temporary files `write_atomic` leaves when a run is killed mid-write.
fn temporary_results(dir: &Path) -> impl Iterator<Item = PathBuf> {
    let prefix = format!(".{RESULTS}.tmp-");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(move |e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
}

/// Removes what a run wrote in `dir`, and nothing else.
fn remove_run(dir: &Path) -> anyhow::Result<()> {
    let cannot = |p: &Path| format!("--force: cannot remove {}", p.display());
    let results = dir.join(RESULTS);
    if results.exists() {
        std::fs::remove_file(&results).with_context(|| cannot(&results))?;
    }
    for tmp in temporary_results(dir).collect::<Vec<_>>() {
        std::fs::remove_file(&tmp).with_context(|| cannot(&tmp))?;
    }
    let report = dir.join(REPORT);
    if report.exists() {
        std::fs::remove_dir_all(&report).with_context(|| cannot(&report))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_run_directory_is_named_by_name_and_utc_second() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_433_825);
        assert_eq!(run_dir_name("quick", t), "quick-20261205T012345Z");
        assert_eq!(run_dir_name("my lab/wan", t), "my-lab-wan-20261205T012345Z");
        assert_eq!(run_dir_name("..", t), "run-20261205T012345Z");
    }

    #[test]
    fn a_directory_holding_a_run_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let given = |replace| OutChoice::Given {
            dir: dir.path().to_path_buf(),
            replace,
        };
        let now = SystemTime::now();
        // Empty, or holding other files: taken as it is.
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert_eq!(prepare(&given(false), "t", now).unwrap(), dir.path());
        std::fs::write(dir.path().join(RESULTS), "{}").unwrap();
        std::fs::create_dir(dir.path().join(REPORT)).unwrap();
        let e = format!("{:#}", prepare(&given(false), "t", now).unwrap_err());
        assert!(
            e.contains("already holds a run (results.json, unreadable, report/)"),
            "{e}"
        );
        assert!(e.contains("--resume") && e.contains("--force"), "{e}");
        assert!(dir.path().join(RESULTS).exists(), "nothing removed");
        prepare(&given(true), "t", now).unwrap();
        assert!(!dir.path().join(RESULTS).exists() && !dir.path().join(REPORT).exists());
        assert!(dir.path().join("notes.txt").exists(), "only the run's files go");
    }

    #[test]
    fn runs_in_one_second_get_directories_of_their_own() {
        let root = tempfile::tempdir().unwrap();
        let a = new_run_dir(root.path(), "q-1").unwrap();
        let b = new_run_dir(root.path(), "q-1").unwrap();
        assert_eq!(
            (a.file_name().unwrap(), b.file_name().unwrap()),
            ("q-1".as_ref(), "q-1-2".as_ref())
        );
        point_latest(root.path(), &a).unwrap();
        point_latest(root.path(), &b).unwrap();
        let latest = root.path().join(LATEST);
        assert_eq!(std::fs::read_link(&latest).unwrap(), Path::new("q-1-2"));
        assert_eq!(
            std::fs::canonicalize(&latest).unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
    }
}
