//! Cached-only checksum database answers (`/sumdb/<name>/cached-only/...`):
//! memory or storage, never a source.

use crate::{Sumdb, SumdbError, SumdbFile, SumdbPath, Tier};

impl Sumdb {
    /// `path` of database `name` as far as it is held here, else NotFound.
    pub async fn cached(&self, name: &str, path: &str) -> Result<SumdbFile, SumdbError> {
        let db = self.db(name)?;
        let parsed = SumdbPath::parse(path)
            .ok_or_else(|| SumdbError::NotFound(format!("not a checksum database path: {path}")))?;
        let immutable = parsed.immutable();
        let content_type = parsed.content_type();
        let file = |body, tier| SumdbFile {
            body,
            content_type,
            immutable,
            tier,
        };
        if parsed == SumdbPath::Supported {
            return Ok(file(bytes::Bytes::new(), Tier::Memory));
        }
        let rel = parsed.to_path();
        let cache = if immutable {
            &self.inner.recent
        } else {
            &self.inner.fresh
        };
        if let Some((body, _)) = cache.get(&format!("{}/{rel}", db.config.name)).await {
            return Ok(file(body, Tier::Memory));
        }
        // Partial tiles are stored too once a record proof used them.
        if immutable || matches!(parsed, SumdbPath::Tile(_)) {
            let key = sparta_core::key::sumdb(&db.config.name, &rel);
            match self.inner.store.get(&key).await {
                Ok(Some(body)) => return Ok(file(body, Tier::Storage)),
                Ok(None) => {}
                Err(e) => return Err(SumdbError::Unavailable(format!("storage: {e}"))),
            }
        }
        Err(SumdbError::NotFound(format!(
            "{name}/{path} is not stored here, and fetching it is not allowed (cached-only or --network offline)"
        )))
    }
}
