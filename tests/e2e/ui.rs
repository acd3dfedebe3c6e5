//! The browse page `/ui` in real headless chromium (Debian's, driven by
//! playwright-core; `scripts/install-chromium.sh`): search, a module page, a
//! screenshot kept under target/sparta-e2e/ui/, and hostile module names
//! (planted in the catalog's objects) shown as text with no script run.

use std::process::Command;

use sparta_e2e::{
    Sparta, fixture, http_client, scratch_module, target_dir, version_path, workspace_root,
};

const HOSTILE_SCRIPT: &str = "evil.test/<script>window.__pwned=1</script>";
const HOSTILE_ATTR: &str = "evil.test/\"><img src=x onerror=\"window.__pwned=2\">";
const HOSTILE_VERSION: &str = "v1.0.0<b onmouseover=\"window.__pwned=3\">";

async fn get(url: &str) -> (u16, String) {
    let resp = http_client().get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// Writes a catalog segment naming hostile "modules" straight into the store,
/// as a tampered bucket could.
fn plant_hostile_segment(storage: &std::path::Path) {
    let dir = storage.join("_sparta/catalog/seg");
    std::fs::create_dir_all(&dir).unwrap();
    let mut body = String::new();
    for (path, version) in [(HOSTILE_SCRIPT, "v1.0.0"), (HOSTILE_ATTR, HOSTILE_VERSION)] {
        body.push_str(
            &serde_json::json!({"path": path, "version": version, "time": "2026-01-01T00:00:00Z", "mod": 1})
                .to_string(),
        );
        body.push('\n');
    }
    std::fs::write(dir.join("000000000000000000000001-planted-0.ndjson"), body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_page_in_chromium_searches_shows_a_module_and_escapes_hostile_names() {
    let _ = fixture();
    let module = scratch_module();
    let sparta = Sparta::for_fixture(&[]).await;
    for v in ["v1.0.0", "v1.1.0"] {
        for ext in ["info", "mod", "zip"] {
            let (status, _) =
                get(&format!("{}{}", sparta.url, version_path(&module, v, ext))).await;
            assert_eq!(status, 200);
        }
    }
    plant_hostile_segment(&sparta.storage);
    let sparta = sparta.restart(&[]).await;

    // Without a browser: the raw HTML carries the names escaped only.
    let (status, html) = get(&format!("{}/ui?q=evil.test", sparta.url)).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("evil.test/&lt;script&gt;window.__pwned=1&lt;/script&gt;"),
        "{html}"
    );
    let (status, _) = get(&format!("{}/ui?page=zero", sparta.url)).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{}/ui/module?path=not.stored/x", sparta.url)).await;
    assert_eq!(status, 404);

    let artifacts = target_dir().join("sparta-e2e/ui");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .arg(workspace_root().join("tests/ui/browse.mjs"))
        .arg(&sparta.url)
        .arg(&artifacts)
        .arg(&module)
        .arg("evil.test")
        .current_dir(workspace_root().join("tests/ui"))
        .output()
        .expect("node (run scripts/install-chromium.sh)");
    assert!(
        out.status.success(),
        "browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script prints JSON");

    assert_eq!(seen["goproxy"], format!("go env -w GOPROXY={}", sparta.url));
    assert_eq!(seen["searchHits"], serde_json::json!([module]));
    assert_eq!(seen["moduleTitle"], module.as_str());
    let mut versions: Vec<&str> = seen["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, ["v1.0.0", "v1.1.0"]);
    for shot in ["ui-search.png", "ui-module.png", "ui-hostile.png"] {
        let len = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{shot} kept as an artifact");
    }

    // The hostile names are shown as the literal text they are; nothing ran.
    let mut hostile: Vec<&str> = seen["hostileHits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    hostile.sort();
    let mut want = [HOSTILE_ATTR, HOSTILE_SCRIPT];
    want.sort();
    assert_eq!(hostile, want);
    assert_eq!(seen["pwnedOnSearch"], serde_json::Value::Null);
    assert_eq!(seen["pwnedOnModule"], serde_json::Value::Null);
    assert_eq!(seen["imgsOnSearch"], 0);
    assert_eq!(seen["scriptsOnSearch"], 0);
    assert_eq!(seen["scriptsOnModule"], 0);
    assert_eq!(seen["dialogs"], 0);
    assert!(want.contains(&seen["hostileTitle"].as_str().unwrap()));
    let hv = seen["hostileVersions"].as_array().unwrap();
    assert_eq!(hv.len(), 1);
    assert!(["v1.0.0", HOSTILE_VERSION].contains(&hv[0].as_str().unwrap()));
}
