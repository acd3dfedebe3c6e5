//! The checksum database's formats (golang.org/x/mod/sumdb): signed notes
//! and the transparency log's math. Pure, so the fuzz targets and the
//! `sparta-sumdb` service share them without the storage stack.

pub mod note;
pub mod tlog;
