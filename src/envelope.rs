//! The superjson (2.2.6) envelope: `{"json": …, "meta": {"values": …, "v": 1}}`.
//!
//! `@trpc/client` with the superjson transformer wraps every input this way,
//! annotating the JavaScript values JSON cannot carry (`undefined`, `Date`,
//! `bigint`, `Map`, …). Rust procedures take plain JSON, so decoding turns
//! each annotated value into the closest plain-JSON form:
//!
//! | annotation | decoded as |
//! |---|---|
//! | `undefined` | the root: no input (`None`); an object key: removed (so `Option` fields become `None`); an array item: `null` |
//! | `Date` | the ISO-8601 string as sent |
//! | `bigint` | a JSON number when it fits `i64`/`u64`, else the decimal string |
//! | `number` (`NaN`, `±Infinity`, `-0`) | `-0` becomes `-0.0`; the others `null` (JSON has no such numbers) |
//! | `set`, `typed-array` | the array |
//! | `map` | an object when every key is a JavaScript string (so `HashMap<String, _>` works), else the `[key, value]` pairs |
//! | `regexp`, `URL` | the string |
//! | `Error` | the `{name, message, cause?}` object |
//! | `class`, `symbol`, `custom` | an error, as on a Node server where nothing is registered |
//!
//! Any other annotation is the BAD_REQUEST `Unknown transformation: X`,
//! exactly like superjson. `referentialEqualities` is ignored: tRPC never
//! deduplicates, so the JSON already holds a copy at every path. Decoding
//! never panics, whatever the input; paths that lead nowhere are skipped.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::RpcError;

/// The superjson envelope of `undefined` (a `void` output or no input).
pub const UNDEFINED: &str = r#"{"json":null,"meta":{"values":["undefined"],"v":1}}"#;

/// Unwraps an input envelope. `Ok(None)` is JavaScript `undefined`.
///
/// Like superjson's `deserialize`, a value that is not an object (or an
/// object without a `json` key) decodes to `undefined`; only `null` is an
/// error (it cannot be destructured in JavaScript either).
pub fn decode(envelope: Value) -> Result<Option<Value>, RpcError> {
    let mut map = match envelope {
        Value::Object(map) => map,
        Value::Null => {
            return Err(RpcError::bad_request(
                "Cannot destructure property 'json' of 'payload' as it is null.",
            ));
        }
        _ => return Ok(None),
    };
    let mut root = map.remove("json");
    let Some(Value::Object(meta)) = map.get("meta") else {
        return Ok(root);
    };
    let Some(values) = meta.get("values") else {
        return Ok(root);
    };
    // superjson: `legacyPaths = (meta.v ?? 0) < 1`, with JavaScript's
    // number conversion for whatever `v` holds.
    let legacy = match meta.get("v") {
        None | Some(Value::Null) => true,
        Some(v) => js_number(v) < 1.0,
    };
    if root.is_none() {
        // superjson would fail walking annotations into `undefined`; there is
        // nothing to transform, and the value stays `undefined`.
        return Ok(None);
    }
    let mut path = Vec::new();
    walk(values, &mut root, &mut path, legacy)?;
    Ok(root)
}

