//! `pressure`: pressure stall information from /proc/pressure/{cpu,io,memory,irq} as
//! `node_pressure_*_seconds_total` (the `total=` microseconds, in seconds).
//!
//! No /proc/pressure (kernel < 4.20 or CONFIG_PSI off, common on routers) is `NotFound`;
//! a missing `irq` file alone (kernels before 6.1) just drops the irq family.

use super::util::{lines, parse_u64, words, KeptFile};
use super::{CollectError, CollectErrorKind, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

pub struct Pressure {
    buf: String,
    /// /proc/pressure/{cpu,io,memory,irq}.
    files: [KeptFile; 4],
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            buf: String::new(),
            files: [
                KeptFile::new("pressure/cpu").short_read_ends(0),
                KeptFile::new("pressure/io").short_read_ends(0),
                KeptFile::new("pressure/memory").short_read_ends(0),
                KeptFile::new("pressure/irq").short_read_ends(0),
            ],
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Pressure>::default())
}

/// The `total=` values of the `some` and `full` lines, in µs.
fn parse(text: &str, path: &Path) -> Result<(Option<u64>, Option<u64>), CollectError> {
    let (mut some, mut full) = (None, None);
    for line in lines(text).filter(|l| !l.trim().is_empty()) {
        let mut toks = words(line);
        let kind = toks.next().unwrap_or("");
        let total = toks
            .find_map(|t| t.strip_prefix("total="))
            .and_then(parse_u64)
            .ok_or_else(|| CollectError::parse(path, format!("no total= in {line:?}")))?;
        match kind {
            "some" => some = Some(total),
            "full" => full = Some(total),
            _ => return Err(CollectError::parse(path, format!("unknown line {line:?}"))),
        }
    }
    if some.is_none() && full.is_none() {
        return Err(CollectError::parse(path, "empty"));
    }
    Ok((some, full))
}

/// PSI compiled in but switched off at boot (`psi=0`): where the files still exist, reads fail
/// with EOPNOTSUPP. node_exporter calls that "no data" ("add psi=1 to the kernel command line");
/// so does promlet (`NotFound`, no error line per scrape).
fn psi_disabled(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

/// µs to seconds, computed as node_exporter does (`/1000/1000`) so values match to the bit.
fn seconds(us: u64) -> f64 {
    us as f64 / 1000.0 / 1000.0
}

impl Collector for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        for (res, file) in ["cpu", "io", "memory", "irq"]
            .into_iter()
            .zip(&mut self.files)
        {
            // irq pressure needs CONFIG_IRQ_TIME_ACCOUNTING: optional, and not probed on
            // every scrape when absent.
            let read = if res == "irq" {
                file.read_optional(&ctx.roots.procfs, &mut self.buf, ctx.now_ms)
            } else {
                file.read(&ctx.roots.procfs, &mut self.buf).map(|()| true)
            };
            match read {
                Ok(false) => continue,
                Err(ref e) if matches!(e.kind(), CollectErrorKind::Io(_, io) if psi_disabled(io)) => {
                    return Err(CollectError::not_found(e.path().to_path_buf()))
                }
                r => {
                    r?;
                }
            }
            let path = file.path();
            let (some, full) = parse(&self.buf, path)?;
            let need = |v: Option<u64>, what: &str| {
                v.ok_or_else(|| CollectError::parse(path, format!("no {what} line")))
            };
            match res {
                "cpu" => out.single_static(
                    "node_pressure_cpu_waiting_seconds_total",
                    "Total time in seconds that processes have waited for CPU time",
                    MetricType::Counter,
                    seconds(need(some, "some")?),
                ),
                "io" => {
                    out.single_static(
                        "node_pressure_io_waiting_seconds_total",
                        "Total time in seconds that processes have waited due to IO congestion",
                        MetricType::Counter,
                        seconds(need(some, "some")?),
                    );
                    out.single_static(
                        "node_pressure_io_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to IO congestion",
                        MetricType::Counter,
                        seconds(need(full, "full")?),
                    );
                }
                "memory" => {
                    out.single_static(
                        "node_pressure_memory_waiting_seconds_total",
                        "Total time in seconds that processes have waited for memory",
                        MetricType::Counter,
                        seconds(need(some, "some")?),
                    );
                    out.single_static(
                        "node_pressure_memory_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to memory congestion",
                        MetricType::Counter,
                        seconds(need(full, "full")?),
                    );
                }
                _ => out.single_static(
                    "node_pressure_irq_stalled_seconds_total",
                    "Total time in seconds no process could make progress due to IRQ congestion",
                    MetricType::Counter,
                    seconds(need(full, "full")?),
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    const LINES: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=14036781\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";

    #[test]
    fn totals_become_seconds_and_missing_irq_is_fine() {
        let files = [
            ("proc/pressure/cpu", LINES),
            ("proc/pressure/io", LINES),
            ("proc/pressure/memory", LINES),
        ];
        let (r, text) = run(&mut Pressure::default(), &files);
        r.unwrap();
        // Same digits as node_exporter, which divides by 1000 twice.
        assert!(text.contains("node_pressure_cpu_waiting_seconds_total 14.036781000000001\n"));
        assert!(text.contains("node_pressure_io_stalled_seconds_total 5e-06\n"));
        assert!(!text.contains("irq"));
    }

    #[test]
    fn no_psi_is_not_found_and_a_line_without_total_is_an_error() {
        assert!(matches!(
            run(&mut Pressure::default(), &[]).0,
            Err(ref e) if e.is_not_found()
        ));
        let bad = [("proc/pressure/cpu", "some avg10=0.00\n")];
        assert!(matches!(
            run(&mut Pressure::default(), &bad).0,
            Err(ref e) if e.is_parse()
        ));
    }

    /// irq pressure (CONFIG_IRQ_TIME_ACCOUNTING) is optional: absent, it is not probed again
    /// until the re-probe time, then picked up.
    #[test]
    fn irq_pressure_that_appears_later_is_found_after_the_reprobe_time() {
        use crate::collect::fixtures::{run_at, Scratch};
        use crate::collect::util::REPROBE_ABSENT_MS;
        let s = Scratch::new("psi-irq");
        let lines = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2\n";
        for res in ["cpu", "io", "memory"] {
            s.write(&format!("proc/pressure/{res}"), lines.as_bytes());
        }
        let mut c = Pressure::default();
        let t0 = 1_000_000;
        assert!(!run_at(&mut c, &s.roots(), t0).unwrap().contains("irq"));
        s.write(
            "proc/pressure/irq",
            b"full avg10=0.00 avg60=0.00 avg300=0.00 total=5000000\n",
        );
        let text = run_at(&mut c, &s.roots(), t0 + REPROBE_ABSENT_MS - 1).unwrap();
        assert!(!text.contains("irq"), "{text}");
        let text = run_at(&mut c, &s.roots(), t0 + REPROBE_ABSENT_MS).unwrap();
        assert!(
            text.contains("node_pressure_irq_stalled_seconds_total 5\n"),
            "{text}"
        );
    }
}
