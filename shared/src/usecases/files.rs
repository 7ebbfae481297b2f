//! Local files: scratch files in the temporary directory (Lambda's `/tmp`), removed when
//! dropped, so a failed step never leaves one behind to fill the disk of a warm function;
//! and the hash of a file.

use std::path::{Path, PathBuf};

pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    #[must_use]
    pub fn new(suffix: &str) -> Self {
        let name = format!("audit-{}{suffix}", uuid::Uuid::now_v7().simple());
        Self { path: std::env::temp_dir().join(name) }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// SHA-256 and size of a local file, read in blocks.
///
/// # Errors
/// When the file cannot be read.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex::encode(hasher.finalize())));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}
