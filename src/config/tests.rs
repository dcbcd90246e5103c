use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
    Config::from_raw(raw, &Overrides::default())
}

#[test]
fn defaults_serve_localhost_on_loopback_with_open_registration() {
    let c = parse("").expect("defaults are valid");
    assert_eq!(c.server_name, "localhost");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8008");
    assert_eq!(c.data_dir, PathBuf::from("hearth-data"));
    assert_eq!(c.registration, Registration::Open);
    assert!(c.public_base_url.is_none());
}

#[test]
fn listening_beyond_loopback_closes_registration_unless_chosen() {
    let c = parse("listen = \"0.0.0.0:8008\"").expect("valid");
    assert_eq!(c.registration, Registration::Closed);
    assert!(c.registration_defaulted_closed);
    let c = parse("listen = \"0.0.0.0:8008\"\nregistration = \"token\"").expect("valid");
    assert_eq!(c.registration, Registration::Token);
    assert!(!c.registration_defaulted_closed);
}

#[test]
fn bad_values_name_the_key() {
    let e = parse("registration = \"sometimes\"").expect_err("invalid");
    assert!(e.0.starts_with("registration:"), "{e}");
    let e = parse("listen = \"nowhere\"").expect_err("invalid");
    assert!(e.0.starts_with("listen:"), "{e}");
    let e = parse("db_cache_mb = 0").expect_err("invalid");
    assert!(e.0.starts_with("db_cache_mb:"), "{e}");
    let e = parse("server_name = \"bad name\"").expect_err("invalid");
    assert!(e.0.starts_with("server_name:"), "{e}");
}

#[test]
fn tls_needs_both_the_certificate_and_the_key() {
    let e = parse("tls_cert = \"a.crt\"").expect_err("no key");
    assert!(e.0.starts_with("tls_key:"), "{e}");
    let e = parse("tls_key = \"a.key\"").expect_err("no cert");
    assert!(e.0.starts_with("tls_cert:"), "{e}");
    let c = parse("tls_cert = \"a.crt\"\ntls_key = \"a.key\"").expect("valid");
    assert_eq!(c.tls, Some(TlsFiles { cert: "a.crt".into(), key: "a.key".into() }));
}

#[test]
fn unknown_keys_are_rejected() {
    let e = parse("lisen = \"127.0.0.1:1\"").expect_err("typo");
    assert!(e.0.contains("lisen"), "{e}");
}

#[test]
fn the_example_file_parses_and_matches_the_defaults() {
    let example = parse(include_str!("../../hearth.example.toml")).expect("example is valid");
    let defaults = parse("").expect("defaults");
    assert_eq!(example.server_name, defaults.server_name);
    assert_eq!(example.listen, defaults.listen);
    assert_eq!(example.data_dir, defaults.data_dir);
    assert_eq!(example.max_connections, defaults.max_connections);
    assert_eq!(example.max_request_body_bytes, defaults.max_request_body_bytes);
    assert_eq!(example.db_cache_bytes, defaults.db_cache_bytes);
    assert_eq!(example.access_token_lifetime_ms, defaults.access_token_lifetime_ms);
    assert_eq!(example.login_attempts_per_minute, defaults.login_attempts_per_minute);
    assert_eq!(example.log, defaults.log);
    assert_eq!(example.max_upload_bytes, defaults.max_upload_bytes);
    assert_eq!(example.media_quota_bytes, defaults.media_quota_bytes);
    assert_eq!(example.legacy_media, defaults.legacy_media);
    assert_eq!(example.url_previews, defaults.url_previews);
    assert_eq!(example.url_preview_allow, defaults.url_preview_allow);
    assert_eq!(example.max_thumbnail_pixels, defaults.max_thumbnail_pixels);
    assert_eq!(example.metrics_listen, defaults.metrics_listen);
    assert_eq!(example.admin_contact, defaults.admin_contact);
    assert_eq!(example.min_free_disk_bytes, defaults.min_free_disk_bytes);
    assert_eq!(example.tls, defaults.tls);
    assert_eq!(example.mdns, defaults.mdns);
    assert_eq!(example.presence, defaults.presence);
    assert_eq!(example.user_directory_search_all, defaults.user_directory_search_all);
    assert_eq!(example.turn, defaults.turn);
    assert_eq!(example.rtc_foci, defaults.rtc_foci);
    assert_eq!(
        example.login_attempts_per_user_per_minute,
        defaults.login_attempts_per_user_per_minute
    );
    assert_eq!(example.registrations_per_minute, defaults.registrations_per_minute);
    assert_eq!(
        example.registrations_per_minute_loopback,
        defaults.registrations_per_minute_loopback
    );
    assert_eq!(example.timeouts, defaults.timeouts);
    assert_eq!(example.max_devices_per_user, defaults.max_devices_per_user);
}

