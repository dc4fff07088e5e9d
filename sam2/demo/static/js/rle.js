// COCO run-length encoding with the compressed string `counts` of pycocotools.
//
// A mask of height h and width w is read in column-major order (down each column, then the next
// column) as alternating runs of 0s and 1s, starting with a (possibly empty) run of 0s. The string
// packs each run length in 5-bit groups, least significant first, offset by ASCII 48; bit 0x20 of a
// group says "more groups follow", bit 0x10 of the last group is the sign. From the fourth run on, the
// value stored is the difference to the run two places earlier (pycocotools: index > 2).

/** Run lengths of a compressed `counts` string. @returns {number[]} */
export function countsFromString(text) {
  const counts = [];
  let pos = 0;
  while (pos < text.length) {
    let value = 0;
    let scale = 1;
    let more = true;
    let group = 0;
    while (more) {
      if (pos >= text.length) throw new Error("RLE counts string ends inside a number");
      group = text.charCodeAt(pos) - 48;
      value += (group & 0x1f) * scale;
      scale *= 32;
      more = (group & 0x20) !== 0;
      pos += 1;
    }
    if (group & 0x10) value -= scale; // negative: sign-extend
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
  }
  return counts;
}

/** Compressed `counts` string of run lengths. @param {number[]} counts */
export function countsToString(counts) {
  let text = "";
  for (let i = 0; i < counts.length; i += 1) {
    let value = counts[i] - (i > 2 ? counts[i - 2] : 0);
    let more = true;
    while (more) {
      let group = ((value % 32) + 32) % 32; // low 5 bits, also for negatives
      value = (value - group) / 32; // arithmetic shift right by 5
      more = (group & 0x10) ? value !== -1 : value !== 0;
      if (more) group |= 0x20;
      text += String.fromCharCode(group + 48);
    }
  }
  return text;
}

/**
 * Decode an RLE `{size: [h, w], counts}` into a row-major mask.
 * @returns {{height: number, width: number, data: Uint8Array}} data[y * width + x] is 0 or 1
 */
export function decodeRle(rle) {
  const [height, width] = rle.size;
  const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
  const data = new Uint8Array(height * width);
  let index = 0; // column-major position
  for (let i = 0; i < counts.length; i += 1) {
    const end = index + counts[i];
    if (end > height * width) throw new Error("RLE runs exceed the mask size");
    if (i % 2 === 1) {
      for (let k = index; k < end; k += 1) {
        const col = Math.floor(k / height);
        data[(k - col * height) * width + col] = 1;
      }
    }
    index = end;
  }
  return { height, width, data };
}

/**
 * Encode a row-major mask (any non-zero value is foreground) as RLE with a compressed string.
 * @param {Uint8Array|Uint8ClampedArray} data  length height * width
 */
export function encodeRle(data, height, width) {
  const counts = [];
  let current = 0;
  let run = 0;
  for (let col = 0; col < width; col += 1) {
    for (let row = 0; row < height; row += 1) {
      const value = data[row * width + col] ? 1 : 0;
      if (value !== current) {
        counts.push(run);
        run = 0;
        current = value;
      }
      run += 1;
    }
  }
  counts.push(run);
  return { size: [height, width], counts: countsToString(counts) };
}

/** Number of foreground pixels of an RLE, without decoding it. */
export function rleArea(rle) {
  const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
  let area = 0;
  for (let i = 1; i < counts.length; i += 2) area += counts[i];
  return area;
}
