//! Bakes `git describe` of the checkout into the binary (`FERROLB_GIT_DESCRIBE`), for
//! `kubectl ferrolb version`; nothing when git or the repository is not there (a crate tarball).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(describe) = git(&["describe", "--tags", "--always"]) else {
        return;
    };
    println!("cargo:rustc-env=FERROLB_GIT_DESCRIBE={describe}");
    // Re-run when HEAD moves (a commit, a checkout), never on every build: a path that does not
    // exist would make cargo re-run this script each time.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        let mut watched = vec![dir.join("HEAD"), dir.join("packed-refs")];
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(dir.join(head_ref));
        }
        for p in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
