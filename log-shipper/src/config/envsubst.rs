//! `-config.expand-env`: `${VAR}`, `$VAR`, `${VAR:-default}` (also when VAR
//! is empty), `${VAR-default}` (only when unset) and `$$` for a literal `$`,
//! as promtail's envsubst does. An unset variable expands to nothing.

/// Expands `input` with `lookup` (the environment in production).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_dyn(input, &lookup)
}

fn expand_dyn(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'$' {
            // Copy the run up to the next `$` (keeps UTF-8 intact).
            let next = input[i..].find('$').map_or(bytes.len(), |p| i + p);
            line += input[i..next].matches('\n').count();
            out.push_str(&input[i..next]);
            i = next;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = find_close(&input[i + 2..]).ok_or_else(|| {
                    format!("line {line}: unterminated ${{ in environment variable reference")
                })?;
                let inner = &input[i + 2..i + 2 + close];
                out.push_str(&expand_braced(inner, lookup, line)?);
                i += 3 + close;
            }
            Some(&b) if b == b'_' || b.is_ascii_alphabetic() => {
                let len = input[i + 1..]
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(input.len() - i - 1);
                let name = &input[i + 1..i + 1 + len];
                out.push_str(&lookup(name).unwrap_or_default());
                i += 1 + len;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing a `${`, skipping nested `${...}`.
fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand_braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    line: usize,
) -> Result<String, String> {
    let name_len = inner
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() {
        return Err(format!("line {line}: bad substitution ${{{inner}}}"));
    }
    let rest = &inner[name_len..];
    let value = lookup(name);
    if rest.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    if let Some(default) = rest.strip_prefix(":-") {
        return Ok(match value {
            Some(v) if !v.is_empty() => v,
            _ => expand_dyn(default, lookup)?,
        });
    }
    if let Some(default) = rest.strip_prefix('-') {
        return Ok(match value {
            Some(v) => v,
            None => expand_dyn(default, lookup)?,
        });
    }
    Err(format!(
        "line {line}: unsupported substitution ${{{inner}}} (use ${{VAR}}, ${{VAR:-default}} or ${{VAR-default}})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_envsubst() {
        assert_eq!(expand("a ${HOST} b", env).unwrap(), "a web1 b");
        assert_eq!(expand("$HOST-x", env).unwrap(), "web1-x");
        assert_eq!(expand("${NOPE:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand("${EMPTY:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand("${EMPTY-dflt}", env).unwrap(), "");
        assert_eq!(expand("${NOPE-x${HOST}}", env).unwrap(), "xweb1");
        assert_eq!(expand("${NOPE}", env).unwrap(), "");
        assert_eq!(
            expand("cost $$5 and $ alone", env).unwrap(),
            "cost $5 and $ alone"
        );
        assert_eq!(expand("é ${HOST} ü", env).unwrap(), "é web1 ü");
    }

    #[test]
    fn errors_name_the_line() {
        let e = expand("a: 1\nb: ${HOST\n", env).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = expand("x\ny\nz: ${HOST:?oops}", env).unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }
}
