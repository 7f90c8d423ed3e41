//! The Go `text/template` subset promtail's `template` and `replace`
//! stages are written in: text and `{{ }}` actions (with `{{-`/`-}}` trim
//! markers and comments), pipelines (`.Value | ToUpper`), parenthesized
//! calls, `if`/`else if`/`else`/`end`, `with`, and the functions promtail
//! adds (ToLower, ToUpper, Replace, Trim*, Hash, Sha2Hash, regexReplaceAll,
//! regexReplaceAllLiteral) plus the Go builtins and common sprig functions
//! (default, contains, hasPrefix, hasSuffix, trim, upper, lower, ...).
//!
//! As in Go, a missing map key prints `<no value>`, and passing it to a
//! function that wants a string is an execution error (the stage then
//! leaves the entry alone, as promtail does).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use sha2::Digest as _;

use super::fastcap::utf8_len;

/// The data a template runs on: string values by key (`.key`).
pub trait Data {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Data for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A missing key (Go's nil interface).
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
        }
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<no value>"),
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&exporter_toolkit::exposition::format_float(*f)),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Field(Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Pipe),
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Pipe {
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If {
        branches: Vec<(Pipe, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

const FUNCS: &[&str] = &[
    // promtail's own
    "ToLower",
    "ToUpper",
    "Replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "Hash",
    "Sha2Hash",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    // Go builtins
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "print",
    "printf",
    "println",
    // sprig
    "default",
    "empty",
    "coalesce",
    "ternary",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "title",
    "replace",
    "repeat",
    "trunc",
    "quote",
    "squote",
    "toString",
    "regexMatch",
    "regexFind",
    "sha256sum",
];

// ------------------------------------------------------------------ parse

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let tokens = split_actions(source)?;
        let mut p = Parser { tokens, pos: 0 };
        let (nodes, end) = p.nodes()?;
        if let Some(end) = end {
            return Err(format!("template: unexpected {{{{{end}}}}}"));
        }
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the template on `data`; `out` receives the text.
    pub fn execute(&self, data: &dyn Data, out: &mut String) -> Result<(), String> {
        let dot = Dot::Root;
        exec_nodes(&self.nodes, data, &dot, out)
    }
}

enum Piece {
    Text(String),
    Action(String),
}

/// Splits the source into text and action bodies, applying trim markers
/// and removing comments.
fn split_actions(src: &str) -> Result<Vec<Piece>, String> {
    let mut out: Vec<Piece> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut body = &rest[open + 2..];
        if body.starts_with("- ") || body.starts_with("-\t") || body.starts_with("-\n") {
            text = text.trim_end();
            body = &body[1..];
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_string()));
        }
        let close = find_close(body).ok_or("template: unclosed action (missing \"}}\")")?;
        let mut inner = &body[..close];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        let inner = inner.trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err("template: unclosed comment".into());
            }
        } else {
            out.push(Piece::Action(inner.to_string()));
        }
        rest = &body[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Piece::Text(text.to_string()));
    }
    Ok(out)
}

