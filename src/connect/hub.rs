//! Hub mode: the Switchboard protocol with chat-style commands.

use serde_json::{json, Value};
use switchboard_client::{Client, ClientOptions, Incoming, Reconnect, Status, To};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::args::{parse_headers, tls_config, ConnectArgs};
use super::outcome::{Outcome, WaitCounter};
use super::output::Output;

const HELP: &str = "commands: /join ROOM, /leave [ROOM], /to ID TEXT, /all TEXT, /name NAME, /users, \
/history [AFTER], /sub PATTERN, /unsub PATTERN, /pub PATH [VALUE…], /send JSON, /quit; other lines go to the current room";

pub async fn run(args: &ConnectArgs, output: &Output, interactive: bool) -> Outcome {
    if !args.protocols.is_empty() {
        output.error("-s/--subprotocol is for raw mode (--raw); hub mode speaks switchboard.json");
        return Outcome::ConnectFailed;
    }
    let mut options = ClientOptions::default();
    options.name = args.name.clone();
    match parse_headers(&args.headers) {
        Ok(headers) => options.headers = headers,
        Err(error) => {
            output.error(&error.to_string());
            return Outcome::ConnectFailed;
        }
    }
    match tls_config(args.ca.as_ref()) {
        Ok(tls) => options.tls = tls,
        Err(error) => {
            output.error(&error.to_string());
            return Outcome::ConnectFailed;
        }
    }
    // A script wants to know that the server went away; a person at a
    // terminal wants the client to come back by itself.
    let mut reconnect = Reconnect::default();
    if !interactive {
        reconnect.attempts = 0;
    }
    if let Some(attempts) = args.reconnect {
        reconnect.attempts = attempts;
    }
    options.reconnect = reconnect;
    options.fallback_urls = args.fallback.clone();
    options.acks = args.acks;
    let client = Client::start(&args.url, options);
    // Every event, in order: a stream that fell behind would skip some, and
    // a message of a room with history must reach the output exactly once.
    let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
    client.on_any(move |incoming| {
        let _ = sender.send(incoming.clone());
    });
    if !wait_connected(&client).await {
        let reason = why_not_connected(&mut events)
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        output.error(&format!("cannot connect to {}{reason}", args.url));
        return Outcome::ConnectFailed;
    }
    let mut room = args.room.clone();
    if let Some(room) = &room {
        let _ = client.join(room).await;
    }
    if interactive {
        output.note(&format!(
            "connected as {}; {HELP}",
            client.id().unwrap_or_default()
        ));
    }
    let mut counter = WaitCounter::new(args.wait);
    if counter.done_immediately() {
        client.close().await;
        return Outcome::Done;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if !command(&client, &line, &mut room, output).await {
                        client.close().await;
                        return Outcome::Done;
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    if !counter.is_waiting() {
                        client.close().await;
                        return Outcome::Done;
                    }
                }
            },
            event = events.recv() => match event {
                Some(incoming) => {
                    if incoming.event == "reconnection_failed" || (client.status() == Status::Gone && incoming.event != "end") {
                        output.error("the connection is closed");
                        return if counter.is_waiting() { Outcome::ServerClosed } else { Outcome::Done };
                    }
                    if show(&incoming, output) && counter.count() {
                        client.close().await;
                        return Outcome::Done;
                    }
                }
                None => return Outcome::ServerClosed,
            }
        }
    }
}

