//! `h1:` hashes as go.sum records them (golang.org/x/mod/sumdb/dirhash Hash1).

use crate::CoreError;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;

/// `h1:` hash of a go.mod file as go.sum records it for `<module> <version>/go.mod`.
pub fn gomod_h1(gomod: &[u8]) -> String {
    hash1([("go.mod", gomod)])
}

/// `h1:` hash of a module zip's files (`dirhash.HashZip`), read from `zip`.
/// Every entry counts under its full name (`path@version/...`); directory
/// entries count as empty files, as Go's zip reader opens them.
pub fn zip_h1<R: std::io::Read + std::io::Seek>(zip: R) -> Result<String, CoreError> {
    let mut archive = zip::ZipArchive::new(zip).map_err(zip_error)?;
    let mut h = Hash1::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_error)?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| CoreError::InvalidZip("file name is not UTF-8".into()))?
            .to_owned();
        let digest = if name.ends_with('/') {
            if entry.compressed_size() != 0 {
                return Err(CoreError::InvalidZip(format!(
                    "directory {name:?} has content"
                )));
            }
            Sha256::digest([]).into()
        } else {
            let size = entry.size();
            sha256_exact(&mut entry, size, &name)?
        };
        h.add(&name, digest)?;
    }
    // The zip reader keeps one entry per name; Go hashes a repeated name once
    // per occurrence, so duplicates would give a different hash: refuse them.
    if archive.has_duplicate_names() {
        return Err(CoreError::InvalidZip("duplicate file names".into()));
    }
    h.finish()
}

/// Hash1 over (name, content) pairs, names sorted: the shared algorithm.
/// Names must not contain a newline (Go refuses them; here such a name would
/// only give a hash that nothing else can reproduce).
pub fn hash1<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut h = Hash1::new();
    for (name, content) in files {
        h.entries
            .push((name.to_owned(), Sha256::digest(content).into()));
    }
    h.summary()
}

/// Hash1 built file by file from precomputed SHA-256 digests, so callers can
/// stream contents instead of holding them.
#[derive(Debug, Default, Clone)]
pub struct Hash1 {
    entries: Vec<(String, [u8; 32])>,
}

impl Hash1 {
    /// An empty hash builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one file by name and the SHA-256 of its content.
    pub fn add(&mut self, name: &str, sha256: [u8; 32]) -> Result<(), CoreError> {
        if name.contains('\n') {
            return Err(CoreError::InvalidZip("file name contains a newline".into()));
        }
        self.entries.push((name.to_owned(), sha256));
        Ok(())
    }

    /// The `h1:` string over every file added.
    pub fn finish(self) -> Result<String, CoreError> {
        Ok(self.summary())
    }

