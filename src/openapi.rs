//! The OpenAPI 3.1 document of a registry: every procedure's tRPC endpoint
//! (as `@trpc/openapi` describes one: `GET /trpc/<path>?input=` for
//! queries and subscriptions, `POST /trpc/<path>` for mutations, the
//! `{"json": …}` envelope, the tRPC error shape) and its REST route, with
//! input and output schemas derived from the same Rust types (`schemars`)
//! and the procedure's doc comment as its description (see
//! `docs/protocol.md`, "OpenAPI").

use serde_json::{Map, Value, json};

use crate::error::ErrorCode;
use crate::procedure::{Bearer, Guard, Kind, RestMethod};
use crate::router::{Entry, Registry};
use crate::service::Service;

/// What the document says about the API itself.
#[derive(Debug, Clone)]
pub struct OpenApiOptions {
    pub title: String,
    pub version: String,
    /// Where the REST routes are served (`/api`); `None` leaves them out.
    pub rest_prefix: Option<String>,
}

impl Default for OpenApiOptions {
    fn default() -> Self {
        Self {
            title: "Gatehouse".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            rest_prefix: Some(crate::http::DEFAULT_REST_PREFIX.to_owned()),
        }
    }
}

/// The document, as JSON. Deterministic for a given registry.
pub fn document<S: Service>(registry: &Registry<S>, options: &OpenApiOptions) -> Value {
    let mut generator = schemars::SchemaGenerator::new(
        schemars::generate::SchemaSettings::draft2020_12().with(|settings| {
            settings.definitions_path = "#/components/schemas/".into();
        }),
    );
    let mut paths = Map::new();
    let mut tags: Vec<String> = Vec::new();
    for entry in registry.entries() {
        let tag = entry.path.split('.').next().unwrap_or_default().to_owned();
        if !tags.contains(&tag) {
            tags.push(tag.clone());
        }
        let described = Described::of(entry, &mut generator, &tag);
        let (method, operation) = trpc_operation(entry, &described);
        insert(
            &mut paths,
            &format!("/trpc/{}", entry.path),
            method,
            operation,
        );
        if let (Some(rest), Some(prefix)) = (entry.rest, &options.rest_prefix) {
            let operation =
                rest_operation(entry, &described, rest.method, rest.created, &generator);
            let method = rest.method.as_str().to_ascii_lowercase();
            insert(
                &mut paths,
                &format!("{prefix}{}", rest.path),
                &method,
                operation,
            );
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("TrpcError".to_owned(), trpc_error_schema());
    schemas.insert("RestError".to_owned(), rest_error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": options.title,
            "version": options.version,
            "description": "Every procedure twice: its tRPC endpoint (the `{\"json\": …}` superjson envelope, for @trpc/client and anyone writing the envelope by hand) and, where it has one, its REST route (plain JSON).",
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        }
    })
}

fn insert(paths: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    let item = paths
        .entry(path.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(item) = item {
        item.insert(method.to_owned(), operation);
    }
}

/// What both of a procedure's operations share.
struct Described {
    tag: String,
    summary: String,
    description: String,
    input: Value,
    output: Value,
    security: Option<Value>,
}

impl Described {
    fn of<S: Service>(
        entry: &Entry<S>,
        generator: &mut schemars::SchemaGenerator,
        tag: &str,
    ) -> Self {
        let doc = (entry.schema.procedure)(generator)
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        let summary = doc
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace('\n', " ");
        let role = match entry.guard {
            Guard::Public => match entry.bearer {
                Bearer::Unused => "Public.".to_owned(),
                Bearer::Optional => {
                    "Public; ends or uses the session of a bearer token when one is sent."
                        .to_owned()
                }
                Bearer::Required => {
                    "Public guard, but the handler needs a bearer token (it may have expired)."
                        .to_owned()
                }
            },
            Guard::Authenticated => "Requires a bearer token (any role).".to_owned(),
            Guard::Role(role) => format!("Requires a bearer token with the {role} role or higher."),
        };
        Self {
            tag: tag.to_owned(),
            summary: if summary.is_empty() {
                entry.path.to_string()
            } else {
                summary
            },
            description: if doc.is_empty() {
                role
            } else {
                format!("{doc}\n\n{role}")
            },
            input: Value::from((entry.schema.input)(generator)),
            output: Value::from((entry.schema.output)(generator)),
            security: match (entry.guard, entry.bearer) {
                (Guard::Public, Bearer::Unused) => None,
                // `{}`: the call may also go without.
                (Guard::Public, Bearer::Optional) => Some(json!([{"bearerAuth": []}, {}])),
                _ => Some(json!([{"bearerAuth": []}])),
            },
        }
    }

    fn base(&self, operation_id: String, summary: String) -> Map<String, Value> {
        let mut operation = Map::new();
        operation.insert("operationId".to_owned(), Value::String(operation_id));
        operation.insert("tags".to_owned(), json!([self.tag]));
        operation.insert("summary".to_owned(), Value::String(summary));
        operation.insert(
            "description".to_owned(),
            Value::String(self.description.clone()),
        );
        if let Some(security) = &self.security {
            operation.insert("security".to_owned(), security.clone());
        }
        operation
    }
}

/// The error statuses a call can give: what the framework knows (input
/// decoding, the guard and the authenticator, what any call may meet) plus
/// the codes the procedure declares ([`crate::Procedure::ERRORS`]).
fn error_codes<S: Service>(entry: &Entry<S>) -> Vec<ErrorCode> {
    let mut codes = Vec::new();
    if entry.reads_input() {
        codes.push(ErrorCode::BadRequest);
    }
    if entry.guard != Guard::Public {
        codes.push(ErrorCode::Unauthorized);
        codes.extend_from_slice(S::AUTHENTICATE_ERRORS);
    }
    if matches!(entry.guard, Guard::Role(_)) {
        codes.push(ErrorCode::Forbidden);
    }
    codes.extend_from_slice(entry.errors);
    codes.extend([
        ErrorCode::Timeout,
        ErrorCode::InternalServerError,
        ErrorCode::ServiceUnavailable,
    ]);
    codes
}

/// The success response, then one per error status (codes sharing a status
/// share its entry), in status order. There is no `default`: every status
/// an operation can give is listed, so a conformance checker catches one
/// that is not.
fn responses(success: (&str, Value), codes: &[ErrorCode], schema: &str) -> Value {
    let mut by_status: Vec<(u16, Vec<&'static str>)> = Vec::new();
    for code in codes {
        let status = code.http_status().as_u16();
        match by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, keys)) if keys.contains(&code.key()) => {}
            Some((_, keys)) => keys.push(code.key()),
            None => by_status.push((status, vec![code.key()])),
        }
    }
    by_status.sort_by_key(|(status, _)| *status);
    let mut responses = Map::new();
    responses.insert(success.0.to_owned(), success.1);
    for (status, keys) in by_status {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("{reason} ({})", keys.join(", ")),
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            }),
        );
    }
    Value::Object(responses)
}

