use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;

use super::values::{parse_duration, parse_size, redact_userinfo};
use super::*;

/// Loads as `sparta serve <args>` would with exactly `env` and, if given,
/// a TOML file holding `file`.
fn load(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> anyhow::Result<Loaded> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparta.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    let matches = ServeArgs::augment_args(clap::Command::new("sparta"))
        .try_get_matches_from(std::iter::once("sparta").chain(args.iter().copied()))?;
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Loaded::new(file.map(|_| path.as_path()), &matches, &env)
}

const UP: (&str, &str) = ("SPARTA_UPSTREAM", "http://127.0.0.1:1");

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("256MiB").unwrap().as_u64(), 256 << 20);
    assert_eq!(parse_size("1000").unwrap().as_u64(), 1000);
    assert_eq!(parse_size("2GiB").unwrap().as_u64(), 2 << 30);
    assert_eq!(parse_size("500kB").unwrap().as_u64(), 500_000);
    assert!(parse_size("12XB").is_err());
    assert!(parse_size("MiB").is_err());
    assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
    assert!(parse_duration("5 fortnights").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let file = "listen = \"127.0.0.1:9\"\nstorage = \"/tmp/from-file\"\ncache_size = \"1MiB\"\nlist_ttl = 7\n";
    let env = [
        UP,
        ("SPARTA_LISTEN", "127.0.0.1:8"),
        ("SPARTA_STORAGE", "memory://"),
    ];
    let l = load(&["--listen", "127.0.0.1:7"], &env, Some(file)).unwrap();
    let s = &l.settings;
    assert_eq!(s.listen.to_string(), "127.0.0.1:7");
    assert_eq!(s.storage, "memory://");
    assert_eq!(s.cache_size(), 1 << 20);
    assert_eq!(s.list_ttl, Duration::from_secs(7));
    assert_eq!(s.negative_ttl, Duration::from_secs(60));
    assert_eq!(l.sources["listen"], "flag --listen");
    assert_eq!(l.sources["storage"], "env SPARTA_STORAGE");
    assert!(
        l.sources["cache_size"].starts_with("file "),
        "{:?}",
        l.sources
    );
    assert!(l.sources["cache_size"].ends_with("sparta.toml"));
    assert_eq!(l.sources["negative_ttl"], "default");

    // Without the flag the env var wins; without both, the file.
    let l = load(&[], &env, Some(file)).unwrap();
    assert_eq!(l.settings.listen.to_string(), "127.0.0.1:8");
    let l = load(&[], &[UP], Some(file)).unwrap();
    assert_eq!(l.settings.listen.to_string(), "127.0.0.1:9");
    let l = load(&[], &[UP], None).unwrap();
    assert_eq!(l.settings.listen.to_string(), "0.0.0.0:3000");
    assert_eq!(l.settings.storage, "./sparta-data");
}