    fn summary(mut self) -> String {
        // Go sorts names as byte strings; Rust's str order is the same.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Sha256::new();
        for (name, digest) in &self.entries {
            h.update(hex(digest));
            h.update(b"  ");
            h.update(name.as_bytes());
            h.update(b"\n");
        }
        format!(
            "h1:{}",
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        )
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Streams `r` into SHA-256 and checks it yields exactly `size` bytes, so a
/// header cannot under-declare what an entry inflates to.
pub(crate) fn sha256_exact(
    r: &mut impl Read,
    size: u64,
    name: &str,
) -> Result<[u8; 32], CoreError> {
    let mut h = Sha256::new();
    let mut limited = r.take(size.saturating_add(1));
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = limited
            .read(&mut buf)
            .map_err(|e| CoreError::InvalidZip(format!("{name}: {e}")))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total != size {
        return Err(CoreError::InvalidZip(format!(
            "{name}: uncompressed size does not match its header ({size} bytes declared)"
        )));
    }
    Ok(h.finalize().into())
}

fn zip_error(e: zip::result::ZipError) -> CoreError {
    CoreError::InvalidZip(e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    // Known answers computed with the go command's own golang.org/x/mod
    // (dirhash.Hash1 / dirhash.HashZip over a zip from zip.CreateFromDir).
    pub(crate) const GOMOD: &str = "module example.com/Hello/v2\n\ngo 1.21\n";
    pub(crate) const FILES: &[(&str, &str)] = &[
        ("go.mod", GOMOD),
        (
            "hello.go",
            "package hello\n\n// Hello says hello.\nfunc Hello() string { return \"hello\" }\n",
        ),
        ("LICENSE", "Public domain.\n"),
        ("sub/Greet.go", "package sub\n\nconst Greeting = \"hi\"\n"),
        ("sub/data/x y.txt", "space in name\n"),
    ];
    pub(crate) const PREFIX: &str = "example.com/Hello/v2@v2.1.0-RC1/";
    pub(crate) const ZIP_H1: &str = "h1:THIGCXQWMpeUXxk4e3nPO9WQMCn/mA/Iz8fvla+oBNs=";

    pub(crate) fn build_zip(entries: &[(&str, &str)], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, content) in entries {
            if let Some(dir) = name.strip_suffix('/') {
                w.add_directory(dir, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(content.as_bytes()).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    pub(crate) fn module_zip(method: zip::CompressionMethod) -> Vec<u8> {
        let names: Vec<(String, &str)> = FILES
            .iter()
            .map(|(n, c)| (format!("{PREFIX}{n}"), *c))
            .collect();
        let entries: Vec<(&str, &str)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        build_zip(&entries, method)
    }

    #[test]
    fn gomod_known_answers() {
        assert_eq!(
            gomod_h1(GOMOD.as_bytes()),
            "h1:45DMk8evw1Awj7wJIH+bwmu396S/NK46utEwQWubeZQ="
        );
        // A real module's go.mod and its go.sum line (golang.org/x/mod v0.43.0).
        let real = "module golang.org/x/mod\n\ngo 1.26.0\n\nrequire golang.org/x/tools v0.52.0 // tagx:ignore\n";
        assert_eq!(
            gomod_h1(real.as_bytes()),
            "h1:4ec1JnuyBz5+FIVhg86UsA39YG8BpnrZdJYSNHmGzHY="
        );
        assert_ne!(gomod_h1(b"module a.b\n"), gomod_h1(b"module a.c\n"));
    }

    #[test]
    fn zip_known_answer() {
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            assert_eq!(zip_h1(Cursor::new(module_zip(method))).unwrap(), ZIP_H1);
        }
        // hash1 over the same names and contents gives the same answer.
        let names: Vec<(String, &str)> = FILES
            .iter()
            .map(|(n, c)| (format!("{PREFIX}{n}"), *c))
            .collect();
        assert_eq!(
            hash1(names.iter().rev().map(|(n, c)| (n.as_str(), c.as_bytes()))),
            ZIP_H1
        );
    }

    /// example.com/m@v1.0.0 with directory entries (the root and `sub/`)
    /// beside its two files; its hash is [`DIR_ZIP_H1`].
    pub(crate) fn dir_zip() -> Vec<u8> {
        let p = "example.com/m@v1.0.0/";
        build_zip(
            &[
                (p, ""),
                (&format!("{p}sub/"), ""),
                (&format!("{p}go.mod"), "module example.com/m\n"),
                (&format!("{p}sub/a.go"), "package sub\n"),
            ],
            zip::CompressionMethod::Deflated,
        )
    }

    /// Known answer from the go command's dirhash.HashZip on [`dir_zip`].
    pub(crate) const DIR_ZIP_H1: &str = "h1:hCzx9aGcscj7PyJKtzU7KrFXka14kRas6Z5NwDaoncg=";

    #[test]
    fn zip_with_directory_entries_known_answer() {
        assert_eq!(zip_h1(Cursor::new(dir_zip())).unwrap(), DIR_ZIP_H1);
    }

    #[test]
    fn hash1_changes_with_any_byte_or_name() {
        let base = hash1([("a", b"x".as_slice()), ("b", b"y".as_slice())]);
        assert_ne!(
            base,
            hash1([("a", b"x".as_slice()), ("b", b"z".as_slice())])
        );
        assert_ne!(
            base,
            hash1([("a", b"x".as_slice()), ("c", b"y".as_slice())])
        );
        assert_eq!(
            base,
            hash1([("b", b"y".as_slice()), ("a", b"x".as_slice())])
        );
    }

    #[test]
    fn builder_refuses_newlines() {
        assert!(Hash1::new().add("a\nb", [0; 32]).is_err());
    }
}
