//! The few file operations the store needs, behind a trait so tests can inject faults.
//!
//! Owns: [`Fs`] and the real implementation [`OsFs`]. Must not touch: record formats.
//! Tests wrap `OsFs` to inject ENOSPC, torn writes and flipped bits (see tests/tsdb_faults.rs).

use std::io::{self, Write};
use std::path::Path;

pub trait Fs {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>>;
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
    /// Appends `data` to `path` (created if missing) and makes it durable (fdatasync).
    fn append_sync(&mut self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn remove(&mut self, path: &Path) -> io::Result<()>;
}

/// The machine's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

impl Fs for OsFs {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn append_sync(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let created = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(data)?;
        f.sync_data()?;
        if created {
            // Make the new directory entry durable too; best effort (not all systems allow it).
            if let Some(dir) = path.parent() {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}