#[test]
fn booleans_and_lists_from_every_layer() {
    let sumdb = format!("{} http://127.0.0.1:2", sparta_sumdb::DEFAULT_KEY);
    let l = load(
        &[
            "--s3-path-style",
            "--sumdb-verify=false",
            "--nosumdb",
            "a.example/*",
            "--nosumdb",
            "b.example",
        ],
        &[
            UP,
            ("SPARTA_S3_ALLOW_HTTP", "true"),
            ("SPARTA_SUMDB", &sumdb),
        ],
        Some("sumdb_fail_open = true\n"),
    )
    .unwrap();
    let s = &l.settings;
    assert!(s.s3_path_style && s.s3_allow_http && !s.sumdb_verify && s.sumdb_fail_open);
    assert_eq!(s.nosumdb, ["a.example/*", "b.example"]);
    assert_eq!(s.sumdb, [sumdb]);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("sumdb_fail_open has no effect")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn upstream_defaults_to_goproxy_without_direct() {
    let l = load(&[], &[("GOPROXY", "http://127.0.0.1:5,direct")], None).unwrap();
    assert_eq!(l.settings.upstream(), "http://127.0.0.1:5");
    assert_eq!(l.sources["upstream"], "env GOPROXY");
    let err = load(&[], &[("GOPROXY", "direct")], None).unwrap_err();
    assert!(err.to_string().contains("no upstream"), "{err}");
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let err = load(
        &[],
        &[UP],
        Some("listen = \"127.0.0.1:9\"\nno_such_key = 1\n"),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no_such_key") && msg.contains("sparta.toml"),
        "{msg}"
    );
    // `config` names the file; inside the file it is not a setting.
    assert!(load(&[], &[UP], Some("config = \"x.toml\"\n")).is_err());
    // Unrelated SPARTA_* variables (the log filter, test harness) are not settings.
    load(
        &[],
        &[UP, ("SPARTA_LOG", "debug"), ("SPARTA_BIN", "/x")],
        None,
    )
    .unwrap();
}

/// Flags, env vars, file text, and the words the error must contain.
type BadCase<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a [&'a str],
);

#[test]
fn bad_values_name_the_setting_and_its_source() {
    let cases: &[BadCase] = &[
        (
            &[],
            &[("SPARTA_LIST_TTL", "5 fortnights")],
            None,
            &["list_ttl", "env SPARTA_LIST_TTL", "not a duration"],
        ),
        (
            &[],
            &[],
            Some("cache_size = \"12XB\"\n"),
            &["cache_size", "sparta.toml", "not a size"],
        ),
        (
            &[],
            &[("SPARTA_LOG_FORMAT", "xml")],
            None,
            &["log_format", "env SPARTA_LOG_FORMAT", "json"],
        ),
        (
            &[],
            &[("SPARTA_LISTEN", "localhost")],
            None,
            &["listen", "env SPARTA_LISTEN"],
        ),
        (
            &[],
            &[("SPARTA_S3_ENDPOINT", "not a url")],
            None,
            &["s3_endpoint", "env SPARTA_S3_ENDPOINT"],
        ),
        (
            &[],
            &[("SPARTA_S3_PATH_STYLE", "maybe")],
            None,
            &["s3_path_style", "bool"],
        ),
        (&["--path-prefix", "go"], &[], None, &["path_prefix", "'/'"]),
        (&["--lease-ttl", "0s"], &[], None, &["lease_ttl", "zero"]),
        (&[], &[("SPARTA_UPSTREAM", "ftp://x")], None, &["upstream"]),
        (
            &["--presign-ttl", "0s"],
            &[],
            None,
            &["presign_ttl", "longer than zero"],
        ),
        (
            &[],
            &[("SPARTA_PRESIGN_TTL", "8days")],
            None,
            &["presign_ttl", "7 days"],
        ),
        (
            &[],
            &[],
            Some("presign_ttl = \"soon\"\n"),
            &["presign_ttl", "not a duration"],
        ),
        (
            &[
                "--download-mode",
                "a.example/*=presigned",
                "--storage",
                "memory://",
            ],
            &[],
            None,
            &["presigned", "s3://", "memory://"],
        ),
        (
            &["--download-mode", "a.example/*=presigned:1m"],
            &[],
            None,
            &["download mode", "presigned"],
        ),
    ];
    for (args, env, file, wants) in cases {
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "SPARTA_UPSTREAM") {
            env.push(UP);
        }
        let err = load(args, &env, *file).expect_err(&format!("{args:?} {env:?} {file:?}"));
        let msg = format!("{err:#}");
        for want in *wants {
            assert!(msg.contains(want), "{want:?} not in {msg:?}");
        }
    }
    // Flags are typed by clap: a bad one is refused before loading.
    assert!(load(&["--cache-size", "lots"], &[UP], None).is_err());
    assert!(load(&["--leases", "sometimes"], &[UP], None).is_err());
}

#[test]
fn presigned_mode_and_its_ttl() {
    let l = load(&[], &[UP], None).unwrap();
    assert_eq!(l.settings.presign_ttl, Duration::from_secs(300));
    let l = load(
        &[
            "--download-mode",
            "a.example/*=presigned",
            "--storage",
            "s3://b/p",
        ],
        &[UP, ("SPARTA_PRESIGN_TTL", "90s")],
        None,
    )
    .unwrap();
    assert_eq!(l.settings.presign_ttl, Duration::from_secs(90));
    assert_eq!(l.settings.download_mode, ["a.example/*=presigned"]);
    let l = load(&[], &[UP], Some("presign_ttl = \"7days\"\n")).unwrap();
    assert_eq!(l.settings.presign_ttl, sparta_storage::MAX_PRESIGN_TTL);
}

