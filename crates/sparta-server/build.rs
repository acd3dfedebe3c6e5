//! Build facts for `/version`: the commit (from git, or `SPARTA_BUILD_COMMIT`
//! where there is no repository, as in an image build), the build date and
//! the compiler. Reruns only when HEAD moves, so builds stay incremental.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SPARTA_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for git_path in ["HEAD", "packed-refs"] {
        if let Some(p) = run("git", &["rev-parse", "--git-path", git_path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = run("git", &["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = run("git", &["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={p}");
    }
    let commit = std::env::var("SPARTA_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| run("git", &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => run(
            "date",
            &["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"],
        ),
        Err(_) => run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    }
    .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SPARTA_COMMIT={commit}");
    println!("cargo:rustc-env=SPARTA_BUILD_DATE={date}");
    println!("cargo:rustc-env=SPARTA_RUSTC={rustc}");
}
