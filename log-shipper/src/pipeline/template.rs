//! The Go `text/template` subset promtail's `template` and `replace`
//! stages are written in: text and `{{ }}` actions (with `{{-`/`-}}` trim
//! markers and comments), pipelines (`.Value | ToUpper`), parenthesized
//! calls, `if`/`else if`/`else`/`end`, `with`/`else with`, `range` (over
//! lists, maps, integers and the data itself, with `else`, `break` and
//! `continue`), variables (`$x := ...`, `$x = ...`, `$i, $e := ...`, `$`),
//! `define`/`template`/`block`, and the functions promtail
//! adds (ToLower, ToUpper, Replace, Trim*, Hash, Sha2Hash, regexReplaceAll,
//! regexReplaceAllLiteral) plus the Go builtins and common sprig functions
//! (default, contains, hasPrefix, hasSuffix, trim, upper, lower, list,
//! splitList, join, keys, dict, ...).
//!
//! Our own rather than the `gtmpl` crate: it runs on the stage's data
//! through the [`Data`] trait without building a map of values per line,
//! errors where promtail does (at load for undefined functions, variables
//! and templates), and gtmpl (last release 2021) calls itself incomplete.
//!
//! As in Go, a missing map key prints `<no value>`, and passing it to a
//! function that wants a string is an execution error (the stage then
//! leaves the entry alone, as promtail does).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use sha2::Digest as _;

use super::fastcap::utf8_len;

/// The data a template runs on: string values by key (`.key`).
pub trait Data {
    fn get(&self, key: &str) -> Option<&str>;
    /// Every key `get` answers, for `range .`, `$` and printing `.`.
    fn keys(&self) -> Vec<String>;
}

impl Data for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
    fn keys(&self) -> Vec<String> {
        HashMap::keys(self).cloned().collect()
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
    /// From `list`, `splitList`, `keys`: what `range` walks.
    List(Vec<Value>),
    /// The data itself (`.` at the top, `$`) and `dict`.
    Map(BTreeMap<String, Value>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
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
            // As Go's fmt prints slices and maps: [a b], map[k:v k2:v2].
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_to(out);
                }
                out.push(']');
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
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Field(Vec<String>),
    /// `$name` (or `$`) and the fields after it (`$x.a.b`).
    Var(String, Vec<String>),
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
    /// `$x := pipe` / `$i, $e := pipe` (range) / `$x = pipe`: the
    /// variables set, and whether they are declared (`:=`).
    decl: Vec<String>,
    declare: bool,
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
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    /// `{{template "name" pipe}}`
    Call {
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
    /// Templates named by `define` and `block`.
    defs: HashMap<String, Vec<Node>>,
}

/// Nested `{{template}}` calls at most (Go allows 100,000; a template
/// calling itself must stop well before the stack does).
const MAX_CALL_DEPTH: usize = 100;

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
    "index",
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
    "list",
    "splitList",
    "join",
    "keys",
    "dict",
];

