//! The fleet's bus: one NATS connection and the run's three JetStream resources (a stream of
//! live intervals, a KV bucket for ready/state/done, an object store for final summaries; names in
//! [`super::wire`]). Both sides create them the same way, idempotently, so that shards may come up
//! before the coordinator or after it.
//!
//! Why JetStream rather than plain NATS subjects: intervals published while the coordinator is
//! reconnecting are kept by the server and de-duplicated by id; the KV `state` key is read with
//! its history, so a shard that watches late still sees the start or the abort; the object store
//! keeps the final summaries until the coordinator fetches them.

use super::wire::Interval;
use async_nats::jetstream::{self, kv, object_store, stream};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long the bus keeps a run's intervals, state and summaries.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a publish waits for JetStream's acknowledgement before it is sent again (with the
/// same de-duplication id).
const ACK_WAIT: Duration = Duration::from_secs(2);

/// A bus that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The run id cannot name streams and buckets.
    #[error(
        "fleet run id {0:?}: use 1 to 64 letters, digits, '-' or '_' (and give the same id to the coordinator and every shard)"
    )]
    RunId(String),
    /// No connection within the limit.
    #[error("cannot reach the NATS server at {url} within {secs} s: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The limit.
        secs: u64,
        /// The last error.
        reason: String,
    },
    /// A JetStream request failed.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    /// A value on the bus is not what this version writes.
    #[error("unreadable {what} on the bus: {reason}")]
    Decode {
        /// Which value.
        what: String,
        /// Why.
        reason: String,
    },
}

fn js_err(e: impl std::fmt::Display) -> BusError {
    BusError::JetStream(e.to_string())
}

/// Checks a run id: it becomes part of stream, bucket and subject names.
///
/// # Errors
/// [`BusError::RunId`].
pub fn check_run_id(run: &str) -> Result<(), BusError> {
    let ok =
        !run.is_empty() && run.len() <= 64 && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BusError::RunId(run.to_owned()))
    }
}

/// The connection and the run's resources.
#[derive(Clone)]
pub struct Bus {
    /// The NATS connection (reconnects by itself).
    pub client: async_nats::Client,
    js: jetstream::Context,
    /// The run's KV bucket.
    pub kv: kv::Store,
    objects: object_store::ObjectStore,
    stream: stream::Stream,
    run: String,
    /// Connections made so far (1 after the first; each reconnect adds one).
    connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Changes on every connection event (connected, disconnected, closed), so that a shard's
    /// watchers wait for the client's events instead of polling the connection state several
    /// times a second (each poll a wake-up of a runtime thread, all run long).
    events: tokio::sync::watch::Receiver<u64>,
}

