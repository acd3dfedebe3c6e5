//! Transparency log math (golang.org/x/mod/sumdb/tlog): record and node
//! hashes, tiles, signed tree heads, lookup records and inclusion proofs.
//!
//! The tree is RFC 6962's: a leaf is SHA-256(0x00 || record), an inner node
//! SHA-256(0x01 || left || right), and a range of n > 1 leaves splits at the
//! largest power of two below n. Tiles of height H store the hashes of one
//! tree level (L*H) for 2^H consecutive indexes; higher levels inside a tile
//! are recomputed from them.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::CoreError;

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];
/// Tile height the go command uses for every checksum database.
pub const TILE_HEIGHT: u32 = 8;
const HASH_SIZE: usize = 32;
/// Tile paths count in base 1000, one path element per three digits.
const PATH_BASE: u64 = 1000;

/// Hash of one record (a leaf).
pub fn record_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// Hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// A signed tree head: size and root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    pub size: u64,
    pub hash: Hash,
}

impl Tree {
    /// Parses a verified note text `go.sum database tree\n<N>\n<base64 hash>\n...`
    /// (later lines are ignored for forward compatibility, as tlog does).
    pub fn parse(text: &str) -> Result<Tree, CoreError> {
        let bad = || CoreError::InvalidSumdb("malformed signed tree head".into());
        let rest = text
            .strip_prefix("go.sum database tree\n")
            .ok_or_else(bad)?;
        let mut lines = rest.splitn(3, '\n');
        let (Some(n), Some(h), Some(_)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(bad());
        };
        let size: u64 = n.parse().map_err(|_| bad())?;
        if size.to_string() != n {
            return Err(bad());
        }
        let hash = B64
            .decode(h)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        Ok(Tree { size, hash })
    }
}

/// A lookup answer split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub id: u64,
    /// The record text, ending in a newline (what the leaf hash covers).
    pub text: &'a [u8],
    /// The signed tree head that follows.
    pub signed_tree: &'a [u8],
}

impl<'a> Record<'a> {
    /// Splits `<id>\n<text>\n<signed note>` and checks the text's syntax.
    pub fn parse(msg: &'a [u8]) -> Result<Self, CoreError> {
        let bad = || CoreError::InvalidSumdb("malformed lookup record".into());
        let nl = msg.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
        let id_str = std::str::from_utf8(&msg[..nl]).map_err(|_| bad())?;
        let id: u64 = id_str.parse().map_err(|_| bad())?;
        // Canonical digits only: `+7` or `07` would parse, but no checksum
        // database writes them, and the id is echoed back byte for byte.
        if id.to_string() != id_str {
            return Err(bad());
        }
        let rest = &msg[nl + 1..];
        let end = rest.windows(2).position(|w| w == b"\n\n").ok_or_else(bad)?;
        let (text, signed_tree) = (&rest[..end + 1], &rest[end + 2..]);
        let Ok(s) = std::str::from_utf8(text) else {
            return Err(bad());
        };
        if s.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad());
        }
        Ok(Record {
            id,
            text,
            signed_tree,
        })
    }
}

/// One tile: height, level (`None` for record data tiles), number, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    pub h: u32,
    pub level: Option<u32>,
    pub n: u64,
    pub w: u64,
}

impl Tile {
    /// Whether the tile holds all 2^H entries (and so never changes).
    pub fn is_full(&self) -> bool {
        self.w == 1 << self.h
    }

    /// The same tile, full width.
    pub fn full(&self) -> Tile {
        Tile {
            w: 1 << self.h,
            ..*self
        }
    }

    /// `tile/H/L/x001/234[.p/W]`.
    pub fn path(&self) -> String {
        let mut n = self.n;
        let mut digits = format!("{:03}", n % PATH_BASE);
        while n >= PATH_BASE {
            n /= PATH_BASE;
            digits = format!("x{:03}/{digits}", n % PATH_BASE);
        }
        let level = match self.level {
            Some(l) => l.to_string(),
            None => "data".to_owned(),
        };
        let partial = if self.is_full() {
            String::new()
        } else {
            format!(".p/{}", self.w)
        };
        format!("tile/{}/{level}/{digits}{partial}", self.h)
    }

