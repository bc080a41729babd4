//! A closed-loop load generator: N clients, each issuing one operation after another for a fixed
//! time, with latencies recorded after a warm-up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Operations acknowledged inside the measured window (completed in it).
    pub ops: u64,
    /// Operations that failed inside the measured window.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub window: Duration,
    /// Latency of every acknowledged operation in the window, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// CPU time (user + system) the metered server processes used inside the window.
    pub server_cpu: Option<Duration>,
}

impl LoadResult {
    /// Acknowledged operations per second.
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.window.as_secs_f64()
    }

    /// Latency percentile `p` (0–100) in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    /// Server CPU milliseconds per acknowledged operation, when the servers were metered.
    pub fn cpu_ms_per_op(&self) -> Option<f64> {
        self.server_cpu.map(|cpu| cpu.as_secs_f64() * 1000.0 / self.ops as f64)
    }
}

/// CPU time (user + system, all threads) used so far by the processes `pids`, from
/// `/proc/<pid>/stat`. Unlike wall-clock throughput, it does not count time the hypervisor
/// stole from the machine, so it compares two systems steadily on a shared VM.
pub fn cpu_time(pids: &[u32]) -> anyhow::Result<Duration> {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(ticks > 0, "cannot read the clock tick rate");
    let mut total = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| anyhow::anyhow!("cannot read the CPU time of process {pid}: {e}"))?;
        // Fields after the command name (which may hold spaces) start after its closing ')';
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after it.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for index in [11, 12] {
            let value = fields.get(index).and_then(|f| f.parse::<u64>().ok());
            total += value.ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat format"))?;
        }
    }
    Ok(Duration::from_secs_f64(total as f64 / ticks as f64))
}

/// Run `clients` concurrent loops of `op(client, seq)` for `warmup + window`; operations that
/// complete inside the window count. Fails when none succeeded.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    window: Duration,
    op: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    closed_loop_metered(&[], clients, warmup, window, op).await
}

/// [`closed_loop`], also measuring the CPU time the server processes `pids` use inside the
/// window ([`LoadResult::server_cpu`]; not measured when `pids` is empty).
pub async fn closed_loop_metered<F, Fut>(
    pids: &[u32],
    clients: usize,
    warmup: Duration,
    window: Duration,
    op: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut part = LoadResult::default();
            let mut seq = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let result = op(client, seq).await;
                seq += 1;
                let done = Instant::now();
                if done < measure_from || done > end {
                    continue;
                }
                match result {
                    Ok(()) => {
                        part.ops += 1;
                        part.latencies_us.push((done - began).as_micros() as u64);
                    }
                    Err(e) => {
                        part.errors += 1;
                        part.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            part
        }));
    }
    let meter = (!pids.is_empty()).then(|| {
        let pids = pids.to_vec();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let before = cpu_time(&pids)?;
            tokio::time::sleep_until(end.into()).await;
            Ok::<_, anyhow::Error>(cpu_time(&pids)?.saturating_sub(before))
        })
    });
    let mut total = LoadResult { window, ..LoadResult::default() };
    if let Some(meter) = meter {
        total.server_cpu = Some(meter.await??);
    }
    for task in tasks {
        let part = task.await?;
        total.ops += part.ops;
        total.errors += part.errors;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        total.latencies_us.extend(part.latencies_us);
    }
    total.latencies_us.sort_unstable();
    if total.ops == 0 {
        anyhow::bail!(
            "no operation succeeded in {window:?} with {clients} clients: {}",
            total.first_error.as_deref().unwrap_or("no operation completed inside the window")
        );
    }
    Ok(total)
}
