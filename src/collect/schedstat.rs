//! `schedstat`: per-CPU scheduler statistics from /proc/schedstat (`cpuN` lines, fields 7-9:
//! running ns, waiting ns, timeslices) as `node_schedstat_*{cpu}`.

use super::util::{lines, num, words, KeptFile};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};

pub struct Schedstat {
    buf: String,
    file: KeptFile,
}

impl Default for Schedstat {
    fn default() -> Self {
        Schedstat {
            buf: String::new(),
            file: KeptFile::new("schedstat"),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Schedstat>::default())
}

impl Collector for Schedstat {
    fn name(&self) -> &'static str {
        "schedstat"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.file.read(&ctx.roots.procfs, &mut self.buf)?;
        let path = self.file.path();
        let running = out.family_static(
            "node_schedstat_running_seconds_total",
            "Number of seconds CPU spent running a process.",
            MetricType::Counter,
        );
        let waiting = out.family_static(
            "node_schedstat_waiting_seconds_total",
            "Number of seconds spent by processing waiting for this CPU.",
            MetricType::Counter,
        );
        let slices = out.family_static(
            "node_schedstat_timeslices_total",
            "Number of timeslices executed by CPU.",
            MetricType::Counter,
        );
        let mut cpus = 0;
        for line in lines(&self.buf) {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            let mut toks = words(rest);
            let cpu = toks.next().unwrap_or("");
            if cpu.parse::<u32>().is_err() {
                return Err(CollectError::parse(path, format!("bad cpu line {line:?}")));
            }
            let f: [Option<&str>; 9] = std::array::from_fn(|_| toks.next());
            let (Some(r), Some(w), Some(t)) = (f[6], f[7], f[8]) else {
                return Err(CollectError::parse(
                    path,
                    format!("short cpu line {line:?}"),
                ));
            };
            let (r, w, t) = (num(r, path)?, num(w, path)?, num(t, path)?);
            out.sample(running, &[("cpu", &cpu)], r / 1e9);
            out.sample(waiting, &[("cpu", &cpu)], w / 1e9);
            out.sample(slices, &[("cpu", &cpu)], t);
            cpus += 1;
        }
        if cpus == 0 {
            return Err(CollectError::parse(path, "no cpu lines"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn nanoseconds_become_seconds_and_domain_lines_are_skipped() {
        let text = "version 15\ntimestamp 1\ncpu0 1 0 2 3 4 5 2000000000 500000000 42\ndomain0 00000003 1 2 3\n";
        let (r, out) = run(&mut Schedstat::default(), &[("proc/schedstat", text)]);
        r.unwrap();
        assert!(out.contains("node_schedstat_running_seconds_total{cpu=\"0\"} 2\n"));
        assert!(out.contains("node_schedstat_waiting_seconds_total{cpu=\"0\"} 0.5\n"));
        assert!(out.contains("node_schedstat_timeslices_total{cpu=\"0\"} 42\n"));
        let (r, _) = run(
            &mut Schedstat::default(),
            &[("proc/schedstat", "cpu0 1 2\n")],
        );
        assert!(r.is_err());
    }
}