#[test]
fn federation_true_is_refused_until_federation_exists() {
    let e = parse("federation = true").expect_err("no federation code");
    assert!(e.0.starts_with("federation:"), "{e}");
    parse("federation = false").expect("the offline default");
}

#[test]
fn mdns_is_off_by_default_and_takes_a_local_server_name() {
    assert_eq!(parse("").expect("defaults").mdns, None);
    assert_eq!(parse("mdns = false\nmdns_name = \"x.local\"").expect("off").mdns, None);
    let c = parse("server_name = \"Hearth.local:8448\"\nmdns = true").expect("valid");
    let mdns = c.mdns.expect("on");
    assert_eq!(mdns.name, "hearth.local");
    assert_eq!(mdns.listen.to_string(), "0.0.0.0:5353");
    let c = parse("mdns = true\nmdns_name = \"Pi.local.\"\nmdns_listen = \"127.0.0.1:0\"")
        .expect("valid");
    assert_eq!(
        c.mdns,
        Some(MdnsConfig { name: "pi.local".into(), listen: "127.0.0.1:0".parse().expect("addr") })
    );
}

#[test]
fn bad_mdns_settings_name_the_key() {
    let e = parse("mdns = true").expect_err("localhost is not .local");
    assert!(e.0.starts_with("mdns_name:"), "{e}");
    for name in ["hearth.lan", "local", ".local", "a..local", "-a.local", "a_b.local"] {
        let e = parse(&format!("mdns = true\nmdns_name = {name:?}")).expect_err(name);
        assert!(e.0.starts_with("mdns_name:"), "{name}: {e}");
    }
    let e = parse(&format!("mdns = true\nmdns_name = \"{}.local\"", "a".repeat(64)))
        .expect_err("label too long");
    assert!(e.0.starts_with("mdns_name:"), "{e}");
    for listen in ["nowhere", "[::]:5353"] {
        let e = parse(&format!("mdns = true\nmdns_name = \"h.local\"\nmdns_listen = {listen:?}"))
            .expect_err(listen);
        assert!(e.0.starts_with("mdns_listen:"), "{listen}: {e}");
    }
}

#[test]
fn overrides_win_over_the_file() {
    let raw: RawConfig = toml::from_str("server_name = \"a.example\"").expect("toml");
    let ov = Overrides { server_name: Some("b.example".into()), ..Overrides::default() };
    assert_eq!(Config::from_raw(raw, &ov).expect("valid").server_name, "b.example");
}

#[test]
fn turn_is_off_by_default_and_takes_uris_with_a_shared_secret() {
    assert_eq!(parse("").expect("defaults").turn, None);
    let c = parse(
        "turn_uris = [\"turn:pi.example.org:3478?transport=udp\", \"turns:pi.example.org:5349\"]\n\
         turn_shared_secret = \"s3cret\"",
    )
    .expect("valid");
    let turn = c.turn.expect("configured");
    assert_eq!(turn.uris.len(), 2);
    assert_eq!(turn.credentials, TurnCredentials::SharedSecret("s3cret".into()));
    assert_eq!(turn.user_lifetime_secs, 86_400, "one day by default");
    assert!(turn.allow_guests);
    assert!(!format!("{turn:?}").contains("s3cret"), "the secret stays out of logs");
    let c = parse(
        "turn_uris = [\"turn:10.0.0.2\"]\nturn_username = \"u\"\nturn_password = \"p\"\n\
         turn_user_lifetime = \"12h\"\nturn_allow_guests = false",
    )
    .expect("valid");
    let turn = c.turn.expect("configured");
    assert_eq!(
        turn.credentials,
        TurnCredentials::Static { username: "u".into(), password: "p".into() }
    );
    assert_eq!(turn.user_lifetime_secs, 12 * 3600);
    assert!(!turn.allow_guests);
}

