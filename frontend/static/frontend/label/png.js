// Index masks travel as PNGs. A canvas cannot do this job: toBlob() writes RGBA
// and getImageData() may colour-manage or premultiply, and neither handles
// 16-bit superpixel ids. So we encode and decode the few PNG flavours we use
// ourselves, with the browser's native zlib (CompressionStream).

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

let crcTable = null;
function crc32(bytes, crc = 0xffffffff) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}

async function zlib(bytes, direction) {
  const stream = new Blob([bytes]).stream().pipeThrough(
    direction === "deflate" ? new CompressionStream("deflate") : new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, (crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff) >>> 0);
  return out;
}

/** Encode a uint8 index mask (row-major, ``width * height``) as a single-channel 8-bit PNG Blob. */
export async function encodeIndexPng(values, width, height) {
  if (values.length !== width * height) throw new Error(`mask has ${values.length} values, expected ${width * height}`);
  const raw = new Uint8Array((width + 1) * height);  // filter byte 0 (None) before each row
  for (let y = 0; y < height; y++) raw.set(values.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8);  // bit depth 8, greyscale, deflate, adaptive filters, no interlace
  const parts = [new Uint8Array(SIGNATURE), chunk("IHDR", header), chunk("IDAT", await zlib(raw, "deflate")),
    chunk("IEND", new Uint8Array(0))];
  return new Blob(parts, { type: "image/png" });
}

function paeth(a, b, c) {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decode a non-interlaced greyscale (8/16-bit) or palette (8-bit) PNG into its raw
 * values: Uint8Array for 8-bit, Uint16Array for 16-bit; palette images give indices.
 */
export async function decodePng(buffer) {
  const bytes = new Uint8Array(buffer);
  for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8, width = 0, height = 0, depth = 0, colorType = 0, interlace = 0;
  const idat = [];
  while (offset < bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(offset + 8);
      height = view.getUint32(offset + 12);
      [depth, colorType] = [data[8], data[9]];
      interlace = data[12];
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    offset += 12 + length;
  }
  if (interlace !== 0) throw new Error("interlaced PNGs are not supported");
  if (!((colorType === 0 && (depth === 8 || depth === 16)) || (colorType === 3 && depth === 8))) {
    throw new Error(`unsupported PNG: colour type ${colorType}, bit depth ${depth} (expected a single-channel mask)`);
  }
  const raw = await zlib(new Blob(idat), "inflate");
  const bpp = depth / 8;
  const stride = width * bpp;
  if (raw.length < (stride + 1) * height) throw new Error("PNG data is truncated");
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : null;
    if (filter === 0) { row.set(src); continue; }
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? row[x - bpp] : 0, b = prev ? prev[x] : 0, c = prev && x >= bpp ? prev[x - bpp] : 0;
      let v = src[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) v += paeth(a, b, c);
      else if (filter !== 0) throw new Error(`bad PNG filter ${filter}`);
      row[x] = v;
    }
  }
  if (depth === 8) return { width, height, data: pixels };
  const values = new Uint16Array(width * height);
  for (let i = 0; i < values.length; i++) values[i] = (pixels[2 * i] << 8) | pixels[2 * i + 1];
  return { width, height, data: values };
}
