//! Property-style checks of the superjson decoder with a small deterministic
//! generator: random metas never panic, and values annotated the way
//! superjson encodes them decode back to the original.

use gatehouse::envelope::decode;
use serde_json::{Map, Value, json};

#[path = "common/rng.rs"]
mod rng;

use rng::Rng;

const KEYS: [&str; 8] = ["a", "b", "x.y", "a\\b", "", "0", "1", "k.\\."];
const TYPES: [&str; 12] = [
    "undefined",
    "bigint",
    "Date",
    "number",
    "set",
    "map",
    "regexp",
    "Error",
    "URL",
    "nope",
    "",
    "class",
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match if depth == 0 {
        rng.below(4)
    } else {
        rng.below(6)
    } {
        0 => Value::Null,
        1 => json!(rng.below(100)),
        2 => json!(rng.pick(&["s", "10", "NaN", "-0", "1970-01-01T00:00:00.000Z"])),
        3 => json!(rng.below(2) == 0),
        4 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (rng.pick(&KEYS).to_string(), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

fn random_path(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    (0..n)
        .map(|_| match rng.below(3) {
            0 => rng.below(5).to_string(),
            _ => rng.pick(&KEYS).to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn random_tree(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 3 } else { 6 }) {
        0 => json!([rng.pick(&TYPES)]),
        1 => json!([[rng.pick(&["typed-array", "custom", "symbol", "x"]), "y"]]),
        2 => random_value(rng, 1),
        3 => {
            let children: Map<String, Value> = (0..rng.below(3))
                .map(|_| (random_path(rng), random_tree(rng, depth - 1)))
                .collect();
            json!([rng.pick(&TYPES), children])
        }
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (random_path(rng), random_tree(rng, depth - 1)))
                .collect(),
        ),
    }
}

#[test]
fn random_envelopes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let json = random_value(&mut rng, 4);
        let values = random_tree(&mut rng, 4);
        let envelope = match rng.below(5) {
            0 => json!({"json": json, "meta": {"values": values}}),
            1 => json!({"json": json, "meta": {"values": values, "v": 1}}),
            2 => json!({"json": json, "meta": values}),
            3 => json!({"meta": {"values": values, "v": 1}}),
            _ => json!({"json": json, "meta": {"values": values, "v": rng.below(3)}}),
        };
        // Either outcome is fine; a panic fails the test.
        let _ = decode(envelope);
    }
}

/// Escapes one path segment the way superjson v1 does.
fn escape(segment: &str) -> String {
    segment.replace('\\', "\\\\").replace('.', "\\.")
}

/// Encodes `value` like superjson would if every integer were a bigint:
/// integers become decimal strings annotated `bigint`; object keys are
/// escaped into flattened paths.
fn encode_bigints(
    value: &Value,
    path: &mut Vec<String>,
    annotations: &mut Map<String, Value>,
) -> Value {
    match value {
        Value::Number(n) => {
            annotations.insert(
                path.iter().map(|s| escape(s)).collect::<Vec<_>>().join("."),
                json!(["bigint"]),
            );
            Value::String(n.to_string())
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    path.push(i.to_string());
                    let out = encode_bigints(v, path, annotations);
                    path.pop();
                    out
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    path.push(k.clone());
                    let out = encode_bigints(v, path, annotations);
                    path.pop();
                    (k.clone(), out)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn annotated_values_round_trip() {
    let mut rng = Rng(42);
    let mut checked = 0;
    for _ in 0..5_000 {
        let original = Value::Object(
            (0..1 + rng.below(4))
                .map(|_| (rng.pick(&KEYS).to_string(), random_value(&mut rng, 3)))
                .collect(),
        );
        let mut annotations = Map::new();
        let json = encode_bigints(&original, &mut Vec::new(), &mut annotations);
        let envelope = json!({"json": json, "meta": {"values": annotations, "v": 1}});
        match decode(envelope) {
            Ok(Some(decoded)) => assert_eq!(decoded, original),
            other => panic!("{original} decoded to {other:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 5_000);
}
