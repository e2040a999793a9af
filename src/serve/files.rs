//! The process's open-file limit against the connection limits: every
//! connection and handshake holds a socket, and a server that runs out of
//! descriptors can no longer accept anyone, nor answer `/healthz`.

use crate::settings::ServeSettings;

/// Descriptors kept for everything that is not a client: the listener,
/// bridges, Redis, logs, the runtime's own.
const RESERVED: u64 = 256;

/// Raises the soft open-file limit to the hard one, then makes the
/// connection limits fit in it: `max_connections` is lowered (with a
/// message saying so) when hub, echo and handshake places together would
/// need more descriptors than the process may open.
pub fn fit_connection_limits(settings: &mut ServeSettings) -> anyhow::Result<()> {
    let limit = crate::rlimit::raise_nofile();
    if limit == 0 || limit == u64::MAX {
        return Ok(());
    }
    let others = (settings.max_echo_connections + settings.max_handshakes) as u64 + RESERVED;
    let available = limit.saturating_sub(others);
    anyhow::ensure!(
        available > 0,
        "the open-file limit ({limit}) leaves no room for hub connections next to \
         max_echo_connections ({}) and max_handshakes ({}); raise `ulimit -n` or lower those",
        settings.max_echo_connections,
        settings.max_handshakes
    );
    if settings.max_connections as u64 > available {
        eprintln!(
            "switchboard: max_connections lowered from {} to {available}: the open-file limit is \
             {limit}, and echo connections, handshakes and the server itself need {others}",
            settings.max_connections
        );
        settings.max_connections = available as usize;
    }
    Ok(())
}
