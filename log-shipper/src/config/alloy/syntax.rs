//! Alloy's configuration syntax (formerly River): a scanner and a
//! recursive-descent parser into [`Body`]. Every error carries the line
//! and column it was found at and says what was expected there.

use std::fmt;

/// A place in the file, 1-based as editors count (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl SyntaxError {
    fn new(pos: Pos, message: impl Into<String>) -> Self {
        SyntaxError {
            pos,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- tree

pub type Body = Vec<Stmt>;

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Attr(Attr),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name: String,
    pub value: Expr,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The dotted name, `loki.source.file`.
    pub name: String,
    pub label: Option<String>,
    pub body: Body,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Array(Vec<Expr>),
    /// Keys in the order written; a key is an identifier or a string.
    Object(Vec<(String, Pos, Expr)>),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
        }
    }

    /// Alloy's precedence, loosest first; `^` binds right.
    fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }
}

// ---------------------------------------------------------------- scanner

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Punct(&'static str),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "identifier {s:?}"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Int(_) | Tok::Float(_) => f.write_str("a number"),
            Tok::Punct(p) => write!(f, "{p:?}"),
            Tok::Eof => f.write_str("end of file"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
    /// A line break (or the file's start) comes between this token and the
    /// one before: attributes and blocks end at one.
    newline_before: bool,
}

const PUNCTS: &[&str] = &[
    "||", "&&", "==", "!=", "<=", ">=", "{", "}", "[", "]", "(", ")", ",", ".", "=", "<", ">", "+",
    "-", "*", "/", "%", "^", "!", ";",
];

fn scan(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut newline = true;
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col };
        if c == '\n' {
            newline = true;
            bump!();
            continue;
        }
        if c.is_whitespace() {
            bump!();
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(SyntaxError::new(pos, "comment not terminated: expected */"));
                }
                if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    bump!();
                    bump!();
                    break;
                }
                if chars[i] == '\n' {
                    newline = true;
                }
                bump!();
            }
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                bump!();
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() {
            let start = i;
            let mut float = false;
            while i < chars.len() && chars[i].is_ascii_digit() {
                bump!();
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                float = true;
                bump!();
                while i < chars.len() && chars[i].is_ascii_digit() {
                    bump!();
                }
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                float = true;
                bump!();
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    bump!();
                }
                if i >= chars.len() || !chars[i].is_ascii_digit() {
                    return Err(SyntaxError::new(
                        Pos { line, col },
                        "malformed number: expected a digit in the exponent",
                    ));
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    bump!();
                }
            }
            let text: String = chars[start..i].iter().collect();
            if float {
                Tok::Float(
                    text.parse()
                        .map_err(|_| SyntaxError::new(pos, format!("malformed number {text:?}")))?,
                )
            } else {
                Tok::Int(text.parse().map_err(|_| {
                    SyntaxError::new(pos, format!("number {text} does not fit in 64 bits"))
                })?)
            }
        } else if c == '"' {
            bump!();
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(SyntaxError::new(pos, "string not terminated: expected \""));
                };
                match ch {
                    '"' => {
                        bump!();
                        break;
                    }
                    '\n' => {
                        return Err(SyntaxError::new(
                            pos,
                            "string not terminated before the end of the line: expected \" (use a `raw string` for several lines)",
                        ))
                    }
                    '\\' => {
                        let esc_pos = Pos { line, col };
                        bump!();
                        let Some(&e) = chars.get(i) else {
                            return Err(SyntaxError::new(esc_pos, "string not terminated"));
                        };
                        bump!();
                        match e {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            'a' => s.push('\x07'),
                            'b' => s.push('\x08'),
                            'f' => s.push('\x0c'),
                            'v' => s.push('\x0b'),
                            '\\' => s.push('\\'),
                            '"' => s.push('"'),
                            'x' | 'u' | 'U' => {
                                let n = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let digits: String = chars[i..].iter().take(n).collect();
                                if digits.len() != n || !digits.chars().all(|d| d.is_ascii_hexdigit())
                                {
                                    return Err(SyntaxError::new(
                                        esc_pos,
                                        format!("malformed escape \\{e}: expected {n} hex digits"),
                                    ));
                                }
                                for _ in 0..n {
                                    bump!();
                                }
                                let v = u32::from_str_radix(&digits, 16).unwrap_or(u32::MAX);
                                let ch = char::from_u32(v).ok_or_else(|| {
                                    SyntaxError::new(
                                        esc_pos,
                                        format!("escape \\{e}{digits} is not a Unicode character"),
                                    )
                                })?;
                                s.push(ch);
                            }
                            '0'..='7' => {
                                let digits: String = chars[i - 1..].iter().take(3).collect();
                                if digits.len() != 3 || !digits.chars().all(|d| ('0'..='7').contains(&d))
                                {
                                    return Err(SyntaxError::new(
                                        esc_pos,
                                        "malformed octal escape: expected 3 octal digits",
                                    ));
                                }
                                bump!();
                                bump!();
                                let v = u32::from_str_radix(&digits, 8).unwrap_or(256);
                                if v > 255 {
                                    return Err(SyntaxError::new(
                                        esc_pos,
                                        "octal escape above \\377",
                                    ));
                                }
                                s.push(char::from(v as u8));
                            }
                            other => {
                                return Err(SyntaxError::new(
                                    esc_pos,
                                    format!("unknown escape sequence \\{other}: expected one of \\n \\t \\r \\\\ \\\" \\xHH \\uHHHH"),
                                ))
                            }
                        }
                    }
                    _ => {
                        s.push(ch);
                        bump!();
                    }
                }
            }
            Tok::Str(s)
        } else if c == '`' {
            bump!();
            let start = i;
            while i < chars.len() && chars[i] != '`' {
                bump!();
            }
            if i >= chars.len() {
                return Err(SyntaxError::new(
                    pos,
                    "raw string not terminated: expected `",
                ));
            }
            let s: String = chars[start..i].iter().collect();
            bump!();
            Tok::Str(s)
        } else {
            let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
                return Err(SyntaxError::new(pos, format!("unexpected character {c:?}")));
            };
            for _ in 0..p.len() {
                bump!();
            }
            Tok::Punct(p)
        };
        toks.push(Token {
            tok,
            pos,
            newline_before: newline,
        });
        newline = false;
    }
    toks.push(Token {
        tok: Tok::Eof,
        pos: Pos { line, col },
        newline_before: true,
    });
    Ok(toks)
}

