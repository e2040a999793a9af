//! `switchboard connect` driven as a user would: piped (scripting mode)
//! against our server's `/echo` and `/ws` and against Python `websockets`
//! servers, over `wss://` with `--ca`, and interactively in a terminal
//! (tmux).

#[path = "../crates/switchboard-net/tests/common/pki.rs"]
mod pki;
mod process;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use process::{binary, free_port, python, root, Process, Serve};

/// The longest any one `connect` run may take.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long to wait for an expected line or screen.
const WITHIN: Duration = Duration::from_secs(10);

/// A finished `switchboard connect`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `switchboard connect ARGS` with `input` on stdin (then end of input).
fn connect(args: &[&str], input: &str) -> Run {
    let mut command = Command::new(binary());
    command.arg("connect").args(args);
    let started = Instant::now();
    let mut process = Process::spawn_with_stdin(command);
    for line in input.lines() {
        process.write_line(line);
    }
    process.close_stdin();
    let status = process.wait(RUN_LIMIT);
    Run {
        code: status.code(),
        stdout: process.stdout(),
        stderr: process.stderr(),
        elapsed: started.elapsed(),
    }
}

/// Starts `switchboard connect ARGS` with stdin left open, to feed it later.
fn connect_in_background(args: &[&str]) -> Process {
    let mut command = Command::new(binary());
    command.arg("connect").args(args);
    Process::spawn_with_stdin(command)
}

/// A Python helper server from `tests/`, started on `port`; waits until it
/// prints that it is listening.
fn python_server(script: &str, port: Option<u16>) -> (Process, u16) {
    let mut command = Command::new(python());
    command.arg(root().join(script));
    if let Some(port) = port {
        command.arg(port.to_string());
    }
    let process = Process::spawn(command);
    let line = process.wait_for_line("listening on 127.0.0.1:", WITHIN);
    let port = line
        .rsplit(':')
        .next()
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (process, port)
}

/// Python `websockets`' echo server (tests/interop).
fn python_echo_server() -> (Process, String) {
    let (process, port) = python_server("tests/interop/py_echo_server.py", Some(free_port()));
    (process, format!("ws://127.0.0.1:{port}/"))
}

/// The server that reports the handshake it received (tests/cli).
fn inspect_server() -> (Process, u16) {
    python_server("tests/cli/inspect_server.py", None)
}

#[test]
fn raw_lines_and_binary_come_back_from_echo_servers() {
    let server = Serve::start(&[]);
    let (_python, python_url) = python_echo_server();
    for url in [server.echo(), python_url] {
        let run = connect(
            &[&url, "--wait", "2", "--timeout", "10"],
            "hello\nwörld, 🌍\n",
        );
        assert_eq!(run.code, Some(0), "{url}: {}", run.stderr);
        assert_eq!(run.stdout, "hello\nwörld, 🌍\n", "{url}");

        let args = [&url, "--send-binary", "--wait", "2", "--timeout", "10"];
        let run = connect(&args, "hi\n\u{e9}\n");
        assert_eq!(run.code, Some(0), "{url}: {}", run.stderr);
        assert_eq!(run.stdout, "6869\nc3a9\n", "{url}: hex is the default");

        let args = [&url, "--send-binary", "--binary", "base64", "--wait", "2"];
        let run = connect(&[&args[..], &["--timeout", "10"]].concat(), "hi\nhello\n");
        assert_eq!(run.code, Some(0), "{url}: {}", run.stderr);
        assert_eq!(run.stdout, "aGk=\naGVsbG8=\n", "{url}");
    }
}

