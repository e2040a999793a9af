//! `/api/bridges`: the bridge endpoints managed at run time (routes.rs
//! checks the key and the origin first).
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/bridges` | 200 `{"bridges": [...], "max_bridges": N}` |
//! | `GET /api/bridges/ID` | 200 the bridge, 404 |
//! | `POST /api/bridges` | 201 the bridge opened; 400, 409 |
//! | `DELETE /api/bridges` | 200 `{"closed": N}`, every one closed |
//! | `DELETE /api/bridges/ID` | 200 `{"closed": the bridge}`, 404 |
//!
//! An ID is the `name` given when it was opened, else `KIND:ENDPOINT` with
//! the port resolved (`zmq_push:tcp://127.0.0.1:5555`), written as it is
//! in the path (`:` and `/` are allowed there) or percent-encoded.

use serde_json::{json, Value};

use crate::bridge::{Bridges, NewBridge, OpenError};

/// The collection's path; one bridge is under `PATH/ID`.
pub const PATH: &str = "/api/bridges";

/// The id in a path under [`PATH`]: `None` for the collection itself,
/// `Some(id)` for one bridge; the path is not ours if it is neither.
pub fn id_in(path: &str) -> Option<Option<String>> {
    let rest = path.strip_prefix(PATH)?;
    if rest.is_empty() || rest == "/" {
        return Some(None);
    }
    let id = rest.strip_prefix('/')?;
    Some(Some(percent_decoded(id)))
}

/// `%XX` sequences decoded, when they make UTF-8; the text as it is if not.
fn percent_decoded(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Answers one request: `(status, body)`, or an error `(status, code,
/// message)`.
pub async fn handle(
    bridges: &Bridges,
    method: &str,
    id: Option<&str>,
    body: &[u8],
) -> Result<(u16, Value), (u16, &'static str, String)> {
    match (method, id) {
        ("GET" | "HEAD", None) => {
            let list: Vec<Value> = bridges.links().iter().map(|l| l.describe()).collect();
            Ok((
                200,
                json!({ "bridges": list, "max_bridges": bridges.max_open() }),
            ))
        }
        ("GET" | "HEAD", Some(id)) => match bridges.get(id) {
            Some(link) => Ok((200, link.describe())),
            None => Err(unknown(id)),
        },
        ("POST", None) => {
            let new = NewBridge::from_json(body).map_err(|why| (400, "invalid_bridge", why))?;
            let pattern = new
                .route
                .pattern()
                .map_err(|why| (400, "invalid_bridge", why))?;
            let opened = bridges
                .open_new(new.kind, &new.route.endpoint, pattern, new.name.as_deref())
                .await;
            match opened {
                Ok(link) => {
                    // Checked with the body: an output's key is valid here.
                    if let Ok(key) = new.route.values_key() {
                        link.set_values_key(key);
                    }
                    Ok((201, link.describe()))
                }
                Err(error @ OpenError::Invalid(_)) => {
                    Err((400, "invalid_bridge", error.to_string()))
                }
                Err(error @ OpenError::AlreadyOpen(_)) => {
                    Err((409, "already_open", error.to_string()))
                }
                Err(error @ OpenError::TooMany(_)) => {
                    Err((409, "too_many_bridges", error.to_string()))
                }
                Err(error @ OpenError::Failed(_)) => Err((409, "cannot_open", error.to_string())),
            }
        }
        ("DELETE", None) => Ok((200, json!({ "closed": bridges.close_all().await }))),
        ("DELETE", Some(id)) => match bridges.close(id).await {
            Some(link) => Ok((200, json!({ "closed": link.describe() }))),
            None => Err(unknown(id)),
        },
        _ => Err((
            405,
            "method_not_allowed",
            format!("use GET, POST or DELETE on {PATH}, GET or DELETE on {PATH}/ID"),
        )),
    }
}

fn unknown(id: &str) -> (u16, &'static str, String) {
    (404, "unknown_bridge", format!("no bridge {id:?} is open"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_paths() {
        assert_eq!(id_in("/api/bridges"), Some(None));
        assert_eq!(id_in("/api/bridges/"), Some(None));
        assert_eq!(id_in("/api/bridgesx"), None);
        assert_eq!(id_in("/api/other"), None);
        assert_eq!(
            id_in("/api/bridges/zmq_push:tcp://127.0.0.1:5555"),
            Some(Some("zmq_push:tcp://127.0.0.1:5555".into()))
        );
        assert_eq!(
            id_in("/api/bridges/zmq_sub%3A%3Etcp%3A%2F%2Fh%3A1"),
            Some(Some("zmq_sub:>tcp://h:1".into()))
        );
        assert_eq!(id_in("/api/bridges/100%25"), Some(Some("100%".into())));
        assert_eq!(id_in("/api/bridges/a%zz"), Some(Some("a%zz".into())));
    }
}