/// The `}}` closing an action, skipping quoted strings.
fn find_close(body: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser {
    tokens: Vec<Piece>,
    pos: usize,
}

impl Parser {
    /// Nodes up to an `else`/`end` (returned) or the end of input.
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<String>), String> {
        let mut nodes = Vec::new();
        while self.pos < self.tokens.len() {
            let i = self.pos;
            self.pos += 1;
            match &self.tokens[i] {
                Piece::Text(t) => nodes.push(Node::Text(t.clone())),
                Piece::Action(a) => {
                    let a = a.clone();
                    let (word, rest) = split_keyword(&a);
                    match word {
                        "end" | "else" => return Ok((nodes, Some(a))),
                        "if" => nodes.push(self.if_node(rest)?),
                        "with" => {
                            let pipe = parse_pipe(rest)?;
                            let (body, end) = self.nodes()?;
                            let otherwise = self.else_part(end, "with")?;
                            nodes.push(Node::With {
                                pipe,
                                body,
                                otherwise,
                            });
                        }
                        "range" | "define" | "template" | "block" => {
                            return Err(format!("template: {word:?} is not supported"))
                        }
                        _ => nodes.push(Node::Action(parse_pipe(&a)?)),
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    fn if_node(&mut self, cond: &str) -> Result<Node, String> {
        let mut branches = vec![];
        let mut cond = parse_pipe(cond)?;
        loop {
            let (body, end) = self.nodes()?;
            branches.push((cond, body));
            let end = end.ok_or("template: unexpected EOF (missing {{end}} of if)")?;
            let (word, rest) = split_keyword(&end);
            if word == "end" {
                return Ok(Node::If {
                    branches,
                    otherwise: vec![],
                });
            }
            // else
            let (w2, rest2) = split_keyword(rest);
            if w2 == "if" {
                cond = parse_pipe(rest2)?;
                continue;
            }
            if !rest.trim().is_empty() {
                return Err(format!("template: unexpected {rest:?} after else"));
            }
            let (otherwise, end) = self.nodes()?;
            match end.as_deref().map(split_keyword) {
                Some(("end", _)) => {
                    return Ok(Node::If {
                        branches,
                        otherwise,
                    })
                }
                _ => return Err("template: expected {{end}} after {{else}}".into()),
            }
        }
    }

    fn else_part(&mut self, end: Option<String>, what: &str) -> Result<Vec<Node>, String> {
        let end = end.ok_or(format!(
            "template: unexpected EOF (missing {{{{end}}}} of {what})"
        ))?;
        match split_keyword(&end).0 {
            "end" => Ok(vec![]),
            _ => {
                let (otherwise, end) = self.nodes()?;
                match end.as_deref().map(split_keyword) {
                    Some(("end", _)) => Ok(otherwise),
                    _ => Err(format!("template: expected {{{{end}}}} of {what}")),
                }
            }
        }
    }
}

fn split_keyword(action: &str) -> (&str, &str) {
    let a = action.trim_start();
    let end = a
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(a.len());
    (&a[..end], &a[end..])
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Field(Vec<String>),
    Dot,
    Lit(Value),
    Pipe,
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            b'(' => {
                out.push(Tok::Open);
                i += 1
            }
            b')' => {
                out.push(Tok::Close);
                i += 1
            }
            b'"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err("template: unterminated quoted string".into());
                    };
                    match ch {
                        b'"' => break,
                        b'\\' => {
                            i += 1;
                            match b.get(i) {
                                Some(b'n') => v.push('\n'),
                                Some(b't') => v.push('\t'),
                                Some(b'r') => v.push('\r'),
                                Some(b'\\') => v.push('\\'),
                                Some(b'"') => v.push('"'),
                                Some(other) => {
                                    return Err(format!(
                                        "template: unsupported escape \\{}",
                                        *other as char
                                    ))
                                }
                                None => return Err("template: unterminated quoted string".into()),
                            }
                            i += 1;
                        }
                        _ => {
                            let len = utf8_len(ch);
                            v.push_str(&s[i..i + len]);
                            i += len;
                        }
                    }
                }
                i += 1;
                out.push(Tok::Lit(Value::Str(v)));
            }
            b'`' => {
                let end = s[i + 1..]
                    .find('`')
                    .ok_or("template: unterminated raw string")?;
                out.push(Tok::Lit(Value::Str(s[i + 1..i + 1 + end].to_string())));
                i += end + 2;
            }
            b'.' => {
                let start = i;
                let mut path = Vec::new();
                while i < b.len() && b[i] == b'.' {
                    i += 1;
                    let st = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    if st == i {
                        break;
                    }
                    path.push(s[st..i].to_string());
                }
                if path.is_empty() {
                    if i - start != 1 {
                        return Err(format!("template: bad field {:?}", &s[start..i]));
                    }
                    out.push(Tok::Dot);
                } else {
                    out.push(Tok::Field(path));
                }
            }
            b'$' => return Err("template: variables ($) are not supported".into()),
            b'-' | b'0'..=b'9' => {
                let st = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                let t = &s[st..i];
                let v = if let Ok(n) = t.parse::<i64>() {
                    Value::Int(n)
                } else if let Ok(f) = t.parse::<f64>() {
                    Value::Float(f)
                } else {
                    return Err(format!("template: bad number syntax: {t:?}"));
                };
                out.push(Tok::Lit(v));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let w = &s[st..i];
                out.push(match w {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Nil),
                    _ => Tok::Word(w.to_string()),
                });
            }
            _ => {
                return Err(format!(
                    "template: unexpected {:?} in action",
                    &s[i..i + utf8_len(c)]
                ))
            }
        }
    }
    Ok(out)
}

