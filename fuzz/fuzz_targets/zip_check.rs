//! Zip checking: any bytes are a valid module zip or an error, never a panic
//! (and never an unbounded allocation: sizes are checked before inflating).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::{ModulePath, Version};

fuzz_target!(|data: &[u8]| {
    let module = ModulePath::parse("example.com/m").expect("valid module");
    let version = Version::parse("v1.0.0").expect("valid version");
    let _ = sparta_core::zipcheck::check_zip(std::io::Cursor::new(data), &module, &version);
});
