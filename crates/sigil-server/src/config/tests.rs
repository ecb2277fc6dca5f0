use super::*;
use sigil_core::robust::RobustLevel;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn file_then_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.toml");
    std::fs::write(
        &path,
        r#"
listen = "0.0.0.0:7000"
index = "/data/index"
[limits]
max_batch = 5
[[api_key]]
name = "pipeline"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
role = "matcher"
"#,
    )
    .unwrap();
    let c = ServerConfig::load(
        Some(&path),
        env(&[
            ("SIGIL_LIMITS__MAX_BATCH", "7"),
            ("SIGIL_LIMITS__LOOKUP_QUEUE", "3"),
            ("SIGIL_LISTEN", "127.0.0.1:7001"),
            ("SIGIL_SHARED", "/elsewhere"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.limits.max_batch, 7);
    assert_eq!(c.limits.lookup_queue, 3);
    assert_eq!(c.listen, "127.0.0.1:7001".parse().unwrap());
    assert_eq!(c.index.as_deref(), Some(Path::new("/data/index")));
    assert_eq!(c.api_keys[0].role, Role::Matcher);
    assert_eq!(c.api_keys[0].burst(), 200);
}

/// Loads `text` as a config file, with no environment overrides.
fn load_text(text: &str) -> Result<ServerConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.toml");
    std::fs::write(&path, text).unwrap();
    ServerConfig::load(Some(&path), env(&[]))
}

/// `[matching] robust` takes a level name, and the switch it used to be.
#[test]
fn robust_level_from_file_and_env() {
    for (text, level) in [
        ("true", RobustLevel::Standard),
        ("false", RobustLevel::Off),
        ("\"full\"", RobustLevel::Full),
        ("\"standard\"", RobustLevel::Standard),
    ] {
        let c = load_text(&format!("[matching]\nrobust = {text}\n")).unwrap();
        assert_eq!(c.matching.robust, level, "{text}");
    }
    let c = ServerConfig::load(None, env(&[("SIGIL_MATCHING__ROBUST", "full")])).unwrap();
    assert_eq!(c.matching.robust, RobustLevel::Full);
    let err = load_text("[matching]\nrobust = \"maximum\"\n").unwrap_err();
    assert!(format!("{err:#}").contains("maximum"), "{err:#}");
}

/// `metrics_listen = "off"` (file or environment) serves no metrics; a
/// bad address is named.
#[test]
fn metrics_listener_can_be_turned_off() {
    let c = load_text("metrics_listen = \"off\"\n").unwrap();
    assert_eq!(c.metrics_listen, None);
    let c = ServerConfig::load(None, env(&[("SIGIL_METRICS_LISTEN", "OFF")])).unwrap();
    assert_eq!(c.metrics_listen, None);
    let c = ServerConfig::load(None, env(&[("SIGIL_METRICS_LISTEN", "0.0.0.0:9000")])).unwrap();
    assert_eq!(c.metrics_listen, Some("0.0.0.0:9000".parse().unwrap()));
    assert!(ServerConfig::load(None, env(&[]))
        .unwrap()
        .metrics_listen
        .is_some());
    let err = load_text("metrics_listen = \"localhost-ish\"\n").unwrap_err();
    assert!(format!("{err:#}").contains("localhost-ish"), "{err:#}");
}

/// The documented example config parses (every key it shows exists).
#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sigil.example.toml");
    let c = ServerConfig::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.matching.robust, RobustLevel::Off);
}

/// HTTP/2 windows and frame sizes outside what RFC 9113 allows are
/// refused at start, naming the key; the defaults pass.
#[test]
fn http2_limits_are_checked() {
    let base = || ServerConfig {
        insecure_loopback: true,
        index: Some("/x".into()),
        ..ServerConfig::default()
    };
    base().validate().unwrap();
    for (key, bad) in [
        ("http2_max_frame_bytes", 16_383u32),
        ("http2_max_frame_bytes", 1 << 24),
        ("http2_stream_window_bytes", 1000),
        ("http2_connection_window_bytes", 1 << 31),
    ] {
        let mut c = base();
        match key {
            "http2_max_frame_bytes" => c.limits.http2_max_frame_bytes = bad,
            "http2_stream_window_bytes" => c.limits.http2_stream_window_bytes = bad,
            _ => c.limits.http2_connection_window_bytes = bad,
        }
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key} = {bad}: {err}");
    }
    let c = ServerConfig::load(
        None,
        env(&[("SIGIL_LIMITS__HTTP2_MAX_FRAME_BYTES", "16384")]),
    )
    .unwrap();
    assert_eq!(c.limits.http2_max_frame_bytes, 16384);
}

/// The pool's byte budget must hold the largest accepted message.
#[test]
fn hashing_queue_bytes_holds_the_largest_message() {
    let mut c = ServerConfig {
        insecure_loopback: true,
        index: Some("/x".into()),
        ..ServerConfig::default()
    };
    c.limits.hashing_queue_bytes = c.limits.max_message_bytes as u64 - 1;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("limits.hashing_queue_bytes"), "{err}");
    c.limits.max_message_bytes = 1 << 20;
    c.validate().unwrap();
}

