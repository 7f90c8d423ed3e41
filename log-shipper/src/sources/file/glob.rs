//! `__path__` globs as promtail evaluates them (doublestar): `*` and `?`
//! stay within one path component, `**` spans any number, `{a,b}` is an
//! alternation, `[...]` a class. Expansion walks only the directory tree
//! under the glob's literal prefix.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

#[derive(Clone, Debug)]
pub struct PathGlob {
    pattern: String,
    matcher: GlobMatcher,
    /// The longest leading directory without glob characters.
    base: PathBuf,
    /// How deep below `base` a match can be (`None` with `**`).
    max_depth: Option<usize>,
    literal: bool,
}

fn is_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | '{')
}

impl PathGlob {
    pub fn new(pattern: &str) -> Result<PathGlob, String> {
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid __path__ glob {pattern:?}: {e}"))?
            .compile_matcher();
        let mut base = PathBuf::new();
        let mut rest = Vec::new();
        let mut in_glob = false;
        for comp in pattern.split('/') {
            if !in_glob && !comp.contains(is_meta) {
                if comp.is_empty() && base.as_os_str().is_empty() {
                    base.push("/");
                } else if !comp.is_empty() {
                    base.push(comp);
                }
            } else {
                in_glob = true;
                rest.push(comp);
            }
        }
        let literal = rest.is_empty();
        let max_depth = if rest.iter().any(|c| c.contains("**")) {
            None
        } else {
            Some(rest.len())
        };
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        Ok(PathGlob {
            pattern: pattern.to_string(),
            matcher,
            base,
            max_depth,
            literal,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn is_match(&self, path: &Path) -> bool {
        self.matcher.is_match(path)
    }

    /// The directories whose changes can add or remove matches (for
    /// inotify): the literal base.
    pub fn base(&self) -> &Path {
        if self.literal {
            self.base.parent().unwrap_or(Path::new("/"))
        } else {
            &self.base
        }
    }

    /// Whether matches can be deeper than one directory below [`Self::base`].
    pub fn recursive(&self) -> bool {
        !self.literal && self.max_depth != Some(1)
    }

    /// Every regular file (or symlink to one) matching now, sorted.
    pub fn expand(&self, exclude: Option<&PathGlob>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if self.literal {
            if std::fs::metadata(&self.base).is_ok_and(|m| m.is_file()) {
                out.push(self.base.clone());
            }
            return out;
        }
        let mut walk = walkdir::WalkDir::new(&self.base).follow_links(true);
        if let Some(d) = self.max_depth {
            walk = walk.max_depth(d);
        }
        for entry in walk.into_iter().filter_map(Result::ok) {
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if self.matcher.is_match(path) && !exclude.is_some_and(|e| e.is_match(path)) {
                out.push(path.to_path_buf());
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x\n").unwrap();
    }

    #[test]
    fn double_star_braces_and_exclude() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "a.log",
            "b.txt",
            "x/c.log",
            "x/y/d.log",
            "x/y/e.gz",
            "skip/f.log",
        ] {
            touch(&root.join(f));
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(root).unwrap().display().to_string())
                .collect()
        };
        let g = PathGlob::new(&format!("{}/*.log", root.display())).unwrap();
        assert_eq!(rel(g.expand(None)), vec!["a.log"]);
        let g = PathGlob::new(&format!("{}/**/*.{{log,gz}}", root.display())).unwrap();
        let ex = PathGlob::new(&format!("{}/skip/*", root.display())).unwrap();
        assert_eq!(
            rel(g.expand(Some(&ex))),
            vec!["a.log", "x/c.log", "x/y/d.log", "x/y/e.gz"]
        );
        let g = PathGlob::new(&format!("{}/x/c.log", root.display())).unwrap();
        assert_eq!(rel(g.expand(None)), vec!["x/c.log"]);
        assert_eq!(g.base(), root.join("x"));
        assert!(PathGlob::new("/var/log/[").is_err());
    }
}
