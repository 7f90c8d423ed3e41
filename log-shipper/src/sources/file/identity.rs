//! What makes a file the same file: its device and inode, and a
//! fingerprint of its first bytes (so a reused inode, or a file truncated
//! and rewritten, is not taken for the old one). A copy of a file
//! (logrotate's copytruncate) has another inode but the same first bytes.

use serde::{Deserialize, Serialize};

/// Which file a position belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes the fingerprint covers (at most
    /// [`FINGERPRINT_BYTES`]; fewer for a shorter file).
    pub fp_len: u64,
    /// FNV-1a 64 of those bytes, so a reused inode is not mistaken for the
    /// old file.
    pub fp: u64,
}

pub const FINGERPRINT_BYTES: usize = 1024;

impl FileIdentity {
    /// The identity of an open file (reads up to 1 KiB at offset 0 with
    /// pread, leaving the file's cursor alone).
    pub fn of(file: &std::fs::File) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_head(file, &mut head)?;
        Ok(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: n as u64,
            fp: fnv1a(&head[..n]),
        })
    }

    /// Whether `file` starts with the bytes fingerprinted here, whatever
    /// its inode: a copy (logrotate's copytruncate). Never for an empty
    /// fingerprint.
    pub fn same_head(&self, file: &std::fs::File) -> bool {
        use std::os::unix::fs::FileExt;
        if self.fp_len == 0 {
            return false;
        }
        let mut head = vec![0u8; self.fp_len as usize];
        file.read_exact_at(&mut head, 0).is_ok() && fnv1a(&head) == self.fp
    }

    /// The identity of an empty file `(dev, ino)`: matches that inode with
    /// any content, and grows as the file is read again.
    pub fn empty(dev: u64, ino: u64) -> FileIdentity {
        FileIdentity {
            dev,
            ino,
            fp_len: 0,
            fp: fnv1a(&[]),
        }
    }

    /// Whether `file` is (still) the file this identity was taken of: same
    /// device and inode, and the bytes fingerprinted then are unchanged.
    pub fn matches(&self, file: &std::fs::File) -> bool {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if meta.dev() != self.dev || meta.ino() != self.ino || meta.len() < self.fp_len {
            return false;
        }
        let mut head = vec![0u8; self.fp_len as usize];
        file.read_exact_at(&mut head, 0).is_ok() && fnv1a(&head) == self.fp
    }
}

/// Reads up to `buf.len()` bytes from the start of `file` (pread: the
/// file's cursor is left alone).
pub fn read_head(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
