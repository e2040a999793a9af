//! The Prometheus text exposition of `/metrics`.

use std::fmt::Write as _;

use std::sync::atomic::Ordering;

use switchboard_hub::Metrics;

use super::backend::{Backend, OUTCOMES};

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
    render_proxies(app, &mut out);
    if let Some(socket_io) = &app.socket_io {
        // Its connections are the hub's (counted above); this says how many
        // of them poll, and how many sessions await their CONNECT.
        let sessions = socket_io.polling.len();
        let _ = writeln!(
            out,
            "# HELP switchboard_socketio_polling_sessions Socket.IO long-polling sessions open\n\
             # TYPE switchboard_socketio_polling_sessions gauge\n\
             switchboard_socketio_polling_sessions {sessions}"
        );
    }
    app.bridges.render_metrics(&mut out);
    if let Some(cluster) = &app.cluster {
        cluster.render_metrics(&app.hub, &mut out);
    }
    out
}

/// The proxies' requests by kind (`connect`, `event`) and outcome, with
/// their latency; `busy` counts events refused before any request.
fn render_proxies(app: &App, out: &mut String) {
    let backends: Vec<(&str, &Backend)> = [
        ("connect", app.connect_proxy.as_ref().map(|p| &p.backend)),
        ("event", app.event_proxy.as_ref().map(|p| &p.backend)),
    ]
    .into_iter()
    .filter_map(|(kind, backend)| Some((kind, backend?)))
    .collect();
    if backends.is_empty() {
        return;
    }
    let name = "switchboard_proxy_requests_total";
    let _ = writeln!(
        out,
        "# HELP {name} Proxy requests by kind and outcome\n# TYPE {name} counter"
    );
    for (kind, backend) in &backends {
        for (outcome, counter) in OUTCOMES.iter().zip(&backend.counters.outcomes) {
            let value = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}{{kind=\"{kind}\",outcome=\"{outcome}\"}} {value}"
            );
        }
        if *kind == "event" {
            let busy = Metrics::get(&app.hub.metrics().forward_busy);
            let _ = writeln!(out, "{name}{{kind=\"event\",outcome=\"busy\"}} {busy}");
        }
    }
    let name = "switchboard_proxy_request_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time proxy requests took\n# TYPE {name} summary"
    );
    for (kind, backend) in &backends {
        let counters = &backend.counters;
        let count: u64 = counters
            .outcomes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let seconds = counters.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{kind=\"{kind}\"}} {seconds}");
        let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {count}");
    }
    if let Some(proxy) = &app.event_proxy {
        let in_flight = proxy.in_flight(app.settings.proxy_max_in_flight);
        let skipped = Metrics::get(&app.hub.metrics().forward_emits_skipped);
        let _ = writeln!(
            out,
            "# HELP switchboard_proxy_in_flight Event proxy requests at the backend now\n\
             # TYPE switchboard_proxy_in_flight gauge\nswitchboard_proxy_in_flight {in_flight}\n\
             # HELP switchboard_proxy_emits_skipped_total Event proxy emit entries not delivered\n\
             # TYPE switchboard_proxy_emits_skipped_total counter\n\
             switchboard_proxy_emits_skipped_total {skipped}"
        );
    }
}
