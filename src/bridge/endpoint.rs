//! The syntax of endpoints: `tcp://HOST:PORT` for ZeroMQ, with an optional
//! `@` (bind) or `>` (connect) prefix as in CZMQ, and `HOST:PORT` for OSC;
//! and the key an open endpoint is known by.

use super::kind::{Family, Kind};

/// Checks the syntax of an endpoint of this kind.
pub(crate) fn check(kind: Kind, endpoint: &str) -> Result<(), String> {
    match kind.family() {
        Family::Zmq => parse_endpoint(kind, endpoint).map(|_| ()),
        Family::Osc => check_address(endpoint),
    }
}

/// Whether a socket binds its endpoint or connects to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Bind,
    Connect,
}

fn default_mode(kind: Kind) -> Mode {
    match kind {
        Kind::ZmqSub => Mode::Connect,
        _ => Mode::Bind,
    }
}

/// Splits the `@`/`>` prefix off and checks the address.
pub(crate) fn parse_endpoint(kind: Kind, endpoint: &str) -> Result<(Mode, &str), String> {
    let endpoint = endpoint.trim();
    let (mode, address) = match (endpoint.strip_prefix('@'), endpoint.strip_prefix('>')) {
        (Some(address), _) => (Mode::Bind, address),
        (_, Some(address)) => (Mode::Connect, address),
        _ => (default_mode(kind), endpoint),
    };
    if !address.starts_with("tcp://") {
        return Err(format!(
            "a ZeroMQ endpoint is tcp://HOST:PORT, optionally after @ (bind) or > (connect), not {endpoint:?}"
        ));
    }
    address
        .parse::<zeromq::Endpoint>()
        .map_err(|error| format!("{endpoint:?}: {error}"))?;
    Ok((mode, address))
}

/// The registry key of an endpoint: the address, prefixed only when its
/// mode is not the kind's default.
pub(crate) fn key(kind: Kind, endpoint: &str) -> String {
    if kind.family() != Family::Zmq {
        return endpoint.trim().to_owned();
    }
    match parse_endpoint(kind, endpoint) {
        Ok((mode, address)) if mode == default_mode(kind) => address.to_owned(),
        Ok((Mode::Bind, address)) => format!("@{address}"),
        Ok((Mode::Connect, address)) => format!(">{address}"),
        Err(_) => endpoint.trim().to_owned(),
    }
}

/// Checks `HOST:PORT`.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    let address = address.trim();
    match address.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok() =>
        {
            Ok(())
        }
        _ => Err(format!("an OSC address is HOST:PORT, not {address:?}")),
    }
}

/// Whether a key asks for any free port (`:0`): such an endpoint is a new
/// one each time it is opened.
pub(crate) fn any_port(key: &str) -> bool {
    key.ends_with(":0")
}

/// The key of an open endpoint with its address replaced by the one it
/// bound or connected to (the port resolved), its `@`/`>` prefix kept.
pub(crate) fn resolved_key(key: &str, local: &str) -> String {
    match key.chars().next() {
        Some(prefix @ ('@' | '>')) => format!("{prefix}{local}"),
        _ => local.to_owned(),
    }
}
