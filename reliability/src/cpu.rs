//! CPU time of a process and the machine's load, from `/proc` (Linux):
//! what the benches report beside their rates, since a rate on a shared
//! machine depends on everything else running while CPU time per unit of
//! work hardly does.

use std::process::Command;

/// Reads the CPU time (user + system, all threads) of processes.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    /// Clock ticks per second of `/proc`'s times.
    ticks: f64,
}

impl CpuMeter {
    /// A meter with this machine's clock tick (`getconf CLK_TCK`, else 100).
    pub fn new() -> CpuMeter {
        let ticks = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        CpuMeter { ticks }
    }

    /// CPU seconds `pid` has used so far; `None` when `/proc` cannot say.
    pub fn seconds(&self, pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command's closing parenthesis: field 3 (state) on;
        // utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: u64 = fields.get(11)?.parse().ok()?;
        let system: u64 = fields.get(12)?.parse().ok()?;
        Some((user + system) as f64 / self.ticks)
    }
}

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter::new()
    }
}

/// The load averages (1, 5, 15 minutes) as `/proc/loadavg` gives them, and
/// the CPU count: `"load 2.10 1.50 0.90 on 2 CPUs"` (what `uptime` says).
pub fn load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("load average {} on {cpus} CPUs", averages.join(" "))
}
