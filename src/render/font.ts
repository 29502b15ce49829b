// A 5×7 bitmap font drawn for dexrl (capitals, digits, common punctuation) to write captions on
// frames; lowercase text is shown in capitals.

const GLYPH_W = 5;
const GLYPH_H = 7;
/** Pixels between characters and between lines, before scaling. */
const SPACING = 1;

// Seven rows per glyph, '#' = ink.
const GLYPHS: Record<string, string> = {
  A: ".###. #...# #...# ##### #...# #...# #...#",
  B: "####. #...# #...# ####. #...# #...# ####.",
  C: ".###. #...# #.... #.... #.... #...# .###.",
  D: "####. #...# #...# #...# #...# #...# ####.",
  E: "##### #.... #.... ####. #.... #.... #####",
  F: "##### #.... #.... ####. #.... #.... #....",
  G: ".###. #...# #.... #.### #...# #...# .####",
  H: "#...# #...# #...# ##### #...# #...# #...#",
  I: ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  J: "..### ...#. ...#. ...#. ...#. #..#. .##..",
  K: "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  L: "#.... #.... #.... #.... #.... #.... #####",
  M: "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  N: "#...# #...# ##..# #.#.# #..## #...# #...#",
  O: ".###. #...# #...# #...# #...# #...# .###.",
  P: "####. #...# #...# ####. #.... #.... #....",
  Q: ".###. #...# #...# #...# #.#.# #..#. .##.#",
  R: "####. #...# #...# ####. #.#.. #..#. #...#",
  S: ".#### #.... #.... .###. ....# ....# ####.",
  T: "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  U: "#...# #...# #...# #...# #...# #...# .###.",
  V: "#...# #...# #...# #...# #...# .#.#. ..#..",
  W: "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  X: "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  Y: "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  Z: "##### ....# ...#. ..#.. .#... #.... #####",
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": "..##. .#... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ...#. .##..",
  " ": "..... ..... ..... ..... ..... ..... .....",
  ".": "..... ..... ..... ..... ..... .##.. .##..",
  ",": "..... ..... ..... ..... .##.. ..#.. .#...",
  ":": "..... .##.. .##.. ..... .##.. .##.. .....",
  "/": "..... ....# ...#. ..#.. .#... #.... .....",
  "-": "..... ..... ..... ##### ..... ..... .....",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "=": "..... ..... ##### ..... ##### ..... .....",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
  "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
  "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  "'": "..#.. ..#.. .#... ..... ..... ..... .....",
  "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
};

const BITMAPS = new Map(Object.entries(GLYPHS).map(([ch, rows]) => [ch, rows.split(" ").map((r) => [...r].map((c) => c === "#"))]));

/** Width in pixels of `text` at `scale`. */
export const textWidth = (text: string, scale: number) => Math.max(0, text.length * (GLYPH_W + SPACING) - SPACING) * scale;
/** Height of one line of text, spacing to the next included. */
export const lineHeight = (scale: number) => (GLYPH_H + 2 * SPACING) * scale;

/** An RGB image [height, width, 3] that text is drawn into. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Draws `text` with its top-left corner at (x, y); characters outside the image are clipped. */
export function drawText(img: RgbImage, x: number, y: number, text: string, scale: number, rgb: readonly number[]): void {
  [...text.toUpperCase()].forEach((ch, i) => {
    const glyph = BITMAPS.get(ch) ?? BITMAPS.get("?")!;
    const x0 = x + i * (GLYPH_W + SPACING) * scale;
    glyph.forEach((row, gy) =>
      row.forEach((ink, gx) => {
        if (!ink) return;
        for (let sy = 0; sy < scale; sy++)
          for (let sx = 0; sx < scale; sx++) {
            const px = x0 + gx * scale + sx, py = y + gy * scale + sy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            img.data.set(rgb, (py * img.width + px) * 3);
          }
      }),
    );
  });
}

/** Splits `text` into lines no wider than `maxWidth` pixels, breaking at spaces. */
export function wrapText(text: string, maxWidth: number, scale: number): string[] {
  const perLine = Math.max(1, Math.floor((maxWidth / scale + SPACING) / (GLYPH_W + SPACING)));
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (next.length <= perLine) line = next;
    else {
      if (line) lines.push(line);
      // A word longer than a line is cut.
      let rest = word;
      while (rest.length > perLine) {
        lines.push(rest.slice(0, perLine));
        rest = rest.slice(perLine);
      }
      line = rest;
    }
  }
  if (line) lines.push(line);
  return lines;
}
