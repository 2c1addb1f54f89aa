//! The scenario as written: a serde mirror of the YAML with `deny_unknown_fields`, every value
//! wrapped in [`Sp`] so the validator can point at it. Every field is optional here (required
//! keys are the validator's business) so that `de.rs` can skip a broken value and go on.
//!
//! Only `validate.rs` reads these types; the engine never sees them.

use super::de::Sp;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

type Field<T> = Option<Sp<T>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawScenario {
    pub name: Field<String>,
    pub description: Field<String>,
    pub seed: Field<u64>,
    pub target: Field<RawTarget>,
    pub users: Field<RawUsers>,
    pub channels: Field<RawChannels>,
    pub load: Field<Vec<Sp<RawStage>>>,
    pub behaviour: Field<RawBehaviour>,
    pub timeline: Field<Vec<Sp<RawEvent>>>,
    pub thresholds: Field<RawMap<RawThreshold>>,
    pub conformance: Field<RawConformance>,
    pub duration: Field<Scalar>,
    pub checks: Field<RawChecks>,
}

/// `checks: {users_connected: true | false | "95%", recovered: bool, target_reachable: bool,
/// state_kept: bool, shards_lost: N}`: the implicit checks, each on unless turned off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawChecks {
    pub users_connected: Field<RawShare>,
    pub recovered: Field<bool>,
    pub target_reachable: Field<bool>,
    pub state_kept: Field<bool>,
    pub shards_lost: Field<u32>,
}

/// `true`, `false`, or a share such as `"95%"` / `0.95`.
#[derive(Debug, Clone)]
pub(crate) enum RawShare {
    Toggle(bool),
    Share(Scalar),
}

impl<'de> Deserialize<'de> for RawShare {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShareVisitor)
    }
}

struct ShareVisitor;

