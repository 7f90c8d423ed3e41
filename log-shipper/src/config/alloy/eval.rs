//! Evaluating Alloy expressions: literals, operators, the standard library
//! functions a log pipeline needs, and references to other components'
//! exports, which stay symbolic ([`Value::Export`]) for the graph mapping.

use std::collections::BTreeMap;

use super::syntax::{BinOp, Expr, ExprKind, Pos, UnOp};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
    /// `<component id>.<export>`, e.g. `loki.process.parse` `receiver`.
    Export {
        component: String,
        export: String,
    },
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Export { .. } => "capsule",
        }
    }

    /// coalesce's notion of "set": Go's non-zero value.
    fn is_zero(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Int(n) => *n == 0,
            Value::Float(f) => *f == 0.0,
            Value::Str(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Export { .. } => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub pos: Pos,
    pub message: String,
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        pos,
        message: message.into(),
    })
}

/// What an expression can see besides itself.
pub trait Scope {
    /// The component declared with this id (`loki.write.default`), if any.
    fn has_component(&self, id: &str) -> bool;
    /// The exports a component of this id's kind has, if it is one.
    fn exports(&self, id: &str) -> &'static [&'static str];
    fn env(&self, name: &str) -> Option<String>;
    fn hostname(&self) -> String;
}

/// The functions this evaluator knows, for the "unknown function" error.
const FUNCTIONS: &str = "env, sys.env, concat, coalesce, encoding.from_json, string.join, string.to_lower, string.to_upper, string.trim_space";

/// `a.b.c` as its parts, when the expression is only names and fields.
fn dotted(e: &Expr) -> Option<Vec<&str>> {
    match &e.kind {
        ExprKind::Ident(s) => Some(vec![s.as_str()]),
        ExprKind::Field(base, f) => {
            let mut v = dotted(base)?;
            v.push(f.as_str());
            Some(v)
        }
        _ => None,
    }
}

pub fn eval(e: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    match &e.kind {
        ExprKind::Null => Ok(Value::Null),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Int(n) => Ok(Value::Int(*n)),
        ExprKind::Float(f) => Ok(Value::Float(*f)),
        ExprKind::Str(s) => Ok(Value::Str(s.clone())),
        ExprKind::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|i| eval(i, scope))
                .collect::<Result<_, _>>()?,
        )),
        ExprKind::Object(fields) => {
            let mut out = BTreeMap::new();
            for (k, kpos, v) in fields {
                if out.insert(k.clone(), eval(v, scope)?).is_some() {
                    return err(*kpos, format!("duplicate object key {k:?}"));
                }
            }
            Ok(Value::Object(out))
        }
        ExprKind::Ident(_) | ExprKind::Field(..) => reference(e, scope),
        ExprKind::Index(base, idx) => {
            let b = eval(base, scope)?;
            let i = eval(idx, scope)?;
            match (&b, &i) {
                (Value::Array(a), Value::Int(n)) => {
                    let Some(v) = usize::try_from(*n).ok().and_then(|n| a.get(n)) else {
                        return err(
                            idx.pos,
                            format!("index {n} out of range (array of {})", a.len()),
                        );
                    };
                    Ok(v.clone())
                }
                (Value::Object(o), Value::Str(k)) => Ok(o.get(k).cloned().unwrap_or(Value::Null)),
                _ => err(
                    e.pos,
                    format!("cannot index {} with {}", b.type_name(), i.type_name()),
                ),
            }
        }
        ExprKind::Call(f, args) => call(f, args, e.pos, scope),
        ExprKind::Unary(op, x) => {
            let v = eval(x, scope)?;
            match (op, v) {
                (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                (UnOp::Neg, Value::Int(n)) => Ok(Value::Int(n.wrapping_neg())),
                (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
                (UnOp::Not, v) => err(
                    x.pos,
                    format!("expected bool after !, got {}", v.type_name()),
                ),
                (UnOp::Neg, v) => err(
                    x.pos,
                    format!("expected number after -, got {}", v.type_name()),
                ),
            }
        }
        ExprKind::Binary(op, l, r) => binary(*op, eval(l, scope)?, eval(r, scope)?, e.pos),
    }
}

