//! `POST /api/publish?room=R` (or `?to=ID`, `?broadcast=true`): the body,
//! of any length and chunked or not, goes to the members as one streamed
//! binary message while it arrives (`stream:start`, the fragments,
//! `stream:end`), never held whole. A publish without a target in the
//! query is the JSON one, read whole.

use serde_json::json;
use switchboard_hub::{envelope, ConnId, Target};
use switchboard_net::{BodyStream, HttpResponse, MessageKind, Request};

use super::answers::{error_response, json_response};
use super::app::App;

/// The query parameters that name a streamed publish's target.
const TARGETS: [&str; 3] = ["room", "to", "broadcast"];

/// Whether `request` is a streamed publish.
pub fn is_streamed(request: &Request) -> bool {
    request.method() == "POST"
        && request.path() == "/api/publish"
        && TARGETS.iter().any(|key| request.query_param(key).is_some())
}

/// The one target the query names.
fn target(request: &Request) -> Result<Target, (&'static str, String)> {
    let room = request.query_param("room");
    let to = request.query_param("to");
    let broadcast = request.query_param("broadcast");
    match (room, to, broadcast.as_deref()) {
        (Some(room), None, None) => envelope::room_name(Some(&room))
            .map(Target::Room)
            .map_err(|error| (error.code, error.message)),
        (None, Some(to), None) => Ok(Target::Direct(ConnId::from_string(to))),
        (None, None, Some("true" | "1")) => Ok(Target::Everyone),
        (None, None, Some(_)) => Err(("invalid_target", "broadcast is true or 1".into())),
        _ => Err((
            "invalid_target",
            "give one of ?room=, ?to= and ?broadcast=true".into(),
        )),
    }
}

/// Relays the body to the target as it arrives; answers with the stream's
/// id, its bytes and how many connections received all of it. Past
/// `max_stream_size` the stream is cut (its members get `stream:end` with
/// `"complete":false`) and the answer is 413. The caller has checked the
/// key and the origin.
pub async fn publish(app: &App, request: &Request, body: &mut BodyStream<'_>) -> HttpResponse {
    let target = match target(request) {
        Ok(target) => target,
        Err((code, message)) => return error_response(400, code, &message),
    };
    let Ok(_place) = app.http_streams.clone().try_acquire_owned() else {
        let max = app.settings.max_streams;
        let why = format!("{max} streamed publishes are under way; try again later");
        return error_response(503, "too_many_streams", &why);
    };
    let max = app.settings.max_stream_size as u64;
    let mut stream = app.hub.stream(&target, MessageKind::Binary);
    while let Some(piece) = body.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            // Dropping the stream cuts it: nobody is left waiting.
            Err(error) => return error_response(error.status(), "invalid_body", error.reason()),
        };
        if body.bytes_read() > max {
            let why = format!("the stream is over max_stream_size ({max} bytes)");
            return error_response(413, "stream_too_large", &why);
        }
        stream.write(&piece);
    }
    let id = stream.id().to_owned();
    let bytes = body.bytes_read();
    let delivered = stream.finish();
    json_response(
        200,
        &json!({ "id": id, "bytes": bytes, "delivered": delivered }),
    )
}
