//! Puts the git commit into `tradenet --version` (`TRADENET_COMMIT`): the short hash of HEAD,
//! or "unknown" outside a git checkout (a source tarball, `cargo install` from a registry).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TRADENET_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names; only then does the hash change.
    for path in ["../.git/HEAD", "../.git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
