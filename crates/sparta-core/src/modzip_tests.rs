use super::*;
use std::collections::HashMap;
use std::io::Cursor;

fn m(p: &str) -> ModulePath {
    ModulePath::parse(p).unwrap()
}
fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}
fn file(path: &str, size: u64) -> RepoEntry {
    RepoEntry {
        path: path.into(),
        kind: EntryKind::File,
        size,
    }
}
fn entry(path: &str, kind: EntryKind) -> RepoEntry {
    RepoEntry {
        path: path.into(),
        kind,
        size: 5,
    }
}
fn names(p: &ZipPlan) -> Vec<&str> {
    p.files.iter().map(|f| f.name.as_str()).collect()
}
fn why(p: &ZipPlan, name: &str) -> Option<Omission> {
    p.omitted.iter().find(|(n, _)| n == name).map(|(_, w)| *w)
}
fn plan_root(entries: &[RepoEntry], gomod: Option<&[u8]>) -> Result<ZipPlan, CoreError> {
    plan(&m("example.test/m"), &v("v1.0.0"), "", entries, gomod)
}

#[test]
fn prefix_is_path_at_version() {
    let p = plan_root(&[file("go.mod", 3), file("a.go", 3)], None).unwrap();
    assert_eq!(p.prefix, "example.test/m@v1.0.0/");
    assert_eq!(names(&p), ["go.mod", "a.go"]);
    assert_eq!(p.total, 6);
}

#[test]
fn version_must_fit_the_path() {
    let err = plan(
        &m("example.test/m"),
        &v("v2.0.0"),
        "",
        &[file("a.go", 1)],
        None,
    )
    .unwrap_err();
    assert!(matches!(err, CoreError::InvalidVersion { .. }), "{err}");
}

#[test]
fn nested_modules_are_left_out() {
    let p = plan_root(
        &[
            file("go.mod", 3),
            file("a.go", 3),
            file("sub/go.mod", 3),
            file("sub/x.go", 3),
            file("sub/deep/y.go", 3),
            file("subx/z.go", 3),
            entry("link/go.mod", EntryKind::Symlink),
            file("link/w.go", 3),
        ],
        None,
    )
    .unwrap();
    assert_eq!(names(&p), ["go.mod", "a.go", "subx/z.go", "link/w.go"]);
    assert_eq!(why(&p, "sub/go.mod"), Some(Omission::NestedModule));
    assert_eq!(why(&p, "sub/deep/y.go"), Some(Omission::NestedModule));
    assert_eq!(why(&p, "link/go.mod"), Some(Omission::Symlink));
}

#[test]
fn subdirectory_module_takes_its_files_and_the_root_license() {
    let entries = [
        file("LICENSE", 7),
        file("go.mod", 3),
        file("root.go", 3),
        file("sub/go.mod", 3),
        file("sub/s.go", 3),
        file("subother/o.go", 3),
    ];
    let p = plan(
        &m("example.test/m/sub"),
        &v("v1.0.0"),
        "sub",
        &entries,
        None,
    )
    .unwrap();
    assert_eq!(names(&p), ["go.mod", "s.go", "LICENSE"]);
    assert_eq!(p.files[2].source, "LICENSE");
    assert_eq!(p.files[0].source, "sub/go.mod");
    // A module with a LICENSE of its own keeps it.
    let mut own = entries.to_vec();
    own.push(file("sub/LICENSE", 2));
    let p = plan(&m("example.test/m/sub"), &v("v1.0.0"), "sub/", &own, None).unwrap();
    let lic: Vec<_> = p.files.iter().filter(|f| f.name == "LICENSE").collect();
    assert_eq!(lic.len(), 1);
    assert_eq!(lic[0].source, "sub/LICENSE");
    // The root module does not inherit anything.
    let p = plan_root(&[file("go.mod", 1)], None).unwrap();
    assert_eq!(names(&p), ["go.mod"]);
}

#[test]
fn vendor_rules_before_go_1_24() {
    let old = b"module example.test/m\n\ngo 1.21\n";
    let entries = [
        file("vendor/modules.txt", 1),
        file("vendor/a/a.go", 1),
        file("vendor/top.go", 1),
        file("pkg/vendor/v.go", 1),
        file("pkg/vendor/x/x.go", 1),
        file("x/y/vendor/z.go", 1),
    ];
    let p = plan_root(&entries, Some(old)).unwrap();
    // The old rule looks past the first len("/vendor/") bytes of the whole name.
    assert_eq!(names(&p), ["vendor/modules.txt", "vendor/top.go"]);
    assert_eq!(why(&p, "vendor/a/a.go"), Some(Omission::Vendored));
    assert_eq!(why(&p, "pkg/vendor/v.go"), Some(Omission::Vendored));
    // No go directive: the old rules too.
    let p = plan_root(&entries, Some(b"module example.test/m\n")).unwrap();
    assert_eq!(names(&p), ["vendor/modules.txt", "vendor/top.go"]);
    let p = plan_root(&entries, None).unwrap();
    assert_eq!(names(&p), ["vendor/modules.txt", "vendor/top.go"]);
}