    /// Parses a tile path; only the canonical spelling is accepted.
    pub fn parse(path: &str) -> Option<Tile> {
        let rest = path.strip_prefix("tile/")?;
        let (h, rest) = rest.split_once('/')?;
        let (l, rest) = rest.split_once('/')?;
        let h: u32 = parse_small(h)?;
        if !(1..=30).contains(&h) {
            return None;
        }
        let level = match l {
            "data" => None,
            l => Some(parse_small(l).filter(|&l| l < 64)?),
        };
        let (digits, w) = match rest.split_once(".p/") {
            Some((digits, w)) => {
                let w: u64 = parse_small(w)?;
                if w == 0 || w >= 1 << h {
                    return None;
                }
                (digits, w)
            }
            None => (rest, 1 << h),
        };
        let mut n: u64 = 0;
        for elem in digits.split('/') {
            let d = elem.strip_prefix('x').unwrap_or(elem);
            if d.len() != 3 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n = n.checked_mul(PATH_BASE)?.checked_add(d.parse().ok()?)?;
        }
        let tile = Tile { h, level, n, w };
        (tile.path() == path).then_some(tile)
    }

    /// Bytes a hash tile of this width holds.
    pub fn hash_bytes(&self) -> usize {
        self.w as usize * HASH_SIZE
    }
}

fn parse_small<T: std::str::FromStr>(s: &str) -> Option<T> {
    // Canonical decimal only: no sign, no leading zeros.
    if s.is_empty()
        || s.len() > 12
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Where the stored hash of the complete subtree at (`level`, `n`) lives, in
/// a tree of `size` records: the tile (as wide as that tree has it) and the
/// range of its entries the subtree covers.
pub fn locate(h: u32, level: u32, n: u64, size: u64) -> (Tile, std::ops::Range<usize>) {
    let tile_level = level / h;
    let within = level % h;
    let base = tile_level * h;
    // Index of the subtree's first hash on the tile's base level.
    let first = n << within;
    let tile_n = first >> h;
    let count_on_level = size >> base;
    let w = (count_on_level - (tile_n << h)).min(1 << h);
    let start = (first - (tile_n << h)) as usize;
    let tile = Tile {
        h,
        level: Some(tile_level),
        n: tile_n,
        w,
    };
    (tile, start..start + (1usize << within))
}

/// Hash of 2^k consecutive hashes of one level, as a tile entry range.
pub fn subtree_from_tile(data: &[u8]) -> Hash {
    if data.len() == HASH_SIZE {
        return data.try_into().expect("one hash");
    }
    let half = data.len() / 2;
    node_hash(
        &subtree_from_tile(&data[..half]),
        &subtree_from_tile(&data[half..]),
    )
}

/// A source of complete-subtree hashes by (level, n).
pub trait StoredHashes {
    /// The hash of the complete subtree over leaves [n*2^level, (n+1)*2^level).
    fn stored(&mut self, level: u32, n: u64) -> Result<Hash, CoreError>;
}

/// Largest power of two strictly below `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Hash of the tree over leaves [lo, hi).
pub fn range_hash(lo: u64, hi: u64, src: &mut impl StoredHashes) -> Result<Hash, CoreError> {
    let size = hi - lo;
    if size.is_power_of_two() && lo.is_multiple_of(size) {
        return src.stored(size.trailing_zeros(), lo >> size.trailing_zeros());
    }
    let k = split_point(size);
    Ok(node_hash(
        &range_hash(lo, lo + k, src)?,
        &range_hash(lo + k, hi, src)?,
    ))
}

/// Root of the tree over [lo, hi) given leaf `index`'s hash and the other
/// subtrees from `src`: equal to the signed root only if the leaf is in it.
pub fn root_with_leaf(
    lo: u64,
    hi: u64,
    index: u64,
    leaf: Hash,
    src: &mut impl StoredHashes,
) -> Result<Hash, CoreError> {
    root_with_node(lo, hi, 0, index, leaf, src)
}

/// Root of the tree over [lo, hi) given the hash of the complete subtree at
/// (`level`, `index`) and the other subtrees from `src`: equal to the signed
/// root only if that subtree is in the tree with that hash. Every aligned
/// complete subtree inside the tree is one of its nodes, so this is an
/// inclusion proof for a whole tile's worth of hashes at once.
pub fn root_with_node(
    lo: u64,
    hi: u64,
    level: u32,
    index: u64,
    node: Hash,
    src: &mut impl StoredHashes,
) -> Result<Hash, CoreError> {
    let outside = || CoreError::InvalidSumdb("subtree is outside the tree".into());
    if level >= 63 {
        return Err(outside());
    }
    let start = index
        .checked_shl(level)
        .filter(|s| s >> level == index)
        .ok_or_else(outside)?;
    let end = start.checked_add(1 << level).ok_or_else(outside)?;
    if start < lo || end > hi {
        return Err(outside());
    }
    if start == lo && end == hi {
        return Ok(node);
    }
    if hi - lo <= 1 << level {
        return Err(outside());
    }
    let k = split_point(hi - lo);
    if end <= lo + k {
        let left = root_with_node(lo, lo + k, level, index, node, src)?;
        Ok(node_hash(&left, &range_hash(lo + k, hi, src)?))
    } else {
        let left = range_hash(lo, lo + k, src)?;
        Ok(node_hash(
            &left,
            &root_with_node(lo + k, hi, level, index, node, src)?,
        ))
    }
}

/// The tiles holding what [`root_with_node`] needs for (`level`, `index`) in a
/// tree of `size` records.
pub fn node_proof_tiles(h: u32, level: u32, index: u64, size: u64) -> Result<Vec<Tile>, CoreError> {
    let mut needed = Needed::default();
    root_with_node(0, size, level, index, [0; 32], &mut needed)?;
    Ok(tiles_of(h, &needed, size))
}

/// The record hashes of a full data tile: its records are the formatted
/// lookup texts without their id line, each ending in a blank line.
pub fn data_tile_hashes(tile: &Tile, data: &[u8]) -> Result<Vec<u8>, CoreError> {
    let bad = || CoreError::InvalidSumdb(format!("malformed data tile {}", tile.path()));
    let mut out = Vec::with_capacity(tile.hash_bytes());
    let mut rest = data;
    while !rest.is_empty() {
        let end = rest.windows(2).position(|w| w == b"\n\n").ok_or_else(bad)?;
        let text = &rest[..end + 1];
        let ok = std::str::from_utf8(text).is_ok_and(|s| !s.chars().any(|c| c < ' ' && c != '\n'));
        if !ok || out.len() >= tile.hash_bytes() {
            return Err(bad());
        }
        out.extend_from_slice(&record_hash(text));
        rest = &rest[end + 2..];
    }
    if out.len() != tile.hash_bytes() {
        return Err(bad());
    }
    Ok(out)
}

/// Records which stored hashes a computation asks for (a dry run).
#[derive(Default)]
pub struct Needed(pub Vec<(u32, u64)>);

impl StoredHashes for Needed {
    fn stored(&mut self, level: u32, n: u64) -> Result<Hash, CoreError> {
        self.0.push((level, n));
        Ok([0; 32])
    }
}

/// Stored hashes read from fetched tiles.
pub struct FromTiles<'a> {
    pub h: u32,
    pub size: u64,
    pub tiles: &'a HashMap<Tile, bytes::Bytes>,
}

