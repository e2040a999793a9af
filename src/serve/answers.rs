//! The JSON answers of the HTTP API: a body, or `{"error":{code, message}}`.

use serde_json::{json, Value};
use switchboard_net::HttpResponse;

pub fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::new(status, "application/json", body.to_string())
}

pub fn error_response(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}
