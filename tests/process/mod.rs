//! Real processes for the integration tests: `switchboard serve` on a
//! loopback port, Python helper servers, and signals sent by PID.
//!
//! Every process is killed (by its PID) when its handle is dropped, also when
//! a test fails; a stopped (SIGSTOP) server is resumed first.
#![allow(dead_code)]

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a SIGTERM'd server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `switchboard` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of `.venv` (made by `scripts/setup`), which has `websockets`.
pub fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup first",
        python.display()
    );
    python
}

/// A loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Sends a signal (`"STOP"`, `"CONT"`, `"TERM"`, …) to one process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name} {pid} failed");
}

/// A child process whose stderr (and stdout, unless taken) is collected in
/// the background; killed by PID when dropped.
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every line printed so far, with whether it came on stdout.
    log: Arc<Mutex<Vec<(bool, String)>>>,
    lines: mpsc::Receiver<String>,
    /// The threads collecting stdout and stderr; they end at EOF.
    readers: Vec<std::thread::JoinHandle<()>>,
    stopped: bool,
}

impl Process {
    /// Starts `command` with stdin closed; stdout and stderr are collected.
    pub fn spawn(command: Command) -> Process {
        Process::start(command, Stdio::null())
    }

    /// Starts `command` with a pipe on stdin (see [`Process::write_line`]).
    pub fn spawn_with_stdin(command: Command) -> Process {
        Process::start(command, Stdio::piped())
    }

    fn start(mut command: Command, stdin: Stdio) -> Process {
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            collect(stdout, true, Arc::clone(&log), sender.clone()),
            collect(stderr, false, Arc::clone(&log), sender),
        ];
        Process {
            readers,
            stdin: child.stdin.take(),
            child,
            log,
            lines,
            stopped: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far, stdout and stderr mixed.
    pub fn log(&self) -> String {
        self.lines_where(|_| true)
    }

    /// What the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.lines_where(|on_stdout| on_stdout)
    }

    /// What the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.lines_where(|on_stdout| !on_stdout)
    }

    fn lines_where(&self, wanted: impl Fn(bool) -> bool) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|(on_stdout, _)| wanted(*on_stdout))
            .map(|(_, line)| format!("{line}\n"))
            .collect()
    }

    /// Waits for a printed line containing `needle`; returns that line.
    pub fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no line with {needle:?} within {within:?}; output so far:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Writes one line to the process's stdin.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped and open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit; kills it and panics after `within`.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Everything it printed is in the log once its pipes are at EOF.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("still running after {within:?}; output:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it does not exit within `STOP_TIMEOUT`.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        None
    }

    /// SIGSTOP; the returned guard sends SIGCONT when dropped.
    pub fn freeze(&mut self) -> Frozen<'_> {
        signal(self.pid(), "STOP");
        self.stopped = true;
        Frozen { process: self }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.stopped {
                let _ = Command::new("kill")
                    .args(["-s", "CONT", &self.pid().to_string()])
                    .status();
            }
            self.kill();
        }
    }
}

/// A frozen process, resumed (SIGCONT) when this is dropped.
pub struct Frozen<'a> {
    process: &'a mut Process,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "CONT", &self.process.pid().to_string()])
            .status();
        self.process.stopped = false;
    }
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    on_stdout: bool,
    log: Arc<Mutex<Vec<(bool, String)>>>,
    lines: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((on_stdout, line.clone()));
            let _ = lines.send(line);
        }
    })
}

/// `switchboard serve` on 127.0.0.1.
pub struct Serve {
    pub process: Process,
    pub port: u16,
    /// Started with --tls-cert: https and wss.
    pub secure: bool,
}

impl Serve {
    /// Starts a server on a port of the system's choosing.
    pub fn start(args: &[&str]) -> Serve {
        Serve::start_on(0, args)
    }

    /// Starts a server on `port` (0: any), with extra `serve` flags.
    pub fn start_on(port: u16, args: &[&str]) -> Serve {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SWITCHBOARD_CONFIG");
        let process = Process::spawn(command);
        // `listening on http://…`, or `https://…` with --tls-cert.
        let line = process.wait_for_line("switchboard listening on http", START_TIMEOUT);
        let secure = line.contains("listening on https://");
        let port = line
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Serve {
            process,
            port,
            secure,
        }
    }

    /// `ws` or, when the server speaks TLS, `wss`.
    fn scheme(&self) -> &'static str {
        if self.secure {
            "wss"
        } else {
            "ws"
        }
    }

    /// The hub endpoint.
    pub fn ws(&self) -> String {
        format!("{}://127.0.0.1:{}/ws", self.scheme(), self.port)
    }

    /// The raw echo endpoint.
    pub fn echo(&self) -> String {
        format!("{}://127.0.0.1:{}/echo", self.scheme(), self.port)
    }
}
