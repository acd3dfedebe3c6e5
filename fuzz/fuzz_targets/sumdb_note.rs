//! Signed notes and tree heads from a checksum database: opening never
//! panics whatever the bytes, and a note that opens has a text that ends in
//! a newline and is a prefix of the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::sumdb::note::Verifier;
use sparta_core::sumdb::tlog::Tree;

/// The go command's default database key (public).
const VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

fuzz_target!(|data: &[u8]| {
    let verifier = Verifier::parse(VKEY).expect("valid key");
    if let Ok(text) = verifier.open(data) {
        assert!(text.ends_with('\n'));
        assert!(data.starts_with(text.as_bytes()));
    }
    // The tree-head parser sees note texts only after verification; fuzz
    // it directly, since a valid signature cannot be forged here.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(tree) = Tree::parse(text)
    {
        assert!(text.contains(&format!("\n{}\n", tree.size)));
    }
    // A key line is input too (`--sumdb`).
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Verifier::parse(text.lines().next().unwrap_or_default());
    }
});
