// Captions and GIF episode videos: text lands where it is drawn, and the GIF has every frame.
import { expect, test } from "bun:test";
import { drawText, lineHeight, textWidth, wrapText } from "../../src/render/font.ts";
import { captionedFrame, EpisodeGif } from "../../src/render/video.ts";

test("text is drawn inside its box and wraps at spaces", () => {
  const img = { data: new Uint8Array(60 * 20 * 3), width: 60, height: 20 };
  drawText(img, 2, 3, "Step 7", 1, [255, 0, 0]);
  let minX = 99, maxX = -1, minY = 99, maxY = -1;
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 60; x++)
      if (img.data[(y * 60 + x) * 3]) [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
  expect(minX).toBe(2);
  expect(maxX).toBeLessThan(2 + textWidth("Step 7", 1));
  expect(minY).toBe(3);
  expect(maxY).toBe(3 + 6); // 7 rows of ink
  expect(wrapText("pick up the black bowl", textWidth("pick up the", 1), 1)).toEqual(["pick up the", "black bowl"]);
});

test("a captioned frame puts the cameras side by side under the text band", () => {
  const [W, H] = [40, 128];
  const images = new Uint8Array(2 * H * W * 3);
  images.fill(10, 0, H * W * 3); // camera 0
  images.fill(200, H * W * 3); // camera 1
  const f = captionedFrame(images, 2, W, H, "go", "step 1");
  expect(f.width).toBe(2 * W);
  const band = f.height - H;
  expect(band).toBe(2 * lineHeight(1) + 8);
  const at = (x: number, y: number) => f.data[(y * f.width + x) * 3];
  expect(at(0, band)).toBe(10);
  expect(at(W - 1, f.height - 1)).toBe(10);
  expect(at(W, band)).toBe(200);
});

test("small camera images are enlarged (nearest pixel) so the caption stays readable", () => {
  const [W, H] = [16, 16];
  const images = new Uint8Array(2 * H * W * 3);
  images.fill(10, 0, H * W * 3);
  images.fill(200, H * W * 3);
  images.set([255, 0, 0], 0); // camera 0's top-left pixel
  const f = captionedFrame(images, 2, W, H, "pick up the black bowl between the plate and the ramekin", "step 1");
  const k = 128 / H; // enlarged to 128 rows
  expect(f.width).toBe(2 * W * k);
  const band = f.height - H * k;
  const at = (x: number, y: number) => Array.from(f.data.subarray((y * f.width + x) * 3, (y * f.width + x) * 3 + 3));
  expect(at(0, band)).toEqual([255, 0, 0]);
  expect(at(k - 1, band + k - 1)).toEqual([255, 0, 0]);
  expect(at(k, band)).toEqual([10, 10, 10]);
  expect(at(W * k, band)).toEqual([200, 200, 200]);
  // The 57-character instruction wraps to at most 2 lines across 256 px (at 16 px it needed 15).
  expect(band).toBeLessThanOrEqual(3 * lineHeight(1) + 8);
});

/** Walks the GIF block structure; returns the logical screen size and the image descriptors' sizes. */
function gifFrames(bytes: Uint8Array) {
  const text = new TextDecoder().decode(bytes.subarray(0, 6));
  const u16 = (o: number) => bytes[o]! | (bytes[o + 1]! << 8);
  const screen = [u16(6), u16(8)];
  let o = 13 + (bytes[10]! & 0x80 ? 3 << ((bytes[10]! & 7) + 1) : 0);
  const skipSubBlocks = () => {
    while (bytes[o]) o += bytes[o]! + 1;
    o++;
  };
  const frames: number[][] = [];
  while (bytes[o] !== 0x3b) {
    if (bytes[o] === 0x21) {
      o += 2;
      skipSubBlocks();
    } else if (bytes[o] === 0x2c) {
      frames.push([u16(o + 5), u16(o + 7)]);
      const flags = bytes[o + 9]!;
      o += 10 + (flags & 0x80 ? 3 << ((flags & 7) + 1) : 0) + 1; // descriptor, local palette, LZW code size
      skipSubBlocks();
    } else throw new Error(`unexpected GIF block 0x${bytes[o]!.toString(16)} at ${o}`);
  }
  return { text, screen, frames, end: o + 1 };
}

test("an episode GIF holds every frame at the frame size", () => {
  const gif = new EpisodeGif(20);
  for (let t = 0; t < 3; t++) {
    const images = new Uint8Array(2 * 16 * 16 * 3).map((_, i) => (i * (t + 1)) % 251);
    gif.add(captionedFrame(images, 2, 16, 16, "pick up the bowl", `step ${t}`));
  }
  const bytes = gif.finish();
  expect(gif.finish()).toBe(bytes); // finishing again gives the same file
  expect(() => gif.add(captionedFrame(new Uint8Array(2 * 16 * 16 * 3), 2, 16, 16, "", ""))).toThrow("finished");
  const parsed = gifFrames(bytes);
  expect(parsed.text).toBe("GIF89a");
  expect(parsed.end).toBe(bytes.length);
  expect(parsed.frames).toHaveLength(3);
  for (const f of parsed.frames) expect(f).toEqual(parsed.screen);
  expect(parsed.screen[0]).toBe(2 * 128); // two 16-px views enlarged 8×
});
