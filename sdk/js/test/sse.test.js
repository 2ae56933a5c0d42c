// The event-stream parser on its own: line endings, comments, multi-line data, and chunks
// split anywhere (the server's bytes arrive in whatever pieces the network makes).

import assert from "node:assert/strict";
import { test } from "node:test";

import { readEvents } from "../src/sse.js";

function stream(chunks) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(chunks) {
  const out = [];
  for await (const e of readEvents(stream(chunks))) out.push(e);
  return out;
}

const TEXT =
  "\uFEFF: keep-alive\r\n" +
  "event: status\r\ndata: {\"status\":\"running\"}\r\n\r\n" +
  "event: output\ndata: line one\ndata: line two\nid: 7\n\n" +
  ": another comment\r\r" +
  "data:no space\r\r" +
  "event: ignored-without-data\n\n" +
  "event: status\ndata: {\"status\":\"completed\"}\n\n";

const EXPECTED = [
  { event: "status", data: '{"status":"running"}', id: undefined },
  { event: "output", data: "line one\nline two", id: "7" },
  { event: "message", data: "no space", id: "7" },
  { event: "status", data: '{"status":"completed"}', id: "7" },
];

test("events are parsed whatever the line endings", async () => {
  assert.deepEqual(await collect([TEXT]), EXPECTED);
});

test("events are parsed whatever the chunking, even inside a UTF-8 sequence or a CRLF", async () => {
  const bytes = new TextEncoder().encode(TEXT + "data: Zoë 👋\n\n");
  const expected = [...EXPECTED, { event: "message", data: "Zoë 👋", id: "7" }];
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
    assert.deepEqual(await collect(chunks), expected, `chunks of ${size} bytes`);
  }
});

test("an unterminated last event is not dispatched", async () => {
  assert.deepEqual(await collect(["data: complete\n\ndata: cut off"]), [{ event: "message", data: "complete", id: undefined }]);
});