async fn wait_connected(client: &Client) -> bool {
    loop {
        match client.status() {
            Status::Connected => return true,
            Status::Gone => return false,
            _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// The error of the last failed attempt to connect, from the client's events.
fn why_not_connected(events: &mut UnboundedReceiver<Incoming>) -> Option<String> {
    let mut error = None;
    while let Ok(incoming) = events.try_recv() {
        if let Some(text) = incoming.data.get("error").and_then(Value::as_str) {
            error = Some(text.to_owned());
        }
    }
    error
}

/// Runs one input line; returns false on `/quit`.
async fn command(client: &Client, line: &str, room: &mut Option<String>, output: &Output) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return true;
    }
    let (verb, rest) = match line.strip_prefix('/') {
        Some(command) => command.split_once(' ').unwrap_or((command, "")),
        None => ("", line),
    };
    let rest = rest.trim();
    let result = match verb {
        "" => match room {
            Some(room) => {
                client
                    .emit("chat", &json!({ "text": rest }), To::Room(room.clone()))
                    .await
            }
            None => {
                output.error("join a room first: /join lobby");
                Ok(())
            }
        },
        "join" if !rest.is_empty() => {
            *room = Some(rest.to_owned());
            client.join(rest).await
        }
        "leave" => {
            let target = if rest.is_empty() {
                room.take()
            } else {
                Some(rest.to_owned())
            };
            match target {
                Some(target) => client.leave(&target).await,
                None => Ok(()),
            }
        }
        "to" => match rest.split_once(' ') {
            Some((id, text)) => {
                client
                    .emit(
                        "chat",
                        &json!({ "text": text }),
                        To::Connection(id.to_owned()),
                    )
                    .await
            }
            None => {
                output.error("usage: /to ID TEXT");
                Ok(())
            }
        },
        "all" => {
            client
                .emit("chat", &json!({ "text": rest }), To::Everyone)
                .await
        }
        "name" if !rest.is_empty() => client.rename(rest).await,
        "users" => match client.users(room.as_deref()).await {
            Ok(users) if output.json => {
                output.line(&users.to_string());
                Ok(())
            }
            Ok(users) => {
                output.event("users", &user_names(&users));
                Ok(())
            }
            Err(error) => {
                output.error(&error.to_string());
                Ok(())
            }
        },
        "history" => match (
            room.as_deref(),
            rest.parse::<u64>()
                .or_else(|_| rest.is_empty().then_some(0).ok_or(())),
        ) {
            (Some(room), Ok(after)) => match client.history(room, after, 100).await {
                Ok(page) => {
                    for message in page["messages"].as_array().into_iter().flatten() {
                        output.line(&message.to_string());
                    }
                    output.note(&format!(
                        "history of {room}: epoch {}, offsets {} to {}",
                        page["epoch"].as_str().unwrap_or("?"),
                        page["oldest"],
                        page["offset"]
                    ));
                    Ok(())
                }
                Err(error) => Err(error),
            },
            (None, _) => {
                output.error("join a room first: /join lobby");
                Ok(())
            }
            (_, Err(())) => {
                output.error("usage: /history [AFTER]");
                Ok(())
            }
        },
        "sub" if !rest.is_empty() => client.subscribe(rest).await,
        "unsub" if !rest.is_empty() => client.unsubscribe(rest).await,
        "pub" if !rest.is_empty() => {
            let mut parts = rest.split_whitespace();
            let path = parts.next().unwrap_or_default();
            let values = parts
                .map(|v| serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())))
                .collect();
            client.publish(path, values).await
        }
        "send" => match serde_json::from_str::<Value>(rest) {
            Ok(Value::Object(message)) => {
                let event = message
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("message")
                    .to_owned();
                let data = message.get("data").cloned().unwrap_or(Value::Null);
                let to = if let Some(room) = message.get("room").and_then(Value::as_str) {
                    To::Room(room.to_owned())
                } else if let Some(id) = message.get("to").and_then(Value::as_str) {
                    To::Connection(id.to_owned())
                } else if message.get("broadcast") == Some(&Value::Bool(true)) {
                    To::Everyone
                } else {
                    To::Server
                };
                client.emit(&event, &data, to).await
            }
            _ => {
                output.error("usage: /send {\"event\":…,\"data\":…}");
                Ok(())
            }
        },
        "quit" | "exit" => return false,
        "help" => {
            output.note(HELP);
            Ok(())
        }
        _ => {
            output.error(&format!("unknown command /{verb}; {HELP}"));
            Ok(())
        }
    };
    if let Err(error) = result {
        output.error(&error.to_string());
    }
    true
}

/// Prints an incoming event; returns whether it counts for `--wait`.
fn show(incoming: &Incoming, output: &Output) -> bool {
    let counts = !matches!(
        incoming.event.as_str(),
        "ready" | "userlist" | "reconnecting" | "end" | "recovered" | "recovery_failed"
    );
    match incoming.event.as_str() {
        "recovered" => output.note(&format!(
            "back in {}: {} missed messages received",
            incoming.data["room"].as_str().unwrap_or("?"),
            incoming.data["replayed"]
        )),
        "recovery_failed" => output.error(&format!(
            "{}: history no longer reaches back; messages were missed (/history shows what is kept)",
            incoming.data["room"].as_str().unwrap_or("?")
        )),
        _ => {}
    }
    if output.json {
        if !incoming.raw.is_null() {
            output.line(&incoming.raw.to_string());
        }
        return counts;
    }
    let who = incoming
        .from_name
        .clone()
        .or_else(|| incoming.from.clone())
        .unwrap_or_else(|| "server".into());
    match incoming.event.as_str() {
        "ready" => output.note(&format!(
            "ready: id {}",
            incoming.data["id"].as_str().unwrap_or("?")
        )),
        "userlist" => output.note(&format!(
            "users in {}: {}",
            incoming.room.as_deref().unwrap_or("?"),
            user_names(&incoming.data)
        )),
        "reconnecting" => output.note(&format!(
            "reconnecting (attempt {}){}",
            incoming.data["attempt"],
            incoming.data["error"]
                .as_str()
                .map(|error| format!("; {error}"))
                .unwrap_or_default()
        )),
        "end" => output.note("the server is shutting down"),
        "error" => output.error(&format!(
            "{}: {}",
            incoming.data["code"].as_str().unwrap_or("error"),
            incoming.data["message"].as_str().unwrap_or_default()
        )),
        "address" => output.event(
            incoming.path.as_deref().unwrap_or("/"),
            &Value::Array(incoming.values.clone()).to_string(),
        ),
        // Without a room it is a direct message or a broadcast: the protocol
        // does not say which, so neither is claimed.
        "chat" if incoming.data.get("text").is_some_and(Value::is_string) => output.chat(
            incoming
                .room
                .as_deref()
                .or(incoming.raw.get("to").map(|_| "dm"))
                .or(incoming.raw.get("broadcast").map(|_| "all")),
            &who,
            incoming.data["text"].as_str().unwrap_or_default(),
        ),
        event => output.event(event, &format!("{who} {}", incoming.data)),
    }
    counts
}

/// `alice, bob (2)`: names (or ids, for the unnamed) in alphabetical order,
/// not the server's id order, so that a person finds them easily.
fn user_names(users: &Value) -> String {
    let mut names: Vec<String> = users
        .as_array()
        .into_iter()
        .flatten()
        .map(|user| {
            user["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| user["id"].as_str().unwrap_or("?").to_owned())
        })
        .collect();
    names.sort_unstable();
    format!("{} ({})", names.join(", "), names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_sorted_and_fall_back_to_ids() {
        let users = json!([
            {"id": "b2", "name": "zoe"},
            {"id": "a1", "name": null},
            {"id": "c3", "name": "alice"},
        ]);
        assert_eq!(user_names(&users), "a1, alice, zoe (3)");
        assert_eq!(user_names(&json!([])), " (0)");
    }
}
