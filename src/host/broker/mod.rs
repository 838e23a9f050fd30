//! Message brokers and caches: a login and an answer, like `sql_ping`. Each protocol is small
//! enough to speak directly over the connection `wire` gives (plain or TLS, every read bounded
//! by the call's budget), so none adds a client crate or a runtime.

mod amqp;
mod memcached;
mod mqtt;
mod nats;

use super::HostFn;

/// The URL-checked protocols, for what a URL reaches (`crate::permissions::accesses`).
pub(crate) const PROTOCOLS: &[&super::wire::Protocol] = &[
    &amqp::AMQP,
    &mqtt::MQTT,
    &nats::NATS,
    &memcached::MEMCACHED,
    &super::redis::REDIS,
];

pub const FUNCTIONS: &[HostFn] = &[
    amqp::AMQP_PING,
    mqtt::MQTT_PING,
    nats::NATS_PING,
    memcached::MEMCACHED_PING,
];