impl Bus {
    /// Connects (retrying until `limit`: in a cluster the server may start with the shards)
    /// and creates or opens the run's stream, bucket and object store.
    ///
    /// # Errors
    /// [`BusError`] with one line saying what failed.
    pub async fn connect(url: &str, run: &str, name: &str, limit: Duration) -> Result<Bus, BusError> {
        check_run_id(run)?;
        let deadline = tokio::time::Instant::now() + limit;
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (events_tx, events) = tokio::sync::watch::channel(0u64);
        let events_tx = std::sync::Arc::new(events_tx);
        let client = loop {
            let counter = connections.clone();
            let events_tx = events_tx.clone();
            let options = async_nats::ConnectOptions::new()
                .event_callback(move |event| {
                    let counter = counter.clone();
                    let events_tx = events_tx.clone();
                    async move {
                        if matches!(event, async_nats::Event::Connected) {
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        if matches!(
                            event,
                            async_nats::Event::Connected | async_nats::Event::Disconnected | async_nats::Event::Closed
                        ) {
                            events_tx.send_modify(|n| *n += 1);
                        }
                    }
                })
                .name(name)
                .connection_timeout(Duration::from_secs(2))
                // A restarted server is found again within about a second.
                .reconnect_delay_callback(|attempt| Duration::from_millis((attempt as u64 * 100).clamp(100, 1_000)));
            match options.connect(url).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(BusError::Connect {
                        url: url.to_owned(),
                        secs: limit.as_secs(),
                        reason: e.to_string(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: format!("CHATSTORM_{run}"),
                subjects: vec![format!("chatstorm.{run}.interval.>")],
                max_age: KEEP,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(js_err)?;
        let kv = js
            .create_or_update_key_value(kv::Config {
                bucket: format!("chatstorm_{run}"),
                history: 1,
                max_age: KEEP,
                ..Default::default()
            })
            .await
            .map_err(js_err)?;
        let bucket = format!("chatstorm_{run}");
        let objects = match js.get_object_store(&bucket).await {
            Ok(o) => o,
            Err(_) => match js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    max_age: KEEP,
                    ..Default::default()
                })
                .await
            {
                Ok(o) => o,
                // Another process of the fleet created it in between.
                Err(e) => js.get_object_store(&bucket).await.map_err(|_| js_err(e))?,
            },
        };
        Ok(Bus {
            client,
            js,
            kv,
            objects,
            stream,
            run: run.to_owned(),
            connections,
            events,
        })
    }

    /// Reconnects so far: a subscription made before a server restart may wait a long time for
    /// its heartbeats to say it is gone, so watchers start again when this changes.
    pub fn reconnects(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the next connection event (connected, disconnected, closed) after those seen
    /// by `seen` (start with [`Bus::events`]); never returns if the client is gone.
    pub async fn next_event(seen: &mut tokio::sync::watch::Receiver<u64>) {
        if seen.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A receiver of connection events for [`Bus::next_event`].
    pub fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut r = self.events.clone();
        r.mark_unchanged();
        r
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Whether the connection is up now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Puts a JSON value under a KV key.
    ///
    /// # Errors
    /// [`BusError::JetStream`].
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BusError> {
        let bytes = serde_json::to_vec(value).map_err(js_err)?;
        self.kv.put(key, Bytes::from(bytes)).await.map_err(js_err)?;
        Ok(())
    }

    /// Reads a JSON value from a KV key (`None`: absent or deleted).
    ///
    /// # Errors
    /// [`BusError`] when the read fails or the value is not this version's.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BusError> {
        match self.kv.get(key).await.map_err(js_err)? {
            Some(b) if !b.is_empty() => decode(key, &b).map(Some),
            _ => Ok(None),
        }
    }

    /// Publishes one interval and waits for JetStream to store it.
    ///
    /// # Errors
    /// [`BusError::JetStream`] when it was not acknowledged within [`ACK_WAIT`]; publishing it
    /// again is safe (same id).
    pub async fn publish_interval(&self, interval: &Interval) -> Result<(), BusError> {
        let payload = serde_json::to_vec(interval).map_err(js_err)?;
        let subject = format!("chatstorm.{}.interval.{}", self.run, interval.shard);
        let message = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(interval.message_id(&self.run));
        let sent = async {
            let ack = self.js.send_publish(subject, message).await.map_err(js_err)?;
            ack.await.map_err(js_err)
        };
        match tokio::time::timeout(ACK_WAIT, sent).await {
            Ok(r) => r.map(drop),
            Err(_) => Err(BusError::JetStream("no acknowledgement within 2 s".into())),
        }
    }

    /// Every interval of the run from the first, in order, with its size on the wire (an
    /// ordered consumer recreates itself where it left off).
    ///
    /// # Errors
    /// [`BusError::JetStream`].
    pub async fn intervals(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<(Interval, usize), BusError>> + use<>, BusError> {
        use futures_util::StreamExt;
        let consumer = self
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: format!("chatstorm.{}.interval.>", self.run),
                ..Default::default()
            })
            .await
            .map_err(js_err)?;
        let messages = consumer.messages().await.map_err(js_err)?;
        Ok(messages.map(|m| match m {
            Ok(m) => decode("interval", &m.payload).map(|i| (i, m.payload.len())),
            Err(e) => Err(js_err(e)),
        }))
    }

    /// Stores an object (replacing one of the same name).
    ///
    /// # Errors
    /// [`BusError::JetStream`].
    pub async fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), BusError> {
        let mut reader = bytes;
        self.objects.put(name, &mut reader).await.map_err(js_err)?;
        Ok(())
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`BusError::JetStream`] when it is absent or cannot be read.
    pub async fn get_object(&self, name: &str) -> Result<Vec<u8>, BusError> {
        let mut object = self.objects.get(name).await.map_err(js_err)?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(js_err)?;
        Ok(bytes)
    }
}

/// Decodes a JSON value read from the bus.
///
/// # Errors
/// [`BusError::Decode`].
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, BusError> {
    serde_json::from_slice(bytes).map_err(|e| BusError::Decode {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_must_name_streams() {
        assert!(check_run_id("smoke-20261205_1").is_ok());
        for bad in ["", "a.b", "a b", "a>", &"x".repeat(65)] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
