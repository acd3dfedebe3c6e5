//! `Range` headers: parsing never panics, and a resolved range lies inside
//! the file, is not empty, and never overflows (the size comes from the
//! input's first 8 bytes, so sizes near u64::MAX are reached too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::range::RangeRequest;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let Ok(header) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Some(range) = RangeRequest::parse(header) else {
        return;
    };
    if let Ok(r) = range.resolve(size) {
        assert!(r.start < r.end, "{header:?} in {size}: empty {r:?}");
        assert!(r.end <= size, "{header:?} in {size}: past the end {r:?}");
    }
});
