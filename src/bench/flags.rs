//! The flags every scenario has: where connections go and come from
//! ([`TargetArgs`]), and durations in seconds.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

/// Where connections go and where they come from.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The server, e.g. ws://127.0.0.1:9080/echo.
    #[arg(long)]
    pub url: String,
    /// Source addresses to spread connections over (comma-separated, e.g.
    /// 127.0.0.1,127.0.0.2); each gives its own range of ports.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub sources: Vec<IpAddr>,
}

/// Parses a duration in seconds from the command line.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if !(0.0..=3600.0).contains(&value) {
        return Err(format!("{value} s is out of range (0 to 3600)"));
    }
    Ok(Duration::from_secs_f64(value))
}
