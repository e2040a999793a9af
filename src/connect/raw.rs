//! Raw mode: any WebSocket server; lines are messages.

use std::time::Duration;

use switchboard_net::{CloseCode, ConnectOptions, Event, Message, Reader};
use tokio::io::AsyncBufReadExt;

use super::args::{parse_headers, tls_config, ConnectArgs};
use super::outcome::{Outcome, WaitCounter};
use super::output::Output;

pub async fn run(args: &ConnectArgs, output: &Output, interactive: bool) -> Outcome {
    let mut options = ConnectOptions::default();
    match parse_headers(&args.headers) {
        Ok(headers) => options.headers = headers,
        Err(error) => {
            output.error(&error.to_string());
            return Outcome::ConnectFailed;
        }
    }
    options.protocols = args.protocols.clone();
    match tls_config(args.ca.as_ref()) {
        Ok(tls) => options.tls = tls,
        Err(error) => {
            output.error(&error.to_string());
            return Outcome::ConnectFailed;
        }
    }
    let (socket, response) = match switchboard_net::connect_with(&args.url, options).await {
        Ok(connected) => connected,
        Err(error) => {
            output.error(&format!("cannot connect to {}: {error}", args.url));
            return Outcome::ConnectFailed;
        }
    };
    if interactive {
        let protocol = response
            .protocol
            .map(|p| format!(" (subprotocol {p})"))
            .unwrap_or_default();
        output.note(&format!(
            "connected to {}{protocol}; type lines to send, Ctrl-D to close",
            args.url
        ));
    }
    let (mut reader, writer) = socket.split();
    let mut counter = WaitCounter::new(args.wait);
    if counter.done_immediately() {
        let _ = writer.close(CloseCode::NORMAL, "").await;
        return Outcome::Done;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let message = if args.send_binary {
                        Message::binary(line.into_bytes())
                    } else {
                        Message::text(line)
                    };
                    if writer.send(message).await.is_err() {
                        output.error("the connection is closed");
                        return Outcome::ServerClosed;
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    if !counter.is_waiting() {
                        let _ = writer.close(CloseCode::NORMAL, "").await;
                        drain(&mut reader).await;
                        return Outcome::Done;
                    }
                }
            },
            event = reader.next_event() => match event {
                Ok(Event::Message(Message::Text(text))) => {
                    output.text(&text);
                    if counter.count() {
                        let _ = writer.close(CloseCode::NORMAL, "").await;
                        drain(&mut reader).await;
                        return Outcome::Done;
                    }
                }
                Ok(Event::Message(Message::Binary(data))) => {
                    output.binary(&data);
                    if counter.count() {
                        let _ = writer.close(CloseCode::NORMAL, "").await;
                        drain(&mut reader).await;
                        return Outcome::Done;
                    }
                }
                Ok(Event::Ping(_) | Event::Pong(_) | Event::Fragment(_)) => {}
                Ok(Event::Closed(info)) => {
                    let reason = info.received.as_ref().map(|frame| frame.reason.clone()).unwrap_or_default();
                    output.note(&format!("closed by the server: {} {reason}", info.code()));
                    return if counter.is_waiting() { Outcome::ServerClosed } else { Outcome::Done };
                }
                Err(error) => {
                    output.error(&format!("connection lost: {error}"));
                    return Outcome::ServerClosed;
                }
            }
        }
    }
}

/// Waits (briefly) for the server's close frame after ours.
async fn drain(reader: &mut Reader) {
    let wait = async { while reader.next_event().await.is_ok() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
}