// ------------------------------------------------------------------ parse

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let tokens = split_actions(source)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
            ranges: 0,
            scope: vec!["$".into()],
            defs: HashMap::new(),
            calls: Vec::new(),
        };
        let (nodes, end) = p.nodes()?;
        if let Some(end) = end {
            return Err(format!("template: unexpected {{{{{end}}}}}"));
        }
        // Checked here, not when a line comes: a config naming a template
        // nobody defined fails at load.
        if let Some(missing) = p.calls.iter().find(|c| !p.defs.contains_key(*c)) {
            return Err(format!("template: no such template {missing:?}"));
        }
        Ok(Template {
            source: source.to_string(),
            nodes,
            defs: p.defs,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the template on `data`; `out` receives the text.
    pub fn execute(&self, data: &dyn Data, out: &mut String) -> Result<(), String> {
        let mut exec = Exec {
            data,
            defs: &self.defs,
            vars: Vec::new(),
            dollar: None,
            depth: 0,
        };
        exec.nodes(&self.nodes, Dot::Root, out).map(|_| ())
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
    /// Inside how many if/with/range/define bodies.
    depth: usize,
    /// Inside how many range bodies (where break and continue may go).
    ranges: usize,
    /// Variables in scope (`$` always), checked as Go does when parsing.
    scope: Vec<String>,
    defs: HashMap<String, Vec<Node>>,
    /// Names `{{template}}` calls.
    calls: Vec<String>,
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
                        "with" => nodes.push(self.with_node(rest)?),
                        "range" => nodes.push(self.range_node(rest)?),
                        "break" | "continue" => {
                            if !rest.trim().is_empty() {
                                return Err(format!("template: unexpected {rest:?} in {word}"));
                            }
                            if self.ranges == 0 {
                                return Err(format!(
                                    "template: {{{{{word}}}}} outside {{{{range}}}}"
                                ));
                            }
                            nodes.push(if word == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "define" => {
                            let (name, pipe) = self.name_and_pipe(rest, word)?;
                            if pipe.is_some() {
                                return Err("template: {{define}} takes a name only".into());
                            }
                            if self.depth > 0 {
                                return Err("template: {{define}} must be at the top level".into());
                            }
                            self.define(name)?;
                        }
                        "template" => {
                            let (name, pipe) = self.name_and_pipe(rest, word)?;
                            self.calls.push(name.clone());
                            nodes.push(Node::Call { name, pipe });
                        }
                        "block" => {
                            let (name, pipe) = self.name_and_pipe(rest, word)?;
                            self.define(name.clone())?;
                            nodes.push(Node::Call { name, pipe });
                        }
                        _ => nodes.push(Node::Action(self.pipe(&a, 1)?)),
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    /// A pipeline, with at most `vars` variables declared or assigned;
    /// checks its variables are in scope and adds those it declares.
    fn pipe(&mut self, s: &str, vars: usize) -> Result<Pipe, String> {
        let pipe = parse_pipe(s)?;
        if pipe.decl.len() > vars {
            return Err(format!("template: too many declarations in {s:?}"));
        }
        check_vars(&pipe, &self.scope)?;
        if pipe.declare {
            self.scope.extend(pipe.decl.iter().cloned());
        } else if let Some(v) = pipe.decl.iter().find(|v| !self.scope.contains(v)) {
            return Err(format!("template: undefined variable {v:?}"));
        }
        Ok(pipe)
    }

    /// `"name"` and an optional pipeline after it (`define`, `template`, `block`).
    fn name_and_pipe(&mut self, rest: &str, word: &str) -> Result<(String, Option<Pipe>), String> {
        let toks = lex(rest)?;
        let Some(Tok::Lit(Value::Str(name))) = toks.first() else {
            return Err(format!(
                "template: {{{{{word}}}}} needs a quoted template name"
            ));
        };
        if toks.len() == 1 {
            return Ok((name.clone(), None));
        }
        let pipe = pipe_of_tokens(&toks[1..], rest)?;
        check_vars(&pipe, &self.scope)?;
        if !pipe.decl.is_empty() {
            return Err(format!(
                "template: unexpected declaration in {{{{{word}}}}}"
            ));
        }
        Ok((name.clone(), Some(pipe)))
    }

    /// A `define` (or `block`) body up to its `end`, in a scope of its own.
    fn define(&mut self, name: String) -> Result<(), String> {
        let scope = std::mem::replace(&mut self.scope, vec!["$".into()]);
        let ranges = std::mem::replace(&mut self.ranges, 0);
        self.depth += 1;
        let parsed = self.nodes();
        self.depth -= 1;
        self.scope = scope;
        self.ranges = ranges;
        let (body, end) = parsed?;
        match end.as_deref().map(split_keyword) {
            Some(("end", r)) if r.trim().is_empty() => {}
            _ => {
                return Err(format!(
                    "template: missing {{{{end}}}} of {{{{define {name:?}}}}}"
                ))
            }
        }
        if self.defs.insert(name.clone(), body).is_some() {
            return Err(format!("template: {name:?} defined twice"));
        }
        Ok(())
    }

    /// A control structure's body: its variables end with it.
    fn body(&mut self) -> Result<(Vec<Node>, Option<String>), String> {
        self.depth += 1;
        let r = self.nodes();
        self.depth -= 1;
        r
    }

    fn if_node(&mut self, cond: &str) -> Result<Node, String> {
        let scope = self.scope.len();
        let r = self.if_chain(cond);
        self.scope.truncate(scope);
        r
    }

    fn if_chain(&mut self, cond: &str) -> Result<Node, String> {
        let mut branches = vec![];
        let mut cond = self.pipe(cond, 1)?;
        loop {
            let (body, end) = self.body()?;
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
                cond = self.pipe(rest2, 1)?;
                continue;
            }
            if !rest.trim().is_empty() {
                return Err(format!("template: unexpected {rest:?} after else"));
            }
            let (otherwise, end) = self.body()?;
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

    fn with_node(&mut self, rest: &str) -> Result<Node, String> {
        let scope = self.scope.len();
        let r = (|| {
            let pipe = self.pipe(rest, 1)?;
            let (body, end) = self.body()?;
            let otherwise = self.else_part(end, "with")?;
            Ok(Node::With {
                pipe,
                body,
                otherwise,
            })
        })();
        self.scope.truncate(scope);
        r
    }

    fn range_node(&mut self, rest: &str) -> Result<Node, String> {
        let scope = self.scope.len();
        let r = (|| {
            let pipe = self.pipe(rest, 2)?;
            if !pipe.decl.is_empty() && !pipe.declare {
                return Err("template: range can only declare variables (:=)".into());
            }
            self.ranges += 1;
            let parsed = self.body();
            self.ranges -= 1;
            let (body, end) = parsed?;
            let otherwise = self.else_part(end, "range")?;
            Ok(Node::Range {
                pipe,
                body,
                otherwise,
            })
        })();
        self.scope.truncate(scope);
        r
    }

    fn else_part(&mut self, end: Option<String>, what: &str) -> Result<Vec<Node>, String> {
        let end = end.ok_or(format!(
            "template: unexpected EOF (missing {{{{end}}}} of {what})"
        ))?;
        let (word, rest) = split_keyword(&end);
        if word == "end" {
            return Ok(vec![]);
        }
        // `{{else with pipe}}` (Go 1.23) shares the one `{{end}}`.
        if let ("with", cond) = split_keyword(rest) {
            if what == "with" {
                return Ok(vec![self.with_node(cond)?]);
            }
        }
        if !rest.trim().is_empty() {
            return Err(format!("template: unexpected {rest:?} after else"));
        }
        let (otherwise, end) = self.body()?;
        match end.as_deref().map(split_keyword) {
            Some(("end", _)) => Ok(otherwise),
            _ => Err(format!("template: expected {{{{end}}}} of {what}")),
        }
    }
}

/// Every variable a pipeline reads must be in `scope`.
fn check_vars(pipe: &Pipe, scope: &[String]) -> Result<(), String> {
    for c in &pipe.cmds {
        for a in &c.args {
            match a {
                Arg::Var(name, _) if !scope.contains(name) => {
                    return Err(format!("template: undefined variable {name:?}"))
                }
                Arg::Sub(p) => check_vars(p, scope)?,
                _ => {}
            }
        }
    }
    Ok(())
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
    /// `$name` or `$`, and the fields after it.
    Var(String, Vec<String>),
    /// `:=`
    Declare,
    /// `=`
    Assign,
    Comma,
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
            b'$' => {
                let st = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = s[st..i].to_string();
                let mut path = Vec::new();
                while i + 1 < b.len()
                    && b[i] == b'.'
                    && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_')
                {
                    i += 1;
                    let f = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    path.push(s[f..i].to_string());
                }
                out.push(Tok::Var(name, path));
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
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
    pipe_of_tokens(&toks, s)
}

/// A pipeline from its tokens, with its declaration (`$x :=`) if any.
fn pipe_of_tokens(toks: &[Tok], s: &str) -> Result<Pipe, String> {
    let mut decl = Vec::new();
    let mut declare = false;
    let mut start = 0;
    let plain_var = |t: Option<&Tok>| match t {
        Some(Tok::Var(v, f)) if f.is_empty() => Some(v.clone()),
        _ => None,
    };
    let op = toks
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(at) = op {
        let names = &toks[..at];
        let ok = match names.len() {
            1 => true,
            3 => names[1] == Tok::Comma,
            _ => false,
        };
        let first = plain_var(names.first());
        let second = plain_var(names.get(2));
        match (ok, first, second) {
            (true, Some(a), b) if names.len() == 1 || b.is_some() => {
                decl.push(a);
                decl.extend(b);
            }
            _ => return Err(format!("template: bad declaration in {s:?}")),
        }
        declare = toks[at] == Tok::Declare;
        start = at + 1;
    }
    let toks = &toks[start..];
    if toks.is_empty() {
        return Err("template: missing value for command".into());
    }
    let mut pos = 0;
    let mut pipe = pipe_from(toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("template: unexpected {:?} in {s:?}", toks[pos]));
    }
    pipe.decl = decl;
    pipe.declare = declare;
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
            Tok::Var(v, f) => args.push(Arg::Var(v.clone(), f.clone())),
            Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(format!("template: unexpected {t:?} in command"))
            }
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
    Ok(Pipe {
        decl: Vec::new(),
        declare: false,
        cmds,
    })
}

// ------------------------------------------------------------------ execute

/// What `.` is: the data itself, or a value (inside with, range, template).
#[derive(Clone, Copy)]
enum Dot<'a> {
    Root,
    Val(&'a Value),
}

/// How a body ended: normally, or by `{{break}}`/`{{continue}}`.
enum Ctl {
    Next,
    Break,
    Continue,
}

struct Exec<'a> {
    data: &'a dyn Data,
    defs: &'a HashMap<String, Vec<Node>>,
    /// Variables set so far, innermost last.
    vars: Vec<(String, Value)>,
    /// `$`: the data (`None`), or what a `{{template}}` call passed.
    dollar: Option<Value>,
    depth: usize,
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: Dot, out: &mut String) -> Result<Ctl, String> {
        for n in nodes {
            let ctl = match n {
                Node::Text(t) => {
                    out.push_str(t);
                    Ctl::Next
                }
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        v.write_to(out);
                    } else {
                        self.set(p, v);
                    }
                    Ctl::Next
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let mut chosen = otherwise;
                    for (cond, body) in branches {
                        let v = self.pipe(cond, dot)?;
                        let truthy = v.truthy();
                        self.set(cond, v);
                        if truthy {
                            chosen = body;
                            break;
                        }
                    }
                    let ctl = self.nodes(chosen, dot, out);
                    self.vars.truncate(mark);
                    ctl?
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    self.set(pipe, v.clone());
                    let ctl = if v.truthy() {
                        self.nodes(body, Dot::Val(&v), out)
                    } else {
                        self.nodes(otherwise, dot, out)
                    };
                    self.vars.truncate(mark);
                    ctl?
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => self.range(pipe, body, otherwise, dot, out)?,
                Node::Call { name, pipe } => {
                    self.call_template(name, pipe.as_ref(), dot, out)?;
                    Ctl::Next
                }
                Node::Break => Ctl::Break,
                Node::Continue => Ctl::Continue,
            };
            if !matches!(ctl, Ctl::Next) {
                return Ok(ctl);
            }
        }
        Ok(Ctl::Next)
    }

    /// Sets the variables a pipeline declares or assigns.
    fn set(&mut self, p: &Pipe, v: Value) {
        let Some(name) = p.decl.first() else { return };
        if p.declare {
            self.vars.push((name.clone(), v));
        } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        otherwise: &[Node],
        dot: Dot,
        out: &mut String,
    ) -> Result<Ctl, String> {
        let items: Vec<(Value, Value)> = match self.pipe(pipe, dot)? {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
            Value::Int(n) => (0..n.max(0))
                .map(|i| (Value::Int(i), Value::Int(i)))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(format!(
                    "template: range can't iterate over {}",
                    other.type_name()
                ))
            }
        };
        if items.is_empty() {
            return self.nodes(otherwise, dot, out);
        }
        for (key, elem) in items {
            let mark = self.vars.len();
            match pipe.decl.as_slice() {
                [e] => self.vars.push((e.clone(), elem.clone())),
                [k, e] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((e.clone(), elem.clone()));
                }
                _ => {}
            }
            let ctl = self.nodes(body, Dot::Val(&elem), out);
            self.vars.truncate(mark);
            if let Ctl::Break = ctl? {
                break;
            }
        }
        Ok(Ctl::Next)
    }

    /// `{{template "name" pipe}}`: the named template with `.` and `$`
    /// set to the pipeline's value and no variables of the caller.
    fn call_template(
        &mut self,
        name: &str,
        pipe: Option<&Pipe>,
        dot: Dot,
        out: &mut String,
    ) -> Result<(), String> {
        let Some(body) = self.defs.get(name) else {
            return Err(format!("template: no such template {name:?}"));
        };
        if self.depth >= MAX_CALL_DEPTH {
            return Err(format!(
                "template: exceeded maximum template depth ({MAX_CALL_DEPTH})"
            ));
        }
        // `{{template "x" .}}` at the top passes the data itself.
        let passes_dot = pipe.is_some_and(|p| {
            p.cmds.len() == 1 && p.cmds[0].args.len() == 1 && matches!(p.cmds[0].args[0], Arg::Dot)
        });
        let arg = match pipe {
            Some(p) if !passes_dot => self.pipe(p, dot)?,
            Some(_) => match dot {
                Dot::Root => Value::Nil,
                Dot::Val(v) => v.clone(),
            },
            None => Value::Nil,
        };
        let inner_root = passes_dot && matches!(dot, Dot::Root);
        let vars = std::mem::take(&mut self.vars);
        let dollar = std::mem::replace(&mut self.dollar, (!inner_root).then(|| arg.clone()));
        self.depth += 1;
        let inner_dot = if inner_root {
            Dot::Root
        } else {
            Dot::Val(&arg)
        };
        let r = self.nodes(body, inner_dot, out);
        self.depth -= 1;
        self.vars = vars;
        self.dollar = dollar;
        r.map(|_| ())
    }

    fn pipe(&mut self, p: &Pipe, dot: Dot) -> Result<Value, String> {
        let mut piped: Option<Value> = None;
        for c in &p.cmds {
            piped = Some(self.cmd(c, dot, piped)?);
        }
        Ok(piped.unwrap_or(Value::Nil))
    }

    /// The data as a map (to range over it, print it or pass it on).
    fn root(&self) -> Value {
        Value::Map(
            self.data
                .keys()
                .into_iter()
                .filter_map(|k| {
                    let v = Value::Str(self.data.get(&k)?.to_string());
                    Some((k, v))
                })
                .collect(),
        )
    }

    /// `.a.b...` on the data: its values are strings, so only one level.
    fn root_field(&self, path: &[String]) -> Result<Value, String> {
        let v = self
            .data
            .get(&path[0])
            .map_or(Value::Nil, |s| Value::Str(s.to_string()));
        fields(v, &path[1..], path)
    }

    fn arg(&mut self, a: &Arg, dot: Dot) -> Result<Value, String> {
        Ok(match a {
            Arg::Dot => match dot {
                Dot::Root => self.root(),
                Dot::Val(v) => v.clone(),
            },
            Arg::Field(path) => match dot {
                Dot::Root => self.root_field(path)?,
                Dot::Val(v) => fields(v.clone(), path, path)?,
            },
            Arg::Var(name, path) => {
                if name == "$" {
                    match (&self.dollar, path.is_empty()) {
                        (None, true) => self.root(),
                        (None, false) => self.root_field(path)?,
                        (Some(v), _) => fields(v.clone(), path, path)?,
                    }
                } else {
                    let v = self
                        .vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("template: undefined variable {name:?}"))?;
                    fields(v, path, path)?
                }
            }
            Arg::Lit(v) => v.clone(),
            Arg::Func(f) => call(f, vec![])?,
            Arg::Sub(p) => self.pipe(p, dot)?,
        })
    }

    fn cmd(&mut self, c: &Cmd, dot: Dot, piped: Option<Value>) -> Result<Value, String> {
        match &c.args[0] {
            Arg::Func(name) => {
                let mut args = Vec::with_capacity(c.args.len());
                for a in &c.args[1..] {
                    args.push(self.arg(a, dot)?);
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
                self.arg(first, dot)
            }
        }
    }
}

