//! The headers of one webhook POST, and its signatures.
//!
//! - `X-OpenClaw-Signature`: lower-case hex HMAC-SHA256 of the exact body bytes, keyed with the
//!   endpoint secret's UTF-8 bytes — what the tutorial's Node.js `verifyWebhook` computes.
//! - Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id` (the delivery id),
//!   `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//!   "{id}.{timestamp}.{body}">`, for receivers that want replay protection. Standard Webhooks
//!   secrets are usually `whsec_<base64>` and libraries key the HMAC with the decoded bytes; our
//!   endpoint secrets are free-form strings, so the key here is the secret's raw UTF-8 bytes
//!   (the same key as `X-OpenClaw-Signature`). A receiver using a Standard Webhooks library
//!   passes it the secret base64-encoded.
//! - `X-OpenClaw-Event`, `X-OpenClaw-Delivery` (stable across retries), `X-OpenClaw-Timestamp`
//!   (unix seconds, the same as `webhook-timestamp`), `Content-Type`, `User-Agent`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("claw/", env!("CARGO_PKG_VERSION"));

type HmacSha256 = Hmac<Sha256>;

fn hmac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `X-OpenClaw-Signature`: lower-hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn openclaw_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac(secret.as_bytes(), &[body]))
}

/// `webhook-signature`: `v1,` + base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        secret.as_bytes(),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// Every header of one delivery attempt, as (name, value) pairs.
pub fn headers(
    secret: &str,
    delivery_id: &str,
    event: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_string()),
        ("user-agent", USER_AGENT.to_string()),
        ("x-openclaw-event", event.to_string()),
        ("x-openclaw-delivery", delivery_id.to_string()),
        ("x-openclaw-timestamp", timestamp.to_string()),
        ("x-openclaw-signature", openclaw_signature(secret, body)),
        ("webhook-id", delivery_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            standard_signature(secret, delivery_id, timestamp, body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            openclaw_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_signs_id_timestamp_and_body() {
        let sig = standard_signature("Jefe", "dlv_1", 1_700_000_000, b"{}");
        let mac = hmac(b"Jefe", &[b"dlv_1.1700000000.{}"]);
        assert_eq!(
            sig,
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac)
            )
        );
    }

    #[test]
    fn headers_carry_the_delivery_id_twice_and_both_signatures() {
        let h = headers("s", "dlv_x", "task.completed", 12, b"{}");
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("x-openclaw-delivery").as_deref(), Some("dlv_x"));
        assert_eq!(get("webhook-id").as_deref(), Some("dlv_x"));
        assert_eq!(get("x-openclaw-timestamp").as_deref(), Some("12"));
        assert!(get("webhook-signature").unwrap().starts_with("v1,"));
        assert!(get("user-agent").unwrap().starts_with("claw/"));
    }

    /// The tutorial's receiver, unchanged, run by Node.js against bodies we produced.
    #[test]
    fn the_tutorials_node_verify_webhook_accepts_our_signature() {
        if std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("NOTICE: node is not installed; skipping the Node.js signature check");
            return;
        }
        let secret = "your-webhook-secret ünïcødé 🔑";
        let event = crate::events::task(
            crate::events::EventType::TaskCompleted,
            "task_abc123",
            "Summarize \"the latest\" git commits\nline two\ttab — naïve café 🦀 日本語 \\ back",
            crate::tasks::TaskStatus::Completed,
            Some(4523),
            None,
        );
        let body = event.payload.as_bytes();
        let signature = openclaw_signature(secret, body);
        let script = r#"
import crypto from "crypto";
function verifyWebhook(payload, signature, secret) {
const expected = crypto
.createHmac("sha256", secret)
.update(payload)
.digest("hex");
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expected)
);
}
const payload = require("fs").readFileSync(0, "utf8");
const [signature, secret, wrong] = process.argv.slice(1);
// As the tutorial's express receiver does: re-serialise the parsed body.
const reserialised = JSON.stringify(JSON.parse(payload));
console.log(JSON.stringify([
  verifyWebhook(payload, signature, secret),
  verifyWebhook(reserialised, signature, secret),
  verifyWebhook(payload, signature, wrong),
]));
"#;
        // `import` needs an ES module; `require` a CommonJS one: provide both.
        let script = script.replace(
            "import crypto from \"crypto\";",
            "import crypto from \"crypto\"; import { createRequire } from \"module\"; const require = createRequire(import.meta.url);",
        );
        let mut child = std::process::Command::new("node")
            .args(["--input-type=module", "-e", &script, "--"])
            .arg(&signature)
            .arg(secret)
            .arg("not-the-secret")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "node failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "[true,true,false]"
        );
    }
}