impl Visitor<'_> for ShareVisitor {
    type Value = RawShare;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true, false or a share such as \"95%\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawShare, E> {
        Ok(RawShare::Toggle(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawShare, E> {
        ScalarVisitor.visit_str(v).map(RawShare::Share)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawShare, E> {
        ScalarVisitor.visit_u64(v).map(RawShare::Share)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawShare, E> {
        ScalarVisitor.visit_i64(v).map(RawShare::Share)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawShare, E> {
        ScalarVisitor.visit_f64(v).map(RawShare::Share)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTarget {
    pub url: Field<String>,
    pub api_key: Field<String>,
    pub secret: Field<String>,
    pub token_endpoint: Field<String>,
    pub health_interval: Field<Scalar>,
    pub longpoll_hold: Field<Scalar>,
    pub token_expiry: Field<ExpiryPolicy>,
}

/// What the embedded mock does when a token expires under an open socket.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExpiryPolicy {
    Keep,
    Kick,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUsers {
    pub count: Field<u64>,
    pub id: Field<String>,
    pub profile: Field<RawProfile>,
    pub token: Field<RawToken>,
    pub privacy: Field<RawPrivacy>,
    pub fallback: Field<bool>,
    pub custom_bytes: Field<u64>,
    pub unity: Field<RawUnity>,
    /// `sdk` (default) or a fixed wait such as `250ms`.
    pub backoff: Field<Scalar>,
    pub kind: Field<RawUserKind>,
    pub tls: Field<RawUsersTls>,
}

/// `users.tls: {resumption: off | on | 0.5 | "50%"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUsersTls {
    pub resumption: Field<RawShare>,
}

/// `users.kind`: `stream` (default: SDK-like users) or `plain-websocket` (bare WebSocket clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawUserKind {
    Stream,
    PlainWebsocket,
}

/// `users.unity: {reconnect: exponential|constant|never, interval: 5s}` (Unity's
/// `SetReconnectStrategySettings`; `interval` only with `constant`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUnity {
    pub reconnect: Field<RawUnityReconnect>,
    pub interval: Field<Scalar>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawUnityReconnect {
    Exponential,
    Constant,
    Never,
}

/// `profile: js` or `profile: {js: 60, android: 40}`.
#[derive(Debug)]
pub(crate) enum RawProfile {
    One(String),
    Mix(Vec<(Sp<String>, Sp<i64>)>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawToken {
    pub ttl: Field<Scalar>,
    pub mode: Field<RawTokenMode>,
    pub endpoint: Field<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawTokenMode {
    Provider,
    Static,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPrivacy {
    pub typing_indicators: Field<bool>,
    pub read_receipts: Field<bool>,
    pub delivery_receipts: Field<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawChannels {
    pub count: Field<u64>,
    pub members: Field<u64>,
    #[serde(rename = "type")]
    pub kind: Field<String>,
}

/// One entry of `load:`; exactly one key is expected (checked by the validator).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStage {
    pub ramp: Field<RawRamp>,
    pub hold: Field<Scalar>,
    pub arrival: Field<RawArrival>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRamp {
    pub to: Field<u64>,
    pub over: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawArrival {
    pub rate: Field<Scalar>,
    #[serde(rename = "for")]
    pub for_: Field<Scalar>,
    pub max: Field<u64>,
    pub session: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBehaviour {
    pub typing: Field<RawEvery>,
    pub read: Field<RawEvery>,
    pub message: Field<RawMessage>,
    pub background: Field<RawBackground>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawEvery {
    pub every: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMessage {
    pub every: Field<Scalar>,
    pub bytes: Field<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBackground {
    pub fraction: Field<f64>,
    pub every: Field<Scalar>,
    #[serde(rename = "for")]
    pub for_: Field<Scalar>,
}

/// One entry of `timeline:`: `at` plus exactly one action (checked by the validator).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawEvent {
    pub at: Field<Scalar>,
    pub drop_sockets: Field<RawDrop>,
    pub expire_tokens: Field<RawExpire>,
    pub block_websocket: Field<RawWindow>,
    pub refuse_websocket: Field<RawWindow>,
    pub half_open: Field<RawWindow>,
    pub add_latency: Field<RawLatency>,
    pub set_privacy: Field<RawSetPrivacy>,
    pub background: Field<RawWave>,
}

/// `background: {fraction, for}` in the timeline: a background/foreground wave.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawWave {
    pub fraction: Field<f64>,
    #[serde(rename = "for")]
    pub for_: Field<Scalar>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawSide {
    Client,
    Server,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDrop {
    pub fraction: Field<f64>,
    pub side: Field<RawSide>,
    pub close: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawExpire {
    pub fraction: Field<f64>,
    pub side: Field<RawSide>,
}

/// `block_websocket`, `refuse_websocket`, `half_open`: who and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawWindow {
    pub fraction: Field<f64>,
    #[serde(rename = "for")]
    pub for_: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLatency {
    pub delay: Field<Scalar>,
    pub fraction: Field<f64>,
    #[serde(rename = "for")]
    pub for_: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSetPrivacy {
    pub fraction: Field<f64>,
    pub typing_indicators: Field<bool>,
    pub read_receipts: Field<bool>,
    pub delivery_receipts: Field<bool>,
}

/// `metric.stat: "< 500ms"` or `metric.stat: {limit: "< 500ms", abort: true, after: 30s}`.
#[derive(Debug)]
pub(crate) enum RawThreshold {
    Short(String),
    Full(RawThresholdFull),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawThresholdFull {
    pub limit: Field<String>,
    pub abort: Field<bool>,
    pub after: Field<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConformance {
    pub watch: Field<Vec<Sp<String>>>,
    pub strict: Field<bool>,
}

/// A scalar kept as written, for values whose meaning the validator decides: durations
/// (where a bare number gets a hint), rates, close codes.
#[derive(Debug, Clone)]
pub(crate) enum Scalar {
    Text(String),
    Number(f64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a single value such as `30s`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v))
    }
}

impl<'de> Deserialize<'de> for RawProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProfileVisitor)
    }
}

struct ProfileVisitor;

impl<'de> Visitor<'de> for ProfileVisitor {
    type Value = RawProfile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a profile name (js, android, swift, flutter, unity) or a mix such as {js: 60, android: 40}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawProfile, E> {
        Ok(RawProfile::One(v.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawProfile, A::Error> {
        let mut mix = Vec::new();
        while let Some(key) = map.next_key::<Sp<String>>()? {
            mix.push((key, map.next_value::<Sp<i64>>()?));
        }
        Ok(RawProfile::Mix(mix))
    }
}

impl<'de> Deserialize<'de> for RawThreshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ThresholdVisitor)
    }
}

struct ThresholdVisitor;

impl<'de> Visitor<'de> for ThresholdVisitor {
    type Value = RawThreshold;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a condition such as \"< 500ms\" or {limit: \"< 500ms\", abort: true}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawThreshold, E> {
        Ok(RawThreshold::Short(v.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawThreshold, A::Error> {
        RawThresholdFull::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawThreshold::Full)
    }
}

/// A mapping with free keys (thresholds), in the order written.
#[derive(Debug)]
pub(crate) struct RawMap<V>(pub Vec<(Sp<String>, Sp<V>)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for RawMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

struct MapVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
    type Value = RawMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMap<V>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Sp<String>>()? {
            entries.push((key, map.next_value::<Sp<V>>()?));
        }
        Ok(RawMap(entries))
    }
}
