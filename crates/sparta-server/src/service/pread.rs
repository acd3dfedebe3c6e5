//! A file read at a position of its own: clones share the open file but
//! not an offset, so several threads can read one spool file at once (the
//! zip check hashes entries in parallel).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[derive(Clone)]
pub(super) struct PositionedFile {
    file: Arc<File>,
    len: u64,
    pos: u64,
}

impl PositionedFile {
    pub(super) fn new(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(PositionedFile {
            file: Arc::new(file),
            len,
            pos: 0,
        })
    }
}

impl Read for PositionedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PositionedFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn clones_read_at_their_own_positions() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut a = PositionedFile::new(f).unwrap();
        let mut b = a.clone();
        assert_eq!(a.seek(SeekFrom::End(-3)).unwrap(), 7);
        let mut buf = [0u8; 3];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"012");
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"789");
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert_eq!(b.seek(SeekFrom::Current(2)).unwrap(), 5);
        assert!(b.seek(SeekFrom::Current(-6)).is_err());
    }
}
