//! Records the git commit the binary was built from, when there is one.

fn main() {
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    // A build from a modified tree says so: its results are not that commit's.
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    if let Some(sha) = sha {
        let suffix = if dirty { "-dirty" } else { "" };
        println!("cargo:rustc-env=TRANSBENCH_GIT_SHA={sha}{suffix}");
    }
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    println!("cargo:rerun-if-changed=../.git/index");
    for dir in ["agents", "wire", "reports", "analysis", "linkemu", "testbed"] {
        println!("cargo:rerun-if-changed=../{dir}/src");
    }
}
