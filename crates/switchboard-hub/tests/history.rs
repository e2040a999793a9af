//! Room history through the library: numbered sends, a join's position,
//! and a cluster adapter that keeps none.

mod common;

use std::sync::Arc;

use common::{next_event, open, send};
use serde_json::json;
use switchboard_hub::{
    ClusterAdapter, ClusterMessage, HistoryRule, Hub, HubConfig, PresenceChange,
};

fn hub_with_history(rooms: &str) -> Hub {
    let mut config = HubConfig::default();
    config.history(vec![HistoryRule::new(rooms)]);
    Hub::new(config)
}

#[tokio::test]
async fn emit_stored_numbers_messages_and_joins_learn_the_position() {
    let hub = hub_with_history("news*");
    let url = common::serve(hub.clone()).await;
    let mut a = open(&url).await;
    send(&mut a, json!({"event": "join", "room": "news", "ack": 1})).await;
    let joined = next_event(&mut a).await;
    let epoch = joined["data"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(joined["data"]["offset"], 0);

    let published = hub.to("news").emit_stored("n", &json!(1)).await.unwrap();
    assert_eq!(published.delivered, 1);
    let stored = published.stored.unwrap();
    assert_eq!((stored.offset, stored.epoch.as_str()), (1, epoch.as_str()));
    assert_eq!(
        next_event(&mut a).await,
        json!({"event": "n", "room": "news", "data": 1, "offset": 1, "epoch": epoch})
    );
    // The plain emit numbers too.
    assert_eq!(hub.to("news").emit("n", &json!(2)), 1);
    assert_eq!(next_event(&mut a).await["offset"], 2);
    // A room without history: no offset, nothing stored.
    let plain = hub.to("lobby").emit_stored("n", &json!(3)).await.unwrap();
    assert_eq!((plain.delivered, plain.stored), (0, None));
    // A server-side join takes what follows the room's last message.
    let (mut b, b_id) = common::open_with_id(&url).await;
    let socket = hub.socket(&b_id).unwrap();
    hub.join_room(&socket, "news").unwrap();
    hub.to("news").emit("n", &json!(4));
    assert_eq!(next_event(&mut b).await["offset"], 3);
}

/// An adapter that carries messages but keeps no history (the trait's
/// defaults).
struct NoHistory;

impl ClusterAdapter for NoHistory {
    fn send(&self, _: &ClusterMessage<'_>) -> bool {
        true
    }

    fn presence(&self, _: PresenceChange) {}
}

#[tokio::test]
async fn without_a_store_nothing_is_sent_and_the_sender_is_told() {
    let hub = hub_with_history("news*");
    assert!(hub.set_cluster(Arc::new(NoHistory)));
    let url = common::serve(hub.clone()).await;
    let mut a = open(&url).await;
    send(&mut a, json!({"event": "join", "room": "news", "ack": 1})).await;
    let refused = next_event(&mut a).await;
    assert_eq!(refused["error"]["code"], "history_unavailable", "{refused}");
    send(
        &mut a,
        json!({"event": "say", "room": "news", "data": 1, "ack": 2}),
    )
    .await;
    let refused = next_event(&mut a).await;
    assert_eq!(refused["error"]["code"], "history_unavailable", "{refused}");
    assert!(hub.to("news").emit_stored("n", &json!(1)).await.is_err());
    send(
        &mut a,
        json!({"event": "say", "room": "lobby", "data": 1, "ack": 3}),
    )
    .await;
    assert_eq!(
        next_event(&mut a).await["data"]["delivered"],
        0,
        "other rooms work"
    );
}
