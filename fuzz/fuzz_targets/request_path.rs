//! Request-path parsing: any path parses or is refused, never panics, and a
//! parsed request names a valid module whose escaped form round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::{ModulePath, ProxyRequest};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = ProxyRequest::parse(path) {
        let module = request.module();
        let again = ModulePath::from_escaped(module.escaped()).expect("escaped form parses");
        assert_eq!(&again, module);
        let _ = request.upstream_path();
    }
});