#[test]
fn vendor_rules_from_go_1_24() {
    let new = b"module example.test/m\n\ngo 1.24.0 // new rules\n";
    let entries = [
        file("vendor/modules.txt", 1),
        file("vendor/a/a.go", 1),
        file("vendor/top.go", 1),
        file("pkg/vendor/v.go", 1),
        file("pkg/vendor/x/x.go", 1),
    ];
    let p = plan_root(&entries, Some(new)).unwrap();
    assert_eq!(names(&p), ["vendor/top.go", "pkg/vendor/v.go"]);
    assert_eq!(why(&p, "vendor/modules.txt"), Some(Omission::Vendored));
    assert_eq!(why(&p, "pkg/vendor/x/x.go"), Some(Omission::Vendored));
}

#[test]
fn go_directive_parsing() {
    assert!(go_at_least_1_24(b"go 1.24"));
    assert!(go_at_least_1_24(b"module a\ngo 1.25rc1\n"));
    assert!(go_at_least_1_24(b"go 2.0"));
    assert!(!go_at_least_1_24(b"go 1.23.4"));
    assert!(
        !go_at_least_1_24(b"go 1.24\ngo 1.25\n"),
        "repeated directive"
    );
    assert!(!go_at_least_1_24(b"go 01.24"), "malformed");
    assert!(!go_at_least_1_24(b"go 1.24 extra"));
    assert!(!go_at_least_1_24(b"// go 1.24\n"));
    assert!(!go_at_least_1_24(b"toolchain go1.25\n"));
}

#[test]
fn symlinks_irregular_files_and_directories_are_left_out() {
    let p = plan_root(
        &[
            file("a.go", 1),
            entry("l.go", EntryKind::Symlink),
            entry("dev", EntryKind::Irregular),
            entry("dir", EntryKind::Dir),
            entry("sm", EntryKind::Submodule),
            file(".hg_archival.txt", 1),
            file("x/.git/config", 1),
        ],
        None,
    )
    .unwrap();
    assert_eq!(names(&p), ["a.go"]);
    assert_eq!(why(&p, "l.go"), Some(Omission::Symlink));
    assert_eq!(why(&p, "dev"), Some(Omission::NotRegular));
    assert_eq!(why(&p, "dir"), Some(Omission::Directory));
    assert_eq!(why(&p, "sm"), Some(Omission::Directory));
    assert_eq!(why(&p, ".hg_archival.txt"), Some(Omission::HgArchival));
    assert_eq!(why(&p, "x/.git/config"), Some(Omission::VcsDir));
}

#[test]
fn case_fold_collisions_are_refused() {
    let err = plan_root(&[file("a.go", 1), file("A.go", 1)], None).unwrap_err();
    assert!(err.to_string().contains("case-insensitive"), "{err}");
    let err = plan_root(&[file("dir/a.go", 1), file("DIR/b.go", 1)], None).unwrap_err();
    assert!(err.to_string().contains("case-insensitive"), "{err}");
    // A symlink still takes part in collisions, as in the go command.
    let err = plan_root(&[file("a.go", 1), entry("A.GO", EntryKind::Symlink)], None).unwrap_err();
    assert!(err.to_string().contains("case-insensitive"), "{err}");
}

#[test]
fn invalid_names_are_refused() {
    for bad in [
        "a:b.go",
        "x/../y.go",
        "con.go/../a",
        "sp ace\u{7}.go",
        "GO.MOD",
    ] {
        let err = plan_root(&[file(bad, 1)], None).unwrap_err();
        assert!(matches!(err, CoreError::InvalidZip(_)), "{bad}: {err}");
    }
    // Names the go command accepts.
    plan_root(&[file("a b/c-d_e~f.go", 1), file("x/+y@z.go", 1)], None).unwrap();
}

#[test]
fn size_limits() {
    let err = plan_root(&[file("go.mod", MAX_GOMOD_SIZE + 1)], None).unwrap_err();
    assert!(err.to_string().contains("go.mod file too large"), "{err}");
    let err = plan_root(&[file("LICENSE", MAX_LICENSE_SIZE + 1)], None).unwrap_err();
    assert!(err.to_string().contains("LICENSE file too large"), "{err}");
    plan_root(&[file("go.mod", MAX_GOMOD_SIZE)], None).unwrap();
    let big = [file("a", MAX_ZIP_SIZE / 2), file("b", MAX_ZIP_SIZE / 2 + 1)];
    let err = plan_root(&big, None).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    // Left-out files do not count.
    let mut ok = big.to_vec();
    ok[1].path = "vendor/x/b".into();
    plan_root(&ok, None).unwrap();
}