fn reference(e: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    let Some(parts) = dotted(e) else {
        return err(e.pos, "expected a component reference");
    };
    match parts.as_slice() {
        ["constants", "hostname"] => return Ok(Value::Str(scope.hostname())),
        ["constants", "os"] => return Ok(Value::Str(std::env::consts::OS.into())),
        ["constants", "arch"] => return Ok(Value::Str(std::env::consts::ARCH.into())),
        _ => {}
    }
    // The longest prefix that names a component; the next part is the export.
    for k in (1..parts.len()).rev() {
        let id = parts[..k].join(".");
        if scope.has_component(&id) {
            let export = parts[k];
            if k + 1 != parts.len() {
                return err(
                    e.pos,
                    format!("{}: a component export has no fields", parts.join(".")),
                );
            }
            let known = scope.exports(&id);
            if !known.contains(&export) {
                return err(
                    e.pos,
                    format!(
                        "component {id} has no export {export:?} (it exports: {})",
                        known.join(", ")
                    ),
                );
            }
            return Ok(Value::Export {
                component: id,
                export: export.into(),
            });
        }
    }
    err(
        e.pos,
        format!(
            "{:?} is not a declared component's export nor a known constant",
            parts.join(".")
        ),
    )
}

fn call(f: &Expr, args: &[Expr], pos: Pos, scope: &dyn Scope) -> Result<Value, EvalError> {
    let name = dotted(f).map(|p| p.join(".")).unwrap_or_default();
    let vals: Vec<Value> = args
        .iter()
        .map(|a| eval(a, scope))
        .collect::<Result<_, _>>()?;
    let one_string = |what: &str| -> Result<String, EvalError> {
        match vals.as_slice() {
            [Value::Str(s)] => Ok(s.clone()),
            _ => err(
                pos,
                format!("{name}: expected one string argument ({what})"),
            ),
        }
    };
    match name.as_str() {
        "env" | "sys.env" => {
            let var = one_string("the variable's name")?;
            Ok(Value::Str(scope.env(&var).unwrap_or_default()))
        }
        "concat" => {
            let mut out = Vec::new();
            for (v, a) in vals.into_iter().zip(args) {
                match v {
                    Value::Array(items) => out.extend(items),
                    other => {
                        return err(
                            a.pos,
                            format!("concat: expected arrays, got {}", other.type_name()),
                        )
                    }
                }
            }
            Ok(Value::Array(out))
        }
        "coalesce" => Ok(vals
            .iter()
            .find(|v| !v.is_zero())
            .or(vals.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "string.join" => match vals.as_slice() {
            [Value::Array(items), Value::Str(sep)] => {
                let mut parts = Vec::new();
                for i in items {
                    let Value::Str(s) = i else {
                        return err(pos, "string.join: expected an array of strings");
                    };
                    parts.push(s.as_str());
                }
                Ok(Value::Str(parts.join(sep)))
            }
            _ => err(pos, "string.join: expected (array of strings, separator)"),
        },
        // Alloy's way to a number from the environment:
        // encoding.from_json(env("PORT")).
        "encoding.from_json" => {
            let text = one_string("JSON text")?;
            match serde_json::from_str(&text) {
                Ok(json) => Ok(from_json(json)),
                Err(e) => err(pos, format!("encoding.from_json: {e}")),
            }
        }
        "string.to_lower" => Ok(Value::Str(one_string("a string")?.to_lowercase())),
        "string.to_upper" => Ok(Value::Str(one_string("a string")?.to_uppercase())),
        "string.trim_space" => Ok(Value::Str(one_string("a string")?.trim().to_string())),
        _ => err(
            f.pos,
            format!("unknown or unsupported function {name:?} (supported: {FUNCTIONS})"),
        ),
    }
}

fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
        J::String(s) => Value::Str(s),
        J::Array(a) => Value::Array(a.into_iter().map(from_json).collect()),
        J::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn binary(op: BinOp, l: Value, r: Value, pos: Pos) -> Result<Value, EvalError> {
    use BinOp::*;
    let mismatch = |l: &Value, r: &Value| {
        err(
            pos,
            format!(
                "cannot apply {} to {} and {}",
                op.symbol(),
                l.type_name(),
                r.type_name()
            ),
        )
    };
    match op {
        Or | And => match (&l, &r) {
            (Value::Bool(a), Value::Bool(b)) => {
                Ok(Value::Bool(if op == Or { *a || *b } else { *a && *b }))
            }
            _ => mismatch(&l, &r),
        },
        Eq => Ok(Value::Bool(
            l == r || (num(&l).is_some() && num(&l) == num(&r)),
        )),
        Ne => Ok(Value::Bool(
            !(l == r || (num(&l).is_some() && num(&l) == num(&r))),
        )),
        Lt | Le | Gt | Ge => {
            let ord = match (&l, &r) {
                (Value::Str(a), Value::Str(b)) => a.partial_cmp(b),
                _ => match (num(&l), num(&r)) {
                    (Some(a), Some(b)) => a.partial_cmp(&b),
                    _ => return mismatch(&l, &r),
                },
            };
            let Some(o) = ord else {
                return Ok(Value::Bool(false));
            };
            Ok(Value::Bool(match op {
                Lt => o.is_lt(),
                Le => o.is_le(),
                Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        Add if matches!((&l, &r), (Value::Str(_), Value::Str(_))) => {
            let (Value::Str(a), Value::Str(b)) = (l, r) else {
                unreachable!()
            };
            Ok(Value::Str(a + &b))
        }
        Add | Sub | Mul | Div | Mod | Pow => match (&l, &r) {
            (Value::Int(a), Value::Int(b)) if op != Div && op != Pow => {
                let (a, b) = (*a, *b);
                let v = match op {
                    Add => a.checked_add(b),
                    Sub => a.checked_sub(b),
                    Mul => a.checked_mul(b),
                    _ => {
                        if b == 0 {
                            return err(pos, "division by zero");
                        }
                        a.checked_rem(b)
                    }
                };
                v.map(Value::Int)
                    .map_or_else(|| err(pos, "integer overflow"), Ok)
            }
            _ => {
                let (Some(a), Some(b)) = (num(&l), num(&r)) else {
                    return mismatch(&l, &r);
                };
                if (op == Div || op == Mod) && b == 0.0 {
                    return err(pos, "division by zero");
                }
                Ok(Value::Float(match op {
                    Add => a + b,
                    Sub => a - b,
                    Mul => a * b,
                    Div => a / b,
                    Mod => a % b,
                    _ => a.powf(b),
                }))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::syntax::{parse, Stmt};
    use super::*;

    struct S;
    impl Scope for S {
        fn has_component(&self, id: &str) -> bool {
            id == "loki.process.parse"
        }
        fn exports(&self, _: &str) -> &'static [&'static str] {
            &["receiver"]
        }
        fn env(&self, name: &str) -> Option<String> {
            (name == "DIR").then(|| "/logs".to_string())
        }
        fn hostname(&self) -> String {
            "web1".into()
        }
    }

    fn ev(src: &str) -> Result<Value, String> {
        let body = parse(&format!("x = {src}")).unwrap();
        let Stmt::Attr(a) = &body[0] else { panic!() };
        eval(&a.value, &S).map_err(|e| format!("{}: {}", e.pos, e.message))
    }

    #[test]
    fn values_functions_and_references() {
        assert_eq!(
            ev("coalesce(env(\"NOPE\"), \"/var/log\")"),
            Ok(Value::Str("/var/log".into()))
        );
        assert_eq!(
            ev("sys.env(\"DIR\") + \"/a.log\""),
            Ok(Value::Str("/logs/a.log".into()))
        );
        assert_eq!(ev("constants.hostname"), Ok(Value::Str("web1".into())));
        assert_eq!(ev("concat([1], [2, 3])[2]"), Ok(Value::Int(3)));
        assert_eq!(ev("1 + 2 * 3 == 7 && !false"), Ok(Value::Bool(true)));
        assert_eq!(ev("7 / 2"), Ok(Value::Float(3.5)));
        assert_eq!(
            ev("loki.process.parse.receiver"),
            Ok(Value::Export {
                component: "loki.process.parse".into(),
                export: "receiver".into()
            })
        );
    }

    #[test]
    fn errors_name_the_place() {
        assert_eq!(
            ev("loki.process.parse.output"),
            Err(
                "1:5: component loki.process.parse has no export \"output\" (it exports: receiver)"
                    .into()
            )
        );
        assert_eq!(
            ev("loki.write.x.receiver"),
            Err("1:5: \"loki.write.x.receiver\" is not a declared component's export nor a known constant".into())
        );
        assert_eq!(
            ev("1 + \"a\""),
            Err("1:7: cannot apply + to number and string".into())
        );
        assert!(ev("nope(1)")
            .unwrap_err()
            .starts_with("1:5: unknown or unsupported function \"nope\""));
        assert_eq!(
            ev("[1][5]"),
            Err("1:9: index 5 out of range (array of 1)".into())
        );
        assert_eq!(ev("1 % 0"), Err("1:7: division by zero".into()));
    }
}
