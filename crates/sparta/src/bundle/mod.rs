//! Bundles for air-gapped networks: `sparta export` writes the stored
//! module files and the checksum-database files that prove them into one
//! tar (gzip-compressed or plain) with a manifest first; `sparta import`
//! checks every file before storing it write-once. Standard tools read the
//! bundle: `tar tzf bundle.tar.gz`.

pub mod export;
pub mod import;
pub mod manifest;
