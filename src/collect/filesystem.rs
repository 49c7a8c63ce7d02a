//! The `filesystem` collector: size, free space and inodes of every mounted file system, from
//! the mount table (`<procfs>/1/mountinfo`, else `<procfs>/self/mountinfo`) and `statfs(2)` on
//! `<rootfs>/<mount point>`.
//!
//! Must not touch: block-device I/O counters (`diskstats`).
//!
//! # Hanging mounts
//! `statfs` on a dead NFS/CIFS server can block for minutes (or forever with `hard` mounts), and
//! promlet has one work thread. So `statfs` on *network and FUSE* file systems runs on a helper
//! thread, started only when such a mount exists, and the work thread waits at most
//! `filesystem.mount-timeout` (default 5 s, as node_exporter). A mount that times out is marked
//! stuck: it is reported with `device_error="mountpoint timeout"` and not statted again until the
//! blocked call returns (the helper then clears the mark and exits; the next network `statfs`
//! gets a fresh helper). Local file systems are statted inline: they do not hang short of a
//! failing disk, and an extra thread for them would cost more than it saves.
//!
//! Deviation: `node_filesystem_readonly` is 1 when `ro` is among the mount or super options.
//! node_exporter 1.11 joins the options without separators before looking for `ro`, so it only
//! reports 1 for a mount whose sole option is `ro`.

use super::sysfs::{opt_regex, short};
use super::util::lines;
use super::{CollectError, Collector, CollectorOption, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use regex_lite::Regex;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// node_exporter 1.11's defaults (upstream; Debian patches the mount-point default to also
/// exclude `/run`, `/mnt` and `/media`).
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

pub const OPTIONS: &[CollectorOption] = &[
    CollectorOption {
        name: "filesystem.mount-points-exclude",
        default: DEFAULT_MOUNT_POINTS_EXCLUDE,
        help: "Regexp of mount points to exclude for filesystem collector. (mutually exclusive to mount-points-include)",
    },
    CollectorOption {
        name: "filesystem.mount-points-include",
        default: "",
        help: "Regexp of mount points to include for filesystem collector. (mutually exclusive to mount-points-exclude)",
    },
    CollectorOption {
        name: "filesystem.fs-types-exclude",
        default: DEFAULT_FS_TYPES_EXCLUDE,
        help: "Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to fs-types-include)",
    },
    CollectorOption {
        name: "filesystem.fs-types-include",
        default: "",
        help: "Regexp of filesystem types to exclude for filesystem collector. (mutually exclusive to fs-types-exclude)",
    },
    CollectorOption {
        name: "filesystem.mount-timeout",
        default: "5s",
        help: "how long to wait for a mount to respond before marking it as stale",
    },
];

/// File systems whose `statfs` can block on a remote server or a user-space daemon.
fn may_hang(fstype: &str) -> bool {
    fstype.starts_with("fuse")
        || fstype.starts_with("nfs")
        || matches!(
            fstype,
            "cifs"
                | "smb3"
                | "smbfs"
                | "ceph"
                | "glusterfs"
                | "9p"
                | "afs"
                | "lustre"
                | "davfs"
                | "ncpfs"
                | "coda"
                | "sshfs"
                | "gfs2"
                | "ocfs2"
                | "beegfs"
                | "gpfs"
        )
}

/// An include or an exclude regex, as node_exporter resolves the pair.
struct Filter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    fn new(opts: &CollectorOptions, exclude: &str, include: &str) -> Result<Self, String> {
        let inc = opt_regex(opts, include)?;
        // An include given without an explicit exclude replaces the default exclude.
        let exc = if inc.is_some() && !opts.is_set(exclude) {
            None
        } else {
            opt_regex(opts, exclude)?
        };
        if inc.is_some() && exc.is_some() {
            return Err(format!(
                "--collector.{exclude} and --collector.{include} are mutually exclusive"
            ));
        }
        Ok(Filter {
            include: inc,
            exclude: exc,
        })
    }

    fn ignored(&self, s: &str) -> bool {
        match (&self.include, &self.exclude) {
            (Some(i), _) => !i.is_match(s),
            (None, Some(e)) => e.is_match(s),
            (None, None) => false,
        }
    }
}

/// Parses a Go-style duration: `5s`, `500ms`, `1m`, `1m30s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