/// Applies one node of the annotation tree at `origin`: an array node
/// `[type, children?]` applies its children first and then its own type; an
/// object node descends by each (escaped, dotted) key.
fn walk(
    tree: &Value,
    root: &mut Option<Value>,
    origin: &mut Vec<String>,
    legacy: bool,
) -> Result<(), RpcError> {
    match tree {
        Value::Array(node) => {
            match node.get(1) {
                Some(Value::Object(children)) => descend(
                    children.iter().map(|(k, v)| (k.as_str(), v)),
                    root,
                    origin,
                    legacy,
                )?,
                Some(Value::Array(children)) => {
                    let keys: Vec<String> = (0..children.len()).map(|i| i.to_string()).collect();
                    descend(
                        keys.iter().map(String::as_str).zip(children),
                        root,
                        origin,
                        legacy,
                    )?
                }
                _ => {}
            }
            // `[]` has no type; superjson looks up the rule named by
            // `String(undefined)`, which is the `undefined` rule.
            let undefined = Value::String("undefined".to_owned());
            let kind = node.first().unwrap_or(&undefined);
            // A Map whose keys carry annotations (Dates, URLs, objects with
            // bigints…) does not have string keys in JavaScript, even once
            // the keys are turned into strings here: keep it as pairs.
            let string_keys = !(kind.as_str() == Some("map")
                && match node.get(1) {
                    Some(Value::Object(children)) => children.keys().any(|k| {
                        parse_path(k, legacy).is_ok_and(|p| p.get(1).is_some_and(|s| s == "0"))
                    }),
                    _ => false,
                });
            apply(kind, root, origin, string_keys)
        }
        Value::Object(children) => descend(
            children.iter().map(|(k, v)| (k.as_str(), v)),
            root,
            origin,
            legacy,
        ),
        _ => Ok(()),
    }
}

fn descend<'a>(
    children: impl Iterator<Item = (&'a str, &'a Value)>,
    root: &mut Option<Value>,
    origin: &mut Vec<String>,
    legacy: bool,
) -> Result<(), RpcError> {
    for (key, subtree) in children {
        let segments = parse_path(key, legacy)?;
        let depth = origin.len();
        origin.extend(segments);
        let result = walk(subtree, root, origin, legacy);
        origin.truncate(depth);
        result?;
    }
    Ok(())
}

/// superjson's `parsePath`: `.` separates segments; `\.` is a literal dot;
/// in v1 paths `\\` is a literal backslash and any other escape is invalid.
pub fn parse_path(path: &str, legacy: bool) -> Result<Vec<String>, RpcError> {
    let mut result = Vec::new();
    let mut segment = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('.') => {
                    segment.push('.');
                    chars.next();
                    continue;
                }
                Some('\\') if !legacy => {
                    segment.push('\\');
                    chars.next();
                    continue;
                }
                _ if !legacy => return Err(RpcError::bad_request("invalid path")),
                _ => {}
            }
        }
        if c == '.' {
            result.push(std::mem::take(&mut segment));
            continue;
        }
        segment.push(c);
    }
    result.push(segment);
    Ok(result)
}

