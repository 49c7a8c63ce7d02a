//! `sockstat`: /proc/net/sockstat and /proc/net/sockstat6 as `node_sockstat_<PROTO>_<state>`
//! gauges, plus `<PROTO>_mem_bytes` (pages × this host's page size, as node_exporter does).

use super::util::{lines, num, split_once_byte, words, KeptFile, KnownTexts};
use super::{CollectError, Collector, CollectorOptions, Context};
use crate::expo::{MetricSet, MetricType};
use std::path::Path;

/// The per-protocol keys node_exporter exports, in its order.
const KEYS: &[&str] = &["inuse", "orphan", "tw", "alloc", "mem", "memory"];

pub struct Sockstat {
    /// /proc/net/sockstat and /proc/net/sockstat6.
    files: [KeptFile; 2],
    buf: String,
    /// Metric name and HELP per (protocol, key): the same ~20 each scrape, found here
    /// instead of formatted and copied again.
    texts: KnownTexts,
}

impl Default for Sockstat {
    fn default() -> Self {
        Sockstat {
            files: [
                KeptFile::new("net/sockstat").short_read_ends(0),
                KeptFile::new("net/sockstat6").short_read_ends(0),
            ],
            buf: String::new(),
            texts: KnownTexts::default(),
        }
    }
}

pub fn new(_: &CollectorOptions) -> Result<Box<dyn Collector>, String> {
    Ok(Box::<Sockstat>::default())
}

impl Sockstat {
    fn gauge(&mut self, out: &mut MetricSet, proto: &str, key: &str, v: f64) {
        let (name, help) = self.texts.get(proto, key, |proto, key| {
            (
                format!("node_sockstat_{proto}_{key}"),
                format!("Number of {proto} sockets in state {key}."),
            )
        });
        out.single_static(name, help, MetricType::Gauge, v);
    }

    /// One sockstat file; `ipv6` files have no `sockets: used` line.
    fn file(&mut self, root: &Path, ipv6: bool, out: &mut MetricSet) -> Result<(), CollectError> {
        let which = usize::from(ipv6);
        match self.files[which].read(root, &mut self.buf) {
            // IPv4 or IPv6 disabled in this kernel: nothing to report for that family.
            Err(ref e) if e.is_not_found() && ipv6 => return Ok(()),
            r => r?,
        }
        // Lend the buffer and the file out so `lines` can take `&mut self` for the names.
        let buf = std::mem::take(&mut self.buf);
        let file = std::mem::replace(&mut self.files[which], KeptFile::new(""));
        let r = self.lines(&buf, file.path(), ipv6, out);
        self.files[which] = file;
        self.buf = buf;
        r
    }

    fn lines(
        &mut self,
        text: &str,
        path: &Path,
        ipv6: bool,
        out: &mut MetricSet,
    ) -> Result<(), CollectError> {
        let page_size = rustix::param::page_size() as f64;
        let mut any = false;
        for line in lines(text).filter(|l| !l.trim().is_empty()) {
            let (proto, rest) = split_once_byte(line, b':')
                .ok_or_else(|| CollectError::parse(path, format!("no ':' in {line:?}")))?;
            let toks: [Option<&str>; 12] = {
                let mut it = words(rest);
                std::array::from_fn(|_| it.next())
            };
            let pairs = toks.chunks(2).map_while(|c| Some((c[0]?, c[1])));
            if proto == "sockets" {
                for (k, v) in pairs {
                    let v = num(v.unwrap_or(""), path)?;
                    if k == "used" && !ipv6 {
                        out.single(
                            "node_sockstat_sockets_used",
                            "Number of IPv4 sockets in use.",
                            MetricType::Gauge,
                            v,
                        );
                    }
                }
                any = true;
                continue;
            }
            let mut values = [None; KEYS.len()];
            for (k, v) in pairs {
                let v = num(v.unwrap_or(""), path)?;
                if let Some(i) = KEYS.iter().position(|x| *x == k) {
                    values[i] = Some(v);
                }
            }
            for (k, v) in KEYS.iter().zip(values) {
                if let Some(v) = v {
                    self.gauge(out, proto, k, v);
                }
            }
            if let Some(mem) = values[4] {
                self.gauge(out, proto, "mem_bytes", mem * page_size);
            }
            any = true;
        }
        if !any {
            return Err(CollectError::parse(path, "empty"));
        }
        Ok(())
    }
}

impl Collector for Sockstat {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn collect(&mut self, ctx: &Context<'_>, out: &mut MetricSet) -> Result<(), CollectError> {
        self.texts.restart();
        self.file(&ctx.roots.procfs, false, out)?;
        self.file(&ctx.roots.procfs, true, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::util::testing::run;

    #[test]
    fn mem_pages_also_become_bytes_and_v6_has_no_sockets_used() {
        let (r, text) = run(
            &mut Sockstat::default(),
            &[
                (
                    "proc/net/sockstat",
                    "sockets: used 229\nTCP: inuse 4 orphan 0 tw 4 alloc 17 mem 1\n",
                ),
                ("proc/net/sockstat6", "TCP6: inuse 17\n"),
            ],
        );
        r.unwrap();
        let page = rustix::param::page_size();
        assert!(text.contains(&format!("node_sockstat_TCP_mem_bytes {page}\n")));
        assert!(text.contains("# HELP node_sockstat_TCP_tw Number of TCP sockets in state tw.\n"));
        assert!(text.contains("node_sockstat_TCP6_inuse 17\n"));
        let used = text
            .lines()
            .filter(|l| l.starts_with("node_sockstat_sockets_used "));
        assert_eq!(used.count(), 1);
    }

    #[test]
    fn ipv6_may_be_absent_but_ipv4_may_not() {
        let v4 = [("proc/net/sockstat", "TCP: inuse 1\n")];
        assert!(run(&mut Sockstat::default(), &v4).0.is_ok());
        let v6 = [("proc/net/sockstat6", "TCP6: inuse 1\n")];
        assert!(matches!(
            run(&mut Sockstat::default(), &v6).0,
            Err(ref e) if e.is_not_found()
        ));
    }
}