#[test]
fn exit_status_says_how_the_run_ended() {
    let mut server = Serve::start(&[]);

    // 2: fewer messages than awaited before --timeout.
    let run = connect(&[&server.echo(), "--wait", "3", "--timeout", "1"], "one\n");
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, "one\n");
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(
        run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(5),
        "{:?}",
        run.elapsed
    );

    // 1: nothing listens there, in raw and in hub mode.
    let refused = format!("ws://127.0.0.1:{}", free_port());
    for url in [format!("{refused}/echo"), format!("{refused}/ws")] {
        let run = connect(&[&url, "--wait", "1", "--timeout", "10"], "");
        assert_eq!(run.code, Some(1), "{url}: {}", run.stderr);
        assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
        assert!(run.stderr.contains("refused"), "{}", run.stderr);
    }

    // 3: the server closes before the wait is over.
    let (_inspect, port) = inspect_server();
    let url = format!("ws://127.0.0.1:{port}/close");
    let run = connect(&[&url, "--wait", "1", "--timeout", "10"], "");
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("1000"), "{}", run.stderr);

    // 3 also when our server shuts down under a waiting client, raw or hub.
    let mut raw = connect_in_background(&[&server.echo(), "--wait", "5", "--timeout", "15"]);
    raw.write_line("are you there");
    raw.wait_for_line("are you there", WITHIN);
    // `end` is not one of the messages waited for.
    let mut hub = connect_in_background(&[&server.ws(), "--wait", "1", "--timeout", "15"]);
    hub.wait_for_line("ready", WITHIN);
    server.process.terminate();
    assert_eq!(raw.wait(WITHIN).code(), Some(3), "{}", raw.log());
    assert!(raw.stderr().contains("1001"), "{}", raw.log());
    assert_eq!(hub.wait(WITHIN).code(), Some(3), "{}", hub.log());
    assert!(hub.stderr().contains("shutting down"), "{}", hub.log());
}