/// Turns the value at `path` back from its annotation `kind`.
fn apply(
    kind: &Value,
    root: &mut Option<Value>,
    path: &[String],
    map_to_object: bool,
) -> Result<(), RpcError> {
    // superjson refuses these segments to prevent prototype pollution; a
    // JavaScript client can therefore never send them annotated.
    for forbidden in ["__proto__", "prototype", "constructor"] {
        if path.iter().any(|s| s == forbidden) {
            return Err(RpcError::bad_request(format!(
                "{forbidden} is not allowed as a property"
            )));
        }
    }
    let transform = match kind {
        Value::String(name) => simple_transform(name, map_to_object)?,
        Value::Array(parts) => composite_transform(parts)?,
        other => return Err(unknown_transformation(other)),
    };
    let Some((last, parent_path)) = path.split_last() else {
        // The root itself.
        match transform {
            Transform::Undefined => *root = None,
            Transform::Value(f) => {
                if let Some(value) = root.as_mut() {
                    f(value);
                }
            }
        }
        return Ok(());
    };
    let Some(parent) = root.as_mut().and_then(|r| lookup(r, parent_path)) else {
        return Ok(());
    };
    match (parent, transform) {
        (Value::Object(map), Transform::Undefined) => {
            map.remove(last.as_str());
        }
        (Value::Array(items), Transform::Undefined) => {
            if let Some(item) = index(last).and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        (parent, Transform::Value(f)) => {
            if let Some(value) = child(parent, last) {
                f(value);
            }
        }
        _ => {}
    }
    Ok(())
}

enum Transform {
    Undefined,
    Value(fn(&mut Value)),
}

fn simple_transform(name: &str, map_to_object: bool) -> Result<Transform, RpcError> {
    Ok(match name {
        "undefined" => Transform::Undefined,
        "bigint" => Transform::Value(bigint),
        "number" => Transform::Value(special_number),
        "map" if map_to_object => Transform::Value(map_entries),
        "map" => Transform::Value(keep),
        // Already in their plain-JSON form: ISO string, array, string, object.
        "Date" | "set" | "regexp" | "Error" | "URL" => Transform::Value(keep),
        other => {
            return Err(RpcError::bad_request(format!(
                "Unknown transformation: {other}"
            )));
        }
    })
}

fn composite_transform(parts: &[Value]) -> Result<Transform, RpcError> {
    const TYPED_ARRAYS: [&str; 9] = [
        "Int8Array",
        "Uint8Array",
        "Int16Array",
        "Uint16Array",
        "Int32Array",
        "Uint32Array",
        "Float32Array",
        "Float64Array",
        "Uint8ClampedArray",
    ];
    let name = parts
        .get(1)
        .map_or_else(|| "undefined".to_owned(), js_string);
    match parts.first().and_then(Value::as_str) {
        Some("typed-array") if TYPED_ARRAYS.contains(&name.as_str()) => Ok(Transform::Value(keep)),
        Some("typed-array") => Err(RpcError::bad_request(
            "Trying to deserialize unknown typed array",
        )),
        Some("class") => Err(RpcError::bad_request(format!(
            "Trying to deserialize unknown class '{name}' - check https://github.com/blitz-js/superjson/issues/116#issuecomment-773996564"
        ))),
        Some("symbol") => Err(RpcError::bad_request(
            "Trying to deserialize unknown symbol",
        )),
        Some("custom") => Err(RpcError::bad_request(
            "Trying to deserialize unknown custom value",
        )),
        _ => Err(unknown_transformation(&Value::Array(parts.to_vec()))),
    }
}

/// superjson's message names the annotation as JavaScript prints it.
fn unknown_transformation(kind: &Value) -> RpcError {
    RpcError::bad_request(format!("Unknown transformation: {}", js_string(kind)))
}

fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
        other => other.to_string(),
    }
}

/// JavaScript's `Number(value)` (NaN compares false with everything).
fn js_number(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        Value::Array(items) => match items.as_slice() {
            [] => 0.0,
            [one] => js_number(&Value::String(js_string(one))),
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
}

fn keep(_: &mut Value) {}

fn bigint(value: &mut Value) {
    if let Value::String(s) = value {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            *value = Value::from(n);
        } else if let Ok(n) = s.parse::<u64>() {
            *value = Value::from(n);
        }
    }
}

fn special_number(value: &mut Value) {
    if let Value::String(s) = value {
        *value = s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number);
    }
}

fn map_entries(value: &mut Value) {
    let Value::Array(pairs) = value else {
        return;
    };
    let all_string_keys = pairs
        .iter()
        .all(|pair| matches!(pair, Value::Array(kv) if kv.len() == 2 && kv[0].is_string()));
    if !all_string_keys {
        return;
    }
    let mut object = Map::with_capacity(pairs.len());
    for pair in std::mem::take(pairs) {
        if let Value::Array(kv) = pair {
            let mut kv = kv.into_iter();
            if let (Some(Value::String(k)), Some(v)) = (kv.next(), kv.next()) {
                object.insert(k, v);
            }
        }
    }
    *value = Value::Object(object);
}

fn index(segment: &str) -> Option<usize> {
    segment.parse().ok()
}

fn child<'a>(value: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => index(segment).and_then(|i| items.get_mut(i)),
        _ => None,
    }
}

fn lookup<'a>(mut value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    for segment in path {
        value = child(value, segment)?;
    }
    Some(value)
}