#[test]
fn spool_dir_must_be_writable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let spool = file.join("spool");
    let err = load(&["--spool-dir", spool.to_str().unwrap()], &[UP], None).unwrap_err();
    assert!(format!("{err:#}").contains("spool_dir"), "{err:#}");
    let ok = dir.path().join("spool");
    let l = load(&["--spool-dir", ok.to_str().unwrap()], &[UP], None).unwrap();
    assert_eq!(l.settings.spool_dir(), ok);
}

#[test]
fn render_lists_every_setting_with_its_source_and_hides_secrets() {
    let sumdb = format!("{} http://tok3n@127.0.0.1:2", sparta_sumdb::DEFAULT_KEY);
    let l = load(
        &[
            "--storage",
            "s3://bucket/prefix",
            "--s3-endpoint",
            "http://alice:hunter2@127.0.0.1:1",
        ],
        &[UP, ("SPARTA_CACHE_SIZE", "1MiB"), ("SPARTA_SUMDB", &sumdb)],
        Some("lease_ttl = \"2m\"\n"),
    )
    .unwrap();
    let out = l.render().unwrap();
    assert!(!out.contains("hunter2") && !out.contains("tok3n"), "{out}");
    assert!(
        out.contains(
            "s3_endpoint = \"http://alice:<redacted>@127.0.0.1:1/\"  # flag --s3-endpoint"
        ),
        "{out}"
    );
    assert!(
        out.contains("http://<redacted>@127.0.0.1:2\"]  # env SPARTA_SUMDB"),
        "{out}"
    );
    assert!(
        out.contains("cache_size = \"1.0 MiB\"  # env SPARTA_CACHE_SIZE"),
        "{out}"
    );
    assert!(out.contains("lease_ttl = \"2m\"  # file "), "{out}");
    assert!(
        out.contains("listen = \"0.0.0.0:3000\"  # default"),
        "{out}"
    );
    assert!(out.contains("# s3_region is unset"), "{out}");
    // Every setting has a line, and the output reads back as the same settings.
    for arg in Settings::augment_args(clap::Command::new("x")).get_arguments() {
        assert!(
            out.contains(arg.get_id().as_str()),
            "{} missing",
            arg.get_id()
        );
    }
    let back: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(back["lease_ttl"].as_str(), Some("2m"));
}

#[test]
fn redaction_keeps_urls_without_credentials() {
    assert_eq!(
        redact_userinfo("https://h.example/x,off"),
        "https://h.example/x,off"
    );
    assert_eq!(
        redact_userinfo("https://u:p@h/x"),
        "https://u:<redacted>@h/x"
    );
    assert_eq!(redact_userinfo("https://t@h"), "https://<redacted>@h");
}

#[test]
fn fetch_limits_from_flag_env_and_file() {
    let l = load(&[], &[UP], None).unwrap();
    let d = l.settings.limits();
    assert_eq!(
        (d.max_fetches, d.max_fetches_per_host, d.spool_budget),
        (64, 16, 2 << 30)
    );
    assert_eq!(d.queue_wait, Duration::from_secs(10));
    let l = load(
        &["--max-fetches", "8"],
        &[UP, ("SPARTA_SPOOL_BUDGET", "1GiB")],
        Some("max_fetches_per_host = 2\nfetch_queue_wait = \"500ms\"\n"),
    )
    .unwrap();
    let s = l.settings.limits();
    assert_eq!(
        (s.max_fetches, s.max_fetches_per_host, s.spool_budget),
        (8, 2, 1 << 30)
    );
    assert_eq!(s.queue_wait, Duration::from_millis(500));
    assert!(load(&["--max-fetches", "-1"], &[UP], None).is_err());
}

#[test]
fn connection_workers_default_to_one_per_cpu_and_zero_turns_them_off() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let l = load(&[], &[UP], None).unwrap();
    assert_eq!(l.settings.connection_workers(), cpus);
    let l = load(&["--connection-workers", "0"], &[UP], None).unwrap();
    assert_eq!(l.settings.connection_workers(), 0);
    let l = load(&[], &[UP, ("SPARTA_CONNECTION_WORKERS", "3")], None).unwrap();
    assert_eq!(l.settings.connection_workers(), 3);
    let l = load(&[], &[UP], Some("connection_workers = 5\n")).unwrap();
    assert_eq!(l.settings.connection_workers(), 5);
    let err = load(&["--connection-workers", "5000"], &[UP], None).unwrap_err();
    assert!(format!("{err:#}").contains("connection_workers"), "{err:#}");
}
