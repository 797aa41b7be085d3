// wavSeconds reads a WAV file's length from its fmt and data chunks (byte
// rate and data size), or -1 when buf is not a RIFF WAVE file.
export function wavSeconds(buf) {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (o) => String.fromCharCode(...buf.subarray(o, o + 4));
  if (buf.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return -1;
  let byteRate = 0;
  for (let off = 12; off + 8 <= buf.length; ) {
    const size = view.getUint32(off + 4, true);
    if (tag(off) === "fmt ") byteRate = view.getUint32(off + 16, true);
    if (tag(off) === "data") return size / byteRate;
    off += 8 + size + (size % 2);
  }
  return -1;
}
