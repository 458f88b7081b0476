// The client's address as text for X-Forwarded-For, formatted here from uWS's raw bytes
// (uWS's own text form goes through snprintf and one more ArrayBuffer) and reused while the
// same address keeps coming, as it does on keep-alive connections.
const hex2: string[] = [];
for (let i = 0; i < 256; i++) hex2.push(i.toString(16).padStart(2, "0"));

let lastBytes: Uint8Array = new Uint8Array(0);
let lastText = "";

/** The same text as uWS `getRemoteAddressAsText` (IPv6 as eight 4-digit hex groups). */
export function addressText(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n === lastBytes.length) {
    let same = true;
    for (let i = n - 1; i >= 0; i--) {
      if (bytes[i] !== lastBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastText;
  }
  let text = "";
  if (n === 4) {
    text = `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  } else if (n === 16) {
    text = hex2[bytes[0] as number] + (hex2[bytes[1] as number] as string);
    for (let i = 2; i < 16; i += 2) text += `:${hex2[bytes[i] as number]}${hex2[bytes[i + 1] as number]}`;
  } else if (n > 0) {
    return Buffer.from(bytes).toString("hex");
  }
  lastBytes = bytes;
  lastText = text;
  return text;
}