/// Writes the output envelope `{"json":<output>}` (or the `undefined`
/// envelope for a `void` procedure) straight from the serialised output,
/// without re-parsing it: outputs are plain JSON and need no annotations.
pub fn write_output(out: &mut Vec<u8>, output: &RawValue, void: bool) {
    if void {
        out.extend_from_slice(UNDEFINED.as_bytes());
    } else {
        out.extend_from_slice(b"{\"json\":");
        out.extend_from_slice(output.get().as_bytes());
        out.push(b'}');
    }
}

/// Wraps a plain JSON value in the envelope, for callers outside the hot path.
pub fn encode(value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert("json".to_owned(), value);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(v: Value) -> Result<Option<Value>, String> {
        decode(v).map_err(|e| e.message)
    }

    #[test]
    fn plain_and_undefined() {
        assert_eq!(dec(json!({"json": {"a": 1}})), Ok(Some(json!({"a": 1}))));
        assert_eq!(
            dec(json!({"json": null, "meta": {"values": ["undefined"], "v": 1}})),
            Ok(None)
        );
        assert_eq!(
            dec(json!({"json": null, "meta": {"values": ["undefined"]}})),
            Ok(None)
        );
        assert_eq!(dec(json!({"name": "a"})), Ok(None));
        assert_eq!(dec(json!(5)), Ok(None));
        assert!(dec(Value::Null).is_err());
        assert_eq!(dec(json!({"json": null})), Ok(Some(Value::Null)));
    }

    #[test]
    fn nested_annotations() {
        let v = json!({
            "json": [[{"k": "1"}, ["1970-01-01T00:00:00.000Z"]]],
            "meta": {"values": ["map", {"0.1": ["set", {"0": ["Date"]}], "0.0.k": ["bigint"]}], "v": 1}
        });
        assert_eq!(
            dec(v),
            Ok(Some(json!([[{"k": 1}, ["1970-01-01T00:00:00.000Z"]]])))
        );
        let v = json!({
            "json": {"m": [["a", 1], ["b", "10"]], "u": null, "arr": [1, null], "n": ["NaN", "-0"]},
            "meta": {"values": {"m": ["map", {"1.1": ["bigint"]}], "u": ["undefined"], "arr.1": ["undefined"], "n.0": ["number"], "n.1": ["number"]}, "v": 1}
        });
        let out = dec(v).unwrap_or_default().unwrap_or_default();
        assert_eq!(out["m"], json!({"a": 1, "b": 10}));
        assert!(out.get("u").is_none());
        assert_eq!(out["arr"], json!([1, null]));
        assert_eq!(out["n"][0], Value::Null);
        assert_eq!(out["n"][1].as_f64().map(f64::is_sign_negative), Some(true));
    }

    #[test]
    fn escaped_paths() {
        assert_eq!(
            parse_path(r"x\.y.z", false).ok(),
            Some(vec!["x.y".into(), "z".into()])
        );
        assert_eq!(
            parse_path(r"a\\b", false).ok(),
            Some(vec![r"a\b".to_owned()])
        );
        assert_eq!(
            parse_path(r"a\\b", true).ok(),
            Some(vec![r"a\\b".to_owned()])
        );
        assert!(parse_path(r"a\b", false).is_err());
        // `v` goes through JavaScript's number conversion.
        for (v, legacy) in [
            (json!(1), false),
            (json!(0), true),
            (json!("0"), true),
            (json!("1"), false),
            (json!("x"), false),
            (json!(true), false),
            (json!([]), true),
            (json!({}), false),
        ] {
            let env =
                json!({"json": {"a\\b": "1"}, "meta": {"values": {"a\\b": ["bigint"]}, "v": v}});
            let expected = if legacy {
                Ok(Some(json!({"a\\b": 1})))
            } else {
                Err("invalid path".to_owned())
            };
            assert_eq!(dec(env), expected, "v = {v}");
        }
        assert_eq!(parse_path(r"a\b", true).ok(), Some(vec![r"a\b".to_owned()]));
        let v = json!({"json": {"x.y": "1"}, "meta": {"values": {r"x\.y": ["bigint"]}, "v": 1}});
        assert_eq!(dec(v), Ok(Some(json!({"x.y": 1}))));
    }

    #[test]
    fn unknown_transformations() {
        let v = json!({"json": 1, "meta": {"values": ["nope"], "v": 1}});
        assert_eq!(dec(v), Err("Unknown transformation: nope".to_owned()));
        let v = json!({"json": 1, "meta": {"values": [["x", 1]], "v": 1}});
        assert_eq!(dec(v), Err("Unknown transformation: x,1".to_owned()));
        let v = json!({"json": 1, "meta": {"values": [7], "v": 1}});
        assert_eq!(dec(v), Err("Unknown transformation: 7".to_owned()));
        let v = json!({"json": {}, "meta": {"values": {"a": [["class", "Foo"]]}, "v": 1}});
        assert_eq!(
            dec(v),
            Err("Trying to deserialize unknown class 'Foo' - check https://github.com/blitz-js/superjson/issues/116#issuecomment-773996564".to_owned())
        );
        let v = json!({"json": {"constructor": "1"}, "meta": {"values": {"constructor": ["bigint"]}, "v": 1}});
        assert_eq!(
            dec(v),
            Err("constructor is not allowed as a property".to_owned())
        );
        // `[]` is the `undefined` rule, as in JavaScript.
        let v = json!({"json": "x", "meta": {"values": []}});
        assert_eq!(dec(v), Ok(None));
    }

    /// Malformed metas of every shape must give `Ok` or `Err`, never panic.
    #[test]
    fn malformed_metas_never_panic() {
        let jsons = [
            json!(null),
            json!(1),
            json!("s"),
            json!([1, [2, {"a": [3]}]]),
            json!({"a": {"b": [1, 2]}, "": 0}),
        ];
        let trees = [
            json!(null),
            json!(1),
            json!("undefined"),
            json!([]),
            json!([null]),
            json!(["undefined", 5]),
            json!(["map", {"0.0": ["bigint"]}]),
            json!({"99": ["undefined"]}),
            json!({"1.1.0.5.7": ["Date"]}),
            json!({"a.b.c.d.e.f": ["undefined"]}),
            json!({"": ["undefined"]}),
            json!({"1": ["set", {"1.a.0": ["number"]}]}),
            json!({"1.1.a": ["undefined"], "1": ["map"]}),
            json!({"a": {"b": {"0": ["bigint"]}}}),
            json!({"a\\": ["Date"]}),
            json!({"...": ["undefined"]}),
            json!([["typed-array", "Uint8Array"], {"a": ["custom"]}]),
            json!([{}]),
            json!({"0": [["class"]]}),
            json!({"a": "b"}),
        ];
        let versions = [json!(1), json!(0), json!("x"), Value::Null];
        for j in &jsons {
            for t in &trees {
                for v in &versions {
                    let _ = decode(json!({"json": j, "meta": {"values": t, "v": v}}));
                    let _ = decode(json!({"json": j, "meta": {"values": t}}));
                    let _ = decode(json!({"json": j, "meta": t}));
                }
            }
        }
        // Deeply nested tree.
        let mut tree = json!(["Date"]);
        for _ in 0..100 {
            tree = json!({"0": tree});
        }
        let _ = decode(json!({"json": [], "meta": {"values": tree, "v": 1}}));
    }

    #[test]
    fn output_envelope() {
        let raw = serde_json::value::to_raw_value(&json!({"a": 1})).ok();
        let mut out = Vec::new();
        if let Some(raw) = raw {
            write_output(&mut out, &raw, false);
            assert_eq!(out, br#"{"json":{"a":1}}"#);
            out.clear();
            write_output(&mut out, &raw, true);
            assert_eq!(out, UNDEFINED.as_bytes());
        }
    }
}
