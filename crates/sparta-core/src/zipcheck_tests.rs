use super::*;
use crate::hash::tests::{DIR_ZIP_H1, FILES, PREFIX, ZIP_H1, build_zip, dir_zip, module_zip};
use std::io::{Cursor, Write};
use zip::CompressionMethod::{Deflated, Stored};

fn hello() -> (ModulePath, Version) {
    (
        ModulePath::parse("example.com/Hello/v2").unwrap(),
        Version::parse("v2.1.0-RC1").unwrap(),
    )
}

/// Both checks, which must agree on every zip (the same summary, or
/// the same refusal).
fn check(zip: Vec<u8>) -> Result<ZipSummary, CoreError> {
    let (m, v) = hello();
    let one = check_zip(Cursor::new(zip.as_slice()), &m, &v);
    let many = check_zip_threaded(Cursor::new(zip.as_slice()), &m, &v, 0);
    assert_eq!(
        one.as_ref().map_err(ToString::to_string),
        many.as_ref().map_err(ToString::to_string)
    );
    one
}

/// A zip of `(name under PREFIX, content)` entries.
fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let names: Vec<(String, &str)> = entries
        .iter()
        .map(|(n, c)| (format!("{PREFIX}{n}"), *c))
        .collect();
    let refs: Vec<(&str, &str)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    build_zip(&refs, Deflated)
}

fn refused(zip: Vec<u8>, why: &str) {
    match check(zip) {
        Err(CoreError::InvalidZip(msg)) => {
            assert!(msg.contains(why), "{msg:?} should mention {why:?}")
        }
        other => panic!("expected InvalidZip({why}), got {other:?}"),
    }
}

#[test]
fn good_zip_passes_with_known_h1() {
    for method in [Stored, Deflated] {
        let s = check(module_zip(method)).unwrap();
        assert_eq!(s.h1, ZIP_H1);
        assert_eq!(s.files, FILES.len());
        assert_eq!(
            s.uncompressed,
            FILES.iter().map(|(_, c)| c.len() as u64).sum::<u64>()
        );
    }
}

#[test]
fn directory_entries_are_allowed_and_hashed() {
    let zip = dir_zip();
    let m = ModulePath::parse("example.com/m").unwrap();
    let v = Version::parse("v1.0.0").unwrap();
    let s = check_zip(Cursor::new(zip.as_slice()), &m, &v).unwrap();
    assert_eq!(
        check_zip_threaded(Cursor::new(zip.as_slice()), &m, &v, 0).unwrap(),
        s
    );
    assert_eq!(s.h1, DIR_ZIP_H1);
    assert_eq!(s.files, 2);
}

#[test]
fn version_must_fit_module() {
    let m = ModulePath::parse("example.com/Hello/v2").unwrap();
    let v = Version::parse("v1.0.0").unwrap();
    assert!(check_zip(Cursor::new(module_zip(Deflated)), &m, &v).is_err());
}

#[test]
fn wrong_prefix() {
    refused(
        build_zip(&[("example.com/Hello/v2@v2.1.0/go.mod", "x")], Deflated),
        "prefix",
    );
    refused(
        build_zip(&[("example.com/hello/v2@v2.1.0-RC1/go.mod", "x")], Deflated),
        "prefix",
    );
    // The escaped form is not the zip's prefix: the real path and version are.
    refused(
        build_zip(
            &[("example.com/!hello/v2@v2.1.0-!r!c1/go.mod", "x")],
            Deflated,
        ),
        "prefix",
    );
    refused(build_zip(&[("go.mod", "x")], Deflated), "prefix");
}

#[test]
fn bad_names() {
    refused(zip_of(&[("a/../b.go", "x")]), "not clean");
    refused(zip_of(&[("./b.go", "x")]), "not clean");
    refused(zip_of(&[("a//b.go", "x")]), "not clean");
    refused(zip_of(&[("a*.go", "x")]), "malformed file path");
    refused(zip_of(&[("con.go", "x")]), "malformed file path");
    refused(zip_of(&[("x:y", "x")]), "malformed file path");
    refused(zip_of(&[("a\\b", "x")]), "malformed file path");
    refused(zip_of(&[("dir./a", "x")]), "malformed file path");
    // Allowed by CheckFilePath.
    check(zip_of(&[
        ("go.mod", "module example.com/Hello/v2\n"),
        ("-x/.y/a b~1(c).go", "x"),
    ]))
    .unwrap();
}