#[test]
fn written_zip_passes_the_checks_and_hashes_as_its_files() {
    let contents: HashMap<&str, &[u8]> = [
        ("LICENSE", b"license text\n" as &[u8]),
        ("sub/go.mod", b"module example.test/m/sub\n"),
        ("sub/a.go", b"package sub\n"),
        ("sub/vendor/x/y.go", b"package y\n"),
    ]
    .into();
    let entries: Vec<_> = contents
        .iter()
        .map(|(p, c)| file(p, c.len() as u64))
        .collect();
    let module = m("example.test/m/sub");
    let version = v("v1.2.3");
    let plan = plan(
        &module,
        &version,
        "sub",
        &entries,
        Some(contents["sub/go.mod"]),
    )
    .unwrap();
    let mut out = Cursor::new(Vec::new());
    let size = write_zip(&mut out, &plan, MAX_ZIP_SIZE, |f, w| {
        w.write_all(contents[f.source.as_str()])
    })
    .unwrap();
    assert_eq!(size, out.get_ref().len() as u64);
    out.set_position(0);
    let summary = crate::zipcheck::check_zip(&mut out, &module, &version).unwrap();
    assert_eq!(summary.files, 3);
    let want = crate::hash::hash1([
        ("example.test/m/sub@v1.2.3/LICENSE", contents["LICENSE"]),
        ("example.test/m/sub@v1.2.3/a.go", contents["sub/a.go"]),
        ("example.test/m/sub@v1.2.3/go.mod", contents["sub/go.mod"]),
    ]);
    assert_eq!(summary.h1, want);
}

#[test]
fn writer_refuses_sizes_other_than_planned() {
    let plan = plan_root(&[file("a.go", 3)], None).unwrap();
    let mut out = Cursor::new(Vec::new());
    let err = write_zip(&mut out, &plan, MAX_ZIP_SIZE, |_, w| w.write_all(b"abcd")).unwrap_err();
    assert!(err.to_string().contains("larger"), "{err}");
    let err = write_zip(Cursor::new(Vec::new()), &plan, MAX_ZIP_SIZE, |_, w| {
        w.write_all(b"ab")
    })
    .unwrap_err();
    assert!(err.to_string().contains("shorter"), "{err}");
    let err = write_zip(Cursor::new(Vec::new()), &plan, 10, |_, w| {
        w.write_all(b"abc")
    })
    .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

/// Contents for a file of `size` bytes named `name`, different per file.
fn content_of(name: &str, size: usize) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    (0..size)
        .map(|i| b"abcdefgh\n"[(i as u32 ^ seed) as usize % 9])
        .collect()
}

#[test]
fn many_small_files_between_large_ones_keep_their_order_and_bytes() {
    // Small files go to the workers, the two large ones stream through the
    // writer: the zip must still hold every file, in plan order, intact.
    let sizes: Vec<(String, usize)> = (0..40)
        .map(|i| match i {
            7 | 30 => (format!("big{i}.txt"), (PARALLEL_MAX_FILE as usize) + 1000),
            _ => (format!("f{i:02}.go"), 100 + i * 997),
        })
        .collect();
    let contents: HashMap<String, Vec<u8>> = sizes
        .iter()
        .map(|(n, s)| (n.clone(), content_of(n, *s)))
        .collect();
    let entries: Vec<_> = sizes.iter().map(|(n, s)| file(n, *s as u64)).collect();
    let plan = plan_root(&entries, None).unwrap();
    let mut out = Cursor::new(Vec::new());
    write_zip(&mut out, &plan, MAX_ZIP_SIZE, |f, w| {
        w.write_all(&contents[f.source.as_str()])
    })
    .unwrap();
    out.set_position(0);
    let mut zip = zip::ZipArchive::new(&mut out).unwrap();
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    let want: Vec<String> = plan
        .files
        .iter()
        .map(|f| format!("{}{}", plan.prefix, f.name))
        .collect();
    assert_eq!(names, want);
    for f in &plan.files {
        let mut got = Vec::new();
        std::io::Read::read_to_end(
            &mut zip.by_name(&format!("{}{}", plan.prefix, f.name)).unwrap(),
            &mut got,
        )
        .unwrap();
        assert_eq!(got, contents[f.source.as_str()], "{}", f.name);
    }
}

#[test]
fn a_short_file_among_many_fails_the_zip_without_hanging() {
    let entries: Vec<_> = (0..30).map(|i| file(&format!("f{i:02}.go"), 50)).collect();
    let plan = plan_root(&entries, None).unwrap();
    let err = write_zip(Cursor::new(Vec::new()), &plan, MAX_ZIP_SIZE, |f, w| {
        let n = if f.name == "f17.go" { 49 } else { 50 };
        w.write_all(&vec![b'x'; n])
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("f17.go") && err.to_string().contains("shorter"),
        "{err}"
    );
}
