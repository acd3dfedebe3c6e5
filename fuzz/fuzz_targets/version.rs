//! Versions: parsing never panics, a parsed version is canonical (prints as
//! given), its escaped form round-trips, and comparison is a total order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "v1.0.0"));
    if let Ok(v) = Version::parse(a) {
        assert_eq!(v.as_str(), a);
        assert_eq!(Version::from_escaped(v.escaped()).expect("escaped parses"), v);
        if let Ok(w) = Version::parse(b) {
            let (x, y) = (sparta_core::version::compare(&v, &w), sparta_core::version::compare(&w, &v));
            assert_eq!(x, y.reverse());
        }
    }
    let _ = Version::from_escaped(a);
});
