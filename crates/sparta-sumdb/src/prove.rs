//! Proofs before storage: a lookup or a full tile is written for good only
//! once it reproduces a signed tree head, as the go command's tile reader
//! demands before it trusts one. A lookup's record must be included in the
//! tree its own note signs; a full tile's hashes (a data tile's record hashes)
//! must form the subtree that, with the other hashes of the tree, gives the
//! root of the latest signed tree. Tiles fetched only to supply those other
//! hashes are unproven as wholes: they are kept in memory, never stored.

use std::collections::HashMap;

use bytes::Bytes;
use tracing::debug;

use crate::path::SumdbPath;
use crate::tlog::{self, FromTiles, Record, TILE_HEIGHT, Tile, Tree};
use crate::{Db, Sumdb, SumdbError};

/// Whether a file could be proven now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Reproduces a signed root: may be stored.
    Proven,
    /// Lies beyond the latest signed tree known here: served from memory only.
    Unproven,
}

impl Sumdb {
    /// Syntax first (cheap), then the proof.
    pub(crate) async fn prove(
        &self,
        db: &Db,
        path: &SumdbPath,
        body: &Bytes,
    ) -> Result<Proof, SumdbError> {
        check_syntax(db, path, body)?;
        match path {
            SumdbPath::Lookup(..) => {
                self.prove_record(db, body).await?;
                Ok(Proof::Proven)
            }
            SumdbPath::Tile(t) => self.prove_tile(db, *t, body).await,
            SumdbPath::Supported | SumdbPath::Latest => Ok(Proof::Unproven),
        }
    }

    /// Checks that a lookup's record is included in the tree its note signs;
    /// returns the record text.
    pub(crate) async fn prove_record(&self, db: &Db, body: &[u8]) -> Result<String, SumdbError> {
        let record = Record::parse(body)?;
        let tree = Tree::parse(db.verifier.open(record.signed_tree)?)?;
        if record.id >= tree.size {
            return Err(SumdbError::Invalid(format!(
                "checksum database {}: record {} is outside its signed tree of size {}",
                db.config.name, record.id, tree.size
            )));
        }
        let leaf = tlog::record_hash(record.text);
        let (root, tiles) = self.root_through(db, tree, 0, record.id, leaf).await?;
        if root != tree.hash {
            return Err(SumdbError::Invalid(format!(
                "checksum database {}: record {} is not in its signed tree",
                db.config.name, record.id
            )));
        }
        // The full tiles the proof used are proven here on their own (the
        // proof above vouches only for the hashes it took from them), and
        // stored if they pass, so the next proof finds them in storage.
        for (tile, data) in tiles {
            if tile.is_full() {
                self.keep_if_proven(db, tree, tile, data).await;
            } else {
                self.keep_partial(db, tile, &data).await;
            }
        }
        // Record::parse checked the text is UTF-8.
        Ok(String::from_utf8_lossy(record.text).into_owned())
    }

    /// Proves a full tile against the latest signed tree head.
    async fn prove_tile(&self, db: &Db, tile: Tile, body: &[u8]) -> Result<Proof, SumdbError> {
        if !tile.is_full() {
            return Ok(Proof::Unproven);
        }
        let (latest, _) = self.fresh_file(db, "latest").await?;
        let tree = Tree::parse(db.verifier.open(&latest)?)?;
        self.prove_tile_in(db, tree, tile, body).await
    }

    /// Proves a full tile against `tree`.
    pub(crate) async fn prove_tile_in(
        &self,
        db: &Db,
        tree: Tree,
        tile: Tile,
        body: &[u8],
    ) -> Result<Proof, SumdbError> {
        let (level, hashes) = match tile.level {
            Some(l) => ((l + 1) * tile.h, body.to_vec()),
            None => (tile.h, tlog::data_tile_hashes(&tile, body)?),
        };
        let node = tlog::subtree_from_tile(&hashes);
        let covers = (tile.n + 1)
            .checked_shl(level)
            .is_some_and(|end| end >> level == tile.n + 1 && end <= tree.size);
        if !covers {
            debug!(tile = %tile.path(), size = tree.size, "tile beyond the latest signed tree: memory only");
            return Ok(Proof::Unproven);
        }
        let (root, _) = self.root_through(db, tree, level, tile.n, node).await?;
        if root != tree.hash {
            return Err(SumdbError::Invalid(format!(
                "checksum database {} served {} that is not in its signed tree",
                db.config.name,
                tile.path()
            )));
        }
        Ok(Proof::Proven)
    }

    /// The root of `tree` computed from the subtree (`level`, `index`) with
    /// hash `node` and the other hashes from tiles. After a mismatch the
    /// unproven tiles it used are forgotten, so a retry fetches them anew.
    async fn root_through(
        &self,
        db: &Db,
        tree: Tree,
        level: u32,
        index: u64,
        node: tlog::Hash,
    ) -> Result<(tlog::Hash, HashMap<Tile, Bytes>), SumdbError> {
        let needed = tlog::node_proof_tiles(TILE_HEIGHT, level, index, tree.size)?;
        let fetched =
            futures::future::join_all(needed.iter().map(|t| self.hash_tile(db, *t))).await;
        let mut tiles = HashMap::new();
        for (tile, data) in needed.iter().zip(fetched) {
            tiles.insert(*tile, data?);
        }
        let mut src = FromTiles {
            h: TILE_HEIGHT,
            size: tree.size,
            tiles: &tiles,
        };
        let root = tlog::root_with_node(0, tree.size, level, index, node, &mut src)?;
        if root != tree.hash {
            for tile in &needed {
                self.forget_unproven(db, *tile).await;
            }
        }
        Ok((root, tiles))
    }

