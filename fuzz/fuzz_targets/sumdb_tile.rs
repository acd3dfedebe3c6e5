//! Tile paths and tile data: a path parses only in its canonical spelling
//! (so it prints back the same), and hashing a data tile's records never
//! panics on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparta_core::sumdb::tlog::{Tile, data_tile_hashes, subtree_from_tile};

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(head) else {
        return;
    };
    let Some(tile) = Tile::parse(path) else {
        return;
    };
    assert_eq!(tile.path(), path);
    assert!(tile.w >= 1 && tile.w <= 1 << tile.h);
    if tile.level.is_none() {
        if let Ok(hashes) = data_tile_hashes(&tile, body) {
            assert_eq!(hashes.len(), tile.hash_bytes());
        }
    } else if body.len() == tile.hash_bytes() && tile.w.is_power_of_two() {
        let _ = subtree_from_tile(body);
    }
});
