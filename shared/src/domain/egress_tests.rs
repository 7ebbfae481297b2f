use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every refused IPv4 range at its edges, and the first public address either side.
#[test]
fn ipv4_special_ranges_are_refused_at_both_edges() {
    let refused = [
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "169.254.0.0",
        "169.254.169.254",
        "169.254.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.0",
        "192.0.0.255",
        "192.0.2.0",
        "192.0.2.255",
        "192.88.99.1",
        "192.168.0.0",
        "192.168.255.255",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.255",
        "224.0.0.1",
        "239.255.255.255",
        "240.0.0.0",
        "255.255.255.255",
    ];
    for a in refused {
        assert!(matches!(reach(ip(a)), Reach::Refused(_)), "{a}: {:?}", reach(ip(a)));
        assert!(!Egress::LOCAL.permits(ip(a)), "{a}");
    }
    let public = [
        "1.0.0.0",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "203.0.112.255",
        "223.255.255.255",
    ];
    for a in public {
        assert_eq!(reach(ip(a)), Reach::Public, "{a}");
        assert!(Egress::PUBLIC.permits(ip(a)), "{a}");
    }
}

#[test]
fn loopback_is_refused_unless_the_local_setting_allows_it() {
    for a in ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(reach(ip(a)), Reach::Loopback, "{a}");
        assert_eq!(Egress::PUBLIC.check(ip(a)), Err(RefusedAddress { ip: ip(a), range: "loopback" }));
        assert!(Egress::LOCAL.permits(ip(a)), "{a}");
    }
    // The setting opens loopback only: the metadata endpoint stays shut.
    assert!(!Egress::LOCAL.permits(ip("169.254.169.254")));
}

#[test]
fn ipv6_outside_public_unicast_is_refused() {
    let refused = [
        "::",
        "fc00::1",
        "fdff:ffff::1",
        "fe80::1",
        "febf:ffff::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "100::1",
        "5f00::1",
        "64:ff9b:1::1",
        "2001::1",
        "2001:1ff:ffff::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "2002:c000:0201::1",
        "3fff::1",
        "3fff:fff::1",
        "4000::1",
        "1fff:ffff::1",
    ];
    for a in refused {
        assert!(matches!(reach(ip(a)), Reach::Refused(_)), "{a}: {:?}", reach(ip(a)));
    }
    for a in ["2000::1", "2001:200::1", "2001:4860:4860::8888", "2606:4700::1111", "2a00::1", "3ffe::1", "3fff:1000::1"]
    {
        assert_eq!(reach(ip(a)), Reach::Public, "{a}");
    }
}

/// IPv4 written inside IPv6 is judged by the IPv4 address, so no refused range has a
/// back door through another notation.
#[test]
fn embedded_ipv4_forms_cannot_reach_refused_ranges() {
    for v4 in ["10.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "172.16.0.1"] {
        let mapped = format!("::ffff:{v4}");
        let compatible = format!("::{v4}");
        let nat64 = format!("64:ff9b::{v4}");
        for form in [mapped, compatible, nat64] {
            assert!(matches!(reach(ip(&form)), Reach::Refused(_)), "{form}: {:?}", reach(ip(&form)));
        }
    }
    assert_eq!(reach(ip("::ffff:8.8.8.8")), Reach::Public);
    assert_eq!(reach(ip("64:ff9b::8.8.8.8")), Reach::Public);
    assert!(!Egress::LOCAL.permits(ip("64:ff9b::127.0.0.1")), "NAT64 to loopback leaves the host");
    // Deprecated and never routed as IPv4, whatever is inside.
    assert!(matches!(reach(ip("::8.8.8.8")), Reach::Refused(_)));
}

#[test]
fn refusals_name_the_range() {
    let e = Egress::PUBLIC.check(ip("169.254.169.254")).err().map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("169.254.169.254 is not a public address (link-local 169.254.0.0/16)"));
}