    /// Proves a full tile fetched for another proof and stores it if it
    /// passes; a tile that fails is only forgotten (the proof that fetched
    /// it already stands or fell on its own).
    async fn keep_if_proven(&self, db: &Db, tree: Tree, tile: Tile, data: Bytes) {
        let rel = tile.path();
        let key = format!("{}/{rel}", db.config.name);
        if self.inner.recent.contains_key(&key) {
            return;
        }
        match self.prove_tile_in(db, tree, tile, &data).await {
            Ok(Proof::Proven) => {
                let stored = sparta_core::key::sumdb(&db.config.name, &rel);
                if let Err(e) = self.inner.store.put_once(&stored, data.clone()).await {
                    debug!(key = stored, error = %e, "could not store a proven tile");
                }
                self.inner.unproven.invalidate(&key).await;
                self.inner
                    .recent
                    .insert(key, (data, crate::Tier::Upstream))
                    .await;
            }
            Ok(Proof::Unproven) => {}
            Err(e) => {
                debug!(tile = %rel, error = %e, "tile used by a proof does not prove on its own")
            }
        }
    }

    /// Stores a partial tile the record proof just used: the right edge of
    /// the signed tree, every hash of which went into the root it
    /// reproduced. A partial tile's path names its width, so its content
    /// never changes; offline, it is what the go command asks for to check
    /// that same record.
    async fn keep_partial(&self, db: &Db, tile: Tile, data: &Bytes) {
        if data.len() != tile.hash_bytes() {
            return;
        }
        let stored = sparta_core::key::sumdb(&db.config.name, &tile.path());
        if let Err(e) = self.inner.store.put_once(&stored, data.clone()).await {
            debug!(key = stored, error = %e, "could not store a proven partial tile");
        }
    }

    /// A hash tile's data for a proof: a stored (proven) full tile, or one
    /// from memory or the sources, unproven and so kept in memory only. A
    /// partial tile the database no longer serves is cut from the full one.
    pub(crate) async fn hash_tile(&self, db: &Db, tile: Tile) -> Result<Bytes, SumdbError> {
        let tile_err = |e: SumdbError| match e {
            SumdbError::NotFound(_) => SumdbError::Invalid(format!(
                "checksum database {} does not serve {} of its own tree",
                db.config.name,
                tile.path()
            )),
            e => e,
        };
        match self.unproven_tile(db, tile).await {
            Ok(data) => Ok(data),
            Err(SumdbError::NotFound(_)) if !tile.is_full() => Ok(self
                .unproven_tile(db, tile.full())
                .await
                .map_err(tile_err)?
                .slice(..tile.hash_bytes())),
            Err(e) => Err(tile_err(e)),
        }
    }

    async fn unproven_tile(&self, db: &Db, tile: Tile) -> Result<Bytes, SumdbError> {
        let rel = tile.path();
        let key = format!("{}/{rel}", db.config.name);
        if !tile.is_full() {
            // Partial tiles are short-lived anyway: the same memory as the
            // ones clients ask for.
            let (body, _) = self.fresh_file(db, &rel).await?;
            check_syntax(db, &SumdbPath::Tile(tile), &body)?;
            return Ok(body);
        }
        if let Some((body, _)) = self.inner.recent.get(&key).await {
            return Ok(body);
        }
        {
            let stored = sparta_core::key::sumdb(&db.config.name, &rel);
            if let Ok(Some(body)) = self.inner.store.get(&stored).await
                && body.len() == tile.hash_bytes()
            {
                return Ok(body);
            }
        }
        self.inner
            .unproven
            .entry_by_ref(&key)
            .or_try_insert_with(async {
                let body = self.fetch(db, &rel).await?;
                check_syntax(db, &SumdbPath::Tile(tile), &body)?;
                Ok::<_, SumdbError>(body)
            })
            .await
            .map(|e| e.into_value())
            .map_err(|e| (*e).clone())
    }

    async fn forget_unproven(&self, db: &Db, tile: Tile) {
        let key = format!("{}/{}", db.config.name, tile.path());
        self.inner.unproven.invalidate(&key).await;
        self.inner.fresh.invalidate(&key).await;
    }
}

/// What must hold of an answer at all: a lookup carries a tree head signed
/// by the database and the record asked for; a hash tile has exactly its
/// width in hashes.
pub(crate) fn check_syntax(db: &Db, path: &SumdbPath, body: &[u8]) -> Result<(), SumdbError> {
    match path {
        SumdbPath::Lookup(m, v) => {
            let record = Record::parse(body)?;
            Tree::parse(db.verifier.open(record.signed_tree)?)?;
            let prefix = format!("{m} {v} ");
            if !String::from_utf8_lossy(record.text)
                .lines()
                .any(|l| l.starts_with(&prefix))
            {
                return Err(SumdbError::Invalid(format!(
                    "checksum database {} answered the lookup of {m}@{v} with another module's record",
                    db.config.name
                )));
            }
            Ok(())
        }
        SumdbPath::Tile(t) if t.level.is_some() && body.len() != t.hash_bytes() => {
            Err(SumdbError::Invalid(format!(
                "checksum database {} served {} with {} bytes, want {}",
                db.config.name,
                t.path(),
                body.len(),
                t.hash_bytes()
            )))
        }
        _ => Ok(()),
    }
}
