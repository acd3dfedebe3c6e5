//! The command line as a user meets it first: the version line, and the
//! exit codes and messages of settings that cannot work. (Being an
//! integration test of this package, it also makes `cargo test` build
//! `target/debug/sparta`, which the end-to-end suites run.)

use std::process::{Command, Output};

fn sparta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparta"))
        .args(args)
        .env_remove("GOPROXY")
        .env_remove("SPARTA_UPSTREAM")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("sparta runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_version_line_names_the_build() {
    let out = sparta(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let want = format!("sparta {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want), "{line:?}");
}

#[test]
fn a_bad_flag_value_is_a_usage_error_naming_the_flag() {
    let out = sparta(&["serve", "--listen", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--listen") && err.contains("nonsense"),
        "{err}"
    );
}

#[test]
fn serving_with_no_upstream_says_how_to_name_one() {
    let out = sparta(&["serve", "--listen", "127.0.0.1:0", "--storage", "store"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no upstream") && err.contains("--upstream"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
