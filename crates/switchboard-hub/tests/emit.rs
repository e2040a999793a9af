//! The application's sends, over real loopback connections.

mod common;

use common::{open_with_id as open, recv};
use serde_json::{json, Value};
use switchboard_hub::{ConnId, Hub, HubConfig};

#[tokio::test]
async fn emit_all_except_leaves_out_one_connection() {
    let hub = Hub::new(HubConfig::default());
    let url = common::serve(hub.clone()).await;
    let (mut a, a_id) = open(&url).await;
    let (mut b, _) = open(&url).await;
    let (mut c, _) = open(&url).await;

    let sent = hub.emit_all_except(&ConnId::from_string(a_id.clone()), "news", &json!(1));
    assert_eq!(sent, 2);
    let expected = json!({ "event": "news", "broadcast": true, "data": 1 });
    assert_eq!(recv(&mut b).await, expected);
    assert_eq!(recv(&mut c).await, expected);
    // A's queue is in order: the marker sent after is the first thing it gets.
    assert_eq!(hub.emit_to(&a_id, "marker", &Value::Null), Ok(()));
    assert_eq!(recv(&mut a).await["event"], "marker");
}
