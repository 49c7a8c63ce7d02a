//! A private, runnable copy of `shared/node-fixtures` for tests that read it through
//! `--path.*` or `Roots`.
//!
//! Why a copy: the shared tree on our machines has its 83 symlinks flattened into regular
//! files that hold the link target as text (`proc/self` holds `10`,
//! `sys/class/hwmon/hwmon0` holds `../../devices/platform/coretemp.0/hwmon/hwmon0`).
//! node_exporter refuses to start on that (`readlink collector/fixtures/proc/self`), and sysfs
//! walkers would see files where directories belong. The copy turns such files back into
//! symlinks; real symlinks (a fresh upstream checkout) are copied as symlinks.
//!
//! The shared tree also lost upstream's empty directories (401 of 425 dirs are left). The one
//! that changes node_exporter's output, `sys/class/watchdog/watchdog1` (a watchdog with no
//! attribute files: `node_watchdog_info{name="watchdog1"}` with empty labels), is recreated.
//!
//! The copy sits at `<tmp>/collector/fixtures`, the README's layout, so a process started with
//! `<tmp>` as its cwd and `--path.procfs=collector/fixtures/proc` prints the same path strings
//! as node_exporter's golden scrape.

use promlet::collect::Roots;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Empty directories of the upstream tree that the golden scrape depends on (see module docs).
const EMPTY_DIRS: &[&str] = &["sys/class/watchdog/watchdog1"];

/// `<dir>/collector/fixtures`, removed on drop.
pub struct NodeFixtures {
    /// The cwd to give node_exporter (or the promlet binary) for relative path strings.
    pub dir: PathBuf,
    /// How many flattened symlinks were restored (83 on the shared tree, 0 upstream).
    pub restored_links: usize,
}

/// A regular file that stands for a flattened symlink: one token, no trailing newline, that
/// climbs the tree (`../..`) or names a sibling directory (`proc/self` -> `10`).
fn flattened_link_target(path: &Path, content: &[u8]) -> Option<String> {
    if content.is_empty() || content.len() > 400 || content.ends_with(b"\n") {
        return None;
    }
    if content.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let s = std::str::from_utf8(content).ok()?;
    let sibling = path.parent()?.join(s);
    if s.starts_with("../") || (!s.contains('/') && sibling.is_dir()) {
        Some(s.to_string())
    } else {
        None
    }
}

fn copy_tree(from: &Path, to: &Path, restored: &mut usize) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst, restored)?;
        } else {
            let content = fs::read(&src)?;
            if let Some(target) = flattened_link_target(&src, &content) {
                std::os::unix::fs::symlink(target, &dst)?;
                *restored += 1;
            } else {
                fs::write(&dst, &content)?;
                fs::set_permissions(&dst, meta.permissions())?;
            }
        }
    }
    Ok(())
}

impl NodeFixtures {
    /// Copies `shared` (the node-fixtures folder) to a fresh temp dir named after `tag`.
    pub fn new(shared: &Path, tag: &str) -> NodeFixtures {
        let dir =
            std::env::temp_dir().join(format!("promlet-fixtures-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut restored_links = 0;
        copy_tree(shared, &dir.join("collector/fixtures"), &mut restored_links)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", shared.display(), dir.display()));
        for d in EMPTY_DIRS {
            fs::create_dir_all(dir.join("collector/fixtures").join(d)).unwrap();
        }
        NodeFixtures {
            dir,
            restored_links,
        }
    }

    /// The copy's root, `<dir>/collector/fixtures`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("collector/fixtures")
    }

    /// Absolute roots into the copy, laid out as node_exporter's e2e run uses them.
    pub fn roots(&self) -> Roots {
        let f = self.root();
        Roots {
            procfs: f.join("proc"),
            sysfs: f.join("sys"),
            rootfs: f.clone(),
            udev_data: f.join("udev/data"),
        }
    }

    /// `<dir>/`: what to strip from promlet's in-process path strings so they read
    /// `collector/fixtures/...` like node_exporter's (which ran with `<dir>` as cwd).
    pub fn prefix(&self) -> String {
        format!("{}/", self.dir.display())
    }
}

impl Drop for NodeFixtures {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
