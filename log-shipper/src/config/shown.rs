//! The running config as `/config` shows it: YAML, with every secret
//! replaced by `<secret>` as promtail's secret types print themselves
//! (passwords, bearer tokens, OAuth2 client secrets, authorization
//! credentials, inline TLS keys). Empty secrets stay empty.

use serde_yaml_ng::Value;

use super::Config;

/// Fields holding a secret: (the map they are in, the field); `None`
/// for a field of a list item (a client, a Docker host).
const SECRETS: &[(Option<&str>, &str)] = &[
    (Some("basic_auth"), "password"),
    (Some("authorization"), "credentials"),
    (Some("oauth2"), "client_secret"),
    (Some("tls_config"), "key"),
    (Some("http_tls_config"), "key"),
    (None, "bearer_token"),
];

const MASK: &str = "<secret>";

pub fn shown(cfg: &Config) -> String {
    let mut v = match serde_yaml_ng::to_value(cfg) {
        Ok(v) => v,
        Err(e) => return format!("# the config could not be shown: {e}\n"),
    };
    mask(&mut v, None);
    serde_yaml_ng::to_string(&v)
        .unwrap_or_else(|e| format!("# the config could not be shown: {e}\n"))
}

/// Masks secrets in `v`, a map found under the key `parent` (`None`: a
/// list item or the top).
fn mask(v: &mut Value, parent: Option<&str>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let Some(key) = k.as_str() else { continue };
                let secret = SECRETS.iter().any(|(p, f)| *f == key && *p == parent);
                if secret && val.as_str().is_some_and(|s| !s.is_empty()) {
                    *val = Value::String(MASK.into());
                } else if key == "proxy_connect_header" {
                    // Prometheus' ProxyHeader: every value a secret.
                    for (_, values) in val.as_mapping_mut().into_iter().flatten() {
                        for v in values.as_sequence_mut().into_iter().flatten() {
                            *v = Value::String(MASK.into());
                        }
                    }
                } else if key == "http_headers" {
                    // Prometheus' Secret: each of `secrets` is hidden.
                    for (_, h) in val.as_mapping_mut().into_iter().flatten() {
                        let secrets = h.get_mut("secrets").and_then(Value::as_sequence_mut);
                        for v in secrets.into_iter().flatten() {
                            *v = Value::String(MASK.into());
                        }
                    }
                } else if key == "proxy_url" {
                    // Go's URL prints its password as "xxxxx".
                    if let Some(u) = val.as_str().and_then(redacted_url) {
                        *val = Value::String(u);
                    }
                } else {
                    mask(val, Some(key));
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|i| mask(i, None)),
        Value::Tagged(t) => mask(&mut t.value, parent),
        _ => {}
    }
}

/// `scheme://user:password@host...` with the password replaced.
fn redacted_url(u: &str) -> Option<String> {
    let (scheme, rest) = u.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (userinfo, host) = rest[..end].rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:xxxxx@{host}{}", &rest[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_labels_named_like_them_are_not() {
        let mut v: Value = serde_yaml_ng::from_str(
            "clients:\n- url: http://x\n  bearer_token: tok\n  basic_auth: {username: u, password: p}\n  tls_config: {key: PEM, key_file: /k}\n\
             - url: http://y\n  bearer_token: ''\n\
             scrape_configs:\n- job_name: j\n  static_configs:\n  - labels: {password: visible, bearer_token: visible}\n",
        )
        .unwrap();
        mask(&mut v, None);
        let text = serde_yaml_ng::to_string(&v).unwrap();
        assert!(
            !text.contains(": tok") && !text.contains("password: p\n") && !text.contains("PEM"),
            "{text}"
        );
        assert_eq!(text.matches("<secret>").count(), 3, "{text}");
        assert!(
            text.contains("key_file: /k") && text.contains("bearer_token: ''"),
            "{text}"
        );
        assert_eq!(text.matches("visible").count(), 2, "{text}");
    }

    #[test]
    fn proxy_credentials_are_masked() {
        let mut v: Value = serde_yaml_ng::from_str(
            "clients:\n- url: http://x\n  proxy_url: http://u:pw@proxy:3128/\n  proxy_connect_header: {Proxy-Authorization: [Basic abc, two]}\n",
        )
        .unwrap();
        mask(&mut v, None);
        let text = serde_yaml_ng::to_string(&v).unwrap();
        assert!(
            text.contains("proxy_url: http://u:xxxxx@proxy:3128/"),
            "{text}"
        );
        assert!(!text.contains("abc") && !text.contains("two"), "{text}");
        assert_eq!(text.matches("<secret>").count(), 2, "{text}");
    }

    #[test]
    fn http_header_secrets_are_masked_and_values_shown() {
        let mut v: Value = serde_yaml_ng::from_str(
            "clients:\n- url: http://x\n  http_headers: {X-Key: {values: [plain], secrets: [hidden1, hidden2], files: [/f]}}\n",
        )
        .unwrap();
        mask(&mut v, None);
        let text = serde_yaml_ng::to_string(&v).unwrap();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains("plain") && text.contains("/f"), "{text}");
        assert_eq!(text.matches("<secret>").count(), 2, "{text}");
    }
}
