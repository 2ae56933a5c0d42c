// A Server-Sent Events reader over a fetch() response body. `EventSource` cannot send an
// `Authorization` header (and tokens in URLs are refused), so the stream is read with fetch
// and parsed here, following the WHATWG event-stream rules: `event`, `data` (joined with
// newlines), `id`, `retry`; lines starting with `:` are comments (the server's keep-alives).

/**
 * @typedef {{ event: string, data: string, id: string|undefined }} ServerSentEvent
 */

/**
 * Yields each event of an event stream.
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<ServerSentEvent>}
 */
export async function* readEvents(body) {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let event = "";
  let data = [];
  let id;
  let first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      if (first && buffer.length > 0) {
        // A leading byte order mark is not part of the first field name.
        if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
        first = false;
      }
      for (;;) {
        const end = lineEnd(buffer);
        if (end === null) break;
        const line = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end.length);
        if (line === "") {
          if (data.length > 0) {
            yield { event: event || "message", data: data.join("\n"), id };
          }
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) id = val;
      }
    }
  } finally {
    // Closing the stream early (a consumer's `break`) releases the connection.
    await reader.cancel().catch(() => {});
  }
}

/** The first line ending in `buffer` (`\r\n`, `\n` or `\r`), or null if none is complete. */
function lineEnd(buffer) {
  for (let i = 0; i < buffer.length; i++) {
    const c = buffer.charCodeAt(i);
    if (c === 10) return { index: i, length: 1 };
    if (c === 13) {
      // A `\r` at the very end may be the first half of `\r\n`: wait for more.
      if (i + 1 === buffer.length) return null;
      return { index: i, length: buffer.charCodeAt(i + 1) === 10 ? 2 : 1 };
    }
  }
  return null;
}