/// `v.a.b...`: map keys (a missing one is `<no value>`, as in Go).
fn fields(mut v: Value, path: &[String], whole: &[String]) -> Result<Value, String> {
    for name in path {
        v = match v {
            Value::Map(mut m) => m.remove(name).unwrap_or(Value::Nil),
            Value::Nil => {
                return Err(format!(
                    "template: nil pointer evaluating .{}",
                    whole.join(".")
                ))
            }
            other => {
                return Err(format!(
                    "template: can't evaluate field {name} in type {}",
                    other.type_name()
                ))
            }
        };
    }
    Ok(v)
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
            Ok(Int(match &a[0] {
                List(l) => l.len(),
                Map(m) => m.len(),
                v => s(name, v)?.len(),
            } as i64))
        }
        "index" => {
            let Some((first, keys)) = a.split_first() else {
                return Err("template: index: wants at least 1 arg".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (v, k) {
                    (Map(mut m), Str(k)) => m.remove(k).unwrap_or(Nil),
                    (List(mut l), Int(i)) => {
                        if *i < 0 || *i as usize >= l.len() {
                            return Err(format!("template: index: index out of range: {i}"));
                        }
                        l.swap_remove(*i as usize)
                    }
                    (Str(st), Int(i)) => match st.as_bytes().get(*i as usize) {
                        Some(b) if *i >= 0 => Int(*b as i64),
                        _ => return Err(format!("template: index: index out of range: {i}")),
                    },
                    (v, k) => {
                        return Err(format!(
                            "template: index: can't index item of type {} with {}",
                            v.type_name(),
                            k.type_name()
                        ))
                    }
                };
            }
            Ok(v)
        }
        "list" => Ok(List(a)),
        "splitList" => {
            want_args(name, &a, 2)?;
            let (sep, v) = (s(name, &a[0])?, s(name, &a[1])?);
            Ok(List(
                v.split(sep.as_str()).map(|p| Str(p.to_string())).collect(),
            ))
        }
        "join" => {
            want_args(name, &a, 2)?;
            let sep = s(name, &a[0])?;
            let parts: Vec<String> = match &a[1] {
                List(l) => l.iter().map(loose).collect(),
                v => vec![loose(v)],
            };
            str_(parts.join(&sep))
        }
        "keys" => Ok(List(
            a.iter()
                .flat_map(|m| match m {
                    Map(m) => m.keys().map(|k| Str(k.clone())).collect(),
                    _ => Vec::new(),
                })
                .collect(),
        )),
        "dict" => {
            if a.len() % 2 != 0 {
                return Err("template: dict: wants key and value pairs".into());
            }
            let mut m = BTreeMap::new();
            for kv in a.chunks(2) {
                m.insert(loose(&kv[0]), kv[1].clone());
            }
            Ok(Map(m))
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

    #[test]
    fn range_over_lists_maps_integers_and_the_data() {
        let kv = [("level", "warn"), ("app", "api"), ("tags", "a,b,c")];
        assert_eq!(
            run(r#"{{ range splitList "," .tags }}<{{ . }}>{{ end }}"#, &kv).unwrap(),
            "<a><b><c>"
        );
        assert_eq!(
            run(
                r#"{{ range $i, $t := splitList "," .tags }}{{ if $i }},{{ end }}{{ $i }}={{ $t }}{{ end }}"#,
                &kv
            )
            .unwrap(),
            "0=a,1=b,2=c"
        );
        // Over the data itself, in key order as Go ranges over a map.
        assert_eq!(
            run(r#"{{ range $k, $v := . }}{{ $k }}={{ $v }} {{ end }}"#, &kv).unwrap(),
            "app=api level=warn tags=a,b,c "
        );
        assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}", &[]).unwrap(), "012");
        assert_eq!(
            run("{{ range .nope }}x{{ else }}empty{{ end }}", &[]).unwrap(),
            "empty"
        );
        assert_eq!(
            run(
                r#"{{ range list 1 2 3 4 5 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"#,
                &[]
            )
            .unwrap(),
            "13"
        );
        assert_eq!(
            run(r#"{{ join "-" (list "a" 1 true) }}"#, &[]).unwrap(),
            "a-1-true"
        );
        assert_eq!(
            run(r#"{{ index (dict "x" "1" "y" "2") "y" }} {{ index (list "p" "q") 1 }} {{ len (list 1 2) }}"#, &[])
                .unwrap(),
            "2 q 2"
        );
        assert_eq!(run(r#"{{ list "a" "b" }}"#, &[]).unwrap(), "[a b]");
        assert_eq!(run("{{ . }}", &[("a", "1")]).unwrap(), "map[a:1]");
        assert!(run(r#"{{ range .a }}x{{ end }}"#, &[("a", "s")])
            .unwrap_err()
            .contains("range can't iterate over string"));
        assert!(run(r#"{{ index (list 1) 3 }}"#, &[])
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn variables_are_scoped_as_in_go() {
        assert_eq!(
            run(
                r#"{{ $l := ToUpper .level }}{{ $l }}-{{ $l = "x" }}{{ $l }}"#,
                &[("level", "warn")]
            )
            .unwrap(),
            "WARN-x"
        );
        assert_eq!(
            run(
                r#"{{ with $u := .user }}{{ $u }}/{{ . }}{{ end }}{{ if $x := .missing }}{{ $x }}{{ else }}none{{ end }}"#,
                &[("user", "bob")]
            )
            .unwrap(),
            "bob/bobnone"
        );
        // `$` is the data wherever `.` moved to.
        assert_eq!(
            run(
                r#"{{ range splitList "," .tags }}{{ . }}@{{ $.host }} {{ end }}"#,
                &[("tags", "a,b"), ("host", "h1")]
            )
            .unwrap(),
            "a@h1 b@h1 "
        );
        // A range's variables end with it; an assignment inside changes the outer one.
        assert_eq!(
            run(
                r#"{{ $n := 0 }}{{ range $i, $e := list 1 2 3 }}{{ $n = $i }}{{ end }}{{ $n }}"#,
                &[]
            )
            .unwrap(),
            "2"
        );
        let err = Template::parse("{{ range $e := list 1 }}{{ end }}{{ $e }}").unwrap_err();
        assert!(err.contains(r#"undefined variable "$e""#), "{err}");
        assert!(Template::parse("{{ $x = 1 }}")
            .unwrap_err()
            .contains("undefined variable"));
        assert!(Template::parse("{{ $a, $b := 1 }}")
            .unwrap_err()
            .contains("too many declarations"));
    }

    #[test]
    fn define_template_and_block() {
        let kv = [("level", "warn"), ("app", "api")];
        assert_eq!(
            run(
                r#"{{ define "tag" }}[{{ ToUpper . }}]{{ end }}{{ template "tag" .level }}{{ template "tag" .app }}"#,
                &kv
            )
            .unwrap(),
            "[WARN][API]"
        );
        // The data passed whole, and a template called without data.
        assert_eq!(
            run(
                r#"{{- define "kv" }}{{ .app }}:{{ $.level }}{{ end -}}
                   {{- define "const" }}c{{ . }}{{ end -}}
                   {{ template "kv" . }} {{ template "const" }}"#,
                &kv
            )
            .unwrap(),
            "api:warn c<no value>"
        );
        assert_eq!(
            run(r#"{{ block "b" .app }}<{{ . }}>{{ end }}"#, &kv).unwrap(),
            "<api>"
        );
        // A template's variables are its own.
        assert!(
            Template::parse(r#"{{ $x := 1 }}{{ define "t" }}{{ $x }}{{ end }}"#)
                .unwrap_err()
                .contains("undefined variable")
        );
        assert!(Template::parse(r#"{{ template "nope" }}"#)
            .unwrap_err()
            .contains(r#"no such template "nope""#));
        assert!(
            Template::parse(r#"{{ if 1 }}{{ define "x" }}{{ end }}{{ end }}"#)
                .unwrap_err()
                .contains("top level")
        );
        let err = run(
            r#"{{ define "loop" }}{{ template "loop" }}{{ end }}{{ template "loop" }}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("maximum template depth"), "{err}");
        assert!(Template::parse("{{ break }}")
            .unwrap_err()
            .contains("outside"));
    }

    #[test]
    fn else_with_chains() {
        let t = r#"{{ with .a }}a={{ . }}{{ else with .b }}b={{ . }}{{ else }}none{{ end }}"#;
        assert_eq!(run(t, &[("a", "1"), ("b", "2")]).unwrap(), "a=1");
        assert_eq!(run(t, &[("b", "2")]).unwrap(), "b=2");
        assert_eq!(run(t, &[]).unwrap(), "none");
    }
}