type StatResult = Result<rustix::fs::StatVfs, rustix::io::Errno>;
/// Mount points whose `statfs` is blocked: a handful at most, so a list (a `BTreeSet<String>`
/// here was ~2.5 KB of code of its own).
type StuckMounts = Vec<String>;
/// The `statfs` call; a field so tests can stand in a call that hangs.
type StatFn = fn(&Path) -> StatResult;

fn real_statfs(p: &Path) -> StatResult {
    rustix::fs::statvfs(p)
}

/// The helper thread for `statfs` calls that may hang. See the module docs.
///
/// One request and one answer at a time pass through a mutex and a condvar: std's channels
/// would add ~8.5 KB of code for two channel types.
struct Helper {
    shared: Arc<Exchange>,
}

#[derive(Default)]
struct Exchange {
    state: Mutex<ExchangeState>,
    /// Signals a new request, an answer, or that the work thread gave up on the helper.
    wake: Condvar,
}

#[derive(Default)]
struct ExchangeState {
    request: Option<(String, PathBuf)>,
    answer: Option<StatResult>,
    /// The work thread dropped the helper (its call timed out, or the collector went away).
    abandoned: bool,
}

/// Why no answer came back.
#[derive(Debug, PartialEq)]
enum NoAnswer {
    Timeout,
    /// The helper is gone (it panicked).
    Gone,
}

impl Helper {
    fn spawn(stuck: Arc<Mutex<StuckMounts>>, stat: StatFn) -> std::io::Result<Helper> {
        let shared = Arc::new(Exchange::default());
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("promlet-statfs".into())
            .stack_size(64 * 1024)
            .spawn(move || helper_loop(&theirs, &stuck, stat))?;
        Ok(Helper { shared })
    }

    /// Hands a call to the helper; false if the helper is gone.
    fn send(&self, mountpoint: &str, path: &Path) -> bool {
        let Ok(mut s) = self.shared.state.lock() else {
            return false;
        };
        s.request = Some((mountpoint.to_string(), path.to_path_buf()));
        drop(s);
        self.shared.wake.notify_all();
        true
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<StatResult, NoAnswer> {
        let s = self.shared.state.lock().map_err(|_| NoAnswer::Gone)?;
        let (mut s, _) = self
            .shared
            .wake
            .wait_timeout_while(s, timeout, |s| s.answer.is_none())
            .map_err(|_| NoAnswer::Gone)?;
        s.answer.take().ok_or(NoAnswer::Timeout)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.abandoned = true;
        }
        self.shared.wake.notify_all();
    }
}

/// The helper thread: stats what it is handed until the work thread drops the [`Helper`].
fn helper_loop(ex: &Exchange, stuck: &Mutex<StuckMounts>, stat: StatFn) {
    loop {
        let Ok(s) = ex.state.lock() else { return };
        let Ok(mut s) = ex
            .wake
            .wait_while(s, |s| s.request.is_none() && !s.abandoned)
        else {
            return;
        };
        let Some((mountpoint, path)) = s.request.take().filter(|_| !s.abandoned) else {
            return;
        };
        drop(s);
        let r = stat(&path);
        let Ok(mut s) = ex.state.lock() else { return };
        if s.abandoned {
            // The work thread gave up on us: this call was stuck. It returned now, so the
            // mount may be statted again (by a new helper).
            drop(s);
            if let Ok(mut s) = stuck.lock() {
                s.retain(|m| *m != mountpoint);
            }
            return;
        }
        s.answer = Some(r);
        drop(s);
        ex.wake.notify_all();
    }
}

/// One parsed mountinfo line; string fields borrow the file text.
struct Mount<'a> {
    major: u32,
    minor: u32,
    mountpoint: Cow<'a, str>,
    fstype: &'a str,
    source: &'a str,
    read_only: bool,
}

