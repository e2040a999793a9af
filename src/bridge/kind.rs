//! [`Kind`], the kind of an endpoint, and its [`Family`].

/// The kind of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ZeroMQ PUSH: sends address messages, one JSON frame each.
    ZmqPush,
    /// ZeroMQ PUB: sends address messages as `[path, json]`.
    ZmqPub,
    /// ZeroMQ PULL: receives JSON `{path, values}`.
    ZmqPull,
    /// ZeroMQ SUB (subscribed to everything): receives JSON `{path, values}`.
    ZmqSub,
    /// OSC over UDP, received.
    OscListen,
    /// OSC over UDP, sent.
    OscSend,
}

/// Where a message came from, for loop prevention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A ZeroMQ endpoint.
    Zmq,
    /// An OSC endpoint.
    Osc,
}

impl Kind {
    /// The name used in settings and metrics (`zmq_push`, `osc_listen`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::ZmqPush => "zmq_push",
            Kind::ZmqPub => "zmq_pub",
            Kind::ZmqPull => "zmq_pull",
            Kind::ZmqSub => "zmq_sub",
            Kind::OscListen => "osc_listen",
            Kind::OscSend => "osc_send",
        }
    }

    /// The kind with this name, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::ZmqPush,
            Kind::ZmqPub,
            Kind::ZmqPull,
            Kind::ZmqSub,
            Kind::OscListen,
            Kind::OscSend,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    /// ZeroMQ or OSC.
    pub fn family(self) -> Family {
        match self {
            Kind::ZmqPush | Kind::ZmqPub | Kind::ZmqPull | Kind::ZmqSub => Family::Zmq,
            Kind::OscListen | Kind::OscSend => Family::Osc,
        }
    }

    /// Whether hub messages are sent out through it.
    pub fn is_output(self) -> bool {
        matches!(self, Kind::ZmqPush | Kind::ZmqPub | Kind::OscSend)
    }
}
