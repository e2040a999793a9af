//! Printing: coloured and readable on a terminal, plain when piped.

use std::io::Write;

use base64::Engine;

use super::args::BinaryFormat;

/// Where and how incoming messages and notes are printed.
pub struct Output {
    color: bool,
    pub json: bool,
    binary: BinaryFormat,
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const MAGENTA: &str = "\x1b[35m";
const RESET: &str = "\x1b[0m";

impl Output {
    pub fn new(color: bool, json: bool, binary: BinaryFormat) -> Output {
        Output {
            color,
            json,
            binary,
        }
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    /// A line of data on stdout.
    pub fn line(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    /// A received text message (raw mode).
    pub fn text(&self, text: &str) {
        if self.color {
            self.line(&format!("{} {text}", self.paint(GREEN, "<")));
        } else {
            self.line(text);
        }
    }

    /// A received binary message (raw mode).
    pub fn binary(&self, data: &[u8]) {
        let encoded = match self.binary {
            BinaryFormat::Hex => data.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            BinaryFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(data),
        };
        if self.color {
            self.line(&format!(
                "{} {}",
                self.paint(MAGENTA, "< [binary]"),
                encoded
            ));
        } else {
            self.line(&encoded);
        }
    }

    /// A status note (connected, closed, errors): stderr, so stdout stays data.
    pub fn note(&self, text: &str) {
        eprintln!("{}", self.paint(DIM, &format!("* {text}")));
    }

    /// An error note.
    pub fn error(&self, text: &str) {
        eprintln!("{}", self.paint(RED, &format!("! {text}")));
    }

    /// A chat-like line: `[room] name: text`.
    pub fn chat(&self, room: Option<&str>, who: &str, text: &str) {
        let room = room
            .map(|r| self.paint(CYAN, &format!("[{r}] ")))
            .unwrap_or_default();
        self.line(&format!("{room}{}: {text}", self.paint(BOLD, who)));
    }

    /// A labelled event line: `event data`.
    pub fn event(&self, label: &str, detail: &str) {
        self.line(&format!("{} {detail}", self.paint(CYAN, label)));
    }
}