/// Parses one `/proc/<pid>/mountinfo` line (see proc(5)).
fn parse_mountinfo_line(line: &str) -> Option<Mount<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let mut f = pre.split(' ');
    let _id = f.next()?;
    let _parent = f.next()?;
    let (major, minor) = f.next()?.split_once(':')?;
    let _root = f.next()?;
    let mountpoint = f.next()?;
    let options = f.next()?;
    let mut p = post.split(' ');
    let fstype = p.next()?;
    let source = p.next()?;
    let super_options = p.next().unwrap_or("");
    let ro = |o: &str| o.split(',').any(|x| x == "ro");
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        // As node_exporter: only the space and tab escapes of fstab(5) are decoded.
        mountpoint: if mountpoint.contains('\\') {
            Cow::Owned(mountpoint.replace("\\040", " ").replace("\\011", "\t"))
        } else {
            Cow::Borrowed(mountpoint)
        },
        fstype,
        source,
        read_only: ro(options) || ro(super_options),
    })
}

/// Go's error text for an errno (`permission denied`), which node_exporter puts in the
/// `device_error` label: the C library's message with a lower-case first letter.
fn errno_text(e: rustix::io::Errno) -> String {
    let s = std::io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

pub struct Filesystem {
    mount_points: Filter,
    fs_types: Filter,
    timeout: Duration,
    text: String,
    helper: Option<Helper>,
    stuck: Arc<Mutex<StuckMounts>>,
    /// Hashes of the (device, mountpoint, fstype, device_error) label sets already exported;
    /// a 64-bit hash instead of owned strings keeps the cycle allocation-free.
    seen: Vec<u64>,
    path: PathBuf,
    errors: Vec<(i32, Rc<str>)>,
    timeout_text: Rc<str>,
    stat: StatFn,
    /// The mount table file `text` was last read from, kept open to ask the kernel whether
    /// the table changed since.
    mounts: Option<WatchedMounts>,
    /// Per line of `text`: whether the mount-point or fs-type filter drops it. Valid until
    /// `text` is read again: regex-lite costs ~1.5% of a scrape when run per mount and scrape.
    ignored_lines: Vec<bool>,
    ignored_valid: bool,
}

/// A procfs mountinfo file kept open between collections. procfs flags a mount-table change
/// on it with POLLPRI (mounts_poll), so an unchanged table (nearly every scrape) costs one
/// `poll` instead of open, fstat, reads and close and the kernel printing every mount again
/// (3% of a scrape's CPU here). Only for procfs: a regular file (a recorded tree under
/// `--path.procfs`) never reports POLLPRI, so it is read every time, as before.
struct WatchedMounts {
    path: PathBuf,
    file: std::fs::File,
}

impl WatchedMounts {
    /// Whether the kernel reports a change of the mount table since the last call (or since
    /// the open), or cannot tell.
    fn changed(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, its count, and a zero timeout (never blocks).
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n != 0 || pfd.revents != 0
    }
}

pub fn new(opts: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::new(build(opts)?))
}

fn build(opts: &CollectorOptions) -> Result<Filesystem, String> {
    let t = opts.get("filesystem.mount-timeout");
    let timeout = parse_duration(t)
        .ok_or_else(|| format!("--collector.filesystem.mount-timeout: bad duration {t:?}"))?;
    Ok(Filesystem {
        mount_points: Filter::new(
            opts,
            "filesystem.mount-points-exclude",
            "filesystem.mount-points-include",
        )?,
        fs_types: Filter::new(
            opts,
            "filesystem.fs-types-exclude",
            "filesystem.fs-types-include",
        )?,
        timeout,
        text: String::new(),
        helper: None,
        stuck: Arc::new(Mutex::new(Vec::new())),
        seen: Vec::new(),
        path: PathBuf::new(),
        errors: Vec::new(),
        timeout_text: "mountpoint timeout".into(),
        stat: real_statfs,
        mounts: None,
        ignored_lines: Vec::new(),
        ignored_valid: false,
    })
}

/// What `statfs` said about one mount.
enum Outcome {
    Stat(rustix::fs::StatVfs),
    Error(Rc<str>),
}

impl Filesystem {
    /// Go's text for `e`, built once per errno (mounts fail the same way every cycle).
    fn error_text(&mut self, e: rustix::io::Errno) -> Rc<str> {
        if let Some((_, t)) = self.errors.iter().find(|(n, _)| *n == e.raw_os_error()) {
            return t.clone();
        }
        let t: Rc<str> = errno_text(e).into();
        self.errors.push((e.raw_os_error(), t.clone()));
        t
    }

    fn is_stuck(&self, mountpoint: &str) -> bool {
        self.stuck
            .lock()
            .map(|s| s.iter().any(|m| m == mountpoint))
            .unwrap_or(false)
    }