#[test]
fn collisions() {
    refused(zip_of(&[("a.go", "x"), ("A.go", "y")]), "collision");
    refused(zip_of(&[("x/a.go", "x"), ("X/b.go", "y")]), "collision");
    refused(
        zip_of(&[("x", "x"), ("x/b.go", "y")]),
        "both a file and a directory",
    );
    refused(zip_of(&[("é.go", "x"), ("É.go", "y")]), "collision");
    // KELVIN SIGN folds with k.
    refused(zip_of(&[("k.go", "x"), ("\u{212A}.go", "y")]), "collision");
}

#[test]
fn duplicate_entries() {
    // Write two same-length names, then rename the second in both headers.
    let mut zip = zip_of(&[("a.go", "x"), ("b.go", "y")]);
    let needle = format!("{PREFIX}b.go");
    let replacement = format!("{PREFIX}a.go");
    let mut i = 0;
    while let Some(pos) = find(&zip[i..], needle.as_bytes()) {
        zip[i + pos..i + pos + needle.len()].copy_from_slice(replacement.as_bytes());
        i += pos + needle.len();
    }
    assert!(check(zip).is_err());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn go_mod_rules() {
    refused(
        zip_of(&[("sub/go.mod", "module x\n")]),
        "not in module root",
    );
    refused(zip_of(&[("GO.MOD", "module x\n")]), "lowercase");
    let big = "a".repeat((MAX_GOMOD_SIZE + 1) as usize);
    let names = [(format!("{PREFIX}go.mod"), big.as_str())];
    let zip = build_zip(&[(names[0].0.as_str(), names[0].1)], Deflated);
    refused(zip, "go.mod file too large");
}

#[test]
fn symlinks_refused() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file(format!("{PREFIX}go.mod"), opts).unwrap();
    w.write_all(b"module example.com/Hello/v2\n").unwrap();
    w.add_symlink(format!("{PREFIX}link"), "go.mod", opts)
        .unwrap();
    refused(w.finish().unwrap().into_inner(), "symbolic link");
}

/// Sets the uncompressed size field of every local and central header.
fn patch_sizes(zip: &mut [u8], size: u32) {
    let mut i = 0;
    while i + 4 <= zip.len() {
        match &zip[i..i + 4] {
            b"PK\x03\x04" => zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes()),
            b"PK\x01\x02" => zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes()),
            _ => {}
        }
        i += 1;
    }
}

#[test]
fn sizes_must_not_lie() {
    let content = "0".repeat(1 << 20);
    let name = format!("{PREFIX}data.bin");
    let honest = build_zip(&[(name.as_str(), content.as_str())], Deflated);
    assert_eq!(check(honest.clone()).unwrap().uncompressed, 1 << 20);
    // A header that under-declares what the entry inflates to.
    let mut small = honest.clone();
    patch_sizes(&mut small, 1000);
    refused(small, "data.bin");
    // A header that over-declares it.
    let mut large = honest.clone();
    patch_sizes(&mut large, (1 << 20) + 1);
    refused(large, "does not match its header");
    // Declared sizes beyond the module limit are refused before inflating.
    let mut huge = honest;
    patch_sizes(&mut huge, 600 << 20);
    refused(huge, "too large");
}

#[test]
fn of_many_lying_entries_the_first_is_named() {
    // Every entry lies, and the entries are hashed on several threads:
    // the refusal still names the first one, as the one-thread check does.
    let content = "0".repeat(64 << 10);
    let names: Vec<String> = (0..9).map(|i| format!("{PREFIX}f{i}.bin")).collect();
    let entries: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), content.as_str()))
        .collect();
    let mut zip = build_zip(&entries, Deflated);
    patch_sizes(&mut zip, 1000);
    let err = check(zip).unwrap_err().to_string();
    assert!(err.contains("f0.bin"), "{err}");
}

#[test]
fn not_a_zip() {
    assert!(matches!(
        check(b"not a zip".to_vec()),
        Err(CoreError::InvalidZip(_))
    ));
    let mut truncated = module_zip(Deflated);
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(check(truncated), Err(CoreError::InvalidZip(_))));
    let mut flipped = module_zip(Stored);
    let pos = find(&flipped, b"space in name").unwrap();
    flipped[pos] ^= 1;
    assert!(
        matches!(check(flipped), Err(CoreError::InvalidZip(_))),
        "CRC mismatch"
    );
}

#[test]
fn fold_is_case_insensitive() {
    assert_eq!(fold("ABC/Def"), "abc/def");
    assert_eq!(fold("É"), fold("é"));
    assert_eq!(fold("\u{212A}"), "k");
    assert_eq!(fold("\u{17F}"), "s");
    assert_ne!(fold("a"), fold("b"));
}
