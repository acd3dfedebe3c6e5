//! Streaming local files in large chunks (the local store's zips, spool
//! files).

use std::ops::Range;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::StorageError;

/// Bytes read from a local file per chunk when streaming it.
const FILE_CHUNK: usize = 256 * 1024;

/// Streams `range` of a local file in large chunks.
///
/// Each chunk is allocated here, on the async side, and filled by one
/// blocking read straight into its spare capacity: no intermediate buffer
/// and no copy, and every chunk comes from the same few allocator arenas
/// rather than one per blocking thread, so less memory is kept after a
/// burst of downloads.
pub fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let start = range.start;
    let left = range.end - range.start;
    futures::stream::try_unfold((file, Some(start), left), |(file, seek, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(FILE_CHUNK as u64);
        let buf = Vec::with_capacity(want as usize);
        let (file, chunk) = tokio::task::spawn_blocking(move || read_chunk(file, seek, want, buf))
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
        if chunk.is_empty() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file ended before the object's size",
            )));
        }
        let left = left - chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (file, None, left))))
    })
    .boxed()
}

/// Reads up to `want` bytes into `buf`'s spare capacity, first moving to
/// `seek` if given.
fn read_chunk(
    mut file: std::fs::File,
    seek: Option<u64>,
    want: u64,
    mut buf: Vec<u8>,
) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(offset) = seek {
        file.seek(SeekFrom::Start(offset))?;
    }
    (&mut file).take(want).read_to_end(&mut buf)?;
    Ok((file, buf))
}
