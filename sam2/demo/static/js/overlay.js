// Drawing on the viewer: mask overlays (filled with the object's colour at the chosen opacity, with
// a solid outline) and the prompts (positive / negative points, boxes) of the shown frame.

import { decodeRle } from "./rle.js";

const decoded = new Map(); // small LRU: rle object -> decoded mask
const DECODED_KEEP = 48;

/** Decoded mask of an RLE object, cached while it is recent. */
export function maskOf(rle) {
  let mask = decoded.get(rle);
  if (mask) {
    decoded.delete(rle);
  } else {
    mask = decodeRle(rle);
  }
  decoded.set(rle, mask);
  if (decoded.size > DECODED_KEEP) decoded.delete(decoded.keys().next().value);
  return mask;
}

/**
 * Paint masks onto `canvas` (sized to the frame). Later layers paint over earlier ones.
 * @param {HTMLCanvasElement} canvas
 * @param {{rle: object, color: number[]}[]} layers
 * @param {number} opacity  0..1, alpha of the fill; outlines stay opaque
 */
export function drawMasks(canvas, layers, opacity) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const { width, height } = canvas;
  const image = ctx.createImageData(width, height);
  const px = image.data;
  const fillAlpha = Math.round(255 * opacity);
  for (const layer of layers) {
    const mask = maskOf(layer.rle);
    if (mask.width !== width || mask.height !== height) continue; // stale size: skip safely
    const m = mask.data;
    const [r, g, b] = layer.color;
    for (let y = 0; y < height; y += 1) {
      const row = y * width;
      for (let x = 0; x < width; x += 1) {
        const i = row + x;
        if (!m[i]) continue;
        const edge = x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
          !m[i - 1] || !m[i + 1] || !m[i - width] || !m[i + width];
        const o = i * 4;
        px[o] = r;
        px[o + 1] = g;
        px[o + 2] = b;
        px[o + 3] = edge ? 255 : fillAlpha;
      }
    }
  }
  ctx.putImageData(image, 0, 0);
}

/**
 * Draw the prompts of the shown frame.
 * @param {HTMLCanvasElement} canvas  sized to the frame
 * @param {{points: number[][], labels: number[], box: number[]|null, color: number[],
 *   selected: boolean}[]} sets
 * @param {number[]|null} dragBox  [x0, y0, x1, y1] being drawn, if any
 * @param {number} scale  frame pixels per screen pixel (keeps markers a constant size on screen)
 */
export function drawPrompts(canvas, sets, dragBox, scale) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const set of sets) {
    const css = `rgb(${set.color.join(",")})`;
    if (set.box) strokeBox(ctx, set.box, css, scale, set.selected ? [] : [6 * scale, 4 * scale]);
    set.points.forEach((point, i) => drawPoint(ctx, point, set.labels[i], css, scale));
  }
  if (dragBox) strokeBox(ctx, dragBox, "#ffffff", scale, [6 * scale, 4 * scale]);
}

function strokeBox(ctx, box, css, scale, dash) {
  const [x0, y0, x1, y1] = box;
  ctx.save();
  ctx.setLineDash(dash);
  ctx.lineWidth = 4 * scale;
  ctx.strokeStyle = "rgba(0,0,0,0.55)";
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.lineWidth = 2 * scale;
  ctx.strokeStyle = css;
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.restore();
}

function drawPoint(ctx, [x, y], label, css, scale) {
  const radius = 7 * scale;
  ctx.save();
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.fillStyle = label ? "#22c55e" : "#ef4444";
  ctx.fill();
  ctx.lineWidth = 2 * scale;
  ctx.strokeStyle = "#ffffff";
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(x, y, radius + 2.5 * scale, 0, 2 * Math.PI);
  ctx.strokeStyle = css;
  ctx.stroke();
  // + for positive, - for negative
  ctx.beginPath();
  ctx.lineWidth = 2 * scale;
  ctx.strokeStyle = "#ffffff";
  ctx.moveTo(x - radius * 0.5, y);
  ctx.lineTo(x + radius * 0.5, y);
  if (label) {
    ctx.moveTo(x, y - radius * 0.5);
    ctx.lineTo(x, y + radius * 0.5);
  }
  ctx.stroke();
  ctx.restore();
}