impl StoredHashes for FromTiles<'_> {
    fn stored(&mut self, level: u32, n: u64) -> Result<Hash, CoreError> {
        let (tile, range) = locate(self.h, level, n, self.size);
        let data = self.tiles.get(&tile).ok_or_else(|| {
            CoreError::InvalidSumdb(format!("tile {} was not fetched", tile.path()))
        })?;
        let bytes = range.start * HASH_SIZE..range.end * HASH_SIZE;
        if data.len() < bytes.end {
            return Err(CoreError::InvalidSumdb(format!(
                "tile {} is too short",
                tile.path()
            )));
        }
        Ok(subtree_from_tile(&data[bytes]))
    }
}

/// The tiles holding what an inclusion proof of `index` in a tree of `size`
/// needs.
pub fn proof_tiles(h: u32, index: u64, size: u64) -> Result<Vec<Tile>, CoreError> {
    node_proof_tiles(h, 0, index, size)
}

fn tiles_of(h: u32, needed: &Needed, size: u64) -> Vec<Tile> {
    let mut tiles: Vec<Tile> = needed
        .0
        .iter()
        .map(|&(l, n)| locate(h, l, n, size).0)
        .collect();
    tiles.sort_by_key(|t| (t.level, t.n));
    tiles.dedup();
    tiles
}
