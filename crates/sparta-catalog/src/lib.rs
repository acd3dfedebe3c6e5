//! The catalog: which module versions the store holds, when each was first
//! stored, and its sizes and `h1:`. It answers `/catalog`, `/index` and the
//! browse page without listing the bucket per request.
//!
//! Layout alongside the store (write-once objects only, so any number of
//! replicas can share one bucket):
//! - `_sparta/catalog/seg/<time>-<holder>-<n>.ndjson`: one segment per
//!   recorded batch (usually one stored file), written once, never changed;
//! - `_sparta/catalog/snap/<time>-<holder>-<n>.ndjson`: a compaction, the union
//!   of every segment and snapshot it read; those are deleted after it is
//!   stored. Readers take the union of everything present, so two replicas
//!   compacting at once lose nothing.
//!
//! [`index`] is the pure part (records, merging, paging, search); [`store`]
//! reads and writes the objects.

pub mod index;
pub mod store;

pub use index::{Index, Record, VersionEntry};
pub use store::{Catalog, CatalogError};
