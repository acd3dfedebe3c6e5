//! A live run through the machine's own Go module proxy (the first http(s)
//! entry of `go env GOPROXY`, read at run time) with Sparta in front of it.
//! Needs the network; kept to a few small modules.

use std::process::Command;
use std::time::Duration;

use sparta_e2e::{GoEnv, Sparta, SpartaOptions, go_exe, within};

const MODULES: [&str; 2] = ["github.com/google/uuid@v1.6.0", "golang.org/x/sync@v0.6.0"];

fn go_env(key: &str) -> String {
    let out = Command::new(go_exe())
        .args(["env", key])
        .output()
        .expect("go env");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_modules_through_the_machines_proxy() {
    let goproxy = go_env("GOPROXY");
    let upstream = goproxy
        .split([',', '|'])
        .find(|e| e.starts_with("http://") || e.starts_with("https://"))
        .unwrap_or_else(|| {
            panic!("no http(s) entry in `go env GOPROXY` ({goproxy:?}): cannot run the live test")
        })
        .to_string();
    let sumdb = go_env("GOSUMDB");
    let sparta =
        Sparta::start(SpartaOptions::new(&upstream).args(&["--upstream-timeout", "60s"])).await;

    // The reference: the same modules straight from the upstream.
    let mut direct = GoEnv::new(&upstream);
    let mut through = GoEnv::new(&sparta.url);
    direct.set("GOSUMDB", "off");
    through.set("GOSUMDB", if sumdb.is_empty() { "off" } else { &sumdb });

    let mut args = vec!["mod", "download", "-json"];
    args.extend(MODULES);
    // No retry with GOSUMDB=off: a broken checksum-database relay must fail
    // this test, not be routed around.
    let out = through.run(&through.work(), &args).await;
    assert!(
        out.ok,
        "download through Sparta (upstream {upstream}) failed:\n{}\n{}\n--- sparta log ---\n{}",
        out.stdout,
        out.stderr,
        sparta.log()
    );
    let got = sparta_e2e::parse_json_stream(&out.stdout);

    let want = direct.download(&MODULES).await;
    assert_eq!(got.len(), MODULES.len(), "{got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(g.get("Error").is_none(), "{g}");
        assert_eq!(g["Path"], w["Path"]);
        assert_eq!(g["Version"], w["Version"]);
        assert!(
            g["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
            "{g}"
        );
        assert_eq!(g["Sum"], w["Sum"], "zip hash through Sparta vs direct");
        assert_eq!(
            g["GoModSum"], w["GoModSum"],
            "go.mod hash through Sparta vs direct"
        );
    }
    // The modules are now stored: a fresh client gets them from Sparta.
    let again = GoEnv::new(&sparta.url).download(&MODULES).await;
    for (a, g) in again.iter().zip(&got) {
        assert_eq!(a["Sum"], g["Sum"]);
    }
    // Stored a moment after the answers.
    within(Duration::from_secs(30), || async {
        let stored = sparta.stored();
        MODULES.iter().all(|m| {
            let (path, version) = m.split_once('@').expect("module@version");
            stored.contains_key(&format!("{path}/@v/{version}.zip"))
        })
    })
    .await;
    let stored = sparta.stored();
    for m in MODULES {
        let (path, version) = m.split_once('@').expect("module@version");
        let key = format!("{path}/@v/{version}.zip");
        assert!(
            stored.contains_key(&key),
            "{key} not stored: {:?}",
            stored.keys()
        );
    }
}
