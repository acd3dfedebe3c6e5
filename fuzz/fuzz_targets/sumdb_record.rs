//! Lookup answers (`<id>\n<record text>\n\n<signed note>`): splitting never
//! panics, and the parts it returns are the message's own bytes, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::sumdb::tlog::{Record, record_hash};

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::parse(data) else {
        return;
    };
    assert!(record.text.ends_with(b"\n"));
    let id = record.id.to_string();
    assert!(data.starts_with(id.as_bytes()));
    let body = &data[id.len() + 1..];
    assert!(body.starts_with(record.text));
    assert!(body.ends_with(record.signed_tree));
    assert_eq!(body.len(), record.text.len() + 1 + record.signed_tree.len());
    let _ = record_hash(record.text);
});
