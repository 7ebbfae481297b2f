use super::*;
use axum::body::to_bytes;
use axum::http::Request;
use tower::ServiceExt;

async fn get(path: &str, if_none_match: Option<&str>) -> Response {
    let mut req = Request::get(path);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let req = req.body(Body::empty()).unwrap_or_else(|e| panic!("{e}"));
    router().oneshot(req).await.unwrap_or_else(|e| match e {})
}

fn header_of<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn the_page_has_a_strict_policy_and_no_inline_script() {
    let resp = get("/console", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "content-type"), "text/html; charset=utf-8");
    let csp = header_of(&resp, "content-security-policy");
    assert!(csp.contains("script-src 'self';") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header_of(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(header_of(&resp, "referrer-policy"), "no-referrer");
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_else(|e| panic!("{e}"));
    let html = String::from_utf8_lossy(&body);
    for (i, tag) in html.match_indices("<script").map(|(i, _)| &html[i..]).enumerate() {
        let open = &tag[..tag.find('>').unwrap_or(tag.len())];
        assert!(open.contains(" src="), "script {i} is inline: {open}");
        assert!(tag[open.len() + 1..].starts_with("</script>"), "script {i} has a body");
    }
    assert!(!html.contains(" style=") && !html.contains("<style"), "inline style");
    let handler = html.split_whitespace().find(|w| {
        w.strip_prefix("on").is_some_and(|rest| {
            rest.split_once('=').is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase()))
        })
    });
    assert_eq!(handler, None, "inline event handler");
}

#[tokio::test]
async fn every_web_file_is_served_with_its_type_and_revalidated() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut served: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
    served.sort();
    assert_eq!(names, served, "web/ and ASSETS differ");
    for name in names.iter().filter(|n| *n != "index.html") {
        let resp = get(&format!("/console/{name}"), None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let want = if name.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(header_of(&resp, "content-type"), want, "{name}");
        assert_eq!(header_of(&resp, "cache-control"), "no-cache");
        assert_eq!(header_of(&resp, "access-control-allow-origin"), "*");
        let etag = header_of(&resp, "etag").to_owned();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body, std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{e}")), "{name}");
        let again = get(&format!("/console/{name}"), Some(&format!("W/{etag}"))).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
    }
}

#[tokio::test]
async fn unknown_files_are_contract_404s() {
    for path in ["/console/nope.js", "/console/index.html", "/console/..%2fCargo.toml"] {
        let resp = get(path, None).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(String::from_utf8_lossy(&body).contains(r#""code":"not_found""#));
    }
}

#[test]
fn no_module_builds_markup_from_strings() {
    // The component never parses a string as HTML; Trusted Types would refuse it on
    // /console, and an embedding page may not enforce them.
    for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!a.body.contains(sink), "{} uses {sink}", a.name);
        }
        assert!(!a.body.contains("console.log"), "{} logs", a.name);
        assert!(!a.body.contains("localStorage") && !a.body.contains("sessionStorage"), "{} stores", a.name);
    }
}
