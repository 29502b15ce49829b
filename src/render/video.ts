// Captioned frames (the cameras side by side under the instruction and a status line) and episode
// videos as animated GIF, which every browser and image viewer plays.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { applyPalette, GIFEncoder, quantize } from "gifenc";
import { drawText, lineHeight, type RgbImage, wrapText } from "./font.ts";

const BACKGROUND = [24, 24, 28];
const TEXT = [235, 235, 235];
const MARGIN = 4;

/** Text scale that keeps captions legible: 1 for small frames, 2 from 192 px up. */
const captionScale = (height: number) => (height >= 192 ? 2 : 1);
/** Camera images are enlarged (nearest pixel) to at least this height, so small policies' frames stay readable. */
const MIN_HEIGHT = 128;

/** u8 [n, H, W, 3] images enlarged k× by repeating pixels. */
function enlarge(images: Uint8Array, n: number, width: number, height: number, k: number): Uint8Array {
  const out = new Uint8Array(images.length * k * k);
  const W = width * k;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < height * k; y++)
      for (let x = 0; x < W; x++) {
        const src = ((i * height + Math.floor(y / k)) * width + Math.floor(x / k)) * 3;
        out.set(images.subarray(src, src + 3), ((i * height * k + y) * W + x) * 3);
      }
  return out;
}

/**
 * One video frame: the N_cam images of one env (u8 [N_cam, H, W, 3]) left to right, with the
 * instruction (wrapped) and `status` (e.g. "step 12/220") written on a band above them.
 */
export function captionedFrame(images: Uint8Array, nCam: number, width: number, height: number, instruction: string, status: string): RgbImage {
  if (images.length !== nCam * width * height * 3) throw new Error(`expected ${nCam} images of ${width}×${height}×3 bytes, got ${images.length} bytes`);
  const k = Math.ceil(MIN_HEIGHT / height);
  if (k > 1) return captionedFrame(enlarge(images, nCam, width, height, k), nCam, width * k, height * k, instruction, status);
  const scale = captionScale(height);
  const outW = nCam * width;
  const lines = [...wrapText(instruction, outW - 2 * MARGIN, scale), status];
  const band = lines.length * lineHeight(scale) + 2 * MARGIN;
  const img: RgbImage = { data: new Uint8Array(outW * (band + height) * 3), width: outW, height: band + height };
  for (let p = 0; p < outW * band; p++) img.data.set(BACKGROUND, 3 * p);
  lines.forEach((line, i) => drawText(img, MARGIN, MARGIN + i * lineHeight(scale), line, scale, TEXT));
  const row = width * 3;
  for (let c = 0; c < nCam; c++)
    for (let y = 0; y < height; y++) {
      const src = (c * height + y) * row;
      img.data.set(images.subarray(src, src + row), ((band + y) * outW + c * width) * 3);
    }
  return img;
}

/** Collects frames of one episode and encodes them as an animated GIF (own palette per frame). */
export class EpisodeGif {
  private readonly gif = GIFEncoder();
  private frames = 0;
  private size?: [number, number];
  private bytes?: Uint8Array; // set once the GIF is finished

  /** `fps`: playback rate; LIBERO's control rate is 20 Hz. */
  constructor(private readonly fps = 20) {}

  add(frame: RgbImage): void {
    if (this.bytes) throw new Error("the episode video is finished; no frame can be added");
    if (this.size && (this.size[0] !== frame.width || this.size[1] !== frame.height))
      throw new Error(`frame ${this.frames} is ${frame.width}×${frame.height}, the video ${this.size[0]}×${this.size[1]}`);
    this.size = [frame.width, frame.height];
    const rgba = new Uint8Array(frame.width * frame.height * 4);
    for (let p = 0; p < frame.width * frame.height; p++) {
      rgba[4 * p] = frame.data[3 * p]!;
      rgba[4 * p + 1] = frame.data[3 * p + 1]!;
      rgba[4 * p + 2] = frame.data[3 * p + 2]!;
      rgba[4 * p + 3] = 255;
    }
    const palette = quantize(rgba, 256);
    this.gif.writeFrame(applyPalette(rgba, palette), frame.width, frame.height, { palette, delay: Math.round(1000 / this.fps) });
    this.frames++;
  }

  /** Whether the video was finished (saved). */
  get done(): boolean {
    return this.bytes !== undefined;
  }

  get length(): number {
    return this.frames;
  }

  /** The GIF file's bytes; no frame can be added afterwards. */
  finish(): Uint8Array {
    if (this.bytes) return this.bytes;
    if (!this.frames) throw new Error("an episode video needs at least one frame");
    this.gif.finish();
    this.bytes = this.gif.bytes();
    return this.bytes;
  }

  save(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.finish());
  }
}
