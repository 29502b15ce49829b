// PNG files of rendered frames (RGB, 8 bit), through fast-png.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { encode } from "fast-png";

/** Encodes u8 RGB [H, W, 3] (row 0 at the top) as PNG bytes. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new Error(`PNG data has ${rgb.length} bytes, expected ${width}×${height}×3`);
  return encode({ width, height, data: rgb, channels: 3, depth: 8 });
}

export function writePng(path: string, rgb: Uint8Array, width: number, height: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePng(rgb, width, height));
}