fn parse_pipe(s: &str) -> Result<Pipe, String> {
    let toks = lex(s)?;
    if toks.is_empty() {
        return Err("template: missing value for command".into());
    }
    let mut pos = 0;
    let pipe = pipe_from(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("template: unexpected {:?} in {s:?}", toks[pos]));
    }
    Ok(pipe)
}

fn pipe_from(toks: &[Tok], pos: &mut usize) -> Result<Pipe, String> {
    let mut cmds = vec![];
    let mut args = vec![];
    while *pos < toks.len() {
        let t = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Close => {
                *pos -= 1;
                break;
            }
            Tok::Pipe => {
                if args.is_empty() {
                    return Err("template: missing command before |".into());
                }
                cmds.push(Cmd {
                    args: std::mem::take(&mut args),
                });
            }
            Tok::Open => {
                let sub = pipe_from(toks, pos)?;
                if toks.get(*pos) != Some(&Tok::Close) {
                    return Err("template: unclosed left paren".into());
                }
                *pos += 1;
                args.push(Arg::Sub(sub));
            }
            Tok::Dot => args.push(Arg::Dot),
            Tok::Field(f) => args.push(Arg::Field(f.clone())),
            Tok::Lit(v) => args.push(Arg::Lit(v.clone())),
            Tok::Word(w) => {
                if !FUNCS.contains(&w.as_str()) {
                    return Err(format!("template: function {w:?} not defined"));
                }
                args.push(Arg::Func(w.clone()));
            }
        }
    }
    if args.is_empty() {
        return Err("template: missing value for command".into());
    }
    cmds.push(Cmd { args });
    for c in &cmds[1..] {
        if !matches!(c.args[0], Arg::Func(_)) {
            return Err("template: non-function command in pipeline".into());
        }
    }
    Ok(Pipe { cmds })
}

// ------------------------------------------------------------------ execute

enum Dot<'a> {
    Root,
    Val(&'a Value),
}

