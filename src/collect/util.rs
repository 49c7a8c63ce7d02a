//! Small, allocation-light helpers the collectors share for reading /proc and /sys files.

use super::CollectError;
use std::io::Read;
use std::path::Path;

/// Reads `path` into `buf` (cleared first), mapping errors to `CollectError`.
pub fn read_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    buf.clear();
    let mut f = std::fs::File::open(path).map_err(|e| CollectError::io(path, e))?;
    f.read_to_string(buf)
        .map_err(|e| CollectError::io(path, e))?;
    Ok(())
}

/// Reads a one-value sysfs file and trims it; `None` when absent or unreadable.
pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses a sysfs/procfs number; `None` on garbage.
pub fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}
