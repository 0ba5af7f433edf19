//! Records the git commit the binary was built from, when there is one,
//! and `-dirty` when the binary's own sources differ from it.
//!
//! It reruns only when that could change: the checked-out commit (HEAD,
//! and the branch it names) or those sources. Not on `.git/index`, which
//! `git status` rewrites without changing either (that rebuilt the binary
//! after every `git status`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binary is built from, relative to the workspace root: the
/// crates it links and the manifests that pin them.
const SOURCES: [&str; 11] = [
    "agents",
    "wire",
    "reports",
    "analysis",
    "linkemu",
    "testbed",
    "procnet",
    "scenario",
    "render",
    "Cargo.toml",
    "Cargo.lock",
];

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new("git").current_dir(root).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let Some(sha) = git(&root, &["rev-parse", "--short=12", "HEAD"]).filter(|s| !s.is_empty()) else {
        return;
    };
    // HEAD lives in the worktree's git directory, branches in the common
    // one (the same outside linked worktrees).
    let path = |args: &[&str]| git(&root, args).map(|p| root.join(p));
    if let Some(dir) = path(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
    }
    if let (Some(common), Some(branch)) = (
        path(&["rev-parse", "--git-common-dir"]),
        git(&root, &["symbolic-ref", "-q", "HEAD"]),
    ) {
        for watched in [common.join(&branch), common.join("packed-refs")] {
            if watched.exists() {
                println!("cargo:rerun-if-changed={}", watched.display());
            }
        }
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(SOURCES);
    let dirty = git(&root, &status).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=TRANSBENCH_GIT_SHA={sha}{suffix}");
}
