//! Why a connect attempt failed, when the target gave no API error: the cause as the harness saw
//! it (refused, reset, a timeout and in which phase, an upgrade answered with another status, a
//! first answer that is not JSON or not a protocol event, a name that does not resolve, a
//! refused or slow TLS handshake, the harness's own lack of descriptors or ports). Kept as a small `Copy` value because it travels
//! inside every user's connect result; counted in a [`CodeTable`](super::code_table) under a
//! numeric key so that the set of statuses stays bounded whatever the target answers.

/// The cause of a failed connect attempt without an API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The TCP connect was refused (nothing listens).
    Refused,
    /// The connection was reset or closed before the attempt finished.
    Reset,
    /// The TCP connect did not finish in time.
    TimeoutTcp,
    /// The TLS handshake did not finish in time.
    TimeoutTls,
    /// The TLS handshake was refused (certificate not trusted, name mismatch, expired, no common
    /// protocol).
    Tls,
    /// The upgrade (or the long-poll connect request) was not answered in time.
    TimeoutUpgrade,
    /// The upgrade succeeded but no first frame came in time.
    TimeoutFirstFrame,
    /// The attempt's own deadline passed (phase unknown to the state machine).
    Timeout,
    /// The upgrade or long-poll connect was answered with this HTTP status (not 101 / not 2xx).
    Status(u16),
    /// The answer to the upgrade was not a valid WebSocket upgrade (bad head, wrong accept key).
    BadUpgrade,
    /// The first frame (or long-poll body) was not JSON text.
    NotJson,
    /// The first frame was JSON but not `health.check` or `connection.error`.
    NotProtocol,
    /// The target's name did not resolve.
    Dns,
    /// The harness ran out of descriptors or local ports (also counted as `resource_failures`).
    Resource,
    /// The user's own refusal (a `refuse_websocket` timeline action), or a request that could not
    /// be built.
    Local,
}

/// Keys at or above this are [`FailureKind::Status`] (`STATUS_BASE + status`).
const STATUS_BASE: u32 = 1000;

impl FailureKind {
    /// The key under which the kind is counted.
    pub const fn key(self) -> u32 {
        match self {
            Self::Refused => 1,
            Self::Reset => 2,
            Self::TimeoutTcp => 3,
            Self::TimeoutUpgrade => 4,
            Self::TimeoutFirstFrame => 5,
            Self::Timeout => 6,
            Self::BadUpgrade => 7,
            Self::NotJson => 8,
            Self::NotProtocol => 9,
            Self::Dns => 10,
            Self::Resource => 11,
            Self::Local => 12,
            Self::Tls => 13,
            Self::TimeoutTls => 14,
            Self::Status(s) => STATUS_BASE + s as u32,
        }
    }

    /// The kind counted under `key`.
    pub fn from_key(key: u32) -> Option<Self> {
        Some(match key {
            1 => Self::Refused,
            2 => Self::Reset,
            3 => Self::TimeoutTcp,
            4 => Self::TimeoutUpgrade,
            5 => Self::TimeoutFirstFrame,
            6 => Self::Timeout,
            7 => Self::BadUpgrade,
            8 => Self::NotJson,
            9 => Self::NotProtocol,
            10 => Self::Dns,
            11 => Self::Resource,
            12 => Self::Local,
            13 => Self::Tls,
            14 => Self::TimeoutTls,
            k if k >= STATUS_BASE => Self::Status(u16::try_from(k - STATUS_BASE).ok()?),
            _ => return None,
        })
    }

    /// The stable name used in `summary.json` (`http_503` for a status).
    pub fn name(self) -> String {
        match self {
            Self::Refused => "refused".into(),
            Self::Reset => "reset".into(),
            Self::TimeoutTcp => "timeout_tcp_connect".into(),
            Self::TimeoutUpgrade => "timeout_upgrade".into(),
            Self::TimeoutFirstFrame => "timeout_first_frame".into(),
            Self::Timeout => "timeout_attempt".into(),
            Self::BadUpgrade => "not_an_upgrade".into(),
            Self::NotJson => "first_frame_not_json".into(),
            Self::NotProtocol => "first_frame_not_protocol".into(),
            Self::Dns => "dns".into(),
            Self::Resource => "local_resources".into(),
            Self::Local => "refused_locally".into(),
            Self::Tls => "tls_handshake".into(),
            Self::TimeoutTls => "timeout_tls_handshake".into(),
            Self::Status(s) => format!("http_{s}"),
        }
    }

    /// The kind of a socket error: refused, resource exhaustion, or a reset.
    pub fn of_io(e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::EADDRINUSE | libc::ENOBUFS) => {
                Self::Resource
            }
            Some(libc::ECONNREFUSED) => Self::Refused,
            _ if e.kind() == std::io::ErrorKind::ConnectionRefused => Self::Refused,
            _ if e.kind() == std::io::ErrorKind::TimedOut => Self::TimeoutTcp,
            _ => Self::Reset,
        }
    }

    /// The name of a count key (`unknown_<key>` for a key no kind has, as from a newer harness).
    pub fn key_name(key: u32) -> String {
        Self::from_key(key).map_or_else(|| format!("unknown_{key}"), Self::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_names_are_distinct() {
        let all = [
            FailureKind::Refused,
            FailureKind::Reset,
            FailureKind::TimeoutTcp,
            FailureKind::TimeoutUpgrade,
            FailureKind::TimeoutFirstFrame,
            FailureKind::Timeout,
            FailureKind::BadUpgrade,
            FailureKind::NotJson,
            FailureKind::NotProtocol,
            FailureKind::Dns,
            FailureKind::Resource,
            FailureKind::Local,
            FailureKind::Tls,
            FailureKind::TimeoutTls,
            FailureKind::Status(0),
            FailureKind::Status(503),
            FailureKind::Status(u16::MAX),
        ];
        let mut names = std::collections::BTreeSet::new();
        for k in all {
            assert_eq!(FailureKind::from_key(k.key()), Some(k), "{k:?}");
            assert!(names.insert(k.name()), "{k:?}");
        }
        assert_eq!(FailureKind::Status(503).name(), "http_503");
        assert_eq!(FailureKind::key_name(999), "unknown_999");
        assert!(std::mem::size_of::<FailureKind>() <= 4);
    }

    #[test]
    fn socket_errors_are_told_apart() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(FailureKind::of_io(&e(libc::ECONNREFUSED)), FailureKind::Refused);
        assert_eq!(FailureKind::of_io(&e(libc::EMFILE)), FailureKind::Resource);
        assert_eq!(FailureKind::of_io(&e(libc::ECONNRESET)), FailureKind::Reset);
        assert_eq!(FailureKind::of_io(&e(libc::ETIMEDOUT)), FailureKind::TimeoutTcp);
    }
}