/// The envelope around an input or output: `{"json": <value>}`.
fn envelope(value: &Value) -> Value {
    json!({
        "type": "object",
        "properties": {"json": value, "meta": {"type": "object", "description": "superjson's annotations (dates, undefined, …); absent for plain JSON"}},
        "required": ["json"]
    })
}

fn trpc_operation<S: Service>(entry: &Entry<S>, described: &Described) -> (&'static str, Value) {
    let id = format!("trpc.{}", entry.path);
    let mut operation = described.base(id, format!("{} (tRPC)", described.summary));
    let input = envelope(&described.input);
    let required = entry.reads_input() && !entry.ts.optional_input;
    let method = match entry.kind {
        Kind::Mutation => {
            operation.insert(
                "requestBody".to_owned(),
                json!({"required": required, "content": {"application/json": {"schema": input}}}),
            );
            "post"
        }
        Kind::Query | Kind::Subscription => {
            if entry.reads_input() {
                operation.insert(
                    "parameters".to_owned(),
                    json!([{
                        "name": "input", "in": "query", "required": required,
                        "description": "The input in its superjson envelope, as URL-encoded JSON",
                        "content": {"application/json": {"schema": input}}
                    }]),
                );
            }
            "get"
        }
    };
    let codes = match entry.kind {
        Kind::Query => error_codes(entry),
        Kind::Mutation => {
            let mut codes = error_codes(entry);
            codes.extend([ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType]);
            codes
        }
        // Its errors, even those before the first event, come inside the
        // stream (`serialized-error`) with status 200, as tRPC sends them.
        Kind::Subscription => Vec::new(),
    };
    let ok = if entry.kind == Kind::Subscription {
        json!({
            "description": "Server-sent events: `connected`, one `data:` per value (its envelope; `id:` when tracked), `ping`, then `return` or `serialized-error`",
            "content": {"text/event-stream": {"schema": {
                "description": "Each event's data: the client options (`connected`), a value's envelope, an error shape (`serialized-error`), or empty (`ping`, `return`)"
            }}}
        })
    } else {
        let data = if entry.returns_void() {
            json!({"description": "`undefined`, as superjson writes it"})
        } else {
            envelope(&described.output)
        };
        json!({
            "description": "The output in its envelope",
            "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"result": {"type": "object", "properties": {"data": data}, "required": ["data"]}},
                "required": ["result"]
            }}}
        })
    };
    operation.insert(
        "responses".to_owned(),
        responses(("200", ok), &codes, "TrpcError"),
    );
    (method, Value::Object(operation))
}