/// The hostile-client limits: zero timeouts and caps are refused (there
/// is no "off"), and the body budget must hold the largest message; each
/// error names the key. The example config's values are the defaults.
#[test]
fn connection_and_body_limits_are_checked() {
    let base = || ServerConfig {
        insecure_loopback: true,
        index: Some("/x".into()),
        ..ServerConfig::default()
    };
    type Set = fn(&mut Limits);
    let cases: [(&str, Set); 6] = [
        ("handshake_timeout_ms", |l| l.handshake_timeout_ms = 0),
        ("idle_timeout_ms", |l| l.idle_timeout_ms = 0),
        ("stream_stall_timeout_ms", |l| l.stream_stall_timeout_ms = 0),
        ("max_connections_per_peer", |l| {
            l.max_connections_per_peer = 0
        }),
        ("max_body_bytes_in_flight", |l| {
            l.max_body_bytes_in_flight = l.max_message_bytes as u64
        }),
        ("max_body_bytes_in_flight", |l| {
            l.max_message_bytes = 1024;
            l.max_body_bytes_in_flight = 2048;
        }),
    ];
    for (key, set) in cases {
        let mut c = base();
        set(&mut c.limits);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(&format!("limits.{key}")), "{key}: {err}");
    }
    let c =
        ServerConfig::load(None, env(&[("SIGIL_LIMITS__HANDSHAKE_TIMEOUT_MS", "2500")])).unwrap();
    assert_eq!(c.limits.handshake_timeout_ms, 2500);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sigil.example.toml");
    let example = ServerConfig::load(Some(&path), env(&[])).unwrap().limits;
    let defaults = Limits::default();
    assert_eq!(
        (
            example.max_connections_per_peer,
            example.handshake_timeout_ms,
            example.idle_timeout_ms,
            example.stream_stall_timeout_ms,
            example.max_body_bytes_in_flight
        ),
        (
            defaults.max_connections_per_peer,
            defaults.handshake_timeout_ms,
            defaults.idle_timeout_ms,
            defaults.stream_stall_timeout_ms,
            defaults.max_body_bytes_in_flight
        )
    );
}

#[test]
fn unknown_key_is_refused() {
    let err = load_text("[limits]\nmax_bach = 5\n").unwrap_err();
    assert!(err.to_string().contains("max_bach"), "{err}");
}

#[test]
fn no_keys_refused_unless_insecure_loopback() {
    let mut c = ServerConfig::load(None, env(&[("SIGIL_INDEX", "/data/index")])).unwrap();
    let err = c.validate().unwrap_err();
    assert!(err.to_string().contains("no API keys"), "{err}");
    c.insecure_loopback = true;
    c.validate().unwrap();
}

#[test]
fn bad_key_digest_is_named() {
    let mut c = ServerConfig {
        index: Some("/x".into()),
        ..ServerConfig::default()
    };
    c.api_keys.push(ApiKeyConfig {
        name: "k1".into(),
        sha256: "abc".into(),
        role: Role::Reviewer,
        rate_limit_per_s: 1.0,
        burst: Some(1),
    });
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("k1") && err.contains("sha256"), "{err}");
}

/// `[matching]` is sigil-match's `MatchPolicy`: its keys read from the
/// file and the environment, and a value the policy refuses is named by
/// its config key.
#[test]
fn matching_section_is_the_match_policy() {
    let c = load_text(
        "[matching]\nradius = 20\nmax_radius = 40\nquality_threshold = 30\n\
         max_matches = 5\nlist_radius = { ncmec = 10 }\n",
    )
    .unwrap();
    let want = MatchPolicy {
        radius: 20,
        max_radius: 40,
        quality_threshold: 30,
        max_matches: 5,
        list_radius: [("ncmec".to_string(), 10)].into(),
        ..MatchPolicy::default()
    };
    assert_eq!(c.matching, want);
    assert_eq!(ServerConfig::default().matching, MatchPolicy::default());
    let base = || ServerConfig {
        insecure_loopback: true,
        index: Some("/x".into()),
        ..ServerConfig::default()
    };
    for (text, named) in [
        ("radius = 300", "matching.radius is 300"),
        ("max_radius = 257", "matching.max_radius is 257"),
        (
            "radius = 50\nmax_radius = 40",
            "matching.radius 50 is over max_radius 40",
        ),
        (
            "quality_threshold = 101",
            "matching.quality_threshold is 101",
        ),
        ("max_matches = 0", "matching.max_matches is 0"),
        (
            "list_radius = { iwf = 999 }",
            "matching.list_radius.iwf is 999",
        ),
    ] {
        let mut c = base();
        c.matching = load_text(&format!("[matching]\n{text}\n"))
            .unwrap()
            .matching;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(named), "{text}: {err}");
    }
    let c = ServerConfig::load(None, env(&[("SIGIL_MATCHING__QUALITY_THRESHOLD", "20")])).unwrap();
    assert_eq!(c.matching.quality_threshold, 20);
}
