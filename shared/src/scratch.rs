//! Scratch files in the temporary directory (Lambda's `/tmp`), removed when dropped, so a
//! failed step never leaves one behind to fill the disk of a warm function.

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
