//! What the scenarios measure with: a latency histogram shared by many
//! tasks, the process's own CPU time, the open-files limit, and the JSON
//! line each scenario prints.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies are recorded in nanoseconds, from 1 µs to 10 minutes, with
/// three significant digits (an error of at most 0.1 %).
const LOWEST_NS: u64 = 1_000;
const HIGHEST_NS: u64 = 600_000_000_000;

/// Samples a task keeps before taking the shared histogram's lock.
const BATCH: usize = 512;

/// A latency histogram shared by every task of a scenario.
#[derive(Clone)]
pub struct Latencies {
    shared: Arc<Mutex<Histogram<u64>>>,
}

impl Latencies {
    pub fn new() -> Latencies {
        let histogram = Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3)
            .expect("constant histogram bounds are valid");
        Latencies {
            shared: Arc::new(Mutex::new(histogram)),
        }
    }

    /// A recorder for one task: it batches samples so that the lock is
    /// taken once per [`BATCH`] of them.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: Arc::clone(&self.shared),
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Percentiles and extremes in microseconds, as a JSON object.
    pub fn summary(&self) -> Value {
        let histogram = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        if histogram.is_empty() {
            return json!({ "count": 0 });
        }
        json!({
            "count": histogram.len(),
            "p50": us(histogram.value_at_quantile(0.50)),
            "p90": us(histogram.value_at_quantile(0.90)),
            "p99": us(histogram.value_at_quantile(0.99)),
            "p999": us(histogram.value_at_quantile(0.999)),
            "max": us(histogram.max()),
            "mean": (histogram.mean() / 100.0).round() / 10.0,
        })
    }
}

/// One task's handle on a [`Latencies`]; flushes its batch when dropped.
pub struct Recorder {
    shared: Arc<Mutex<Histogram<u64>>>,
    batch: Vec<u64>,
}

impl Recorder {
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.batch.push(ns.clamp(LOWEST_NS, HIGHEST_NS));
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut histogram = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        for ns in self.batch.drain(..) {
            histogram.saturating_record(ns);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// User plus system CPU time of this process so far (all its threads).
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let timeval = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// The server process to watch, if the caller named it (`--server-pid`).
static SERVER_PID: OnceLock<u32> = OnceLock::new();

/// Makes every [`CpuSnapshot`] read the CPU time of process `pid` too.
pub fn watch_server(pid: u32) {
    let _ = SERVER_PID.set(pid);
}

/// CPU time used so far by the generator and, if watched, by the server.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    client: Duration,
    server: Option<Duration>,
}

impl CpuSnapshot {
    pub fn take() -> CpuSnapshot {
        CpuSnapshot {
            client: cpu_time(),
            server: SERVER_PID.get().and_then(|pid| process_cpu_time(*pid)),
        }
    }
}

/// User plus system CPU time of another process, from `/proc/PID/stat`.
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

/// CPU used between two snapshots, as JSON: seconds, and the share of one
/// core over `wall` (1.0 = one core busy the whole time), for the generator
/// and, if watched, the server. A generator share near 1.0 means the
/// generator, not the server, set the pace.
pub fn cpu_json(before: CpuSnapshot, after: CpuSnapshot, wall: Duration) -> Value {
    let wall = wall.as_secs_f64();
    let share = |used: f64| if wall > 0.0 { round3(used / wall) } else { 0.0 };
    let client = after.client.saturating_sub(before.client).as_secs_f64();
    let mut line = json!({
        "client_cpu_s": round3(client),
        "client_cpu_util": share(client),
    });
    if let (Some(before), Some(after)) = (before.server, after.server) {
        let server = after.saturating_sub(before).as_secs_f64();
        line = merge(
            line,
            json!({ "server_cpu_s": round3(server), "server_cpu_util": share(server) }),
        );
    }
    line
}

/// Rounds to three decimals, for readable JSON.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Rounds to one decimal.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Adds the fields of `extra` (an object) to `line` (an object).
pub fn merge(mut line: Value, extra: Value) -> Value {
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    line
}

/// Adds the CPU time the whole process used so far (connecting and
/// closing included), for a script that checks what else ran meanwhile.
pub fn with_total_cpu(line: Value) -> Value {
    let total = round3(cpu_time().as_secs_f64());
    merge(line, json!({ "client_cpu_total_s": total }))
}

/// Prints one scenario's result as a single JSON line on stdout, at once.
pub fn emit(line: &Value) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Counts errors by message, keeping a few examples for the report.
#[derive(Default)]
pub struct Errors {
    inner: Mutex<(u64, Vec<String>)>,
}

impl Errors {
    pub fn add(&self, error: impl std::fmt::Display) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 += 1;
        if inner.1.len() < 3 {
            let text = error.to_string();
            if !inner.1.contains(&text) {
                inner.1.push(text);
            }
        }
    }

    /// `{"errors": N, "error_examples": [...]}`.
    pub fn json(&self) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        json!({ "errors": inner.0, "error_examples": inner.1 })
    }
}