    fn statfs(&mut self, mountpoint: &str, path: &Path, fstype: &str) -> Outcome {
        let r = if may_hang(fstype) {
            self.statfs_with_timeout(mountpoint, path)
        } else {
            Some((self.stat)(path))
        };
        match r {
            Some(Ok(s)) => Outcome::Stat(s),
            Some(Err(e)) => Outcome::Error(self.error_text(e)),
            None => Outcome::Error(self.timeout_text.clone()),
        }
    }

    /// `None` on timeout (the mount is then marked stuck).
    fn statfs_with_timeout(&mut self, mountpoint: &str, path: &Path) -> Option<StatResult> {
        if self.helper.is_none() {
            match Helper::spawn(self.stuck.clone(), self.stat) {
                Ok(h) => self.helper = Some(h),
                // No thread available: stat inline rather than not at all.
                Err(_) => return Some((self.stat)(path)),
            }
        }
        let h = self.helper.as_ref()?;
        if !h.send(mountpoint, path) {
            self.helper = None;
            return Some((self.stat)(path));
        }
        match h.recv_timeout(self.timeout) {
            Ok(r) => Some(r),
            Err(NoAnswer::Timeout) => {
                if let Ok(mut s) = self.stuck.lock() {
                    if !s.iter().any(|m| m == mountpoint) {
                        s.push(mountpoint.to_string());
                    }
                }
                crate::log::warn(&format!(
                    "filesystem: statfs({}) did not return within {:?}; skipping this mount until it does",
                    path.display(),
                    self.timeout
                ));
                self.helper = None; // the blocked helper exits when its call returns
                None
            }
            Err(NoAnswer::Gone) => {
                self.helper = None;
                None
            }
        }
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        let path = self.read_mounts(ctx)?;
        let text = std::mem::take(&mut self.text);
        let r = self.emit(ctx, &path, &text, out);
        self.text = text;
        r
    }
}