#[test]
fn bad_turn_settings_name_the_key() {
    let uri = "turn_uris = [\"turn:pi.example.org\"]\n";
    let cases = [
        (uri.to_owned(), "turn_uris:"),
        ("turn_shared_secret = \"s\"".to_owned(), "turn_uris:"),
        ("turn_uris = [\"stun:pi.example.org\"]\nturn_shared_secret = \"s\"".into(), "turn_uris:"),
        ("turn_uris = [\"turn:\"]\nturn_shared_secret = \"s\"".into(), "turn_uris:"),
        (format!("{uri}turn_shared_secret = \" \""), "turn_shared_secret:"),
        (format!("{uri}turn_shared_secret = \"s\"\nturn_username = \"u\""), "turn_shared_secret:"),
        (format!("{uri}turn_username = \"u\""), "turn_password:"),
        (format!("{uri}turn_password = \"p\""), "turn_username:"),
        (
            format!("{uri}turn_shared_secret = \"s\"\nturn_user_lifetime = \"1\""),
            "turn_user_lifetime:",
        ),
        (
            format!("{uri}turn_shared_secret = \"s\"\nturn_user_lifetime = \"10s\""),
            "turn_user_lifetime:",
        ),
        (
            format!("{uri}turn_shared_secret = \"s\"\nturn_user_lifetime = \"31d\""),
            "turn_user_lifetime:",
        ),
        (
            format!("{uri}turn_shared_secret = \"s\"\nturn_user_lifetime = \"-1h\""),
            "turn_user_lifetime:",
        ),
    ];
    for (text, key) in cases {
        let e = parse(&text).expect_err(&text);
        assert!(e.0.starts_with(key), "{text}: {e}");
    }
    for (text, secs) in [("90s", 90), ("30m", 1800), ("1d", 86_400), ("30d", 30 * 86_400)] {
        let c = parse(&format!("{uri}turn_shared_secret = \"s\"\nturn_user_lifetime = {text:?}"))
            .expect(text);
        assert_eq!(c.turn.expect("on").user_lifetime_secs, secs, "{text}");
    }
}

#[test]
fn rtc_foci_take_livekit_service_urls() {
    assert!(parse("").expect("defaults").rtc_foci.is_empty());
    let c = parse(
        "rtc_foci = [{ type = \"livekit\", livekit_service_url = \"https://rtc.example.org/livekit/jwt/\" }]",
    )
    .expect("valid");
    assert_eq!(
        c.rtc_foci,
        vec![RtcFocus::LiveKit { service_url: "https://rtc.example.org/livekit/jwt/".into() }]
    );
    for (text, key) in [
        ("rtc_foci = [{ type = \"mesh\" }]", "rtc_foci[0].type:"),
        ("rtc_foci = [{ type = \"livekit\" }]", "rtc_foci[0].livekit_service_url:"),
        (
            "rtc_foci = [{ type = \"livekit\", livekit_service_url = \"https://a\" }, \
             { type = \"livekit\", livekit_service_url = \"wss://b\" }]",
            "rtc_foci[1].livekit_service_url:",
        ),
    ] {
        let e = parse(text).expect_err(text);
        assert!(e.0.starts_with(key), "{text}: {e}");
    }
    let e = parse("rtc_foci = [{ type = \"livekit\", url = \"https://a\" }]").expect_err("typo");
    assert!(e.0.contains("url"), "{e}");
}

#[test]
fn timeouts_and_limits_are_checked() {
    let c = parse("idle_timeout_ms = 500").expect("valid");
    assert_eq!(c.timeouts.idle, Duration::from_millis(500));
    assert_eq!(c.timeouts.header_read, Duration::from_secs(30));
    for key in ["header_read_timeout_ms", "idle_timeout_ms", "body_read_timeout_ms"] {
        let e = parse(&format!("{key} = 0")).expect_err("zero");
        assert!(e.0.starts_with(key), "{e}");
    }
    let e = parse("registrations_per_minute = 0").expect_err("zero");
    assert!(e.0.starts_with("registrations_per_minute:"), "{e}");
}

#[test]
fn preview_allow_entries_may_carry_a_port_and_bad_ones_are_refused() {
    let c = parse(r#"url_preview_allow = ["127.0.0.1:8080", "192.168.1.0/24:80", "::1", "[::1]:80", "10.0.0.0/8"]"#)
        .expect("valid");
    assert_eq!(c.url_preview_allow.len(), 5);
    for bad in ["localhost", "10.0.0.0/33", "127.0.0.1:0", "127.0.0.1:x", "1.2.3.4/8:99999"] {
        let e = parse(&format!("url_preview_allow = [{bad:?}]")).expect_err(bad);
        assert!(e.0.starts_with("url_preview_allow:"), "{bad}: {e}");
    }
}

#[test]
fn max_devices_per_user_defaults_to_100_and_is_bounded() {
    assert_eq!(parse("").expect("defaults").max_devices_per_user, 100);
    assert_eq!(parse("max_devices_per_user = 5").expect("valid").max_devices_per_user, 5);
    let e = parse("max_devices_per_user = 1").expect_err("too few");
    assert!(e.0.starts_with("max_devices_per_user:"), "{e}");
}
