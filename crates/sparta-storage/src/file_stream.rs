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
/// A chunk already in the page cache is read on the calling thread with a
/// read that refuses to wait for the disk (`preadv2` with `RWF_NOWAIT`):
/// a hot zip costs no thread hand-off, whose two context switches per chunk
/// cost as much as copying it. A chunk that would wait for the disk (or a
/// file system without non-waiting reads) is read on a blocking thread,
/// into a chunk allocated here, on the async side, so every chunk comes
/// from the same few allocator arenas rather than one per blocking thread.
pub fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    stream_from(file, range, true)
}

/// [`file_stream`], trying non-waiting reads only if `nowait`.
fn stream_from(
    file: std::fs::File,
    range: Range<u64>,
    nowait: bool,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let state = Reading {
        file,
        at: range.start,
        end: range.end,
        nowait,
    };
    futures::stream::try_unfold(state, |mut state| async move {
        if state.at >= state.end {
            return Ok(None);
        }
        let want = (state.end - state.at).min(FILE_CHUNK as u64) as usize;
        let chunk = match state.read_cached(want) {
            Some(chunk) => chunk,
            None => {
                let Reading { file, at, .. } = state;
                let buf = Vec::with_capacity(want);
                let (file, chunk) =
                    tokio::task::spawn_blocking(move || read_chunk(file, at, want as u64, buf))
                        .await
                        .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
                state.file = file;
                chunk
            }
        };
        if chunk.is_empty() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file ended before the object's size",
            )));
        }
        state.at += chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), state)))
    })
    .boxed()
}

/// Where a stream is in its file.
struct Reading {
    file: std::fs::File,
    at: u64,
    end: u64,
    /// Cleared once the file system refuses non-waiting reads.
    nowait: bool,
}

impl Reading {
    /// Up to `want` bytes at `at` if the page cache holds them (some of
    /// them, at least); `None` when reading would wait for the disk.
    fn read_cached(&mut self, want: usize) -> Option<Vec<u8>> {
        use rustix::io::{Errno, ReadWriteFlags, preadv2};
        if !self.nowait {
            return None;
        }
        let mut buf = vec![0u8; want];
        let read = preadv2(
            &self.file,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            self.at,
            ReadWriteFlags::NOWAIT,
        );
        match read {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(Errno::AGAIN) => None,
            Err(_) => {
                // Not supported here (or a real error, which the blocking
                // read reports): read on blocking threads from now on.
                self.nowait = false;
                None
            }
        }
    }
}

/// Reads up to `want` bytes at `at` into `buf`'s spare capacity.
fn read_chunk(
    mut file: std::fs::File,
    at: u64,
    want: u64,
    mut buf: Vec<u8>,
) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(at))?;
    (&mut file).take(want).read_to_end(&mut buf)?;
    Ok((file, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        (f, data)
    }

    async fn collect(
        mut s: BoxStream<'static, Result<Bytes, StorageError>>,
    ) -> Result<(Vec<u8>, usize), StorageError> {
        let (mut out, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
            chunks += 1;
        }
        Ok((out, chunks))
    }

    #[tokio::test]
    async fn ranges_read_the_same_with_and_without_non_waiting_reads() {
        let (f, data) = file_of(3 * FILE_CHUNK + 123);
        for nowait in [true, false] {
            for range in [0..data.len() as u64, 1000..700_000, 5..6, 9..9] {
                let file = f.reopen().unwrap();
                let (got, chunks) = collect(stream_from(file, range.clone(), nowait))
                    .await
                    .unwrap();
                let want = &data[range.start as usize..range.end as usize];
                assert!(got == want, "range {range:?} nowait {nowait}");
                assert!(
                    chunks <= want.len().div_ceil(FILE_CHUNK).max(1) + 1,
                    "{chunks} chunks"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_range_is_an_error() {
        let (f, data) = file_of(1000);
        for nowait in [true, false] {
            let range = 0..data.len() as u64 + 10;
            let err = collect(stream_from(f.reopen().unwrap(), range, nowait))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("ended before"), "{err}");
        }
    }
}
