//! The superjson envelope: `{"json": …, "meta": {"values": …, "v": 1}}`.

use serde_json::Value;

use crate::error::RpcError;

/// Unwraps an input envelope. `Ok(None)` is JavaScript `undefined`.
///
/// Placeholder: applies no `meta` transformations yet.
pub fn decode(envelope: Value) -> Result<Option<Value>, RpcError> {
    match envelope {
        Value::Object(mut map) => Ok(map.remove("json").filter(|_| true)),
        _ => Ok(None),
    }
}
