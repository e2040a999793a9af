//! The Prometheus text exposition of `/metrics`.

use std::fmt::Write as _;

use switchboard_hub::Metrics;

use super::app::App;

/// Renders every gauge and counter of the server.
pub fn render(app: &App) -> String {
    let stats = app.hub.stats();
    let metrics = app.hub.metrics();
    let mut out = String::with_capacity(2048);
    let gauges: [(&str, &str, u64); 8] = [
        (
            "switchboard_memory_budget_used_bytes",
            "Bytes of the memory budget held by partial messages and queued output",
            app.memory.used() as u64,
        ),
        (
            "switchboard_handshakes",
            "TCP connections in their handshake",
            app.handshakes.taken() as u64,
        ),
        (
            "switchboard_connections",
            "WebSocket connections in the hub",
            stats.connections as u64,
        ),
        (
            "switchboard_websockets",
            "WebSocket connections admitted, hub and echo",
            app.websockets() as u64,
        ),
        (
            "switchboard_rooms",
            "Rooms with at least one member",
            stats.rooms as u64,
        ),
        (
            "switchboard_subscriptions",
            "Address subscriptions",
            stats.subscriptions as u64,
        ),
        (
            "switchboard_queued_messages",
            "Messages waiting in outbound queues",
            stats.queued as u64,
        ),
        (
            "switchboard_max_queue_length",
            "Longest outbound queue",
            stats.max_queued as u64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let counters = [
        (
            "switchboard_connections_opened_total",
            "Connections that joined the hub",
            &metrics.connections_opened,
        ),
        (
            "switchboard_connections_closed_total",
            "Connections that left the hub",
            &metrics.connections_closed,
        ),
        (
            "switchboard_messages_in_total",
            "Messages received from clients",
            &metrics.messages_in,
        ),
        (
            "switchboard_bytes_in_total",
            "Payload bytes received from clients",
            &metrics.bytes_in,
        ),
        (
            "switchboard_messages_out_total",
            "Messages queued to clients",
            &metrics.messages_out,
        ),
        (
            "switchboard_bytes_out_total",
            "Frame bytes queued to clients",
            &metrics.bytes_out,
        ),
        (
            "switchboard_dropped_messages_total",
            "Messages dropped for slow consumers",
            &metrics.dropped,
        ),
        (
            "switchboard_slow_consumers_total",
            "Connections closed as slow consumers",
            &metrics.slow_consumers,
        ),
        (
            "switchboard_rate_limited_total",
            "Connections closed for exceeding their rate limit",
            &metrics.rate_limited,
        ),
        (
            "switchboard_errors_total",
            "Error events sent for bad input",
            &metrics.errors,
        ),
        (
            "switchboard_published_total",
            "Address messages published",
            &metrics.published,
        ),
    ];
    for (name, help, counter) in counters {
        let value = Metrics::get(counter);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    app.bridges.render_metrics(&mut out);
    if let Some(cluster) = &app.cluster {
        cluster.render_metrics(&app.hub, &mut out);
    }
    out
}