#[test]
fn https_urls_to_public_hosts_are_accepted_and_normalized() {
    let u = parse_url("HTTPS://Hooks.Example.COM:8443/alerts/in?x=1&y=%20", Egress::PUBLIC);
    let Ok(u) = u else { panic!("{u:?}") };
    assert_eq!(u.text, "https://hooks.example.com:8443/alerts/in?x=1&y=%20");
    assert_eq!((u.host, u.port), (Host::Name("hooks.example.com".into()), 8443));
    let v6 = parse_url("https://[2606:4700::1111]/h", Egress::PUBLIC);
    assert_eq!(v6.map(|u| (u.text, u.port)), Ok(("https://[2606:4700::1111]/h".to_owned(), 443)));
    assert_eq!(parse_url("https://8.8.8.8", Egress::PUBLIC).map(|u| u.text), Ok("https://8.8.8.8".to_owned()));
}

#[test]
fn bad_urls_are_refused_with_their_reason() {
    let cases: &[(&str, UrlError)] = &[
        ("http://hooks.example.com/", UrlError::Scheme),
        ("ftp://hooks.example.com/", UrlError::Scheme),
        ("hooks.example.com/in", UrlError::Scheme),
        ("https://user:pw@hooks.example.com/", UrlError::UserInfo),
        ("https://hooks.example.com@169.254.169.254/", UrlError::UserInfo),
        ("https://hooks.example.com/in#top", UrlError::Fragment),
        ("https:///in", UrlError::Host),
        ("https://bad_host.example.com/", UrlError::Host),
        ("https://-bad.example.com/", UrlError::Host),
        ("https://a..b/", UrlError::Host),
        ("https://2130706433/", UrlError::Host),
        ("https://127.1/", UrlError::Host),
        ("https://0x7f.0.0.1/", UrlError::Host),
        ("https://010.0.0.1/", UrlError::Host),
        ("https://[fe80::1%25eth0]/", UrlError::Host),
        ("https://[::1/", UrlError::Host),
        ("https://hooks.example.com:0/", UrlError::Port),
        ("https://hooks.example.com:65536/", UrlError::Port),
        ("https://hooks.example.com:/", UrlError::Port),
        ("https://hooks.example.com:x/", UrlError::Port),
        ("https://hooks.example.com/a b", UrlError::Characters),
        ("https://hooks.exämple.com/", UrlError::Characters),
        ("https://hooks.example.com/\u{0}", UrlError::Characters),
    ];
    for (url, want) in cases {
        assert_eq!(parse_url(url, Egress::PUBLIC).as_ref().err(), Some(want), "{url}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_CHARS));
    assert_eq!(parse_url(&long, Egress::PUBLIC).err(), Some(UrlError::Characters));
}

#[test]
fn literal_private_hosts_are_refused_when_saved() {
    for url in [
        "https://10.0.0.5/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/",
        "https://[::ffff:192.168.0.1]/",
        "https://127.0.0.1/",
        "https://localhost:8443/",
        "https://hooks.localhost/",
    ] {
        assert!(matches!(parse_url(url, Egress::PUBLIC), Err(UrlError::NotPublic(_))), "{url}");
    }
}

#[test]
fn the_local_setting_allows_loopback_and_plain_http_only_to_it() {
    for url in ["https://127.0.0.1:9000/in", "http://127.0.0.1:9000/in", "http://localhost:9000/", "http://[::1]:9/"] {
        assert!(parse_url(url, Egress::LOCAL).is_ok(), "{url}");
    }
    assert_eq!(parse_url("http://hooks.example.com/", Egress::LOCAL), Err(UrlError::Scheme));
    assert!(matches!(parse_url("http://10.0.0.1/", Egress::LOCAL), Err(UrlError::NotPublic(_))));
    assert_eq!(parse_url("http://127.0.0.1/", Egress::PUBLIC), Err(UrlError::Scheme));
}