#[test]
fn headers_and_subprotocols_reach_the_server() {
    let (_inspect, port) = inspect_server();
    let url = format!("ws://127.0.0.1:{port}/inspect?x=1");
    let args = [
        url.as_str(),
        "-H",
        "X-Test: yes",
        "--header",
        "Origin: http://example.test",
        "-s",
        "zzz",
        "--subprotocol",
        "chat.v2",
        "--wait",
        "1",
        "--timeout",
        "10",
    ];
    let run = connect(&args, "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
    assert_eq!(report["path"], "/inspect?x=1");
    assert_eq!(report["headers"]["x-test"], "yes");
    assert_eq!(report["headers"]["origin"], "http://example.test");
    assert_eq!(report["headers"]["sec-websocket-protocol"], "zzz, chat.v2");
    assert_eq!(report["subprotocol"], "chat.v2");

    // In hub mode the headers go along too: here, the token of a server
    // started with --ws-token.
    let server = Serve::start(&["--ws-token", "s3cret"]);
    let run = connect(&[&server.ws(), "--wait", "0", "--timeout", "10"], "");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    let bearer = ["-H", "Authorization: Bearer s3cret"];
    let run = connect(
        &[
            &server.ws(),
            "--wait",
            "0",
            "--timeout",
            "10",
            bearer[0],
            bearer[1],
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // Hub mode speaks JSON only; a subprotocol flag there is a mistake.
    let run = connect(&[&server.ws(), "-s", "chat.v2", "--wait", "0"], "");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("raw mode"), "{}", run.stderr);
}

#[test]
fn hub_mode_rooms_and_direct_messages_between_clients() {
    let server = Serve::start(&[]);
    let mut bob = connect_in_background(&[&server.ws(), "--name", "bob", "--wait", "3"]);
    let ready = bob.wait_for_line("ready: id ", WITHIN);
    let bob_id = ready.rsplit(' ').next().unwrap().to_owned();
    bob.write_line("/join lobby");
    bob.write_line("/users");
    bob.wait_for_line("users bob (1)", WITHIN);

    let script = format!("/join lobby\nhello bob\n/to {bob_id} psst\n/all hello everyone\n");
    let alice = connect(
        &[&server.ws(), "--name", "alice", "--timeout", "10"],
        &script,
    );
    assert_eq!(alice.code, Some(0), "{}", alice.stderr);

    assert!(bob.wait(WITHIN).success(), "{}", bob.log());
    assert_eq!(
        bob.stdout(),
        "users bob (1)\n\
         [lobby] alice: hello bob\n\
         [dm] alice: psst\n\
         [all] alice: hello everyone\n"
    );

    // --json prints the messages as received.
    let mut watcher =
        connect_in_background(&[&server.ws(), "--json", "--room", "news", "--wait", "1"]);
    watcher.wait_for_line("\"ready\"", WITHIN);
    watcher.write_line("/users");
    watcher.wait_for_line("[{\"id\"", WITHIN);
    let run = connect(
        &[&server.ws(), "--room", "news", "--timeout", "10"],
        "extra\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(watcher.wait(WITHIN).success(), "{}", watcher.log());
    let lines: Vec<Value> = watcher
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).expect("stdout is JSON lines"))
        .collect();
    assert_eq!(lines[0]["event"], "ready", "{lines:?}");
    // The answer to /users is the list itself (a userlist may come first).
    assert!(lines.iter().any(Value::is_array), "{lines:?}");
    let chat = lines
        .iter()
        .find(|message| message["event"] == "chat")
        .expect("a chat message");
    assert_eq!(chat["room"], "news");
    assert_eq!(chat["data"]["text"], "extra");
}

// ---- in a terminal ---------------------------------------------------------

/// A tmux server of its own (`-L`), killed (and its socket file removed)
/// when dropped.
struct Tmux {
    socket: String,
    socket_path: Option<String>,
}

impl Tmux {
    /// Starts a 200×50 session running `command` through `sh`; the shell
    /// prints `exited N` when the command ends and then lingers, so the
    /// screen can still be read.
    fn start(name: &str, command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: format!("switchboard-test-{}-{name}", std::process::id()),
            socket_path: None,
        };
        let shell = format!("{command}; echo \"exited $?\"; sleep 60");
        let status = tmux
            .command()
            .args([
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "-s",
                "main",
                &shell,
            ])
            .status()
            .expect("tmux is missing: run scripts/setup");
        assert!(status.success(), "tmux new-session failed");
        let path = tmux
            .command()
            .args(["display-message", "-p", "#{socket_path}"])
            .output()
            .expect("tmux display-message");
        tmux.socket_path = Some(String::from_utf8_lossy(&path.stdout).trim().to_owned());
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]);
        command.env("TERM", "xterm-256color");
        command
    }

    /// Types `keys` (tmux key names, e.g. `Enter`, `C-d`).
    fn send_keys(&self, keys: &[&str]) {
        let status = self
            .command()
            .args(["send-keys", "-t", "main"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?} failed");
    }

    /// Types a line and presses Enter.
    fn type_line(&self, line: &str) {
        self.send_keys(&["-l", line]);
        self.send_keys(&["Enter"]);
    }

    /// The visible text of the pane, wrapped lines joined.
    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-J", "-t", "main"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + WITHIN;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
        if let Some(path) = self.socket_path.as_deref().filter(|p| !p.is_empty()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn wss_with_ca_in_raw_and_hub_mode() {
    let pki = pki::Pki::new("connect test CA");
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let server = Serve::start(&["--tls-cert", cert, "--tls-key", key]);
    let ca = pki.ca.to_str().unwrap();
    let echo = server.echo();
    let run = connect(
        &[&echo, "--ca", ca, "--wait", "1", "--timeout", "10"],
        "sealed\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "sealed\n");

    let hub = server.ws();
    let run = connect(&[&hub, "--ca", ca, "--wait", "0", "--timeout", "10"], "");
    assert_eq!(run.code, Some(0), "hub mode: {}", run.stderr);

    // Without --ca the built-in roots do not trust a test CA: exit 1, and
    // the message says it is the certificate.
    for url in [&echo, &hub] {
        let run = connect(&[url, "--timeout", "10"], "");
        assert_eq!(run.code, Some(1), "{url}: {}", run.stderr);
        assert!(
            run.stderr.contains("TLS error") && run.stderr.contains("certificate"),
            "{url}: {}",
            run.stderr
        );
    }
    let run = connect(&[&echo, "--ca", "/nonexistent/ca.pem"], "");
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("--ca"), "{}", run.stderr);
}

#[test]
fn interactive_raw_mode_in_a_terminal() {
    let server = Serve::start(&[]);
    let tmux = Tmux::start("raw", &format!("'{}' connect {}", binary(), server.echo()));
    tmux.wait_for("type lines to send, Ctrl-D to close");
    tmux.type_line("hello terminal");
    tmux.wait_for("< hello terminal");
    tmux.send_keys(&["C-d"]);
    tmux.wait_for("exited 0");
}

#[test]
fn interactive_hub_mode_in_a_terminal() {
    let server = Serve::start(&[]);
    let command = format!("'{}' connect {} --name alice", binary(), server.ws());
    let tmux = Tmux::start("hub", &command);
    tmux.wait_for("* connected as ");
    tmux.type_line("/join lobby");
    tmux.wait_for("* users in lobby: alice (1)");
    tmux.type_line("hello from alice");
    tmux.wait_for("[lobby] alice: hello from alice");

    let bob = connect(
        &[&server.ws(), "--name", "bob", "--timeout", "10"],
        "/join lobby\nhi alice\n",
    );
    assert_eq!(bob.code, Some(0), "{}", bob.stderr);
    tmux.wait_for("[lobby] bob: hi alice");

    tmux.type_line("/quit");
    tmux.wait_for("exited 0");
}
