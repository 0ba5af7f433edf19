//! The build script reruns only when the embedded commit could change:
//! it watches HEAD, the branch and the binary's sources, never the index,
//! and `git status` (which rewrites the index) touches none of what it
//! watches, so it does not rebuild the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// What the build script told cargo to watch, from its recorded output.
fn watched() -> Vec<PathBuf> {
    let output = Path::new(env!("OUT_DIR")).join("../output");
    std::fs::read_to_string(&output)
        .unwrap_or_else(|e| panic!("{}: {e}", output.display()))
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .map(PathBuf::from)
        .collect()
}

/// The newest modification time under `path` (itself, for a file).
fn newest(path: &Path) -> SystemTime {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let own = meta.modified().unwrap();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| newest(&e.unwrap().path()))
        .fold(own, SystemTime::max)
}

#[test]
fn git_status_does_not_touch_what_the_build_script_watches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let in_git = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--git-dir"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !in_git {
        eprintln!("skipping: not a git checkout, so nothing is embedded or watched but the sources");
        return;
    }
    let watched = watched();
    assert!(
        watched.iter().any(|p| p.ends_with("HEAD")),
        "HEAD is watched: {watched:?}"
    );
    for p in &watched {
        assert!(!p.ends_with("index"), "the index is watched: {watched:?}");
        // A path that does not exist counts as changed on every build.
        assert!(p.exists(), "{} is watched but does not exist", p.display());
    }
    let before: Vec<SystemTime> = watched.iter().map(|p| newest(p)).collect();
    let o = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let after: Vec<SystemTime> = watched.iter().map(|p| newest(p)).collect();
    for ((p, b), a) in watched.iter().zip(before).zip(after) {
        assert_eq!(b, a, "git status changed {}", p.display());
    }
}
