//! `stats` for native containers, read straight from their cgroup (v1 controllers, or the
//! unified hierarchy where it is the only one) and their network namespace.

use std::path::{Path, PathBuf};

use berth_core::ContainerStats;

const ROOT: &str = "/sys/fs/cgroup";

/// Figures for the cgroup at `relative` (e.g. `berth/<id>`) and the process `pid`.
pub fn read(relative: &Path, pid: Option<u32>) -> ContainerStats {
    let v1 = Path::new(ROOT).join("memory").join(relative);
    let mut stats = if v1.is_dir() {
        read_v1(relative)
    } else {
        read_v2(&Path::new(ROOT).join(relative))
    };
    if let Some(pid) = pid
        && let Ok(dev) = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
    {
        (stats.net_rx_bytes, stats.net_tx_bytes) = net_dev(&dev);
    }
    stats
}

fn text(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn number(path: PathBuf) -> u64 {
    text(path).trim().parse().unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_v1(relative: &Path) -> ContainerStats {
    let controller = |name: &str, file: &str| Path::new(ROOT).join(name).join(relative).join(file);
    let memory_stat = text(controller("memory", "memory.stat"));
    let bytes = text(controller(
        "blkio",
        "blkio.throttle.io_service_bytes_recursive",
    ));
    let ops = text(controller("blkio", "blkio.throttle.io_serviced_recursive"));
    ContainerStats {
        cpu_total_ns: number(controller("cpuacct", "cpuacct.usage")),
        memory_usage_bytes: number(controller("memory", "memory.usage_in_bytes")),
        memory_cache_bytes: keyed(&memory_stat, "total_cache")
            .or_else(|| keyed(&memory_stat, "cache"))
            .unwrap_or(0),
        block_read_bytes: blkio_v1(&bytes, "read"),
        block_write_bytes: blkio_v1(&bytes, "write"),
        block_read_ops: blkio_v1(&ops, "read"),
        block_write_ops: blkio_v1(&ops, "write"),
        ..ContainerStats::default()
    }
}

fn read_v2(dir: &Path) -> ContainerStats {
    let memory_stat = text(dir.join("memory.stat"));
    let io = text(dir.join("io.stat"));
    ContainerStats {
        cpu_total_ns: keyed(&text(dir.join("cpu.stat")), "usage_usec").unwrap_or(0) * 1000,
        memory_usage_bytes: number(dir.join("memory.current")),
        memory_cache_bytes: keyed(&memory_stat, "file").unwrap_or(0),
        block_read_bytes: io_v2(&io, "rbytes"),
        block_write_bytes: io_v2(&io, "wbytes"),
        block_read_ops: io_v2(&io, "rios"),
        block_write_ops: io_v2(&io, "wios"),
        ..ContainerStats::default()
    }
}

/// Sums `MAJ:MIN Op value` lines whose op matches, ignoring case.
fn blkio_v1(text: &str, op: &str) -> u64 {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_device, kind, value) = (fields.next()?, fields.next()?, fields.next()?);
            kind.eq_ignore_ascii_case(op)
                .then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

/// Sums `key=value` across the devices of io.stat.
fn io_v2(text: &str, key: &str) -> u64 {
    text.split_whitespace()
        .filter_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// Received and sent bytes over every interface but loopback.
fn net_dev(text: &str) -> (u64, u64) {
    let mut totals = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        if counters.len() >= 9 {
            totals.0 += counters[0];
            totals.1 += counters[8];
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_and_io_stat_sum_over_devices() {
        let v1 = "8:0 Read 4096\n8:0 Write 100\n8:16 Read 1\n8:0 Sync 5\nTotal 4197\n";
        assert_eq!((blkio_v1(v1, "read"), blkio_v1(v1, "write")), (4097, 100));
        let v2 = "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n";
        assert_eq!((io_v2(v2, "rbytes"), io_v2(v2, "wios")), (15, 2));
    }

    #[test]
    fn net_dev_skips_loopback() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n\
                       lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n\
                     eth0:    2000      10    0    0    0     0          0         0      300       3    0    0    0     0       0          0\n";
        assert_eq!(net_dev(dev), (2000, 300));
    }

    #[test]
    fn keyed_lines() {
        assert_eq!(keyed("cache 12\ntotal_cache 34\n", "total_cache"), Some(34));
        assert_eq!(keyed("usage_usec 7\n", "usage_usec"), Some(7));
        assert_eq!(keyed("", "x"), None);
    }
}