impl Filesystem {
    /// Brings `text` up to date with the mount table and returns the file's path.
    fn read_mounts(&mut self, ctx: &Context<'_>) -> Result<PathBuf, CollectError> {
        if let Some(w) = &self.mounts {
            if w.path.starts_with(&ctx.roots.procfs) && !w.changed() {
                return Ok(w.path.clone());
            }
        }
        self.mounts = None;
        let mut path = ctx.roots.proc("1/mountinfo");
        let file = match std::fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // hidepid hides PID 1: fall back to our own mount namespace.
                path = ctx.roots.proc("self/mountinfo");
                std::fs::File::open(&path)
            }
            r => r,
        }
        .map_err(|e| CollectError::io(&path, e))?;
        self.text.clear();
        self.ignored_valid = false;
        (&file)
            .read_to_string(&mut self.text)
            .map_err(|e| CollectError::io(&path, e))?;
        // The field's integer type differs between targets, hence the casts.
        #[allow(clippy::unnecessary_cast)]
        let on_procfs = rustix::fs::fstatfs(&file)
            .is_ok_and(|s| s.f_type as i64 == libc::PROC_SUPER_MAGIC as i64);
        if on_procfs {
            self.mounts = Some(WatchedMounts {
                path: path.clone(),
                file,
            });
        }
        Ok(path)
    }

    fn emit(
        &mut self,
        ctx: &Context<'_>,
        path: &Path,
        text: &str,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let fam =
            |out: &mut MetricSet, name, help| out.family_static(name, help, MetricType::Gauge);
        let size_f = fam(
            out,
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
        );
        let free_f = fam(
            out,
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
        );
        let avail_f = fam(
            out,
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        );
        let files_f = fam(out, "node_filesystem_files", "Filesystem total file nodes.");
        let ffree_f = fam(
            out,
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
        );
        let purge_f = fam(
            out,
            "node_filesystem_purgeable_bytes",
            "Filesystem space available including purgeable space (MacOS specific).",
        );
        let ro_f = fam(
            out,
            "node_filesystem_readonly",
            "Filesystem read-only status.",
        );
        let err_f = fam(
            out,
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        );
        let info_f = fam(
            out,
            "node_filesystem_mount_info",
            "Filesystem mount information.",
        );

        let rootfs = ctx.roots.rootfs.to_string_lossy();
        let rootfs = rootfs.trim_end_matches('/');
        self.seen.clear();
        if !self.ignored_valid {
            self.ignored_lines.clear();
        }
        for (i, line) in lines(text).filter(|l| !l.trim().is_empty()).enumerate() {
            // While the mount table is unchanged, lines already found ignored are not parsed
            // again (cgroup, proc, sysfs...: most of a typical table).
            if self.ignored_valid && self.ignored_lines.get(i) == Some(&true) {
                continue;
            }
            let m = parse_mountinfo_line(line).ok_or_else(|| {
                CollectError::parse(path, format!("bad mountinfo line {:?}", short(line)))
            })?;
            // Mount points are reported relative to --path.rootfs, as node_exporter does.
            let mountpoint = if rootfs.is_empty() {
                &*m.mountpoint
            } else {
                match m.mountpoint.strip_prefix(rootfs) {
                    Some("") => "/",
                    Some(rest) => rest,
                    None => &*m.mountpoint,
                }
            };
            let ignored = match self.ignored_lines.get(i) {
                Some(&v) if self.ignored_valid => v,
                _ => {
                    let v =
                        self.mount_points.ignored(mountpoint) || self.fs_types.ignored(m.fstype);
                    self.ignored_lines.push(v);
                    v
                }
            };
            if ignored {
                continue;
            }
            self.path.clear();
            self.path.push(&ctx.roots.rootfs);
            self.path.push(mountpoint.trim_start_matches('/'));
            let target = std::mem::take(&mut self.path);
            let outcome = if self.is_stuck(mountpoint) {
                Outcome::Error(self.timeout_text.clone())
            } else {
                self.statfs(mountpoint, &target, m.fstype)
            };
            self.path = target;
            let device_error = match &outcome {
                Outcome::Stat(_) => "",
                Outcome::Error(e) => &**e,
            };
            // The same device mounted twice at one place is exported once.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (m.source, mountpoint, m.fstype, device_error).hash(&mut h);
            let key = h.finish();
            if self.seen.contains(&key) {
                continue;
            }
            self.seen.push(key);
            let labels: [(&str, &dyn crate::expo::LabelValue); 4] = [
                ("device", &m.source),
                ("device_error", &device_error),
                ("fstype", &m.fstype),
                ("mountpoint", &mountpoint),
            ];
            let failed = !device_error.is_empty();
            out.sample(err_f, &labels, if failed { 1.0 } else { 0.0 });
            let ro = if m.read_only { 1.0 } else { 0.0 };
            out.sample(ro_f, &labels, ro);
            let Outcome::Stat(s) = &outcome else {
                continue;
            };
            let bsize = s.f_bsize as f64;
            out.sample(size_f, &labels, s.f_blocks as f64 * bsize);
            out.sample(free_f, &labels, s.f_bfree as f64 * bsize);
            out.sample(avail_f, &labels, s.f_bavail as f64 * bsize);
            out.sample(files_f, &labels, s.f_files as f64);
            out.sample(ffree_f, &labels, s.f_ffree as f64);
            out.sample(
                info_f,
                &[
                    ("device", &m.source),
                    ("major", &m.major),
                    ("minor", &m.minor),
                    ("mountpoint", &mountpoint),
                ],
                1.0,
            );
            out.sample(purge_f, &labels, 0.0);
        }
        self.ignored_valid = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fixtures::{run, Scratch};

    fn roots_with_mountinfo(s: &Scratch, mountinfo: &str) -> crate::collect::Roots {
        s.write("proc/1/mountinfo", mountinfo.as_bytes());
        let mut r = s.roots();
        r.rootfs = "/".into();
        r
    }

    #[test]
    fn filesystem_stats_the_root_and_applies_default_excludes() {
        let s = Scratch::new("fs");
        let roots = roots_with_mountinfo(
            &s,
            "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
             24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,mode=755\n\
             27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
             27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
             40 27 0:50 / /no\\040such ro,relatime - ext4 /dev/vdb ro\n",
        );
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &roots).unwrap();
        let root = "{device=\"/dev/vda\",device_error=\"\",fstype=\"ext4\",mountpoint=\"/\"}";
        let want = rustix::fs::statvfs("/").unwrap();
        let size = want.f_blocks as f64 * want.f_bsize as f64;
        let mut v = Vec::new();
        crate::expo::format_float(size, &mut v);
        assert!(
            text.contains(&format!(
                "node_filesystem_size_bytes{root} {}\n",
                String::from_utf8(v).unwrap()
            )),
            "{text}"
        );
        assert_eq!(
            text.matches("node_filesystem_device_error{").count(),
            2,
            "{text}"
        );
        assert!(text.contains("node_filesystem_mount_info{device=\"/dev/vda\",major=\"254\",minor=\"0\",mountpoint=\"/\"} 1"));
        // A missing mount point: device_error with Go's errno text, readonly from options.
        let gone = "{device=\"/dev/vdb\",device_error=\"no such file or directory\",fstype=\"ext4\",mountpoint=\"/no such\"}";
        assert!(
            text.contains(&format!("node_filesystem_device_error{gone} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("node_filesystem_readonly{gone} 1")),
            "{text}"
        );
        assert!(!text.contains(&format!("node_filesystem_size_bytes{gone}")));
        assert!(!text.contains("/proc"));
    }

    /// On a live procfs the mount table stays open and is read again only when the kernel
    /// flags a change; a recorded tree (a regular file) is never watched, so it is re-read
    /// every cycle (the garbage test below rewrites one under the same collector).
    #[test]
    fn filesystem_watches_a_live_mount_table_but_not_a_recorded_one() {
        let mut fs = build(&CollectorOptions::default()).unwrap();
        let live = crate::collect::Roots::default();
        run(&mut fs, &live).unwrap();
        let first = fs.text.clone();
        assert!(first.contains(" - "), "{first}");
        let watched = fs.mounts.as_ref().expect("live mountinfo is watched");
        assert!(watched.path.ends_with("mountinfo"));
        // A line only our copy has: it survives the next cycle if the file is not read again.
        fs.text
            .push_str("99 1 0:99 / /promlet-sentinel rw - tmpfs none rw\n");
        let text = run(&mut fs, &live).unwrap();
        assert!(fs.mounts.is_some());
        assert!(fs.text.ends_with("/promlet-sentinel rw - tmpfs none rw\n"));
        assert!(text.contains("mountpoint=\"/promlet-sentinel\""), "{text}");
        let s = Scratch::new("fs-watch");
        let roots = roots_with_mountinfo(&s, "27 1 254:0 / / rw - ext4 /dev/vda rw\n");
        run(&mut fs, &roots).unwrap();
        assert!(fs.mounts.is_none());
        assert!(fs.text.starts_with("27 1 254:0"));
    }

    #[test]
    fn filesystem_include_without_explicit_exclude_replaces_the_default() {
        let mut o = CollectorOptions::default();
        o.set("filesystem.mount-points-include", "^/dev$");
        let c = Filter::new(
            &o,
            "filesystem.mount-points-exclude",
            "filesystem.mount-points-include",
        )
        .unwrap();
        assert!(!c.ignored("/dev"));
        assert!(c.ignored("/"));
        o.set("filesystem.mount-points-exclude", "^/x$");
        assert!(new(&o).is_err());
    }

    #[test]
    fn filesystem_garbage_or_truncated_mountinfo_is_an_error() {
        let s = Scratch::new("fs-bad");
        let mut c = new(&CollectorOptions::default()).unwrap();
        assert!(matches!(
            run(c.as_mut(), &s.roots()),
            Err(ref e) if e.is_not_found()
        ));
        for bad in [
            "27 1 254:0 / / rw,relatime - ext4",
            "27 1 254:0 / /",
            "\u{1}garbage\n",
            "27 1 x:y / / rw - ext4 /dev/vda rw",
        ] {
            let roots = roots_with_mountinfo(&s, bad);
            assert!(
                matches!(run(c.as_mut(), &roots), Err(ref e) if e.is_parse()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn filesystem_falls_back_to_self_mountinfo_and_strips_rootfs() {
        let s = Scratch::new("fs-self");
        let root = s.dir.to_string_lossy().into_owned();
        s.write(
            "proc/self/mountinfo",
            format!("27 1 254:0 / {root} rw - ext4 /dev/vda rw\n").as_bytes(),
        );
        let mut c = new(&CollectorOptions::default()).unwrap();
        let text = run(c.as_mut(), &s.roots()).unwrap();
        assert!(text.contains("node_filesystem_avail_bytes{device=\"/dev/vda\",device_error=\"\",fstype=\"ext4\",mountpoint=\"/\"}"), "{text}");
    }

    /// Stands in for a hung NFS server: the first call on a path containing `hang` blocks for
    /// 600 ms, later ones return at once (the server came back).
    fn slow_statfs(p: &Path) -> StatResult {
        static HUNG_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if p.to_string_lossy().contains("hang")
            && !HUNG_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(600));
        }
        rustix::fs::statvfs("/")
    }

    #[test]
    fn filesystem_hanging_network_mount_times_out_is_skipped_then_recovers() {
        let s = Scratch::new("fs-hang");
        let mut o = CollectorOptions::default();
        o.set("filesystem.mount-timeout", "100ms");
        let mut fs = build(&o).unwrap();
        fs.stat = slow_statfs;
        let roots = roots_with_mountinfo(
            &s,
            "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
             50 27 0:60 / /hang rw - nfs4 srv:/x rw\n\
             51 27 0:61 / /ok rw - nfs4 srv:/y rw\n",
        );
        let hung = "{device=\"srv:/x\",device_error=\"mountpoint timeout\",fstype=\"nfs4\",mountpoint=\"/hang\"}";
        let t0 = std::time::Instant::now();
        let text = run(&mut fs, &roots).unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "waited {:?}",
            t0.elapsed()
        );
        assert!(
            text.contains(&format!("node_filesystem_device_error{hung} 1")),
            "{text}"
        );
        // The other network mount still got a (fresh) helper and real numbers.
        assert!(
            text.contains("node_filesystem_size_bytes{device=\"srv:/y\",device_error=\"\""),
            "{text}"
        );
        // While the call is blocked, the mount is skipped without waiting.
        let t1 = std::time::Instant::now();
        let text = run(&mut fs, &roots).unwrap();
        assert!(
            t1.elapsed() < Duration::from_millis(90),
            "waited {:?}",
            t1.elapsed()
        );
        assert!(text.contains(&format!("node_filesystem_device_error{hung} 1")));
        // Once the blocked call returns, the mount is statted again.
        std::thread::sleep(Duration::from_millis(700));
        assert!(fs.stuck.lock().unwrap().is_empty());
        let text = run(&mut fs, &roots).unwrap();
        assert!(
            text.contains("node_filesystem_device_error{device=\"srv:/x\",device_error=\"\""),
            "{text}"
        );
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn filesystem_local_mounts_do_not_start_a_helper_thread() {
        let s = Scratch::new("fs-local");
        let mut fs = build(&CollectorOptions::default()).unwrap();
        let roots = roots_with_mountinfo(&s, "27 1 254:0 / / rw - ext4 /dev/vda rw\n");
        run(&mut fs, &roots).unwrap();
        assert!(fs.helper.is_none());
    }

    /// On the real /proc the mount table is read once and the filter verdicts are kept
    /// while procfs reports no change; the second collection exports the same mounts.
    #[test]
    fn filter_verdicts_are_kept_while_the_mount_table_is_unchanged() {
        let roots = crate::collect::Roots::default();
        if !roots.proc("self/mountinfo").exists() {
            return;
        }
        let mut fs = build(&CollectorOptions::default()).unwrap();
        let mounts = |fs: &mut Filesystem| {
            let mut set = MetricSet::new();
            let ctx = Context {
                roots: &roots,
                now_ms: 0,
            };
            fs.collect(&ctx, &mut set).unwrap();
            let mut out = Vec::new();
            crate::expo::encode_text(&set, &mut out);
            let text = String::from_utf8(out).unwrap();
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("node_filesystem_readonly{"))
                .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
                .collect();
            lines.sort();
            lines
        };
        let first = mounts(&mut fs);
        assert!(fs.ignored_valid);
        let verdicts = fs.ignored_lines.clone();
        // Excluded mounts (/proc, /sys, ...) are dropped by the kept verdicts as before.
        assert!(verdicts.iter().any(|&v| v), "{verdicts:?}");
        assert!(!first.iter().any(|l| l.contains("mountpoint=\"/proc\"")));
        let second = mounts(&mut fs);
        if fs.ignored_lines == verdicts {
            assert_eq!(first, second);
        }
    }
}
