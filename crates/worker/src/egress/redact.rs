//! URLs as logs may show them: no userinfo, no query, no fragment.

/// `url` as it may appear in logs: without userinfo, and with its query and fragment
/// replaced by `…` (`https://api.example/path?key=secret` → `https://api.example/path?…`).
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let query = u.query().is_some();
            let fragment = u.fragment().is_some();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            let mut s = u.to_string();
            if query {
                s.push_str("?…");
            }
            if fragment {
                s.push_str("#…");
            }
            s
        }
        Err(_) => {
            // Not a URL: keep what precedes a query or fragment, without anything that looks
            // like userinfo.
            let cut = url.find(['?', '#']);
            let (head, tail) = url.split_at(cut.unwrap_or(url.len()));
            let start = match head.find("://") {
                Some(i) => i + 3,
                None if head.starts_with("//") => 2,
                None => 0,
            };
            let authority_end = head[start..].find('/').map_or(head.len(), |i| start + i);
            let head = match head[start..authority_end].rfind('@') {
                Some(at) => format!("{}{}", &head[..start], &head[start + at + 1..]),
                None => head.to_string(),
            };
            let marker = match tail.chars().next() {
                Some(c) => format!("{c}…"),
                None => String::new(),
            };
            let mut head: String = head.chars().take(200).collect();
            head.push_str(&marker);
            head
        }
    }
}