// ---------------------------------------------------------------- parser

/// Parses a whole file.
pub fn parse(src: &str) -> Result<Body, SyntaxError> {
    let toks = scan(src)?;
    let mut p = Parser { toks, i: 0 };
    let body = p.body(true)?;
    Ok(body)
}

/// Expressions nest at most this deep: a malformed or hostile file must
/// not overflow the stack.
const MAX_DEPTH: usize = 200;

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    fn expect(&mut self, p: &str, what: &str) -> Result<Pos, SyntaxError> {
        if self.is(p) {
            Ok(self.next().pos)
        } else {
            let t = self.peek();
            Err(SyntaxError::new(
                t.pos,
                format!("expected {p:?} {what}, got {}", t.tok),
            ))
        }
    }

    /// Statements up to `}` (or the end of the file at the top level).
    fn body(&mut self, top: bool) -> Result<Body, SyntaxError> {
        let mut body = Vec::new();
        loop {
            while self.is(";") {
                self.next();
            }
            let t = self.peek().clone();
            match &t.tok {
                Tok::Eof if top => return Ok(body),
                Tok::Eof => {
                    return Err(SyntaxError::new(
                        t.pos,
                        "unexpected end of file: expected \"}\" to close the block",
                    ))
                }
                Tok::Punct("}") if !top => return Ok(body),
                Tok::Ident(_) => {}
                other => {
                    return Err(SyntaxError::new(
                        t.pos,
                        format!("expected an attribute or a block name, got {other}"),
                    ))
                }
            }
            body.push(self.stmt()?);
            // One statement a line (or `;`), as in Alloy.
            let n = self.peek();
            let ends =
                n.newline_before || matches!(n.tok, Tok::Eof | Tok::Punct("}") | Tok::Punct(";"));
            if !ends {
                return Err(SyntaxError::new(
                    n.pos,
                    format!("expected a line break after the statement, got {}", n.tok),
                ));
            }
        }
    }

    fn stmt(&mut self) -> Result<Stmt, SyntaxError> {
        let first = self.next();
        let Tok::Ident(mut name) = first.tok else {
            unreachable!("body() checked for an identifier")
        };
        if self.is("=") {
            self.next();
            let value = self.expr(0)?;
            return Ok(Stmt::Attr(Attr {
                name,
                value,
                pos: first.pos,
            }));
        }
        while self.is(".") {
            self.next();
            let t = self.next();
            match t.tok {
                Tok::Ident(part) => {
                    name.push('.');
                    name.push_str(&part);
                }
                other => {
                    return Err(SyntaxError::new(
                        t.pos,
                        format!("expected a block name part after \".\", got {other}"),
                    ))
                }
            }
        }
        let label = match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                let t = self.next();
                if !valid_label(&s) {
                    return Err(SyntaxError::new(
                        t.pos,
                        format!(
                            "block label {s:?} must be a valid identifier (letters, digits, _)"
                        ),
                    ));
                }
                Some(s)
            }
            _ => None,
        };
        if !self.is("{") {
            let t = self.peek();
            let what = if label.is_none() && !name.contains('.') {
                "\"=\" or \"{\" after the name"
            } else {
                "\"{\" to open the block"
            };
            return Err(SyntaxError::new(
                t.pos,
                format!("expected {what}, got {}", t.tok),
            ));
        }
        self.next();
        let body = self.body(false)?;
        self.expect("}", "to close the block")?;
        Ok(Stmt::Block(Block {
            name,
            label,
            body,
            pos: first.pos,
        }))
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        self.binary(1, depth)
    }

    fn binop(&self) -> Option<BinOp> {
        let Tok::Punct(p) = self.peek().tok else {
            return None;
        };
        Some(match p {
            "||" => BinOp::Or,
            "&&" => BinOp::And,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8, depth: usize) -> Result<Expr, SyntaxError> {
        let mut lhs = self.unary(depth)?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min {
                break;
            }
            let pos = self.next().pos;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.binary(next_min, depth + 1)?;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                pos,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError::new(
                self.peek().pos,
                format!("expression nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let op = if self.is("!") {
            Some(UnOp::Not)
        } else if self.is("-") {
            Some(UnOp::Neg)
        } else {
            None
        };
        if let Some(op) = op {
            let pos = self.next().pos;
            let e = self.unary(depth + 1)?;
            return Ok(Expr {
                kind: ExprKind::Unary(op, Box::new(e)),
                pos,
            });
        }
        let mut e = self.primary(depth)?;
        loop {
            if self.is(".") {
                // A reference is reported where it starts.
                let pos = e.pos;
                self.next();
                let t = self.next();
                let Tok::Ident(field) = t.tok else {
                    return Err(SyntaxError::new(
                        t.pos,
                        format!("expected a field name after \".\", got {}", t.tok),
                    ));
                };
                e = Expr {
                    kind: ExprKind::Field(Box::new(e), field),
                    pos,
                };
            } else if self.is("[") && !self.peek().newline_before {
                let pos = self.next().pos;
                let idx = self.expr(depth + 1)?;
                self.expect("]", "to close the index")?;
                e = Expr {
                    kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                    pos,
                };
            } else if self.is("(") && !self.peek().newline_before {
                let pos = self.next().pos;
                let args = self.list(")", depth)?;
                e = Expr {
                    kind: ExprKind::Call(Box::new(e), args),
                    pos,
                };
            } else {
                return Ok(e);
            }
        }
    }

    /// Comma-separated expressions up to `close` (a trailing comma is fine).
    fn list(&mut self, close: &'static str, depth: usize) -> Result<Vec<Expr>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            if self.is(close) {
                self.next();
                return Ok(items);
            }
            items.push(self.expr(depth + 1)?);
            if self.is(",") {
                self.next();
            } else if !self.is(close) {
                let t = self.peek();
                return Err(SyntaxError::new(
                    t.pos,
                    format!("expected \",\" or {close:?}, got {}", t.tok),
                ));
            }
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let t = self.next();
        let kind = match t.tok {
            Tok::Int(n) => ExprKind::Int(n),
            Tok::Float(f) => ExprKind::Float(f),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Ident(id) => match id.as_str() {
                "null" => ExprKind::Null,
                "true" => ExprKind::Bool(true),
                "false" => ExprKind::Bool(false),
                _ => ExprKind::Ident(id),
            },
            Tok::Punct("(") => {
                let e = self.expr(depth + 1)?;
                self.expect(")", "to close the parenthesis")?;
                return Ok(e);
            }
            Tok::Punct("[") => ExprKind::Array(self.list("]", depth)?),
            Tok::Punct("{") => {
                let mut fields = Vec::new();
                loop {
                    if self.is("}") {
                        self.next();
                        break;
                    }
                    let k = self.next();
                    let key = match k.tok {
                        Tok::Ident(s) | Tok::Str(s) => s,
                        other => {
                            return Err(SyntaxError::new(
                                k.pos,
                                format!("expected an object key (a name or a string), got {other}"),
                            ))
                        }
                    };
                    self.expect("=", "after the object key")?;
                    let v = self.expr(depth + 1)?;
                    fields.push((key, k.pos, v));
                    if self.is(",") {
                        self.next();
                    } else if !self.is("}") {
                        let t = self.peek();
                        return Err(SyntaxError::new(
                            t.pos,
                            format!("expected \",\" or \"}}\" in the object, got {}", t.tok),
                        ));
                    }
                }
                ExprKind::Object(fields)
            }
            other => {
                return Err(SyntaxError::new(
                    t.pos,
                    format!("expected an expression, got {other}"),
                ))
            }
        };
        Ok(Expr { kind, pos: t.pos })
    }
}

fn valid_label(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        let e = parse(src).unwrap_err();
        format!("{}: {}", e.pos, e.message)
    }

    #[test]
    fn blocks_attributes_and_expressions() {
        let body = parse(
            "// comment\nloki.process \"parse\" {\n  forward_to = [loki.write.default.receiver, ]\n  /* multi\n line */ stage.json {\n    expressions = { level = \"lvl\", \"a b\" = `raw\\n` }\n  }\n}\nx = -1 + 2 * 3 ^ 2 ^ 1\n",
        )
        .unwrap();
        assert_eq!(body.len(), 2);
        let Stmt::Block(b) = &body[0] else { panic!() };
        assert_eq!(
            (b.name.as_str(), b.label.as_deref()),
            ("loki.process", Some("parse"))
        );
        assert_eq!(b.pos, Pos { line: 2, col: 1 });
        let Stmt::Block(j) = &b.body[1] else { panic!() };
        assert_eq!(j.pos, Pos { line: 5, col: 10 });
        let Stmt::Attr(a) = &j.body[0] else { panic!() };
        let ExprKind::Object(f) = &a.value.kind else {
            panic!()
        };
        assert_eq!(f[1].0, "a b");
        assert_eq!(f[1].2.kind, ExprKind::Str("raw\\n".into()));
        // 2 * (3 ^ (2 ^ 1)) binds tighter than +.
        let Stmt::Attr(x) = &body[1] else { panic!() };
        let ExprKind::Binary(BinOp::Add, _, rhs) = &x.value.kind else {
            panic!("{:?}", x.value)
        };
        assert!(matches!(rhs.kind, ExprKind::Binary(BinOp::Mul, _, _)));
    }

    #[test]
    fn escapes() {
        let body = parse(r#"a = "t\t\"q\"\\ \u00e9 \x41 \101""#).unwrap();
        let Stmt::Attr(a) = &body[0] else { panic!() };
        assert_eq!(a.value.kind, ExprKind::Str("t\t\"q\"\\ é A A".into()));
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        assert_eq!(
            err("a = \n"),
            "2:1: expected an expression, got end of file"
        );
        assert_eq!(
            err("loki.write \"x\" {\n  url = 1\n"),
            "3:1: unexpected end of file: expected \"}\" to close the block"
        );
        assert_eq!(
            err("a = [1 2]"),
            "1:8: expected \",\" or \"]\", got a number"
        );
        assert_eq!(
            err("a = 1 b = 2"),
            "1:7: expected a line break after the statement, got identifier \"b\""
        );
        assert_eq!(
            err("a = \"x\\q\""),
            "1:7: unknown escape sequence \\q: expected one of \\n \\t \\r \\\\ \\\" \\xHH \\uHHHH"
        );
        assert_eq!(err("a = `x"), "1:5: raw string not terminated: expected `");
        assert_eq!(
            err("a.b \"1x\" {}"),
            "1:5: block label \"1x\" must be a valid identifier (letters, digits, _)"
        );
        assert_eq!(
            err("a b"),
            "1:3: expected \"=\" or \"{\" after the name, got identifier \"b\""
        );
        assert_eq!(err("a = 1 @"), "1:7: unexpected character '@'");
        assert_eq!(err("/* x"), "1:1: comment not terminated: expected */");
        assert_eq!(
            err("a = {b 1}"),
            "1:8: expected \"=\" after the object key, got a number"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("a = {}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(err(&src).contains("nested deeper"));
        let src = format!("a = {}1", "-".repeat(5000));
        assert!(err(&src).contains("nested deeper"));
    }
}
