//! Writes ferrolb's CRDs to a directory (default `crds/`), or checks that it is up to date.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut check = false;
    let mut dir = PathBuf::from("crds");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--dir" => match args.next() {
                Some(d) => dir = PathBuf::from(d),
                None => {
                    eprintln!("crdgen: --dir needs a directory");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!(
                    "crdgen: unknown argument {other:?}; usage: crdgen [--check] [--dir DIR]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let mut stale = Vec::new();
    for (file, crd) in ferrolb_api::crds() {
        let path = dir.join(file);
        let want = ferrolb_api::crd_yaml(&crd);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
                stale.push(path.display().to_string());
            }
        } else if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, want))
        {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        eprintln!("crdgen: out of date: {}; run `make crds`", stale.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
