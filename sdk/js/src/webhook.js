// Webhook signature verification, as in the tutorial: `X-OpenClaw-Signature` is the hex
// HMAC-SHA256 of the exact body bytes, keyed with the endpoint's secret.

import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * True when `signature` (the `X-OpenClaw-Signature` header) is the HMAC-SHA256 of `payload`
 * with `secret`, compared in constant time. The tutorial's function, except that a missing
 * or malformed signature gives `false` instead of throwing.
 *
 * Pass the raw request body (string, Buffer or Uint8Array). A parsed JSON object is accepted
 * too and hashed as `JSON.stringify(payload)`, as the tutorial's Express receiver does; that
 * works because the server sends compact JSON that survives a parse/stringify round trip.
 *
 * @param {string|Uint8Array|object} payload
 * @param {string|string[]|null|undefined} signature
 * @param {string|Uint8Array} secret
 * @returns {boolean}
 */
export function verifyWebhook(payload, signature, secret) {
  if (Array.isArray(signature)) signature = signature[0];
  if (typeof signature !== "string" || signature.length === 0) return false;
  if (secret == null || secret.length === 0) throw new TypeError("verifyWebhook: the webhook secret is empty");
  const body = typeof payload === "string" || payload instanceof Uint8Array ? payload : JSON.stringify(payload);
  const expected = createHmac("sha256", secret).update(body).digest("hex");
  const given = Buffer.from(signature.trim().toLowerCase());
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
