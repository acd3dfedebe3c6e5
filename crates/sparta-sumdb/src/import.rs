//! Proofs for checksum-database files that arrive in a bundle rather than
//! from the database: nothing is fetched, the proofs take their other hashes
//! from this service's store (the importer stages the bundle's tiles there),
//! and a file is accepted only if it reproduces a tree head signed by the
//! configured key.

use bytes::Bytes;

use crate::path::SumdbPath;
use crate::prove::{Proof, check_syntax};
use crate::tlog::{self, Record, TILE_HEIGHT, Tree};
use crate::{Sumdb, SumdbError, Tier};

/// What a bundled checksum-database file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A proven lookup, with its record text: may be stored.
    Record(String),
    /// A proven tile: may be stored.
    Proven,
    /// Not a file that is ever stored (`latest`, a partial tile, a tile
    /// beyond every signed tree at hand): left out, not an error.
    NotStored,
}

impl Sumdb {
    /// The size of the tree a lookup's note signs, if its signature holds.
    pub fn signed_tree_size(&self, name: &str, lookup: &[u8]) -> Result<u64, SumdbError> {
        let db = self.db(name)?;
        let record = Record::parse(lookup)?;
        Ok(Tree::parse(db.verifier.open(record.signed_tree)?)?.size)
    }

    /// The tiles (full and partial) that prove a stored lookup's record in
    /// the tree it signs, as `(path under /sumdb/<name>/, data)`: from the
    /// store or the database. An exporter bundles them so that an importer
    /// can prove the lookup with nothing to fetch.
    pub async fn proof_tiles(
        &self,
        name: &str,
        lookup: &[u8],
    ) -> Result<Vec<(String, Bytes)>, SumdbError> {
        let db = self.db(name)?;
        let record = Record::parse(lookup)?;
        let tree = Tree::parse(db.verifier.open(record.signed_tree)?)?;
        let needed = tlog::node_proof_tiles(TILE_HEIGHT, 0, record.id, tree.size)?;
        let mut out = Vec::with_capacity(needed.len());
        for tile in needed {
            out.push((tile.path(), self.hash_tile(db, tile).await?));
        }
        Ok(out)
    }

    /// Makes a bundled partial tile available to this service's proofs for
    /// a short while, as if just fetched (partial tiles are never stored).
    pub async fn stage_partial_tile(&self, name: &str, rel: &str, body: Bytes) {
        let key = format!("{name}/{rel}");
        self.inner.fresh.insert(key, (body, Tier::Memory)).await;
    }

    /// Proves one bundled file `rel` (relative to `/sumdb/<name>/`). A full
    /// tile is proven against the tree signed in `tree_lookup`, a lookup of
    /// the same bundle (the one with the largest tree).
    pub async fn prove_imported(
        &self,
        name: &str,
        rel: &str,
        body: &[u8],
        tree_lookup: Option<&[u8]>,
    ) -> Result<Imported, SumdbError> {
        let db = self.db(name)?;
        let path = SumdbPath::parse(rel)
            .ok_or_else(|| SumdbError::Invalid(format!("not a checksum database path: {rel}")))?;
        if !path.immutable() {
            return Ok(Imported::NotStored);
        }
        check_syntax(db, &path, body)?;
        match path {
            SumdbPath::Lookup(..) => Ok(Imported::Record(self.prove_record(db, body).await?)),
            SumdbPath::Tile(tile) => {
                let Some(lookup) = tree_lookup else {
                    return Ok(Imported::NotStored);
                };
                let record = Record::parse(lookup)?;
                let tree = Tree::parse(db.verifier.open(record.signed_tree)?)?;
                match self.prove_tile_in(db, tree, tile, body).await? {
                    Proof::Proven => Ok(Imported::Proven),
                    Proof::Unproven => Ok(Imported::NotStored),
                }
            }
            SumdbPath::Supported | SumdbPath::Latest => Ok(Imported::NotStored),
        }
    }
}
