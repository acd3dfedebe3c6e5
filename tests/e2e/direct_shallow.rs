//! A cold mirror fetches only what a request needs, as the go command does:
//! one tagged version brings in that tag alone, shallow, and the mirror is
//! completed in the background; a pseudo-version, a list or a query uses
//! the complete mirror (all refs, full history), and the answers equal the
//! go command's own `GOPROXY=direct` ones.

use sparta_e2e::git::GitServer;
use sparta_e2e::{GoEnv, Sparta};

use crate::direct::{go_sparta, same_as_direct, sparta_for};

async fn mirror_bytes(sparta: &Sparta) -> u64 {
    let text = sparta.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("sparta_vcs_mirror_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Incompressible text: git cannot make it smaller.
fn noise(bytes: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut s = String::with_capacity(bytes + bytes / 64);
    for i in 1.. {
        if s.len() >= bytes {
            break;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
        if i % 4 == 0 {
            s.push('\n');
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tag_fetch_is_shallow_until_history_is_needed() {
    let git = GitServer::start();
    let mut repo = git.repo("shallow");
    let m = repo.module();
    let code = "package shallow\n\nfunc Name() string { return \"s\" }\n";
    // History that v1.1.0 does not need: 4 MiB of old data (hex, about
    // 2 MiB packed), deleted again.
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("s.go", code)
        .write("old.txt", &noise(4 << 20, 7));
    repo.commit("old data");
    repo.tag("v1.0.0");
    std::fs::remove_file(repo.work.join("old.txt")).expect("rm");
    repo.write("s.go", &format!("{code}// two\n"));
    repo.commit("drop the old data");
    repo.tag("v1.1.0");
    repo.write("s.go", &format!("{code}// three\n"));
    let head = repo.commit("after the last tag");
    repo.push();

    let sparta = sparta_for(&git, &[]).await;
    same_as_direct(&git, &sparta, &format!("{m}@v1.1.0")).await;
    let log = sparta.log();
    let (tag, stored) = (
        log.find("fetched one tag (shallow)"),
        log.find("file=\"info\""),
    );
    assert!(
        tag.is_some() && tag < stored,
        "the .info waited for one shallow tag only:\n{log}"
    );

    // A pseudo-version needs the history (its base tag): the mirror is
    // completed, and the answer is the go command's.
    let pseudo = same_as_direct(&git, &sparta, &format!("{m}@{}", &head[..12])).await;
    let v = pseudo["Version"].as_str().unwrap_or_default();
    assert!(v.starts_with("v1.1.1-0."), "{v}");
    let complete = mirror_bytes(&sparta).await;
    assert!(complete > 3 << 19, "complete mirror: {complete} bytes");

    // The list names every tag, also those fetched no other way.
    let go: GoEnv = go_sparta(&sparta);
    let out = go.ok(&go.work(), &["list", "-m", "-versions", &m]).await;
    assert_eq!(out.trim(), format!("{m} v1.0.0 v1.1.0"));
    same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
}