fn rest_operation<S: Service>(
    entry: &Entry<S>,
    described: &Described,
    method: RestMethod,
    created: bool,
    generator: &schemars::SchemaGenerator,
) -> Value {
    let Some(rest) = entry.rest else {
        return Value::Null;
    };
    let mut operation = described.base(entry.path.replace('.', "_"), described.summary.clone());
    let params: Vec<&str> = rest
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let object = entry
        .reads_input()
        .then(|| object_schema(&described.input, generator))
        .flatten();
    let mut codes = error_codes(entry);
    if method == RestMethod::Get {
        if let Some((properties, required)) = &object {
            for (name, schema) in properties {
                if params.contains(&name.as_str()) {
                    continue;
                }
                parameters.push(json!({
                    "name": name, "in": "query", "required": required.contains(name),
                    "schema": schema
                }));
            }
        }
    } else if entry.reads_input() {
        let body = match &object {
            Some((properties, required)) => {
                let properties: Map<String, Value> = properties
                    .iter()
                    .filter(|(name, _)| !params.contains(&name.as_str()))
                    .map(|(name, schema)| (name.clone(), schema.clone()))
                    .collect();
                let required: Vec<&String> = required
                    .iter()
                    .filter(|name| !params.contains(&name.as_str()))
                    .collect();
                json!({"type": "object", "properties": properties, "required": required})
            }
            None => described.input.clone(),
        };
        // Required when it carries a required field, or when the input is
        // not an object and may not be left out.
        let body_required = match &object {
            Some((_, required)) => required.iter().any(|n| !params.contains(&n.as_str())),
            None => !entry.ts.optional_input,
        };
        operation.insert(
            "requestBody".to_owned(),
            json!({"required": body_required, "content": {"application/json": {"schema": body}}}),
        );
        codes.push(ErrorCode::UnsupportedMediaType);
        codes.push(ErrorCode::PayloadTooLarge);
    }
    if !params.is_empty() {
        codes.push(ErrorCode::NotFound);
    }
    if !parameters.is_empty() {
        operation.insert("parameters".to_owned(), Value::Array(parameters));
    }
    let success = if entry.returns_void() {
        ("204", json!({"description": "Done; no content"}))
    } else {
        (
            if created { "201" } else { "200" },
            json!({
                "description": "The output",
                "content": {"application/json": {"schema": described.output}}
            }),
        )
    };
    operation.insert(
        "responses".to_owned(),
        responses(success, &codes, "RestError"),
    );
    Value::Object(operation)
}

/// The properties and required names of an object input, following a
/// `$ref` and, for inputs that may be left out, the object branch of
/// `anyOf [object, null]`.
fn object_schema(
    schema: &Value,
    generator: &schemars::SchemaGenerator,
) -> Option<(Map<String, Value>, Vec<String>)> {
    let resolved = resolve(schema, generator)?;
    if let Some(branches) = resolved.get("anyOf").and_then(Value::as_array) {
        // `X | null` (an input that may be left out) is X; a union of
        // several shapes is kept whole.
        let mut shapes = branches
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"));
        return match (shapes.next(), shapes.next()) {
            (Some(only), None) => object_schema(only, generator),
            _ => None,
        };
    }
    let properties = resolved.get("properties")?.as_object()?.clone();
    let required = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some((properties, required))
}

fn resolve(schema: &Value, generator: &schemars::SchemaGenerator) -> Option<Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next()?;
            generator.definitions().get(name).cloned()
        }
        None => Some(schema.clone()),
    }
}

/// The tRPC error item, as `TRPCClientError` reads it.
fn trpc_error_schema() -> Value {
    json!({
        "type": "object",
        "description": "A tRPC error: `error.json` is the shape (message, JSON-RPC code, data.code, data.httpStatus, data.path, data.issues for invalid input)",
        "properties": {"error": {"type": "object", "properties": {"json": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "integer", "description": "JSON-RPC code, e.g. -32001 for UNAUTHORIZED"},
                "data": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "e.g. UNAUTHORIZED, BAD_REQUEST"},
                        "httpStatus": {"type": "integer"},
                        "path": {"type": "string"},
                        "issues": issues_schema()
                    },
                    "required": ["code", "httpStatus"]
                }
            },
            "required": ["message", "code", "data"]
        }}, "required": ["json"]}},
        "required": ["error"]
    })
}

/// The REST error body.
fn rest_error_schema() -> Value {
    json!({
        "type": "object",
        "description": "A REST error, in the shape Spring Boot answers with, plus the tRPC code and the failing fields",
        "properties": {
            "timestamp": {"type": "string", "format": "date-time"},
            "status": {"type": "integer"},
            "error": {"type": "string", "description": "The status's reason phrase"},
            "message": {"type": "string", "description": "Translated by Accept-Language"},
            "path": {"type": "string"},
            "code": {"type": "string", "description": "The tRPC code, e.g. UNAUTHORIZED"},
            "issues": issues_schema()
        },
        "required": ["timestamp", "status", "error", "message", "path", "code"]
    })
}

fn issues_schema() -> Value {
    json!({
        "type": "array",
        "description": "One per invalid input field",
        "items": {
            "type": "object",
            "properties": {
                "path": {"type": "array", "items": {"type": "string"}},
                "message": {"type": "string"}
            },
            "required": ["path", "message"]
        }
    })
}