fn exec_nodes(nodes: &[Node], data: &dyn Data, dot: &Dot, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => eval_pipe(p, data, dot)?.write_to(out),
            Node::If {
                branches,
                otherwise,
            } => {
                let mut done = false;
                for (cond, body) in branches {
                    if eval_pipe(cond, data, dot)?.truthy() {
                        exec_nodes(body, data, dot, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec_nodes(otherwise, data, dot, out)?;
                }
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let v = eval_pipe(pipe, data, dot)?;
                if v.truthy() {
                    exec_nodes(body, data, &Dot::Val(&v), out)?;
                } else {
                    exec_nodes(otherwise, data, dot, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipe(p: &Pipe, data: &dyn Data, dot: &Dot) -> Result<Value, String> {
    let mut piped: Option<Value> = None;
    for c in &p.cmds {
        piped = Some(eval_cmd(c, data, dot, piped)?);
    }
    Ok(piped.unwrap_or(Value::Nil))
}

fn eval_arg(a: &Arg, data: &dyn Data, dot: &Dot) -> Result<Value, String> {
    Ok(match a {
        Arg::Dot => match dot {
            Dot::Root => return Err("template: can't print the whole map".into()),
            Dot::Val(v) => (*v).clone(),
        },
        Arg::Field(path) => match dot {
            Dot::Root => {
                let v = data
                    .get(&path[0])
                    .map_or(Value::Nil, |s| Value::Str(s.to_string()));
                if path.len() > 1 {
                    if v == Value::Nil {
                        return Err(format!(
                            "template: nil pointer evaluating .{}",
                            path.join(".")
                        ));
                    }
                    return Err(format!(
                        "template: can't evaluate field {} in type string",
                        path[1]
                    ));
                }
                v
            }
            Dot::Val(v) => {
                return Err(format!(
                    "template: can't evaluate field {} in type {}",
                    path[0],
                    v.type_name()
                ))
            }
        },
        Arg::Lit(v) => v.clone(),
        Arg::Func(f) => call(f, vec![])?,
        Arg::Sub(p) => eval_pipe(p, data, dot)?,
    })
}

fn eval_cmd(c: &Cmd, data: &dyn Data, dot: &Dot, piped: Option<Value>) -> Result<Value, String> {
    match &c.args[0] {
        Arg::Func(name) => {
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(eval_arg(a, data, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            call(name, args)
        }
        first => {
            if c.args.len() > 1 || piped.is_some() {
                return Err("template: can't give argument to non-function".into());
            }
            eval_arg(first, data, dot)
        }
    }
}

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "template: wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn s(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "template: {name}: invalid value; expected string, got {}",
            other.type_name()
        )),
    }
}

/// sprig's loose string conversion (`toString`, `default`, ...).
fn loose(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        other => {
            let mut o = String::new();
            other.write_to(&mut o);
            o
        }
    }
}

fn cached_regex(re: &str) -> Result<regex::Regex, String> {
    static CACHE: Mutex<Vec<(String, regex::Regex)>> = Mutex::new(Vec::new());
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = c.iter().find(|(k, _)| k == re) {
        return Ok(r.clone());
    }
    let r = regex::Regex::new(&crate::relabel::go_regex_syntax(re))
        .map_err(|e| format!("template: regexp {re:?}: {e}"))?;
    if c.len() < 64 {
        c.push((re.to_string(), r.clone()));
    }
    Ok(r)
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use Value::*;
    let ord = match (a, b) {
        (Str(x), Str(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
        (Int(x), Float(y)) => (*x as f64)
            .partial_cmp(y)
            .unwrap_or(std::cmp::Ordering::Equal),
        (Float(x), Int(y)) => x
            .partial_cmp(&(*y as f64))
            .unwrap_or(std::cmp::Ordering::Equal),
        (Bool(x), Bool(y)) if name == "eq" || name == "ne" => x.cmp(y),
        _ => {
            return Err(format!(
                "template: {name}: incompatible types for comparison ({} and {})",
                a.type_name(),
                b.type_name()
            ))
        }
    };
    Ok(ord)
}

fn hex_digest(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Go's strings.Trim family: `cutset` is a set of characters.
fn trim_set<'a>(v: &'a str, cutset: &str, left: bool, right: bool) -> &'a str {
    let f = |c: char| cutset.contains(c);
    match (left, right) {
        (true, true) => v.trim_matches(f),
        (true, false) => v.trim_start_matches(f),
        _ => v.trim_end_matches(f),
    }
}

fn call(name: &str, a: Vec<Value>) -> Result<Value, String> {
    use Value::*;
    let str_ = |v: String| Ok(Str(v));
    match name {
        "ToLower" | "lower" => {
            want_args(name, &a, 1)?;
            str_(s(name, &a[0])?.to_lowercase())
        }
        "ToUpper" | "upper" => {
            want_args(name, &a, 1)?;
            str_(s(name, &a[0])?.to_uppercase())
        }
        "title" => {
            want_args(name, &a, 1)?;
            let v = s(name, &a[0])?;
            let mut out = String::with_capacity(v.len());
            let mut start = true;
            for c in v.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            str_(out)
        }
        "Replace" => {
            want_args(name, &a, 4)?;
            let (v, old, new) = (s(name, &a[0])?, s(name, &a[1])?, s(name, &a[2])?);
            let Int(n) = a[3] else {
                return Err("template: Replace: the count must be an integer".into());
            };
            str_(if n < 0 {
                v.replace(&old, &new)
            } else {
                v.replacen(&old, &new, n as usize)
            })
        }
        "replace" => {
            want_args(name, &a, 3)?;
            str_(s(name, &a[2])?.replace(&s(name, &a[0])?, &s(name, &a[1])?))
        }
        "Trim" | "TrimLeft" | "TrimRight" => {
            want_args(name, &a, 2)?;
            let (v, cut) = (s(name, &a[0])?, s(name, &a[1])?);
            let (l, r) = match name {
                "Trim" => (true, true),
                "TrimLeft" => (true, false),
                _ => (false, true),
            };
            str_(trim_set(&v, &cut, l, r).to_string())
        }
        "trimAll" => {
            want_args(name, &a, 2)?;
            str_(trim_set(&s(name, &a[1])?, &s(name, &a[0])?, true, true).to_string())
        }
        "TrimPrefix" | "TrimSuffix" => {
            want_args(name, &a, 2)?;
            let (v, fix) = (s(name, &a[0])?, s(name, &a[1])?);
            let r = if name == "TrimPrefix" {
                v.strip_prefix(fix.as_str())
            } else {
                v.strip_suffix(fix.as_str())
            };
            str_(r.map_or(v.clone(), str::to_string))
        }
        "trimPrefix" | "trimSuffix" => {
            want_args(name, &a, 2)?;
            let (fix, v) = (s(name, &a[0])?, s(name, &a[1])?);
            let r = if name == "trimPrefix" {
                v.strip_prefix(fix.as_str())
            } else {
                v.strip_suffix(fix.as_str())
            };
            str_(r.map_or(v.clone(), str::to_string))
        }
        "TrimSpace" | "trim" => {
            want_args(name, &a, 1)?;
            str_(s(name, &a[0])?.trim().to_string())
        }
        "Hash" | "Sha2Hash" => {
            want_args(name, &a, 2)?;
            let input = format!("{}{}", s(name, &a[0])?, s(name, &a[1])?);
            let digest: Vec<u8> = if name == "Hash" {
                sha3::Sha3_256::digest(input.as_bytes()).to_vec()
            } else {
                sha2::Sha256::digest(input.as_bytes()).to_vec()
            };
            str_(hex_digest(&digest))
        }
        "sha256sum" => {
            want_args(name, &a, 1)?;
            str_(hex_digest(&sha2::Sha256::digest(
                s(name, &a[0])?.as_bytes(),
            )))
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            want_args(name, &a, 3)?;
            let re = cached_regex(&s(name, &a[0])?)?;
            let (v, repl) = (s(name, &a[1])?, s(name, &a[2])?);
            str_(if name == "regexReplaceAll" {
                re.replace_all(&v, repl.as_str()).into_owned()
            } else {
                re.replace_all(&v, regex::NoExpand(&repl)).into_owned()
            })
        }
        "regexMatch" => {
            want_args(name, &a, 2)?;
            Ok(Bool(
                cached_regex(&s(name, &a[0])?)?.is_match(&s(name, &a[1])?),
            ))
        }
        "regexFind" => {
            want_args(name, &a, 2)?;
            let v = s(name, &a[1])?;
            str_(
                cached_regex(&s(name, &a[0])?)?
                    .find(&v)
                    .map_or(String::new(), |m| m.as_str().to_string()),
            )
        }
        "contains" | "hasPrefix" | "hasSuffix" => {
            want_args(name, &a, 2)?;
            let (needle, hay) = (s(name, &a[0])?, s(name, &a[1])?);
            Ok(Bool(match name {
                "contains" => hay.contains(&needle),
                "hasPrefix" => hay.starts_with(&needle),
                _ => hay.ends_with(&needle),
            }))
        }
        "default" => {
            if a.is_empty() || a.len() > 2 {
                return Err("template: default: wants 1 or 2 args".into());
            }
            // `default "x" .v`: .v unless it is empty; `default "x"` alone: "x".
            match a.get(1) {
                Some(v) if v.truthy() => Ok(v.clone()),
                _ => Ok(a[0].clone()),
            }
        }
        "empty" => {
            want_args(name, &a, 1)?;
            Ok(Bool(!a[0].truthy()))
        }
        "coalesce" => Ok(a.into_iter().find(Value::truthy).unwrap_or(Nil)),
        "ternary" => {
            want_args(name, &a, 3)?;
            Ok(if a[2].truthy() {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        "repeat" => {
            want_args(name, &a, 2)?;
            let Int(n) = a[0] else {
                return Err("template: repeat: count must be an integer".into());
            };
            str_(s(name, &a[1])?.repeat(n.clamp(0, 10_000) as usize))
        }
        "trunc" => {
            want_args(name, &a, 2)?;
            let Int(n) = a[0] else {
                return Err("template: trunc: length must be an integer".into());
            };
            let v = s(name, &a[1])?;
            let chars: Vec<char> = v.chars().collect();
            let n = n.unsigned_abs() as usize;
            str_(if n >= chars.len() {
                v
            } else if matches!(a[0], Int(i) if i < 0) {
                chars[chars.len() - n..].iter().collect()
            } else {
                chars[..n].iter().collect()
            })
        }
        "quote" | "squote" => {
            let q = if name == "quote" { '"' } else { '\'' };
            let parts: Vec<String> = a
                .iter()
                .filter(|v| **v != Nil)
                .map(|v| {
                    if q == '"' {
                        format!("{:?}", loose(v))
                    } else {
                        format!("'{}'", loose(v))
                    }
                })
                .collect();
            str_(parts.join(" "))
        }
        "toString" => {
            want_args(name, &a, 1)?;
            str_(loose(&a[0]))
        }
        "len" => {
            want_args(name, &a, 1)?;
            Ok(Int(s(name, &a[0])?.len() as i64))
        }
        "print" | "println" => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                // Go's fmt.Sprint adds spaces only between non-strings.
                let both_non_str = i > 0 && !matches!(v, Str(_)) && !matches!(a[i - 1], Str(_));
                if name == "println" && i > 0 || both_non_str {
                    out.push(' ');
                }
                v.write_to(&mut out);
            }
            if name == "println" {
                out.push('\n');
            }
            str_(out)
        }
        "printf" => {
            if a.is_empty() {
                return Err("template: printf: missing format".into());
            }
            str_(go_sprintf(&s(name, &a[0])?, &a[1..]))
        }
        "not" => {
            want_args(name, &a, 1)?;
            Ok(Bool(!a[0].truthy()))
        }
        "and" => {
            if a.is_empty() {
                return Err("template: and: wants at least 1 arg".into());
            }
            let last = a.len() - 1;
            Ok(a.iter()
                .position(|v| !v.truthy())
                .map_or(a[last].clone(), |i| a[i].clone()))
        }
        "or" => {
            if a.is_empty() {
                return Err("template: or: wants at least 1 arg".into());
            }
            let last = a.len() - 1;
            Ok(a.iter()
                .position(Value::truthy)
                .map_or(a[last].clone(), |i| a[i].clone()))
        }
        "eq" => {
            if a.len() < 2 {
                return Err("template: eq: missing argument for comparison".into());
            }
            for other in &a[1..] {
                if compare(name, &a[0], other)? == std::cmp::Ordering::Equal {
                    return Ok(Bool(true));
                }
            }
            Ok(Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, &a, 2)?;
            let o = compare(name, &a[0], &a[1])?;
            use std::cmp::Ordering::*;
            Ok(Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        other => Err(format!("template: function {other:?} not defined")),
    }
}

/// A small `fmt.Sprintf`: %s %v %d %q %%, enough for templates that glue
/// fields together.
fn go_sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => match it.next() {
                Some(v) if verb == 'q' => {
                    let _ = write!(out, "{:?}", loose(v));
                }
                Some(v) => v.write_to(&mut out),
                None => {
                    let _ = write!(out, "%!{verb}(MISSING)");
                }
            },
            Some(other) => {
                let _ = write!(out, "%!{other}(unsupported)");
            }
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, kv: &[(&str, &str)]) -> Result<String, String> {
        let data: HashMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = String::new();
        Template::parse(t)?.execute(&data, &mut out)?;
        Ok(out)
    }

    #[test]
    fn promtail_documented_examples() {
        // docs: template stage examples
        assert_eq!(
            run("{{ .Value }}_log", &[("Value", "loki")]).unwrap(),
            "loki_log"
        );
        assert_eq!(
            run(
                "{{ .Value }}_{{ .app }}",
                &[("Value", "warn"), ("app", "loki")]
            )
            .unwrap(),
            "warn_loki"
        );
        assert_eq!(
            run("{{ ToUpper .Value }}", &[("Value", "warn")]).unwrap(),
            "WARN"
        );
        assert_eq!(
            run("{{ .Value | ToUpper }}", &[("Value", "warn")]).unwrap(),
            "WARN"
        );
        assert_eq!(
            run(
                r#"{{ Replace .Value "loki" "blurg" 1 }}"#,
                &[("Value", "loki loki")]
            )
            .unwrap(),
            "blurg loki"
        );
        assert_eq!(
            run(
                r#"{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}"#,
                &[("Value", "WARN")]
            )
            .unwrap(),
            "OK"
        );
        assert_eq!(
            run(
                r#"{{ if eq .Value "WARN" }}x{{ else if eq .Value "INFO" }}y{{ else }}z{{ end }}"#,
                &[("Value", "INFO")]
            )
            .unwrap(),
            "y"
        );
        assert_eq!(
            run(r#"{{ TrimPrefix .Value "--" }}"#, &[("Value", "--x--")]).unwrap(),
            "x--"
        );
        assert_eq!(
            run(r#"{{ Trim .Value "-" }}"#, &[("Value", "--x--")]).unwrap(),
            "x"
        );
        assert_eq!(
            run(r#"{{ TrimSpace .Value }}"#, &[("Value", "  x ")]).unwrap(),
            "x"
        );
        assert_eq!(
            run(
                r#"{{ regexReplaceAll "(a*)bc" .Value "${1}a" }}"#,
                &[("Value", "aaabbcbc")]
            )
            .unwrap(),
            "aaabaa"
        );
        assert_eq!(
            run(
                r#"{{ regexReplaceAllLiteral "(ts=)" .Value "timestamp=" }}"#,
                &[("Value", "ts=1 x")]
            )
            .unwrap(),
            "timestamp=1 x"
        );
        // echo -n "saltvalue" | sha256sum
        assert_eq!(
            run(r#"{{ Sha2Hash .Value "salt" }}"#, &[("Value", "value")]).unwrap(),
            hex_digest(&sha2::Sha256::digest(b"valuesalt"))
        );
        assert_eq!(
            run(r#"{{ Hash "" "abc" }}"#, &[]).unwrap(),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
    }

    #[test]
    fn sprig_functions_and_missing_keys() {
        assert_eq!(run(r#"{{ .nope | default "none" }}"#, &[]).unwrap(), "none");
        assert_eq!(run(r#"{{ .nope }}"#, &[]).unwrap(), "<no value>");
        assert!(run(r#"{{ ToUpper .nope }}"#, &[]).is_err());
        assert_eq!(
            run(
                r#"{{ if contains "err" .msg }}E{{ end }}{{ if hasPrefix "GET" .req }}G{{ end }}{{ if hasSuffix ".js" .req }}J{{ end }}"#,
                &[("msg", "an error"), ("req", "GET /a.js")]
            )
            .unwrap(),
            "EGJ"
        );
        assert_eq!(
            run(
                r#"{{- with .user }}user={{ . }}{{ else }}anon{{ end -}}  "#,
                &[("user", "bob")]
            )
            .unwrap(),
            "user=bob"
        );
        assert_eq!(
            run(
                "{{ if and (ne .a \"x\") (not (eq .b \"y\")) }}ok{{ end }}",
                &[("a", "q"), ("b", "z")]
            )
            .unwrap(),
            "ok"
        );
        assert_eq!(
            run(
                r#"{{ printf "%s-%s" .a .b }}{{/* comment */}}"#,
                &[("a", "1"), ("b", "2")]
            )
            .unwrap(),
            "1-2"
        );
    }

    #[test]
    fn parse_errors_say_what() {
        assert!(Template::parse("{{ Nope .Value }}")
            .unwrap_err()
            .contains("\"Nope\" not defined"));
        assert!(Template::parse("{{ if .a }}x").unwrap_err().contains("end"));
        assert!(Template::parse("{{ .a ").unwrap_err().contains("unclosed"));
        assert!(Template::parse("{{ end }}").is_err());
    }
}
