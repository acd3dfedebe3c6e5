//! `sparta export` / `sparta import`: a store filled by the go command with
//! checksum verification on is exported, imported into empty stores (local
//! and the real S3-compatible server) with nothing to fetch, and the go
//! command builds from the imported store with no upstream; a bundle with
//! one flipped byte is refused file by file; a second import changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sparta_e2e::sumdb::SumdbFixture;
use sparta_e2e::{GoEnv, Sparta, SpartaOptions, fixture, sparta_bin};

/// A port nothing listens on.
const DEAD: &str = "http://127.0.0.1:9";
const DB: &str = "sumdb.sparta.test";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn sparta(args: &[&str], extra: &[String]) -> Output {
    sparta_env(args, extra, &[])
}

fn sparta_env(args: &[&str], extra: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(sparta_bin());
    cmd.envs(env.iter().copied());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SPARTA_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).args(extra).output().expect("run sparta")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Module files and checksum-database files of a local store, by key.
fn files(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let key = p
                .strip_prefix(store)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let wanted = (key.contains("/@v/")
                && !key.starts_with("_sparta/")
                && [".info", ".mod", ".zip"].iter().any(|x| key.ends_with(x)))
                || key.starts_with("_sparta/sumdb/");
            if wanted {
                out.insert(key, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A program needing fixture.test/graph/{a,b,c}, tidied (go.sum written).
async fn app(go: &GoEnv) -> PathBuf {
    let dir = go.work().join("app");
    write(
        &dir.join("go.mod"),
        "module example.test/app\n\ngo 1.21\n\nrequire fixture.test/graph/a v1.2.0\n",
    );
    write(
        &dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"fixture.test/graph/a\"\n)\n\nfunc main() { fmt.Println(a.Describe()) }\n",
    );
    go.ok(&dir, &["mod", "tidy"]).await;
    dir
}

/// Builds the app in a fresh go environment (empty module cache) against
/// `proxy`, with its go.sum.
async fn build_from(proxy: &str, sumdb_key: &str, app_dir: &Path) {
    let mut go = GoEnv::new(proxy);
    go.set("GOSUMDB", sumdb_key);
    let dir = go.work().join("app");
    for f in ["go.mod", "go.sum", "main.go"] {
        write(
            &dir.join(f),
            &std::fs::read_to_string(app_dir.join(f)).unwrap(),
        );
    }
    go.ok(&dir, &["build", "-o", "app", "."]).await;
    let out = Command::new(dir.join("app")).output().expect("run app");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a v1.2.0 -> b v1.1.0 -> c v1.2.0"
    );
}

/// Runs `sparta import` of `bundle` into `store` (a path or URL); its output.
fn import(store: &str, bundle: &Path, sumdb: &str, s3: &[String]) -> Output {
    import_env(store, bundle, sumdb, s3, &[])
}

fn import_env(
    store: &str,
    bundle: &Path,
    sumdb: &str,
    s3: &[String],
    env: &[(&str, &str)],
) -> Output {
    let mut extra = vec![
        bundle.display().to_string(),
        sumdb.to_owned(),
        "--upstream".into(),
        DEAD.into(),
    ];
    extra.extend_from_slice(s3);
    sparta_env(&["import", "--storage", store], &extra, env)
}

/// Flips one byte in the middle of `needle`'s first occurrence in `hay`.
fn flip_inside(hay: &mut [u8], needle: &[u8]) {
    let at = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the file is in the plain tar");
    hay[at + needle.len() / 2] ^= 0x01;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_refuses_a_flipped_byte_and_builds_offline() {
    let fx = fixture();
    let db = SumdbFixture::start(DB, &format!("{}/_fixture/sums", fx.url));
    let sumdb_flag = db.sparta_flag();
    // Importers know the database's key only: nothing can be fetched.
    let offline_sumdb = format!("--sumdb={} {DEAD}", db.verifier_key);
    let source = Sparta::start(SpartaOptions::fixture().args(&[&sumdb_flag])).await;
    let source_dir = source.dir.clone();
    let source_store = source.storage.clone();
    let mut go = GoEnv::new(&source.url);
    go.set("GOSUMDB", &db.verifier_key);
    let app_dir = app(&go).await;
    drop(source);
    let stored = files(&source_store);
    assert!(
        stored
            .keys()
            .any(|k| k.starts_with("_sparta/sumdb/") && k.contains("/lookup/")),
        "verification stored the checksum database's lookups: {:?}",
        stored.keys()
    );
    let module_files: Vec<&String> = stored
        .keys()
        .filter(|k| !k.starts_with("_sparta/"))
        .collect();
    assert!(module_files.iter().any(|k| k.ends_with(".zip")));

    let work = tempfile::TempDir::new().unwrap();
    let gz = work.path().join("bundle.tar.gz");
    let plain = work.path().join("bundle.tar");
    for out in [&gz, &plain] {
        let o = sparta(
            &["export", "--storage"],
            &[
                source_store.display().to_string(),
                "-o".into(),
                out.display().to_string(),
                sumdb_flag.clone(),
                "--upstream".into(),
                DEAD.into(),
            ],
        );
        assert!(o.status.success(), "export: {}", text(&o));
    }
    // Standard tools read it, manifest first.
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(&gz)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert_eq!(listing.lines().next(), Some("sparta-bundle/manifest.json"));
    for k in &module_files {
        assert!(
            listing.lines().any(|l| l == k.as_str()),
            "{k} not in the bundle"
        );
    }

    // Into an empty local store: everything stored, nothing refused.
    let imported = work.path().join("imported");
    let o = import(&imported.display().to_string(), &gz, &offline_sumdb, &[]);
    assert!(o.status.success(), "import: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(", 0 refused"),
        "{}",
        text(&o)
    );
    let got = files(&imported);
    for (k, v) in &stored {
        assert_eq!(got.get(k), Some(v), "{k} imported byte for byte");
    }
    assert!(
        got.keys().all(|k| stored.contains_key(k)),
        "only what was exported: {:?}",
        got.keys()
            .filter(|k| !stored.contains_key(*k))
            .collect::<Vec<_>>()
    );

    // Twice: nothing changes, everything is skipped.
    let before: BTreeMap<String, std::time::SystemTime> = got
        .keys()
        .map(|k| {
            (
                k.clone(),
                std::fs::metadata(imported.join(k))
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
        })
        .collect();
    let o = import(&imported.display().to_string(), &gz, &offline_sumdb, &[]);
    assert!(o.status.success(), "second import: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(" 0 stored"),
        "{}",
        text(&o)
    );
    assert_eq!(files(&imported), got);
    for (k, t) in &before {
        assert_eq!(
            std::fs::metadata(imported.join(k))
                .unwrap()
                .modified()
                .unwrap(),
            *t,
            "{k} rewritten"
        );
    }

    // The go command builds from the imported store, no upstream at all.
    let imported_arg = imported.display().to_string();
    let offline = Sparta::start(SpartaOptions::new(DEAD).args(&[
        "--storage",
        &imported_arg,
        &offline_sumdb,
        "--network",
        "offline",
    ]))
    .await;
    build_from(&offline.url, &db.verifier_key, &app_dir).await;
    drop(offline);

    // The same into the real S3-compatible server, and a build from there.
    if let Some((endpoint, bucket, access, secret)) = crate::aws_env::server() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let url = format!("s3://{bucket}/e2e-bundle/{}-{nanos}", std::process::id());
        let s3 = vec![
            format!("--s3-endpoint={endpoint}"),
            "--s3-path-style".into(),
            "--s3-allow-http".into(),
            "--s3-region=us-east-1".into(),
        ];
        let env = [
            ("AWS_ACCESS_KEY_ID", access.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ];
        let o = import_env(&url, &gz, &offline_sumdb, &s3, &env);
        assert!(o.status.success(), "import to S3: {}", text(&o));
        let o = import_env(&url, &gz, &offline_sumdb, &s3, &env);
        assert!(o.status.success(), "second import to S3: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(" 0 stored"),
            "{}",
            text(&o)
        );
        let mut args: Vec<&str> = vec!["--storage", &url, &offline_sumdb, "--network", "offline"];
        args.extend(s3.iter().map(String::as_str));
        let mut opts = SpartaOptions::new(DEAD).args(&args);
        opts.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let from_s3 = Sparta::start(opts).await;
        build_from(&from_s3.url, &db.verifier_key, &app_dir).await;
    }

    // One flipped byte inside a zip: that zip is refused, the rest stored,
    // and nothing wrong is stored.
    let zip_key = module_files
        .iter()
        .find(|k| k.contains("graph/b") && k.ends_with(".zip"))
        .expect("a zip of graph/b");
    let mut bytes = std::fs::read(&plain).unwrap();
    flip_inside(&mut bytes, &stored[*zip_key]);
    let flipped = work.path().join("flipped.tar");
    std::fs::write(&flipped, &bytes).unwrap();
    let damaged = work.path().join("damaged");
    let o = import(
        &damaged.display().to_string(),
        &flipped,
        &offline_sumdb,
        &[],
    );
    assert!(
        !o.status.success(),
        "a flipped byte must fail the import: {}",
        text(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let refused: Vec<&str> = out.lines().filter(|l| l.starts_with("REFUSED ")).collect();
    assert_eq!(refused.len(), 1, "refused file by file: {}", text(&o));
    assert!(
        refused[0].starts_with(&format!("REFUSED {zip_key}:")),
        "{}",
        refused[0]
    );
    let got = files(&damaged);
    assert!(!got.contains_key(*zip_key), "the damaged zip was stored");
    for (k, v) in &got {
        assert_eq!(Some(v), stored.get(k), "{k}: something wrong was stored");
    }
    assert_eq!(got.len(), stored.len() - 1, "everything else was stored");
    drop(source_dir);
}
